"""The training curves of both training scripts, made the same way: TensorBoard scalars under one
set of tags, so that TensorBoard draws training and validation in one chart (and the two
scripts' runs side by side), and the --plot picture of the loss and accuracy, training and
validation.

Both come from a run's history: a list of entries, one per point of the x axis (lenet_mnist.py's
epochs, emotion_cnn.py's validation steps), each holding values named as in TAGS. The scripts
keep it in their checkpoint's record (run.json, book_support/checkpoints.py), so that the curves
of a resumed run go on from where it stopped.
"""

import contextlib
import math

from book_support import plumbing

# An entry's values and their TensorBoard tags: TensorBoard makes one chart of each group
# ("loss/", "accuracy/"), with training and validation drawn over each other.
TAGS = {"train_loss": "loss/train", "validation_loss": "loss/validation",
        "train_accuracy": "accuracy/train", "validation_accuracy": "accuracy/validation",
        "test_sample_accuracy": "accuracy/test_sample"}  # LeNet's: the book's own number
LABELS = {"train_loss": "training (with dropout)", "validation_loss": "validation",
          "train_accuracy": "training (with dropout)", "validation_accuracy": "validation",
          "test_sample_accuracy": "random test sample"}
LOSSES = ("train_loss", "validation_loss")
ACCURACIES = ("train_accuracy", "validation_accuracy", "test_sample_accuracy")


def summary(entry):
    """The entry's values as one tf.Summary of scalars, each under its tag in TAGS."""
    import tensorflow.compat.v1 as tf

    return tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=entry[key])
                             for key, tag in TAGS.items() if key in entry])


@contextlib.contextmanager
def scalar_writer(logdir, graph):
    """A function write(step, entry) adding the entry's scalars to TensorBoard's files in
    `logdir` (with the graph), closed on every way out; one that writes nothing when `logdir`
    is None."""
    if not logdir:
        yield lambda step, entry: None
        return
    import tensorflow.compat.v1 as tf

    with graph.as_default():  # FileWriter refuses to start in eager mode
        writer = tf.summary.FileWriter(str(logdir), graph, filename_suffix=unique_suffix())

    def write(step, entry):
        writer.add_summary(summary(entry), step)
        writer.flush()
    try:
        yield write
    finally:
        writer.close()


def plot(history, x, path, title):
    """The loss and the accuracy against `x` (the entries' "epoch" or "step"), training and
    validation in each, saved as a PNG at `path`. A value that older entries lack leaves a gap
    in its curve."""
    from matplotlib.ticker import MaxNLocator

    plt = plumbing.pyplot()
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [entry[x] for entry in history]
    marker = "o" if len(history) <= 30 else None  # points while they can be told apart
    for axes, keys in ((loss_axes, LOSSES), (accuracy_axes, ACCURACIES)):
        for key in keys:
            if any(key in entry for entry in history):
                axes.plot(xs, [entry.get(key, math.nan) for entry in history], marker=marker,
                          label=LABELS[key], alpha=0.6 if key == "test_sample_accuracy" else 1)
        axes.legend()
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    loss_axes.set(xlabel=x, ylabel="cross-entropy", title="Loss")
    accuracy_axes.set(xlabel=x, ylabel="accuracy", title="Accuracy")
    figure.suptitle(title)
    figure.tight_layout()
    plumbing.save_figure(figure, path)


def unique_suffix():
    """An event file's name ends with this, so that a run resumed within the same second as
    the one before (TensorFlow 2.16 names the file by the second and the host only) adds a file
    rather than replacing the first run's."""
    import os
    import time
    return f".{os.getpid()}.{time.time_ns()}"
