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

What the book does not have lives in book_support/: pets_data (which files are photos of cats
and dogs, labels.csv), prepared_folder (settings.json, the checks of the folders, a killed
run's leftovers), image_workers (the worker processes: how many, whether they fit in memory,
progress), image_io (opening any image, naming the bad ones) and plumbing (errors, outputs).
"""

import os
from pathlib import Path

import numpy as np

from book_support import file_roles
from book_support import image_io
from book_support import image_workers
from book_support import pets_data
from book_support import plumbing
from book_support import prepared_folder


# --------------------------------------------------------------------------------------------
# The book, 数据集准备 (dataset preparation): every photo reshaped to 227x227x3
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Beyond the book: which photos go where, a rerun kept to one preparation, all cores
# --------------------------------------------------------------------------------------------

def plan(source_dir, output_dir, test_count, seed, size, mode, train_count=None):
    """(jobs, test rows, files skipped): which source goes where. The split depends only on the
    file names and the seed, so a rerun picks the same files. A file not named as an image,
    or a photo whose name says neither cat nor dog, is named and left out."""
    sources, skipped = pets_data.labelled_photos(source_dir)
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
            test_rows.append((target.name, pets_data.label_of(source.name), source.name))
        else:
            target = train_dir / jpeg_name(source)
        jobs.append((str(source), str(target), size, mode))
    return jobs, test_rows, skipped


def prepare(args):
    """The preparation: the split planned, each photo converted by a worker process, then
    testDir's labels written and the counts said."""
    source_dir, output_dir = Path(args.source), Path(args.output)
    prepared_folder.refuse_unusable(source_dir, output_dir)
    problem = image_workers.memory_problem(args, plumbing.available_memory_bytes())
    if problem:
        raise plumbing.ArgumentMistake(problem)
    jobs, test_rows, skipped = plan(source_dir, output_dir, args.test_count, args.seed,
                                    args.size, args.mode, args.train_count)
    if not jobs:
        raise plumbing.UserError(f"{source_dir} has no cat or dog photos")
    prepared_folder.check_or_record_settings(output_dir, prepared_folder.settings_of(args, jobs))
    prepared_folder.make_folders(output_dir)
    unreadable = image_io.UnreadableImages(len(jobs))
    failed = image_workers.convert_all(convert, jobs, args.workers, unreadable)
    tests = pets_data.write_test_labels(output_dir, test_rows, failed)
    print(f"prepared {len(jobs) - len(failed) - tests} training and {tests} test images "
          f"({args.size}x{args.size}, {args.mode}) in {output_dir}"
          + (f"; skipped {skipped[0]} files not named as images" if skipped[0] else "")
          + (f"; skipped {skipped[1]} photos named neither cat nor dog" if skipped[1] else ""))
    return unreadable.exit_code()


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main(argv=None):
    parser = plumbing.argument_parser(
        "Make the book's trainDir/testDir of 227x227 RGB JPEGs from Kaggle's "
        "dogs-vs-cats photos.")
    file_roles.reads(parser.add_argument(
        "source", help="folder of cat.N.jpg / dog.N.jpg photos (never modified)"),
        file_roles.FOLDER)
    file_roles.writes(parser.add_argument(
        "output", help="where trainDir/ and testDir/ are written"), file_roles.FOLDER)
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
    parser.add_argument("--workers", type=plumbing.count(1), default=image_workers.usable_cpus(),
                        help="processes that decode and resize (default: the CPUs this "
                             "process may use)")
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: prepare(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
