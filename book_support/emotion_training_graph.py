"""The book's graph with emotion_cnn.py's extras composed around it: `--model vgg`
(book_support/emotion_vgg.py), `--augment` and `--erase`, `--label-smoothing`, `--schedule
cosine` and `--optimizer` (book_support/emotion_training_aids.py), and the adjustment that
`--adjust-logits` fits after training (book_support/emotion_logit_adjustment.py).

The book's pieces come from emotion_cnn.py as `book`: its placeholders (`inputs`), its
variables and network, its output and losses (`loss`), its learning rate and `finished` (the
summaries, saver and initializer). So the book's network keeps its variable names here, and
the book's graph and this one resume each other's checkpoints. The switches that only training
feeds default to off, so `input:0` alone still gives the deterministic network.
"""

from book_support import emotion_training_aids as aids
from book_support import checkpoints, emotion_logit_adjustment, emotion_vgg, tf_setup

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf


def build(book, seed, model, schedule, iterations, erase=0.0, label_smoothing=0.0,
          optimizer="adam", learning_rate=1e-3):
    """The faces the network sees may be augmented (and partly erased), the network may be
    vgg_cnn, the learning rate may follow a schedule, the training loss may use smoothed labels,
    and the training step also updates batch norm's averages. The L2 weight is the book's
    (`book.regularization`) for its network, emotion_vgg's for vgg."""
    graph = tf.Graph()
    with graph.as_default():
        if seed is not None:
            tf.set_random_seed(seed)
        net = book.inputs()
        switches = aids.training_switches()
        faces = tf.cond(switches.augment,
                        lambda: aids.augmented(net.input_dataset, switches.augment_seed, erase),
                        lambda: net.input_dataset, name="faces")
        if model == "book":
            weights, biases = book.variables()
            pred = book.network(faces, weights, biases, net.keep_prob)
            regularization = book.regularization
        else:
            pred = emotion_vgg.vgg_cnn(faces, net.keep_prob, switches.training)
            regularization = emotion_vgg.REGULARIZATION
        # The book's output on the logits minus --adjust-logits' adjustment (zero until fitted)
        logits, net.logit_adjustment = emotion_logit_adjustment.adjusted_logits(pred)
        book.loss(net, logits, regularization)
        if label_smoothing:
            net.loss_val = aids.smoothed_loss(net, pred, label_smoothing, regularization)
        net.learning_rate = aids.learning_rate_at(net.global_step, schedule, iterations,
                                                  learning_rate)
        optimizer = aids.optimizer(optimizer, net.learning_rate)
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            net.train_op = optimizer.minimize(net.loss_val, net.global_step)
        net.faces = faces
        vars(net).update(vars(switches))
        # --mode test reads a run of either optimizer, and one saved before the adjustment
        net.restore_by_value = checkpoints.restore_by_value(
            tf.global_variables(), optional=[net.logit_adjustment, *optimizer.variables()])
    return book.finished(graph, net, model)


def switches_fed(net, args, step):
    """What a training step feeds the switches of a graph built here (none for the book's
    graph): batch norm's batch statistics, and augmentation as --augment says, its randomness
    drawn from the run's seed and the step."""
    if getattr(net, "training", None) is None:  # the book's graph has no switches
        return {}
    return {net.training: True, net.augment: args.augment,
            net.augment_seed: [args.augment_seed, step]}
