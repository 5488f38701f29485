"""The files TensorFlow's 2015 Inception-v3 comes as, and the JPEG its graph reads, checked.

Holds INCEPTION_TARBALL (the inception-2015-12-05.tgz download and its mirrors) with
extract_checked, which extracts it safely into a folder of its own and checks the graph's and
the label map's checksums before anything is moved into place; read_labels, which parses the
two label files without the tutorial's fixed slicing (that broke on CRLF line ends, blank lines
or a missing final newline); read_graph_def and check_tensors, which refuse a graph file that is
not the classify_image graph, or holds an op it never uses, in one line; and jpeg_bytes and
decode_error, for images of any format fed to a graph that decodes only JPEG.
"""

import hashlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path

from book_support import downloads
from book_support import file_roles
from book_support import graph_checks
from book_support import image_io
from book_support import plumbing

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
TENSORS = ("DecodeJpeg/contents:0", "softmax:0", "pool_3:0")  # what the tutorial feeds and reads

# --------------------------------------------------------------------------------------------
# The tarball
# --------------------------------------------------------------------------------------------


def extract_checked(tarball, model_dir):
    """Extract the graph and the label files from `tarball` into `model_dir`."""
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


# --------------------------------------------------------------------------------------------
# The label files
# --------------------------------------------------------------------------------------------

ENTRY = re.compile(r"entry\s*\{([^}]*)\}")
TARGET_CLASS = re.compile(r"target_class\s*:\s*(\d+)")
TARGET_CLASS_STRING = re.compile(r"target_class_string\s*:\s*\"([^\"]*)\"")


def read_text(path):
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise plumbing.UserError(f"cannot read {path}: {error.strerror}") from None


def read_labels(label_lookup_path, uid_lookup_path):
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


# --------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------

def read_graph_def(graph_path):
    """The frozen GraphDef in `graph_path`, refused in one line if it is not one, or if it is
    not the published graph and holds an op Inception-v3 never uses."""
    import tensorflow.compat.v1 as tf
    from google.protobuf.message import DecodeError

    graph_def = tf.GraphDef()
    data = file_roles.read_bytes(graph_path, 2 * TARBALL_CONTENTS)  # not a pipe, not endless
    try:
        graph_def.ParseFromString(data)
    except DecodeError:
        raise plumbing.UserError(f"{graph_path} is not a TensorFlow GraphDef") from None
    if hashlib.md5(data).hexdigest() != PINNED_MEMBERS[0].md5:  # the published graph is trusted
        graph_checks.refuse_unexpected_ops(graph_def, graph_checks.INCEPTION_OPS, graph_path,
                                           "Inception-v3")
        graph_checks.refuse_huge_at_run_time(
            graph_def, [name.split(":")[0] for name in TENSORS], graph_path)
    if any(node.op == DEPRECATED_OP for node in graph_def.node):
        print(f"note: this 2015 graph uses {DEPRECATED_OP}, which TensorFlow deprecated in "
              f"GraphDef version 9; the graph is version {graph_def.versions.producer}, so "
              f"TensorFlow 2 still runs it (its warning is not repeated here)", file=sys.stderr)
    return graph_def


def check_tensors(graph, graph_path):
    for name in TENSORS:
        try:
            graph.get_tensor_by_name(name)
        except KeyError:
            raise plumbing.UserError(f"{graph_path} has no tensor {name}; it is not the "
                                     f"Inception-v3 classify_image graph") from None


# --------------------------------------------------------------------------------------------
# Images: the graph decodes JPEG only
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


def decode_error(error):
    """The line of a TensorFlow error that says what was wrong with the data."""
    lines = [line.strip() for line in error.message.splitlines()]
    said = [line for line in lines if line and not line.startswith(
        ("Graph execution error", "Detected at node", "Node:", "[["))]
    return said[0] if said else lines[0]
