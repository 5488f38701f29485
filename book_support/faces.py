"""emotion_test.py's face finding: where the faces are in a photo or a video frame.

The book feeds the whole photo to the network; here OpenCV's frontal-face cascade finds each
face first (when OpenCV is installed), and the centre square stands in when it finds none.
find_faces is the photo's entry; detect_faces_fast is a video frame's (live_video.py). The
cascade is imported inside the functions, so the scripts run without OpenCV.
"""

import functools
from pathlib import Path

import numpy as np

DETECT_WIDTH = 320    # video frames are searched for faces at this width


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


def detect_faces_fast(cv2, gray):
    """detect_faces on the frame shrunk to DETECT_WIDTH pixels across (the cascade's time
    grows with the pixels; a webcam's faces stay well above its 24-pixel least size)."""
    scale = gray.shape[1] / DETECT_WIDTH
    if scale <= 1:
        return detect_faces(cv2, gray)
    small = cv2.resize(gray.astype(np.float32), (DETECT_WIDTH, round(gray.shape[0] / scale)),
                       interpolation=cv2.INTER_AREA)
    return [tuple(round(value * scale) for value in face) for face in detect_faces(cv2, small)]


def separate_faces(faces):
    """The faces left to right, without a box that lies mostly inside a larger one (the
    cascade sometimes finds a face again within a face)."""
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
    """The square (left, top, size) a little larger than the box `face`, inside the picture."""
    x, y, w, h = face
    size = min(int(max(w, h) * 1.2), width, height)
    left = int(np.clip(x + w / 2 - size / 2, 0, width - size))
    top = int(np.clip(y + h / 2 - size / 2, 0, height - size))
    return left, top, size
