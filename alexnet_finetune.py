"""Fine-tune AlexNet to tell dogs from cats (the book's alexnet_finetune.py).

    python prep_images.py data/dogs-vs-cats/train data/dogs-vs-cats/prepared
    python alexnet_finetune.py

Keeps the pretrained layers, replaces fc8 with a new 4096 -> 2 layer (cat, dog) and trains only
the layers named by --train-layers (fc8, as the book). Prints the book's line every
--display-step, saves a checkpoint, then scores the test folder. Ctrl-C saves a checkpoint
after the step under way, and the same command resumes from it.

What changed, and why:
  * The loss takes the logits. The book fed the softmax *probabilities* into
    softmax_cross_entropy_with_logits, a second softmax that flattens the gradient.
  * Dropout (keep 0.85) is really applied to fc6 and fc7 while training (the book defined
    keep_prob and never used it) and is off for evaluation.
  * Each epoch visits every training image in a new order; the book re-created its batch
    generator every step and so only ever drew a fresh first batch.
  * Preprocessing is alexnet_forward.py's (RGB to BGR, ImageNet mean, 227x227) for training
    and testing alike; the book mean-subtracted one scalar and swapped channels wrongly.
  * The new fc8 starts small (weights with stddev 0.01, not the book's 1) with its biases at
    zero. Adam's step: the chapter's text says 0.5 and its listing sets none (it uses an
    undefined `learning_rate`); here 1e-3, Adam's own default (Kingma & Ba), since with real
    logits and unit-variance weights a large step overshoots.
  * Test accuracy comes from labels (testDir/labels.csv from prep_images.py, --test-labels, or
    cat/dog in the file names), not from a list typed into the script. An unlabelled folder,
    such as Kaggle's test1/, gets a Kaggle-style `id,label` CSV (1 = dog) instead.
"""

import csv
import io
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from book_support import alexnet_files
import alexnet_forward
from book_support import checkpoints
from book_support import downloads
from book_support import image_io
from book_support import plumbing
import prep_images
from book_support import tf_setup
from book_support.checkpoints import CheckpointFolder

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

CLASSES = prep_images.CLASSES  # cat, dog
KEEP_PROB = 0.85

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def class_of(name):
    """0 for a cat, 1 for a dog, by prep_images.py's rule for file names; None for neither."""
    label = prep_images.label_of(name)
    return None if label is None else CLASSES.index(label)


def image_files(folder):
    folder = Path(folder)
    if not folder.is_dir():
        raise plumbing.UserError(f"{folder} is not a folder (make it with prep_images.py)")
    files = sorted(p for p in folder.iterdir()  # a hidden file is a half-written temporary
                   if p.suffix.lower() in image_io.IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise plumbing.UserError(f"{folder} has no images")
    return files


def training_set(train_dir, validation_fraction, seed):
    """(train files, train labels, validation files, validation labels), labels from names."""
    files = [f for f in image_files(train_dir) if class_of(f.name) is not None]
    if len(files) < 2:
        raise plumbing.UserError(f"{train_dir} needs photos named cat.N.jpg and dog.N.jpg")
    labels = np.array([class_of(f.name) for f in files])
    order = np.random.default_rng(seed).permutation(len(files))
    count = int(len(files) * validation_fraction)
    pick = lambda indices: ([files[i] for i in indices], labels[indices])  # noqa: E731
    return (*pick(order[count:]), *pick(order[:count]))


def test_labels(test_dir, files, labels_csv=None):
    """Labels of the test files (0 cat, 1 dog) from a CSV (file,label) or from their names;
    None when the folder is unlabelled (no CSV, and no name says cat or dog). A CSV that misses
    a photo, a label other than cat, dog, 0 or 1, or names of which only some say cat or dog,
    is one line, before any training."""
    labels_csv = Path(labels_csv) if labels_csv else Path(test_dir) / "labels.csv"
    if labels_csv.exists():
        table = read_labels_csv(labels_csv)
        missing = [file.name for file in files if file.name not in table]
        if missing:
            raise plumbing.UserError(f"{labels_csv} gives no label for {len(missing)} of the "
                                     f"{len(files)} test photos (first: {missing[0]})")
        return np.array([table[file.name] for file in files])
    labels = [class_of(file.name) for file in files]
    if all(label is None for label in labels):
        return None
    unnamed = [file.name for file, label in zip(files, labels) if label is None]
    if unnamed:
        raise plumbing.UserError(f"{test_dir}: {len(unnamed)} of {len(files)} photos are named "
                                 f"neither cat nor dog (first: {unnamed[0]}); give "
                                 f"--test-labels, or name them cat.N.jpg / dog.N.jpg")
    return np.array(labels)


def read_labels_csv(path):
    """{file name: 0 or 1} from a CSV with file and label columns (cat, dog, 0 or 1)."""
    known = {"cat": 0, "0": 0, "dog": 1, "1": 1}
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise plumbing.UserError(f"cannot read {path} ({error})") from None
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise plumbing.UserError(f"{path} needs a header with file and label columns")
    table = {}
    for line, row in enumerate(rows, start=2):
        label = (row["label"] or "").strip().lower()
        if label not in known:
            raise plumbing.UserError(f"{path} line {line}: label {row['label']!r} is not cat, "
                                     f"dog, 0 or 1")
        table[row["file"]] = known[label]
    return table


def load_batch(files):
    return np.stack([alexnet_forward.preprocess(path) for path in files])


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------

def build_graph(weights, train_layers, learning_rate, seed=None):
    """AlexNet with a new 2-way fc8; only `train_layers` are trainable."""
    shapes = alexnet_forward.shapes_of(weights)
    pretrained = {layer: shape for layer, shape in shapes.items() if layer != "fc8"}
    graph = tf.Graph()
    with graph.as_default():
        if seed is not None:
            tf.set_random_seed(seed)
        x = tf.placeholder(tf.float32, (None, 227, 227, 3), name="x")
        y = tf.placeholder(tf.float32, (None, len(CLASSES)), name="y")
        keep_prob = tf.placeholder_with_default(1.0, shape=[], name="keep_prob")
        params = alexnet_forward.make_params(pretrained, trainable=train_layers)
        fc7_width = shapes["fc7"][0][1]
        params["fc8"] = (
            tf.Variable(tf.random_normal([fc7_width, len(CLASSES)], stddev=0.01), name="fc8w",
                        trainable="fc8" in train_layers),
            tf.Variable(tf.zeros([len(CLASSES)]), name="fc8b", trainable="fc8" in train_layers))
        layers = alexnet_forward.alexnet(x, params, keep_prob)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(
            logits=layers["fc8"], labels=y))
        opt_vars = tf.trainable_variables()  # exactly the --train-layers
        optimizer = tf.train.AdamOptimizer(learning_rate=learning_rate).minimize(
            loss, var_list=opt_vars)
        correct_pred = tf.equal(tf.argmax(layers["fc8"], 1), tf.argmax(y, 1))
        accuracy = tf.reduce_mean(tf.cast(correct_pred, tf.float32))
        steps_done = tf.Variable(0, trainable=False, name="steps_done")
        # The checkpoint keeps what training changes, not the frozen weights the reader has.
        frozen = [variable for layer, pair in params.items() for variable in pair
                  if layer not in train_layers]
        saver = tf.train.Saver([v for v in tf.global_variables() if v not in frozen],
                               max_to_keep=1)
        initializer = tf.global_variables_initializer()
    graph.finalize()
    return SimpleNamespace(graph=graph, x=x, y=y, keep_prob=keep_prob, params=params,
                           pretrained=pretrained, prob=layers["prob"], loss=loss,
                           optimizer=optimizer, accuracy=accuracy, saver=saver,
                           initializer=initializer, opt_vars=opt_vars, steps_done=steps_done)


def one_hot(labels):
    return np.eye(len(CLASSES), dtype=np.float32)[labels]


def batches(count, batch_size, seed):
    """Index batches that walk every image once an epoch, in a new order each epoch."""
    epoch = 0
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(count)
        for start in range(0, count, batch_size):
            yield order[start:start + batch_size]
        epoch += 1


def predict(sess, net, files, batch_size):
    return np.concatenate([sess.run(net.prob, {net.x: load_batch(files[i:i + batch_size])})
                           for i in range(0, len(files), batch_size)])


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def check(args):
    """The --train-layers asked for, after the command-line mistakes argparse cannot see."""
    layers = [layer.strip() for layer in args.train_layers.split(",") if layer.strip()]
    unknown = set(layers) - set(alexnet_forward.LAYERS)
    problem = None
    if unknown or not layers:
        problem = (f"--train-layers takes names from {', '.join(alexnet_forward.LAYERS)}, "
                   f"not {args.train_layers}")
    if args.test_labels and not Path(args.test_labels).is_file():
        problem = problem or f"--test-labels {args.test_labels} does not exist"
    problem = problem or plumbing.folder_problem(args.checkpoint_dir, "--checkpoint-dir")
    if problem:
        raise plumbing.ArgumentMistake(problem)
    return layers


def resume(sess, net, weights, saved, iterations):
    """Start from the pretrained weights, then resume from the newest checkpoint (which holds
    only what training changes); returns the steps already done."""
    sess.run(net.initializer)
    alexnet_forward.load_params(sess, {k: v for k, v in net.params.items()
                                       if k in net.pretrained}, weights)
    latest = saved.restore(sess)
    if latest is None:
        return 0
    steps_done = int(sess.run(net.steps_done))
    saved.refuse_if_past(steps_done, iterations, "steps", "--iterations")
    print(f"resuming from {saved.folder} after {steps_done} steps")
    return steps_done


def save(sess, net, saved, steps_done, settings):
    tf_setup.load_variable(sess, net.steps_done, steps_done)
    return saved.save(sess, steps_done, settings)


def settings_of(args, train_layers):
    """What a run's checkpoints depend on, recorded with them."""
    return {"train_layers": train_layers, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "seed": args.seed}


def train(sess, net, files, labels, settings, steps_done, ctrl_c):
    """The book's loop from step `steps_done + 1` to `settings.iterations`, stopping early
    after the step under way once Ctrl-C is pressed; returns the steps done."""
    progress = plumbing.Progress(settings.iterations, "training", unit=" steps",
                                 initial=steps_done)
    step = steps_done
    # Batches are drawn as in an uninterrupted run, so a resumed run goes on where it stopped.
    for step, indices in enumerate(batches(len(files), settings.batch_size, settings.seed),
                                   start=1):
        if step <= steps_done:
            continue
        if step > settings.iterations or ctrl_c.pressed:
            return step - 1
        try:
            batch_x = load_batch([files[i] for i in indices])
        except plumbing.UserError as error:
            raise PhotoFailed(str(error), step - 1) from None
        batch_y = one_hot(labels[indices])
        _, loss = sess.run([net.optimizer, net.loss],
                           {net.x: batch_x, net.y: batch_y, net.keep_prob: KEEP_PROB})
        plumbing.stop_if_not_finite(loss, f"step {step}", "the checkpoint saved before this run "
                                    "(if any) is kept", "try a smaller --learning-rate")
        progress.update()
        if step % settings.display_step == 0:
            cost, acc = sess.run([net.loss, net.accuracy], {net.x: batch_x, net.y: batch_y})
            print("Iter " + str(step * settings.batch_size) + ", Minibatch Loss= " +
                  "{:.6f}".format(cost) + ", Training Accuracy= " + "{:.5f}".format(acc),
                  flush=True)
    return step


class PhotoFailed(plumbing.UserError):
    """A training photo that cannot be read, met after `steps_done` steps."""

    def __init__(self, message, steps_done):
        super().__init__(message)
        self.steps_done = steps_done


def train_and_test(args):
    train_layers = check(args)
    seed = 0 if args.seed is None else args.seed
    train_files, train_y, valid_files, valid_y = training_set(args.train_dir, 0.1, seed)
    test_files = image_files(args.test_dir) if args.test_dir else []
    test_y = test_labels(args.test_dir, test_files, args.test_labels) if test_files else None
    settings = SimpleNamespace(iterations=args.iterations, batch_size=args.batch_size,
                               display_step=args.display_step, seed=seed)
    if args.dry_run:  # a check of the set-up: nothing is written
        settings.iterations, settings.batch_size = 2, min(args.batch_size, 4)
        args.checkpoint_dir, args.predictions = None, None
        valid_files, valid_y, test_files = valid_files[:4], valid_y[:4], test_files[:4]
        test_y = None if test_y is None else test_y[:4]
    elif test_files and test_y is None:
        problem = plumbing.output_problem(args.predictions, "--predictions", args.overwrite)
        if problem:
            raise plumbing.ArgumentMistake(problem)
    checkpoints.start(args.checkpoint_dir, "--checkpoint-dir", settings_of(args, train_layers),
                      args.restart)
    weights = alexnet_files.load_weights(
        args.weights or downloads.fetch(alexnet_forward.ALEXNET_WEIGHTS, alexnet_forward.DATA_DIR))
    device = tf_setup.configure_devices(args.cpu)
    if args.seed is not None:
        tf_setup.make_deterministic(args.seed)
    net = build_graph(weights, train_layers, args.learning_rate, args.seed)
    saved = CheckpointFolder(args.checkpoint_dir, net.saver, "--checkpoint-dir")
    print(f"fine-tuning {', '.join(train_layers)} on {len(train_files)} images "
          f"({len(valid_files)} for validation) on {device}")
    with tf_setup.new_session(net.graph) as sess, plumbing.CtrlC() as ctrl_c:
        steps_done = resume(sess, net, weights, saved, settings.iterations)
        del weights
        started = time.time()
        first = steps_done
        try:
            steps_done = train(sess, net, train_files, train_y, settings, steps_done, ctrl_c)
        except PhotoFailed as failure:  # the steps done are kept first, then it is said
            if not saved.folder or failure.steps_done == first:
                raise
            checkpoint = save(sess, net, saved, failure.steps_done,
                              settings_of(args, train_layers))
            raise plumbing.UserError(f"{failure}; the {failure.steps_done} steps done are saved "
                                     f"to {checkpoint}: replace or remove the photo, then run "
                                     f"the same command to resume") from None
        if ctrl_c.pressed and steps_done < settings.iterations:
            if saved.folder:
                checkpoint = save(sess, net, saved, steps_done, settings_of(args, train_layers))
                print(f"interrupted: saved a checkpoint after {steps_done} steps to "
                      f"{checkpoint}; run the same command to resume")
            return 130
        print(f"Optimization Finished! ({time.time() - started:.0f} s)")
        # The work is kept first: a photo that fails below cannot throw the training away.
        if saved.folder:
            checkpoint = save(sess, net, saved, steps_done, settings_of(args, train_layers))
            print(f"saved a checkpoint to {checkpoint}")
        if valid_files:
            predicted = np.argmax(predict(sess, net, valid_files, settings.batch_size), axis=1)
            print(f"Validation Accuracy = {np.mean(predicted == valid_y) * 100:.1f}%")
        if test_files:
            report_test(args, test_files, test_y,
                        np.argmax(predict(sess, net, test_files, settings.batch_size), 1))
    return 0


def report_test(args, test_files, labels, predicted):
    if labels is not None:
        right = int(np.sum(predicted == labels))
        print(f"Testing Accuracy = {right / len(labels) * 100:.1f}% ({right}/{len(labels)})")
        return
    if args.predictions is None:
        print(f"{args.test_dir} has no labels; a dry run writes no predictions")
        return
    with plumbing.atomic_output(args.predictions) as temporary:
        with open(temporary, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["id", "label"])
            for file, label in zip(test_files, predicted):
                writer.writerow([file.stem, int(label)])
    print(f"{args.test_dir} has no labels: wrote the predictions (1 = dog) to "
          f"{args.predictions}")


def main(argv=None):
    parser = plumbing.argument_parser("Fine-tune the pretrained AlexNet to tell dogs from cats.")
    parser.add_argument("--train-dir",
                        default=plumbing.native_path("data/dogs-vs-cats/prepared/trainDir"),
                        help="227x227 photos named cat.N.jpg / dog.N.jpg (prep_images.py)")
    parser.add_argument("--test-dir",
                        default=plumbing.native_path("data/dogs-vs-cats/prepared/testDir"),
                        help="photos to score; '' for none")
    parser.add_argument("--test-labels", default=None,
                        help="CSV with file,label columns (default: TEST_DIR/labels.csv, "
                             "else cat/dog in the file names, else unlabelled)")
    parser.add_argument("--predictions", default="predictions.csv",
                        help="where an unlabelled test folder's id,label CSV goes (a new file)")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --predictions replace an existing file")
    parser.add_argument("--weights", default=None,
                        help=f"bvlc_alexnet.npy (default: downloaded to "
                             f"{alexnet_forward.DATA_DIR})")
    parser.add_argument("--iterations", type=plumbing.count(1), default=59,
                        help="training steps (the book's loop: Iter 100 ... Iter 5900 at "
                             "batch 100)")
    parser.add_argument("--batch-size", type=plumbing.count(1), default=100,
                        help="images per training step")
    parser.add_argument("--learning-rate", type=plumbing.number(positive=True), default=1e-3,
                        help="Adam's step")
    parser.add_argument("--train-layers", default="fc8",
                        help="comma-separated layers to train, e.g. fc7,fc8")
    parser.add_argument("--display-step", type=plumbing.count(1), default=1,
                        help="print the loss line every this many steps")
    parser.add_argument("--checkpoint-dir",
                        default=plumbing.native_path("checkpoints/alexnet_finetune"),
                        help="where the trained model is saved (also on Ctrl-C); the same "
                             "command resumes from it, other settings are refused")
    parser.add_argument("--restart", action="store_true",
                        help="start over: remove the checkpoints in --checkpoint-dir first")
    parser.add_argument("--seed", type=plumbing.seed, default=None,
                        help="seed for the split, the batch order, fc8 and dropout; also "
                             "deterministic kernels (default: split and batch order seed 0, "
                             "fc8 and dropout random)")
    parser.add_argument("--dry-run", action="store_true",
                        help="2 steps of at most 4 images, then score 4 test images; "
                             "nothing is written")
    tf_setup.add_device_option(parser)
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: train_and_test(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
