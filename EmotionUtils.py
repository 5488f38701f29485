"""Facial-expression data for emotion_cnn.py and emotion_test.py: the book's EmotionUtils.

    import EmotionUtils
    train_images, train_labels, valid_images, valid_labels, test_images = \\
        EmotionUtils.read_data("data/EmotionDetector")

    python EmotionUtils.py --data-dir data/EmotionDetector   # the book's download_and_display_images.py

Two layouts are read (../data/README.md says where to get them):
  * the book's Kaggle in-class files: `train.csv` (`Emotion,Pixels`) and `test.csv` (`Pixels`,
    and `Emotion` too when present);
  * Kaggle's FER2013 `fer2013.csv` (`emotion,pixels,Usage`): `Training` rows become the training
    and validation sets, `PublicTest` the test set (`PrivateTest` is left out).
What changed from the book: the pixel strings are parsed in blocks by NumPy's C parser into uint8
instead of one float64 `np.fromstring` per row (faster: README, bench/);
the cache is an `.npz` file, which cannot run code when loaded (a pickle can), written atomically
and rebuilt when a CSV changes; a malformed row is skipped with a warning that names its line,
where the book's `dropna` dropped it silently.
"""

import io
import json
import math
import sys
import zipfile
from pathlib import Path

import numpy as np

from book_support import plumbing

IMAGE_SIZE = 48
NUM_LABELS = 7
VALIDATION_PERCENT = 0.1  # use 10 percent of training images for validation
PIXELS = IMAGE_SIZE * IMAGE_SIZE
CACHE_NAME = "EmotionDetectorData.npz"
CACHE_VERSION = 1
ROWS_PER_BLOCK = 2000  # a malformed row costs only its own block a slow re-read
MAX_WARNINGS = 10
COMMAS_TO_SPACES = bytes.maketrans(b",", b" ")

emotion = {0: "anger", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise",
           6: "neutral"}


# --------------------------------------------------------------------------------------------
# Results, as the book prints them
# --------------------------------------------------------------------------------------------

def format_emotions(fractions):
    """The book's seven lines, `anger = 0.1%` ... `neutral = 0.3%`."""
    return "\n".join(f"{emotion[label]} = {fraction * 100:.1f}%"
                     for label, fraction in enumerate(fractions))


def mirror_averaged(scores_of, faces):
    """Test-time augmentation (`--tta`): each face's probabilities averaged with those of its
    mirror image, both halves through `scores_of` in one batch (twice the network's work)."""
    both = scores_of(np.concatenate([faces, faces[:, :, ::-1]]))
    return (both[:len(faces)] + both[len(faces):]) / 2


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
# Parsing a face CSV
# --------------------------------------------------------------------------------------------

class FaceTable:
    """The rows of one CSV: uint8 pixels (n, 48, 48), labels (n,) or None, usage (n,) or None."""

    def __init__(self, pixels, labels, usage):
        self.pixels, self.labels, self.usage = pixels, labels, usage


def read_header(raw, path):
    end = raw.find(b"\n")
    header = raw[:end if end >= 0 else len(raw)].decode("utf-8", "replace")
    names = [name.strip().strip('"').strip().lower() for name in header.split(",")]
    if "pixels" not in names:
        raise plumbing.UserError(f"{path} has no Pixels column (its header is {header.strip()!r})")
    return names, (end + 1 if end >= 0 else len(raw))


def row_spans(raw, start):
    """(line number, start, end) of every non-blank row from `start`, the row after the header
    (line 2)."""
    spans, number = [], 2
    while start < len(raw):
        end = raw.find(b"\n", start)
        end = len(raw) if end < 0 else end
        if end - start > 8 or raw[start:end].strip():  # only short lines can be blank
            spans.append((number, start, end))
        start, number = end + 1, number + 1
    return spans


def token_columns(names):
    """Token positions of label and pixels once commas are spaces: each column but Pixels is
    one token, Pixels is 2304."""
    position, columns = 0, {}
    for name in names:
        columns[name] = position
        position += PIXELS if name == "pixels" else 1
    return columns, position


def parse_block(raw, spans, names):
    """Fast path: NumPy's C parser over a block of rows. Returns (labels, pixels) or None."""
    columns, width = token_columns(names)
    numeric = [columns["emotion"]] if "emotion" in names else []
    numeric += range(columns["pixels"], columns["pixels"] + PIXELS)
    # Commas become the single spaces that already separate pixels; quotes and CRs go. The
    # uint8 parse itself rejects anything but whole numbers 0..255 and any ragged row.
    block = raw[spans[0][1]:spans[-1][2]].translate(COMMAS_TO_SPACES, b'"\r')
    try:
        values = np.loadtxt(io.BytesIO(block), dtype=np.uint8, delimiter=" ", usecols=numeric,
                            ndmin=2)
    except ValueError:
        return None
    labels = values[:, 0] if "emotion" in names else None
    if len(values) != len(spans) or (labels is not None and labels.max() >= NUM_LABELS):
        return None
    return labels, values[:, -PIXELS:]


def parse_row(text, names):
    """Slow path, one row: (label or None, pixels, usage or None), or raise ValueError(why)."""
    fields = [field.strip().strip('"') for field in text.split(",")]
    if len(fields) != len(names):
        raise ValueError(f"{len(fields)} columns instead of {len(names)}")
    row = dict(zip(names, fields))
    tokens = row["pixels"].split()
    if len(tokens) != PIXELS:
        raise ValueError(f"{len(tokens)} pixel values instead of {PIXELS}")
    try:
        pixels = np.array([int(token) for token in tokens])
    except ValueError:
        raise ValueError("a pixel value is not a whole number") from None
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError("a pixel value is outside 0..255")
    label = None
    if "emotion" in row:
        if not row["emotion"].isdigit() or int(row["emotion"]) >= NUM_LABELS:
            raise ValueError(f"emotion {row['emotion']!r} is not a label 0..6")
        label = int(row["emotion"])
    return label, pixels.astype(np.uint8), row.get("usage")


def usage_of(raw, spans, names):
    if "usage" not in names:
        return None
    index = names.index("usage")
    if index == len(names) - 1:  # the usual place: read just the end of each line
        return [raw[max(a, b - 40):b].rsplit(b",", 1)[-1].strip().strip(b'"').decode()
                for _, a, b in spans]
    return [raw[a:b].split(b",")[index].strip().strip(b'"').decode() for _, a, b in spans]


class ParsedRows:
    """Labels (None without an Emotion column), pixels (n, 2304) uint8, usage (None without a
    Usage column) of the kept rows, and the (line, why) of each skipped one."""

    def __init__(self, labels, pixels, usage, problems):
        self.labels, self.pixels, self.usage, self.problems = labels, pixels, usage, problems


def parse_rows(raw, spans, names):
    """NumPy's C parser block by block; row by row only in a block holding a malformed row."""
    labels, pixels = [np.zeros(0, np.int8)], [np.zeros((0, PIXELS), np.uint8)]
    kept, problems = [], []
    for first in range(0, len(spans), ROWS_PER_BLOCK):
        block = spans[first:first + ROWS_PER_BLOCK]
        parsed = parse_block(raw, block, names)
        if parsed is not None:
            labels.append(parsed[0])
            pixels.append(parsed[1])
            kept.extend(block)
            continue
        for span in block:
            number, a, b = span
            try:
                label, row_pixels, _ = parse_row(raw[a:b].decode("utf-8", "replace"), names)
            except ValueError as why:
                problems.append((number, str(why)))
                continue
            labels.append(None if label is None else np.array([label]))
            pixels.append(row_pixels[None])
            kept.append(span)
    all_labels = np.concatenate(labels).astype(np.int8) if "emotion" in names else None
    usage = usage_of(raw, kept, names)
    return ParsedRows(all_labels, np.concatenate(pixels),
                      None if usage is None else np.array(usage, dtype=str), problems)


def parse_all_rows(path):
    """(column names, parsed rows) of the whole file."""
    raw = read_file(path)
    names, header_end = read_header(raw[:1 << 16], path)
    return names, parse_rows(raw, row_spans(raw, header_end), names)


def read_file(path):
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise plumbing.UserError(f"cannot read {path}: {error.strerror}") from None


def read_face_csv(path, warn=print):
    """Read a face CSV; malformed rows are skipped with a warning naming their line."""
    path = Path(path)
    names, rows = parse_all_rows(path)
    report_problems(path, rows.problems, warn)
    if not len(rows.pixels):
        raise plumbing.UserError(f"{path} has no usable rows")
    usage = None if rows.usage is None else rows.usage.tolist()
    return FaceTable(rows.pixels.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), rows.labels, usage)


def report_problems(path, problems, warn):
    for number, why in problems[:MAX_WARNINGS]:
        warn(f"warning: {path} line {number}: {why}; row skipped")
    if len(problems) > MAX_WARNINGS:
        warn(f"warning: {path}: {len(problems) - MAX_WARNINGS} more malformed rows skipped")


# --------------------------------------------------------------------------------------------
# The book's read_data, with a safe cache
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


def find_layout(data_dir):
    """('book', [train.csv, test.csv]) or ('fer2013', [fer2013.csv]), whichever is there."""
    data_dir = Path(data_dir)
    if (data_dir / "train.csv").exists():
        if (data_dir / "fer2013.csv").exists():
            print(f"note: {data_dir} holds both the book's train.csv and fer2013.csv; reading "
                  f"the book's (give fer2013.csv a folder of its own, such as data/fer2013, "
                  f"to read it)", file=sys.stderr)
        return "book", [data_dir / "train.csv", data_dir / "test.csv"]
    if (data_dir / "fer2013.csv").exists():
        return "fer2013", [data_dir / "fer2013.csv"]
    raise plumbing.UserError(
        f"no face data in {data_dir}: put the book's train.csv and test.csv there (Kaggle "
        f"facial-keypoints-detector) or Kaggle's fer2013.csv; see data/README.md")


def fingerprint(layout, files):
    for file in files:
        if not file.exists():
            raise plumbing.UserError(f"{file} is missing (the book's layout needs train.csv "
                                     f"and test.csv side by side)")
    return json.dumps([CACHE_VERSION, layout] + [[f.name, f.stat().st_size, f.stat().st_mtime_ns]
                                                 for f in files])


def load_cache(path, expected_fingerprint):
    """The cached tables, or None when absent, stale or not a plain .npz of arrays."""
    try:
        with np.load(path, allow_pickle=False) as cache:
            if str(cache["fingerprint"]) != expected_fingerprint:
                return None
            tables = {name: cache[name] for name in cache.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # missing, truncated, or a pickle: never unpickled, just rebuilt
    return tables if tables_fit(tables) else None


def tables_fit(tables):
    """Whether a cache's tables are what read_data needs: a fingerprint proves which CSV files
    it came from, not that nothing changed inside it."""
    try:
        pairs = [(tables["train_pixels"], tables["train_labels"])]
        if tables["has_test_labels"].shape != ():
            return False
        test_labels = tables["test_labels"] if tables["has_test_labels"] else None
        pairs.append((tables["test_pixels"], test_labels))
    except KeyError:
        return False
    for pixels, labels in pairs:
        if pixels.dtype != np.uint8 or pixels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            return False
        if labels is not None and not (
                labels.dtype.kind in "iu" and labels.shape == (len(pixels),)
                and ((0 <= labels) & (labels < NUM_LABELS)).all()):
            return False
    return True


def save_cache(path, tables, warn):
    try:
        with plumbing.atomic_output(path) as temporary:
            with open(temporary, "wb") as stream:
                np.savez(stream, **tables)
    except OSError as error:
        warn(f"warning: could not write the cache {path} ({error.strerror}); "
             f"the CSV will be parsed again next time")


def parse_sources(layout, files, verbose):
    say = print if verbose else (lambda *args: None)
    warn = lambda message: print(message, file=sys.stderr)  # noqa: E731
    say(f"Reading {files[0].name} ...")
    first = read_face_csv(files[0], warn)
    if first.labels is None:
        raise plumbing.UserError(f"{files[0]} has no Emotion column")
    if layout == "fer2013":
        if first.usage is None:
            raise plumbing.UserError(f"{files[0]} has no Usage column, which says which rows "
                                     f"are Training and which PublicTest")
        usage = np.array(first.usage)
        train = FaceTable(first.pixels[usage == "Training"], first.labels[usage == "Training"],
                          None)
        test = FaceTable(first.pixels[usage == "PublicTest"], first.labels[usage == "PublicTest"],
                         None)
    else:
        train = first
    say_shapes(train.labels, say)
    if layout == "book":
        say(f"Reading {files[1].name} ...")
        test = read_face_csv(files[1], warn)
    no_labels = np.zeros(0, np.int8)
    return {"train_pixels": train.pixels, "train_labels": train.labels,
            "test_pixels": test.pixels,
            "test_labels": test.labels if test.labels is not None else no_labels,
            "has_test_labels": np.array(test.labels is not None)}


def say_shapes(train_labels, say):
    """The book's two lines: the shapes of all training images and of their one-hot labels."""
    say((len(train_labels), IMAGE_SIZE, IMAGE_SIZE, 1))
    say((len(train_labels), NUM_LABELS))


def one_hot(labels):
    return np.eye(NUM_LABELS, dtype=np.float32)[labels.astype(np.int64)]


def as_images(pixels):
    images = np.multiply(pixels, np.float32(1 / 255.0), dtype=np.float32)
    return images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)


def read_data(data_dir, force=False, verbose=True):
    """The book's read_data: train/validation (10%, seed 0) and test images, one-hot labels."""
    data_dir = Path(data_dir)
    layout, files = find_layout(data_dir)
    expected = fingerprint(layout, files)
    cache_path = data_dir / CACHE_NAME
    tables = None if force else load_cache(cache_path, expected)
    if tables is None:  # the book's order: Reading, the shapes, Picking (its pickle)
        tables = parse_sources(layout, files, verbose)
        tables["fingerprint"] = np.array(expected)
        if verbose:
            print("Picking ...")
        save_cache(cache_path, tables, lambda m: print(m, file=sys.stderr))
    elif verbose:
        say_shapes(tables["train_labels"], print)
    pixels, labels = tables["train_pixels"], tables["train_labels"]
    # The book's split: np.random.seed(0), then one permutation of the training rows (done on
    # the uint8 pixels, a quarter of the bytes of the float images).
    permutation = np.random.RandomState(0).permutation(len(pixels))
    pixels, labels = pixels[permutation], labels[permutation]
    validation_count = int(len(pixels) * VALIDATION_PERCENT)
    if validation_count == 0:
        raise plumbing.UserError(f"{len(pixels)} training faces in {files[0]}: at least "
                                 f"{math.ceil(1 / VALIDATION_PERCENT)} are needed, one in ten "
                                 f"being held back for validation")
    test_labels = one_hot(tables["test_labels"]) if bool(tables["has_test_labels"]) else None
    return EmotionData(as_images(pixels[validation_count:]), one_hot(labels[validation_count:]),
                       as_images(pixels[:validation_count]), one_hot(labels[:validation_count]),
                       as_images(tables["test_pixels"]), test_labels)


# --------------------------------------------------------------------------------------------
# The book's download_and_display_images.py
# --------------------------------------------------------------------------------------------

def save_first_image(image, label, path):
    plt = plumbing.pyplot()
    figure, axes = plt.subplots(figsize=(3, 3.3))
    axes.imshow(image.reshape(IMAGE_SIZE, IMAGE_SIZE), cmap="Greys_r")
    axes.set_title(f"label {int(np.argmax(label))}: {emotion[int(np.argmax(label))]}")
    axes.axis("off")
    plumbing.save_figure(figure, path)


def show_data(args):
    if args.save:
        problem = plumbing.output_problem(args.save, "--save", args.overwrite)
        if problem:
            raise plumbing.ArgumentMistake(problem)
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


def main(argv=None):
    parser = plumbing.argument_parser(
        "Read the face-expression CSVs, print the book's shapes and save the first "
        "training image. Malformed rows are skipped with a warning naming their "
        "line; a file with no usable row is an error.")
    parser.add_argument("--data-dir", "--data_dir",
                        default=plumbing.native_path("data/EmotionDetector"),
                        help="folder with train.csv + test.csv, or fer2013.csv")
    parser.add_argument("--save", metavar="PNG", default=None,
                        help="save the first training image with its label (a new file)")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --save replace an existing file")
    parser.add_argument("--force", action="store_true", help="ignore the cache and re-parse")
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: show_data(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
