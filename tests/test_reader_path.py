"""What a reader meets that a developer's test misses: reruns with other settings, argument
mistakes, existing outputs, dry runs, output folders that cannot be written, unlabelled photos,
hints, file modes and disk use (issue 19). The README's own commands: test_readme_commands.py."""

import csv
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import alexnet_finetune
import alexnet_forward
import classify_image
import emotion_cnn
import emotion_test
import EmotionUtils
import lenet_mnist
import prep_images
import style_transfer
from conftest import PROJECT, posix_only, run_script, write_book_layout, write_fer_layout

pytestmark = pytest.mark.reader  # the scripts' own logic: make test-floor leaves it out


def exit_and_errors(capsys, main, *args):
    """(exit code, stderr) of a script's main() run in this process, argparse's exits too."""
    try:
        code = main([str(arg) for arg in args])
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


def assert_usage_mistake(code, err, words):
    assert code == 2, err
    assert err.startswith("usage: ") and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and words in errors[0], err


# --------------------------------------------------------------------------------------------
# Argument mistakes: exit 2 with a usage line, before any work
# --------------------------------------------------------------------------------------------

MISTAKES = [
    (lenet_mnist.main, ["--epochs", "0"], "0 is less than 1"),
    (lenet_mnist.main, ["--batch-size", "-5"], "-5 is less than 1"),
    (lenet_mnist.main, ["--seed", "-1"], "-1 is less than 0"),
    (lenet_mnist.main, ["--seed", "99999999999"], "the largest seed"),
    (lenet_mnist.main, ["--plot", "same.png", "--plot-inside", "same.png"],
     "--plot and --plot-inside name the same file"),
    (emotion_cnn.main, ["--iterations", "0"], "0 is less than 1"),
    (emotion_cnn.main, ["--patience", "-1"], "-1 is less than 0"),
    (alexnet_forward.main, ["x.png", "--top", "0"], "0 is less than 1"),
    (emotion_test.main, ["x.png", "--evaluations", "-1"], "-1 is less than 1"),
    (prep_images.main, ["src", "out", "--size", "0"], "0 is less than 8"),
    (style_transfer.main, [], "give --content and --style images"),
    (style_transfer.main, ["--content", "c.jpg", "--style", "a.jpg", "b.jpg",
                           "--style-blend-weights", "1"], "2 images, 1 weights"),
    (style_transfer.main, ["--content", "c.jpg", "--style", "a.jpg", "--learning-rate", "nan"],
     "nan is not a finite number"),
    (style_transfer.main, ["--content", "c.jpg", "--style", "a.jpg", "--learning-rate", "-5"],
     "-5 is not more than 0"),
    (style_transfer.main, ["--content", "c.jpg", "--style", "a.jpg",
                           "--style-blend-weights", "nan"], "nan is not a finite number"),
    (alexnet_finetune.main, ["--learning-rate", "inf"], "inf is not a finite number"),
    (alexnet_finetune.main, ["--test-labels", "missing.csv"],
     "--test-labels missing.csv does not exist"),
    (classify_image.main, ["--num_top_predictions", "0"], "0 is less than 1"),
]


@pytest.mark.parametrize("main, args, words", MISTAKES,
                         ids=[f"{m.__module__} {' '.join(a)}" for m, a, _ in MISTAKES])
def test_an_argument_mistake_is_exit_2_with_a_usage_line(tmp_path, monkeypatch, capsys, main,
                                                         args, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    assert_usage_mistake(*exit_and_errors(capsys, main, *args), words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # nothing made


def output_folders(folder_file):
    """(main, args) naming, as an output folder, a path under a file."""
    under = folder_file / "sub"
    return [
        (lenet_mnist.main, ["--checkpoint-dir", under]),
        (lenet_mnist.main, ["--logdir", under]),
        (emotion_cnn.main, ["--logs-dir", under]),
        (alexnet_finetune.main, ["--checkpoint-dir", under]),
        (classify_image.main, ["--bottleneck", under]),
        (classify_image.main, ["--cam", under]),
        (alexnet_forward.main, ["x.png", "--cam", under]),
        (emotion_test.main, ["x.png", "--figure", under / "f.png"]),
        (alexnet_finetune.main, ["--test-dir", "pets", "--predictions", under / "p.csv"]),
        (style_transfer.main, ["--content", "c.jpg", "--style", "s.jpg", "--output-dir", under]),
        (prep_images.main, ["src", under]),
        (EmotionUtils.main, ["--save", under / "first.png"]),
    ]


@pytest.mark.parametrize("case", range(12))
def test_an_output_folder_under_a_file_is_refused_before_any_work(tmp_path, monkeypatch,
                                                                  capsys, case):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "pets").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "pets" / "1.jpg")  # an unlabelled test folder
    (tmp_path / "train").mkdir()
    for name in ("cat.1.jpg", "dog.1.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / "train" / name)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    main, args = output_folders(blocker)[case]
    if main is alexnet_finetune.main:
        args = ["--train-dir", "train", *args]
    code, err = exit_and_errors(capsys, main, *args)
    assert_usage_mistake(code, err, f"{blocker} is a file, not a folder")
    assert blocker.read_text() == "not a folder"


@posix_only
def test_a_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch,
                                                                    capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode:
        pytest.fail("chattr +i is needed to make a folder that even root cannot write")
    try:
        code, err = exit_and_errors(capsys, lenet_mnist.main, "--checkpoint-dir",
                                    locked / "ck", "--data-dir", tmp_path / "never-read")
    finally:
        subprocess.run(["chattr", "-i", str(locked)])
    assert_usage_mistake(code, err, f"cannot write in {locked}")
    assert not (tmp_path / "never-read").exists()


# --------------------------------------------------------------------------------------------
# Existing outputs: never replaced without --overwrite, and the refusal names it
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("main, args, option", [
    (lenet_mnist.main, [], "--plot"),
    (lenet_mnist.main, [], "--plot-inside"),
    (emotion_test.main, ["photo.jpg"], "--figure"),
    (EmotionUtils.main, ["--data-dir", "never-read"], "--save"),
    (style_transfer.main, ["--content", "c.jpg", "--style", "s.jpg"], "--output"),
])
def test_an_existing_result_is_refused_naming_overwrite(tmp_path, monkeypatch, capsys, main,
                                                       args, option):
    monkeypatch.chdir(tmp_path)
    earlier = tmp_path / "earlier.png"
    earlier.write_bytes(b"a result of an earlier run")
    code, err = exit_and_errors(capsys, main, *args, option, earlier)
    assert_usage_mistake(code, err, f"{option} {earlier} already exists; add --overwrite")
    assert earlier.read_bytes() == b"a result of an earlier run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.png"]


def test_a_plot_may_not_replace_the_checkpoints_own_record(tmp_path, capsys):
    record = tmp_path / "ck" / "run.json"
    record.parent.mkdir()
    record.write_text("{}")
    code, err = exit_and_errors(capsys, lenet_mnist.main, "--checkpoint-dir", tmp_path / "ck",
                                "--plot", record, "--overwrite")
    assert_usage_mistake(code, err, "is one of the checkpoint's own files")


# --------------------------------------------------------------------------------------------
# A rerun: the same settings resume, others are refused by name, --restart starts over
# --------------------------------------------------------------------------------------------

def test_a_rerun_resumes_refuses_other_settings_and_restarts_on_request(tmp_path, mnist_dir):
    common = ("--data-dir", mnist_dir, "--checkpoint-dir", tmp_path / "ck",
              "--validation-size", "100", "--batch-size", "100")

    def lenet(*args):
        return run_script(PROJECT / "lenet_mnist.py", *common, *args)

    assert lenet("--epochs", "2", "--seed", "1").returncode == 0
    kept = {p.name: p.read_bytes() for p in (tmp_path / "ck").iterdir()}
    fewer = lenet("--epochs", "1", "--seed", "1")
    assert fewer.returncode == 1 and "holds 2 epochs, more than --epochs 1" in fewer.stderr
    other = lenet("--epochs", "2", "--seed", "2")
    assert other.returncode == 1 and "other settings (--seed 1, now 2)" in other.stderr
    assert "choose another --checkpoint-dir" in other.stderr and "--restart" in other.stderr
    for refused in (fewer, other):  # no old result passed off as the new run's
        assert "test accuracy" not in refused.stdout and "Traceback" not in refused.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "ck").iterdir()} == kept
    longer = lenet("--epochs", "3", "--seed", "1")
    assert longer.returncode == 0 and "after 2 epochs" in longer.stdout
    restarted = lenet("--epochs", "1", "--seed", "2", "--restart")
    assert restarted.returncode == 0 and "resuming" not in restarted.stdout
    assert [p.name for p in (tmp_path / "ck").glob("*.index")] == ["model.ckpt-1.index"]


# --------------------------------------------------------------------------------------------
# Dry runs write nothing; finished work is kept lean
# --------------------------------------------------------------------------------------------

def test_a_dry_run_writes_nothing(tmp_path, mnist_dir):
    result = run_script(PROJECT / "lenet_mnist.py", "--data-dir", mnist_dir, "--dry-run",
                        "--validation-size", "100", "--logdir", "tb", "--plot", "p.png",
                        "--plot-inside", "i.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MNIST-data"]


def test_prep_images_refuses_a_test_count_that_leaves_no_training_photos(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    for number in range(3):
        Image.new("RGB", (30, 30)).save(tmp_path / "src" / f"cat.{number}.jpg")
    code, err = exit_and_errors(capsys, prep_images.main, tmp_path / "src", tmp_path / "out",
                                "--test-count", "3", "--workers", "1")
    assert_usage_mistake(code, err, "--test-count 3 leaves no training photos")
    assert not (tmp_path / "out").exists()


def test_prep_images_names_and_leaves_out_unlabelled_photos(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    for name in ("cat.1.jpg", "dog.1.jpg", "cat.2.jpg", "holiday.jpg"):
        Image.new("RGB", (30, 30)).save(tmp_path / "src" / name)
    assert prep_images.main([str(tmp_path / "src"), str(tmp_path / "out"), "--test-count", "1",
                             "--workers", "1"]) == 0
    out, err = capsys.readouterr()
    assert "skipped 1 photos named neither cat nor dog (holiday.jpg)" in err
    assert "skipped 1 photos named neither cat nor dog" in out
    prepared = [p.name for p in (tmp_path / "out").rglob("*.jpg")]
    assert len(prepared) == 3 and "holiday.jpg" not in prepared


def pets_folder(root, labels=None):
    for folder in ("train", "test"):
        (root / folder).mkdir(parents=True)
    for number in range(3):
        for animal in ("cat", "dog"):
            Image.new("RGB", (30, 30)).save(root / "train" / f"{animal}.{number}.jpg")
    for number in (1, 2):
        Image.new("RGB", (30, 30)).save(root / "test" / f"{number}.jpg")
    if labels:
        with open(root / "test" / "labels.csv", "w", newline="") as stream:
            csv.writer(stream).writerows([["file", "label"], *labels])


@pytest.mark.parametrize("labels, words", [
    ([["1.jpg", "cat"], ["2.jpg", "horse"]], "labels.csv line 3: label 'horse' is not cat"),
    ([["1.jpg", "dog"]], "gives no label for 1 of the 2 test photos (first: 2.jpg)"),
])
def test_a_test_label_that_cannot_be_used_is_one_line_before_training(tmp_path, capsys, labels,
                                                                      words):
    pets_folder(tmp_path, labels)
    code, err = exit_and_errors(capsys, alexnet_finetune.main, "--train-dir", tmp_path / "train",
                                "--test-dir", tmp_path / "test", "--weights", "never-read.npy")
    assert code == 1 and err.count("\n") == 1 and words in err, err


# --------------------------------------------------------------------------------------------
# Hints keep the reader's options; the data's layout is said, not guessed silently
# --------------------------------------------------------------------------------------------

def test_the_hint_to_train_first_keeps_the_readers_options(tmp_path, capsys):
    data = write_fer_layout(tmp_path / "fer")
    code, err = exit_and_errors(capsys, emotion_cnn.main, "--data-dir", data, "--mode", "test",
                                "--logs-dir", tmp_path / "none", "--model", "vgg")
    assert code == 1
    assert (f"train first (python emotion_cnn.py --data-dir {data} --logs-dir "
            f"{tmp_path / 'none'} --model vgg)") in err


def test_both_face_layouts_in_one_folder_is_said(tmp_path, capsys):
    data = write_book_layout(tmp_path / "faces", train_count=30, test_count=10)
    write_fer_layout(data)
    layout, _ = EmotionUtils.find_layout(data)
    assert layout == "book"
    assert "holds both the book's train.csv and fer2013.csv" in capsys.readouterr().err


def test_make_run_is_a_short_run_and_says_how_to_run_the_books(tmp_path):
    planned = subprocess.run(["make", "-n", "run"], cwd=PROJECT, capture_output=True,
                             text=True).stdout
    assert "lenet_mnist.py --epochs 3" in planned
    assert "make run ARGS=" in planned and "bin/activate" in planned


def test_a_download_honours_the_umask(tmp_path, file_server):
    from book_support import downloads
    payload = b"weights" * 100
    file_server.files["/w.bin"] = payload
    remote = downloads.RemoteFile("w.bin", (file_server.url("/w.bin"),), len(payload))
    previous = os.umask(0o022)
    try:
        path = downloads.fetch(remote, tmp_path, quiet=True)
    finally:
        os.umask(previous)
    assert Path(path).stat().st_mode & 0o777 == 0o644


def test_a_fine_tuning_checkpoint_keeps_no_frozen_weights(tmp_path):
    import tensorflow as tf
    from tests.standins import alexnet_weights, write_py2_alexnet_npy
    pets_folder(tmp_path)
    write_py2_alexnet_npy(tmp_path / "w.npy", alexnet_weights())
    result = run_script(PROJECT / "alexnet_finetune.py", "--train-dir", tmp_path / "train",
                        "--test-dir", "", "--weights", tmp_path / "w.npy", "--iterations", "2",
                        "--batch-size", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    saved = tf.train.latest_checkpoint(str(tmp_path / "checkpoints" / "alexnet_finetune"))
    names = {name for name, _ in tf.train.list_variables(saved)}
    assert "fc8w" in names and "steps_done" in names
    assert not any(name.startswith(("conv", "fc6", "fc7")) for name in names), names
    resumed = run_script(PROJECT / "alexnet_finetune.py", "--train-dir", tmp_path / "train",
                         "--test-dir", "", "--weights", tmp_path / "w.npy", "--iterations", "3",
                         "--batch-size", "2", cwd=tmp_path)
    assert resumed.returncode == 0 and "after 2 steps" in resumed.stdout, resumed.stderr
    assert np.isfinite(float(resumed.stdout.split("Minibatch Loss= ")[-1].split(",")[0]))


def test_emotion_interrupted_before_its_first_step_saves_nothing(tmp_path, monkeypatch, capsys):
    """The book's naming is by the last step done; before the first there is none (the old
    code wrote model.ckpt--1)."""
    from book_support import plumbing

    class PressedAtOnce(plumbing.CtrlC):
        def __enter__(self):
            self.pressed = True
            return self
    monkeypatch.setattr(plumbing, "CtrlC", PressedAtOnce)
    data = write_book_layout(tmp_path / "data", train_count=40, test_count=10)
    code = emotion_cnn.main(["--data-dir", str(data), "--logs-dir", str(tmp_path / "logs"),
                             "--iterations", "5"])
    assert code == 130
    assert "interrupted before the first step: nothing new to save" in capsys.readouterr().out
    assert not list((tmp_path / "logs").glob("model.ckpt*"))
