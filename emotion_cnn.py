"""Emotion recognition: the chapter's facial-expression CNN and its training listing.

    python emotion_cnn.py                      # train 1001 iterations on data/EmotionDetector
    python emotion_cnn.py --mode test          # accuracy, confusion matrix, precision/recall

    # beyond the book: a stronger network and training aids (see "Beyond the book" below)
    python emotion_cnn.py --data-dir data/fer2013 --logs-dir logs/emotion_vgg --model vgg \\
        --augment --erase 0.5 --schedule cosine --precision bf16 \\
        --iterations 12000 --eval-every 500 --seed 1 --adjust-logits   # then: --mode test --tta

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
Beyond the book, each off by default so the book's run stays the book's, in book_support:
emotion_runs.py wraps the book's loop (resume, Ctrl-C, progress, a loss that is not finite,
the training curves in TensorBoard and `--plot`, drawn by training_curves.py);
emotion_early_stopping.py is `--patience` (the best checkpoint kept);
emotion_vgg.py is `--model vgg` (deeper, with batch norm; README: how it scores);
emotion_training_aids.py is `--augment`, `--erase` (random erasing), `--label-smoothing` and
`--schedule cosine` and `--optimizer sgd`, composed with the book's pieces by
emotion_training_graph.py; emotion_logit_adjustment.py is `--adjust-logits` (disgust answered
too); emotion_tta.py is `--tta` (each face averaged with its mirror image); emotion_report.py
the confusion matrix and precision/recall tables; emotion_options.py the options beyond the
book's three flags and their checks; tf_setup.py `--precision bf16` (bfloat16 on CPUs that
have it).
"""

import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import EmotionUtils
from book_support import emotion_logit_adjustment, emotion_options, emotion_report
from book_support import emotion_training_aids
from book_support import checkpoints, emotion_training_graph, emotion_tta, file_roles, plumbing
from book_support import tf_setup
from book_support.emotion_runs import TrainingRun, restore_for_testing

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

# --------------------------------------------------------------------------------------------
# The book, 使用 CNN 进行情感识别 (emotion recognition with CNNs): the model and its graph
# --------------------------------------------------------------------------------------------

BATCH_SIZE = 128
LEARNING_RATE = 1e-3
MAX_ITERATIONS = 1001
REGULARIZATION = 1e-2
KEEP_PROB = 0.5
IMAGE_SIZE = EmotionUtils.IMAGE_SIZE
NUM_LABELS = EmotionUtils.NUM_LABELS
EVALUATION_BATCH = 512
EVALUATE_EVERY = 100


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
# The book, 使用 CNN 进行情感识别 (emotion recognition with CNNs): the training loop
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


def training_loop(sess, net, data, args, training):
    """The book's loop: a batch and a training step, the training loss every 10 steps, the
    validation loss and a checkpoint every --eval-every (the book's 100). `training` gives the
    steps and is told of each, and of each validation, with their losses and accuracies (a
    TrainingRun, book_support/emotion_runs.py: they are the training curves)."""
    for step in training.steps():
        batch_image, batch_label = get_next_batch(data.train_images, data.train_labels, step,
                                                  args.batch_size)
        feed_dict = training_feed(net, args, batch_image, batch_label, step)
        _, batch_loss, predicted = sess.run(
            [net.train_op, net.cross_entropy_loss, net.predictions], feed_dict=feed_dict)
        training.step_done(step, batch_loss, accuracy(predicted, batch_label))
        if step % 10 == 0:
            train_loss, summary_str = sess.run([net.loss_val, net.summary_op], feed_dict)
            training.training_loss(step, train_loss, summary_str)
            print("Training Loss: %f" % train_loss, flush=True)
        if step % args.eval_every == 0 or step == training.last_step:
            valid_loss, predicted = evaluate(sess, net, data.valid_images, data.valid_labels)
            valid_accuracy = accuracy(predicted, data.valid_labels)
            training.validation(step, valid_loss, valid_accuracy)
            print("%s Validation Loss: %f  Validation Accuracy: %.4f" % (
                datetime.now(), valid_loss, valid_accuracy), flush=True)
            training.save(sess, step)
            if training.stops_early(sess, valid_loss, step):
                break


# --------------------------------------------------------------------------------------------
# Beyond the book: the runs around the book's loop, the graph and feed its options ask for
# --------------------------------------------------------------------------------------------

def train(args, data):
    # A dry run neither resumes nor writes: no checkpoint, no TensorBoard file, no folder.
    logs_dir = None if args.dry_run else Path(args.logs_dir)
    iterations = min(args.iterations, 3) if args.dry_run else args.iterations
    net = graph_for(args, iterations)
    print(f"emotion CNN ({args.model} network): {tf_setup.count_weights(net.variables):,} "
          f"parameters; training on {args.device}"
          + (", bf16" if args.precision == "bf16" else ""))
    training = TrainingRun(net, logs_dir, iterations, emotion_options.settings_of(args),
                           args.patience, identify=emotion_options.other_network(net),
                           plot=args.plot)
    session = tf_setup.new_session(net.graph, args.precision, float16_on_gpus=False)
    with session as sess, training:
        if not training.start(sess):  # early stopping had stopped this run before
            return 0
        training_loop(sess, net, data, args, training)
        code = training.finish(sess)
        if code == 0 and args.adjust_logits:
            adjust_logits(sess, net, data, training)
    if code == 0 and logs_dir:
        print(emotion_options.next_steps(args, training.saved.newest(), build_parser()))
    return code


def test(args, data):
    if not len(data.test_images):
        raise plumbing.UserError(f"{args.data_dir} has no test faces (fer2013.csv: no "
                                 f"PublicTest rows), so there is nothing to test on")
    net = graph_for(args)
    with tf_setup.new_session(net.graph) as sess:
        checkpoint = restore_for_testing(sess, net, args.logs_dir, args.command_line,
                                         identify=emotion_options.other_network(net))
        print(f"checkpoint: {checkpoint}")
        evaluate_faces = emotion_tta.evaluate_with_mirror if args.tta else evaluate
        _, predicted = evaluate_faces(sess, net, data.valid_images, data.valid_labels)
        print("Validation accuracy: %.4f" % accuracy(predicted, data.valid_labels))
        if data.test_labels is None:
            raise plumbing.UserError("the test set has no Emotion column, so its accuracy "
                                     "cannot be measured")
        test_loss, predicted = evaluate_faces(sess, net, data.test_images, data.test_labels)
    right = int(np.sum(predicted == np.argmax(data.test_labels, axis=1)))
    print(f"Test accuracy: {right / len(predicted):.4f} ({right}/{len(predicted)})  "
          f"loss {test_loss:.4f}")
    matrix = emotion_report.confusion_matrix(predicted, data.test_labels)
    figure = f"confusion_matrix-{Path(checkpoint).name}{'-tta' if args.tta else ''}.png"
    emotion_report.report(matrix, EmotionUtils.emotion,
                          None if args.dry_run else Path(args.logs_dir) / figure)
    return 0


def graph_for(args, iterations=MAX_ITERATIONS):
    """The book's graph for the book's settings; otherwise the book's pieces with the extras
    asked for. Both hold the same variables for the book's network, so each resumes the
    other's checkpoints."""
    if not emotion_options.asks_for_extras(args):
        return build_graph(args.seed)
    return build_training_graph(args.seed, args.model, args.schedule, iterations, args.erase,
                                args.label_smoothing, args.optimizer,
                                emotion_options.learning_rate(args))


def build_training_graph(seed=None, model="book", schedule="constant",
                         iterations=MAX_ITERATIONS, erase=0.0, label_smoothing=0.0,
                         optimizer="adam", learning_rate=LEARNING_RATE):
    """The book's pieces with the extras composed around them (emotion_training_graph.py)."""
    book = SimpleNamespace(inputs=graph_inputs, variables=book_variables, network=emotion_cnn,
                           loss=loss, finished=finished, regularization=REGULARIZATION)
    return emotion_training_graph.build(book, seed, model, schedule, iterations, erase,
                                        label_smoothing, optimizer, learning_rate)


def adjust_logits(sess, net, data, training):
    """--adjust-logits: each logit shifted by tau * log(its emotion's share of the training
    faces), tau chosen on the validation faces (book_support/emotion_logit_adjustment.py),
    and the last checkpoint saved again with it."""
    def probabilities_of(faces):  # mirror-averaged, as --tta reads them: a steadier choice
        return emotion_tta.scores_in_batches(
            lambda batch: sess.run(net.output_pred, {net.input_dataset: batch}), faces, tta=True)
    tau, table = emotion_logit_adjustment.fit(sess, net, data.valid_images, data.valid_labels,
                                              np.mean(data.train_labels, axis=0),
                                              probabilities_of)
    print(emotion_logit_adjustment.said(tau, table))
    if training.logs_dir:
        training.save(sess, int(sess.run(net.global_step)) - 1)


def training_feed(net, args, batch_image, batch_label, step):
    """The book's feed with dropout's keep_prob, and the switches of a graph with extras."""
    return {net.input_dataset: batch_image, net.input_labels: batch_label,
            net.keep_prob: KEEP_PROB, **emotion_training_graph.switches_fed(net, args, step)}


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def build_parser():
    """The book's three flags, then the options beyond them (book_support/emotion_options.py)."""
    parser = plumbing.argument_parser(
        "Train (or test) the book's emotion-recognition CNN on 48x48 faces.")
    file_roles.reads(parser.add_argument(
        "--data-dir", "--data_dir", default=plumbing.native_path("data/EmotionDetector"),
        help="train.csv + test.csv (the book's layout) or fer2013.csv, each also .csv.gz, or "
             "fer2013.tar.gz; malformed rows are skipped with a warning"), file_roles.FOLDER)
    file_roles.keeps_state(parser.add_argument(
        "--logs-dir", "--logs_dir", default=plumbing.native_path("logs/EmotionDetector_logs"),
        help="checkpoints (every 100 steps; the same command resumes, other settings are "
             "refused) and TensorBoard"), checkpoints.owns)
    parser.add_argument("--mode", choices=("train", "test"), default="train",
                        help="train (resuming from LOGS_DIR), or score the newest checkpoint")
    emotion_options.add_options(parser, MAX_ITERATIONS, BATCH_SIZE, EVALUATE_EVERY)
    return parser


def run(args):
    emotion_options.before_any_work(args)
    args.augment_seed = emotion_training_aids.augment_seed(args.seed)
    args.device = tf_setup.configure_devices(args.cpu)
    tf_setup.make_deterministic(args.seed)
    data = EmotionUtils.read_data(args.data_dir, keep_cache=not args.dry_run)
    emotion_options.hold_logs(args, data)
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
