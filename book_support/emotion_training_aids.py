"""emotion_cnn.py's training aids, each one option away and off by default: `--augment` (flips,
shifts and zooms), `--erase` (random erasing), `--label-smoothing`, `--schedule cosine`,
`--optimizer sgd` (with `--learning-rate`).

All of them are pieces of the graph (no Python per image), switched by placeholders that only
training feeds (training_switches), so validation, `--mode test`, emotion_test.py and the
book's `.meta` workflow, which feed `input:0` alone, see the faces as they are.
"""

from types import SimpleNamespace

import numpy as np

from book_support import tf_setup

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

IMAGE_SIZE = 48  # the faces' side, in pixels
NUM_LABELS = 7   # the seven emotions
MAX_SHIFT = 4    # pixels a face may move each way when augmented
MAX_ZOOM = 0.1   # and the fraction it may grow or shrink


def augment_seed(seed):
    """The augmentation's seed: --seed's, so that a seeded run repeats, else a random one. A run
    resumed from a checkpoint does not repeat the uninterrupted one exactly: dropout's stream
    starts afresh."""
    return seed if seed is not None else int(np.random.randint(2**31))


def training_switches():
    """Placeholders that only training feeds: BN's batch statistics and augmentation (with the
    seed its randomness follows). Their defaults give the deterministic network that
    `emotion_test.py` and the book's `.meta` workflow see when they feed `input:0` alone."""
    return SimpleNamespace(
        training=tf.placeholder_with_default(False, [], name="training"),
        augment=tf.placeholder_with_default(False, [], name="augment"),
        augment_seed=tf.placeholder_with_default(tf.zeros([2], tf.int64), [2],
                                                 name="augment_seed"))


def augmented(faces, seed, erase=0.0):
    """Each face flipped left-right with probability 1/2, zoomed by up to MAX_ZOOM and shifted
    by up to MAX_SHIFT pixels, all in one crop_and_resize (a kernel on CPUs and GPUs alike, no
    Python per image) from a mirror-padded copy, its randomness drawn from the fed seed; then,
    with probability `erase`, a random rectangle of it replaced by noise (erased)."""
    count, pad = tf.shape(faces)[0], MAX_SHIFT + 4
    padded = tf.pad(faces, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="SYMMETRIC")

    def uniform(shape, stream):  # -1..1, a stream of its own per quantity
        return 2 * tf.random.stateless_uniform(shape, seed + tf.constant([0, stream], tf.int64)) - 1

    centre = pad + (IMAGE_SIZE - 1) / 2 + MAX_SHIFT * uniform([count, 2], 1)
    half = (IMAGE_SIZE - 1) / 2 * (1 + MAX_ZOOM * uniform([count], 2))
    flip = tf.where(uniform([count], 3) < 0, -tf.ones([count]), tf.ones([count]))
    scale = 1 / (IMAGE_SIZE + 2 * pad - 1)  # crop_and_resize boxes are in 0..1 of the input
    boxes = tf.stack([centre[:, 0] - half, centre[:, 1] - flip * half,
                      centre[:, 0] + half, centre[:, 1] + flip * half], axis=1) * scale
    moved = tf.image.crop_and_resize(padded, boxes, tf.range(count), [IMAGE_SIZE, IMAGE_SIZE])
    return erased(moved, seed, erase) if erase else moved


def erased(faces, seed, probability):
    """`--erase P`: random erasing (Zhong et al. 2020, arXiv:1708.04896), as the best single
    FER2013 network was trained (Khaireddin & Chen): with probability P, a rectangle of 2-25%
    of the face, its sides in a ratio of 0.3-3.3, becomes uniform noise. A mask built by
    comparing pixel coordinates with each face's rectangle: no Python per image."""
    count = tf.shape(faces)[0]

    def uniform(shape, stream):  # 0..1, streams after the ones `augmented` uses
        return tf.random.stateless_uniform(shape, seed + tf.constant([0, stream], tf.int64))

    area = IMAGE_SIZE ** 2 * (0.02 + 0.23 * uniform([count], 4))
    ratio = tf.exp(np.log(0.3) + (np.log(3.3) - np.log(0.3)) * uniform([count], 5))
    height = tf.minimum(tf.sqrt(area * ratio), IMAGE_SIZE)
    width = tf.minimum(tf.sqrt(area / ratio), IMAGE_SIZE)
    top = (IMAGE_SIZE - height) * uniform([count], 6)
    left = (IMAGE_SIZE - width) * uniform([count], 7)
    chosen = tf.cast(uniform([count], 8) < probability, tf.float32)
    pixel = tf.range(IMAGE_SIZE, dtype=tf.float32) + 0.5

    def inside(start, length):  # [count, IMAGE_SIZE]: 1 where a row (column) is covered
        return tf.cast((pixel >= start[:, None]) & (pixel < (start + length)[:, None]),
                       tf.float32)

    mask = (inside(top, height)[:, :, None] * inside(left, width)[:, None, :]
            * chosen[:, None, None])[..., None]
    noise = uniform(tf.shape(faces), 9)
    return faces * (1 - mask) + noise * mask


def smoothed_loss(net, pred, smoothing, regularization):
    """`--label-smoothing S`: train towards 1 - S on the right emotion and S/7 spread over all
    seven (Szegedy et al. 2016), so the network is not pushed to ever surer answers on faces
    that people themselves label differently. Validation and test keep the plain
    cross-entropy."""
    targets = net.input_labels * (1 - smoothing) + smoothing / NUM_LABELS
    entropy = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(logits=pred,
                                                                        labels=targets))
    return entropy + regularization * tf.add_n(tf.get_collection("losses"))


def optimizer(name, rate):
    """The book's Adam, or `--optimizer sgd`: SGD with Nesterov momentum 0.9 (Sutskever et al.
    2013), with which Khaireddin & Chen trained the best single FER2013 network."""
    if name == "sgd":
        return tf.train.MomentumOptimizer(rate, momentum=0.9, use_nesterov=True)
    return tf.train.AdamOptimizer(rate)


def learning_rate_at(global_step, schedule, iterations, rate):
    """The book's constant `rate`, or `cosine`: from it down to zero over the run's
    iterations."""
    if schedule == "constant":
        return tf.constant(rate)
    return tf.train.cosine_decay(rate, global_step, iterations)
