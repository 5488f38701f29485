"""style_transfer.py on the book's cat.jpg and mosaic.jpg, with a tiny stand-in VGG-19 .mat
(the real 535 MB file cannot be had here)."""

import hashlib
import re
import sys

from PIL import Image

from conftest import PROJECT, run_script

sys.path.insert(0, str(PROJECT))
from tests.standins import vgg19_weights, write_vgg_mat  # noqa: E402


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_books_pair_a_few_iterations_each_optimiser(shared_data, tmp_path):
    cat, mosaic = shared_data / "images" / "cat.jpg", shared_data / "images" / "mosaic.jpg"
    before = digest(cat), digest(mosaic)
    weights = write_vgg_mat(tmp_path / "vgg.mat", vgg19_weights())
    for optimizer in ("adam", "lbfgs"):
        out = tmp_path / optimizer
        result = run_script(PROJECT / "style_transfer.py", "--content", cat, "--style", mosaic,
                            "--weights", weights, "--size", "128", "--iterations", "30",
                            "--print-every", "10", "--save-every", "10", "--optimizer",
                            optimizer, "--output-dir", out, "--seed", "0")
        print(result.stdout)
        assert result.returncode == 0, result.stderr
        costs = [float(c) for c in re.findall(r"^iteration: \d+ cost:  (\S+)$", result.stdout,
                                              re.MULTILINE)]
        assert costs[-1] < 0.5 * costs[0]
        with Image.open(out / "final.png") as image:
            assert image.size == (128, 128)
        assert (out / "progress_grid.png").stat().st_size > 10_000
    assert (digest(cat), digest(mosaic)) == before
