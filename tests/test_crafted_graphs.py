"""emotion_test.py restores a graph from a .meta file, which is a program: crafted ones that
would write files when restored, that are not an emotion network, or that are not files at all,
are each refused in one line, and nothing is written (book_support/graph_checks.py)."""

import os

import numpy as np
import pytest
from PIL import Image

import emotion_test
from book_support import tf_setup
from conftest import posix_only

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf


def save_network(folder, inputs_shape=(None, 48, 48, 1), classes=7, output_dtype=tf.float32,
                 evil=False, output_runs=None, restore_runs=None):
    """A small network saved as emotion_cnn.py saves one (FOLDER/model.ckpt-1 and its .meta);
    an `evil` one has a variable that runs a save op of its own when it is restored.
    `output_runs(faces)` and `restore_runs()` make a tensor that output:0, or the restore of a
    variable, needs too."""
    graph = tf.Graph()
    with graph.as_default():
        faces = tf.placeholder(tf.float32, inputs_shape, name="input")
        flat = tf.reshape(faces, [-1, int(np.prod(inputs_shape[1:]))])
        weights = tf.Variable(tf.zeros([int(np.prod(inputs_shape[1:])), classes]), name="w")
        scores = tf.nn.softmax(tf.matmul(flat, weights))
        if output_runs:  # an input, not a control input: TensorFlow prunes those to math ops;
            # and not times 0, which Grappler may fold away (TensorFlow 2.16 does)
            scores += 1e-30 * tf.reduce_sum(output_runs(faces))
        tf.identity(tf.cast(scores, output_dtype), name="output")
        variable = tf.Variable(0.0, name="evil")
        restore_extra = restore_runs().op.name if restore_runs else None
        if evil:
            tf.raw_ops.SaveV2(prefix=str(folder.parent / "written_by_the_graph"),
                              tensor_names=["evil"], shape_and_slices=[""], tensors=[variable],
                              name="evil_save")
        saver = tf.train.Saver([weights, variable])
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            prefix = saver.save(session, str(folder / "model.ckpt"), global_step=1,
                                write_meta_graph=False)
        meta_graph = saver.export_meta_graph()
    evil_node = next(node for node in meta_graph.graph_def.node if node.name == "evil")
    if evil:  # a control input on the save op: made here, as tf.Variable clears them
        evil_node.input.append("^evil_save")
    if restore_runs:
        evil_node.input.append("^" + restore_extra)
    (folder / "model.ckpt-1.meta").write_bytes(meta_graph.SerializeToString())
    return prefix


def save_network_changed(folder, change):
    """save_network's network in `folder`, its .meta then changed in place by `change`."""
    folder.mkdir()
    save_network(folder)
    meta_path = folder / "model.ckpt-1.meta"
    meta_graph = tf.MetaGraphDef()
    meta_graph.ParseFromString(meta_path.read_bytes())
    change(meta_graph)
    meta_path.write_bytes(meta_graph.SerializeToString())


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 60), np.uint8)).save(path)
    return path


def read(photo, logs, capsys):
    code = emotion_test.main([str(photo), "--logs-dir", str(logs), "--figure",
                              str(photo.parent / "figure.png")])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    return code, errors


def test_a_variable_that_would_save_when_restored_is_refused(tmp_path, photo, capsys):
    (tmp_path / "logs").mkdir()
    save_network(tmp_path / "logs", evil=True)
    code, errors = read(photo, tmp_path / "logs", capsys)
    assert code == 1 and len(errors) == 1 and "would run a save op" in errors[0], errors
    assert not list(tmp_path.glob("written_by_the_graph*"))
    assert not (tmp_path / "figure.png").exists()


def test_the_same_network_without_the_tampering_is_read(tmp_path, photo, capsys):
    (tmp_path / "logs").mkdir()
    save_network(tmp_path / "logs")
    code, errors = read(photo, tmp_path / "logs", capsys)
    assert code == 0 and not errors, errors
    assert not list(tmp_path.glob("written_by_the_graph*"))


@pytest.mark.parametrize("shapes", [{"classes": 10}, {"inputs_shape": (None, 48, 48, 3)},
                                    {"inputs_shape": (None, 32, 32, 1)},
                                    {"output_dtype": tf.int32}])
def test_a_network_that_is_not_for_faces_and_emotions_is_one_line(tmp_path, photo, capsys,
                                                                  shapes):
    (tmp_path / "logs").mkdir()
    save_network(tmp_path / "logs", **shapes)
    code, errors = read(photo, tmp_path / "logs", capsys)
    assert code == 1 and len(errors) == 1 and "has no emotion network" in errors[0], errors


@posix_only
@pytest.mark.parametrize("make", [lambda meta: meta.symlink_to("/dev/zero"), os.mkfifo])
def test_a_graph_file_that_is_not_a_file_is_refused_before_it_is_read(tmp_path, photo, capsys,
                                                                      make):
    (tmp_path / "logs").mkdir()
    save_network(tmp_path / "logs")
    meta = tmp_path / "logs" / "model.ckpt-1.meta"
    meta.unlink()
    make(meta)
    code, errors = read(photo, tmp_path / "logs", capsys)
    assert code == 1 and len(errors) == 1 and "is not a regular file" in errors[0], errors


def huge_fill(graph_def):
    """A Fill of 10^12 values that nothing asks for: it runs only if a session is told to."""
    dims = graph_def.node.add(name="huge/dims", op="Const")
    dims.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(
        np.array([100_000, 100_000, 100], np.int32)))
    dims.attr["dtype"].type = dims.attr["value"].tensor.dtype
    value = graph_def.node.add(name="huge/value", op="Const")
    value.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(0)))
    value.attr["dtype"].type = value.attr["value"].tensor.dtype
    fill = graph_def.node.add(name="huge", op="Fill", input=["huge/dims", "huge/value"])
    fill.attr["T"].type = value.attr["dtype"].type
    fill.attr["index_type"].type = dims.attr["dtype"].type


def test_a_graph_that_would_make_a_huge_tensor_is_refused(tmp_path, photo, capsys):
    save_network_changed(tmp_path / "logs", lambda meta_graph: huge_fill(meta_graph.graph_def))
    code, errors = read(photo, tmp_path / "logs", capsys)
    assert code == 1 and len(errors) == 1 and "node huge would make a tensor" in errors[0]


def constant_size(faces):
    """A Fill whose size is computed from constants: 10^5 x 10^5 x 100 values."""
    return tf.fill(tf.constant([100_000, 100_000, 1]) * tf.constant([1, 1, 100]), 0.0)


def size_from_the_batch(faces):
    """A Fill of 10^10 values for each face fed: its size comes from the input's shape."""
    return tf.fill(tf.stack([tf.shape(faces)[0], 100_000, 100_000]), 0.0)


# (A restore feeds no faces, so a size from the batch is output's case only.)
@pytest.mark.parametrize("place, huge", [("output", constant_size), ("restore", constant_size),
                                         ("output", size_from_the_batch)])
def test_a_tensor_whose_computed_size_is_huge_is_refused_before_it_runs(tmp_path, photo, capsys,
                                                                        place, huge):
    (tmp_path / "logs").mkdir()
    if place == "output":
        save_network(tmp_path / "logs", output_runs=huge)
    else:
        save_network(tmp_path / "logs", restore_runs=lambda: huge(None))
    code, errors = read(photo, tmp_path / "logs", capsys)
    assert code == 1 and len(errors) == 1, errors
    assert "is refused: its node" in errors[0] and "more than 268,435,456 values" in errors[0]
    assert not (tmp_path / "figure.png").exists()


def size_from_the_values(faces):
    """A Fill whose size only the faces' values set: 10^12 values per unit of their sum."""
    count = tf.cast(tf.reduce_sum(faces) * 1e12, tf.int64)
    return tf.fill(tf.reshape(count, [1]), 1.0)


def test_a_tensor_whose_size_only_the_run_knows_is_one_line_when_memory_runs_out(
        tmp_path, photo, capsys):
    (tmp_path / "logs").mkdir()
    save_network(tmp_path / "logs", output_runs=size_from_the_values)
    code, errors = read(photo, tmp_path / "logs", capsys)
    assert code == 1 and len(errors) == 1, errors
    assert "TensorFlow ran out of memory for a tensor of shape[" in errors[0], errors
    assert not (tmp_path / "figure.png").exists()


def test_undecodable_bytes_in_the_variables_collection_are_one_line(tmp_path, photo, capsys):
    def undecodable(meta_graph):
        meta_graph.collection_def["variables"].bytes_list.value[0] = b"\xff\xfe not a VariableDef"
    save_network_changed(tmp_path / "logs", undecodable)
    code, errors = read(photo, tmp_path / "logs", capsys)
    assert code == 1 and len(errors) == 1 and "has no emotion network" in errors[0], errors


def inception_graph(change):
    from tests.standins import inception_graph_def
    graph_def, _ = inception_graph_def(favourites={0: 169, 1: 449})
    change(graph_def)
    return graph_def


def renamed_logits(graph_def):
    for node in graph_def.node:
        node.name = "softmax/scores" if node.name == "softmax/logits" else node.name
        node.input[:] = ["softmax/scores" if each == "softmax/logits" else each
                         for each in node.input]


def constant_pool_3(graph_def):
    pool = next(node for node in graph_def.node if node.name == "pool_3")
    pool.Clear()
    pool.name, pool.op = "pool_3", "Const"
    pool.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.ones([1, 1, 1, 4], np.float32)))
    pool.attr["dtype"].type = pool.attr["value"].tensor.dtype


@pytest.mark.parametrize("change, cam, words", [
    (huge_fill, False, "node huge would make a tensor"),
    (renamed_logits, True, "--cam needs softmax/logits:0"),
    (constant_pool_3, True, "--cam needs softmax/logits:0"),
])
def test_an_inception_graph_placed_by_hand_that_does_not_fit_is_one_line(tmp_path, capsys,
                                                                         change, cam, words):
    import classify_image
    from tests.standins import tiny_jpeg, write_inception_files
    write_inception_files(tmp_path / "model", graph_def=inception_graph(change))
    (tmp_path / "photo.jpg").write_bytes(tiny_jpeg())
    argv = ["--model_dir", str(tmp_path / "model"), "--image_file", str(tmp_path / "photo.jpg")]
    code = classify_image.main(argv + (["--cam", str(tmp_path / "cams")] if cam else []))
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 1 and len(errors) == 1 and words in errors[0], errors
