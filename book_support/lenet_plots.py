"""lenet_mnist.py's pictures: the training curves (--plot, and as TensorBoard scalars with
--logdir) and a look inside the trained network (--plot-inside: conv1's kernels and the maps each
convolution makes of one test digit)."""

import contextlib

import numpy as np

from book_support import plumbing


@contextlib.contextmanager
def scalar_writer(logdir, graph):
    """A function write(step, {tag: value}) adding TensorBoard scalars to `logdir` (with the
    graph), closed on every way out; one that writes nothing when `logdir` is None."""
    if not logdir:
        yield lambda step, values: None
        return
    import tensorflow.compat.v1 as tf

    with graph.as_default():  # FileWriter refuses to start in eager mode
        writer = tf.summary.FileWriter(logdir, graph)

    def write(step, values):
        writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=value)
                                             for tag, value in values.items()]), step)
        writer.flush()
    try:
        yield write
    finally:
        writer.close()


def plot_history(history, path):
    """Loss and accuracy per epoch, from the entries lenet_mnist.py records after each one."""
    from matplotlib.ticker import MaxNLocator

    plt = plumbing.pyplot()
    epochs = [entry["epoch"] for entry in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, [e["train_loss"] for e in history], "o-",
                   label="training (with dropout)")
    loss_axes.plot(epochs, [e["validation_loss"] for e in history], "o-", label="validation")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    accuracy_axes.plot(epochs, [e["validation_accuracy"] for e in history], "o-",
                       label="validation")
    accuracy_axes.plot(epochs, [e["test_sample_accuracy"] for e in history], "o-",
                       label="random test sample", alpha=0.6)
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.legend()
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle("LeNet-5 on MNIST")
    figure.tight_layout()
    plumbing.save_figure(figure, path)


def inside_views(session, net, test, index):
    """[(title, array (h, w, channels))]: the digit, conv1's kernels, and the conv1, conv2 and
    conv3 maps the digit makes (after ReLU and pooling, without dropout)."""
    digit = test.images[index:index + 1]
    kernels, *maps = session.run([net.weights[0]] + net.feature_maps, {net.X: digit})
    label = int(np.argmax(test.labels[index]))
    views = [(f"test digit {index} (a {label})", digit[0]),
             ("conv1 kernels " + "x".join(map(str, kernels.shape)), kernels[:, :, 0, :])]
    for number, feature_maps in enumerate(maps, start=1):
        views.append((f"conv{number} maps " + "x".join(map(str, feature_maps.shape[1:])),
                      feature_maps[0]))
    return views


def mosaic(array, columns):
    """Channels of (h, w, C) side by side in rows of `columns`, each scaled to 0..1, with a
    one-pixel gap (NaN, drawn blank) between them."""
    height, width, channels = array.shape
    rows = -(-channels // columns)
    tiles = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), np.nan, np.float32)
    for channel in range(channels):
        tile = array[:, :, channel].astype(np.float32)
        span = tile.max() - tile.min()
        row, column = divmod(channel, columns)
        tiles[row * (height + 1):row * (height + 1) + height,
              column * (width + 1):column * (width + 1) + width] = \
            (tile - tile.min()) / span if span > 0 else 0.0
    return tiles


def plot_inside(views, path):
    plt = plumbing.pyplot()
    figure, axes = plt.subplots(1, len(views), figsize=(19, 4.2),
                                gridspec_kw={"width_ratios": [0.6, 1, 1, 1, 1.6]})
    for ax, (title, array) in zip(axes, views):
        channels = array.shape[2]
        ax.imshow(mosaic(array, 1 if channels == 1 else 8 if channels <= 64 else 16),
                  cmap="gray" if channels == 1 else "viridis", interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    figure.suptitle("LeNet-5 inside: what conv1 learned, and what each layer makes of a digit")
    figure.tight_layout()
    plumbing.save_figure(figure, path)
