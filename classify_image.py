"""Simple image classification with Inception-v3 (TensorFlow's classify_image.py tutorial).

    python classify_image.py                          # downloads the model, classifies the panda
    python classify_image.py --image_file cat.jpg dog.png

Loads the 2015 frozen graph `classify_image_graph_def.pb` and prints the top predictions of each
image exactly as the tutorial did; the first line for the panda (the book's):

    giant panda, panda, panda bear, coon bear, Ailuropoda melanoleuca (score = 0.88493)

What changed, and why:
  * It runs on TensorFlow 2 (tf.compat.v1), downloads over https, checks the tarball's size
    and, after extracting it safely (no member may land outside --model_dir) into a folder of
    its own, the checksums of the graph and the label map before moving them into place.
  * The graph is loaded once and every image is fed through it; the tutorial rebuilt it per run.
  * The graph can only decode JPEG, so PNG, GIF, BMP, WebP, CMYK or EXIF-rotated photos are
    converted to an upright RGB JPEG first. A file that is not an image is reported by name and
    the other images still run.
  * The label files are parsed without the tutorial's fixed slicing, which broke on CRLF line
    ends, blank lines or a missing final newline; an id with no label prints `unknown (id N)`.
  * `--bottleneck DIR` saves each image's 2048 `pool_3` features, for transfer learning.
"""

import hashlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from book_support import downloads
from book_support import gradcam
from book_support import image_io
from book_support import plumbing
from book_support import tf_setup

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

DATA_URL = "https://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
INCEPTION_TARBALL = downloads.RemoteFile(
    "inception-2015-12-05.tgz",
    (DATA_URL, "https://storage.googleapis.com/download.tensorflow.org/models/image/imagenet/"
               "inception-2015-12-05.tgz", DATA_URL.replace("https:", "http:")),
    size=88931400)
GRAPH_FILE = "classify_image_graph_def.pb"
LABEL_MAP_FILE = "imagenet_2012_challenge_label_map_proto.pbtxt"
SYNSET_FILE = "imagenet_synset_to_human_label_map.txt"
# No checksum of the tarball itself is published. The graph that is imported and run, and the
# label map, are checked after extraction instead (data/README.md gives where these come from).
PINNED_MEMBERS = (downloads.RemoteFile(GRAPH_FILE, (), 95673916,
                                      md5="e6bb154e85f5d4331c22abcddb5dcf31"),
                  downloads.RemoteFile(LABEL_MAP_FILE, (), 64986,
                                      md5="b323f3c2933eab773514466b24a0c43c"))
TARBALL_CONTENTS = 100_000_000  # its five members hold 96.5 MB; no member is larger
DEPRECATED_OP = "BatchNormWithGlobalNormalization"
# The frozen graph's ops beyond tensor math: it decodes the JPEG itself, and normalises with
# the 2015 batch-norm op. A .pb placed by hand that holds anything else is refused; the
# published one (its md5 above) is not checked, as its full op list is not known here.
INCEPTION_OPS = tf_setup.TENSOR_MATH_OPS | {"DecodeJpeg", DEPRECATED_OP}
LOGITS = "softmax/logits:0"
SOFTMAX_WIDTH = 1008  # 1000 classes, and 8 ids that name none

# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------

ENTRY = re.compile(r"entry\s*\{([^}]*)\}")
TARGET_CLASS = re.compile(r"target_class\s*:\s*(\d+)")
TARGET_CLASS_STRING = re.compile(r"target_class_string\s*:\s*\"([^\"]*)\"")


def read_text(path):
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise plumbing.UserError(f"cannot read {path}: {error.strerror}") from None


class NodeLookup:
    """Converts integer node IDs to human readable labels."""

    def __init__(self, label_lookup_path, uid_lookup_path):
        self.node_lookup = self.load(label_lookup_path, uid_lookup_path)

    @staticmethod
    def load(label_lookup_path, uid_lookup_path):
        """{softmax node id: 'comma, separated, names'} from the two label files."""
        uid_to_human = {}
        for line in read_text(uid_lookup_path).splitlines():
            uid, _, human = line.strip().partition("\t")
            if not human:  # a file whose tab became spaces
                uid, _, human = line.strip().partition(" ")
            if uid:
                uid_to_human[uid] = human.strip()
        node_id_to_name = {}
        for entry in ENTRY.findall(read_text(label_lookup_path)):
            node_id, uid = TARGET_CLASS.search(entry), TARGET_CLASS_STRING.search(entry)
            if node_id and uid and uid.group(1) in uid_to_human:
                node_id_to_name[int(node_id.group(1))] = uid_to_human[uid.group(1)]
        if not node_id_to_name:
            raise plumbing.UserError(f"no labels could be read from {label_lookup_path} and "
                                     f"{uid_lookup_path}")
        return node_id_to_name

    def id_to_string(self, node_id):
        return self.node_lookup.get(int(node_id), f"unknown (id {node_id})")


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

def maybe_download_and_extract(model_dir):
    """Make sure the frozen graph and label files are in `model_dir`."""
    model_dir = Path(model_dir)
    if all((model_dir / name).exists() for name in (GRAPH_FILE, LABEL_MAP_FILE, SYNSET_FILE)):
        return
    tarball = downloads.fetch(INCEPTION_TARBALL, model_dir)
    # Extracted and checked in a folder of its own, then moved into place: a cut extraction
    # or a wrong tarball leaves nothing in model_dir that a later run would trust.
    with tempfile.TemporaryDirectory(prefix=".extracting-", dir=model_dir) as staging:
        staging = Path(staging)
        downloads.extract_archive(tarball, staging, TARBALL_CONTENTS, TARBALL_CONTENTS)
        for name in (GRAPH_FILE, LABEL_MAP_FILE, SYNSET_FILE):
            if not (staging / name).is_file():
                raise plumbing.UserError(f"{tarball} has no {name}; it is not the Inception "
                                         f"tarball (delete it and run again)")
        for member in PINNED_MEMBERS:
            problem = downloads.verification_problem(staging / member.name, member)
            if problem:
                raise plumbing.UserError(f"{tarball} holds a {member.name} of {problem}; it "
                                         f"is not the 2015 graph (delete it and run again)")
        for extracted in staging.iterdir():
            if not (model_dir / extracted.name).exists():  # a file of the user's stays
                os.replace(extracted, model_dir / extracted.name)


def create_graph(graph_path):
    """Import the frozen GraphDef into a graph of its own."""
    graph_def = tf.GraphDef()
    try:
        data = Path(graph_path).read_bytes()
        graph_def.ParseFromString(data)
    except OSError as error:
        raise plumbing.UserError(f"cannot read {graph_path}: {error.strerror}") from None
    except DecodeError:
        raise plumbing.UserError(f"{graph_path} is not a TensorFlow GraphDef") from None
    if hashlib.md5(data).hexdigest() != PINNED_MEMBERS[0].md5:  # the published graph is trusted
        tf_setup.refuse_unexpected_ops(graph_def, INCEPTION_OPS, graph_path, "Inception-v3")
    if any(node.op == DEPRECATED_OP for node in graph_def.node):
        print(f"note: this 2015 graph uses {DEPRECATED_OP}, which TensorFlow deprecated in "
              f"GraphDef version 9; the graph is version {graph_def.versions.producer}, so "
              f"TensorFlow 2 still runs it (its warning is not repeated here)", file=sys.stderr)
    graph = tf.Graph()
    with graph.as_default(), tf_setup.native_stderr_silenced():
        try:
            tf.import_graph_def(graph_def, name="")
        except (ValueError, tf.errors.OpError) as error:
            raise plumbing.UserError(f"{graph_path} cannot be loaded: "
                                     f"{str(error).splitlines()[0]}") from None
    for name in ("DecodeJpeg/contents:0", "softmax:0", "pool_3:0"):
        try:
            graph.get_tensor_by_name(name)
        except KeyError:
            raise plumbing.UserError(f"{graph_path} has no tensor {name}; it is not the "
                                     f"Inception-v3 classify_image graph") from None
    return graph


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

def jpeg_bytes(path):
    """The image file as JPEG bytes that DecodeJpeg reads upright: the file itself when it
    already is a plain RGB or grayscale JPEG, otherwise an RGB JPEG made from it."""
    with image_io.open_image(path) as image:
        plain = image.format == "JPEG" and image.mode in ("RGB", "L")
        if plain and image.getexif().get(0x0112, 1) in (0, 1):  # a JPEG's EXIF is in its header
            return Path(path).read_bytes()
    buffer = io.BytesIO()
    image_io.open_rgb(path).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------

def run_inference_on_image(sess, image_data, cam=None):
    """(1008 softmax scores, 2048 pool_3 features, and the Grad-CAM heatmap when `cam` is
    given as (heatmap, chosen, class or None)) of one JPEG, in one run."""
    fetches, feed = ["softmax:0", "pool_3:0"], {"DecodeJpeg/contents:0": image_data}
    if cam:
        heatmap, chosen, cam_class = cam
        fetches.append(heatmap)
        if cam_class is not None:
            feed[chosen] = [cam_class]
    predictions, features, *heatmaps = sess.run(fetches, feed)
    return np.squeeze(predictions), np.reshape(features, -1), \
        heatmaps[0][0] if heatmaps else None


def add_grad_cam(graph):
    """Grad-CAM ops on the imported graph: (heatmap, chosen class). Its gradient runs from the
    logits back to mixed_10 only, through pool_3 and the last layer; the batch norms of 2015
    lie before it and take no part."""
    with graph.as_default():
        logits = graph.get_tensor_by_name(LOGITS)
        maps = graph.get_tensor_by_name("pool_3:0").op.inputs[0]  # mixed_10/join, 8x8x2048
        chosen = tf.placeholder_with_default(tf.argmax(logits, 1, output_type=tf.int32),
                                             [None], name="cam_class")
        return gradcam.grad_cam(maps, logits, chosen), chosen


def bottleneck_paths(folder, images):
    """{image: DIR/FILE.npy} for --bottleneck (cat_jpg.npy for cat.jpg), a cache of features:
    a later run replaces the file of the same image. Two images of one file name (from two
    folders) are a command-line mistake."""
    if folder is None:
        return {}
    problem = plumbing.folder_problem(folder, "--bottleneck")
    paths, taken = {}, {}
    for image in images:
        path = Path(folder) / f"{Path(image).name.replace('.', '_')}.npy"
        if path in taken:
            problem = problem or (f"--bottleneck: {taken[path]} and {image} would both be "
                                  f"saved as {path}")
        paths[image], taken[path] = path, image
    if problem:
        raise plumbing.ArgumentMistake(problem)
    return paths


def save_cam(target, path, cam, predictions, node_lookup, shown):
    """The heatmap over the whole picture: the graph resizes all of it to 299x299, uncropped."""
    rgb = image_io.open_rgb(path)
    rgb.thumbnail((800, 800))
    name = node_lookup.id_to_string(shown).split(",")[0]
    gradcam.save_cam_figure(np.asarray(rgb), cam, f"{name} {predictions[shown]:.1%}", target)
    print(f"saved where the network looked for {name!r} to {target}")


def decode_error(error):
    """The line of a TensorFlow error that says what was wrong with the data."""
    lines = [line.strip() for line in error.message.splitlines()]
    said = [line for line in lines if line and not line.startswith(
        ("Graph execution error", "Detected at node", "Node:", "[["))]
    return said[0] if said else lines[0]


def top_predictions(predictions, node_lookup, count):
    top_k = predictions.argsort()[-count:][::-1]
    return ["%s (score = %.5f)" % (node_lookup.id_to_string(node_id), predictions[node_id])
            for node_id in top_k]


def classify(args):
    model_dir = Path(args.model_dir)
    images = args.image_file or [str(model_dir / "cropped_panda.jpg")]
    cam_paths = gradcam.cam_paths(args.cam, images, args.overwrite)
    features = bottleneck_paths(args.bottleneck, images)
    maybe_download_and_extract(model_dir)
    node_lookup = NodeLookup(model_dir / LABEL_MAP_FILE, model_dir / SYNSET_FILE)
    tf_setup.configure_devices(args.cpu)
    graph = create_graph(model_dir / GRAPH_FILE)
    cam = None
    if args.cam:
        names = [node_lookup.id_to_string(i) for i in range(SOFTMAX_WIDTH)]
        cam_class = None if args.cam_class is None else gradcam.class_index(names,
                                                                              args.cam_class)
        cam = (*add_grad_cam(graph), cam_class)
    unreadable = image_io.UnreadableImages(len(images))
    with tf_setup.new_session(graph) as sess:
        for image, data in unreadable.each(images, jpeg_bytes):
            try:
                # DecodeJpeg also logs its complaint natively; the line below says it once
                with tf_setup.native_stderr_silenced():
                    predictions, pool_3, heatmap = run_inference_on_image(sess, data, cam)
            except tf.errors.InvalidArgumentError as error:
                unreadable.report(f"{image} is damaged or truncated ({decode_error(error)})")
                continue
            if len(images) > 1:
                print(f"{image}:")
            print("\n".join(top_predictions(predictions, node_lookup, args.num_top_predictions)))
            if features:
                with plumbing.atomic_output(features[image]) as temporary:
                    np.save(temporary, pool_3.astype(np.float32))
                print(f"saved the {pool_3.size} bottleneck features to {features[image]}")
            if cam:
                shown = cam[2] if cam[2] is not None else int(np.argmax(predictions))
                save_cam(cam_paths[image], image, heatmap, predictions, node_lookup, shown)
    return unreadable.exit_code()


def main(argv=None):
    parser = plumbing.argument_parser(
        "Classify images with the 2015 Inception-v3 frozen graph.")
    parser.add_argument("--model_dir", "--model-dir",
                        default=plumbing.native_path("data/inception"),
                        help="where classify_image_graph_def.pb and the label files are, or "
                             "where the tarball is downloaded and extracted")
    parser.add_argument("--image_file", "--image-file", "--image", nargs="+", action="extend",
                        metavar="IMAGE", default=[],
                        help="images to classify (default: the tarball's cropped_panda.jpg)")
    parser.add_argument("--num_top_predictions", "--num-top-predictions", type=plumbing.count(1),
                        default=5, help="display this many predictions")
    parser.add_argument("--bottleneck", metavar="DIR", default=None,
                        help="also save each image's 2048 pool_3 features as DIR/FILE.npy "
                             "(cat_jpg.npy for cat.jpg), replaced when the image is run again")
    tf_setup.add_device_option(parser)
    gradcam.add_cam_arguments(parser, "the last 8x8 mixed layer")
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: classify(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
