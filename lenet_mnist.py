"""LeNet-5-style CNN on MNIST: the first section of the CNN chapter.

    python lenet_mnist.py               # the book's run: 100 epochs (README: how long it takes)
    python lenet_mnist.py --epochs 3    # a short run

The network, the placeholder names and the per-epoch line `epoch accuracy-on-256-test-images` are
the book's; the file follows the section: data, weights, model, cost and optimiser, the loop.
What changed, and why (the extras follow under "Beyond the book"):
  * TensorFlow 2.x through `tf.compat.v1`; `input_data` is gone, so mnist_data.py downloads the
    four IDX files (checksummed) and splits them 55,000 / 5,000 / 10,000 as it did.
  * TensorFlow 2's `tf.nn.dropout` takes the *rate to drop*; the book passed the keep
    probability. The keep probabilities stay, converted, and default to 1.0 for evaluation.
  * conv2 is max-pooled after its ReLU, as conv1 and conv3 are; the book pooled the pre-ReLU
    tensor, leaving conv2 without a non-linearity.
  * Each epoch sees the training set in a new (seeded) order, and the last partial batch is used.
  * The book's text says conv3 is not pooled, while its listing pools it (FC_layer = max_pool of
    conv3) and its own 4x4x128 = 2048 needs the pooling: the script follows the listing.
"""

import time
from types import SimpleNamespace

import numpy as np

from book_support import checkpoints
from book_support import mnist_data
from book_support import plumbing
from book_support import tf_setup
from book_support.checkpoints import CheckpointFolder

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

IMAGE_SIZE = mnist_data.IMAGE_SIZE  # 28
NUM_CLASSES = mnist_data.NUM_CLASSES  # 10

# --------------------------------------------------------------------------------------------
# The book's model: weights, network, cost and optimiser
# --------------------------------------------------------------------------------------------


def init_weights(shape, name):
    return tf.Variable(tf.random_normal(shape, stddev=0.01), name=name)


def model(X, w, w2, w3, w4, w_o, p_keep_conv, p_keep_hidden, dropout_seed):
    dropout = seeded_dropout(dropout_seed)
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
        # The _v2 op is the book's softmax_cross_entropy_with_logits without its deprecation.
        Y_ = tf.nn.softmax_cross_entropy_with_logits_v2(logits=py_x, labels=Y)
        cost = tf.reduce_mean(Y_)
        optimizer = tf.train.RMSPropOptimizer(0.001, 0.9).minimize(cost)
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


# --------------------------------------------------------------------------------------------
# The book's loop: an epoch of batches, then a random sample of test images scored
# --------------------------------------------------------------------------------------------

def epoch_rng(seed, epoch):
    """The generator for one epoch: a resumed run shuffles exactly as an uninterrupted one."""
    return np.random.default_rng(None if seed is None else [seed, epoch])


def train_epoch(session, net, train, batch_size, rng, label, max_batches=None, ctrl_c=None):
    """One pass over `train` in a fresh order, with the book's dropout; returns the mean loss.
    Stops early, after the batch under way, once `ctrl_c.pressed`. The order and the dropout
    masks come from `rng` alone, so an epoch repeats exactly under the same seed."""
    order = rng.permutation(len(train.images))
    epoch_seed = int(rng.integers(2**31))
    starts = range(0, len(order), batch_size)[:max_batches]
    progress = plumbing.Progress(len(starts), label, unit=" batches")
    losses = []
    for number, start in enumerate(starts):
        if ctrl_c is not None and ctrl_c.pressed:
            break
        batch = order[start:start + batch_size]  # gather one batch, not a shuffled copy of all
        _, loss = session.run([net.optimizer, net.cost], feed_dict={
            net.X: train.images[batch], net.Y: train.labels[batch],
            net.p_keep_conv: 0.8, net.p_keep_hidden: 0.5,
            net.dropout_seed: [epoch_seed, 8 * number]})
        plumbing.stop_if_not_finite(loss, f"{label}, batch {number}",
                                    "the checkpoint of the last whole epoch is kept",
                                    "check the data, or try another --seed or --batch-size")
        losses.append(loss)
        progress.update()
    progress.close()
    return float(np.mean(losses)) if losses else float("nan")


def evaluate(session, net, data, batch_size=1000):
    """(number correct, mean loss) over `data`, with dropout off."""
    correct, loss_sum = 0, 0.0
    for start in range(0, len(data.images), batch_size):
        images, labels = data.images[start:start + batch_size], data.labels[start:start + batch_size]
        predictions, loss = session.run([net.predict_op, net.cost],
                                        feed_dict={net.X: images, net.Y: labels})
        correct += int(np.sum(predictions == np.argmax(labels, axis=1)))
        loss_sum += float(loss) * len(images)
    return correct, loss_sum / max(len(data.images), 1)


def first(data, size):
    return SimpleNamespace(images=data.images[:size], labels=data.labels[:size])


def sample(data, size, rng):
    """`size` random images of `data`, like the book's shuffled test_indices[0:test_size]."""
    indices = rng.permutation(len(data.images))[:size]
    return SimpleNamespace(images=data.images[indices], labels=data.labels[indices])


def train(args):
    check_arguments(args)
    if args.dry_run:  # a check of the set-up: nothing is read from or written to disk but data
        args.checkpoint_dir = args.logdir = args.plot = args.plot_inside = None
    checkpoints.start(args.checkpoint_dir, "--checkpoint-dir", settings_of(args), args.restart)
    device = tf_setup.configure_devices(args.cpu)
    if args.seed is not None:
        tf_setup.make_deterministic(args.seed)
    mnist = mnist_data.read_data_sets(args.data_dir, args.validation_size)
    if args.digit_index >= len(mnist.test.images):
        raise plumbing.ArgumentMistake(f"--digit-index {args.digit_index}: the test set has "
                                       f"digits 0 to {len(mnist.test.images) - 1}")
    max_batches, evaluation_limit = (3, 512) if args.dry_run else (None, None)
    epochs = 1 if args.dry_run else args.epochs
    validation, test = (first(mnist.validation, evaluation_limit),
                        first(mnist.test, evaluation_limit))

    net = build_graph(args.seed)
    print(f"LeNet-5: {tf_setup.count_weights(net.weights):,} weights; training on {device}")
    saved = CheckpointFolder(args.checkpoint_dir, net.saver, "--checkpoint-dir")
    writer = None
    if args.logdir:
        with net.graph.as_default():  # FileWriter refuses to start in eager mode
            writer = tf.summary.FileWriter(args.logdir, net.graph)
    with tf_setup.new_session(net.graph) as session, plumbing.CtrlC() as ctrl_c:
        epochs_done, history = resume(session, net, saved, epochs)
        for i in range(epochs_done, epochs):
            started = time.monotonic()
            rng = epoch_rng(args.seed, i)
            train_loss = train_epoch(session, net, mnist.train, args.batch_size, rng,
                                     f"epoch {i}", max_batches, ctrl_c)
            if ctrl_c.pressed:
                break
            test_sample = sample(mnist.test, args.test_size, rng)
            correct, _ = evaluate(session, net, test_sample)
            validation_correct, validation_loss = evaluate(session, net, validation)
            entry = {"epoch": i, "train_loss": train_loss, "validation_loss": validation_loss,
                     "test_sample_accuracy": correct / len(test_sample.images),
                     "validation_accuracy": validation_correct / len(validation.images)}
            history.append(entry)
            epochs_done = i + 1
            print(f"{i} {entry['test_sample_accuracy']}  validation accuracy "
                  f"{entry['validation_accuracy']:.4f}  loss {train_loss:.4f}  "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            if writer:
                write_scalars(writer, i, {k: v for k, v in entry.items() if k != "epoch"})
            save(session, net, saved, epochs_done, settings_of(args), history)
        if ctrl_c.pressed and epochs_done < epochs:
            if writer:
                writer.close()
            # The epoch under way is dropped: its half-trained weights saved as the end of the
            # last epoch would train those batches twice after a resume.
            if saved.folder and epochs_done:
                print(f"interrupted: the checkpoint after {epochs_done} epochs in "
                      f"{saved.folder} is kept; run the same command to resume")
            else:
                print("interrupted in the first epoch: nothing to keep")
            return 130
        correct, _ = evaluate(session, net, test)
        inside = args.plot_inside and inside_views(session, net, mnist.test, args.digit_index)
    if writer:
        writer.close()
    print(f"test accuracy: {correct / len(test.images):.4f} ({correct}/{len(test.images)})")
    if args.plot and history:
        plot_history(history, args.plot)
        print(f"saved the training curves to {args.plot}")
    if args.plot_inside:
        plot_inside(inside, args.plot_inside)
        print(f"saved conv1's kernels and the feature maps of test digit {args.digit_index} "
              f"to {args.plot_inside}")
    return 0


# --------------------------------------------------------------------------------------------
# Beyond the book: repeatable dropout, checkpoints that resume, TensorBoard, plots
# --------------------------------------------------------------------------------------------

def seeded_dropout(dropout_seed):
    """tf.nn.dropout whose masks follow a fed seed, a fresh one for each layer it is called
    for, instead of a random stream that restarts with every session: a run resumed from a
    checkpoint then drops exactly what the uninterrupted run would have."""
    layers = []

    def dropout(x, rate):
        layers.append(x)
        seed = tf.stack([dropout_seed[0], dropout_seed[1] + len(layers)])
        return tf.nn.experimental.stateless_dropout(x, rate=rate, seed=seed)
    return dropout


def settings_of(args):
    """What a run's checkpoints depend on, recorded with them."""
    return {"batch_size": args.batch_size, "validation_size": args.validation_size,
            "seed": args.seed}


def resume(session, net, saved, epochs):
    """(epochs done, history) from the newest checkpoint, or (0, []) for a fresh network. A
    checkpoint past `epochs` is refused: its result is not this run's."""
    latest = saved.restore_or_initialize(session, lambda s: s.run(net.initializer))
    if latest is None:
        return 0, []
    epochs_done = int(session.run(net.epochs_done))
    saved.refuse_if_past(epochs_done, epochs, "epochs", "--epochs")
    print(f"resuming from {saved.folder} after {epochs_done} epochs")
    return epochs_done, saved.record().get("history", [])[:epochs_done]


def save(session, net, saved, epochs_done, settings, history):
    tf_setup.load_variable(session, net.epochs_done, epochs_done)
    saved.save(session, epochs_done, settings, history=history)


def write_scalars(writer, step, values):
    summary = tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=value)
                                for tag, value in values.items()])
    writer.add_summary(summary, step)
    writer.flush()


def plot_history(history, path):
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


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def build_parser():
    parser = plumbing.argument_parser(
        "Train the book's LeNet-5-style CNN on MNIST (TensorFlow 2 via tf.compat.v1).")
    parser.add_argument("--data-dir", default=plumbing.native_path("data/MNIST-data"),
                        help="where the four MNIST .gz files are, or are downloaded to")
    parser.add_argument("--epochs", type=plumbing.count(1), default=100,
                        help="total epochs (the book's 100); a rerun with more continues")
    parser.add_argument("--batch-size", type=plumbing.count(1), default=128,
                        help="images per training step")
    parser.add_argument("--test-size", type=plumbing.count(1), default=256,
                        help="random test images scored after each epoch, as in the book")
    parser.add_argument("--validation-size", type=plumbing.count(1),
                        default=mnist_data.VALIDATION_SIZE,
                        help="training images held back for validation")
    parser.add_argument("--seed", type=plumbing.seed, default=None,
                        help="seed for weights, dropout and shuffling; also turns on "
                             "deterministic kernels (same seed, same numbers). Default: random")
    parser.add_argument("--checkpoint-dir", default=plumbing.native_path("checkpoints/lenet_mnist"),
                        help="checkpoint after every epoch here; the same command resumes "
                             "from it, other settings are refused")
    parser.add_argument("--restart", action="store_true",
                        help="start over: remove the checkpoints in --checkpoint-dir first")
    parser.add_argument("--logdir", default=None, help="write TensorBoard scalars here")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="save loss and accuracy curves as a PNG (a new file)")
    parser.add_argument("--plot-inside", metavar="PATH", default=None,
                        help="after training (or from a finished checkpoint), save conv1's "
                             "kernels and the conv1-3 maps of one test digit as a PNG")
    parser.add_argument("--digit-index", type=plumbing.count(0), default=0,
                        help="the test digit --plot-inside shows")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --plot and --plot-inside replace existing files")
    parser.add_argument("--dry-run", action="store_true",
                        help="one epoch of 3 batches, 512-image evaluations; nothing is written")
    tf_setup.add_device_option(parser)
    return parser


def check_arguments(args):
    """The command-line mistakes argparse cannot see, before any work."""
    outputs = {"--plot": args.plot, "--plot-inside": args.plot_inside}
    problem = plumbing.distinct_outputs_problem(outputs)
    for option, path in outputs.items():
        if path and checkpoints.owns(args.checkpoint_dir, path):
            problem = problem or f"{option} {path} is one of the checkpoint's own files"
        problem = problem or (path and plumbing.output_problem(path, option, args.overwrite))
    for option in ("--checkpoint-dir", "--logdir"):
        folder = getattr(args, option[2:].replace("-", "_"))
        problem = problem or (folder and plumbing.folder_problem(folder, option))
    if problem:
        raise plumbing.ArgumentMistake(problem)


# --------------------------------------------------------------------------------------------
# Inside the network (--plot-inside)
# --------------------------------------------------------------------------------------------

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


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: train(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
