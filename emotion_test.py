"""Read the emotion on your own photo: the chapter's last listing (it names no file).

    python emotion_test.py author_img.jpg   # the chapter's author_image.jpg, as the code ships it
    python emotion_test.py me.png --logs-dir logs/EmotionDetector_logs --evaluations 1000

Restores the newest checkpoint that emotion_cnn.py wrote (or one laid out like the book's) with
`import_meta_graph`, feeds the face to `input:0` and prints `output:0` as the book's seven lines.
What changed, and why:
  * The book squeezed the photo into 48x48 with `np.resize`, which repeats or cuts pixel data
    instead of scaling, and fed it unscaled 0..255 to a network trained on 0..1. Here the face
    is found (OpenCV, when installed) or the centre square taken, really resized, and scaled as
    in training.
  * Any photo works: JPEG or PNG, RGB, RGBA, palette, grayscale, 16-bit, EXIF-rotated.
  * A network trained by emotion_cnn.py is deterministic, so one pass gives the probabilities,
    and, from the same run, a Grad-CAM panel of where on the face the net found that emotion.
    The book's own graph has dropout baked in; for such a graph `--evaluations N` counts N
    random predictions, as the book did with 1000.
"""

from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

import EmotionUtils
import gradcam
import image_io
import plumbing
import tf_setup
from checkpoints import CheckpointFolder, preferred_folder

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

IMAGE_SIZE = EmotionUtils.IMAGE_SIZE
LUMINANCE = np.array([0.299, 0.587, 0.114])  # the book's rgb2gray weights
BATCH = 100

# --------------------------------------------------------------------------------------------
# The photo
# --------------------------------------------------------------------------------------------


def read_gray(path):
    """Any photo as float grayscale 0..255, upright, with the book's luminance weights."""
    return np.asarray(image_io.open_rgb(path), dtype=np.float64) @ LUMINANCE


def find_face(gray):
    """(x, y, size) of a square around the largest face OpenCV finds, and what was used."""
    height, width = gray.shape
    side = min(height, width)
    centre = ((width - side) // 2, (height - side) // 2, side)
    try:
        import cv2
    except ImportError:
        return centre, ("the centre square (no face detector: pip install "
                        "'opencv-python-headless<5' to find faces)")
    cascade = cv2.CascadeClassifier(
        str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    faces = cascade.detectMultiScale(np.clip(gray, 0, 255).astype(np.uint8), scaleFactor=1.1,
                                     minNeighbors=5, minSize=(24, 24))
    if len(faces) == 0:
        return centre, "the centre square (OpenCV found no face)"
    x, y, w, h = max(faces, key=lambda face: face[2] * face[3])
    # A little margin, as the training faces show the whole head; kept inside the photo.
    size = min(int(max(w, h) * 1.2), side)
    left = int(np.clip(x + w / 2 - size / 2, 0, width - size))
    top = int(np.clip(y + h / 2 - size / 2, 0, height - size))
    return (left, top, size), f"the face OpenCV found at x={x}, y={y}, {w}x{h}"


def face_input(gray):
    """The network's input (1, 48, 48, 1) in 0..1, and a description of the crop."""
    from PIL import Image

    (left, top, size), description = find_face(gray)
    square = gray[top:top + size, left:left + size].astype(np.float32)
    small = Image.fromarray(square, mode="F").resize((IMAGE_SIZE, IMAGE_SIZE),
                                                     Image.Resampling.LANCZOS)
    face = np.clip(np.asarray(small), 0, 255) / 255.0
    return face.reshape(1, IMAGE_SIZE, IMAGE_SIZE, 1).astype(np.float32), description


# --------------------------------------------------------------------------------------------
# The trained network
# --------------------------------------------------------------------------------------------

def latest_checkpoint(logs_dir):
    """The newest checkpoint prefix in `logs_dir` (in its best/ folder when early stopping kept
    one there), also when its `checkpoint` file names paths from another machine."""
    logs_dir = preferred_folder(logs_dir)
    latest = CheckpointFolder(logs_dir, None, "--logs-dir").newest()
    if latest is None:
        raise plumbing.UserError(f"no checkpoint in {logs_dir}: train one with "
                                 f"python emotion_cnn.py --logs-dir {logs_dir}")
    if not Path(latest + ".meta").exists():
        raise plumbing.UserError(f"{latest}.meta is missing: the graph cannot be rebuilt")
    return latest


def restore(session, checkpoint):
    """The network of `checkpoint`: its graph from the .meta file, checked to hold only what an
    emotion network needs, and its weights restored by a saver of our own (the file's saver
    could be told to write anywhere)."""
    meta_graph = read_meta_graph(checkpoint + ".meta")
    graph = session.graph
    try:
        tf.train.import_meta_graph(meta_graph, clear_devices=True)
        x, y_conv = graph.get_tensor_by_name("input:0"), graph.get_tensor_by_name("output:0")
        saver = tf.train.Saver()
    except (KeyError, ValueError, tf.errors.OpError):  # ValueError: no variables, bad graph
        raise plumbing.UserError(f"{checkpoint}.meta has no emotion network (input:0, output:0 "
                                 f"and its weights)") from None
    if not list(Path(checkpoint).parent.glob(Path(checkpoint).name + ".data-*")):
        raise plumbing.UserError(f"{checkpoint} cannot be restored: its .data file is missing")
    try:
        saver.restore(session, checkpoint)
    except tf.errors.OpError as error:  # DataLossError, OutOfRangeError, NotFoundError, ...
        raise plumbing.UserError(f"{checkpoint} cannot be restored: its .index or .data file is "
                                 f"damaged ({type(error).__name__})") from None
    return x, y_conv


# What an emotion network, its training and its saver need beyond tensor math: variables of
# both kinds (TF1's in the book's .meta), Adam, random initialisers and dropout, tf.cond,
# --augment's crops, gradients, summaries and the save/restore ops.
EMOTION_OPS = tf_setup.TENSOR_MATH_OPS | frozenset("""
    VariableV2 Assign AssignAdd AssignSub IsVariableInitialized ApplyAdam VarHandleOp
    ReadVariableOp AssignVariableOp AssignAddVariableOp AssignSubVariableOp VarIsInitializedOp
    ResourceApplyAdam RandomUniform RandomStandardNormal TruncatedNormal If StatelessIf
    StatelessRandomGetKeyCounter StatelessRandomUniformV2 MirrorPad CropAndResize OptionalNone
    OptionalFromValue OptionalGetValue
    Conv2DBackpropFilter Conv2DBackpropInput BiasAddGrad MaxPoolGrad ReluGrad
    FusedBatchNormGrad FusedBatchNormGradV3 ScalarSummary HistogramSummary ImageSummary
    MergeSummary SaveV2 RestoreV2 MergeV2Checkpoints ShardedFilename StringJoin
    """.split())
SAVER_WRITES = frozenset({"SaveV2", "MergeV2Checkpoints"})


def read_meta_graph(path):
    meta_graph = tf.MetaGraphDef()
    try:
        meta_graph.ParseFromString(Path(path).read_bytes())
    except OSError as error:
        raise plumbing.UserError(f"cannot read {path}: {error.strerror}") from None
    except DecodeError:
        meta_graph.Clear()
    if not meta_graph.graph_def.node:  # an empty file parses, as an empty graph
        raise plumbing.UserError(f"{path} is damaged: it is not a TensorFlow graph")
    tf_setup.refuse_unexpected_ops(meta_graph.graph_def, EMOTION_OPS, path,
                                   "an emotion network")
    graph_def = meta_graph.graph_def
    if SAVER_WRITES & (ops_needed_by(graph_def, "output") | function_ops(graph_def)):
        raise plumbing.UserError(f"{path} is refused: its output:0 would run a save op; only "
                                 f"run graph files you trust")
    return meta_graph


def ops_needed_by(graph_def, name):
    """The op types that running node `name` runs: its inputs and control inputs, all the way
    back."""
    nodes = {node.name: node for node in graph_def.node}
    needed, waiting = set(), [name]
    while waiting:
        current = waiting.pop()
        if current in nodes and current not in needed:
            needed.add(current)
            waiting.extend(given.lstrip("^").split(":")[0] for given in nodes[current].input)
    return {nodes[each].op for each in needed}


def function_ops(graph_def):
    """The op types inside `graph_def`'s functions (a tf.cond's branches)."""
    return {node.op for function in graph_def.library.function
            for node in function.node_def}


def probabilities(session, x, y_conv, image):
    return session.run(y_conv, feed_dict={x: image})[0]


def count_predictions(session, x, y_conv, image, evaluations):
    """The book's tally: the winning label of each of `evaluations` random passes."""
    tResult = EmotionUtils.testResult()
    for start in range(0, evaluations, BATCH):
        batch = np.repeat(image, min(BATCH, evaluations - start), axis=0)
        for label in np.argmax(session.run(y_conv, feed_dict={x: batch}), axis=1):
            tResult.evaluate(label)
    return tResult


def run(args):
    figure = Path(args.figure or f"{Path(args.photo).stem}_emotions.png")
    problem = plumbing.output_problem(figure, "--figure", args.overwrite)
    if problem:
        raise plumbing.ArgumentMistake(problem)
    gray = read_gray(args.photo)
    image, crop = face_input(gray)
    checkpoint = latest_checkpoint(args.logs_dir)
    tf_setup.configure_devices(args.cpu)
    print(f"photo: {args.photo} ({gray.shape[1]}x{gray.shape[0]}); face: {crop}")
    print(f"model: {checkpoint}")
    graph = tf.Graph()
    with graph.as_default(), tf_setup.new_session(graph) as sess:
        x, y_conv = restore(sess, checkpoint)
        first, cam = probabilities_and_cam(sess, x, y_conv, add_grad_cam(y_conv), image)
        random_graph = not np.allclose(first, probabilities(sess, x, y_conv, image))
        if args.evaluations:
            tResult = count_predictions(sess, x, y_conv, image, args.evaluations)
            fractions = [count / args.evaluations for count in tResult.counts]
            title = f"winner of {args.evaluations} random passes"
            tResult.display_result(args.evaluations)
        else:
            fractions, title = first, "probability"
            print(EmotionUtils.format_emotions(fractions))
            if random_graph:
                print("note: this model's answer changes from run to run (its graph has dropout "
                      "built in, like the book's); --evaluations 1000 counts like the book")
    looked_for = EmotionUtils.emotion[int(np.argmax(first))]
    save_figure(image, fractions, title, figure, cam, looked_for)
    print(f"saved the figure to {figure}")
    return 0


# --------------------------------------------------------------------------------------------
# Beyond the book: where on the face the network looked, and the figure
# --------------------------------------------------------------------------------------------

def last_feature_maps(y_conv):
    """The last 4-D maps before the dense layers: the input of the Reshape that flattens them
    (h_pool2, 12x12x64, in emotion_cnn.py's graph and in the book's)."""
    waiting, seen = [y_conv.op], set()
    while waiting:
        op = waiting.pop(0)
        if op.type == "Reshape" and op.inputs[0].shape.ndims == 4:
            return op.inputs[0]
        seen.add(op.name)
        waiting += [tensor.op for tensor in op.inputs if tensor.op.name not in seen]
    raise plumbing.UserError("this model has no 4-D feature maps to look inside")


def add_grad_cam(y_conv):
    """Grad-CAM of the top emotion on the last feature maps, for the restored graph."""
    logits = y_conv.op.inputs[0] if y_conv.op.type == "Softmax" else y_conv
    with y_conv.graph.as_default():
        chosen = tf.argmax(logits, 1, output_type=tf.int32)
        return gradcam.grad_cam(last_feature_maps(y_conv), logits, chosen)


def probabilities_and_cam(session, x, y_conv, heatmap, image):
    """The probabilities and where the net looked for the top one, from one run."""
    scores, cam = session.run([y_conv, heatmap], feed_dict={x: image})
    return scores[0], cam[0]


def save_figure(face, fractions, title, path, cam, looked_for):
    plt = plumbing.pyplot()
    names = [EmotionUtils.emotion[i] for i in range(len(fractions))]
    figure, (face_axes, cam_axes, bar_axes) = plt.subplots(
        1, 3, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1, 1.25, 1.6]})
    pixels = face.reshape(IMAGE_SIZE, IMAGE_SIZE)
    face_axes.imshow(pixels, cmap="gray", vmin=0, vmax=1)
    face_axes.set_title("network input (48x48)")
    face_axes.axis("off")
    gradcam.draw_cam(cam_axes, (pixels * 255).astype(np.uint8), cam,
                      f"where it looked for {looked_for}")
    bars = bar_axes.barh(names[::-1], [f * 100 for f in fractions][::-1], color="tab:blue")
    bars[len(names) - 1 - int(np.argmax(fractions))].set_color("tab:orange")
    bar_axes.set(xlim=(0, 100), xlabel="%", title=title)
    figure.tight_layout()
    plumbing.save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main(argv=None):
    parser = plumbing.argument_parser(
        "Read the emotion on a photo with the emotion CNN's newest checkpoint.")
    parser.add_argument("photo", help="a photo of one face: JPEG, PNG, ... any mode")
    parser.add_argument("--logs-dir", "--logs_dir", default="logs/EmotionDetector_logs",
                        help="where emotion_cnn.py saved its checkpoints")
    parser.add_argument("--evaluations", type=plumbing.count(1), default=None,
                        help="count N random predictions, as the book (for graphs with dropout "
                             "built in); default: one deterministic pass")
    parser.add_argument("--figure", default=None,
                        help="PNG of the input beside the probabilities "
                             "(default: PHOTO_emotions.png, a new file)")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --figure replace an existing file")
    tf_setup.add_device_option(parser)
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: run(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
