"""classify_image.py --bottleneck DIR: each image's 2048 pool_3 features, saved for transfer
learning as DIR/FILE.npy (cat_jpg.npy for cat.jpg).

A cache of features: a later run replaces the file of the same image. Holds paths (each image's
file, checked before any work) and save (written atomically, so a cut run leaves no half file).
"""

from pathlib import Path

import numpy as np

from book_support import plumbing


def paths(folder, images):
    """{image: DIR/FILE.npy} for --bottleneck; {} without it. Two images of one file name
    (from two folders) are a command-line mistake."""
    if folder is None:
        return {}
    problem = plumbing.folder_problem(folder, "--bottleneck")
    found, taken = {}, {}
    for image in images:
        path = Path(folder) / f"{Path(image).name.replace('.', '_')}.npy"
        if path in taken:
            problem = problem or (f"--bottleneck: {taken[path]} and {image} would both be "
                                  f"saved as {path}")
        found[image], taken[path] = path, image
    if problem:
        raise plumbing.ArgumentMistake(problem)
    return found


def save(path, features):
    with plumbing.atomic_output(path) as temporary:
        np.save(temporary, features.astype(np.float32))
    print(f"saved the {features.size} bottleneck features to {path}")
