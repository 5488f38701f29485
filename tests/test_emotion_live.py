"""emotion_test.py beyond one photo: --video and --camera, every face, frame by frame (issue 22).

These tests give the detector the bright squares of a generated video; the real detector is
tested on drawn faces in test_faces.py, and on real faces in acceptance/."""

import os
import signal

import numpy as np
import pytest

import emotion_test
from book_support import faces, live_video
from conftest import PROJECT, posix_only, run_script

cv2 = pytest.importorskip("cv2", reason="--video needs opencv-python-headless "
                                        "(requirements-dev.txt)")

SIZE = (320, 240)


def write_video(path, frames=24, faces=2, step=3, size=SIZE, side=60, with_faces=None):
    """Bright `side`-pixel squares moving right `step` pixels a frame over a dark background;
    on the frames `with_faces` only, when given."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    for index in range(frames):
        frame = np.full((size[1], size[0], 3), 40, np.uint8)
        for number in range(faces if with_faces is None or index in with_faces else 0):
            left, top = 10 + 150 * number + step * index, 60 + 40 * number
            frame[top:top + side, left:left + side] = 230
        writer.write(frame)
    writer.release()
    return path


def bright_squares(cv2, gray, min_face=faces.PHOTO_MIN_FACE):
    """The stand-in detector: each bright square of at least `min_face` pixels."""
    from scipy import ndimage
    labels, _ = ndimage.label(gray > 150)
    found = [(found[1].start, found[0].start, found[1].stop - found[1].start,
              found[0].stop - found[0].start) for found in ndimage.find_objects(labels)]
    return [box for box in found if min(box[2:]) >= min_face]


@pytest.fixture
def logs(book_trained):
    return book_trained.logs


@pytest.fixture
def detector(monkeypatch):
    calls = []

    def detect(cv2, gray, min_face=faces.PHOTO_MIN_FACE):
        calls.append((gray.shape, min_face))
        return bright_squares(cv2, gray, min_face)
    monkeypatch.setattr(faces, "detect_faces", detect)
    return calls


def frames_in(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def test_every_frame_is_written_with_each_face_boxed(logs, tmp_path, detector, capsys):
    video = write_video(tmp_path / "walk.avi")
    output = tmp_path / "walk_boxed.avi"
    assert emotion_test.main(["--video", str(video), "--logs-dir", str(logs), "--output",
                              str(output)]) == 0
    out = capsys.readouterr().out
    assert "faces read on 24 of them, 48 faces in all" in out
    frames = frames_in(output)
    assert len(frames) == 24 and frames[0].shape == (SIZE[1], SIZE[0], 3)
    # A face is boxed once found on two readings in a row: from the second frame on.
    assert not orange_columns(frames[0]).size
    # The boxes follow the faces: the first face's box has moved 12 frames x 3 pixels.
    assert abs((orange_columns(frames[13]).min() - orange_columns(frames[1]).min()) - 36) <= 3


def orange_columns(frame):
    """The columns of `frame` where a face's orange box is drawn."""
    return np.flatnonzero((np.abs(frame.astype(int) - (0, 140, 255)).sum(axis=2) < 60)
                          .any(axis=0))


def test_every_reads_the_faces_on_every_nth_frame_only(logs, tmp_path, detector, capsys):
    video = write_video(tmp_path / "walk.avi", frames=22)
    assert emotion_test.main(["--video", str(video), "--logs-dir", str(logs), "--output",
                              str(tmp_path / "out.avi"), "--every", "4"]) == 0
    assert [shape for shape, _ in detector] == [(SIZE[1], SIZE[0])] * 6  # 0, 4, ... 20
    assert "faces read on 6 of them" in capsys.readouterr().out
    assert len(frames_in(tmp_path / "out.avi")) == 22  # every frame is still written


def test_a_face_keeps_its_number_and_its_label_does_not_flicker():
    tracks = live_video.FaceTracks()
    happy, sad = np.eye(7)[3], np.eye(7)[4]
    labels = []
    for step in range(12):
        noisy = 0.7 * happy + 0.3 * sad if step % 3 else 0.3 * happy + 0.7 * sad  # 1 in 3: sad
        tracks.update([(10 + 4 * step, 20, 60), (200 - 4 * step, 30, 50)], [noisy, sad])
        labels.append([face.label() for face in tracks.in_view()])
    assert labels[0] == []  # shown from their second reading on
    numbers = {label.split(":")[0] for frame in labels for label in frame}
    assert numbers == {"1", "2"}  # two faces, followed, never renumbered
    assert all("happy" in frame[0] for frame in labels[1:])  # the 1-in-3 sad reading averages out
    assert all(frame[1].startswith("2: sad") for frame in labels[1:])


def test_a_tilted_face_is_boxed_as_it_was_read():
    face = live_video.Face(1, faces.Square(100, 60, 80, 45))
    face.readings.append(np.eye(7)[3])
    frame = live_video.draw_faces(np.zeros((240, 320, 3), np.uint8), [face])
    boxed = frame[..., 2] > 200  # the box's orange, red in BGR
    # turned 45 degrees about the square's centre (140, 100): its corners on the axes
    reach = round(40 * np.sqrt(2))
    assert boxed[100, 140 - reach - 1:140 - reach + 2].any()
    assert boxed[100, 140 + reach - 1:140 + reach + 2].any()
    assert boxed[100 + reach - 1:100 + reach + 2, 140].any()
    assert not boxed[138:142, 98:102].any()  # an upright square's corner: none


def test_a_box_found_on_one_reading_only_is_never_shown():
    tracks = live_video.FaceTracks()
    face = (100, 100, 50)
    for step in range(8):
        # The face on every reading; a false box elsewhere each time, never twice in one place.
        tracks.update([face, (10 + 60 * (step % 2), 200 + 15 * step, 40)], [np.eye(7)[3]] * 2)
        shown = [tracked.square for tracked in tracks.in_view()]
        assert shown == ([face] if step else [])
    tracks.update([], [])
    tracks.update([face], [np.eye(7)[3]])  # once confirmed, shown again at once after a miss
    assert [tracked.square for tracked in tracks.in_view()] == [face]


def test_a_face_not_seen_for_a_while_is_forgotten():
    tracks = live_video.FaceTracks()
    tracks.update([(10, 10, 50)], [np.eye(7)[0]])
    for _ in range(live_video.LOST_AFTER + 1):
        tracks.update([], [])
    assert tracks.faces == []
    tracks.update([(10, 10, 50)], [np.eye(7)[0]])
    tracks.update([(10, 10, 50)], [np.eye(7)[0]])
    assert tracks.in_view()[0].number == 2


def test_frames_that_fail_to_decode_mid_video_are_skipped_and_counted():
    class Capture:  # frames 3 and 4 of 8 cannot be decoded
        def __init__(self):
            self.index = 0

        def get(self, prop):
            return 8

        def read(self):
            self.index += 1
            ok = self.index <= 8 and self.index - 1 not in (3, 4)
            return ok, (np.zeros((4, 4, 3), np.uint8) if ok else None)
    counted = {"bad": 0}
    indices = [index for index, _ in live_video.frames_of(Capture(), counted)]
    assert indices == [0, 1, 2, 5, 6, 7] and counted["bad"] == 2


@posix_only
def test_ctrl_c_ends_the_video_cleanly_and_it_plays(logs, tmp_path, monkeypatch, capsys):
    video = write_video(tmp_path / "walk.avi", frames=40)
    seen = []

    def detect_then_interrupt(cv2, gray, min_face):
        seen.append(1)
        if len(seen) == 10:
            os.kill(os.getpid(), signal.SIGINT)  # as a reader's Ctrl-C
        return bright_squares(cv2, gray, min_face)
    monkeypatch.setattr(faces, "detect_faces", detect_then_interrupt)
    # A CI job may start with SIGINT ignored; a reader's terminal delivers it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    output = tmp_path / "stopped.avi"
    try:
        code = emotion_test.main(["--video", str(video), "--logs-dir", str(logs), "--output",
                                  str(output)])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    frames = frames_in(output)
    assert 10 <= len(frames) < 40 and frames[0].shape == (SIZE[1], SIZE[0], 3)
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]


def test_a_video_without_faces_says_so(logs, tmp_path, detector, capsys):
    video = write_video(tmp_path / "empty.avi", frames=5, faces=0)
    assert emotion_test.main(["--video", str(video), "--logs-dir", str(logs), "--output",
                              str(tmp_path / "o.avi")]) == 0
    assert (f"no face was found in {video}: faces of 40 pixels or more were looked for "
            f"(--min-face)") in capsys.readouterr().out


def test_the_frames_without_a_face_are_counted_at_the_end(logs, tmp_path, detector, capsys):
    video = write_video(tmp_path / "gone.avi", frames=10, faces=1, with_faces=range(6))
    assert emotion_test.main(["--video", str(video), "--logs-dir", str(logs), "--output",
                              str(tmp_path / "o.avi")]) == 0
    out = capsys.readouterr().out
    assert "faces read on 10 of them, 6 faces in all" in out
    assert "no face on 4 of the 10 frames read: faces of 40 pixels or more" in out


@pytest.mark.parametrize("size", [(320, 240), (1280, 720), (1920, 1080)])
def test_the_smallest_face_looked_for_is_the_same_in_every_frame_size(logs, tmp_path, detector,
                                                                     capsys, size):
    # A 44-pixel face: found by default (40 pixels) at any size; not with --min-face 50.
    video = write_video(tmp_path / "small.avi", frames=3, faces=1, size=size, side=44)
    common = ["--video", str(video), "--logs-dir", str(logs)]
    assert emotion_test.main(common + ["--output", str(tmp_path / "a.avi")]) == 0
    assert "faces read on 3 of them, 3 faces in all" in capsys.readouterr().out
    assert detector == [((size[1], size[0]), 40)] * 3  # the whole frame, down to 40 pixels
    assert emotion_test.main(common + ["--output", str(tmp_path / "b.avi"),
                                       "--min-face", "50"]) == 0
    assert "faces of 50 pixels or more were looked for" in capsys.readouterr().out


@pytest.mark.parametrize("args, code, words", [
    (["--video", "{tmp}/notes.avi"], 1, "not a video OpenCV can read"),
    (["--camera", "7"], 1, "no camera at index 7"),
    (["{tmp}/photo.png", "--video", "{tmp}/notes.avi"], 2, "give a photo, or --video"),
    ([], 2, "give a photo, or --video"),
    (["--video", "{tmp}/missing.avi"], 1, "missing.avi does not exist"),
    (["--video", "{tmp}"], 1, "is not a file"),
    (["--video", ""], 2, "--video needs the path of a video file"),
    (["--video", "{tmp}/notes.avi", "--output", "{tmp}/out.mp4"], 2, "ending in .avi"),
    (["--video", "{tmp}/notes.avi", "--output", "{tmp}/out"], 2, "ending in .avi"),
])
def test_a_source_that_cannot_be_read_is_one_line(logs, tmp_path, capsys, args, code, words):
    (tmp_path / "notes.avi").write_text("not a video")
    argv = [arg.format(tmp=tmp_path) for arg in args] + ["--logs-dir", str(logs)]
    assert emotion_test.main(argv) == code
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and words in errors[0], errors
    assert not list(tmp_path.glob("*_emotions.avi"))


@pytest.mark.parametrize("script, args", [
    ("emotion_test.py", ["--camera", "99999999999999999999"]),
    ("emotion_cnn.py", ["--iterations", "99999999999999999999", "--schedule", "cosine"]),
    ("lenet_mnist.py", ["--epochs", "2147483648"]),
])
def test_a_count_too_large_for_tensorflow_is_a_mistake_before_any_work(script, args):
    result = run_script(PROJECT / script, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "is more than 2,147,483,647" in result.stderr.splitlines()[-1]


def test_without_a_display_the_reader_is_told_there_is_no_window(monkeypatch, capsys):
    monkeypatch.setattr(live_video.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert live_video.open_window(cv2, "emotions") is None
    assert "no live window: no display here" in capsys.readouterr().out
