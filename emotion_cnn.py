"""Emotion recognition: the chapter's facial-expression CNN (the book's EmotionDetector.py).

    python emotion_cnn.py                      # train 1001 iterations on data/EmotionDetector
    python emotion_cnn.py --mode test          # accuracy and confusion matrix of the last checkpoint

The network, variable names (`W_conv1`, `b_conv1`, ...), the `input` and `output` tensors, the
L2 regularisation, Adam and the printed lines are the book's. What changed, and why:
  * `tf.flags` and `tf.app` are gone from TensorFlow 2: argparse, with the book's `--data_dir`
    and `--logs_dir` spellings kept as aliases.
  * The book baked dropout (keep 0.5) into the graph, so its saved model answered differently on
    every run. Here dropout comes from `keep_prob`, a placeholder that defaults to 1.0: training
    feeds 0.5, everything else gets the deterministic network.
  * The validation loss is the cross-entropy alone (the book added the L2 term to it), and the
    validation accuracy is printed beside it.
  * Batches wrap around the whole training set (the book's offsets skipped its last images).
"""

from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import EmotionUtils
import plumbing

with plumbing.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

BATCH_SIZE = 128
LEARNING_RATE = 1e-3
MAX_ITERATIONS = 1001
REGULARIZATION = 1e-2
KEEP_PROB = 0.5
IMAGE_SIZE = EmotionUtils.IMAGE_SIZE
NUM_LABELS = EmotionUtils.NUM_LABELS
EVALUATION_BATCH = 512

# --------------------------------------------------------------------------------------------
# Model: the book's network
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


def build_graph(seed=None):
    """The book's graph in a graph of its own, with the tensors the scripts use."""
    graph = tf.Graph()
    with graph.as_default():
        if seed is not None:
            tf.set_random_seed(seed)
        weights = {
            "wc1": weight_variable([5, 5, 1, 32], name="W_conv1"),
            "wc2": weight_variable([3, 3, 32, 64], name="W_conv2"),
            "wf1": weight_variable([(IMAGE_SIZE // 4) * (IMAGE_SIZE // 4) * 64, 256],
                                   name="W_fc1"),
            "wf2": weight_variable([256, NUM_LABELS], name="W_fc2"),
        }
        biases = {
            "bc1": bias_variable([32], name="b_conv1"),
            "bc2": bias_variable([64], name="b_conv2"),
            "bf1": bias_variable([256], name="b_fc1"),
            "bf2": bias_variable([NUM_LABELS], name="b_fc2"),
        }
        # Named as the book's unnamed global step, so the book's own .meta can restore from
        # checkpoints written here.
        global_step = tf.Variable(0, trainable=False, name="Variable")
        keep_prob = tf.placeholder_with_default(1.0, shape=[], name="keep_prob")
        input_dataset = tf.placeholder(tf.float32, [None, IMAGE_SIZE, IMAGE_SIZE, 1],
                                       name="input")
        input_labels = tf.placeholder(tf.float32, [None, NUM_LABELS], name="labels")
        pred = emotion_cnn(input_dataset, weights, biases, keep_prob)
        output_pred = tf.nn.softmax(pred, name="output")
        cross_entropy_loss = tf.reduce_mean(
            tf.nn.softmax_cross_entropy_with_logits_v2(logits=pred, labels=input_labels))
        tf.summary.scalar("Entropy", cross_entropy_loss)
        reg_losses = tf.add_n(tf.get_collection("losses"))
        tf.summary.scalar("Reg_loss", reg_losses)
        loss_val = cross_entropy_loss + REGULARIZATION * reg_losses
        train_op = tf.train.AdamOptimizer(LEARNING_RATE).minimize(loss_val, global_step)
        predictions = tf.argmax(pred, 1, name="predictions")
        summary_op = tf.summary.merge_all()
        saver = tf.train.Saver()
        initializer = tf.global_variables_initializer()
    graph.finalize()
    return SimpleNamespace(
        graph=graph, input_dataset=input_dataset, input_labels=input_labels,
        keep_prob=keep_prob, output_pred=output_pred, loss_val=loss_val,
        cross_entropy_loss=cross_entropy_loss, train_op=train_op, predictions=predictions,
        global_step=global_step, summary_op=summary_op, saver=saver, initializer=initializer,
        variables=list(weights.values()) + list(biases.values()))


def count_parameters(net):
    return sum(int(np.prod(v.get_shape().as_list())) for v in net.variables)


# --------------------------------------------------------------------------------------------
# Training and evaluation
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


def restore_latest(session, net, logs_dir):
    """Restore the newest checkpoint in `logs_dir`; returns its path, or None if there is none."""
    latest = tf.train.latest_checkpoint(str(logs_dir))
    if latest is None:
        return None
    try:
        net.saver.restore(session, latest)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError):
        raise plumbing.UserError(f"{latest} is not a checkpoint of this network (or is missing "
                                 f"its .data file); choose another --logs-dir") from None
    return latest


def save_checkpoint(session, net, logs_dir, step):
    net.saver.save(session, str(Path(logs_dir) / "model.ckpt"), global_step=step)


def train(args, data):
    # A dry run neither resumes nor writes: no checkpoint, no TensorBoard file, no folder.
    logs_dir = None if args.dry_run else Path(args.logs_dir)
    iterations = min(args.iterations, 3) if args.dry_run else args.iterations
    net = build_graph(args.seed)
    print(f"emotion CNN: {count_parameters(net):,} parameters; training on {args.device}")
    summary_writer = None
    if logs_dir:
        logs_dir.mkdir(parents=True, exist_ok=True)
        with net.graph.as_default():  # FileWriter refuses to start in eager mode
            summary_writer = tf.summary.FileWriter(str(logs_dir), net.graph)
    with plumbing.new_session(net.graph) as sess, plumbing.CtrlC() as ctrl_c:
        sess.run(net.initializer)
        if logs_dir and restore_latest(sess, net, logs_dir):
            print("Model Restored!")
        first = int(sess.run(net.global_step))
        progress = plumbing.Progress(max(iterations - first, 0), "training", unit=" steps")
        steps_done = first
        try:
            for step in range(first, iterations):
                if ctrl_c.pressed:
                    break
                batch_image, batch_label = get_next_batch(data.train_images, data.train_labels,
                                                          step, args.batch_size)
                feed_dict = {net.input_dataset: batch_image, net.input_labels: batch_label,
                             net.keep_prob: KEEP_PROB}
                sess.run(net.train_op, feed_dict=feed_dict)
                steps_done = step + 1
                progress.update()
                if step % 10 == 0:
                    train_loss, summary_str = sess.run([net.loss_val, net.summary_op], feed_dict)
                    if summary_writer:
                        summary_writer.add_summary(summary_str, global_step=step)
                    print("Training Loss: %f" % train_loss, flush=True)
                if step % 100 == 0 or step == iterations - 1:
                    valid_loss, predicted = evaluate(sess, net, data.valid_images,
                                                     data.valid_labels)
                    print("%s Validation Loss: %f  Validation Accuracy: %.4f" % (
                        datetime.now(), valid_loss, accuracy(predicted, data.valid_labels)),
                        flush=True)
                    if logs_dir:
                        save_checkpoint(sess, net, logs_dir, step)
        finally:
            if summary_writer:
                summary_writer.close()
        if ctrl_c.pressed and steps_done < iterations:
            if logs_dir:
                save_checkpoint(sess, net, logs_dir, steps_done - 1)
                print(f"interrupted: saved a checkpoint after {steps_done} iterations in "
                      f"{logs_dir}; run the same command to resume")
            return 130
        if first >= iterations:
            print(f"{logs_dir} already holds {first} iterations (--iterations {iterations})")
        else:
            progress.close()
    return 0


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


def test(args, data):
    net = build_graph()
    with plumbing.new_session(net.graph) as sess:
        checkpoint = restore_latest(sess, net, args.logs_dir)
        if checkpoint is None:
            raise plumbing.UserError(f"no checkpoint in {args.logs_dir}: train first "
                                     f"(python emotion_cnn.py --logs-dir {args.logs_dir})")
        print(f"checkpoint: {checkpoint}")
        _, predicted = evaluate(sess, net, data.valid_images, data.valid_labels)
        print("Validation accuracy: %.4f" % accuracy(predicted, data.valid_labels))
        if data.test_labels is None:
            raise plumbing.UserError("the test set has no Emotion column, so its accuracy "
                                     "cannot be measured")
        test_loss, predicted = evaluate(sess, net, data.test_images, data.test_labels)
    right = int(np.sum(predicted == np.argmax(data.test_labels, axis=1)))
    print(f"Test accuracy: {right / len(predicted):.4f} ({right}/{len(predicted)})  "
          f"loss {test_loss:.4f}")
    matrix = confusion_matrix(predicted, data.test_labels)
    print_confusion(matrix)
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


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def build_parser():
    parser = plumbing.argument_parser(
        "Train (or test) the book's emotion-recognition CNN on 48x48 faces.")
    parser.add_argument("--data-dir", "--data_dir", default="data/EmotionDetector",
                        help="train.csv + test.csv (the book's layout) or fer2013.csv; "
                             "malformed rows are skipped with a warning")
    parser.add_argument("--logs-dir", "--logs_dir", default="logs/EmotionDetector_logs",
                        help="checkpoints (every 100 steps; a rerun resumes) and TensorBoard")
    parser.add_argument("--mode", choices=("train", "test"), default="train",
                        help="train (resuming from LOGS_DIR), or score the newest checkpoint")
    parser.add_argument("--iterations", type=int, default=MAX_ITERATIONS,
                        help="training steps in all (the book's 1001)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help="faces per training step")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for weights and dropout, with deterministic kernels. "
                             "Default: random (the validation split always uses seed 0)")
    parser.add_argument("--dry-run", action="store_true",
                        help="train 3 iterations to check the set-up; nothing is saved")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is there")
    return parser


def run(args):
    if args.iterations < 1 or args.batch_size < 1:
        raise plumbing.UserError("--iterations and --batch-size must be at least 1")
    args.device = plumbing.configure_devices(args.cpu)
    if args.seed is not None:
        plumbing.make_deterministic(args.seed)
    data = EmotionUtils.read_data(args.data_dir)
    print("Train size: %s" % data.train_images.shape[0])
    print("Validation size: %s" % data.valid_images.shape[0])
    print("Test size: %s" % data.test_images.shape[0])
    return train(args, data) if args.mode == "train" else test(args, data)


def main(argv=None):
    args = build_parser().parse_args(argv)
    return plumbing.run_reporting_errors(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
