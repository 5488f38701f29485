"""MNIST as the book's `input_data.read_data_sets` gave it (gone from TensorFlow 2).

Holds MNIST_FILES (the four gzipped IDX files, their mirrors and checksums: data/README.md),
read_idx / read_images / read_labels (every way a file can be wrong is one line naming it),
and read_data_sets, the one call lenet_mnist.py makes.
"""

import gzip
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from book_support.downloads import RemoteFile, fetch_all
from book_support.plumbing import UserError

IMAGE_SIZE = 28
NUM_CLASSES = 10
VALIDATION_SIZE = 5000  # what the book's input_data.read_data_sets held back

MNIST_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def _mnist_file(name, size, md5):
    return RemoteFile(name, tuple(m + name for m in MNIST_MIRRORS), size, md5=md5)


MNIST_FILES = {
    "train_images": _mnist_file("train-images-idx3-ubyte.gz", 9912422,
                                "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": _mnist_file("train-labels-idx1-ubyte.gz", 28881,
                                "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": _mnist_file("t10k-images-idx3-ubyte.gz", 1648877,
                               "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": _mnist_file("t10k-labels-idx1-ubyte.gz", 4542,
                               "ec29112dd5afa0611ce80d1b7f02629c"),
}

IDX_IMAGES_MAGIC = 2051  # 0x0803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x0801: unsigned bytes, 1 dimension


def read_idx(path, expected_magic):
    """Read a gzipped IDX file into a uint8 array shaped as its header says.

    Every way the file can be wrong (not gzip, bad magic number, truncated, too long) is a
    UserError that names the file.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise UserError(f"{path} is not a readable gzip file ({error})") from None
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != expected_magic:
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else "none"
        raise UserError(f"{path}: invalid magic number {found} "
                                 f"(an MNIST file of this kind has {expected_magic})")
    ndim = raw[3]
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise UserError(f"{path} is truncated inside its header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected, found = math.prod(shape), len(raw) - header_bytes
    if found < expected:
        raise UserError(f"{path} is truncated: {found:,} data bytes where its header "
                                 f"{shape} needs {expected:,}")
    if found > expected:
        raise UserError(f"{path} has the wrong length: {found:,} data bytes where its "
                                 f"header {shape} needs {expected:,}")
    return np.frombuffer(raw, np.uint8, offset=header_bytes).reshape(shape)


def read_images(path):
    images = read_idx(path, IDX_IMAGES_MAGIC)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise UserError(f"{path}: images are {images.shape[1:]}, not 28x28")
    return images


def read_labels(path):
    labels = read_idx(path, IDX_LABELS_MAGIC)
    if labels.size and labels.max() >= NUM_CLASSES:
        raise UserError(f"{path}: label {labels.max()} is not a digit")
    return labels


def as_dataset(images, labels):
    """Float images in [0, 1] shaped (n, 28, 28, 1) and one-hot labels, as input_data gave."""
    if len(images) != len(labels):
        raise UserError(f"{len(images):,} images but {len(labels):,} labels")
    return SimpleNamespace(
        images=(images.astype(np.float32) / 255.0).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1),
        labels=np.eye(NUM_CLASSES, dtype=np.float32)[labels])


def read_data_sets(data_dir, validation_size=VALIDATION_SIZE):
    """What the book's `input_data.read_data_sets(data_dir, one_hot=True)` gave: the four files
    downloaded where missing (offline, one line names every one missing), read, and split
    55,000 / 5,000 / 10,000 into `train`, `validation` and `test`, each with `images`
    (n, 28, 28, 1) in [0, 1] and one-hot `labels`."""
    paths = dict(zip(MNIST_FILES, fetch_all(MNIST_FILES.values(), data_dir)))
    for path in paths.values():
        print(f"Extracting {path}")
    train_images = read_images(paths["train_images"])
    train_labels = read_labels(paths["train_labels"])
    if not 0 < validation_size < len(train_images):
        raise UserError(f"--validation-size {validation_size} leaves no training "
                                 f"images (the training file has {len(train_images):,})")
    return SimpleNamespace(
        train=as_dataset(train_images[validation_size:], train_labels[validation_size:]),
        validation=as_dataset(train_images[:validation_size], train_labels[:validation_size]),
        test=as_dataset(read_images(paths["test_images"]), read_labels(paths["test_labels"])))
