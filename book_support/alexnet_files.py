"""The files the pretrained AlexNet comes as: where they come from, and read so that none can
run code.

Holds where they come from (ALEXNET_WEIGHTS and CAFFE_CLASSES, downloaded and verified into
DATA_DIR by weights_path and weights_and_classes unless the reader names a file; the book's
sample images, found by where_given and books_sample_images, which offline names them with the
downloads in one line), load_weights (bvlc_alexnet.npy, a Python 2 pickle of {layer: [weights,
biases]}, read by ArraysOnlyUnpickler, which admits NumPy arrays and nothing else, then checked
layer by layer against AlexNet's topology) and read_class_names (caffe_classes.py parsed with
`ast`, never executed, or a text file of one name a line).
"""

import ast
import pickle
from pathlib import Path

import numpy as np

from book_support import downloads
from book_support.plumbing import UserError

ALEXNET_URL = "http://www.cs.toronto.edu/~guerzhoy/tf_alexnet/"
ALEXNET_WEIGHTS = downloads.RemoteFile(
    "bvlc_alexnet.npy", (ALEXNET_URL + "bvlc_alexnet.npy",), 243861814,
    sha256="1294ef51496c52f2e4879ee3b5e1da22c35d61f3240937491b4469403d5428cc")
CAFFE_CLASSES = downloads.RemoteFile("caffe_classes.py", (ALEXNET_URL + "caffe_classes.py",),
                                     21706, md5="29bb9d0c7128bc82500a8f83884103b7")
DATA_DIR = Path("data/alexnet")
SAMPLE_IMAGES = ("laska.png", "poodle.png")  # on the weights' page, ALEXNET_URL
SAMPLE_FILES = tuple(downloads.RemoteFile(name, (ALEXNET_URL + name,)) for name in SAMPLE_IMAGES)
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")

ARRAY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"),
                 ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                 ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                 ("numpy._core.multiarray", "scalar"),
                 ("_codecs", "encode")}  # how Python 3 writes bytes into protocol 2


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays, lists, dicts, strings and numbers, and refuses anything else:
    a pickle can otherwise call any function while it loads."""

    def find_class(self, module, name):
        if (module, name) in ARRAY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name}")


def read_pickled_npy(path):
    """The object stored by np.save in `path`, unpickled with ArraysOnlyUnpickler."""
    with open(path, "rb") as stream:
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"NPY format version {version} is not one NumPy wrote")
        shape, _, dtype = read_header(stream)
        if dtype != np.dtype(object) or shape != ():
            raise ValueError(f"an array of {dtype} {shape}, not a dictionary of layers")
        # latin1: the arrays' bytes were pickled as Python 2 strings
        stored = ArraysOnlyUnpickler(stream, encoding="latin1").load()
    return stored.item() if isinstance(stored, np.ndarray) else stored


def load_weights(path):
    """{layer: (weights, biases)} from a bvlc_alexnet.npy-style file, checked layer by layer."""
    try:
        stored = read_pickled_npy(path)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, AttributeError,
            TypeError, UnicodeError) as error:
        raise UserError(f"{path} is not AlexNet weights ({error})") from None
    if not isinstance(stored, dict):
        raise UserError(f"{path} is not AlexNet weights (it holds a "
                                 f"{type(stored).__name__}, not a dictionary of layers)")
    net_data = {(key.decode() if isinstance(key, bytes) else key): value
                for key, value in stored.items()}
    weights = {}
    for layer in LAYERS:
        if layer not in net_data:
            raise UserError(f"{path} has no layer {layer}")
        value = net_data[layer]
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or not all(isinstance(array, np.ndarray) and array.dtype.kind in "fiu"
                           and array.ndim >= 1 for array in value)):
            raise UserError(f"{path}: layer {layer} is not a [weights, biases] pair of "
                            f"arrays of numbers")
        weights[layer] = (np.asarray(value[0], np.float32), np.asarray(value[1], np.float32))
    check_shapes(weights, path)
    return weights


def expected_shapes(weights):
    """The shapes AlexNet's topology demands, given the widths the file chose."""
    width = {layer: weights[layer][0].shape[-1] for layer in LAYERS}
    return {
        "conv1": (11, 11, 3, width["conv1"]),
        "conv2": (5, 5, width["conv1"] // 2, width["conv2"]),
        "conv3": (3, 3, width["conv2"], width["conv3"]),
        "conv4": (3, 3, width["conv3"] // 2, width["conv4"]),
        "conv5": (3, 3, width["conv4"] // 2, width["conv5"]),
        "fc6": (6 * 6 * width["conv5"], width["fc6"]),
        "fc7": (width["fc6"], width["fc7"]),
        "fc8": (width["fc7"], width["fc8"]),
    }


def check_shapes(weights, path):
    for layer, shape in expected_shapes(weights).items():
        kernel, bias = weights[layer]
        if kernel.shape != shape or bias.shape != (shape[-1],):
            raise UserError(f"{path}: layer {layer} has weights {kernel.shape} and "
                                     f"biases {bias.shape}; AlexNet needs {shape} and "
                                     f"({shape[-1]},)")


def read_class_names(path):
    """The class names from `caffe_classes.py` (parsed, never executed) or from a text file
    with one name a line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as error:
        raise UserError(f"cannot read {path} ({error})") from None
    if path.suffix != ".py":
        return [line.strip() for line in text.splitlines() if line.strip()]
    try:
        module = ast.parse(text)
    except SyntaxError:
        raise UserError(f"{path} is not Python; give a .txt file for plain names") \
            from None
    for statement in module.body:
        if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and getattr(statement.targets[0], "id", None) == "class_names"):
            names = literal_names(statement.value)
            if names is not None:
                return names
    raise UserError(f"{path} has no plain `class_names = ...` list of strings "
                             f"(it is read, never run)")


def literal_names(node):
    """A list/tuple of string constants, or `'''...'''.split(SEP)`; anything else is None."""
    if isinstance(node, (ast.List, ast.Tuple)):
        if all(isinstance(item, ast.Constant) and isinstance(item.value, str)
               for item in node.elts):
            return [item.value for item in node.elts]
        return None
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "split" and isinstance(node.func.value, ast.Constant)
            and isinstance(node.func.value.value, str) and len(node.args) <= 1
            and not node.keywords
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)):
        return node.func.value.value.split(*(a.value for a in node.args))
    return None


# --------------------------------------------------------------------------------------------
# Where the files are: the reader's, or downloaded; the book's two sample images
# --------------------------------------------------------------------------------------------

def weights_path(given=None):
    """The weights file the reader named, or bvlc_alexnet.npy downloaded to DATA_DIR."""
    return given or downloads.fetch(ALEXNET_WEIGHTS, DATA_DIR)


def weights_and_classes(weights=None, classes=None):
    """The weights and class names files the reader named, or bvlc_alexnet.npy and
    caffe_classes.py downloaded to DATA_DIR together (offline, one line names both)."""
    fetched = iter(downloads.fetch_all(to_download(weights, classes), DATA_DIR))
    return [given or next(fetched) for given in (weights, classes)]


def to_download(weights, classes):
    return [remote for given, remote in ((weights, ALEXNET_WEIGHTS), (classes, CAFFE_CLASSES))
            if not given]


def where_given(path):
    """The image as given, or, for a bare name such as laska.png that is not here, the one in
    DATA_DIR, where data/README.md puts the book's images."""
    if not Path(path).exists() and (DATA_DIR / path).exists():
        return str(DATA_DIR / path)
    return path


def books_sample_images(weights=None, classes=None):
    """laska.png and poodle.png, here (as the book ran) or in data/alexnet/. No checksum of
    them is published, so they are not downloaded: data/README.md says where they come from.
    When they are missing, the weights and class names the run reads next are downloaded
    first, so that offline one line names every file to put in data/alexnet/."""
    for folder in (Path("."), DATA_DIR):
        found = [folder / name for name in SAMPLE_IMAGES if (folder / name).exists()]
        if found:
            return [str(path) for path in found]
    downloads.fetch_all(to_download(weights, classes), DATA_DIR, by_hand=(
        f"no images given, and the book's {' and '.join(SAMPLE_IMAGES)} are neither here nor "
        f"in {DATA_DIR}", SAMPLE_FILES))
