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

What the book does not have lives in book_support/: pets_data (which photos, their labels, the
test CSVs), finetune_runs (the checks before any work, and around the book's loop: resuming,
Ctrl-C, progress, the checkpoints of book_support/checkpoints.py), alexnet_files (the weights),
tf_setup and plumbing. The network and its preprocessing are alexnet_forward.py's.
"""

import functools
import time
from types import SimpleNamespace

import numpy as np

import alexnet_forward
from book_support import alexnet_files
from book_support import checkpoints
from book_support import file_roles
from book_support import finetune_runs
from book_support import pets_data
from book_support import plumbing
from book_support import tf_setup

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

CLASSES = pets_data.CLASSES  # cat, dog
KEEP_PROB = 0.85

# --------------------------------------------------------------------------------------------
# The book, 微调实现 (fine-tuning, implemented): a new fc8 for two classes, and its training
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


def start_from_pretrained(sess, net, weights):
    """Every variable initialised, then the layers kept from ImageNet filled from the file."""
    sess.run(net.initializer)
    alexnet_forward.load_params(sess, {k: v for k, v in net.params.items()
                                       if k in net.pretrained}, weights)


def load_batch(files):
    return np.stack([alexnet_forward.preprocess(path) for path in files])


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


def next_batch(files, labels, indices):
    """The book's next_batch: the photos at `indices` as the network's input, labels one-hot."""
    return load_batch([files[i] for i in indices]), one_hot(labels[indices])


def train(sess, net, steps, batch_size, display_step):
    """The book's loop: a step of Adam on each batch of `steps` ((step, batch_x, batch_y)),
    with dropout, and every `display_step` steps the batch's loss and accuracy without it."""
    for step, batch_x, batch_y in steps:
        _, loss = sess.run([net.optimizer, net.loss],
                           {net.x: batch_x, net.y: batch_y, net.keep_prob: KEEP_PROB})
        plumbing.stop_if_not_finite(loss, f"step {step}", "the checkpoint saved before this run "
                                    "(if any) is kept", "try a smaller --learning-rate")
        if step % display_step == 0:
            cost, acc = sess.run([net.loss, net.accuracy], {net.x: batch_x, net.y: batch_y})
            print("Iter " + str(step * batch_size) + ", Minibatch Loss= " +
                  "{:.6f}".format(cost) + ", Training Accuracy= " + "{:.5f}".format(acc),
                  flush=True)


def predict(sess, net, files, batch_size):
    return np.concatenate([sess.run(net.prob, {net.x: load_batch(files[i:i + batch_size])})
                           for i in range(0, len(files), batch_size)])


def test(labels, predicted):
    """The book's test: the predicted classes against the labels (cat = 0, dog = 1)."""
    right = int(np.sum(predicted == labels))
    print(f"Testing Accuracy = {right / len(labels) * 100:.1f}% ({right}/{len(labels)})")


# --------------------------------------------------------------------------------------------
# Beyond the book: the run around the loop (book_support/finetune_runs.py)
# --------------------------------------------------------------------------------------------

def train_and_test(args):
    run = finetune_runs.plan(args, alexnet_forward.LAYERS)
    weights = alexnet_files.load_weights(alexnet_files.weights_path(args.weights))
    device = tf_setup.configure_devices(args.cpu)
    tf_setup.make_deterministic(args.seed)
    net = build_graph(weights, run.train_layers, args.learning_rate, args.seed)
    print(f"fine-tuning {', '.join(run.train_layers)} on {len(run.train_files)} images "
          f"({len(run.valid_files)} for validation) on {device}")
    with tf_setup.new_session(net.graph) as sess, plumbing.CtrlC() as ctrl_c:
        start_from_pretrained(sess, net, weights)
        del weights
        saved = finetune_runs.SavedSteps(sess, net, args.checkpoint_dir, run.record)
        steps = finetune_runs.Steps(batches(len(run.train_files), run.batch_size, run.seed),
                                    functools.partial(next_batch, run.train_files, run.train_y),
                                    saved.resume(run.iterations), run.iterations, ctrl_c)
        started = time.time()
        with saved.kept_when_a_photo_fails(steps):
            train(sess, net, steps, run.batch_size, run.display_step)
        if steps.stopped:
            saved.save_interrupted(steps.done)
            return 130
        print(f"Optimization Finished! ({time.time() - started:.0f} s)")
        # The work is kept first: a photo that fails below cannot throw the training away.
        saved.save_finished(steps.done)
        if run.valid_files:
            predicted = np.argmax(predict(sess, net, run.valid_files, run.batch_size), axis=1)
            print(f"Validation Accuracy = {np.mean(predicted == run.valid_y) * 100:.1f}%")
        if run.test_files:
            predicted = np.argmax(predict(sess, net, run.test_files, run.batch_size), 1)
            if run.test_y is not None:
                test(run.test_y, predicted)
            else:
                pets_data.save_predictions(args.test_dir, args.predictions, run.test_files,
                                           predicted)
    return 0


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main(argv=None):
    parser = plumbing.argument_parser("Fine-tune the pretrained AlexNet to tell dogs from cats.")
    file_roles.reads(parser.add_argument(
        "--train-dir", default=plumbing.native_path("data/dogs-vs-cats/prepared/trainDir"),
        help="227x227 photos named cat.N.jpg / dog.N.jpg (prep_images.py)"), file_roles.FOLDER)
    file_roles.reads(parser.add_argument(
        "--test-dir", default=plumbing.native_path("data/dogs-vs-cats/prepared/testDir"),
        help="photos to score; '' for none"), file_roles.FOLDER)
    file_roles.reads(parser.add_argument(
        "--test-labels", default=None, help="CSV with file,label columns (default: "
        "TEST_DIR/labels.csv, else cat/dog in the file names, else unlabelled)"))
    file_roles.writes(parser.add_argument(
        "--predictions", default="predictions.csv",
        help="where an unlabelled test folder's id,label CSV goes (a new file)"))
    parser.add_argument("--overwrite", action="store_true",
                        help="let --predictions replace an existing file")
    file_roles.reads(parser.add_argument(
        "--weights", default=None,
        help=f"bvlc_alexnet.npy (default: downloaded to {alexnet_files.DATA_DIR})"))
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
    file_roles.keeps_state(parser.add_argument(
        "--checkpoint-dir", default=plumbing.native_path("checkpoints/alexnet_finetune"),
        help="where the trained model is saved (also on Ctrl-C); the same command resumes "
             "from it, other settings are refused"), checkpoints.owns)
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
