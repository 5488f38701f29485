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
