"""The state a training run leaves in its checkpoint folder, read back by one reader and held by
one lock (book_support/checkpoints.py): a run.json edited or damaged by hand, and whatever sits
where the lock goes, are one line before any work, and a run lets go of its folder however it
ends."""

import json
import os
import shutil

import pytest
from filelock import FileLock

from book_support import checkpoints
from conftest import PROJECT, posix_only, run_script, write_mnist

LENET_ENTRY = {"epoch": 0, "train_loss": 0.5, "validation_loss": 0.4,
               "test_sample_accuracy": 0.9, "validation_accuracy": 0.875}
GOOD_SETTINGS = {"batch_size": 16, "validation_size": 100, "seed": None}


def lenet(mnist_dir, folder, *extra):
    return run_script(PROJECT / "lenet_mnist.py", "--data-dir", mnist_dir, "--checkpoint-dir",
                      folder, "--validation-size", "100", "--batch-size", "16", "--epochs", "1",
                      *extra)


def refused_in_one_line(result, *words):
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and all(word in errors[0] for word in words), result.stderr
    assert "epoch" not in result.stdout.replace("epochs", "")  # refused before any training
    return errors[0]


@pytest.mark.parametrize("record, said", [
    ([1, 2], "the record is not a table"),
    ({"settings": "fast"}, "'settings' is not a table of names"),
    ({"settings": [16]}, "'settings' is not a table of names"),
    ({"settings": 3}, "'settings' is not a table of names"),
    ({"settings": {"batch_size": {"a": 1}}}, "'batch_size' is {\"a\": 1}"),
    ({"settings": GOOD_SETTINGS, "history": {"0": LENET_ENTRY}}, "'history' is not a list"),
    ({"settings": GOOD_SETTINGS, "history": [LENET_ENTRY, {**LENET_ENTRY, "epoch": "one"}]},
     "item 1: 'epoch' is \"one\", not a count"),
    ({"settings": GOOD_SETTINGS, "history": [{"epoch": 0}]}, "item 0 has no 'train_loss'"),
    ({"settings": GOOD_SETTINGS, "history": [{**LENET_ENTRY, "train_loss": True}]},
     "'train_loss' is true, not a finite number"),
    ({"settings": GOOD_SETTINGS, "early_stopping": {"best_loss": "low", "best_step": 1,
                                                    "since_best": 0}}, "'best_loss'"),
    ({"settings": GOOD_SETTINGS, "early_stopping": {"best_loss": 1.0, "best_step": -3,
                                                    "since_best": 0}}, "'best_step' is -3"),
])
def test_a_record_of_the_wrong_kind_is_one_line_before_any_work(tmp_path, mnist_dir, record,
                                                                said):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "run.json").write_text(json.dumps(record))
    line = refused_in_one_line(lenet(mnist_dir, tmp_path / "ck"), "run.json cannot be read")
    assert said in line and "--restart" in line


def test_a_record_of_the_right_kinds_is_read(tmp_path):
    record = {"settings": {**GOOD_SETTINGS, "train_layers": ["fc7", "fc8"]},
              "history": [LENET_ENTRY], "early_stopping": {"best_loss": 1.5, "best_step": None,
                                                           "since_best": 2},
              "another_scripts_entry": {"anything": [1]}}
    (tmp_path / "run.json").write_text(json.dumps(record))
    assert checkpoints.CheckpointFolder(tmp_path, None, "--x").record() == record


def make_folder(path):
    path.mkdir()


def make_dangling_link(path):
    path.symlink_to(path.parent / "gone")


def make_link_outside(path):
    path.symlink_to(path.parent.parent / "outside.lock")


def make_pipe(path):
    os.mkfifo(path)


@posix_only
@pytest.mark.parametrize("make", [os.mkfifo, lambda path: path.symlink_to("/dev/zero")])
def test_a_record_that_is_not_a_file_is_refused_before_it_is_read(tmp_path, mnist_dir, make):
    (tmp_path / "ck").mkdir()
    make(tmp_path / "ck" / "run.json")
    refused_in_one_line(lenet(mnist_dir, tmp_path / "ck"), "run.json is not a regular file")


@posix_only
@pytest.mark.parametrize("make, kind", [(make_folder, "a folder"),
                                        (make_dangling_link, "a link"),
                                        (make_link_outside, "a link"),
                                        (make_pipe, "not a regular file")])
def test_anything_but_a_plain_file_where_the_lock_goes_is_refused(tmp_path, mnist_dir, make,
                                                                  kind):
    (tmp_path / "ck").mkdir()
    make(tmp_path / "ck" / ".lock")
    line = refused_in_one_line(lenet(mnist_dir, tmp_path / "ck"), ".lock is " + kind)
    assert "remove it" in line
    assert not (tmp_path / "gone").exists() and not (tmp_path / "outside.lock").exists()


def test_a_run_refused_on_its_data_leaves_no_folder_and_no_lock(tmp_path):
    result = lenet(tmp_path / "no-mnist-here", tmp_path / "made" / "ck", "--cpu")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "made").exists()  # the folders it made for its lock are gone
    assert checkpoints._LOCKS == {}


def test_a_run_lets_go_of_its_folder_when_it_ends(tmp_path, mnist_dir):
    assert lenet(mnist_dir, tmp_path / "ck").returncode == 0
    assert checkpoints._LOCKS == {}
    other = FileLock(tmp_path / "ck" / ".lock", timeout=0)  # as a second process would take it
    other.acquire()
    other.release()
    assert lenet(mnist_dir, tmp_path / "ck", "--epochs", "2").returncode == 0  # and it resumes


def test_a_resume_on_other_data_is_refused_and_on_the_same_data_moved_goes_on(tmp_path):
    first = write_mnist(tmp_path / "first", seed=0)
    assert lenet(first, tmp_path / "ck").returncode == 0
    other = write_mnist(tmp_path / "other", seed=1)
    line = refused_in_one_line(lenet(other, tmp_path / "ck", "--epochs", "2"),
                               "holds a run made with other settings", "the training data")
    assert "--restart" in line
    moved = shutil.copytree(first, tmp_path / "moved")
    resumed = lenet(moved, tmp_path / "ck", "--epochs", "2")
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr
