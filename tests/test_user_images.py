"""Every script that reads a reader's images, on a generated folder of awkward valid images and
broken files (tests/image_corpus.py): the valid ones give their normal output, each broken one
is named with its reason and no traceback, and the others in the same run are still done."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFile

import emotion_test
from book_support import image_io
import style_transfer
from conftest import PROJECT, posix_only, run_script
from image_corpus import BLUE, RED, bomb_png, write_broken, write_valid
from book_support.plumbing import UserError
from tests.standins import (alexnet_weights, caffe_classes_text, vgg19_weights,
                            write_inception_files, write_py2_alexnet_npy, write_vgg_mat)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    valid = write_valid(root / "valid")
    broken = write_broken(root / "broken")
    broken["missing.jpg"] = "does not exist"
    return root, valid, broken


def paths(corpus):
    root, valid, broken = corpus
    return ([root / "valid" / name for name in valid], [root / "broken" / name for name in broken])


def assert_each_broken_one_named(stderr, corpus, program):
    root, valid, broken = corpus
    assert "Traceback" not in stderr
    for name, words in broken.items():
        lines = [line for line in stderr.splitlines() if f"{root / 'broken' / name} " in line]
        assert len(lines) == 1, (name, stderr)
        assert lines[0].startswith(f"{program}: error: ") and words in lines[0], lines[0]
    total = len(valid) + len(broken)
    assert f"{program}: {len(broken)} of {total} images could not be read" in stderr


# --------------------------------------------------------------------------------------------
# The shared opener
# --------------------------------------------------------------------------------------------

def test_every_valid_kind_opens_as_upright_8_bit_rgb(corpus):
    root, valid, _ = corpus
    for name, size in valid.items():
        image = image_io.open_rgb(root / "valid" / name)
        assert image.mode == "RGB" and image.size == size, name
    alpha = image_io.open_rgb(root / "valid" / "alpha.png")
    assert alpha.getpixel((0, 0)) == (255, 255, 255) and alpha.getpixel((39, 0)) == BLUE
    for animation in ("animated.gif", "animated.png"):  # the first frame, not the last
        assert image_io.open_rgb(root / "valid" / animation).getpixel((39, 29)) == RED
    rotated = np.asarray(image_io.open_rgb(root / "valid" / "exif_rotated.jpg"), np.int32)
    assert np.abs(rotated[5, 5] - RED).max() < 8 and np.abs(rotated[-5, 5] - BLUE).max() < 8


def test_every_broken_kind_is_refused_naming_the_file(corpus):
    root, _, broken = corpus
    for name, words in broken.items():
        with pytest.raises(UserError) as refusal:
            image_io.open_rgb(root / "broken" / name)
        assert str(refusal.value).startswith(str(root / "broken" / name)) and \
            words in str(refusal.value)


@pytest.mark.parametrize("where, slip", [("_upright_rgb", AttributeError), ("open", TypeError)])
def test_a_bug_in_the_decoding_code_is_a_traceback_not_a_damaged_photo(corpus, monkeypatch,
                                                                      where, slip):
    """Only what a decoder raises for a bad file is "damaged": a slip in the code that opens
    or converts an image must show as itself, not blame every good photo."""
    root, valid, _ = corpus

    def broken(*args, **kwargs):
        raise slip("a slip in the code, not in the photo")
    monkeypatch.setattr(image_io if where == "_upright_rgb" else Image, where, broken)
    with pytest.raises(slip):
        image_io.open_rgb(root / "valid" / next(iter(valid)))


def test_a_decompression_bomb_is_refused_from_its_header(corpus, monkeypatch):
    root, _, _ = corpus
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    with pytest.raises(UserError, match=r"1,600,000,000 pixels, over the limit of 268,435,456"):
        image_io.open_rgb(root / "broken" / "bomb.png")
    assert decoded == []
    assert Image.MAX_IMAGE_PIXELS == 89478485  # Pillow's own guard is back in place


@posix_only
def test_a_decompression_bomb_costs_no_memory(corpus):
    # Decoded, this file is 1.6 GB; refused from its header, the process stays small.
    root, _, _ = corpus
    # VmHWM, the process's peak resident memory; unlike ru_maxrss it does not carry over
    # the peak of the (large) pytest process this one was forked from.
    probe = ("import re, sys\nfrom book_support import image_io, plumbing\n"
             "try:\n    image_io.open_rgb(sys.argv[1])\n"
             "except plumbing.UserError as error:\n    print(error)\n"
             "status = open('/proc/self/status').read()\n"
             "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) // 1024)\n")
    result = subprocess.run([sys.executable, "-c", probe, str(root / "broken" / "bomb.png")],
                            cwd=PROJECT, capture_output=True, text=True, timeout=120)
    message, peak_mib = result.stdout.splitlines()
    assert "decompression bomb" in message
    assert int(peak_mib) < 200, peak_mib


def test_a_large_valid_image_under_the_limit_is_read(tmp_path):
    # Over Pillow's own warning threshold (89 megapixels), under ours: a big phone photo.
    side = 10_000
    (tmp_path / "big.png").write_bytes(bomb_png(side))
    image = image_io.open_image(tmp_path / "big.png")
    assert image.size == (side, side)
    image.close()


def test_the_summary_and_exit_code_are_the_same_everywhere(capsys, tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    tally = image_io.UnreadableImages(2)
    read = list(tally.each([tmp_path / "a.png", tmp_path / "b.png"], image_io.open_rgb))
    assert read == [] and tally.exit_code() == 1
    assert capsys.readouterr().err.splitlines()[-1].endswith("2 of 2 images could not be read")
    assert image_io.UnreadableImages(3).exit_code() == 0


# --------------------------------------------------------------------------------------------
# The scripts that take many images
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def alexnet_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("alexnet")
    write_py2_alexnet_npy(folder / "bvlc_alexnet.npy", alexnet_weights())
    (folder / "caffe_classes.py").write_text(caffe_classes_text([f"c{i}" for i in range(1000)]))
    return folder


def test_alexnet_forward_classifies_the_good_ones_and_names_the_bad(corpus, alexnet_files,
                                                                     tmp_path):
    good, bad = paths(corpus)
    mixed = [p for pair in zip(good, bad) for p in pair] + good[len(bad):]
    result = run_script(PROJECT / "alexnet_forward.py", *mixed, "--top", "2",
                        "--weights", alexnet_files / "bvlc_alexnet.npy",
                        "--classes", alexnet_files / "caffe_classes.py", "--cam",
                        tmp_path / "cams")
    assert result.returncode == 1
    shown = re.findall(r"^Image \d+ \((.+)\)$", result.stdout, re.MULTILINE)
    assert shown == [str(p) for p in mixed if p in good]
    assert_each_broken_one_named(result.stderr, corpus, "alexnet_forward.py")
    heatmaps = sorted(p.name for p in (tmp_path / "cams").iterdir())
    assert heatmaps == sorted(f"{p.name.replace('.', '_')}_cam.png" for p in good)  # none bad


def test_alexnet_forward_with_only_bad_images_loads_nothing(corpus, tmp_path):
    _, bad = paths(corpus)
    result = run_script(PROJECT / "alexnet_forward.py", *bad[:2], "--weights",
                        tmp_path / "never-read.npy", "--classes", tmp_path / "never.txt")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "2 of 2 images could not be read" in result.stderr
    assert "never-read" not in result.stderr


def test_classify_image_classifies_the_good_ones_and_saves_only_their_features(corpus,
                                                                                 tmp_path):
    write_inception_files(tmp_path / "model")
    good, bad = paths(corpus)
    result = run_script(PROJECT / "classify_image.py", "--model_dir", tmp_path / "model",
                        "--num_top_predictions", "1", "--bottleneck", tmp_path / "features",
                        "--cam", tmp_path / "cams", "--image_file", *bad[:3], *good, *bad[3:])
    assert result.returncode == 1, result.stderr
    assert re.findall(r"^(.+):$", result.stdout, re.MULTILINE) == [str(p) for p in good], \
        result.stderr
    assert_each_broken_one_named(result.stderr, corpus, "classify_image.py")
    saved = sorted(p.name for p in (tmp_path / "features").iterdir())
    assert saved == sorted(f"{p.name.replace('.', '_')}.npy" for p in good)
    heatmaps = sorted(p.name for p in (tmp_path / "cams").iterdir())
    assert heatmaps == sorted(f"{p.name.replace('.', '_')}_cam.png" for p in good)


def test_prep_images_prepares_the_good_ones_and_names_the_bad(corpus, tmp_path):
    root, valid, broken = corpus
    source = tmp_path / "train"
    source.mkdir()
    for index, path in enumerate(sum(paths(corpus), [])):
        target = source / f"{('cat', 'dog')[index % 2]}.{path.name}"
        if path.is_dir():
            target.mkdir()
        elif path.exists():
            shutil.copyfile(path, target)
    result = run_script(PROJECT / "prep_images.py", source, tmp_path / "out", "--test-count",
                        "4", "--size", "32")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    written = list((tmp_path / "out").rglob("*.jpg"))
    assert len(written) == len(valid)
    for path in written:
        with Image.open(path) as image:
            assert image.size == (32, 32) and image.mode == "RGB"
    failed = [line for line in result.stderr.splitlines() if "prep_images.py: error:" in line]
    assert len(failed) == len(broken) - 1  # all but the missing file, which was never there
    assert f"{len(broken) - 1} of {len(valid) + len(broken) - 1} images could not be read" \
        in result.stderr


# --------------------------------------------------------------------------------------------
# The scripts that take one image at a time
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emotion_checkpoint(tmp_path_factory):
    """A tiny deterministic model with the book's tensor names, saved as emotion_cnn.py does."""
    import tensorflow.compat.v1 as tf

    folder = tmp_path_factory.mktemp("emotion_logs")
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 48, 48, 1], name="input")
        weights = tf.Variable(np.random.default_rng(0).normal(0, 0.05, (2304, 7))
                              .astype(np.float32), name="W_fc2")
        tf.nn.softmax(tf.matmul(tf.reshape(x, [-1, 2304]), weights), name="output")
        saver = tf.train.Saver()
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            saver.save(session, str(folder / "model.ckpt"), global_step=1)
    return folder


def test_emotion_test_reads_every_valid_kind_and_refuses_every_broken_one(
        corpus, emotion_checkpoint, tmp_path, capsys):
    good, bad = paths(corpus)
    for photo in good:
        figure = tmp_path / f"{photo.name}.png"
        assert emotion_test.main([str(photo), "--logs-dir", str(emotion_checkpoint),
                                  "--figure", str(figure)]) == 0, photo
        out = capsys.readouterr().out
        assert len(re.findall(r"^\w+ = \d+\.\d%$", out, re.MULTILINE)) == 7, out
        assert figure.exists()
    for photo in bad:
        figure = tmp_path / f"{photo.name}.png"
        assert emotion_test.main([str(photo), "--logs-dir", str(emotion_checkpoint),
                                  "--figure", str(figure)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(photo) in err, err
        assert not figure.exists()


@pytest.fixture(scope="module")
def tiny_vgg(tmp_path_factory):
    return write_vgg_mat(tmp_path_factory.mktemp("vgg") / "vgg.mat", vgg19_weights())


def test_style_transfer_takes_every_valid_kind_as_a_style(corpus, tiny_vgg, tmp_path):
    good, _ = paths(corpus)
    result = run_script(PROJECT / "style_transfer.py", "--content", good[0], "--style", *good,
                        "--weights", tiny_vgg, "--size", "24", "--iterations", "1",
                        "--output-dir", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "final.png").exists()


@pytest.mark.parametrize("role", ["--content", "--style"])
def test_style_transfer_refuses_each_broken_file_before_writing_anything(
        corpus, tiny_vgg, tmp_path, capsys, role):
    good, bad = paths(corpus)
    for broken in bad:
        images = {"--content": good[0], "--style": good[1], role: broken}
        out = tmp_path / broken.name
        assert style_transfer.main(["--content", str(images["--content"]), "--style",
                                    str(images["--style"]), "--weights", str(tiny_vgg),
                                    "--size", "24", "--iterations", "1",
                                    "--output-dir", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(broken) in err, err
        assert not out.exists()


def test_alexnet_finetune_names_a_broken_training_photo_in_one_line(corpus, alexnet_files,
                                                                      tmp_path):
    good, bad = paths(corpus)
    train = tmp_path / "trainDir"
    train.mkdir()
    for index, path in enumerate(good):
        shutil.copyfile(path, train / f"{('cat', 'dog')[index % 2]}.{index}{path.suffix}")
    shutil.copyfile(corpus[0] / "broken" / "truncated.jpg", train / "cat.truncated.jpg")
    result = run_script(PROJECT / "alexnet_finetune.py", "--train-dir", train, "--test-dir", "",
                        "--weights", alexnet_files / "bvlc_alexnet.npy", "--batch-size",
                        str(len(good) + 1), "--iterations", "1", "--checkpoint-dir",
                        tmp_path / "ck")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert re.search(r"cat\.truncated\.jpg is damaged or truncated", result.stderr)
