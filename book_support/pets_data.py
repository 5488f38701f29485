"""Kaggle's dogs-vs-cats photos on disk: which files they are, what each shows, and the CSVs.

The chapter labels its training photos by name (cat.N.jpg, dog.N.jpg) and types its test labels
into the script. prep_images.py and alexnet_finetune.py share instead:
  * CLASSES and label_of / class_of: the one rule for what a photo's name says;
  * labelled_photos: prep_images.py's sources, each other file named and left out;
  * image_files and training_set: alexnet_finetune.py's training photos, with a validation
    split drawn by a seed;
  * write_test_labels / test_labels (read_labels_csv): testDir/labels.csv, written by
    prep_images.py and read by alexnet_finetune.py, or the labels from the names;
  * save_predictions: a Kaggle `id,label` CSV (1 = dog) for a test folder without labels.
"""

import csv
import io
import sys
from pathlib import Path

import numpy as np

from book_support import image_io
from book_support import plumbing

CLASSES = ("cat", "dog")  # alexnet_finetune.py's two outputs, in this order


def label_of(name):
    """What a Kaggle photo shows, from its name (cat.N.jpg, dog.N.jpg): 'cat', 'dog' or None.
    The one rule for labelled photos; alexnet_finetune.py reads its training labels with it."""
    name = name.lower()
    return "cat" if "cat" in name else "dog" if "dog" in name else None


def class_of(name):
    """0 for a cat, 1 for a dog, by label_of's rule for file names; None for neither."""
    label = label_of(name)
    return None if label is None else CLASSES.index(label)


# --------------------------------------------------------------------------------------------
# prep_images.py's sources, and the test labels it writes
# --------------------------------------------------------------------------------------------

def labelled_photos(source_dir):
    """(photos named cat or dog, (files not named as images, photos named neither)): each
    file left out is named on stderr."""
    files = sorted(p for p in Path(source_dir).iterdir() if not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in image_io.IMAGE_SUFFIXES]
    for other in sorted(set(files) - set(images)):
        print(f"warning: skipped {other} (not an image file name)", file=sys.stderr)
    sources = [p for p in images if label_of(p.name) is not None]
    unlabelled = [p.name for p in images if label_of(p.name) is None]
    if unlabelled:
        print(f"warning: skipped {len(unlabelled)} photos named neither cat nor dog "
              f"({', '.join(unlabelled[:5])}{', ...' if len(unlabelled) > 5 else ''})",
              file=sys.stderr)
    return sources, (len(files) - len(images), len(unlabelled))


def write_test_labels(output_dir, test_rows, failed):
    """OUTPUT/testDir/labels.csv (file,label,source) of the test photos that were written;
    returns how many."""
    rows = [row for row in test_rows if row[2] not in failed]
    with plumbing.atomic_output(Path(output_dir) / "testDir" / "labels.csv") as temporary:
        with open(temporary, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["file", "label", "source"])
            writer.writerows(rows)
    return len(rows)


# --------------------------------------------------------------------------------------------
# alexnet_finetune.py's photos and labels
# --------------------------------------------------------------------------------------------

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


def save_predictions(test_dir, path, files, predicted):
    """An unlabelled test folder's predictions as Kaggle's `id,label` CSV at `path` (None: a
    dry run, which writes nothing), said in one line."""
    if path is None:
        print(f"{test_dir} has no labels; a dry run writes no predictions")
        return
    with plumbing.atomic_output(path) as temporary:
        with open(temporary, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["id", "label"])
            for file, label in zip(files, predicted):
                writer.writerow([file.stem, int(label)])
    print(f"{test_dir} has no labels: wrote the predictions (1 = dog) to {path}")
