"""LeNet-5-style CNN on MNIST: the first section of the CNN chapter.

    python lenet_mnist.py               # the book's run: 100 epochs (README: how long it takes)
    python lenet_mnist.py --epochs 3    # a short run

The network, the placeholder names, the hyper-parameters and the per-epoch line
`epoch accuracy-on-256-test-images` are the book's; the file follows the section: data, weights,
model, cost and optimiser, the loop. What changed, and why:
  * TensorFlow 2.x through `tf.compat.v1`; `input_data` is gone, so book_support/mnist_data.py
    downloads the four IDX files (checksummed) and splits them 55,000 / 5,000 / 10,000 as it did.
  * TensorFlow 2's `tf.nn.dropout` takes the *rate to drop*; the book passed the keep
    probability. The keep probabilities stay, converted, and default to 1.0 for evaluation.
  * conv2 is max-pooled after its ReLU, as conv1 and conv3 are; the book pooled the pre-ReLU
    tensor, leaving conv2 without a non-linearity.
  * Each epoch sees the training set in a new (seeded) order, and the last partial batch is used.
  * The book's text says conv3 is not pooled, while its listing pools it (FC_layer = max_pool of
    conv3) and its own 4x4x128 = 2048 needs the pooling: the script follows the listing.
After the book's code, "Beyond the book" wraps its loop from outside: checkpoints that resume
(book_support/lenet_runs.py, on book_support/checkpoints.py), Ctrl-C and progress
(book_support/plumbing.py), repeatable dropout (book_support/tf_setup.py), the training curves
as TensorBoard scalars and the --plot picture (book_support/training_curves.py), and the
--plot-inside picture (book_support/lenet_plots.py).
"""

import time
from types import SimpleNamespace

import numpy as np

from book_support import checkpoints, file_roles, lenet_plots, lenet_runs, mnist_data
from book_support import plumbing, tf_setup, training_curves
from book_support.checkpoints import CheckpointFolder

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

# --------------------------------------------------------------------------------------------
# The book, 逐步实现 LeNet-5 (LeNet-5, implemented step by step)
# --------------------------------------------------------------------------------------------

BATCH_SIZE = 128  # images per training step
TEST_SIZE = 256  # random test images scored after each epoch
IMAGE_SIZE = mnist_data.IMAGE_SIZE  # 28
NUM_CLASSES = mnist_data.NUM_CLASSES  # 10
KEEP_CONV = 0.8  # the keep probability of the convolutions' dropout while training
KEEP_HIDDEN = 0.5  # and of the fully connected layer's
LEARNING_RATE, DECAY = 0.001, 0.9  # RMSProp's, as Hinton suggests
EPOCHS = 100


def init_weights(shape, name):
    return tf.Variable(tf.random_normal(shape, stddev=0.01), name=name)


def model(X, w, w2, w3, w4, w_o, p_keep_conv, p_keep_hidden, dropout_seed):
    dropout = tf_setup.seeded_dropout(dropout_seed)
    conv1 = dropout(conv_relu_pool(X, w), rate=1 - p_keep_conv)      # 14x14x32
    conv2 = dropout(conv_relu_pool(conv1, w2), rate=1 - p_keep_conv)  # 7x7x64
    conv3 = conv_relu_pool(conv2, w3)                                # 4x4x128
    FC_layer = tf.reshape(conv3, [-1, w4.get_shape().as_list()[0]])
    FC_layer = dropout(FC_layer, rate=1 - p_keep_conv)
    output_layer = tf.nn.relu(tf.matmul(FC_layer, w4))
    output_layer = dropout(output_layer, rate=1 - p_keep_hidden)
    return tf.matmul(output_layer, w_o)


def conv_relu_pool(inputs, weights):
    conv = tf.nn.conv2d(inputs, weights, strides=[1, 1, 1, 1], padding="SAME")
    pooled = tf.nn.max_pool(tf.nn.relu(conv), ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1],
                            padding="SAME")
    tf.add_to_collection("feature_maps", pooled)  # for --plot-inside
    return pooled


def build_graph(seed=None):
    """The book's graph plus an epoch counter and a saver, in a graph of its own."""
    graph = tf.Graph()
    with graph.as_default():
        if seed is not None:
            tf.set_random_seed(seed)
        X = tf.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 1], name="X")
        Y = tf.placeholder(tf.float32, [None, NUM_CLASSES], name="Y")
        w = init_weights([3, 3, 1, 32], "w")
        w2 = init_weights([3, 3, 32, 64], "w2")
        w3 = init_weights([3, 3, 64, 128], "w3")
        w4 = init_weights([128 * 4 * 4, 625], "w4")
        w_o = init_weights([625, NUM_CLASSES], "w_o")
        # Defaults of 1.0: anything that does not ask for dropout (evaluation) gets none.
        p_keep_conv = tf.placeholder_with_default(1.0, shape=[], name="p_keep_conv")
        p_keep_hidden = tf.placeholder_with_default(1.0, shape=[], name="p_keep_hidden")
        dropout_seed = tf.placeholder_with_default(tf.zeros([2], tf.int64), shape=[2],
                                                   name="dropout_seed")
        py_x = model(X, w, w2, w3, w4, w_o, p_keep_conv, p_keep_hidden, dropout_seed)
        Y_ = tf.nn.softmax_cross_entropy_with_logits_v2(logits=py_x, labels=Y)
        cost = tf.reduce_mean(Y_)
        optimizer = tf.train.RMSPropOptimizer(LEARNING_RATE, DECAY).minimize(cost)
        predict_op = tf.argmax(py_x, 1)
        epochs_done = tf.Variable(0, trainable=False, name="epochs_done")
        saver = tf.train.Saver(max_to_keep=1)
        initializer = tf.global_variables_initializer()
    graph.finalize()  # nothing may add ops inside the training loop
    return SimpleNamespace(graph=graph, X=X, Y=Y, p_keep_conv=p_keep_conv,
                           p_keep_hidden=p_keep_hidden, dropout_seed=dropout_seed, py_x=py_x,
                           cost=cost,
                           optimizer=optimizer, predict_op=predict_op, epochs_done=epochs_done,
                           saver=saver, initializer=initializer,
                           weights=[w, w2, w3, w4, w_o],
                           feature_maps=graph.get_collection("feature_maps"))


def training(session, net, mnist, epochs, first_epoch=0, seed=None, batch_size=BATCH_SIZE,
             test_size=TEST_SIZE, max_batches=None, ctrl_c=None):
    """The book's loop: each epoch, the training batches with dropout, then `test_size` random
    test images scored. Yields (epoch, mean training loss, training accuracy, accuracy on those
    test images) after each epoch; stops, the epoch unfinished, once `ctrl_c.pressed`."""
    for i in range(first_epoch, epochs):
        rng = epoch_rng(seed, i)
        train_loss, train_accuracy = train_epoch(session, net, mnist.train, batch_size, rng,
                                                 f"epoch {i}", max_batches, ctrl_c)
        if ctrl_c is not None and ctrl_c.pressed:
            return
        test_indices = rng.permutation(len(mnist.test.images))[:test_size]
        correct, _ = evaluate(session, net, subset(mnist.test, test_indices))
        yield i, train_loss, train_accuracy, correct / len(test_indices)


def train_epoch(session, net, train, batch_size, rng, label, max_batches=None, ctrl_c=None):
    """One pass over `train` in a fresh order, with the book's dropout; returns the mean loss
    and the accuracy of its batches (as the step saw them, with dropout). Stops early, after the
    batch under way, once `ctrl_c.pressed`. The order and the dropout masks come from `rng`
    alone, so an epoch repeats exactly under the same seed."""
    order = rng.permutation(len(train.images))
    epoch_seed = int(rng.integers(2**31))
    starts = range(0, len(order), batch_size)[:max_batches]
    progress = plumbing.Progress(len(starts), label, unit=" batches")
    losses, correct, seen = [], 0, 0
    for number, start in enumerate(starts):
        if ctrl_c is not None and ctrl_c.pressed:
            break
        batch = order[start:start + batch_size]  # gather one batch, not a shuffled copy of all
        _, loss, predictions = session.run([net.optimizer, net.cost, net.predict_op], feed_dict={
            net.X: train.images[batch], net.Y: train.labels[batch],
            net.p_keep_conv: KEEP_CONV, net.p_keep_hidden: KEEP_HIDDEN,
            net.dropout_seed: [epoch_seed, 8 * number]})
        plumbing.stop_if_not_finite(loss, f"{label}, batch {number}",
                                    "the checkpoint of the last whole epoch is kept",
                                    "check the data, or try another --seed or --batch-size")
        losses.append(loss)
        correct += int(np.sum(predictions == np.argmax(train.labels[batch], axis=1)))
        seen += len(batch)
        progress.update()
    progress.close()
    if not losses:
        return float("nan"), float("nan")
    return float(np.mean(losses)), correct / seen


def evaluate(session, net, data, batch_size=1000):
    """(number correct, mean loss) over `data`, with dropout off."""
    correct, loss_sum = 0, 0.0
    for start in range(0, len(data.images), batch_size):
        batch = slice(start, start + batch_size)
        images, labels = data.images[batch], data.labels[batch]
        predictions, loss = session.run([net.predict_op, net.cost],
                                        feed_dict={net.X: images, net.Y: labels})
        correct += int(np.sum(predictions == np.argmax(labels, axis=1)))
        loss_sum += float(loss) * len(images)
    return correct, loss_sum / max(len(data.images), 1)


def epoch_rng(seed, epoch):
    """The generator for one epoch: a resumed run shuffles exactly as an uninterrupted one."""
    return np.random.default_rng(None if seed is None else [seed, epoch])


def subset(data, indices):
    return SimpleNamespace(images=data.images[indices], labels=data.labels[indices])


# --------------------------------------------------------------------------------------------
# Beyond the book: the run around the book's loop (book_support/lenet_runs.py, training_curves.py)
# --------------------------------------------------------------------------------------------

def run(args):
    if args.dry_run:  # a check of the set-up: nothing is read from or written to disk but data
        args.checkpoint_dir = args.logdir = args.plot = args.plot_inside = None
    if args.checkpoint_dir:  # held first: a second run on the folder is refused at once
        checkpoints.lock(args.checkpoint_dir, "--checkpoint-dir")
    mnist = mnist_data.read_data_sets(args.data_dir, args.validation_size)
    settings = lenet_runs.settings_of(args, mnist.train)
    checkpoints.start(args.checkpoint_dir, "--checkpoint-dir", settings, args.restart)
    device = tf_setup.configure_devices(args.cpu)
    tf_setup.make_deterministic(args.seed)
    if args.digit_index >= len(mnist.test.images):
        raise plumbing.ArgumentMistake(f"--digit-index {args.digit_index}: the test set has "
                                       f"digits 0 to {len(mnist.test.images) - 1}")
    max_batches, evaluation_limit = (3, 512) if args.dry_run else (None, None)
    epochs = 1 if args.dry_run else args.epochs
    validation, test = (subset(mnist.validation, slice(evaluation_limit)),
                        subset(mnist.test, slice(evaluation_limit)))

    net = build_graph(args.seed)
    print(f"LeNet-5: {tf_setup.count_weights(net.weights):,} weights; training on {device}")
    saved = CheckpointFolder(args.checkpoint_dir, net.saver, "--checkpoint-dir")
    with training_curves.scalar_writer(args.logdir, net.graph) as write_scalars, \
            tf_setup.new_session(net.graph) as session, plumbing.CtrlC() as ctrl_c:
        epochs_done, history = lenet_runs.resume(session, net, saved, epochs)
        started = time.monotonic()
        for i, train_loss, train_accuracy, accuracy in training(
                session, net, mnist, epochs, epochs_done, args.seed, args.batch_size,
                args.test_size, max_batches, ctrl_c):
            validation_correct, validation_loss = evaluate(session, net, validation)
            entry = {"epoch": i, "train_loss": train_loss, "validation_loss": validation_loss,
                     "train_accuracy": train_accuracy, "test_sample_accuracy": accuracy,
                     "validation_accuracy": validation_correct / len(validation.images)}
            history.append(entry)
            epochs_done = i + 1
            print(f"{i} {accuracy}  validation accuracy {entry['validation_accuracy']:.4f}  "
                  f"loss {train_loss:.4f}  ({time.monotonic() - started:.0f} s)", flush=True)
            write_scalars(i, entry)
            lenet_runs.save(session, net, saved, epochs_done, settings, history)
            started = time.monotonic()
        if ctrl_c.pressed and epochs_done < epochs:
            return lenet_runs.interrupted(saved, epochs_done)
        correct, _ = evaluate(session, net, test)
        inside = args.plot_inside and lenet_plots.inside_views(session, net, mnist.test,
                                                               args.digit_index)
    print(f"test accuracy: {correct / len(test.images):.4f} ({correct}/{len(test.images)})")
    if args.plot and history:
        training_curves.plot(history, "epoch", args.plot, "LeNet-5 on MNIST")
        print(f"saved the training curves to {args.plot}")
    if args.plot_inside:
        lenet_plots.plot_inside(inside, args.plot_inside)
        print(f"saved conv1's kernels and the feature maps of test digit {args.digit_index} "
              f"to {args.plot_inside}")
    return 0


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def build_parser():
    parser = plumbing.argument_parser(
        "Train the book's LeNet-5-style CNN on MNIST (TensorFlow 2 via tf.compat.v1).")
    file_roles.reads(parser.add_argument(
        "--data-dir", default=plumbing.native_path("data/MNIST-data"),
        help="where the four MNIST .gz files are, or are downloaded to"), file_roles.FOLDER)
    parser.add_argument("--epochs", type=plumbing.count(1), default=EPOCHS,
                        help="total epochs (the book's 100); a rerun with more continues")
    parser.add_argument("--batch-size", type=plumbing.count(1), default=BATCH_SIZE,
                        help="images per training step")
    parser.add_argument("--test-size", type=plumbing.count(1), default=TEST_SIZE,
                        help="random test images scored after each epoch, as in the book")
    parser.add_argument("--validation-size", type=plumbing.count(1),
                        default=mnist_data.VALIDATION_SIZE,
                        help="training images held back for validation")
    parser.add_argument("--seed", type=plumbing.seed, default=None,
                        help="seed for weights, dropout and shuffling; also turns on "
                             "deterministic kernels (same seed, same numbers). Default: random")
    file_roles.keeps_state(parser.add_argument(
        "--checkpoint-dir", default=plumbing.native_path("checkpoints/lenet_mnist"),
        help="checkpoint after every epoch here; the same command resumes from it, other "
             "settings are refused"), checkpoints.owns)
    parser.add_argument("--restart", action="store_true",
                        help="start over: remove the checkpoints in --checkpoint-dir first")
    file_roles.writes(parser.add_argument(
        "--logdir", default=None,
        help="write TensorBoard scalars here after every epoch: loss and accuracy, training "
             "and validation (then: tensorboard --logdir DIR)"), file_roles.FOLDER)
    file_roles.writes(parser.add_argument(
        "--plot", metavar="PATH", default=None,
        help="save the loss and accuracy curves, training and validation, as a PNG (a new "
             "file); also from a finished checkpoint"))
    file_roles.writes(parser.add_argument(
        "--plot-inside", metavar="PATH", default=None,
        help="after training (or from a finished checkpoint), save conv1's kernels and the "
             "conv1-3 maps of one test digit as a PNG"))
    plumbing.applies_only(parser.add_argument(
        "--digit-index", type=plumbing.count(0), default=0,
        help="the test digit --plot-inside shows"), "with --plot-inside",
        lambda args: args.plot_inside is not None)
    parser.add_argument("--overwrite", action="store_true",
                        help="let --plot and --plot-inside replace existing files")
    parser.add_argument("--dry-run", action="store_true",
                        help="one epoch of 3 batches, 512-image evaluations; nothing is written")
    tf_setup.add_device_option(parser)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: run(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
