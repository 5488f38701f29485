"""lenet_mnist.py run as a reader runs it, on generated MNIST-format files: its main() in this
process (conftest.run_script), and a new process where Ctrl-C is what is tested."""

import re

import numpy as np
import pytest

import lenet_mnist
from book_support import lenet_plots, mnist_data
from conftest import PROJECT, ctrl_c_when, posix_only, run_script, start_script, write_mnist

EPOCH_LINE = re.compile(r"^(\d+) ([0-9.]+)  validation accuracy ([0-9.]+)  loss ([0-9.]+)",
                        re.MULTILINE)
TEST_LINE = re.compile(r"^test accuracy: (\d\.\d{4}) \((\d+)/(\d+)\)$", re.MULTILINE)


def lenet(*args):
    return run_script(PROJECT / "lenet_mnist.py", *args)


def without_timings(stdout):
    return re.sub(r"\(\d+ s\)", "", stdout)


def test_help_shows_defaults():
    result = lenet("--help")
    assert result.returncode == 0
    for fragment in ("--epochs", "default: 100", "--checkpoint-dir", "--dry-run", "--cpu"):
        assert fragment in result.stdout


def test_dry_run_prints_the_books_lines_and_writes_nothing(tmp_path, mnist_dir):
    plot, logdir = tmp_path / "curves.png", tmp_path / "tb"
    result = lenet("--data-dir", mnist_dir, "--dry-run", "--validation-size", "100",
                   "--plot", plot, "--logdir", logdir, "--checkpoint-dir", tmp_path / "ck")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "LeNet-5: 1,378,698 weights" in result.stdout
    assert [m[0] for m in EPOCH_LINE.findall(result.stdout)] == ["0"]
    assert TEST_LINE.search(result.stdout).group(3) == "300"
    # A check of the set-up: no checkpoint, no plot, no TensorBoard file, no folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MNIST-data"]


def test_training_learns_a_learnable_set(tmp_path):
    data = write_mnist(tmp_path / "mnist", train_count=2100, test_count=300)
    result = lenet("--data-dir", data, "--validation-size", "100", "--epochs", "4",
                   "--batch-size", "32", "--seed", "1", "--checkpoint-dir", tmp_path / "ck")
    assert result.returncode == 0, result.stderr
    accuracy = float(TEST_LINE.search(result.stdout).group(1))
    assert accuracy > 0.6, result.stdout  # chance is 0.1


def test_same_seed_same_numbers(tmp_path, mnist_dir):
    runs = [lenet("--data-dir", mnist_dir, "--dry-run", "--validation-size", "100",
                  "--seed", "7") for _ in range(2)]
    assert all(r.returncode == 0 for r in runs)
    assert without_timings(runs[0].stdout) == without_timings(runs[1].stdout)
    other = lenet("--data-dir", mnist_dir, "--dry-run", "--validation-size", "100", "--seed", "8")
    assert without_timings(other.stdout) != without_timings(runs[0].stdout)


def test_rerun_resumes_from_the_checkpoint(tmp_path, mnist_dir):
    common = ("--data-dir", mnist_dir, "--validation-size", "100", "--seed", "3",
              "--checkpoint-dir", tmp_path / "ck")
    first = lenet(*common, "--epochs", "1")
    assert first.returncode == 0, first.stderr
    second = lenet(*common, "--epochs", "2", "--plot", tmp_path / "p.png")
    assert second.returncode == 0, second.stderr
    assert "resuming from" in second.stdout and "after 1 epochs" in second.stdout
    assert [m[0] for m in EPOCH_LINE.findall(second.stdout)] == ["1"]
    finished = lenet(*common, "--epochs", "2")
    assert EPOCH_LINE.findall(finished.stdout) == [] and TEST_LINE.search(finished.stdout)
    # an uninterrupted two-epoch run with the same seed ends with the same numbers
    straight = lenet("--data-dir", mnist_dir, "--validation-size", "100", "--seed", "3",
                     "--checkpoint-dir", tmp_path / "ck2", "--epochs", "2")
    assert TEST_LINE.search(straight.stdout).group(0) == TEST_LINE.search(second.stdout).group(0)
    assert EPOCH_LINE.findall(straight.stdout)[-1] == EPOCH_LINE.findall(second.stdout)[-1]


@posix_only
def test_ctrl_c_keeps_the_last_whole_epoch_and_a_resumed_run_equals_an_uninterrupted_one(
        tmp_path):
    # Enough data and steps that the loss moves in every epoch: equal lines then mean equal
    # training, not a net stuck at chance in both runs.
    data = write_mnist(tmp_path / "mnist", train_count=2100, test_count=300)
    common = ["--data-dir", str(data), "--validation-size", "100", "--seed", "5",
              "--batch-size", "32"]
    process = start_script(PROJECT / "lenet_mnist.py", *common, "--epochs", "500",
                           "--checkpoint-dir", str(tmp_path / "ck"))
    out, err = ctrl_c_when(process, r"^1 ")  # lands in epoch 2, where this set starts to learn
    assert process.returncode == 130, err
    assert "Traceback" not in err
    kept = re.search(r"interrupted: the checkpoint after (\d+) epochs in .* is kept", out)
    assert kept, out
    done = int(kept.group(1))
    assert [m[0] for m in EPOCH_LINE.findall(out)] == [str(i) for i in range(done)]
    resumed = lenet(*common, "--checkpoint-dir", tmp_path / "ck", "--epochs", str(done + 1))
    assert f"after {done} epochs" in resumed.stdout
    straight = lenet(*common, "--checkpoint-dir", tmp_path / "ck2", "--epochs", str(done + 1))
    # the epoch after the kept checkpoint, and the test, come out exactly as without Ctrl-C
    assert EPOCH_LINE.findall(resumed.stdout) == EPOCH_LINE.findall(straight.stdout)[-1:]
    assert TEST_LINE.search(resumed.stdout).group(0) == TEST_LINE.search(straight.stdout).group(0)


def test_a_corrupt_file_is_one_line_and_an_exit_code(tmp_path, mnist_dir):
    target = mnist_dir / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:30])
    before = target.read_bytes()
    result = lenet("--data-dir", mnist_dir, "--dry-run", "--validation-size", "100")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error_lines = [l for l in result.stderr.splitlines() if "error:" in l]
    assert len(error_lines) == 1 and "t10k-labels-idx1-ubyte.gz" in error_lines[0]
    assert target.read_bytes() == before  # the user's file is left as it was


def test_an_existing_plot_is_refused_before_training(tmp_path, mnist_dir):
    plot = tmp_path / "p.png"
    plot.write_bytes(b"an earlier plot")
    result = lenet("--data-dir", mnist_dir, "--dry-run", "--plot", plot)
    assert result.returncode == 2 and "already exists; add --overwrite" in result.stderr
    assert result.stderr.startswith("usage: ")
    assert "Extracting" not in result.stdout
    assert plot.read_bytes() == b"an earlier plot"


def test_offline_one_line_names_every_missing_file_and_where_to_put_it(tmp_path, monkeypatch,
                                                                       capsys, closed_port_url):
    remotes = {key: remote.__class__(remote.name, (f"{closed_port_url}/{remote.name}",),
                                     remote.size, remote.md5)
               for key, remote in mnist_data.MNIST_FILES.items()}
    monkeypatch.setattr(mnist_data, "MNIST_FILES", remotes)
    data = write_mnist(tmp_path / "data")
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (data / name).unlink()
    code = lenet_mnist.main(["--data-dir", str(data), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "could not download 3 files (1 source(s): " in err
    assert err.endswith(f"; put them in {data}: train-images-idx3-ubyte.gz, "
                        f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (from "
                        f"{closed_port_url}/)\n")  # the file in place is not named


@pytest.mark.parametrize("flag", ["--epochs", "--batch-size", "--test-size", "--validation-size"])
def test_nonsense_numbers_are_refused(flag, capsys):
    with pytest.raises(SystemExit) as exit:
        lenet_mnist.main([flag, "0", "--dry-run"])
    assert exit.value.code == 2 and "0 is less than 1" in capsys.readouterr().err


def test_plot_inside_shows_the_kernels_and_each_layers_maps(tmp_path, mnist_dir):
    picture = tmp_path / "inside.png"
    result = lenet("--data-dir", mnist_dir, "--epochs", "1", "--validation-size", "100",
                   "--plot-inside", picture, "--digit-index", "7", "--checkpoint-dir",
                   tmp_path / "ck")
    assert result.returncode == 0, result.stderr
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"feature maps of test digit 7 to {picture}" in result.stdout


def test_the_inside_views_are_the_graphs_own_tensors(mnist_dir):
    net = lenet_mnist.build_graph(seed=1)
    test = mnist_data.read_data_sets(mnist_dir, 100).test
    with lenet_mnist.tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        views = lenet_plots.inside_views(session, net, test, 5)
    maps = [tuple(t.shape.as_list()[1:]) for t in net.feature_maps]
    assert maps == [(14, 14, 32), (7, 7, 64), (4, 4, 128)]
    assert [array.shape for _, array in views] == [(28, 28, 1), (3, 3, 32)] + maps
    label = int(test.labels[5].argmax())
    assert [title for title, _ in views] == [
        f"test digit 5 (a {label})", "conv1 kernels 3x3x1x32", "conv1 maps 14x14x32",
        "conv2 maps 7x7x64", "conv3 maps 4x4x128"]
    np.testing.assert_array_equal(views[0][1], test.images[5])


def test_a_digit_index_outside_the_test_set_is_one_line(tmp_path, mnist_dir, capsys):
    code = lenet_mnist.main(["--data-dir", str(mnist_dir), "--dry-run", "--validation-size",
                             "100", "--plot-inside", str(tmp_path / "i.png"), "--digit-index",
                             "300"])
    err = capsys.readouterr().err
    assert code == 2 and "--digit-index 300: the test set has digits 0 to 299" in err
    assert not (tmp_path / "i.png").exists()
