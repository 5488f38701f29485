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
                 evil=False):
    """A small network saved as emotion_cnn.py saves one (FOLDER/model.ckpt-1 and its .meta);
    an `evil` one has a variable that runs a save op of its own when it is restored."""
    graph = tf.Graph()
    with graph.as_default():
        faces = tf.placeholder(tf.float32, inputs_shape, name="input")
        flat = tf.reshape(faces, [-1, int(np.prod(inputs_shape[1:]))])
        weights = tf.Variable(tf.zeros([int(np.prod(inputs_shape[1:])), classes]), name="w")
        scores = tf.nn.softmax(tf.matmul(flat, weights))
        tf.identity(tf.cast(scores, output_dtype), name="output")
        variable = tf.Variable(0.0, name="evil")
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
    if evil:  # a control input on the save op: made here, as tf.Variable clears them
        next(node for node in meta_graph.graph_def.node
             if node.name == "evil").input.append("^evil_save")
    (folder / "model.ckpt-1.meta").write_bytes(meta_graph.SerializeToString())
    return prefix


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
    (tmp_path / "logs").mkdir()
    save_network(tmp_path / "logs")
    meta_path = tmp_path / "logs" / "model.ckpt-1.meta"
    meta_graph = tf.MetaGraphDef()
    meta_graph.ParseFromString(meta_path.read_bytes())
    huge_fill(meta_graph.graph_def)
    meta_path.write_bytes(meta_graph.SerializeToString())
    code, errors = read(photo, tmp_path / "logs", capsys)
    assert code == 1 and len(errors) == 1 and "node huge would make a tensor" in errors[0]


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
