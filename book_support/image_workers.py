"""The processes that decode and resize prep_images.py's photos, all cores at once.

Holds usable_cpus (the default for --workers), memory_problem (whether that many images of
--size fit in the free memory, said before any work) and convert_all (each job in a worker
process, with progress, each unreadable photo reported as it is met).
"""

import multiprocessing
import os
from pathlib import Path

from book_support import plumbing


def usable_cpus():
    """The CPUs this process may run on (a container or `taskset` may allow fewer than the
    machine has)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def memory_problem(args, free):
    """Why --workers images of --size pixels a side cannot be made at once in `free` bytes, or
    None. Each worker holds the resized RGB image about twice (resizing, then encoding)."""
    needed = args.workers * 2 * args.size ** 2 * 3
    if free is not None and needed > free:
        return (f"--size {args.size} needs about {needed / 2**30:.1f} GiB with {args.workers} "
                f"workers and {free / 2**30:.1f} GiB are free; choose a smaller --size (the book "
                f"used 227) or fewer --workers")
    return None


def convert_all(convert, jobs, workers, unreadable):
    """Run `convert(job)` -> (source, problem or None) for every job in `workers` processes,
    reporting each problem to `unreadable` (an image_io.UnreadableImages); returns the file
    names of the sources that failed."""
    failed = set()
    progress = plumbing.Progress(len(jobs), "preparing", unit=" images")
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for source, problem in pool.imap_unordered(convert, jobs, chunksize=8):
            if problem:
                failed.add(Path(source).name)
                unreadable.report(problem)
            progress.update()
    progress.close()
    return failed
