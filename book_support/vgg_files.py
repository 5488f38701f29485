"""The file the pretrained VGG-19 comes as, imagenet-vgg-verydeep-19.mat, read and checked.

Holds VGG_WEIGHTS (where the 535 MB file comes from, its size and checksum), VGG19_LAYERS
(MatConvNet's 43 layer names, in order) and load_vgg, which reads the file by field name, so
MatConvNet's current layout (the book's) and the old beta16 one both work, and checks every
layer's name, as the book's assert did, and that each kernel takes the channels the layer before
gives, so that a wrong or damaged file is one line instead of a shape error deep in TensorFlow.
"""

import struct
import zlib
from pathlib import Path

import numpy as np

from book_support import downloads
from book_support import plumbing

VGG_URL = "http://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat"
VGG_WEIGHTS = downloads.RemoteFile(
    "imagenet-vgg-verydeep-19.mat", (VGG_URL,), 534904783,
    sha256="abdb57167f82a2a1fbab1e1c16ad9373411883f262a1a37ee5db2e6fb0044695")
DATA_DIR = Path("data/vgg")

VGG19_LAYERS = tuple(
    name for block, convs in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for name in [x for i in range(1, convs + 1) for x in (f"conv{block}_{i}", f"relu{block}_{i}")]
    + [f"pool{block}"]) + ("fc6", "relu6", "fc7", "relu7", "fc8", "prob")
CONV_LAYERS = tuple(name for name in VGG19_LAYERS if name.startswith("conv"))


def load_vgg(path):
    """{layer name: (kernel [h, w, in, out] float32, bias [out])} for every conv and fc layer,
    after checking that the file's 43 layers are VGG-19's, in order, by name."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    if not Path(path).is_file():
        raise plumbing.UserError(f"{path} does not exist")
    try:
        data = scipy.io.loadmat(path)
    # What scipy raises on an empty, truncated, damaged or foreign file, measured on such files
    # (zlib.error for a damaged compressed block, IndexError for a header cut short).
    except (MatReadError, ValueError, OSError, EOFError, IndexError, TypeError, KeyError,
            NotImplementedError, struct.error, zlib.error) as error:
        raise plumbing.UserError(f"{path} is not a MatConvNet .mat file "
                                 f"({type(error).__name__}: {error})") from None
    if "layers" not in data:
        raise plumbing.UserError(f"{path} has no `layers`: not a MatConvNet model")
    layers = data["layers"].reshape(-1)
    if len(layers) != len(VGG19_LAYERS):
        raise plumbing.UserError(f"{path} has {len(layers)} layers; VGG-19 has 43")
    params = {}
    for index, expected in enumerate(VGG19_LAYERS):
        record = np.asarray(layers[index]).reshape(-1)[0]
        fields = record.dtype.names or ()
        name = str(np.asarray(record["name"]).reshape(-1)[0]) if "name" in fields else "?"
        if name != expected:
            raise plumbing.UserError(f"{path}: layer {index} is {name!r}, where VGG-19 has "
                                     f"{expected}")
        if expected.startswith(("conv", "fc")):
            params[expected] = layer_weights(record, expected, path)
    check_chain(params, path)
    return params


def layer_weights(record, name, path):
    try:
        cell = np.asarray(record["weights"]).reshape(-1)
        kernel = np.asarray(cell[0], np.float32)
        bias = np.asarray(cell[1], np.float32).reshape(-1)
    except (ValueError, IndexError, TypeError):
        raise plumbing.UserError(f"{path}: layer {name} has no [weights, bias] pair") from None
    if kernel.ndim != 4 or bias.size != kernel.shape[3]:
        raise plumbing.UserError(f"{path}: layer {name} has weights {kernel.shape} and bias "
                                 f"{bias.shape}")
    return kernel, bias


def check_chain(params, path):
    previous = 3
    for name in CONV_LAYERS:
        kernel = params[name][0]
        if kernel.shape[2] != previous:
            raise plumbing.UserError(f"{path}: layer {name} takes {kernel.shape[2]} channels "
                                     f"but gets {previous}")
        previous = kernel.shape[3]


def download():
    """The path of the .mat file in DATA_DIR, downloaded and verified on first use."""
    return downloads.fetch(VGG_WEIGHTS, DATA_DIR)


def list_layers(params):
    """--list-layers: each conv/fc kernel's shape beside its name, in the network's order."""
    return "\n".join(f"{params[name][0].shape} {name}" for name in VGG19_LAYERS
                     if name in params)
