"""prep_images.py on generated photos of every mode, a corrupt file and a text file."""

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import prep_images
from book_support import image_workers
from conftest import PROJECT, run_script


def make_source(folder, corrupt=True):
    folder.mkdir()
    rng = np.random.default_rng(0)
    modes = ["RGB", "L", "RGBA", "P", "CMYK", "LA", "RGB", "L"]
    for i, mode in enumerate(modes):
        for animal in ("cat", "dog"):
            size = (int(rng.integers(100, 400)), int(rng.integers(100, 400)))
            image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            suffix = ".jpg" if mode in ("RGB", "L", "CMYK") else ".png"
            image.convert(mode).save(folder / f"{animal}.{i}{suffix}")
    if corrupt:
        (folder / "dog.99.jpg").write_bytes((folder / "dog.0.jpg").read_bytes()[:300])
    (folder / "notes.txt").write_text("not a photo")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_every_mode_becomes_a_227_rgb_jpeg_and_sources_are_untouched(tmp_path):
    before = make_source(tmp_path / "src")
    result = run_script(PROJECT / "prep_images.py", tmp_path / "src", tmp_path / "out",
                        "--test-count", "4", "--seed", "3", "--workers", "2")
    assert result.returncode == 1, result.stderr  # one photo could not be read; the rest were
    assert re.search(r"^prep_images.py: error: .*dog.99.jpg is damaged or truncated",
                     result.stderr, re.MULTILINE)
    assert "prep_images.py: 1 of 17 images could not be read" in result.stderr
    counts = re.search(r"prepared (\d+) training and (\d+) test images", result.stdout)
    assert int(counts.group(1)) + int(counts.group(2)) == 16  # 16 good photos of 18 files
    assert "notes.txt" in result.stderr and "skipped 1 files not named as images" in result.stdout
    produced = list((tmp_path / "out" / "trainDir").iterdir()) + \
        [p for p in (tmp_path / "out" / "testDir").iterdir() if p.suffix == ".jpg"]
    for path in produced:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and image.size == (227, 227)
    assert {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()} == before


def test_test_images_are_numbered_with_their_labels(tmp_path):
    make_source(tmp_path / "src", corrupt=False)
    assert prep_images.main([str(tmp_path / "src"), str(tmp_path / "out"), "--test-count",
                             "5", "--workers", "1"]) == 0
    with open(tmp_path / "out" / "testDir" / "labels.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert all(row["label"] == row["source"].split(".")[0] for row in rows)
    assert all((tmp_path / "out" / "testDir" / row["file"]).exists() for row in rows)
    assert {row["file"] for row in rows} <= {f"{i}.jpg" for i in range(1, 6)}
    train = {p.name for p in (tmp_path / "out" / "trainDir").iterdir()}
    assert not train & {prep_images.jpeg_name(Path(row["source"])) for row in rows}
    assert len(train) == 11


def test_a_rerun_skips_finished_files_and_keeps_the_split(tmp_path):
    make_source(tmp_path / "src", corrupt=False)
    args = [str(tmp_path / "src"), str(tmp_path / "out"), "--test-count", "3", "--workers", "1"]
    assert prep_images.main(args) == 0
    outputs = sorted((tmp_path / "out").rglob("*.jpg"))
    # Each finished file is marked; a rerun that made it again would replace the mark.
    for path in outputs:
        path.write_bytes(b"finished")
    outputs[0].unlink()
    assert prep_images.main(args) == 0
    assert sorted((tmp_path / "out").rglob("*.jpg")) == outputs
    remade = [path for path in outputs if path.read_bytes() != b"finished"]
    assert remade == [outputs[0]]  # only the removed one was made again
    with Image.open(outputs[0]) as image:
        assert image.size == (227, 227)


def test_crop_keeps_the_aspect_ratio(tmp_path):
    (tmp_path / "src").mkdir()
    stripes = np.zeros((200, 600, 3), np.uint8)
    stripes[:, 200:400] = 255  # a white centre third
    Image.fromarray(stripes).save(tmp_path / "src" / "cat.1.png")
    for mode in ("squash", "crop"):
        assert prep_images.main([str(tmp_path / "src"), str(tmp_path / mode), "--mode", mode,
                                 "--test-count", "0", "--workers", "1"]) == 0
    crop = np.asarray(Image.open(tmp_path / "crop" / "trainDir" / "cat.1.png.jpg"))
    squash = np.asarray(Image.open(tmp_path / "squash" / "trainDir" / "cat.1.png.jpg"))
    assert crop[:, 20:200].mean() > 240  # the centre square is all white
    assert squash[:, :60].mean() < 20 and squash[:, 90:140].mean() > 240


def test_bad_folders_are_one_line(tmp_path, capsys):
    assert prep_images.main([str(tmp_path / "missing"), str(tmp_path / "out")]) == 1
    (tmp_path / "src").mkdir()
    assert prep_images.main([str(tmp_path / "src"), str(tmp_path / "src" / "out")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert "is not a folder" in err[0] and "must not be inside the source" in err[1]


@pytest.mark.parametrize("change, words", [(["--seed", "4"], "--seed 0, now 4"),
                                           (["--test-count", "2"], "--test-count 3, now 2"),
                                           (["--size", "64"], "--size 227, now 64"),
                                           (["--mode", "crop"], "--mode squash, now crop")])
def test_a_rerun_with_other_settings_is_refused_and_changes_nothing(tmp_path, capsys, change,
                                                                    words):
    make_source(tmp_path / "src", corrupt=False)
    args = [str(tmp_path / "src"), str(tmp_path / "out"), "--test-count", "3", "--workers", "1"]
    assert prep_images.main(args) == 0
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    capsys.readouterr()
    assert prep_images.main(args + change) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "was prepared differently" in errors[0] and words in errors[0]
    assert "other source files" not in errors[0]
    after = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before


def test_a_rerun_with_other_source_files_is_refused(tmp_path, capsys):
    make_source(tmp_path / "src", corrupt=False)
    args = [str(tmp_path / "src"), str(tmp_path / "out"), "--test-count", "3", "--workers", "1"]
    assert prep_images.main(args) == 0
    Image.new("RGB", (50, 50)).save(tmp_path / "src" / "cat.100.jpg")
    assert prep_images.main(args) == 1
    assert "other source files" in capsys.readouterr().err


def test_train_count_gives_the_books_split_and_refuses_more_than_there_are(tmp_path, capsys):
    make_source(tmp_path / "src", corrupt=False)  # 16 photos
    args = [str(tmp_path / "src"), str(tmp_path / "out"), "--test-count", "2", "--workers", "1"]
    assert prep_images.main(args + ["--train-count", "5"]) == 0
    assert len(list((tmp_path / "out" / "trainDir").iterdir())) == 5
    assert len(list((tmp_path / "out" / "testDir").glob("*.jpg"))) == 2
    assert prep_images.main(args + ["--train-count", "6"]) == 1  # another split: refused
    assert "--train-count 5, now 6" in capsys.readouterr().err
    assert prep_images.main([str(tmp_path / "src"), str(tmp_path / "other"), "--test-count",
                             "2", "--train-count", "15", "--workers", "1"]) == 2
    assert "ask for 17 photos" in capsys.readouterr().err


def test_workers_default_to_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(image_workers.os, "sched_getaffinity", lambda pid: {0, 3, 5},
                        raising=False)
    assert image_workers.usable_cpus() == 3
    monkeypatch.delattr(image_workers.os, "sched_getaffinity")
    monkeypatch.setattr(image_workers.os, "cpu_count", lambda: 6)
    assert image_workers.usable_cpus() == 6
