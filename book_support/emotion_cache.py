"""EmotionUtils.read_data's cache of the parsed faces, beside the CSVs.

The book pickled its arrays (EmotionDetectorData.pickle); loading a pickle can run code, so this
cache is an `.npz` file of plain arrays, read with allow_pickle=False. It is written atomically,
rebuilt when a CSV changes (its fingerprint: the files' names, sizes and times, so a .csv
swapped for its .csv.gz is read again too) and whenever what it holds is not what read_data
needs; one that cannot be written is a warning, not an error: the CSV is parsed again next
time.
"""

import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from book_support import plumbing
from book_support.emotion_csv import IMAGE_SIZE, NUM_LABELS, FaceTable

CACHE_NAME = "EmotionDetectorData.npz"
CACHE_VERSION = 1


class FaceCache:
    """The cache in `data_dir` of the faces read from `files` (in `layout`). Made before any
    parsing, it says first when one of the layout's files is missing."""

    def __init__(self, data_dir, layout, files):
        self.path = Path(data_dir) / CACHE_NAME
        self.fingerprint = fingerprint(layout, files)

    def load(self):
        """(training faces, test faces) as FaceTables, or None when absent, stale or not a
        plain .npz of the arrays read_data needs."""
        try:
            with np.load(self.path, allow_pickle=False) as cache:
                if str(cache["fingerprint"]) != self.fingerprint:
                    return None
                tables = {name: cache[name] for name in cache.files}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # missing, truncated, or a pickle: never unpickled, just rebuilt
        if not tables_fit(tables):
            return None
        test_labels = tables["test_labels"] if tables["has_test_labels"] else None
        return (FaceTable(tables["train_pixels"], tables["train_labels"], None),
                FaceTable(tables["test_pixels"], test_labels, None))

    def save(self, train, test):
        tables = {"train_pixels": train.pixels, "train_labels": train.labels,
                  "test_pixels": test.pixels,
                  "test_labels": np.zeros(0, np.int8) if test.labels is None else test.labels,
                  "has_test_labels": np.array(test.labels is not None),
                  "fingerprint": np.array(self.fingerprint)}
        try:
            with plumbing.atomic_output(self.path) as temporary:
                with open(temporary, "wb") as stream:
                    np.savez(stream, **tables)
        except OSError as error:
            print(f"warning: could not write the cache {self.path} ({error.strerror}); "
                  f"the CSV will be parsed again next time", file=sys.stderr)


def fingerprint(layout, files):
    for file in files:
        if not file.exists():
            raise plumbing.UserError(f"{file} is missing (the book's layout needs train.csv "
                                     f"and test.csv side by side, either also as .csv.gz)")
    return json.dumps([CACHE_VERSION, layout] + [[f.name, f.stat().st_size, f.stat().st_mtime_ns]
                                                 for f in files])


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
