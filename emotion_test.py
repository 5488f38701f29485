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
The book's code comes first; what it does not have lives in book_support: finding the faces
(faces.py), checking a .meta before it runs (graph_checks.py), --tta's mirrored faces
(emotion_tta.py), the figures with Grad-CAM and the boxed photo (emotion_figure.py), and
--video / --camera (live_video.py); book_support/checkpoints.py finds the checkpoint (in best/
when early stopping kept one). The "Beyond the book" part at the end reads every face of a photo
in one run, and hands a video or a webcam to live_video with the book's steps.
"""

from pathlib import Path

import numpy as np

import EmotionUtils
from book_support import (emotion_figure, emotion_tta, faces, file_roles, graph_checks, image_io,
                          live_video, plumbing, tf_setup)
from book_support.checkpoints import CheckpointFolder, preferred_folder

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

IMAGE_SIZE = EmotionUtils.IMAGE_SIZE
LUMINANCE = np.array([0.299, 0.587, 0.114])  # the book's rgb2gray weights
BATCH = 100  # the book's repeated evaluations, this many in one run

# --------------------------------------------------------------------------------------------
# The book, 在您自己的图像上测试模型 (testing the model on your own image)
# --------------------------------------------------------------------------------------------


def rgb2gray(rgb):
    """The book's conversion: gray as a weighted sum of red, green and blue."""
    return rgb @ LUMINANCE


def read_gray(path):
    """Any photo as float grayscale 0..255, upright, with the book's luminance weights."""
    return rgb2gray(np.asarray(image_io.open_rgb(path), dtype=np.float64))


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
    from google.protobuf.message import DecodeError

    meta_graph = graph_checks.read_meta_graph(checkpoint + ".meta")
    graph = session.graph
    try:
        tf.train.import_meta_graph(meta_graph, clear_devices=True)
        x, y_conv = graph.get_tensor_by_name("input:0"), graph.get_tensor_by_name("output:0")
        if not graph_checks.is_emotion_network(x, y_conv, len(EmotionUtils.emotion)):
            raise ValueError("not the shapes of faces and emotions")
        saver = tf.train.Saver()
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, DecodeError, tf.errors.OpError):
        # ValueError: no variables, a bad graph; the others: a collection that does not decode
        raise plumbing.UserError(f"{checkpoint}.meta has no emotion network (input:0 of "
                                 f"{IMAGE_SIZE}x{IMAGE_SIZE} gray faces, output:0 of "
                                 f"{len(EmotionUtils.emotion)} emotions, and its weights)"
                                 ) from None
    if not list(Path(checkpoint).parent.glob(Path(checkpoint).name + ".data-*")):
        raise plumbing.UserError(f"{checkpoint} cannot be restored: its .data file is missing")
    try:
        saver.restore(session, checkpoint)
    except tf.errors.OpError as error:  # DataLossError, OutOfRangeError, NotFoundError, ...
        raise plumbing.UserError(f"{checkpoint} cannot be restored: its .index or .data file is "
                                 f"damaged ({type(error).__name__})") from None
    return x, y_conv


def face_inputs(gray):
    """The network's input (n, 48, 48, 1) in 0..1 for the n faces found, their squares, and a
    description of each crop."""
    squares, descriptions = faces.find_faces(gray)
    return crop_faces(gray, squares), squares, descriptions


def crop_faces(gray, squares):
    """Each Square of `gray` (its face upright) resized to 48x48, scaled to 0..1 as in
    training: (n, 48, 48, 1)."""
    from PIL import Image

    crops = []
    for square in squares:
        face = Image.fromarray(faces.upright_pixels(gray, square), mode="F")
        small = face.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
        crops.append(np.clip(np.asarray(small), 0, 255) / 255.0)
    return np.stack(crops).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1).astype(np.float32)


def probabilities(session, x, y_conv, image):
    """The seven probabilities of one face (1, 48, 48, 1), from one run."""
    return session.run(y_conv, feed_dict={x: image})[0]


def read_faces(session, x, y_conv, batch, tta=False):
    """The probabilities of a batch of faces; with `tta`, each averaged with its mirror
    image's (the same run, twice the batch)."""
    def scores_of(faces_in):
        return session.run(y_conv, feed_dict={x: faces_in})
    return emotion_tta.scores_in_batches(scores_of, batch, tta)


def count_predictions(session, x, y_conv, image, evaluations):
    """The book's tally: the winning label of each of `evaluations` random passes."""
    tResult = EmotionUtils.testResult()
    for start in range(0, evaluations, BATCH):
        batch = np.repeat(image, min(BATCH, evaluations - start), axis=0)
        for label in np.argmax(session.run(y_conv, feed_dict={x: batch}), axis=1):
            tResult.evaluate(label)
    return tResult


# --------------------------------------------------------------------------------------------
# The book, 源代码 (source code): the listing's steps in its order, for one face
# --------------------------------------------------------------------------------------------

def run(args):
    """The photo in gray, the network restored, its answer in the book's seven lines; then
    the figure. A photo of several faces goes to read_every_face after the same first steps."""
    figure = figure_path(args)
    gray = read_gray(args.photo)
    image, squares, crops = face_inputs(gray)
    checkpoint = latest_checkpoint(args.logs_dir)
    tf_setup.configure_devices(args.cpu)
    if len(image) > 1:
        return read_every_face(args, gray.shape, image, squares, checkpoint, figure)
    print(f"photo: {args.photo} ({gray.shape[1]}x{gray.shape[0]}); face: {crops[0]}")
    print(f"model: {checkpoint}")
    graph = tf.Graph()
    with graph.as_default(), tf_setup.new_session(graph) as sess:
        x, y_conv = restore(sess, checkpoint)
        # The Grad-CAM heatmap comes from the same run as the answer, so it explains that one.
        first, cam = emotion_figure.probabilities_and_cam(
            sess, x, y_conv, emotion_figure.add_grad_cam(y_conv), image)
        # Only a graph with dropout built in (the book's) answers a second pass differently.
        random_graph = not np.allclose(first, probabilities(sess, x, y_conv, image))
        if args.tta:
            first = read_faces(sess, x, y_conv, image, tta=True)[0]
        if args.evaluations and not random_graph:
            say_the_same_every_time(args.evaluations)
        if args.evaluations and random_graph:
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
    emotion_figure.save_face_figure(image, fractions, EmotionUtils.emotion, title, figure, cam,
                                    looked_for)
    print(f"saved the figure to {figure}")
    return 0


# --------------------------------------------------------------------------------------------
# Beyond the book: the figure's name, every face of a photo, a video or a webcam
# --------------------------------------------------------------------------------------------

def figure_path(args):
    """--figure, or PHOTO_emotions.png (checked before any work, as every output is:
    book_support/file_roles.py)."""
    return Path(args.figure or f"{Path(args.photo).stem}_emotions.png")


def outputs(args):
    """What a run writes, for file_roles' check: the figure of a photo, a video's annotated
    copy."""
    if args.photo:
        return [("--figure", figure_path(args))]
    if args.video is not None or args.camera is not None:
        return [("--output", live_video.output_path(args))]
    return []


def read_every_face(args, shape, batch, squares, checkpoint, figure):
    """All the faces through the network in one run; each listed, and boxed in the figure."""
    print(f"photo: {args.photo} ({shape[1]}x{shape[0]}); {len(batch)} faces found by OpenCV")
    print(f"model: {checkpoint}")
    graph = tf.Graph()
    with graph.as_default(), tf_setup.new_session(graph) as sess:
        x, y_conv = restore(sess, checkpoint)
        scores = read_faces(sess, x, y_conv, batch, args.tta)
        random_graph = args.evaluations and not np.allclose(
            scores, read_faces(sess, x, y_conv, batch, args.tta))
        if args.evaluations and not random_graph:
            say_the_same_every_time(args.evaluations)
        if random_graph:
            scores = np.array([[count / args.evaluations for count in
                                count_predictions(sess, x, y_conv, face[None],
                                                  args.evaluations).counts] for face in batch])
    labels = []
    for number, ((left, top, size, _), fractions) in enumerate(zip(squares, scores), start=1):
        best = int(np.argmax(fractions))
        labels.append(f"{number}: {EmotionUtils.emotion[best]} {fractions[best]:.0%}")
        print(f"face {number} at x={left}, y={top}, {size}x{size}: "
              f"{EmotionUtils.emotion[best]}")
        print(EmotionUtils.format_emotions(fractions))
    emotion_figure.save_boxed_photo(args.photo, squares, labels, figure)
    print(f"saved the figure to {figure}")
    return 0


def say_the_same_every_time(evaluations):
    print(f"note: this network answers the same on every pass (it has no dropout built in), "
          f"so {evaluations} evaluations would count one answer {evaluations} times; its "
          f"probabilities instead:")


AUTHOR_PHOTOS = ("author_image.jpg", "author_img.jpg")  # the chapter's name, the code's


def either_author_name(photo):
    """The author's photo under the name it has here, when it was asked for by the other one
    (the chapter and the book's code name it differently); any other photo as it is."""
    if photo is None or Path(photo).exists() or Path(photo).name not in AUTHOR_PHOTOS:
        return photo
    other = Path(photo).with_name(next(name for name in AUTHOR_PHOTOS
                                       if name != Path(photo).name))
    if not other.exists():
        return photo
    print(f"note: {photo} is not here; reading {other}, the same photo under the book's other "
          f"name")
    return str(other)


def run_live(args):
    """--video or --camera: each frame read with the book's steps above, as a photo is."""
    return live_video.run_live(args, latest_checkpoint=latest_checkpoint, restore=restore,
                               rgb2gray=rgb2gray, crop_faces=crop_faces, read_faces=read_faces)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main(argv=None):
    parser = plumbing.argument_parser(
        "Read the emotion on a photo with the emotion CNN's newest checkpoint.")
    file_roles.reads(parser.add_argument(
        "photo", nargs="?", help="a photo of one face or several: JPEG, PNG, ... any mode"))
    file_roles.reads(parser.add_argument(
        "--logs-dir", "--logs_dir", default=plumbing.native_path("logs/EmotionDetector_logs"),
        help="where emotion_cnn.py saved its checkpoints"), file_roles.FOLDER)
    photo_only(parser.add_argument("--evaluations", type=plumbing.count(1), default=None,
                        help="count N random predictions, as the book (for graphs with dropout "
                             "built in); default: one deterministic pass"))
    photo_only(file_roles.writes(parser.add_argument(
        "--figure", default=None, help="PNG of the input beside the probabilities, or of the "
        "photo with each face boxed (default: PHOTO_emotions.png, a new file)")))
    parser.add_argument("--overwrite", action="store_true",
                        help="let --figure replace an existing file")
    tf_setup.add_device_option(parser)
    parser.add_argument("--tta", action="store_true",
                        help="average each face's probabilities with its mirror image's "
                             "(test-time augmentation: twice the network's work per face)")
    live = parser.add_argument_group("beyond the book: every face of a video or a webcam")
    source = live.add_mutually_exclusive_group()
    file_roles.reads(source.add_argument("--video", metavar="PATH",
                                         help="a video file OpenCV reads"))
    source.add_argument("--camera", type=plumbing.count(0), metavar="N",
                        help="a webcam by index (0: the first)")
    live_only(file_roles.writes(live.add_argument(
        "--output", metavar="PATH", default=None, help="the annotated video, Motion-JPEG AVI "
        "(default: VIDEO_emotions.avi or cameraN_emotions.avi, a new file)")))
    live_only(live.add_argument(
        "--every", type=plumbing.count(1), default=1, metavar="N",
        help="read the faces on every Nth frame only, when the CPU cannot keep up"))
    live_only(live.add_argument(
        "--min-face", type=plumbing.count(faces.SMALLEST), default=faces.VIDEO_MIN_FACE,
        metavar="PIXELS", help="the smallest face looked for, in any frame size (default: "
                               "%(default)s; smaller is slower)"))
    file_roles.also_writes(parser, outputs)
    args = parser.parse_args(argv)
    args.photo = either_author_name(args.photo)
    return plumbing.run_reporting_errors(lambda: photo_or_live(args), parser)


def photo_only(action):
    return plumbing.applies_only(action, "to a photo", lambda args: args.photo is not None)


def live_only(action):
    return plumbing.applies_only(action, "with --video or --camera",
                                 lambda args: args.video is not None or args.camera is not None)


def photo_or_live(args):
    live = args.video is not None or args.camera is not None
    if live == (args.photo is not None):
        raise plumbing.ArgumentMistake("give a photo, or --video PATH, or --camera N")
    if args.video == "":
        raise plumbing.ArgumentMistake("--video needs the path of a video file")
    if args.tta and args.evaluations:
        raise plumbing.ArgumentMistake("--tta averages one deterministic pass with its mirror; "
                                       "--evaluations counts random passes: choose one")
    return run_live(args) if live else run(args)


if __name__ == "__main__":
    raise SystemExit(main())
