"""The training curves of both training scripts (book_support/training_curves.py): the same
TensorBoard tags in lenet_mnist.py's --logdir and emotion_cnn.py's --logs-dir, training and
validation, loss and accuracy, at each epoch or validation; and --plot's picture of them, whose
history is kept in the checkpoint's record and so goes on across a resume."""

import json

import pytest

from book_support import checkpoints, plumbing, training_curves
from conftest import PROJECT, run_script, write_book_layout

CURVES = ("loss/train", "loss/validation", "accuracy/train", "accuracy/validation")
BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two colours: the curves


def scalars(folder):
    """{tag: [(step, value)]} of every scalar in the TensorBoard files in `folder`."""
    import tensorflow as tf
    found = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def steps(found, tag):
    return [step for step, _ in found.get(tag, [])]


@pytest.fixture
def drawn(monkeypatch):
    """The curves of each figure --plot saves: [{axes title: {label: (x, y)}}], and the PNG
    written, as the script saves it."""
    figures, save = [], plumbing.save_figure

    def kept(figure, path, dpi=100):
        figures.append({axes.get_title(): {line.get_label(): (list(line.get_xdata()),
                                                              list(line.get_ydata()))
                                           for line in axes.get_lines()}
                        for axes in figure.axes})
        save(figure, path, dpi)
    monkeypatch.setattr(plumbing, "save_figure", kept)
    return figures


def colours(png):
    from PIL import Image
    with Image.open(png) as image:
        return {pixel for _, pixel in image.convert("RGB").getcolors(1 << 20)}


# --------------------------------------------------------------------------------------------
# emotion_cnn.py
# --------------------------------------------------------------------------------------------

def emotion(root, *extra):
    return run_script(PROJECT / "emotion_cnn.py", "--data-dir", root / "data", "--logs-dir",
                      root / "logs", "--batch-size", "16", "--eval-every", "10", "--seed", "1",
                      *extra)


@pytest.fixture
def faces(tmp_path):
    write_book_layout(tmp_path / "data", train_count=200, test_count=20)
    return tmp_path


def test_emotion_tensorboard_gets_the_four_curves_at_each_validation(faces):
    result = emotion(faces, "--iterations", "25")
    assert result.returncode == 0, result.stderr
    found = scalars(faces / "logs")
    for tag in CURVES:
        assert steps(found, tag) == [0, 10, 20, 24], tag  # every 10 steps, and the last
    # the book's own summaries are as they were: every 10 steps
    assert steps(found, "Entropy") == steps(found, "Reg_loss") == [0, 10, 20]
    # what TensorBoard shows is what the record keeps
    record = json.loads((faces / "logs" / "run.json").read_text())
    assert [round(entry["validation_accuracy"], 6) for entry in record["validations"]] == [
        round(value, 6) for _, value in found["accuracy/validation"]]
    printed = [float(line.rsplit(" ", 1)[1]) for line in result.stdout.splitlines()
               if "Validation Accuracy:" in line]
    assert printed == pytest.approx([value for _, value in found["accuracy/validation"]],
                                    abs=5e-5)
    assert all(0 <= value <= 1 for _, value in found["accuracy/train"])


def test_emotion_plot_after_training_and_after_a_resume_is_one_history(faces, drawn):
    first = emotion(faces, "--iterations", "25", "--plot", faces / "first.png")
    assert first.returncode == 0, first.stderr
    assert f"saved the training curves to {faces / 'first.png'}" in first.stdout
    resumed = emotion(faces, "--iterations", "45", "--plot", faces / "resumed.png")
    assert resumed.returncode == 0 and "Model Restored!" in resumed.stdout, resumed.stderr
    before, after = drawn
    for title, labels in (("Loss", ("training (with dropout)", "validation")),
                          ("Accuracy", ("training (with dropout)", "validation"))):
        for label in labels:
            assert before[title][label][0] == [0, 10, 20, 24]
            assert after[title][label][0] == [0, 10, 20, 24, 30, 40, 44]
            assert after[title][label][1][:4] == before[title][label][1]  # kept, not redone
    assert all(BLUE in colours(faces / name) and ORANGE in colours(faces / name)
               for name in ("first.png", "resumed.png"))
    # TensorBoard's files go on from the same step
    assert steps(scalars(faces / "logs"), "loss/validation") == [0, 10, 20, 24, 30, 40, 44]


def test_emotion_plot_from_a_finished_run_and_from_an_early_stop(book_trained, stopped_early,
                                                                  tmp_path, drawn):
    for run, plot in ((book_trained, tmp_path / "book.png"), (stopped_early,
                                                              tmp_path / "early.png")):
        result = run_script(*run.command("--plot", plot))
        assert result.returncode == 0, result.stderr
        assert "already holds" in result.stdout or "early stop" in result.stdout
        assert plot.read_bytes()[:4] == b"\x89PNG"
    book, early = drawn
    assert book["Loss"]["validation"][0] == [0, 2]
    stopped_at = json.loads((stopped_early.logs / "run.json").read_text())["validations"][-1]
    assert early["Loss"]["validation"][0][-1] == stopped_at["step"]


def test_emotion_plot_is_a_new_file_unless_overwrite(faces):
    (faces / "p.png").write_bytes(b"an earlier plot")
    refused = emotion(faces, "--iterations", "3", "--plot", faces / "p.png")
    assert refused.returncode == 2 and "already exists; add --overwrite" in refused.stderr
    assert not (faces / "logs").exists()  # refused before any work
    replaced = emotion(faces, "--iterations", "3", "--plot", faces / "p.png", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (faces / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_emotion_dry_run_draws_and_writes_nothing(faces):
    result = emotion(faces, "--iterations", "3", "--plot", faces / "p.png", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not (faces / "p.png").exists() and not (faces / "logs").exists()


# --------------------------------------------------------------------------------------------
# lenet_mnist.py
# --------------------------------------------------------------------------------------------

def lenet(mnist_dir, folder, *extra):
    return run_script(PROJECT / "lenet_mnist.py", "--data-dir", mnist_dir, "--validation-size",
                      "100", "--batch-size", "64", "--seed", "2", "--checkpoint-dir",
                      folder / "ck", *extra)


def test_lenet_tensorboard_gets_the_same_curves_each_epoch(tmp_path, mnist_dir):
    result = lenet(mnist_dir, tmp_path, "--epochs", "2", "--logdir", tmp_path / "tb")
    assert result.returncode == 0, result.stderr
    found = scalars(tmp_path / "tb")
    for tag in (*CURVES, "accuracy/test_sample"):  # and the book's own number
        assert steps(found, tag) == [0, 1], tag
    record = json.loads((tmp_path / "ck" / "run.json").read_text())
    assert [entry["train_accuracy"] for entry in record["history"]] == pytest.approx(
        [value for _, value in found["accuracy/train"]])
    assert all(0 <= value <= 1 for _, value in found["accuracy/train"])


def test_lenet_plot_draws_training_and_validation_across_a_resume(tmp_path, mnist_dir, drawn):
    assert lenet(mnist_dir, tmp_path, "--epochs", "1").returncode == 0
    result = lenet(mnist_dir, tmp_path, "--epochs", "2", "--plot", tmp_path / "p.png")
    assert result.returncode == 0 and "after 1 epochs" in result.stdout, result.stderr
    (curves,) = drawn
    assert set(curves["Loss"]) == {"training (with dropout)", "validation"}
    assert set(curves["Accuracy"]) == {"training (with dropout)", "validation",
                                       "random test sample"}
    assert all(x == [0, 1] for title in curves.values() for x, _ in title.values())
    assert BLUE in colours(tmp_path / "p.png") and ORANGE in colours(tmp_path / "p.png")


# --------------------------------------------------------------------------------------------
# The record and the picture
# --------------------------------------------------------------------------------------------

LENET_ENTRY = {"epoch": 0, "train_loss": 0.5, "validation_loss": 0.4,
               "test_sample_accuracy": 0.9, "validation_accuracy": 0.875}


def test_a_lenet_history_from_before_training_accuracy_was_kept_is_still_read(tmp_path):
    shape = {"history": checkpoints.RECORD_SHAPE["history"]}
    assert checkpoints.shape_problem({"history": [LENET_ENTRY]}, shape, "the record") is None
    assert "'train_accuracy' is \"high\"" in checkpoints.shape_problem(
        {"history": [{**LENET_ENTRY, "train_accuracy": "high"}]}, shape, "the record")


def test_a_value_older_entries_lack_leaves_a_gap(tmp_path, drawn):
    history = [LENET_ENTRY, {**LENET_ENTRY, "epoch": 1, "train_accuracy": 0.8}]
    training_curves.plot(history, "epoch", tmp_path / "p.png", "old and new")
    (curves,) = drawn
    _, accuracy = curves["Accuracy"]["training (with dropout)"]
    assert accuracy[0] != accuracy[0] and accuracy[1] == 0.8  # NaN: not drawn
