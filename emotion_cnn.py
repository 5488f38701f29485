"""Emotion recognition: the chapter's facial-expression CNN and its training listing.

    python emotion_cnn.py                      # train 1001 iterations on data/EmotionDetector
    python emotion_cnn.py --mode test          # accuracy, confusion matrix, precision/recall

    # beyond the book: a stronger network and training aids (see "Beyond the book" below)
    python emotion_cnn.py --data-dir data/fer2013 --logs-dir logs/emotion_vgg --model vgg \\
        --augment --erase 0.5 --label-smoothing 0.1 --schedule cosine --precision bf16 \\
        --iterations 12000 --eval-every 500 --seed 1
    python emotion_cnn.py --data-dir data/fer2013 --logs-dir logs/emotion_vgg --model vgg \\
        --mode test --tta

The network, variable names (`W_conv1`, `b_conv1`, ...), the `input` and `output` tensors, the
L2 regularisation, Adam and the printed lines are the book's; the file follows the section:
model, graph, training loop, test. What changed, and why:
  * `tf.flags` and `tf.app` are gone from TensorFlow 2: argparse, with the book's `--data_dir`
    and `--logs_dir` spellings kept as aliases.
  * The book baked dropout (keep 0.5) into the graph, so its saved model answered differently on
    every run. Here dropout comes from `keep_prob`, a placeholder that defaults to 1.0: training
    feeds 0.5, everything else gets the deterministic network.
  * The validation loss is the cross-entropy alone (the book added the L2 term to it), and the
    validation accuracy is printed beside it.
  * Batches wrap around the whole training set (the book's offsets skipped its last images).
  * The book's text gives the flattened conv2 output as 12x12x64 = 9,126; it is 9,216, which is
    what its listing (and this script) computes.
Beyond the book, each off by default so the book's run stays the book's: `--model vgg` (a deeper
network with batch norm; README: how it scores), `--augment` (flips, shifts and zooms in the
graph) and `--erase` (random erasing), `--label-smoothing`, `--schedule cosine`, `--precision
bf16` (bfloat16 on CPUs that have it), `--patience` (early stopping, best checkpoint kept), and
`--tta` (each test face averaged with its mirror image).
"""

import json
import shlex
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from book_support import checkpoints
import EmotionUtils
from book_support import plumbing
from book_support import tf_setup
from book_support.checkpoints import CheckpointFolder

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

BATCH_SIZE = 128
LEARNING_RATE = 1e-3
MAX_ITERATIONS = 1001
REGULARIZATION = 1e-2
KEEP_PROB = 0.5
IMAGE_SIZE = EmotionUtils.IMAGE_SIZE
NUM_LABELS = EmotionUtils.NUM_LABELS
EVALUATION_BATCH = 512
EVALUATE_EVERY = 100
KEPT = "the last checkpoint saved is kept"  # what a diverged run leaves
ADVICE = "try another --seed or --batch-size"

# --------------------------------------------------------------------------------------------
# The book's model and graph
# --------------------------------------------------------------------------------------------


def add_to_regularization_loss(W, b):
    tf.add_to_collection("losses", tf.nn.l2_loss(W))
    tf.add_to_collection("losses", tf.nn.l2_loss(b))


def weight_variable(shape, stddev=0.02, name=None):
    return tf.get_variable(name, initializer=tf.truncated_normal(shape, stddev=stddev))


def bias_variable(shape, name=None):
    return tf.get_variable(name, initializer=tf.constant(0.0, shape=shape))


def max_pool_2x2(x):
    return tf.nn.max_pool(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")


def conv_relu_pool(x, W, b):
    tf.summary.histogram(W.op.name, W)
    tf.summary.histogram(b.op.name, b)
    conv = tf.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding="SAME")
    add_to_regularization_loss(W, b)
    return max_pool_2x2(tf.nn.relu(tf.nn.bias_add(conv, b)))


def emotion_cnn(dataset, weights, biases, keep_prob):
    with tf.name_scope("conv1"):
        h_pool1 = conv_relu_pool(dataset, weights["wc1"], biases["bc1"])   # 24x24x32
    with tf.name_scope("conv2"):
        h_pool2 = conv_relu_pool(h_pool1, weights["wc2"], biases["bc2"])   # 12x12x64
    with tf.name_scope("fc_1"):
        image_size = IMAGE_SIZE // 4
        h_flat = tf.reshape(h_pool2, [-1, image_size * image_size * 64])
        h_fc1 = tf.nn.relu(tf.matmul(h_flat, weights["wf1"]) + biases["bf1"])
        h_fc1_dropout = tf.nn.dropout(h_fc1, rate=1 - keep_prob)
    with tf.name_scope("fc_2"):
        pred = tf.matmul(h_fc1_dropout, weights["wf2"]) + biases["bf2"]
    return pred


def book_variables():
    weights = {
        "wc1": weight_variable([5, 5, 1, 32], name="W_conv1"),
        "wc2": weight_variable([3, 3, 32, 64], name="W_conv2"),
        "wf1": weight_variable([(IMAGE_SIZE // 4) * (IMAGE_SIZE // 4) * 64, 256], name="W_fc1"),
        "wf2": weight_variable([256, NUM_LABELS], name="W_fc2"),
    }
    biases = {
        "bc1": bias_variable([32], name="b_conv1"),
        "bc2": bias_variable([64], name="b_conv2"),
        "bf1": bias_variable([256], name="b_fc1"),
        "bf2": bias_variable([NUM_LABELS], name="b_fc2"),
    }
    return weights, biases


def graph_inputs():
    """The book's placeholders and global step (dropout's keep_prob defaults to 1.0)."""
    return SimpleNamespace(
        # Named as the book's unnamed global step, so the book's own .meta can restore from
        # checkpoints written here.
        global_step=tf.Variable(0, trainable=False, name="Variable"),
        keep_prob=tf.placeholder_with_default(1.0, shape=[], name="keep_prob"),
        input_dataset=tf.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 1],
                                     name="input"),
        input_labels=tf.placeholder(tf.float32, [None, NUM_LABELS], name="labels"))


def loss(net, pred, regularization=REGULARIZATION):
    """The book's output and losses on the logits `pred`, added to `net`."""
    net.output_pred = tf.nn.softmax(pred, name="output")
    net.cross_entropy_loss = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits_v2(logits=pred, labels=net.input_labels))
    tf.summary.scalar("Entropy", net.cross_entropy_loss)
    reg_losses = tf.add_n(tf.get_collection("losses"))
    tf.summary.scalar("Reg_loss", reg_losses)
    net.loss_val = net.cross_entropy_loss + regularization * reg_losses
    net.predictions = tf.argmax(pred, 1, name="predictions")


def finished(graph, net, model):
    """The summaries, saver and initializer of a built graph, which is then finalized."""
    with graph.as_default():
        net.summary_op = tf.summary.merge_all()
        net.saver = tf.train.Saver(max_to_keep=1)  # the last; --patience keeps the best
        net.initializer = tf.global_variables_initializer()
        net.variables = graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)
    graph.finalize()
    net.graph, net.model = graph, model
    return net


def build_graph(seed=None):
    """The book's graph, in a graph of its own. "Beyond the book" composes its extras around
    the same pieces in build_training_graph."""
    graph = tf.Graph()
    with graph.as_default():
        if seed is not None:
            tf.set_random_seed(seed)
        net = graph_inputs()
        weights, biases = book_variables()
        pred = emotion_cnn(net.input_dataset, weights, biases, net.keep_prob)
        loss(net, pred)
        net.learning_rate = tf.constant(LEARNING_RATE)
        net.train_op = tf.train.AdamOptimizer(net.learning_rate).minimize(net.loss_val,
                                                                          net.global_step)
    return finished(graph, net, "book")


# --------------------------------------------------------------------------------------------
# The book's training loop and test
# --------------------------------------------------------------------------------------------

def get_next_batch(images, labels, step, batch_size=BATCH_SIZE):
    """Consecutive batches that wrap around the training set.

    The book took `offset = step * batch_size % (n - batch_size)`, whose offsets never reach
    the last images; here every image comes round equally often.
    """
    indices = np.arange(step * batch_size, (step + 1) * batch_size) % len(images)
    return images[indices], labels[indices]


def evaluate(session, net, images, labels):
    """(mean cross-entropy, predicted labels) without dropout, in memory-sized batches."""
    losses, predictions = [], []
    for start in range(0, len(images), EVALUATION_BATCH):
        feed = {net.input_dataset: images[start:start + EVALUATION_BATCH],
                net.input_labels: labels[start:start + EVALUATION_BATCH]}
        loss, predicted = session.run([net.cross_entropy_loss, net.predictions], feed)
        losses.append(loss * len(predicted))
        predictions.append(predicted)
    return float(np.sum(losses) / len(images)), np.concatenate(predictions)


def accuracy(predictions, labels):
    return float(np.mean(predictions == np.argmax(labels, axis=1)))


def confusion_matrix(predictions, labels):
    matrix = np.zeros((NUM_LABELS, NUM_LABELS), np.int64)
    np.add.at(matrix, (np.argmax(labels, axis=1), predictions), 1)
    return matrix


def train(args, data):
    # A dry run neither resumes nor writes: no checkpoint, no TensorBoard file, no folder.
    logs_dir = None if args.dry_run else Path(args.logs_dir)
    iterations = min(args.iterations, 3) if args.dry_run else args.iterations
    net = graph_for(args, iterations)
    print(f"emotion CNN ({args.model} network): {tf_setup.count_weights(net.variables):,} "
          f"parameters; training on {args.device}"
          + (", bf16" if args.precision == "bf16" else ""))
    saved = CheckpointFolder(logs_dir, net.saver, "--logs-dir", identify=other_network(net))
    session = tf_setup.new_session(net.graph, args.precision, float16_on_gpus=False)
    with session as sess, plumbing.CtrlC() as ctrl_c:
        latest = saved.restore_or_initialize(sess, lambda s: s.run(net.initializer))
        first = int(sess.run(net.global_step))
        saved.refuse_if_past(first, iterations, "iterations", "--iterations")
        if latest:
            print("Model Restored!")
            print(f"resuming from {latest} at step {first}")
        stopper = EarlyStopping(net, logs_dir, args.patience) if args.patience else None
        if stopper and stopper.has_stopped():
            print(stopper.verdict())
            return 0
        summary_writer = None
        if logs_dir:  # after the restore: a checkpoint that cannot be restored leaves no file
            logs_dir.mkdir(parents=True, exist_ok=True)
            with net.graph.as_default():  # FileWriter refuses to start in eager mode
                summary_writer = tf.summary.FileWriter(str(logs_dir), net.graph)
        progress = plumbing.Progress(max(iterations - first, 0), "training", unit=" steps")
        steps_done = first
        try:
            for step in range(first, iterations):
                if ctrl_c.pressed:
                    break
                batch_image, batch_label = get_next_batch(data.train_images, data.train_labels,
                                                          step, args.batch_size)
                feed_dict = training_feed(net, args, batch_image, batch_label, step)
                sess.run(net.train_op, feed_dict=feed_dict)
                steps_done = step + 1
                progress.update()
                if step % 10 == 0:
                    train_loss, summary_str = sess.run([net.loss_val, net.summary_op], feed_dict)
                    plumbing.stop_if_not_finite(train_loss, f"step {step}", KEPT, ADVICE)
                    if summary_writer:
                        summary_writer.add_summary(summary_str, global_step=step)
                    print("Training Loss: %f" % train_loss, flush=True)
                if step % args.eval_every == 0 or step == iterations - 1:
                    valid_loss, predicted = evaluate(sess, net, data.valid_images,
                                                     data.valid_labels)
                    plumbing.stop_if_not_finite(valid_loss, f"step {step} (validation)", KEPT,
                                                ADVICE)
                    print("%s Validation Loss: %f  Validation Accuracy: %.4f" % (
                        datetime.now(), valid_loss, accuracy(predicted, data.valid_labels)),
                        flush=True)
                    saved.save(sess, step, settings_of(args))
                    if stopper and stopper.update(sess, valid_loss, step):
                        print(stopper.verdict())
                        break
        finally:
            if summary_writer:
                summary_writer.close()
        if ctrl_c.pressed and steps_done < iterations:
            # Named, as the book names its checkpoints, by the last step done.
            if logs_dir and steps_done > first:
                path = saved.save(sess, steps_done - 1, settings_of(args))
                print(f"interrupted after step {steps_done - 1}: saved {path}; run the same "
                      f"command to resume")
            elif logs_dir:
                print("interrupted before the first step: nothing new to save")
            return 130
        if first >= iterations:
            print(f"{logs_dir} already holds the {iterations} iterations asked for")
        else:
            progress.close()
    return 0


def test(args, data):
    if not len(data.test_images):
        raise plumbing.UserError(f"{args.data_dir} has no test faces (fer2013.csv: no "
                                 f"PublicTest rows), so there is nothing to test on")
    net = graph_for(args)
    folder = checkpoints.preferred_folder(args.logs_dir)
    with tf_setup.new_session(net.graph) as sess:
        checkpoint = CheckpointFolder(folder, net.saver, "--logs-dir",
                                      identify=other_network(net)).restore(sess)
        if checkpoint is None:
            raise plumbing.UserError(f"no checkpoint in {args.logs_dir}: train first "
                                     f"({training_command(args.command_line)})")
        print(f"checkpoint: {checkpoint}")
        evaluate_faces = evaluate_with_mirror if args.tta else evaluate
        _, predicted = evaluate_faces(sess, net, data.valid_images, data.valid_labels)
        print("Validation accuracy: %.4f" % accuracy(predicted, data.valid_labels))
        if data.test_labels is None:
            raise plumbing.UserError("the test set has no Emotion column, so its accuracy "
                                     "cannot be measured")
        test_loss, predicted = evaluate_faces(sess, net, data.test_images, data.test_labels)
    right = int(np.sum(predicted == np.argmax(data.test_labels, axis=1)))
    print(f"Test accuracy: {right / len(predicted):.4f} ({right}/{len(predicted)})  "
          f"loss {test_loss:.4f}")
    matrix = confusion_matrix(predicted, data.test_labels)
    print_confusion(matrix)
    print_precision_and_recall(matrix)
    path = Path(args.logs_dir) / f"confusion_matrix-{Path(checkpoint).name}.png"
    plot_confusion(matrix, path)
    print(f"saved the confusion matrix to {path}")
    return 0


def print_confusion(matrix):
    names = [EmotionUtils.emotion[i][:8] for i in range(NUM_LABELS)]
    print("confusion matrix (rows: true, columns: predicted)")
    print(" " * 9 + "".join(f"{name:>9}" for name in names))
    for name, row in zip(names, matrix):
        print(f"{name:>9}" + "".join(f"{count:>9}" for count in row))


def plot_confusion(matrix, path):
    plt = plumbing.pyplot()
    names = [EmotionUtils.emotion[i] for i in range(NUM_LABELS)]
    figure, axes = plt.subplots(figsize=(6.5, 5.5))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set(xticks=range(NUM_LABELS), yticks=range(NUM_LABELS), xticklabels=names,
             yticklabels=names, xlabel="predicted", ylabel="true",
             title=f"Emotion CNN on the test set ({matrix.trace()}/{matrix.sum()} right)")
    plt.setp(axes.get_xticklabels(), rotation=45, ha="right")
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, count, ha="center", va="center",
                  color="white" if count > matrix.max() / 2 else "black")
    figure.colorbar(image)
    figure.tight_layout()
    plumbing.save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# Beyond the book: a stronger network and training aids (each one flag away)
# --------------------------------------------------------------------------------------------

MODELS = {
    # regularization multiplies the sum of tf.nn.l2_loss over the "losses" collection;
    # bytes_per_face: what a training step's peak memory grows by per face in the batch
    # (measured on the CPU, batch 16 against 400: 1.09 MB book, 1.88 MB vgg), rounded up
    "book": SimpleNamespace(regularization=REGULARIZATION, marker="W_conv1",
                            bytes_per_face=1_200_000),
    "vgg": SimpleNamespace(regularization=5e-4, marker="vgg/conv1a/W", bytes_per_face=2_000_000),
}
VGG_CHANNELS = (32, 64, 128, 256)  # per stage; 48 -> 24 -> 12 -> 6 -> 3 pixels
BATCH_NORM_DECAY = 0.99
MAX_SHIFT = 4    # pixels a face may move each way when augmented
MAX_ZOOM = 0.1   # and the fraction it may grow or shrink




def graph_for(args, iterations=MAX_ITERATIONS):
    """The book's graph for the book's settings; otherwise the book's pieces with the extras
    asked for. Both hold the same variables for the book's network, so each resumes the
    other's checkpoints."""
    extras = {"erase": getattr(args, "erase", 0.0),
              "label_smoothing": getattr(args, "label_smoothing", 0.0)}
    if args.model == "book" and not getattr(args, "augment", False) \
            and getattr(args, "schedule", "constant") == "constant" and not any(extras.values()):
        return build_graph(args.seed)
    return build_training_graph(args.seed, args.model, args.schedule, iterations, **extras)


def build_training_graph(seed=None, model="book", schedule="constant",
                         iterations=MAX_ITERATIONS, erase=0.0, label_smoothing=0.0):
    """The book's graph with the extras composed around it: the faces the network sees may be
    augmented (and partly erased), the network may be vgg_cnn, the learning rate may follow a
    schedule, the training loss may use smoothed labels, and the training step also updates
    batch norm's averages. The switches only training feeds default to off, so `input:0` alone
    still gives the deterministic network."""
    graph = tf.Graph()
    with graph.as_default():
        if seed is not None:
            tf.set_random_seed(seed)
        net = graph_inputs()
        switches = training_switches()
        faces = tf.cond(switches.augment,
                        lambda: augmented(net.input_dataset, switches.augment_seed, erase),
                        lambda: net.input_dataset, name="faces")
        if model == "book":
            weights, biases = book_variables()
            pred = emotion_cnn(faces, weights, biases, net.keep_prob)
        else:
            pred = vgg_cnn(faces, net.keep_prob, switches.training)
        loss(net, pred, MODELS[model].regularization)
        if label_smoothing:
            net.loss_val = smoothed_loss(net, pred, label_smoothing, MODELS[model].regularization)
        net.learning_rate = learning_rate_at(net.global_step, schedule, iterations)
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            net.train_op = tf.train.AdamOptimizer(net.learning_rate).minimize(
                net.loss_val, net.global_step)
        net.faces = faces
        vars(net).update(vars(switches))
    return finished(graph, net, model)


def training_feed(net, args, batch_image, batch_label, step):
    feed = {net.input_dataset: batch_image, net.input_labels: batch_label,
            net.keep_prob: KEEP_PROB}
    if getattr(net, "training", None) is not None:  # a graph with the extras' switches
        feed.update({net.training: True, net.augment: args.augment,
                     net.augment_seed: [args.augment_seed, step]})
    return feed


def settings_of(args):
    """What a run's checkpoints depend on, recorded with them (a cosine schedule's length
    too: it sets every step's rate)."""
    settings = {"model": args.model, "batch_size": args.batch_size, "augment": args.augment,
                "schedule": args.schedule, "seed": args.seed, "erase": args.erase,
                "label_smoothing": args.label_smoothing}
    if args.schedule == "cosine":
        settings["iterations"] = args.iterations
    return settings


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


def batch_norm(x, training):
    """Batch normalisation over the batch and both image axes: batch statistics when `training`
    is fed True (and moving averages updated with the training step), the averages otherwise."""
    channels = x.get_shape().as_list()[-1]
    gamma = tf.get_variable("gamma", initializer=tf.ones([channels]))
    beta = tf.get_variable("beta", initializer=tf.zeros([channels]))
    mean = tf.get_variable("moving_mean", initializer=tf.zeros([channels]), trainable=False)
    variance = tf.get_variable("moving_variance", initializer=tf.ones([channels]),
                               trainable=False)
    y, batch_mean, batch_variance = tf.cond(
        training,
        lambda: tf.nn.fused_batch_norm(x, gamma, beta, epsilon=1e-3, is_training=True),
        lambda: tf.nn.fused_batch_norm(x, gamma, beta, mean, variance, epsilon=1e-3,
                                       is_training=False))
    for average, value in ((mean, batch_mean), (variance, batch_variance)):
        update = tf.assign_sub(average, (1 - BATCH_NORM_DECAY) * (average - value))
        tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, update)
    return y


def conv_bn_relu(x, channels, training, name):
    with tf.variable_scope(name):
        W = tf.get_variable("W", [3, 3, x.get_shape().as_list()[-1], channels],
                            initializer=tf.initializers.he_normal())
        tf.add_to_collection("losses", tf.nn.l2_loss(W))
        conv = tf.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding="SAME")
        return tf.nn.relu(batch_norm(conv, training))


def dense(x, units, name):
    with tf.variable_scope(name):
        W = tf.get_variable("W", [x.get_shape().as_list()[-1], units],
                            initializer=tf.initializers.he_normal())
        b = tf.get_variable("b", initializer=tf.zeros([units]))
        tf.add_to_collection("losses", tf.nn.l2_loss(W))
        return tf.matmul(x, W) + b


def vgg_cnn(faces, keep_prob, training):
    """`--model vgg`: the VGG pattern (Simonyan & Zisserman 2015, arXiv:1409.1556) as applied to
    FER2013 by Khaireddin & Chen 2021 (arXiv:2105.03588): stages of 3x3 convolutions with
    batch norm and ReLU, each halving the image by max-pooling, then a dropout-regularised
    classifier. Scaled down to train in an hour on two CPU cores: channels 32-64-128-256 (theirs
    64-512), one convolution in the first stage and two in the others, one hidden layer of 256
    (theirs two of 4096): 1.75 M parameters.

        48x48x1 -> conv 32 -> pool -> conv 64 x2 -> pool -> conv 128 x2 -> pool
                -> conv 256 x2 -> pool -> 3x3x256 -> fc 256 -> dropout -> fc 7
    """
    x = faces
    with tf.variable_scope("vgg"):
        for stage, channels in enumerate(VGG_CHANNELS, start=1):
            for layer in "ab" if stage > 1 else "a":
                x = conv_bn_relu(x, channels, training, f"conv{stage}{layer}")
            x = max_pool_2x2(x)
        x = tf.reshape(x, [-1, 3 * 3 * VGG_CHANNELS[-1]])
        hidden = tf.nn.relu(dense(x, 256, "fc1"))
        return dense(tf.nn.dropout(hidden, rate=1 - keep_prob), NUM_LABELS, "fc2")


def learning_rate_at(global_step, schedule, iterations):
    """The book's constant rate, or `cosine`: from it down to zero over the run's iterations."""
    if schedule == "constant":
        return tf.constant(LEARNING_RATE)
    return tf.train.cosine_decay(LEARNING_RATE, global_step, iterations)


class EarlyStopping:
    """`--patience N`: keeps the checkpoint with the lowest validation loss in LOGS_DIR/best
    (where `--mode test` and emotion_test.py look first) and says stop once N validations in a
    row have not lowered it. Its record, best/validation.json, lets a rerun pick up the count."""

    def __init__(self, net, logs_dir, patience):
        self.net, self.patience = net, patience
        self.folder = logs_dir / checkpoints.BEST if logs_dir else None
        self.saved = CheckpointFolder(self.folder, keeping_one(net.saver), "--logs-dir")
        kept = self.saved.newest()
        if kept:  # a resumed run's next best replaces it
            self.saved.saver.recover_last_checkpoints([kept])
        self.best_loss, self.best_step, self.since_best = float("inf"), None, 0
        if self.folder and (self.folder / "validation.json").exists():
            try:
                record = json.loads((self.folder / "validation.json").read_text())
                self.best_loss, self.best_step = record["best_loss"], record["best_step"]
                self.since_best = int(record["since_best"])
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise plumbing.UserError(f"{self.folder / 'validation.json'} cannot be read "
                                         f"({type(error).__name__}: {error}); add --restart to "
                                         f"start over, or choose another --logs-dir") from None

    def has_stopped(self):
        return self.since_best >= self.patience

    def update(self, session, loss, step):
        """Record one validation; True when training should stop."""
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.since_best = loss, step, 0
            self.saved.save(session, step)
        else:
            self.since_best += 1
        if self.folder:
            record = {"best_loss": self.best_loss, "best_step": self.best_step,
                      "since_best": self.since_best}
            with plumbing.atomic_output(self.folder / "validation.json") as temporary:
                temporary.write_text(json.dumps(record))  # a crash leaves the old one
        return self.has_stopped()

    def verdict(self):
        kept = f", kept in {self.folder}" if self.folder else ""
        return (f"early stop: {self.since_best} validations without a lower loss; the best was "
                f"{self.best_loss:.6f} at step {self.best_step}{kept}")


def keeping_one(saver):
    """A saver that keeps only its newest checkpoint, sharing `saver`'s save and restore ops:
    a finalized graph can take no new ones, and the book's graph needs none."""
    saver_def = tf.train.SaverDef()
    saver_def.CopyFrom(saver.as_saver_def())
    saver_def.max_to_keep = 1
    return tf.train.Saver(saver_def=saver_def)


def other_network(net):
    """For CheckpointFolder: the sentence for a checkpoint of the other --model."""
    def identify(checkpoint, names):
        other = next((name for name, model in MODELS.items() if model.marker in names), None)
        if other and other != net.model:
            return (f"{checkpoint} is a checkpoint of the {other!r} network, not "
                    f"{net.model!r}: add --model {other}, or choose another --logs-dir")
        return None
    return identify


def evaluate_with_mirror(session, net, images, labels):
    """`--tta`: evaluate with each face's probabilities averaged with its mirror image's."""
    def scores_of(batch):
        return session.run(net.output_pred, {net.input_dataset: batch})
    probabilities = np.concatenate([
        EmotionUtils.mirror_averaged(scores_of, images[start:start + EVALUATION_BATCH // 2])
        for start in range(0, len(images), EVALUATION_BATCH // 2)])
    right = probabilities[np.arange(len(labels)), np.argmax(labels, axis=1)]
    loss = float(-np.mean(np.log(np.maximum(right, 1e-12))))
    return loss, np.argmax(probabilities, axis=1)


def precision_and_recall(matrix):
    """Per class: of the faces predicted as it, the share right; of its faces, the share found."""
    right = np.diag(matrix).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return right / matrix.sum(axis=0), right / matrix.sum(axis=1)


def print_precision_and_recall(matrix):
    precision, recall = precision_and_recall(matrix)
    print(f"{'':>9}{'precision':>10}{'recall':>8}{'faces':>7}")
    for label, faces in enumerate(matrix.sum(axis=1)):
        print(f"{EmotionUtils.emotion[label][:8]:>9}{precision[label]:>10.3f}"
              f"{recall[label]:>8.3f}{faces:>7}")


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def build_parser():
    parser = plumbing.argument_parser(
        "Train (or test) the book's emotion-recognition CNN on 48x48 faces.")
    parser.add_argument("--data-dir", "--data_dir",
                        default=plumbing.native_path("data/EmotionDetector"),
                        help="train.csv + test.csv (the book's layout) or fer2013.csv; "
                             "malformed rows are skipped with a warning")
    parser.add_argument("--logs-dir", "--logs_dir",
                        default=plumbing.native_path("logs/EmotionDetector_logs"),
                        help="checkpoints (every 100 steps; the same command resumes, other "
                             "settings are refused) and TensorBoard")
    parser.add_argument("--mode", choices=("train", "test"), default="train",
                        help="train (resuming from LOGS_DIR), or score the newest checkpoint")
    parser.add_argument("--iterations", type=plumbing.count(1), default=MAX_ITERATIONS,
                        help="training steps in all (the book's 1001)")
    parser.add_argument("--batch-size", type=plumbing.count(1), default=BATCH_SIZE,
                        help="faces per training step")
    parser.add_argument("--seed", type=plumbing.seed, default=None,
                        help="seed for weights and dropout, with deterministic kernels. "
                             "Default: random (the validation split always uses seed 0)")
    parser.add_argument("--restart", action="store_true",
                        help="start over: remove the checkpoints in --logs-dir first")
    parser.add_argument("--dry-run", action="store_true",
                        help="train 3 iterations to check the set-up; nothing is written")
    tf_setup.add_device_option(parser)
    beyond = parser.add_argument_group("beyond the book")
    beyond.add_argument("--model", choices=sorted(MODELS), default="book",
                        help="the book's network, or vgg: deeper, with batch norm (see the "
                             "docstring of vgg_cnn)")
    beyond.add_argument("--augment", action="store_true",
                        help="train on randomly flipped, shifted and zoomed faces")
    beyond.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                        help="learning rate: the book's constant 1e-3, or cosine from 1e-3 "
                             "to 0 at --iterations")
    beyond.add_argument("--erase", type=plumbing.share, default=0.0, metavar="P",
                        help="with --augment: erase a random rectangle of a share P of the "
                             "training faces (random erasing)")
    beyond.add_argument("--label-smoothing", type=plumbing.share, default=0.0, metavar="S",
                        help="train towards 1-S on the right emotion, S spread over all seven")
    beyond.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: train in bfloat16 where the CPU has it (AVX-512 BF16 or "
                             "AMX; 1.5-1.6x the faces/s here), through TensorFlow's oneDNN "
                             "rewrite; elsewhere, GPUs included, the run stays float32")
    beyond.add_argument("--tta", action="store_true",
                        help="--mode test: average each face's probabilities with its mirror "
                             "image's (test-time augmentation, twice the work per face)")
    beyond.add_argument("--patience", type=plumbing.count(0), default=0, metavar="N",
                        help="stop after N validations without a lower validation loss, the "
                             "best checkpoint kept in LOGS_DIR/best (0: never stop early)")
    beyond.add_argument("--eval-every", type=plumbing.count(1), default=EVALUATE_EVERY,
                        metavar="STEPS",
                        help="steps between validations and checkpoints (the book's 100)")
    return parser


def training_command(argv):
    """The command that trains what the --mode test command line `argv` tests."""
    words, skip = [], False
    for word in argv:
        if skip or word == "--mode" or word.startswith("--mode="):
            skip = word == "--mode"
            continue
        words.append(word)
    return "python emotion_cnn.py " + shlex.join(words)


def batch_problem(args, free):
    """Why one training step of --batch-size faces cannot fit in `free` bytes, or None."""
    needed = args.batch_size * MODELS[args.model].bytes_per_face
    if free is not None and needed > free:
        return (f"--batch-size {args.batch_size:,} needs about {needed / 2**30:,.1f} GiB for "
                f"one step and {free / 2**30:.1f} GiB are free; choose a smaller --batch-size")
    return None


def run(args):
    if args.mode == "train":
        problem = batch_problem(args, plumbing.available_memory_bytes())
        if problem:
            raise plumbing.ArgumentMistake(problem)
    if args.erase and not args.augment:
        raise plumbing.ArgumentMistake("--erase erases part of augmented faces: add --augment")
    if args.mode == "train" and not args.dry_run:
        problem = plumbing.folder_problem(args.logs_dir, "--logs-dir")
        if problem:
            raise plumbing.ArgumentMistake(problem)
        checkpoints.start(args.logs_dir, "--logs-dir", settings_of(args), args.restart)
    # The augmentation's seed follows --seed, so a seeded run repeats. A run resumed from a
    # checkpoint does not repeat the uninterrupted one exactly: dropout's stream starts afresh.
    args.augment_seed = args.seed if args.seed is not None else int(np.random.randint(2**31))
    args.device = tf_setup.configure_devices(args.cpu)
    if args.seed is not None:
        tf_setup.make_deterministic(args.seed)
    data = EmotionUtils.read_data(args.data_dir)
    print("Train size: %s" % data.train_images.shape[0])
    print("Validation size: %s" % data.valid_images.shape[0])
    print("Test size: %s" % data.test_images.shape[0])
    return train(args, data) if args.mode == "train" else test(args, data)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = sys.argv[1:] if argv is None else [str(word) for word in argv]
    return plumbing.run_reporting_errors(lambda: run(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
