"""Facial-expression data for emotion_cnn.py and emotion_test.py: the book's EmotionUtils.

    import EmotionUtils
    train_images, train_labels, valid_images, valid_labels, test_images = \\
        EmotionUtils.read_data("data/EmotionDetector")

    python EmotionUtils.py --data-dir data/EmotionDetector   # download_and_display_images.py

The book's names are here: read_data (its five arrays, its printed lines, its 10% validation
split with seed 0), testResult, the `emotion` names and the display listing (show_data). What the
book does not have lives in book_support:
  * emotion_csv.py: the two layouts read (the book's train.csv + test.csv, and Kaggle's
    fer2013.csv), as they come (.csv, .csv.gz, or Kaggle's fer2013.tar.gz, never unpacked
    onto the disk), the pixels parsed in blocks by NumPy's C parser into uint8 instead of one
    float64 `np.fromstring` per row (faster: README, bench/), and a malformed row skipped with
    a warning naming its line, where the book's `dropna` dropped it silently;
  * emotion_cache.py: the cache, an `.npz` file, which cannot run code when loaded (the book's
    pickle can), written atomically and rebuilt when a CSV changes.
"""

import math
import sys
from pathlib import Path

import numpy as np

from book_support import file_roles, plumbing
from book_support.emotion_cache import FaceCache
from book_support.emotion_csv import IMAGE_SIZE, NUM_LABELS, find_layout, read_face_csv
from book_support.emotion_csv import training_and_public_test

VALIDATION_PERCENT = 0.1  # the book's split: a tenth of the training faces validate

emotion = {0: "anger", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise",
           6: "neutral"}


# --------------------------------------------------------------------------------------------
# The book, 使用 CNN 进行情感识别 (emotion recognition with CNNs): read_data
# --------------------------------------------------------------------------------------------

class EmotionData:
    """The book's five arrays (unpack or index it as the book does) plus `test_labels`, which
    is None when the test file has no Emotion column."""

    def __init__(self, train_images, train_labels, valid_images, valid_labels, test_images,
                 test_labels=None):
        self.train_images, self.train_labels = train_images, train_labels
        self.valid_images, self.valid_labels = valid_images, valid_labels
        self.test_images, self.test_labels = test_images, test_labels

    def _book_tuple(self):
        return (self.train_images, self.train_labels, self.valid_images, self.valid_labels,
                self.test_images)

    def __iter__(self):
        return iter(self._book_tuple())

    def __getitem__(self, index):
        return self._book_tuple()[index]

    def __len__(self):
        return 5


def read_sources(layout, files, verbose):
    """(training faces, test faces) from the CSVs, saying what it reads as the book does."""
    say = print if verbose else (lambda *args: None)
    warn = lambda message: print(message, file=sys.stderr)  # noqa: E731
    say(f"Reading {files[0].name} ...")
    train = read_face_csv(files[0], warn)
    if train.labels is None:
        raise plumbing.UserError(f"{files[0]} has no Emotion column")
    if layout == "fer2013":  # one file, its Usage column saying which rows are which
        train, test = training_and_public_test(train, files[0])
    say_shapes(train.labels, say)
    if layout == "book":
        say(f"Reading {files[1].name} ...")
        test = read_face_csv(files[1], warn)
    return train, test


def say_shapes(train_labels, say):
    """The book's two lines: the shapes of all training images and of their one-hot labels."""
    say((len(train_labels), IMAGE_SIZE, IMAGE_SIZE, 1))
    say((len(train_labels), NUM_LABELS))


def one_hot(labels):
    return np.eye(NUM_LABELS, dtype=np.float32)[labels.astype(np.int64)]


def as_images(pixels):
    images = np.multiply(pixels, np.float32(1 / 255.0), dtype=np.float32)
    return images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)


def read_data(data_dir, force=False, verbose=True, keep_cache=True):
    """The book's read_data: train/validation (10%, seed 0) and test images, one-hot labels
    (the faces parsed are cached beside the CSVs unless `keep_cache` is False: a dry run)."""
    data_dir = Path(data_dir)
    layout, files = find_layout(data_dir)
    cache = FaceCache(data_dir, layout, files)
    faces = None if force else cache.load()
    if faces is None:  # the book's order: Reading, the shapes, Picking (its pickle)
        faces = read_sources(layout, files, verbose)
        if verbose:
            print("Picking ...")
        if keep_cache:
            cache.save(*faces)
    elif verbose:
        say_shapes(faces[0].labels, print)
    train, test = faces
    # The book's split: np.random.seed(0), then one permutation of the training rows (done on
    # the uint8 pixels, a quarter of the bytes of the float images).
    permutation = np.random.RandomState(0).permutation(len(train.pixels))
    pixels, labels = train.pixels[permutation], train.labels[permutation]
    validation_count = int(len(pixels) * VALIDATION_PERCENT)
    if validation_count == 0:
        raise plumbing.UserError(f"{len(pixels)} training faces in {files[0]}: at least "
                                 f"{math.ceil(1 / VALIDATION_PERCENT)} are needed, one in ten "
                                 f"being held back for validation")
    test_labels = None if test.labels is None else one_hot(test.labels)
    return EmotionData(as_images(pixels[validation_count:]), one_hot(labels[validation_count:]),
                       as_images(pixels[:validation_count]), one_hot(labels[:validation_count]),
                       as_images(test.pixels), test_labels)


# --------------------------------------------------------------------------------------------
# The book, 使用 CNN 进行情感识别 (emotion recognition with CNNs): the download listing
# --------------------------------------------------------------------------------------------

def save_first_image(image, label, path):
    plt = plumbing.pyplot()
    figure, axes = plt.subplots(figsize=(3, 3.3))
    axes.imshow(image.reshape(IMAGE_SIZE, IMAGE_SIZE), cmap="Greys_r")
    axes.set_title(f"label {int(np.argmax(label))}: {emotion[int(np.argmax(label))]}")
    axes.axis("off")
    plumbing.save_figure(figure, path)


def show_data(args):
    images = read_data(args.data_dir, force=args.force)
    train_images, train_labels, valid_images, valid_labels, test_images = images
    print("train images shape = ", train_images.shape)
    print("test labels shape = ", test_images.shape)
    print("image_0 shape = ", train_images[0].shape)
    print("label set = ", train_labels[0])
    if args.save:
        save_first_image(train_images[0], train_labels[0], args.save)
        print(f"saved the first training image to {args.save}")
    return 0


# --------------------------------------------------------------------------------------------
# The book, 源代码 (source code): the results of a photo, as the listing prints them
# --------------------------------------------------------------------------------------------

def format_emotions(fractions):
    """The book's seven lines, `anger = 0.1%` ... `neutral = 0.3%`."""
    return "\n".join(f"{emotion[label]} = {fraction * 100:.1f}%"
                     for label, fraction in enumerate(fractions))


class testResult:
    """The book's tally of predicted labels over repeated evaluations."""

    def __init__(self):
        self.counts = [0] * NUM_LABELS

    def evaluate(self, label):
        self.counts[int(label)] += 1

    def __getattr__(self, name):  # tResult.happy and friends, as in the book
        names = list(emotion.values())
        if name in names:
            return self.counts[names.index(name)]
        raise AttributeError(name)

    def display_result(self, evaluations):
        print(format_emotions([count / float(evaluations) for count in self.counts]))



# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main(argv=None):
    parser = plumbing.argument_parser(
        "Read the face-expression CSVs, print the book's shapes and save the first "
        "training image. Malformed rows are skipped with a warning naming their "
        "line; a file with no usable row is an error.")
    file_roles.reads(parser.add_argument(
        "--data-dir", "--data_dir", default=plumbing.native_path("data/EmotionDetector"),
        help="folder with train.csv + test.csv, or fer2013.csv (each also .csv.gz), or "
             "fer2013.tar.gz"), file_roles.FOLDER)
    file_roles.writes(parser.add_argument(
        "--save", metavar="PNG", default=None,
        help="save the first training image with its label (a new file)"))
    parser.add_argument("--overwrite", action="store_true",
                        help="let --save replace an existing file")
    parser.add_argument("--force", action="store_true", help="ignore the cache and re-parse")
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: show_data(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
