"""lenet_mnist.py's look inside the trained network (--plot-inside): conv1's kernels and the maps
each convolution makes of one test digit. Its training curves (--plot, --logdir) are drawn as
emotion_cnn.py's are, by book_support/training_curves.py."""

import numpy as np

from book_support import plumbing


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
