"""The face detector (book_support/face_detector.py) on real photos: no boxes where there is no
face, and real faces found when the head is tilted (issue 32; bench/face_detector.py has the
whole measurement)."""

import sys

import numpy as np
import pytest
from PIL import Image

from conftest import PROJECT

sys.path.insert(0, str(PROJECT / "bench"))
from face_detector import PEOPLE  # noqa: E402  (the photos that show a person, by eye)

import emotion_test  # noqa: E402
from book_support import face_detector, faces  # noqa: E402

cv2 = pytest.importorskip("cv2", reason="the face detector needs opencv-python-headless")
TILTS = (-65, -60, -55, -50, 50, 55, 60, 65)


def test_photos_without_people_get_at_most_one_box_in_a_hundred(shared_data):
    paths = sorted(path for path in (shared_data / "dogs_vs_cats" / "train").glob("*.jpg")
                   if path.stem not in PEOPLE)
    boxes = {path.name: faces.detect_faces(cv2, emotion_test.read_gray(path))
             for path in paths}
    wrong = {name: found for name, found in boxes.items() if found}
    print(len(paths), "photos, boxes on", wrong)
    assert len(paths) == 585
    assert sum(map(len, wrong.values())) <= len(paths) / 100  # measured: 2


def tilted(gray, angle):
    return np.asarray(Image.fromarray(gray.astype(np.float32)).rotate(
        angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=128.0), np.float64)


def tilted_point(shape, point, angle):
    """Where (x, y) of an image of `shape` lands in tilted(image, angle)."""
    marker = np.zeros(shape)
    marker[point[1] - 2:point[1] + 3, point[0] - 2:point[0] + 3] = 255
    turned = tilted(marker, angle) - 128.0 * (tilted(np.zeros(shape), angle) > 0)
    y, x = np.unravel_index(np.argmax(turned), turned.shape)
    return x, y


def test_real_heads_tilted_50_to_65_degrees_are_found_as_upright_checks_alone_do_not(
        shared_data, monkeypatch):
    """The astronaut and the author (on a border: his photo is cropped too tight), turned by
    50-65 degrees either way: each face found is on the face."""
    images = shared_data / "images"
    astronaut = emotion_test.read_gray(images / "astronaut.png")
    author = np.pad(emotion_test.read_gray(images / "author_img.jpg"), 80, constant_values=225.0)
    heads = [(astronaut, (224, 113), 95),  # her face's centre and size (OpenCV's box)
             (author, (author.shape[1] // 2, author.shape[0] // 2), 150)]

    def found_faces():
        count = 0
        for head, centre, size in heads:
            for angle in TILTS:
                found = face_detector.detect(cv2, tilted(head, angle), faces.PHOTO_MIN_FACE)
                x, y = tilted_point(head.shape, centre, angle)
                for (left, top, width, height), _, turn in found:
                    assert abs(left + width / 2 - x) < size / 2, (angle, found, (x, y))
                    assert abs(top + height / 2 - y) < size / 2, (angle, found, (x, y))
                    assert abs(turn + angle) < 20, (angle, found)  # read turned back upright
                count += len(found)
        return count
    turned = found_faces()
    monkeypatch.setattr(face_detector, "ANGLES", (0,))
    upright = found_faces()
    print(f"found {turned} of {2 * len(TILTS)}; upright only {upright}")
    assert turned >= upright + 5  # measured: 7 against 0
