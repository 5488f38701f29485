"""The face CSVs that EmotionUtils.read_data reads, parsed fast and checked row by row.

Two layouts (../data/README.md says where to get them), found by find_layout:
  * the book's Kaggle in-class files: `train.csv` (`Emotion,Pixels`) and `test.csv` (`Pixels`,
    and `Emotion` too when present);
  * Kaggle's FER2013 `fer2013.csv` (`emotion,pixels,Usage`): `Training` rows become the training
    and validation sets, `PublicTest` the test set (`PrivateTest` is left out).
The pixel strings are parsed in blocks by NumPy's C parser into uint8 (the book: one float64
`np.fromstring` per row; faster: README, bench/); only a block holding a malformed row is read
again row by row, and each malformed row is skipped with a warning naming its line (the book's
`dropna` dropped them silently).
"""

import io
import sys
from pathlib import Path

import numpy as np

from book_support import plumbing

IMAGE_SIZE = 48  # faces of 48x48 grey pixels
NUM_LABELS = 7   # emotions 0..6: EmotionUtils.emotion names them
PIXELS = IMAGE_SIZE * IMAGE_SIZE
ROWS_PER_BLOCK = 2000  # a malformed row costs only its own block a slow re-read
MAX_WARNINGS = 10
COMMAS_TO_SPACES = bytes.maketrans(b",", b" ")


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


def training_and_public_test(table, path):
    """FER2013's one file as (training rows, PublicTest rows), by its Usage column."""
    if table.usage is None:
        raise plumbing.UserError(f"{path} has no Usage column, which says which rows "
                                 f"are Training and which PublicTest")
    usage = np.array(table.usage)
    train = FaceTable(table.pixels[usage == "Training"], table.labels[usage == "Training"],
                      None)
    test = FaceTable(table.pixels[usage == "PublicTest"], table.labels[usage == "PublicTest"],
                     None)
    return train, test
