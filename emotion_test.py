"""Read the emotion on your own photo: the chapter's last listing (it names no file).

    python emotion_test.py author_img.jpg   # the chapter's author_image.jpg, as the code ships it
    python emotion_test.py me.png --logs-dir logs/EmotionDetector_logs --evaluations 1000
    python emotion_test.py --video party.mp4   # every face, frame by frame: party_emotions.avi

Restores the newest checkpoint that emotion_cnn.py wrote (or one laid out like the book's) with
`import_meta_graph`, feeds the face to `input:0` and prints `output:0` as the book's seven lines.
A photo with several faces gives each its lines, and a figure with each face boxed.
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

import functools
import os
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

import EmotionUtils
from book_support import gradcam
from book_support import image_io
from book_support import plumbing
from book_support import tf_setup
from book_support.checkpoints import CheckpointFolder, preferred_folder

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


def find_faces(gray):
    """Squares (left, top, size) around each face OpenCV finds, left to right, each with a
    description; the centre square when it finds none or is not installed."""
    height, width = gray.shape
    side = min(height, width)
    centre = [((width - side) // 2, (height - side) // 2, side)]
    try:
        import cv2
    except ImportError:
        return centre, ["the centre square (no face detector: pip install "
                        "'opencv-python-headless<5' to find faces)"]
    faces = separate_faces(detect_faces(cv2, gray))
    if not faces:
        return centre, ["the centre square (OpenCV found no face)"]
    # A little margin, as the training faces show the whole head; kept inside the photo.
    squares = [square_around(face, width, height) for face in faces]
    return squares, [f"the face OpenCV found at x={x}, y={y}, {w}x{h}" for x, y, w, h in faces]


@functools.lru_cache(maxsize=1)
def face_cascade(cv2):
    """OpenCV's frontal-face cascade, loaded once (a video asks for it on every frame)."""
    return cv2.CascadeClassifier(
        str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))


def detect_faces(cv2, gray):
    """(x, y, w, h) of each face OpenCV's frontal-face cascade finds."""
    found = face_cascade(cv2).detectMultiScale(np.clip(gray, 0, 255).astype(np.uint8),
                                               scaleFactor=1.1, minNeighbors=5,
                                               minSize=(24, 24))
    return [tuple(int(value) for value in face) for face in found]


def separate_faces(faces):
    """The faces left to right, without a box that lies mostly inside a larger one (the
    cascade sometimes finds a face again within a face)."""
    kept = []
    for face in sorted(faces, key=lambda f: -f[2] * f[3]):
        if all(overlap(face, larger) < 0.5 * face[2] * face[3] for larger in kept):
            kept.append(face)
    return sorted(kept)


def overlap(a, b):
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(width, 0) * max(height, 0)


def square_around(face, width, height):
    x, y, w, h = face
    size = min(int(max(w, h) * 1.2), width, height)
    left = int(np.clip(x + w / 2 - size / 2, 0, width - size))
    top = int(np.clip(y + h / 2 - size / 2, 0, height - size))
    return left, top, size


def face_inputs(gray):
    """The network's input (n, 48, 48, 1) in 0..1 for the n faces found, their squares, and a
    description of each crop."""
    squares, descriptions = find_faces(gray)
    return crop_faces(gray, squares), squares, descriptions


def crop_faces(gray, squares):
    """Each square of `gray` resized to 48x48, scaled to 0..1 as in training: (n, 48, 48, 1)."""
    from PIL import Image

    faces = []
    for left, top, size in squares:
        square = gray[top:top + size, left:left + size].astype(np.float32)
        small = Image.fromarray(square, mode="F").resize((IMAGE_SIZE, IMAGE_SIZE),
                                                         Image.Resampling.LANCZOS)
        faces.append(np.clip(np.asarray(small), 0, 255) / 255.0)
    return np.stack(faces).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1).astype(np.float32)


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


def read_faces(session, x, y_conv, faces, tta=False):
    """The probabilities of a batch of faces from one run; with `tta`, each averaged with its
    mirror image's (the same run, twice the batch)."""
    def scores_of(batch):
        return session.run(y_conv, feed_dict={x: batch})
    return EmotionUtils.mirror_averaged(scores_of, faces) if tta else scores_of(faces)


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
    faces, squares, crops = face_inputs(gray)
    checkpoint = latest_checkpoint(args.logs_dir)
    tf_setup.configure_devices(args.cpu)
    if len(faces) > 1:
        return read_every_face(args, gray.shape, faces, squares, checkpoint, figure)
    image, crop = faces, crops[0]
    print(f"photo: {args.photo} ({gray.shape[1]}x{gray.shape[0]}); face: {crop}")
    print(f"model: {checkpoint}")
    graph = tf.Graph()
    with graph.as_default(), tf_setup.new_session(graph) as sess:
        x, y_conv = restore(sess, checkpoint)
        first, cam = probabilities_and_cam(sess, x, y_conv, add_grad_cam(y_conv), image)
        random_graph = not np.allclose(first, probabilities(sess, x, y_conv, image))
        if args.tta:
            first = read_faces(sess, x, y_conv, image, tta=True)[0]
        if args.evaluations:
            tResult = count_predictions(sess, x, y_conv, image, args.evaluations)
            fractions = [count / args.evaluations for count in tResult.counts]
            title = f"winner of {args.evaluations} random passes"
            tResult.display_result(args.evaluations)
        else:
            fractions = first
            title = "probability (face and mirror averaged)" if args.tta else "probability"
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
# Beyond the book: every face in a photo
# --------------------------------------------------------------------------------------------

def read_every_face(args, shape, faces, squares, checkpoint, figure):
    """All the faces through the network in one run; each listed, and boxed in the figure."""
    print(f"photo: {args.photo} ({shape[1]}x{shape[0]}); {len(faces)} faces found by OpenCV")
    print(f"model: {checkpoint}")
    graph = tf.Graph()
    with graph.as_default(), tf_setup.new_session(graph) as sess:
        x, y_conv = restore(sess, checkpoint)
        scores = read_faces(sess, x, y_conv, faces, args.tta)
        if args.evaluations:
            scores = np.array([[count / args.evaluations for count in
                                count_predictions(sess, x, y_conv, face[None],
                                                  args.evaluations).counts] for face in faces])
    labels = []
    for number, ((left, top, size), fractions) in enumerate(zip(squares, scores), start=1):
        best = int(np.argmax(fractions))
        labels.append(f"{number}: {EmotionUtils.emotion[best]} {fractions[best]:.0%}")
        print(f"face {number} at x={left}, y={top}, {size}x{size}: "
              f"{EmotionUtils.emotion[best]}")
        print(EmotionUtils.format_emotions(fractions))
    save_boxed_photo(args.photo, squares, labels, figure)
    print(f"saved the figure to {figure}")
    return 0


def save_boxed_photo(photo, squares, labels, path):
    """The photo with a box and a label on each face."""
    from matplotlib.patches import Rectangle
    plt = plumbing.pyplot()
    rgb = np.asarray(image_io.open_rgb(photo))
    height, width = rgb.shape[:2]
    inches = min(12, max(width, height) / 100) / max(width, height)  # about the photo's pixels
    figure, axes = plt.subplots(figsize=(width * inches + 0.5, height * inches + 0.5))
    axes.imshow(rgb)
    for (left, top, size), label in zip(squares, labels):
        axes.add_patch(Rectangle((left, top), size, size, fill=False, color="tab:orange",
                                 linewidth=2))
        axes.text(left, max(top - 4, 0), label, color="white", fontsize=11, va="bottom",
                  bbox={"facecolor": "tab:orange", "edgecolor": "none", "pad": 2})
    axes.axis("off")
    figure.tight_layout()
    plumbing.save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# Beyond the book: a video file or a webcam, every face, frame by frame
# --------------------------------------------------------------------------------------------

SMOOTHING = 5         # readings of a face averaged for its label, so that it does not flicker
SAME_FACE = 0.3       # box overlap (intersection over union) that makes it the same face
LOST_AFTER = 10       # readings a face may be missed before it is forgotten
MAX_BAD_FRAMES = 25   # frames in a row that fail to decode before a video is given up
DETECT_WIDTH = 320    # frames are searched for faces at this width


class Face:
    """One face followed from frame to frame: its box and its last SMOOTHING readings."""

    def __init__(self, number, square):
        self.number, self.square, self.missed = number, square, 0
        self.readings = deque(maxlen=SMOOTHING)

    def label(self):
        mean = np.mean(self.readings, axis=0)
        best = int(np.argmax(mean))
        return f"{self.number}: {EmotionUtils.emotion[best]} {mean[best]:.0%}"


class FaceTracks:
    """The faces in view: each new reading joins the face whose box it overlaps most."""

    def __init__(self):
        self.faces, self.count = [], 0

    def update(self, squares, scores):
        waiting = list(self.faces)
        for square, score in zip(squares, scores):
            match = max(waiting, key=lambda face: iou(face.square, square), default=None)
            if match is None or iou(match.square, square) < SAME_FACE:
                self.count += 1
                match = Face(self.count, square)
                self.faces.append(match)
            else:
                waiting.remove(match)
            match.square, match.missed = square, -1
            match.readings.append(score)
        for face in self.faces:
            face.missed += 1
        self.faces = [face for face in self.faces if face.missed <= LOST_AFTER]

    def in_view(self):
        return [face for face in self.faces if face.missed == 0]


def iou(a, b):
    """Intersection over union of two squares (left, top, size)."""
    shared = overlap((a[0], a[1], a[2], a[2]), (b[0], b[1], b[2], b[2]))
    return shared / (a[2] ** 2 + b[2] ** 2 - shared)


def frames_of(capture, counted):
    """(index, BGR frame) for each frame; a frame that fails to decode mid-video is skipped
    and counted in `counted["bad"]`. Ends at the video's end or after MAX_BAD_FRAMES."""
    import cv2

    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    index, bad_in_a_row = 0, 0
    while bad_in_a_row < MAX_BAD_FRAMES:
        ok, frame = capture.read()
        if ok:
            bad_in_a_row = 0
            yield index, frame
        elif total <= 0 or index >= total - 1:
            return  # a camera that stopped, or the video's end
        else:
            counted["bad"] += 1
            bad_in_a_row += 1
        index += 1


def read_live(session, x, y_conv, capture, every, should_stop, counted, tta=False):
    """The optimiser-style generator of the live loop: yields (frame, faces in view) for each
    frame, reading the faces (all of them in one run) on every `every`-th frame."""
    import cv2

    tracks = FaceTracks()
    for index, frame in frames_of(capture, counted):
        if should_stop():
            return
        if index % every == 0:
            gray = frame[..., ::-1] @ LUMINANCE  # OpenCV's frames are BGR
            height, width = gray.shape
            squares = [square_around(face, width, height)
                       for face in separate_faces(detect_faces_fast(cv2, gray))]
            scores = read_faces(session, x, y_conv, crop_faces(gray, squares), tta) \
                if squares else []
            tracks.update(squares, scores)
            counted["read"] += 1
            counted["faces"] += len(squares)
        yield frame, tracks.in_view()


def detect_faces_fast(cv2, gray):
    """detect_faces on the frame shrunk to DETECT_WIDTH pixels across (the cascade's time
    grows with the pixels; a webcam's faces stay well above its 24-pixel least size)."""
    scale = gray.shape[1] / DETECT_WIDTH
    if scale <= 1:
        return detect_faces(cv2, gray)
    small = cv2.resize(gray.astype(np.float32), (DETECT_WIDTH, round(gray.shape[0] / scale)),
                       interpolation=cv2.INTER_AREA)
    return [tuple(round(value * scale) for value in face) for face in detect_faces(cv2, small)]


def draw_faces(frame, faces):
    import cv2

    for face in faces:
        left, top, size = face.square
        orange = (0, 140, 255)
        cv2.rectangle(frame, (left, top), (left + size, top + size), orange, 2)
        (width, height), _ = cv2.getTextSize(face.label(), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(top, height + 6)
        cv2.rectangle(frame, (left, top - height - 6), (left + width + 4, top), orange, -1)
        cv2.putText(frame, face.label(), (left + 2, top - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def open_window(cv2, title):
    """The window's title, or None after saying why there can be none."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        print("no live window: no display here (the annotated video is still written)")
        return None
    try:
        cv2.namedWindow(title)
        return title
    except cv2.error:
        print("no live window: this OpenCV has no GUI (opencv-python-headless); pip install "
              "opencv-python for one (the annotated video is still written)")
        return None


def open_capture(args):
    try:
        import cv2
    except ImportError:
        raise plumbing.UserError("--video and --camera need OpenCV: pip install "
                                 "'opencv-python-headless<5'") from None
    with tf_setup.native_stderr_silenced():  # OpenCV's own warnings, said once below
        capture = cv2.VideoCapture(args.video if args.video else args.camera)
    if not capture.isOpened():
        raise plumbing.UserError(f"cannot open {args.video}: not a video OpenCV can read"
                                 if args.video else f"no camera at index {args.camera}")
    return cv2, capture


def run_live(args):
    source = args.video or f"camera {args.camera}"
    output = Path(args.output or (f"{Path(args.video).stem}_emotions.avi" if args.video
                                  else f"camera{args.camera}_emotions.avi"))
    problem = plumbing.output_problem(output, "--output", args.overwrite)
    if problem:
        raise plumbing.ArgumentMistake(problem)
    cv2, capture = open_capture(args)
    checkpoint = latest_checkpoint(args.logs_dir)
    tf_setup.configure_devices(args.cpu)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if args.video else None
    print(f"{source}: {size[0]}x{size[1]} at {fps:g} frames/s; faces read every "
          f"{args.every} frame(s)")
    print(f"model: {checkpoint}")
    window = open_window(cv2, f"emotions: {source}")
    counted = {"bad": 0, "read": 0, "faces": 0}
    frames, started = 0, time.monotonic()
    graph = tf.Graph()
    with graph.as_default(), tf_setup.new_session(graph) as sess, plumbing.CtrlC() as ctrl_c, \
            plumbing.atomic_output(output) as temporary:
        x, y_conv = restore(sess, checkpoint)
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
        if not writer.isOpened():
            raise plumbing.UserError(f"cannot write the video {output}: OpenCV could not open "
                                     f"it for Motion-JPEG")
        progress = plumbing.Progress(total, "reading", unit=" frames")
        stop = lambda: ctrl_c.pressed  # noqa: E731
        for frame, faces in read_live(sess, x, y_conv, capture, args.every, stop, counted,
                                      args.tta):
            writer.write(draw_faces(frame, faces))
            frames += 1
            progress.update()
            if window:
                cv2.imshow(window, frame)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
        writer.release()  # a stopped run's video ends here, and plays
        capture.release()
        progress.close()
    seconds = time.monotonic() - started
    print(f"{frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-9):.1f} frames/s); "
          f"faces read on {counted['read']} of them, {counted['faces']} faces in all")
    if counted["bad"]:
        print(f"{counted['bad']} frames could not be decoded and were skipped", file=sys.stderr)
    if not counted["faces"]:
        print(f"no face was found in {source}")
    print(f"saved the annotated video to {output}")
    return 130 if ctrl_c.pressed else 0


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main(argv=None):
    parser = plumbing.argument_parser(
        "Read the emotion on a photo with the emotion CNN's newest checkpoint.")
    parser.add_argument("photo", nargs="?",
                        help="a photo of one face or several: JPEG, PNG, ... any mode")
    parser.add_argument("--logs-dir", "--logs_dir",
                        default=plumbing.native_path("logs/EmotionDetector_logs"),
                        help="where emotion_cnn.py saved its checkpoints")
    parser.add_argument("--evaluations", type=plumbing.count(1), default=None,
                        help="count N random predictions, as the book (for graphs with dropout "
                             "built in); default: one deterministic pass")
    parser.add_argument("--figure", default=None,
                        help="PNG of the input beside the probabilities, or of the photo with "
                             "each face boxed (default: PHOTO_emotions.png, a new file)")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --figure replace an existing file")
    tf_setup.add_device_option(parser)
    parser.add_argument("--tta", action="store_true",
                        help="average each face's probabilities with its mirror image's "
                             "(test-time augmentation: twice the network's work per face)")
    live = parser.add_argument_group("beyond the book: every face of a video or a webcam")
    source = live.add_mutually_exclusive_group()
    source.add_argument("--video", metavar="PATH", help="a video file OpenCV reads")
    source.add_argument("--camera", type=plumbing.count(0), metavar="N",
                        help="a webcam by index (0: the first)")
    live.add_argument("--output", metavar="PATH", default=None,
                      help="the annotated video, Motion-JPEG AVI (default: VIDEO_emotions.avi "
                           "or cameraN_emotions.avi, a new file)")
    live.add_argument("--every", type=plumbing.count(1), default=1, metavar="N",
                      help="read the faces on every Nth frame only, when the CPU cannot keep up")
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: photo_or_live(args), parser)


def photo_or_live(args):
    live = args.video is not None or args.camera is not None
    if live == (args.photo is not None):
        raise plumbing.ArgumentMistake("give a photo, or --video PATH, or --camera N")
    if args.tta and args.evaluations:
        raise plumbing.ArgumentMistake("--tta averages one deterministic pass with its mirror; "
                                       "--evaluations counts random passes: choose one")
    return run_live(args) if live else run(args)


if __name__ == "__main__":
    raise SystemExit(main())
