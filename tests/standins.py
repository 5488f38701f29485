"""Small files in exactly the format of the real downloads that cannot be had offline.

See ../shared/FORMATS.md for the facts each generator follows.
"""

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

# --------------------------------------------------------------------------------------------
# Inception-v3 tarball (FORMATS.md section 3)
# --------------------------------------------------------------------------------------------

SOFTMAX_WIDTH = 1008
LABEL_MAP_HEADER = ("# -*- protobuffer -*-\n"
                    "# LabelMap from ImageNet 2012 full data set UID to int32 target class.\n")


def label_map_text(entries):
    """The .pbtxt layout: two comment lines, then `entry { target_class: N ... }` blocks."""
    blocks = [f'entry {{\n  target_class: {node_id}\n  target_class_string: "{uid}"\n}}\n'
              for node_id, uid in entries]
    return LABEL_MAP_HEADER + "".join(blocks)


def synset_text(uid_to_human):
    return "".join(f"{uid}\t{human}\n" for uid, human in sorted(uid_to_human.items()))


def tiny_jpeg(colour=(120, 90, 60), size=(32, 32)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def inception_graph_def(channels=4, seed=0, favourites=None, overrides=None):
    """The 2015 classify_image graph in miniature, NodeDef by NodeDef, producer version 8.

    DecodeJpeg/contents (a Const holding a JPEG) -> DecodeJpeg -> Cast -> ExpandDims ->
    ResizeBilinear(299) -> Sub(128) -> Mul(1/128) -> conv/Conv2D (3x3, stride 2, VALID) ->
    conv/batchnorm (BatchNormWithGlobalNormalization) -> conv (Relu) -> pool_3 (AvgPool to
    1x1) -> pool_3/_reshape [1, C] -> softmax/logits/MatMul -> softmax/logits -> softmax [1, 1008],
    with an Identity `mixed_10/join` before pool_3 where the real graph's last mixed layer is.
    `favourites` maps a channel of pool_3 to a softmax id that it strongly votes for;
    `overrides` replaces any of the weights by name.
    """
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    rng = np.random.default_rng(seed)
    graph_def = graph_pb2.GraphDef()
    graph_def.versions.producer = 8

    def const(name, value, dtype=None):
        node = graph_def.node.add(name=name, op="Const")
        tensor = tf.make_tensor_proto(value, dtype=dtype)
        node.attr["value"].tensor.CopyFrom(tensor)
        node.attr["dtype"].type = tensor.dtype
        return name

    def op(name, kind, inputs, **attrs):
        node = graph_def.node.add(name=name, op=kind, input=list(inputs))
        for key, value in attrs.items():
            if isinstance(value, bool):
                node.attr[key].b = value
            elif isinstance(value, int):
                node.attr[key].i = value
            elif isinstance(value, float):
                node.attr[key].f = value
            elif isinstance(value, bytes):
                node.attr[key].s = value
            elif isinstance(value, list):
                node.attr[key].list.i.extend(value)
            else:  # a dtype
                node.attr[key].type = value.as_datatype_enum
        return name

    float32 = tf.float32
    const("DecodeJpeg/contents", tiny_jpeg(), tf.string)
    op("DecodeJpeg", "DecodeJpeg", ["DecodeJpeg/contents"], channels=3, ratio=1,
       fancy_upscaling=True, try_recover_truncated=False, acceptable_fraction=1.0,
       dct_method=b"")
    op("Cast", "Cast", ["DecodeJpeg"], SrcT=tf.uint8, DstT=float32)
    const("ExpandDims/dim", np.int32(0))
    op("ExpandDims", "ExpandDims", ["Cast", "ExpandDims/dim"], T=float32, Tdim=tf.int32)
    const("ResizeBilinear/size", np.array([299, 299], np.int32))
    op("ResizeBilinear", "ResizeBilinear", ["ExpandDims", "ResizeBilinear/size"], T=float32,
       align_corners=False)
    const("Sub/y", np.float32(128.0))
    op("Sub", "Sub", ["ResizeBilinear", "Sub/y"], T=float32)
    const("Mul/y", np.float32(1 / 128.0))
    op("Mul", "Mul", ["Sub", "Mul/y"], T=float32)
    weights = {
        "conv/conv2d_params": rng.normal(0, 0.3, (3, 3, 3, channels)).astype(np.float32),
        "conv/batchnorm/moving_mean": rng.normal(0, 0.1, channels).astype(np.float32),
        "conv/batchnorm/moving_variance": rng.uniform(0.5, 1.5, channels).astype(np.float32),
        "conv/batchnorm/beta": rng.normal(0.5, 0.1, channels).astype(np.float32),
        "conv/batchnorm/gamma": rng.uniform(0.8, 1.2, channels).astype(np.float32),
        "softmax/weights": rng.normal(0, 0.5, (channels, SOFTMAX_WIDTH)).astype(np.float32),
        "softmax/biases": rng.normal(0, 0.1, SOFTMAX_WIDTH).astype(np.float32),
    }
    for channel, node_id in (favourites or {}).items():
        weights["softmax/weights"][channel, node_id] += 12.0
    weights.update(overrides or {})
    for name, value in weights.items():
        const(name, value)
    op("conv/Conv2D", "Conv2D", ["Mul", "conv/conv2d_params"], T=float32, strides=[1, 2, 2, 1],
       padding=b"VALID", use_cudnn_on_gpu=True, data_format=b"NHWC")
    op("conv/batchnorm", "BatchNormWithGlobalNormalization",
       ["conv/Conv2D", "conv/batchnorm/moving_mean", "conv/batchnorm/moving_variance",
        "conv/batchnorm/beta", "conv/batchnorm/gamma"], T=float32, variance_epsilon=0.001,
       scale_after_normalization=True)
    op("conv", "Relu", ["conv/batchnorm"], T=float32)
    op("mixed_10/join", "Identity", ["conv"], T=float32)
    op("pool_3", "AvgPool", ["mixed_10/join"], T=float32, ksize=[1, 149, 149, 1],
       strides=[1, 1, 1, 1], padding=b"VALID", data_format=b"NHWC")
    const("pool_3/_reshape/shape", np.array([1, channels], np.int32))
    op("pool_3/_reshape", "Reshape", ["pool_3", "pool_3/_reshape/shape"], T=float32,
       Tshape=tf.int32)
    op("softmax/logits/MatMul", "MatMul", ["pool_3/_reshape", "softmax/weights"], T=float32,
       transpose_a=False, transpose_b=False)
    op("softmax/logits", "BiasAdd", ["softmax/logits/MatMul", "softmax/biases"], T=float32,
       data_format=b"NHWC")
    op("softmax", "Softmax", ["softmax/logits"], T=float32)
    return graph_def, weights


def numpy_inception(weights, rgb):
    """An independent forward pass of the stand-in for a *uniform* image of colour `rgb`: the
    resize keeps it uniform, so every VALID conv output equals the centre one."""
    x = (np.asarray(rgb, np.float64) - 128.0) / 128.0
    conv = np.einsum("hwc,hwcd->d", np.broadcast_to(x, (3, 3, 3)), weights["conv/conv2d_params"])
    mean = weights["conv/batchnorm/moving_mean"]
    variance = weights["conv/batchnorm/moving_variance"]
    normalised = (conv - mean) / np.sqrt(variance + 0.001) * weights["conv/batchnorm/gamma"] \
        + weights["conv/batchnorm/beta"]
    pooled = np.maximum(normalised, 0)
    logits = pooled @ weights["softmax/weights"] + weights["softmax/biases"]
    scores = np.exp(logits - logits.max())
    return scores / scores.sum(), pooled


DEFAULT_LABELS = {449: ("n01440764", "tench, Tinca tinca"),
                  450: ("n01443537", "goldfish, Carassius auratus"),
                  169: ("n02510455", "giant panda, panda, panda bear, coon bear, "
                                     "Ailuropoda melanoleuca"),
                  1: ("n02119789", "kit fox, Vulpes macrotis")}


def write_inception_files(directory, labels=None, graph_def=None, newline="\n",
                          final_newline=True):
    """The five members of the real tarball, in `directory`; returns the weights used."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    labels = labels or DEFAULT_LABELS
    weights = None
    if graph_def is None:
        graph_def, weights = inception_graph_def(favourites={0: 169, 1: 449})
    (directory / "classify_image_graph_def.pb").write_bytes(graph_def.SerializeToString())
    label_map = label_map_text([(node_id, uid) for node_id, (uid, _) in labels.items()])
    synsets = synset_text({uid: human for uid, human in labels.values()}
                          | {"n00004475": "organism, being"})
    for name, text in (("imagenet_2012_challenge_label_map_proto.pbtxt", label_map),
                       ("imagenet_synset_to_human_label_map.txt", synsets)):
        text = text.replace("\n", newline)
        if not final_newline:
            text = text.rstrip("\r\n")
        (directory / name).write_bytes(text.encode())
    (directory / "cropped_panda.jpg").write_bytes(tiny_jpeg((30, 30, 30)))
    (directory / "LICENSE").write_text("Apache License 2.0 (stand-in)\n")
    return weights


def pack_inception_tarball(directory, tarball):
    """The real tarball's layout: the five members at the top level of a .tgz."""
    with tarfile.open(tarball, "w:gz") as bundle:
        for path in sorted(Path(directory).iterdir()):
            bundle.add(path, arcname=path.name)
    return tarball


# --------------------------------------------------------------------------------------------
# bvlc_alexnet.npy and caffe_classes.py (FORMATS.md section 1)
# --------------------------------------------------------------------------------------------

ALEXNET_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def alexnet_weights(widths=(4, 4, 6, 6, 4, 8, 8), classes=1000, seed=0, scale=0.1):
    """{layer: (W, b)} float32 with AlexNet's topology and grouping at the given widths
    (conv1..conv5, fc6, fc7); the real file's are (96, 256, 384, 384, 256, 4096, 4096)."""
    c1, c2, c3, c4, c5, f6, f7 = widths
    shapes = {"conv1": (11, 11, 3, c1), "conv2": (5, 5, c1 // 2, c2), "conv3": (3, 3, c2, c3),
              "conv4": (3, 3, c3 // 2, c4), "conv5": (3, 3, c4 // 2, c5),
              "fc6": (6 * 6 * c5, f6), "fc7": (f6, f7), "fc8": (f7, classes)}
    rng = np.random.default_rng(seed)
    weights = {}
    for layer, shape in shapes.items():
        fan_in = int(np.prod(shape[:-1]))
        weights[layer] = ((rng.standard_normal(shape) * scale * np.sqrt(2 / fan_in) * 10)
                          .astype(np.float32),
                          rng.normal(0.05, 0.05, shape[-1]).astype(np.float32))
    return weights


class Python2Pickler:
    """Emits the opcode stream Python 2.7's cPickle wrote for np.save of a dict (protocol 2):
    unicode keys (BINUNICODE), list values, arrays as _reconstruct + BUILD whose data is a
    Python 2 str (BINSTRING). Memo opcodes are left out; loaders do not need them."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")

    def global_(self, module, name):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def int_(self, value):
        if 0 <= value < 256:
            self.out += b"K" + bytes([value])
        else:
            self.out += b"J" + int(value).to_bytes(4, "little", signed=True)

    def str_(self, data):  # a Python 2 str
        if len(data) < 256:
            self.out += b"U" + bytes([len(data)]) + data
        else:
            self.out += b"T" + len(data).to_bytes(4, "little") + data

    def unicode_(self, text):
        data = text.encode("utf-8")
        self.out += b"X" + len(data).to_bytes(4, "little") + data

    def tuple_(self, items):
        if not items:
            self.out += b")"
            return
        self.out += b"("
        for item in items:
            self.int_(item)
        self.out += b"t"

    def dtype(self, descriptor, byte_order, flags):
        self.global_("numpy", "dtype")
        self.str_(descriptor)
        self.int_(0)
        self.int_(1)
        self.out += b"\x87R("  # TUPLE3, REDUCE, MARK
        self.int_(3)
        self.str_(byte_order)
        self.out += b"NNN"
        self.int_(-1)
        self.int_(-1)
        self.int_(flags)
        self.out += b"tb"  # TUPLE, BUILD

    def array_header(self, shape):
        self.global_("numpy.core.multiarray", "_reconstruct")
        self.global_("numpy", "ndarray")
        self.int_(0)
        self.out += b"\x85"  # TUPLE1: (0,)
        self.str_(b"b")
        self.out += b"\x87R("  # TUPLE3, REDUCE, MARK of the state tuple
        self.int_(1)
        self.tuple_(shape)

    def float_array(self, array):
        """float32, as the real file; a complex or bool array keeps its type (crafted files)."""
        kept = array.dtype.kind in "cb"
        descriptor, order = (array.dtype.str[1:], array.dtype.str[:1]) if kept else ("f4", "<")
        self.array_header(array.shape)
        self.dtype(descriptor.encode(), order.encode(), 0)
        self.out += b"\x89"  # NEWFALSE: not Fortran-ordered
        self.str_(np.ascontiguousarray(array, array.dtype if kept else "<f4").tobytes())
        self.out += b"tb"

    def weights_dict(self, weights):
        self.array_header(())
        self.dtype(b"O8", b"|", 63)
        self.out += b"\x89]}("  # NEWFALSE, the data list, EMPTY_DICT, MARK
        for layer, (kernel, bias) in weights.items():
            self.unicode_(layer)
            self.out += b"]("  # EMPTY_LIST, MARK
            self.float_array(kernel)
            self.float_array(bias)
            self.out += b"e"  # APPENDS
        self.out += b"ua"  # SETITEMS, APPEND (the dict into the data list)
        self.out += b"tb."  # TUPLE, BUILD, STOP


def npy_header_2016(descr="|O", shape="()"):
    """NPY 1.0 header as NumPy 1.x wrote it in 2016: padded to 16 bytes, 80 bytes in all."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    padding = 16 - (10 + len(header) + 1) % 16
    header += " " * (padding % 16) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


def write_py2_alexnet_npy(path, weights):
    """bvlc_alexnet.npy exactly as Python 2 + NumPy 1.x wrote it."""
    pickler = Python2Pickler()
    pickler.weights_dict(weights)
    Path(path).write_bytes(npy_header_2016() + bytes(pickler.out))
    return path


def caffe_classes_text(names):
    """caffe_classes.py's layout: one statement, a triple-quoted string split on newlines,
    no trailing newline."""
    return "class_names = '''" + "\n".join(names) + "'''.split(\"\\n\")"


# --------------------------------------------------------------------------------------------
# imagenet-vgg-verydeep-19.mat (FORMATS.md section 2)
# --------------------------------------------------------------------------------------------

def vgg19_layer_names():
    names = []
    for block, convs in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names + ["fc6", "relu6", "fc7", "relu7", "fc8", "prob"]


def vgg19_weights(widths=(4, 4, 6, 6, 8), fc=(8, 8, 5), seed=0):
    """{name: (W [h, w, in, out], b [out])} with VGG-19's 16 convs and 3 fcs at tiny widths."""
    rng = np.random.default_rng(seed)
    weights, previous = {}, 3
    for name in vgg19_layer_names():
        if name.startswith("conv"):
            out = widths[int(name[4]) - 1]
            shape = (3, 3, previous, out)
            previous = out
        elif name == "fc6":
            shape = (7, 7, previous, fc[0])
        elif name == "fc7":
            shape = (1, 1, fc[0], fc[1])
        elif name == "fc8":
            shape = (1, 1, fc[1], fc[2])
        else:
            continue
        fan_in = shape[0] * shape[1] * shape[2]
        weights[name] = ((rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32),
                         rng.normal(0, 0.01, shape[3]).astype(np.float32))
    return weights


def _cell(*items):
    cell = np.empty((1, len(items)), dtype=object)  # built empty so NumPy does not broadcast
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


def _empty():
    return np.empty((0, 0), dtype=object)


def write_vgg_mat(path, weights, layout="new", rename=None, drop=None):
    """A MatConvNet VGG-19 file in the current ('new', the book's) or beta16 ('old') layout.
    `rename` = (index, new name) and `drop` = index make broken files for the tests."""
    import scipy.io

    layers = []
    for name in vgg19_layer_names():
        kind = "conv" if name.startswith(("conv", "fc")) else \
            "relu" if name.startswith("relu") else "pool" if name.startswith("pool") else "softmax"
        if layout == "new":
            if kind == "conv":
                kernel, bias = weights[name]
                layer = {"name": name, "type": "conv", "weights": _cell(kernel, bias[:, None]),
                         "size": np.array([list(kernel.shape)], np.float64),
                         "pad": np.array([[1, 1, 1, 1]], np.float64),
                         "stride": np.array([[1, 1]], np.float64),
                         "precious": np.array([[0.0]]), "dilate": np.array([[1.0, 1.0]]),
                         "opts": _empty()}
            elif kind == "relu":
                layer = {"name": name, "type": "relu", "leak": np.array([[0.0]]),
                         "weights": _empty(), "precious": np.array([[0.0]])}
            elif kind == "pool":
                layer = {"name": name, "type": "pool", "method": "max",
                         "pool": np.array([[2.0, 2.0]]), "stride": np.array([[2.0, 2.0]]),
                         "pad": np.array([[0.0, 0.0, 0.0, 0.0]]), "weights": _empty(),
                         "precious": np.array([[0.0]]), "opts": _empty()}
            else:
                layer = {"name": name, "type": "softmax", "weights": _empty(),
                         "precious": np.array([[0.0]])}
        else:
            if kind == "conv":
                kernel, bias = weights[name]
                layer = {"weights": _cell(kernel, bias[None, :]),
                         "pad": np.array([[1, 1, 1, 1]], np.float64), "type": "conv",
                         "name": name, "stride": np.array([[1, 1]], np.float64)}
            elif kind == "pool":
                layer = {"name": name, "stride": np.array([[2.0, 2.0]]),
                         "pad": np.array([[0.0, 0.0, 0.0, 0.0]]), "type": "pool",
                         "method": "max", "pool": np.array([[2.0, 2.0]])}
            else:
                layer = {"type": kind, "name": name}
        layers.append(layer)
    if rename:
        layers[rename[0]]["name"] = rename[1]
    if drop is not None:
        del layers[drop]
    array = np.empty((1, len(layers)), dtype=object)
    for i, layer in enumerate(layers):
        array[0, i] = layer
    mean = np.array([[[123.68, 116.779, 103.939]]])
    if layout == "new":
        normalization = {"imageSize": np.array([[224.0, 224.0, 3.0]]),
                         "keepAspect": np.array([[1.0]]), "averageImage": mean,
                         "border": np.array([[32.0, 32.0]]), "cropSize": np.array([[0.875]]),
                         "interpolation": "bilinear"}
        content = {"layers": array,
                   "meta": {"inputs": _empty(), "classes": {"name": _cell("n01440764"),
                                                            "description": _cell("tench")},
                            "normalization": normalization}}
    else:
        content = {"layers": array, "classes": {"name": _cell("n01440764")},
                   "normalization": {"averageImage": np.tile(mean, (224, 224, 1)),
                                     "keepAspect": np.array([[1.0]])}}
    scipy.io.savemat(path, content, format="5", oned_as="column")
    return path
