"""`emotion_cnn.py --adjust-logits`: rare emotions answered as often as they occur.

Disgust is 1.5% of FER2013's training faces, so a network trained for accuracy almost never
answers it. Post-hoc logit adjustment (Menon et al. 2021, "Long-tail learning via logit
adjustment", arXiv:2007.07314) subtracts tau * log(prior) from each emotion's logit, the priors
being the training faces' shares: no retraining, one constant per emotion. It lives in the graph
(`logit_adjustment`, saved with the checkpoint, zero until fitted), before `output:0`, so that
`--mode test`, emotion_test.py and the book's `.meta` workflow all read the adjusted network.

tau is chosen on the validation faces (each averaged with its mirror image, as `--tta` reads
them): the one with the highest mean of the seven recalls among those that keep the validation
accuracy within TOLERANCE of the unadjusted network's.
"""

import numpy as np

from book_support import emotion_report, tf_setup

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

# tau = 1 is Menon's balanced-error optimum; on FER2013 disgust's recall goes from 0.2 to 0.7
# between 0.7 and 0.9 (README), hence the fine steps
TAUS = np.round(np.arange(0, 2.001, 0.05), 2)
NUM_LABELS = 7  # the seven emotions
TOLERANCE = 0.005  # validation accuracy that may be given up for the rare emotions


def adjusted_logits(logits):
    """The logits minus the (fitted) adjustment: a non-trainable variable, zero at first."""
    adjustment = tf.get_variable("logit_adjustment", initializer=tf.zeros([logits.shape[-1]]),
                                 trainable=False)
    return logits - adjustment, adjustment


def recalls(predicted, labels):
    """Each emotion's recall (nan where it has no face): emotion_report's, from the labels."""
    matrix = emotion_report.confusion_matrix(predicted, np.eye(NUM_LABELS)[labels])
    return emotion_report.precision_and_recall(matrix)[1]


def scores(probabilities, labels, priors, tau):
    """(accuracy, mean recall) of the probabilities adjusted by tau: softmax(z - tau log p) is
    softmax(z) / p**tau, normalised, so the argmax needs no logits."""
    predicted = np.argmax(probabilities / priors ** tau, axis=1)
    return float(np.mean(predicted == labels)), float(np.nanmean(recalls(predicted, labels)))


def choose_tau(probabilities, labels, priors):
    """(tau, table): the tau of the highest validation mean recall whose accuracy is within
    TOLERANCE of tau 0's, and each tau's (tau, accuracy, mean recall)."""
    table = [(float(tau), *scores(probabilities, labels, priors, tau)) for tau in TAUS]
    floor = table[0][1] - TOLERANCE
    tau = max((row for row in table if row[1] >= floor), key=lambda row: (row[2], -row[0]))[0]
    return tau, table


def fit(session, net, images, labels, priors, probabilities_of):
    """Choose tau on `images` (validation faces, one-hot `labels`) and set the adjustment in
    the graph. `probabilities_of(images)` runs the network. Returns (tau, table)."""
    session.run(net.logit_adjustment.initializer)  # back to the unadjusted network
    labels = np.argmax(labels, axis=1)
    tau, table = choose_tau(probabilities_of(images), labels, priors)
    tf_setup.load_variable(session, net.logit_adjustment, tau * np.log(priors))
    return tau, table


def said(tau, table):
    """The line that says which tau was chosen, and what it does on the validation faces."""
    (plain, plain_recall), = [row[1:] for row in table if row[0] == 0]
    (adjusted, adjusted_recall), = [row[1:] for row in table if row[0] == tau]
    return (f"adjusted logits by {tau:g} x log(share of the training faces), chosen on the "
            f"validation faces: accuracy {plain:.4f} -> {adjusted:.4f}, mean recall "
            f"{plain_recall:.4f} -> {adjusted_recall:.4f}")
