"""The tests' own harness (tests/in_process.py): a script's main() run in the test process
behaves as `python script.py ...` does, and leaves the process as a new one would be."""

import os
import signal
import subprocess
import sys

import numpy as np

from conftest import PROJECT, run_script, write_mnist
from tests.in_process import STARTING_FOLDER, interpreter_starts, process_state_kept


def test_output_exit_codes_and_the_program_name_are_a_processs(tmp_path, mnist_dir):
    mistake = run_script(PROJECT / "lenet_mnist.py", "--epochs", "0")
    assert mistake.returncode == 2 and mistake.stdout == ""
    assert mistake.stderr.startswith("usage: lenet_mnist.py")
    assert "lenet_mnist.py: error: argument --epochs: 0 is less than 1" in mistake.stderr
    helped = run_script(PROJECT / "lenet_mnist.py", "--help")
    assert helped.returncode == 0 and "--epochs" in helped.stdout and helped.stderr == ""
    missing = run_script(PROJECT / "emotion_test.py", tmp_path / "nobody.png", cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.startswith("emotion_test.py: error:")


def test_an_uncaught_exception_is_a_traceback_and_exit_1(monkeypatch):
    import prep_images

    def broken(argv=None):
        raise ValueError("a bug")
    monkeypatch.setattr(prep_images, "main", broken)
    result = run_script("prep_images.py", "x")
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback") and "ValueError: a bug" in result.stderr


def test_relative_paths_are_read_from_the_folder_given(tmp_path):
    write_mnist(tmp_path / "data" / "MNIST-data", train_count=200, test_count=60)
    result = run_script("lenet_mnist.py", "--dry-run", "--validation-size", "100",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test accuracy:" in result.stdout and os.getcwd() != str(tmp_path)


def test_a_seeded_run_leaves_nothing_for_an_unseeded_one(mnist_dir):
    """A seeded run turns on TensorFlow's op determinism, under which a random op without a
    seed fails; a new process would not have it on."""
    import tensorflow.compat.v1 as tf
    from tensorflow.python.framework import config
    assert run_script(PROJECT / "lenet_mnist.py", "--data-dir", mnist_dir, "--dry-run",
                      "--validation-size", "100", "--seed", "1").returncode == 0
    assert not config.is_op_determinism_enabled()
    graph = tf.Graph()
    with graph.as_default():
        unseeded = tf.random.uniform([3])
    with tf.Session(graph=graph) as session:
        assert session.run(unseeded).shape == (3,)


def test_process_state_kept_puts_back_what_a_run_changes(tmp_path):
    import matplotlib.pyplot as plt
    import tensorflow.compat.v1 as tf
    from tensorflow.python.framework import config
    from book_support import tf_setup
    cwd, argv, handler = os.getcwd(), list(sys.argv), signal.getsignal(signal.SIGINT)
    umask = os.umask(0o022)
    os.umask(umask)
    generator = np.random.RandomState(5)
    generator.rand(3)
    seeded_stream_goes_on = generator.rand(3)
    with process_state_kept():
        tf_setup.make_deterministic(5)
        tf.constant(1.0, name="left_behind")
        os.chdir(tmp_path)
        sys.argv = ["lenet_mnist.py", "--seed", "5"]
        signal.signal(signal.SIGINT, lambda signum, frame: None)
        os.environ["LEFT_BEHIND"] = "1"
        os.umask(0o077)
        plt.figure()
        np.random.rand(3)
    assert not config.is_op_determinism_enabled()
    assert not tf.get_default_graph().get_operations()
    assert (os.getcwd(), sys.argv, signal.getsignal(signal.SIGINT)) == (cwd, argv, handler)
    assert "LEFT_BEHIND" not in os.environ and not plt.get_fignums()
    assert os.umask(umask) == umask
    assert not np.array_equal(np.random.rand(3), seeded_stream_goes_on)  # reseeded at random


# Two tests in order: what the first leaves in the process, the second does not meet
# (conftest's autouse fixture, fresh_process_state).

def test_state_left_behind_by_one_test(tmp_path):
    from book_support import tf_setup
    import tensorflow.compat.v1 as tf
    tf_setup.make_deterministic(9)
    tf.constant(2.0, name="left_by_the_test_before")
    os.chdir(tmp_path)
    os.environ["LEFT_BY_THE_TEST_BEFORE"] = "1"


def test_is_not_met_by_the_next():
    import tensorflow.compat.v1 as tf
    from tensorflow.python.framework import config
    assert not config.is_op_determinism_enabled()
    assert not tf.get_default_graph().get_operations()
    assert os.getcwd() == STARTING_FOLDER and "LEFT_BY_THE_TEST_BEFORE" not in os.environ


def test_every_python_interpreter_a_test_starts_is_counted():
    before = len(interpreter_starts)
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    subprocess.run(["true"], check=True)  # not Python: not counted
    assert len(interpreter_starts) == before + 1 and "-c pass" in interpreter_starts[-1]
