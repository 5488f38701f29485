"""lenet_mnist.py on the real MNIST files: three of the book's epochs reach 98%."""

import re

from conftest import PROJECT, run_script


def test_three_epochs_reach_98_percent_on_the_full_test_set(shared_data, tmp_path):
    result = run_script(PROJECT / "lenet_mnist.py", "--data-dir", shared_data / "mnist",
                        "--epochs", "3", "--seed", "1", "--checkpoint-dir", tmp_path / "ck",
                        "--plot", tmp_path / "curves.png", "--plot-inside",
                        tmp_path / "inside.png")
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    found = re.search(r"^test accuracy: (\d\.\d{4}) \((\d+)/10000\)$", result.stdout, re.M)
    assert found, result.stdout
    assert float(found.group(1)) >= 0.980
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert (tmp_path / "inside.png").stat().st_size > 10_000
