"""The emotion scripts on the real faces: the book's 1001 iterations, then the book's photo."""

import gzip
import re
import shutil

import pytest

from conftest import PROJECT, run_script

SEVEN_LINES = re.compile(r"^(anger|disgust|fear|happy|sad|surprise|neutral) = ([0-9.]+)%$",
                         re.MULTILINE)


@pytest.fixture(scope="module")
def trained(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("emotion")
    for name in ("train.csv", "test.csv"):
        with gzip.open(shared_data / "emotion_detector" / f"{name}.gz", "rb") as source, \
                open(root / name, "wb") as target:
            shutil.copyfileobj(source, target)
    result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", root, "--logs-dir",
                        root / "logs", "--seed", "1")
    print(result.stdout[-600:])
    assert result.returncode == 0, result.stderr
    assert "Train size: 3761" in result.stdout and "Test size: 1312" in result.stdout
    return root


def test_the_gzipped_files_as_they_come_give_the_faces_of_the_csvs(shared_data, tmp_path):
    """train.csv.gz and test.csv.gz read where they are (a few seconds): the same faces and
    labels as the same files gunzipped."""
    import EmotionUtils
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("train.csv", "test.csv"):
        with gzip.open(shared_data / "emotion_detector" / f"{name}.gz", "rb") as source, \
                open(plain / name, "wb") as target:
            shutil.copyfileobj(source, target)
        gzipped = EmotionUtils.read_face_csv(shared_data / "emotion_detector" / f"{name}.gz")
        unpacked = EmotionUtils.read_face_csv(plain / name)
        assert (gzipped.pixels == unpacked.pixels).all()
        assert (gzipped.labels == unpacked.labels).all()
        assert len(gzipped.pixels) == {"train.csv": 4178, "test.csv": 1312}[name]


def test_1001_iterations_beat_the_majority_class_clearly(trained):
    result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", trained, "--logs-dir",
                        trained / "logs", "--mode", "test")
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"Test accuracy: (\d\.\d{4}) \((\d+)/1312\)",
                               result.stdout).group(1))
    assert accuracy >= 0.32  # majority class (happy) is 25.3%; the book measured 38%


def test_the_books_photo_gives_seven_percentages(trained, shared_data, tmp_path):
    result = run_script(PROJECT / "emotion_test.py", shared_data / "images" / "author_img.jpg",
                        "--logs-dir", trained / "logs", "--figure", tmp_path / "author.png")
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    values = [float(value) for _, value in SEVEN_LINES.findall(result.stdout)]
    assert len(values) == 7 and abs(sum(values) - 100) < 0.5
    assert (tmp_path / "author.png").stat().st_size > 5000


def test_the_books_own_meta_graph_restores_our_checkpoint(trained, shared_data, tmp_path):
    logs = tmp_path / "book_logs"
    logs.mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(trained / "logs" / f"model.ckpt-1000{suffix}", logs)
    book = shared_data / "book_reference" / "emotion_logs"
    shutil.copy(book / "model.ckpt-1000.meta", logs)
    shutil.copy(book / "checkpoint", logs)
    result = run_script(PROJECT / "emotion_test.py", shared_data / "images" / "author_img.jpg",
                        "--logs-dir", logs, "--evaluations", "1000", "--figure",
                        tmp_path / "book.png")
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    values = [float(value) for _, value in SEVEN_LINES.findall(result.stdout)]
    assert len(values) == 7 and abs(sum(values) - 100) < 1e-6


def test_opencv_finds_the_astronauts_face_and_she_is_happy(trained, shared_data, tmp_path):
    result = run_script(PROJECT / "emotion_test.py", shared_data / "images" / "astronaut.png",
                        "--logs-dir", trained / "logs", "--figure", tmp_path / "astronaut.png")
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    assert "the face OpenCV found" in result.stdout
    values = dict((name, float(value)) for name, value in SEVEN_LINES.findall(result.stdout))
    assert max(values, key=values.get) == "happy"


def test_the_vgg_network_with_the_training_aids_reads_faces_better(trained, tmp_path):
    """Same faces, two thirds of the book's 1001 iterations (the suite's time): --model vgg
    --augment --schedule cosine against the book's network at its 1001, on the test set; in
    bfloat16 where the CPU has it, as the README's recipe trains (1.6x the faces a second of
    float32 here)."""
    common = ("--data-dir", trained, "--logs-dir", tmp_path / "vgg", "--model", "vgg")
    result = run_script(PROJECT / "emotion_cnn.py", *common, "--augment", "--schedule",
                        "cosine", "--precision", "bf16", "--iterations", "650", "--seed", "1")
    assert result.returncode == 0, result.stderr
    accuracies = {}
    for name, options in (("book", ("--data-dir", trained, "--logs-dir", trained / "logs")),
                          ("vgg", common)):
        tested = run_script(PROJECT / "emotion_cnn.py", *options, "--mode", "test")
        print(tested.stdout)
        assert tested.returncode == 0, tested.stderr
        assert "precision" in tested.stdout
        accuracies[name] = float(re.search(r"Test accuracy: (\d\.\d{4})", tested.stdout).group(1))
    # measured: 47.2% against 38.8% (50.8% at 1001 iterations, 43.4% at 500)
    assert accuracies["vgg"] >= accuracies["book"] + 0.06


def test_each_face_of_two_real_photos_side_by_side_is_found_and_read(trained, shared_data,
                                                                      tmp_path):
    """The README's picture: the astronaut beside the author (on a border, as his photo is
    cropped too tight for the detector)."""
    from PIL import Image, ImageOps
    images = shared_data / "images"
    author = ImageOps.expand(Image.open(images / "author_img.jpg").convert("RGB"), border=80,
                             fill=(225, 225, 225))
    astronaut = Image.open(images / "astronaut.png").convert("RGB").resize((author.height,
                                                                             author.height))
    both = Image.new("RGB", (astronaut.width + author.width, author.height))
    both.paste(astronaut, (0, 0))
    both.paste(author, (astronaut.width, 0))
    both.save(tmp_path / "both.png")
    result = run_script(PROJECT / "emotion_test.py", tmp_path / "both.png", "--logs-dir",
                        trained / "logs", "--figure", tmp_path / "boxed.png")
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    assert "2 faces found by OpenCV" in result.stdout
    lefts = [int(x) for x in re.findall(r"^face \d at x=(\d+),", result.stdout, re.MULTILINE)]
    assert len(lefts) == 2 and lefts[0] < astronaut.width <= lefts[1]  # one on each photo
    assert len(SEVEN_LINES.findall(result.stdout)) == 14
    assert (tmp_path / "boxed.png").exists()


def test_a_video_of_four_real_faces_is_read_frame_by_frame(trained, shared_data, tmp_path):
    """bench/emotion_live.py's frame (the astronaut's head four times, 640x480), moving."""
    import sys
    import cv2
    import numpy as np
    sys.path.insert(0, str(PROJECT / "bench"))
    from emotion_live import frame_with_faces
    frame = frame_with_faces(shared_data / "images", 4)
    writer = cv2.VideoWriter(str(tmp_path / "four.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25,
                             (640, 480))
    for index in range(30):
        writer.write(np.roll(frame, 2 * index, axis=1))
    writer.release()
    result = run_script(PROJECT / "emotion_test.py", "--video", tmp_path / "four.avi",
                        "--logs-dir", trained / "logs", "--output", tmp_path / "out.avi")
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    assert "faces read on 30 of them, 120 faces in all" in result.stdout
    capture = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
