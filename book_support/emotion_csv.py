"""The face CSVs that EmotionUtils.read_data reads, parsed fast and checked row by row.

Two layouts (../data/README.md says where to get them), found by find_layout:
  * the book's Kaggle in-class files: `train.csv` (`Emotion,Pixels`) and `test.csv` (`Pixels`,
    and `Emotion` too when present);
  * Kaggle's FER2013 `fer2013.csv` (`emotion,pixels,Usage`): `Training` rows become the training
    and validation sets, `PublicTest` the test set (`PrivateTest` is left out).
Each CSV is read as it comes: as it is, gzipped (`.csv.gz`), or, for FER2013, inside Kaggle's
`fer2013.tar.gz`; the text is parsed as it is read and decompressed (csv_text, parse_stream),
never unpacked onto the disk. The pixel strings are parsed in blocks by NumPy's C parser into
uint8 (the book: one float64 `np.fromstring` per row; faster: README, bench/); only a block
holding a malformed row is read again row by row, and each malformed row is skipped with a
warning naming its line (the book's `dropna` dropped them silently).
"""

import contextlib
import gzip
import io
import sys
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from book_support import plumbing

IMAGE_SIZE = 48  # faces of 48x48 grey pixels
NUM_LABELS = 7   # emotions 0..6: EmotionUtils.emotion names them
PIXELS = IMAGE_SIZE * IMAGE_SIZE
ROWS_PER_BLOCK = 2000  # a malformed row costs only its own block a slow re-read
CHUNK_BYTES = 1 << 24  # the CSV text is parsed as it is read, about 2,000 rows at a time
HEADER_BYTES = 1 << 16  # a header line is shorter than this
FER2013_CSV = "fer2013.csv"
BOOK_NAMES = (("train.csv", "train.csv.gz"), ("test.csv", "test.csv.gz"))
FER2013_NAMES = (FER2013_CSV, FER2013_CSV + ".gz", "fer2013.tar.gz")
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
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
        shown = header.strip()[:60] + ("..." if len(header.strip()) > 60 else "")
        raise plumbing.UserError(f"{path} has no Pixels column (its header is {shown!r})")
    return names, (end + 1 if end >= 0 else len(raw))


def row_spans(raw, start, number, stop):
    """(line number, start, end) of every non-blank row of `raw` from `start`, which is line
    `number`, to `stop`; and the number of the line after them."""
    spans = []
    while start < stop:
        end = raw.find(b"\n", start, stop)
        end = stop if end < 0 else end
        if end - start > 8 or raw[start:end].strip():  # only short lines can be blank
            spans.append((number, start, end))
        start, number = end + 1, number + 1
    return spans, number


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


def parse_stream(stream, path):
    """(column names, parsed rows) of the CSV text that `stream` gives, parsed as it arrives,
    a piece of whole lines at a time: the text is never held whole, so a .csv.gz needs no more
    memory than its .csv, and a .csv less than its size."""
    names, pieces, number, line_begun = None, [], 1, []
    for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
        lines_end = chunk.rfind(b"\n") + 1
        if not lines_end:  # all of it inside one line
            line_begun.append(chunk)
            if names is None and sum(map(len, line_begun)) > HEADER_BYTES:
                raise plumbing.UserError(f"{path} is not a face CSV: no line ends in its "
                                         f"first {HEADER_BYTES:,} bytes")
            continue
        raw = b"".join([*line_begun, chunk]) if line_begun else chunk  # the one copy
        lines_end += len(raw) - len(chunk)
        names, number = parse_piece(raw, lines_end, names, number, pieces, path)
        line_begun = [raw[lines_end:]]
    rest = b"".join(line_begun)
    if rest or names is None:
        names, number = parse_piece(rest, len(rest), names, number, pieces, path)
    return names, joined(pieces, names)


def parse_piece(raw, end, names, number, pieces, path):
    """Parse the whole lines in `raw` up to `end`, from line `number` (1: the header is in
    it); their rows go to `pieces`. Returns the column names and the next line's number."""
    start = 0
    if names is None:
        names, start = read_header(raw[:min(end, HEADER_BYTES)], path)
        number = 2
    spans, number = row_spans(raw, start, number, end)
    pieces.append(parse_rows(raw, spans, names))
    return names, number


def joined(pieces, names):
    """One ParsedRows of the pieces of a file, in order."""
    usage = None if "usage" not in names else np.concatenate(
        [np.zeros(0, dtype=str)] + [piece.usage for piece in pieces])
    labels = None if "emotion" not in names else np.concatenate(
        [np.zeros(0, np.int8)] + [piece.labels for piece in pieces])
    return ParsedRows(labels, np.concatenate([piece.pixels for piece in pieces]), usage,
                      [problem for piece in pieces for problem in piece.problems])


@contextlib.contextmanager
def csv_text(path):
    """A binary stream of the CSV text in `path`, as it comes: a .csv read as it is, a .gz
    decompressed as it is read, and from Kaggle's fer2013.tar.gz its fer2013.csv member, read
    from the archive as it is decompressed (nothing is extracted, so no member is written
    anywhere). Yields (stream, how warnings name the CSV)."""
    if path.name.endswith(TAR_SUFFIXES):
        with tarfile.open(path, "r|*") as archive:
            held = []
            for member in archive:  # in order, as the archive is read: nothing seeks back
                if member.isreg() and PurePosixPath(member.name).name == FER2013_CSV:
                    yield archive.extractfile(member), f"{path} ({member.name})"
                    return
                held.append(member.name)
        raise plumbing.UserError(f"{path} holds no {FER2013_CSV}, so it is not Kaggle's "
                                 f"FER2013 archive (it holds {a_few(held) or 'nothing'})")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        yield stream, path


def unreadable(path, error):
    """The one line for a face file that could not be read, or was cut short or damaged."""
    if isinstance(error, EOFError):
        return f"{path} is truncated ({error})"
    if isinstance(error, tarfile.TarError):
        return f"{path} is not a readable .tar.gz archive ({error})"
    if isinstance(error, (gzip.BadGzipFile, zlib.error)):
        return f"{path} is not a readable gzip file ({error})"
    return f"cannot read {path}: {error.strerror or error}"


def read_face_csv(path, warn=print):
    """Read a face CSV (or a .csv.gz, or Kaggle's fer2013.tar.gz); malformed rows are skipped
    with a warning naming their line."""
    path = Path(path)
    try:
        with csv_text(path) as (stream, name):
            names, rows = parse_stream(stream, name)
    except (OSError, EOFError, zlib.error, tarfile.TarError) as error:
        raise plumbing.UserError(unreadable(path, error)) from None
    report_problems(name, rows.problems, warn)
    if not len(rows.pixels):
        raise plumbing.UserError(f"{name} has no usable rows")
    usage = None if rows.usage is None else rows.usage.tolist()
    return FaceTable(rows.pixels.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), rows.labels, usage)


def report_problems(path, problems, warn):
    for number, why in problems[:MAX_WARNINGS]:
        warn(f"warning: {path} line {number}: {why}; row skipped")
    if len(problems) > MAX_WARNINGS:
        warn(f"warning: {path}: {len(problems) - MAX_WARNINGS} more malformed rows skipped")


def find_layout(data_dir):
    """('book', [train, test]) or ('fer2013', [fer2013]), whichever is there: train.csv and
    test.csv, or fer2013.csv, each also read gzipped (.csv.gz), the .csv first when both are
    there; or Kaggle's fer2013.tar.gz as it comes."""
    data_dir = Path(data_dir)
    train, fer2013 = first_there(data_dir, BOOK_NAMES[0]), first_there(data_dir, FER2013_NAMES)
    if train:
        if fer2013:
            print(f"note: {data_dir} holds both the book's {train.name} and {fer2013.name}; "
                  f"reading the book's (give {fer2013.name} a folder of its own, such as "
                  f"data/fer2013, to read it)", file=sys.stderr)
        return "book", [train, first_there(data_dir, BOOK_NAMES[1]) or data_dir / "test.csv"]
    if fer2013:
        return "fer2013", [fer2013]
    raise plumbing.UserError(
        f"no face data in {data_dir} ({what_is_in(data_dir)}): put the book's train.csv and "
        f"test.csv there (Kaggle facial-keypoints-detector) or Kaggle's fer2013.csv, each as it "
        f"is or gzipped (.csv.gz), or Kaggle's fer2013.tar.gz; see data/README.md")


def first_there(data_dir, names):
    return next((data_dir / name for name in names if (data_dir / name).exists()), None)


def what_is_in(data_dir):
    """`it holds a.txt, b.zip and 3 more`: what a folder without face data holds instead."""
    try:
        names = sorted(entry.name for entry in data_dir.iterdir()
                       if not entry.name.startswith("."))
    except FileNotFoundError:
        return "no such folder"
    except OSError as error:
        return f"it cannot be listed: {error.strerror}"
    return f"it holds {a_few(names)}" if names else "it is empty"


def a_few(names, shown=4):
    """`a, b, c` or `a, b, c, d and 3 more`."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


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
