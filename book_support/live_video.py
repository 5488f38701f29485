"""emotion_test.py --video and --camera: every face of a video file or a webcam, frame by frame.

The book reads one photo. Here each frame goes the photo's way (emotion_test.py's own steps,
handed to run_live: the newest checkpoint, the restored network, the book's gray and the 48x48
crops, all of a frame's faces in one run), with what a video needs around it: faces found down
to --min-face pixels in any frame size, followed from frame to frame with their last readings
averaged so that a label does not flicker, and shown once found on two readings in a row, so
that a box the detector puts once on something else is not (FaceTracks); frames that fail to
decode skipped, the frames without a face counted, the annotated video written as Motion-JPEG
AVI, a live window where OpenCV has a GUI, and Ctrl-C (or `q`) ending it with the video written
so far playable.
"""

import os
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

import EmotionUtils
from book_support import faces, plumbing, tf_setup

SMOOTHING = 5         # readings of a face averaged for its label, so that it does not flicker
SAME_FACE = 0.3       # box overlap (intersection over union) that makes it the same face
LOST_AFTER = 10       # readings a face may be missed before it is forgotten
CONFIRM_AFTER = 2     # readings in a row a face must be found on before it is shown
MAX_BAD_FRAMES = 25   # frames in a row that fail to decode before a video is given up


class Face:
    """One face followed from frame to frame: its box and its last SMOOTHING readings."""

    def __init__(self, number, square):
        self.number, self.square, self.missed = number, square, 0
        self.readings = deque(maxlen=SMOOTHING)
        self.in_a_row, self.confirmed = 0, False

    def label(self):
        mean = np.mean(self.readings, axis=0)
        best = int(np.argmax(mean))
        return f"{self.number}: {EmotionUtils.emotion[best]} {mean[best]:.0%}"


class FaceTracks:
    """The faces in view: each new reading joins the face whose box it overlaps most; a face is
    shown once it has been found on CONFIRM_AFTER readings in a row."""

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
            # missed is 0 here for a face found on the reading before this one
            match.in_a_row = match.in_a_row + 1 if match.missed == 0 else 1
            match.confirmed = match.confirmed or match.in_a_row >= CONFIRM_AFTER
            match.square, match.missed = square, -1
            match.readings.append(score)
        for face in self.faces:
            face.missed += 1
        self.faces = [face for face in self.faces if face.missed <= LOST_AFTER]

    def in_view(self):
        return [face for face in self.faces if face.missed == 0 and face.confirmed]


def iou(a, b):
    """Intersection over union of two squares (left, top, size)."""
    shared = faces.overlap((a[0], a[1], a[2], a[2]), (b[0], b[1], b[2], b[2]))
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


def read_live(capture, every, min_face, should_stop, counted, rgb2gray, read_squares):
    """The live loop as a generator of annotated frames: yields (frame, faces in view) for each
    frame, reading the faces of `min_face` pixels or more (all of them in one run of
    `read_squares(gray, squares)`) on every `every`-th frame."""
    import cv2

    tracks = FaceTracks()
    for index, frame in frames_of(capture, counted):
        if should_stop():
            return
        if index % every == 0:
            gray = rgb2gray(frame[..., ::-1])  # OpenCV's frames are BGR
            height, width = gray.shape
            found = faces.separate_faces(faces.detect_faces(cv2, gray, min_face))
            squares = [faces.square_around(face, width, height) for face in found]
            scores = read_squares(gray, squares) if squares else []
            tracks.update(squares, scores)
            counted["read"] += 1
            counted["faces"] += len(squares)
            counted["no face"] += not squares
        yield frame, tracks.in_view()


def draw_faces(frame, tracked):
    """`frame` with each tracked face boxed and labelled, in place."""
    import cv2

    for face in tracked:
        left, top, size, angle = face.square
        orange = (0, 140, 255)
        # the square the face was read in, turned as it was read (clockwise, as y points down)
        corners = cv2.boxPoints(((left + size / 2, top + size / 2), (size, size), angle))
        cv2.polylines(frame, [np.round(corners).astype(np.int32)], True, orange, 2)
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
    """OpenCV and the opened --video or --camera, or one line saying why it cannot be read."""
    try:
        import cv2
    except ImportError:
        raise plumbing.UserError(f"--video and --camera need OpenCV and a face detector: "
                                 f"{faces.INSTALL}") from None
    if faces.opencv_with_detector() is None:
        raise plumbing.UserError(f"--video and --camera need a face detector: {faces.INSTALL}")
    if args.video is not None and "://" not in args.video and not Path(args.video).is_file():
        said = "is not a file" if Path(args.video).exists() else "does not exist"
        raise plumbing.UserError(f"{args.video} {said}")
    with tf_setup.native_stderr_silenced():  # OpenCV's own warnings, said once below
        capture = cv2.VideoCapture(args.video if args.video is not None else args.camera)
    if not capture.isOpened():
        raise plumbing.UserError(f"cannot open {args.video}: not a video OpenCV can read"
                                 if args.video is not None else
                                 f"no camera at index {args.camera}")
    return cv2, capture


def output_path(args):
    """--output, or VIDEO_emotions.avi / cameraN_emotions.avi (checked before any work, as
    every output is: book_support/file_roles.py)."""
    output = Path(args.output or (f"{Path(args.video).stem}_emotions.avi" if args.video
                                  else f"camera{args.camera}_emotions.avi"))
    if output.suffix.lower() != ".avi":  # what OpenCV writes here is Motion-JPEG in AVI
        raise plumbing.ArgumentMistake(f"--output {output}: the annotated video is a "
                                       f"Motion-JPEG AVI file; give a name ending in .avi")
    return output


def run_live(args, *, latest_checkpoint, restore, rgb2gray, crop_faces, read_faces):
    """Every frame of --video or --camera read, annotated and written; the keyword arguments
    are emotion_test.py's steps for a photo, so that a frame is read exactly as a photo is."""
    import tensorflow.compat.v1 as tf

    source = args.video if args.video is not None else f"camera {args.camera}"
    output = output_path(args)
    cv2, capture = open_capture(args)
    checkpoint = latest_checkpoint(args.logs_dir)
    tf_setup.configure_devices(args.cpu)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if args.video is not None else None
    print(f"{source}: {size[0]}x{size[1]} at {fps:g} frames/s; faces read every "
          f"{args.every} frame(s)")
    print(f"model: {checkpoint}")
    window = open_window(cv2, f"emotions: {source}")
    counted = {"bad": 0, "read": 0, "faces": 0, "no face": 0}
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

        def read_squares(gray, squares):
            return read_faces(sess, x, y_conv, crop_faces(gray, squares), args.tta)
        try:
            for frame, in_view in read_live(capture, args.every, args.min_face,
                                            lambda: ctrl_c.pressed, counted, rgb2gray,
                                            read_squares):
                writer.write(draw_faces(frame, in_view))
                frames += 1
                progress.update()
                if window:
                    cv2.imshow(window, frame)
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
        finally:
            # A stopped run's video ends here, and plays; after an error, the open file would
            # keep Windows from removing the unfinished video.
            writer.release()
            capture.release()
        progress.close()
    report(frames, time.monotonic() - started, counted, source, output, args.min_face)
    return 130 if ctrl_c.pressed else 0


def report(frames, seconds, counted, source, output, min_face):
    """The run's last lines: speed, faces read, frames skipped or without a face, where the
    video went."""
    print(f"{frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-9):.1f} frames/s); "
          f"faces read on {counted['read']} of them, {counted['faces']} faces in all")
    if counted["bad"]:
        print(f"{counted['bad']} frames could not be decoded and were skipped", file=sys.stderr)
    smallest = f"faces of {min_face} pixels or more were looked for (--min-face)"
    if not counted["faces"]:
        print(f"no face was found in {source}: {smallest}")
    elif counted["no face"]:
        print(f"no face on {counted['no face']} of the {counted['read']} frames read: "
              f"{smallest}")
    print(f"saved the annotated video to {output}")
