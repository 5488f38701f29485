"""Prepare Kaggle's dogs-vs-cats photos for AlexNet: the book's trainDir and testDir at 227x227.

    python prep_images.py data/dogs-vs-cats/train data/dogs-vs-cats/prepared
    python prep_images.py data/dogs-vs-cats/train data/dogs-vs-cats/book --train-count 6000

The second is the chapter's split: its trainDir held 6,000 photos and its testDir 100.

Reads `cat.N.jpg` / `dog.N.jpg` of any size and mode from SOURCE and writes 227x227 RGB JPEGs:
  OUTPUT/trainDir/cat.N.jpg ...        (names kept: alexnet_finetune.py labels by name)
  OUTPUT/testDir/1.jpg ... N.jpg       (the book's numbering, --test-count of them)
  OUTPUT/testDir/labels.csv            (file,label,source: what each test image shows)
The split is drawn with --seed. `--mode squash` resizes as the book did (faces get wider or
thinner); `--mode crop` keeps the aspect ratio and cuts the centre square. An unreadable image
is named with its reason and the rest are still prepared (the exit code is then 1); sources are
never modified; a rerun skips finished files. The settings are kept in OUTPUT/settings.json, and a
rerun with other settings or other source files is refused: it would mix two splits.
"""

import csv
import hashlib
import json
import multiprocessing
import os
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


def jpeg_name(source):
    """cat.1.jpg stays cat.1.jpg; cat.1.png becomes cat.1.png.jpg, so it cannot take the place
    of a cat.1.jpg beside it."""
    return source.stem + ".jpg" if source.suffix.lower() in (".jpg", ".jpeg") \
        else source.name + ".jpg"


def resized(path, size, mode):
    """The image at `path` as an RGB PIL image of size x size."""
    from PIL import Image

    image = image_io.open_rgb(path, at_least=size)
    if mode == "squash":
        return image.resize((size, size), Image.Resampling.BILINEAR)
    return image_io.centre_square(image, size)


def convert(job):
    """Worker: write one source as a JPEG at its target; returns (source, problem or None)."""
    source, target, size, mode = job
    if os.path.exists(target):
        return source, None
    try:
        image = resized(source, size, mode)
    except plumbing.UserError as error:
        return source, str(error)
    with plumbing.atomic_output(target) as temporary:
        image.save(temporary, format="JPEG", quality=95)
    return source, None


def plan(source_dir, output_dir, test_count, seed, size, mode, train_count=None):
    """(jobs, test rows, files skipped): which source goes where. The split depends only on the
    file names and the seed, so a rerun picks the same files. A file not named as an image,
    or a photo whose name says neither cat nor dog, is named and left out."""
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
    if sources and test_count >= len(sources):
        raise plumbing.ArgumentMistake(f"--test-count {test_count} leaves no training photos "
                                       f"({source_dir} has {len(sources)} cat and dog photos)")
    if train_count is not None and test_count + train_count > len(sources):
        raise plumbing.ArgumentMistake(f"--test-count {test_count} and --train-count "
                                       f"{train_count} ask for {test_count + train_count} "
                                       f"photos; {source_dir} has {len(sources)}")
    order = np.random.default_rng(seed).permutation(len(sources))
    if train_count is not None:
        order = order[:test_count + train_count]
    test_dir, train_dir = Path(output_dir) / "testDir", Path(output_dir) / "trainDir"
    jobs, test_rows = [], []
    for position, index in enumerate(order):
        source = sources[index]
        if position < test_count:
            target = test_dir / f"{position + 1}.jpg"
            test_rows.append((target.name, label_of(source.name), source.name))
        else:
            target = train_dir / jpeg_name(source)
        jobs.append((str(source), str(target), size, mode))
    return jobs, test_rows, (len(files) - len(images), len(unlabelled))


def write_test_labels(output_dir, test_rows, failed):
    rows = [row for row in test_rows if row[2] not in failed]
    with plumbing.atomic_output(Path(output_dir) / "testDir" / "labels.csv") as temporary:
        with open(temporary, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["file", "label", "source"])
            writer.writerows(rows)
    return len(rows)


def settings_of(args, jobs):
    """What the split and the outputs depend on; kept as OUTPUT/settings.json."""
    names = "\n".join(sorted(Path(job[0]).name for job in jobs))
    names = hashlib.sha256(names.encode()).hexdigest()
    return {"seed": args.seed, "test_count": args.test_count,
            "train_count": args.train_count, "size": args.size,
            "mode": args.mode, "sources": names}


def check_or_record_settings(output_dir, settings):
    """A rerun may only finish the same preparation: other settings (or other source files)
    would mix old test photos with a new labels.csv and leak test photos into trainDir."""
    record = output_dir / "settings.json"
    if record.exists():
        try:
            earlier = json.loads(record.read_text())
        except (OSError, ValueError):
            earlier = None
        earlier = earlier if isinstance(earlier, dict) else {}
        changed = ["other source files" if key == "sources" else
                   f"--{key.replace('_', '-')} {earlier.get(key)}, now {value}"
                   for key, value in settings.items() if earlier.get(key) != value]
        if changed:
            raise plumbing.UserError(f"{output_dir} was prepared differently "
                                     f"({'; '.join(changed)}); choose a new output folder, or "
                                     f"delete that one")
        return
    if any((output_dir / folder).is_dir() and any((output_dir / folder).iterdir())
           for folder in ("trainDir", "testDir")):
        raise plumbing.UserError(f"{output_dir} already holds images that no settings.json "
                                 f"describes; choose a new output folder")
    with plumbing.atomic_output(record) as temporary:
        temporary.write_text(json.dumps(settings, indent=1))


def memory_problem(args, free):
    """Why --workers images of --size pixels a side cannot be made at once in `free` bytes, or
    None. Each worker holds the resized RGB image about twice (resizing, then encoding)."""
    needed = args.workers * 2 * args.size ** 2 * 3
    if free is not None and needed > free:
        return (f"--size {args.size} needs about {needed / 2**30:.1f} GiB with {args.workers} "
                f"workers and {free / 2**30:.1f} GiB are free; choose a smaller --size (the book "
                f"used 227) or fewer --workers")
    return None


def prepare(args):
    source_dir, output_dir = Path(args.source), Path(args.output)
    if not source_dir.is_dir():
        raise plumbing.UserError(f"{source_dir} is not a folder of images")
    if output_dir.resolve() == source_dir.resolve() or source_dir.resolve() in \
            output_dir.resolve().parents:
        raise plumbing.UserError("the output folder must not be inside the source folder")
    problem = plumbing.folder_problem(output_dir, "output") or \
        memory_problem(args, plumbing.available_memory_bytes())
    if problem:
        raise plumbing.ArgumentMistake(problem)
    jobs, test_rows, skipped = plan(source_dir, output_dir, args.test_count, args.seed,
                                    args.size, args.mode, args.train_count)
    if not jobs:
        raise plumbing.UserError(f"{source_dir} has no cat or dog photos")
    check_or_record_settings(output_dir, settings_of(args, jobs))
    for folder in ("trainDir", "testDir"):
        (output_dir / folder).mkdir(parents=True, exist_ok=True)
        for leftover in (output_dir / folder).glob(".*.*.jpg"):  # a killed run's temporaries
            leftover.unlink()
    failed = set()
    unreadable = image_io.UnreadableImages(len(jobs))
    progress = plumbing.Progress(len(jobs), "preparing", unit=" images")
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for source, problem in pool.imap_unordered(convert, jobs, chunksize=8):
            if problem:
                failed.add(Path(source).name)
                unreadable.report(problem)
            progress.update()
    progress.close()
    tests = write_test_labels(output_dir, test_rows, failed)
    print(f"prepared {len(jobs) - len(failed) - tests} training and {tests} test images "
          f"({args.size}x{args.size}, {args.mode}) in {output_dir}"
          + (f"; skipped {skipped[0]} files not named as images" if skipped[0] else "")
          + (f"; skipped {skipped[1]} photos named neither cat nor dog" if skipped[1] else ""))
    return unreadable.exit_code()


def usable_cpus():
    """The CPUs this process may run on (a container or `taskset` may allow fewer than the
    machine has)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def main(argv=None):
    parser = plumbing.argument_parser(
        "Make the book's trainDir/testDir of 227x227 RGB JPEGs from Kaggle's "
        "dogs-vs-cats photos.")
    parser.add_argument("source", help="folder of cat.N.jpg / dog.N.jpg photos (never modified)")
    parser.add_argument("output", help="where trainDir/ and testDir/ are written")
    parser.add_argument("--size", type=plumbing.count(8), default=227,
                        help="side of the square outputs")
    parser.add_argument("--test-count", type=plumbing.count(0), default=100,
                        help="photos set aside as the numbered testDir (the book kept 100)")
    parser.add_argument("--train-count", type=plumbing.count(1), default=None,
                        help="photos in trainDir (the chapter's trainDir held 6000; default: "
                             "every photo not set aside for testDir)")
    parser.add_argument("--seed", type=plumbing.seed, default=0,
                        help="seed of the train/test split")
    parser.add_argument("--mode", choices=("squash", "crop"), default="squash",
                        help="squash to a square as the book did, or crop the centre square")
    parser.add_argument("--workers", type=plumbing.count(1), default=usable_cpus(),
                        help="processes that decode and resize (default: the CPUs this "
                             "process may use)")
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: prepare(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
