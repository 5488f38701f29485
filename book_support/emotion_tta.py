"""Test-time augmentation (`emotion_cnn.py --mode test --tta`, `emotion_test.py --tta`): each
face's probabilities averaged with those of its mirror image (README: what it gains)."""

import numpy as np

# Faces per run: half of emotion_cnn.py's evaluation batch, since each goes in twice.
MIRRORED_BATCH = 256


def mirror_averaged(scores_of, faces):
    """Each face's probabilities averaged with those of its mirror image, both halves through
    `scores_of` in one batch (twice the network's work)."""
    both = scores_of(np.concatenate([faces, faces[:, :, ::-1]]))
    return (both[:len(faces)] + both[len(faces):]) / 2


def scores_in_batches(scores_of, faces, tta=False):
    """`scores_of` each face (with `tta`, mirror-averaged), MIRRORED_BATCH faces per run: a
    network read from a file is checked for sizes up to twice that (graph_checks)."""
    def read(part):
        return mirror_averaged(scores_of, part) if tta else scores_of(part)
    return np.concatenate([read(faces[start:start + MIRRORED_BATCH])
                           for start in range(0, len(faces), MIRRORED_BATCH)])


def evaluate_with_mirror(session, net, images, labels):
    """emotion_cnn.evaluate's (mean cross-entropy, predicted labels), from each face's
    probabilities averaged with its mirror image's."""
    def scores_of(batch):
        return session.run(net.output_pred, {net.input_dataset: batch})
    probabilities = scores_in_batches(scores_of, images, tta=True)
    right = probabilities[np.arange(len(labels)), np.argmax(labels, axis=1)]
    loss = float(-np.mean(np.log(np.maximum(right, 1e-12))))
    return loss, np.argmax(probabilities, axis=1)
