"""The AlexNet scripts on the real dogs-vs-cats photos and the book's sample images, with
stand-in weights (the real 244 MB file cannot be had here)."""

import re
import sys

from conftest import PROJECT, run_script

sys.path.insert(0, str(PROJECT))
from tests.standins import alexnet_weights, write_py2_alexnet_npy  # noqa: E402


def test_prep_then_finetune_dry_run_on_600_real_photos(shared_data, tmp_path):
    source = shared_data / "dogs_vs_cats" / "train"
    prepared = run_script(PROJECT / "prep_images.py", source, tmp_path / "prepared")
    print(prepared.stdout)
    assert prepared.returncode == 0, prepared.stderr
    assert "prepared 500 training and 100 test images (227x227, squash)" in prepared.stdout
    assert len(list((tmp_path / "prepared" / "trainDir").glob("*.jpg"))) == 500
    weights = write_py2_alexnet_npy(tmp_path / "bvlc_alexnet.npy", alexnet_weights())
    tuned = run_script(PROJECT / "alexnet_finetune.py", "--train-dir",
                       tmp_path / "prepared" / "trainDir", "--test-dir",
                       tmp_path / "prepared" / "testDir", "--weights", weights, "--dry-run",
                       "--checkpoint-dir", tmp_path / "ck")
    print(tuned.stdout)
    assert tuned.returncode == 0, tuned.stderr
    assert re.search(r"^Iter \d+, Minibatch Loss= \d+\.\d{6}, Training Accuracy= \d\.\d{5}$",
                     tuned.stdout, re.MULTILINE)
    assert re.search(r"^Testing Accuracy = \d+\.\d% \(\d/4\)$", tuned.stdout, re.MULTILINE)


def test_forward_on_the_books_sample_images_with_the_real_class_names(shared_data, tmp_path):
    weights = write_py2_alexnet_npy(tmp_path / "bvlc_alexnet.npy", alexnet_weights())
    images = sorted((shared_data / "images").glob("*.png")) + \
        [shared_data / "images" / "quail227.JPEG"]
    classes = shared_data / "imagenet" / "caffe_classes.txt"
    result = run_script(PROJECT / "alexnet_forward.py", *images, "--weights", weights,
                        "--classes", classes)
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    names = set(classes.read_text().splitlines())
    blocks = re.findall(r"^Image (\d+) \((.+)\)\n((?:.+\n){5})", result.stdout, re.MULTILINE)
    assert len(blocks) == len(images)
    for _, _, lines in blocks:
        assert all(line.rsplit(" ", 1)[0] in names for line in lines.splitlines())
