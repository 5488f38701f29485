"""lenet_mnist.py: the IDX reader, the book's split, and the network."""

import gzip
import hashlib

import numpy as np
import pytest

from book_support import downloads
import lenet_mnist
from book_support import mnist_data
from book_support import tf_setup
from conftest import MNIST_NAMES, idx_bytes, write_idx, write_mnist
from book_support.plumbing import UserError


def test_reader_returns_the_header_shape(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "i.gz", images, 2051)
    np.testing.assert_array_equal(mnist_data.read_images(path), images)
    labels = np.array([7, 2, 1, 0, 4], np.uint8)
    np.testing.assert_array_equal(mnist_data.read_labels(write_idx(tmp_path / "l.gz", labels,
                                                                     2049)), labels)


def corrupt(tmp_path, raw):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    return path


GOOD = idx_bytes(np.zeros((3, 28, 28), np.uint8), 2051)


@pytest.mark.parametrize("raw, message", [
    (idx_bytes(np.zeros((3, 28, 28), np.uint8), 2049), "invalid magic number 2049"),
    (b"\x00\x00", "invalid magic number none"),
    (GOOD[:10], "truncated inside its header"),
    (GOOD[:-1], "is truncated: 2,351 data bytes where its header (3, 28, 28) needs 2,352"),
    (GOOD + b"\x00", "wrong length: 2,353 data bytes"),
    (idx_bytes(np.zeros((3, 28, 27), np.uint8), 2051), "not 28x28"),
])
def test_reader_names_the_file_and_the_problem(tmp_path, raw, message):
    path = corrupt(tmp_path, raw)
    with pytest.raises(UserError) as error:
        mnist_data.read_images(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_reader_rejects_a_file_that_is_not_gzip(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(GOOD)
    with pytest.raises(UserError, match="not a readable gzip file"):
        mnist_data.read_images(path)


def test_reader_rejects_a_truncated_download(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(GOOD)[:-20])
    with pytest.raises(UserError, match="not a readable gzip file"):
        mnist_data.read_images(path)


def test_labels_must_be_digits(tmp_path):
    path = write_idx(tmp_path / "l.gz", np.array([3, 10], np.uint8), 2049)
    with pytest.raises(UserError, match="label 10 is not a digit"):
        mnist_data.read_labels(path)


def test_split_and_one_hot_as_the_books_input_data(tmp_path):
    directory = write_mnist(tmp_path / "mnist", train_count=600, test_count=50)
    mnist = mnist_data.read_data_sets(directory, validation_size=100)
    assert mnist.train.images.shape == (500, 28, 28, 1)
    assert mnist.validation.images.shape == (100, 28, 28, 1)
    assert mnist.test.labels.shape == (50, 10)
    assert mnist.train.images.dtype == np.float32 and mnist.train.images.max() <= 1.0
    assert np.all(mnist.train.labels.sum(axis=1) == 1)
    # validation is the first 100 training images, as read_data_sets did
    raw = gzip.decompress((directory / MNIST_NAMES[1]).read_bytes())[8:]
    assert list(np.argmax(mnist.validation.labels, 1)) == list(raw[:100])


def test_image_and_label_counts_must_agree(tmp_path):
    directory = write_mnist(tmp_path / "mnist", train_count=600, test_count=50)
    write_idx(directory / MNIST_NAMES[3], np.zeros(49, np.uint8), 2049)
    with pytest.raises(UserError, match="50 images but 49 labels"):
        mnist_data.read_data_sets(directory, validation_size=100)


def test_missing_files_are_downloaded_and_verified(tmp_path, monkeypatch, file_server):
    source = write_mnist(tmp_path / "source", train_count=600, test_count=50)
    remotes = {}
    for key, name in zip(mnist_data.MNIST_FILES, MNIST_NAMES):
        data = (source / name).read_bytes()
        file_server.files["/" + name] = data
        remotes[key] = downloads.RemoteFile(name, (file_server.url("/" + name),), len(data),
                                           md5=hashlib.md5(data).hexdigest())
    monkeypatch.setattr(mnist_data, "MNIST_FILES", remotes)
    mnist = mnist_data.read_data_sets(tmp_path / "data", validation_size=100)
    assert len(mnist.train.images) == 500
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted(MNIST_NAMES)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def net_and_session():
    net = lenet_mnist.build_graph(seed=1)
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        yield net, session


def test_weight_count_is_the_books(net_and_session):
    net, _ = net_and_session
    assert tf_setup.count_weights(net.weights) == 1_378_698
    assert [v.get_shape().as_list() for v in net.weights] == [
        [3, 3, 1, 32], [3, 3, 32, 64], [3, 3, 64, 128], [2048, 625], [625, 10]]


def test_output_shapes(net_and_session):
    net, session = net_and_session
    images = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    logits, predictions = session.run([net.py_x, net.predict_op], {net.X: images})
    assert logits.shape == (5, 10) and predictions.shape == (5,)
    flat = net.graph.get_tensor_by_name("Reshape:0")
    assert flat.get_shape().as_list() == [None, 2048]  # 28 -> 14 -> 7 -> 4, times 128 filters


def test_dropout_is_off_at_evaluation_and_on_in_training(net_and_session):
    net, session = net_and_session
    images = np.random.default_rng(1).random((16, 28, 28, 1), dtype=np.float32)
    first = session.run(net.py_x, {net.X: images})
    second = session.run(net.py_x, {net.X: images})
    np.testing.assert_array_equal(first, second)
    kept_all = session.run(net.py_x, {net.X: images, net.p_keep_conv: 1.0,
                                      net.p_keep_hidden: 1.0})
    np.testing.assert_array_equal(first, kept_all)
    training = session.run(net.py_x, {net.X: images, net.p_keep_conv: 0.8,
                                      net.p_keep_hidden: 0.5})
    assert not np.allclose(first, training)


def test_evaluate_counts_correct_predictions(net_and_session):
    net, session = net_and_session
    images = np.random.default_rng(2).random((30, 28, 28, 1), dtype=np.float32)
    predictions = session.run(net.predict_op, {net.X: images})
    labels = np.eye(10, dtype=np.float32)[predictions]
    labels[:7] = np.roll(labels[:7], 1, axis=1)  # make exactly 7 of them wrong
    data = lenet_mnist.SimpleNamespace(images=images, labels=labels)
    correct, loss = lenet_mnist.evaluate(session, net, data, batch_size=8)
    assert correct == 23 and loss > 0
