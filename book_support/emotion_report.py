"""What `emotion_cnn.py --mode test` reports beyond the accuracy: the confusion matrix (printed
and plotted) and each emotion's precision and recall. `names` maps a label to its emotion
(EmotionUtils.emotion)."""

from pathlib import Path

import numpy as np

from book_support import plumbing


def confusion_matrix(predictions, labels):
    """Counts of (true label, predicted label); `labels` one-hot."""
    matrix = np.zeros((labels.shape[1], labels.shape[1]), np.int64)
    np.add.at(matrix, (np.argmax(labels, axis=1), predictions), 1)
    return matrix


def print_confusion(matrix, names):
    short = [names[i][:8] for i in range(len(matrix))]
    print("confusion matrix (rows: true, columns: predicted)")
    print(" " * 9 + "".join(f"{name:>9}" for name in short))
    for name, row in zip(short, matrix):
        print(f"{name:>9}" + "".join(f"{count:>9}" for count in row))


def plot_confusion(matrix, names, path):
    plt = plumbing.pyplot()
    labels = range(len(matrix))
    names = [names[i] for i in labels]
    figure, axes = plt.subplots(figsize=(6.5, 5.5))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set(xticks=labels, yticks=labels, xticklabels=names, yticklabels=names,
             xlabel="predicted", ylabel="true",
             title=f"Emotion CNN on the test set ({matrix.trace()}/{matrix.sum()} right)")
    plt.setp(axes.get_xticklabels(), rotation=45, ha="right")
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, count, ha="center", va="center",
                  color="white" if count > matrix.max() / 2 else "black")
    figure.colorbar(image)
    figure.tight_layout()
    plumbing.save_figure(figure, path)


def precision_and_recall(matrix):
    """Per class: of the faces predicted as it, the share right; of its faces, the share found."""
    right = np.diag(matrix).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return right / matrix.sum(axis=0), right / matrix.sum(axis=1)


def print_precision_and_recall(matrix, names):
    """The table; a share with nothing to divide (an emotion never predicted, or with no faces)
    is said in words, not printed as nan."""
    precision, recall = precision_and_recall(matrix)
    print(f"{'':>9}{'precision':>10}{'recall':>8}{'faces':>7}")
    for label, faces in enumerate(matrix.sum(axis=1)):
        print(f"{names[label][:8]:>9}{share(precision[label], 'never'):>10}"
              f"{share(recall[label], '-'):>8}{faces:>7}")
    print(f"mean recall: {np.nanmean(recall):.3f} (each emotion counted alike)")
    never = [names[label] for label in np.flatnonzero(np.isnan(precision))]
    if never:
        print(f"never: the network predicted no face as {', '.join(never)}, so there is no "
              f"precision to give")


def share(value, instead):
    return instead if np.isnan(value) else f"{value:.3f}"


def report(matrix, names, path):
    """The tables, and the plot saved to `path` (None: a dry run, nothing written). The plot
    is the checkpoint's, in its folder: a rerun on the same checkpoint replaces it, and says
    so."""
    print_confusion(matrix, names)
    print_precision_and_recall(matrix, names)
    if path is None:
        return
    replaced = Path(path).exists()
    plot_confusion(matrix, names, path)
    print(f"replaced the same checkpoint's confusion matrix in {path}" if replaced
          else f"saved the confusion matrix to {path}")
