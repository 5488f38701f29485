"""Faults a reader's run meets (issue 20): kills and Ctrl-C at bad moments, two runs at once,
damaged checkpoints, a full disk, hostile graph files and archives, crafted caches and weights,
sizes that cannot fit. A new fault joins in a few lines with the helpers here: `start` a script
and `interrupt_after` / `wait_for_file`; `damage_newest` checkpoint file and compare `snapshot`s;
`run_with_disk_full_after(bytes, ...)`; `crafted_emotion_checkpoint`; `tarball_with`."""

import io
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lenet_mnist
from conftest import PROJECT, posix_only, run_script, sigint_as_in_a_terminal, write_mnist
from book_support.plumbing import UserError
from tests.standins import alexnet_weights, write_py2_alexnet_npy


def start(script, *args, cwd=None):
    return subprocess.Popen([sys.executable, str(PROJECT / script), *map(str, args)],
                            cwd=cwd or PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=sigint_as_in_a_terminal)


def interrupt_after(process, seconds, signum=signal.SIGINT):
    """Send `signum` after `seconds`; returns (exit code, stdout, stderr)."""
    time.sleep(seconds)
    process.send_signal(signum)
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def wait_for_file(pattern_parent, pattern, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(pattern_parent.glob(pattern)):
            return
        time.sleep(0.05)
    pytest.fail(f"{pattern} never appeared in {pattern_parent}")


@posix_only
def test_ctrl_c_while_tensorflow_loads_is_one_line_and_exit_130(tmp_path):
    process = start("lenet_mnist.py", "--data-dir", tmp_path / "never-read")
    code, out, err = interrupt_after(process, 1.5)  # importing TensorFlow takes seconds
    assert code == 130, err
    assert "Traceback" not in err and err.strip().endswith("lenet_mnist.py: interrupted"), err
    assert not (tmp_path / "never-read").exists()


@posix_only
def test_a_second_run_on_one_checkpoint_folder_is_refused_and_a_killed_one_leaves_no_lock(
        tmp_path):
    mnist = write_mnist(tmp_path / "mnist", train_count=2000)
    common = ("--data-dir", mnist, "--checkpoint-dir", tmp_path / "ck", "--validation-size",
              "100", "--batch-size", "16")
    first = start("lenet_mnist.py", *common, "--epochs", "50")
    wait_for_file(tmp_path / "ck", "model.ckpt-1.index")
    second = run_script(PROJECT / "lenet_mnist.py", *common, "--epochs", "50")
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert f"another run is using {tmp_path / 'ck'}" in second.stderr
    code, _, _ = interrupt_after(first, 0, signal.SIGKILL)  # no chance to clean up
    assert code == -signal.SIGKILL
    done = max(int(path.name.split("-")[1].split(".")[0])
               for path in (tmp_path / "ck").glob("model.ckpt-*.index"))
    after = run_script(PROJECT / "lenet_mnist.py", *common, "--epochs", str(done + 1))
    assert after.returncode == 0 and "another run" not in after.stderr  # the lock died with it
    assert "resuming from" in after.stdout  # what the kill left (a save cut short or not)


def test_a_loss_that_turns_nan_stops_the_epoch_in_one_line(mnist_dir):
    net = lenet_mnist.build_graph(seed=1)
    data = lenet_mnist.mnist_data.read_data_sets(mnist_dir, validation_size=100)
    poisoned = type(data.train)(images=np.full_like(data.train.images, np.inf),
                                labels=data.train.labels)
    from book_support import tf_setup
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        with pytest.raises(UserError, match=r"the loss became nan at epoch 0, batch 0; the "
                                            r"checkpoint of the last whole epoch is kept"):
            lenet_mnist.train_epoch(session, net, poisoned, 64, np.random.default_rng(0),
                                    "epoch 0")


def test_fine_tuning_that_diverges_stops_in_one_line(tmp_path):
    for folder in ("train",):
        (tmp_path / folder).mkdir()
    rng = np.random.default_rng(0)
    for number in range(4):
        for animal in ("cat", "dog"):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
                tmp_path / "train" / f"{animal}.{number}.jpg")
    write_py2_alexnet_npy(tmp_path / "w.npy", alexnet_weights(scale=3.0))
    result = run_script(PROJECT / "alexnet_finetune.py", "--train-dir", tmp_path / "train",
                        "--test-dir", "", "--weights", tmp_path / "w.npy", "--learning-rate",
                        "1e38", "--iterations", "20", "--batch-size", "4", "--checkpoint-dir",
                        tmp_path / "ck")
    assert result.returncode == 1, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "the loss became" in errors[0], result.stderr
    assert "try a smaller --learning-rate" in errors[0] and "Traceback" not in result.stderr
    assert not list((tmp_path / "ck").glob("model.ckpt-*"))  # nothing diverged is saved


def style_inputs(folder):
    from tests.standins import vgg19_weights, write_vgg_mat
    write_vgg_mat(folder / "vgg.mat", vgg19_weights())
    rng = np.random.default_rng(0)
    for name in ("content.png", "style.png"):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / name)
    return ["--content", folder / "content.png", "--style", folder / "style.png", "--weights",
            folder / "vgg.mat", "--size", "32", "--output-dir", folder / "out"]


def test_style_transfer_that_diverges_at_once_says_so_and_writes_no_image(tmp_path,
                                                                         monkeypatch, capsys):
    import style_transfer

    def diverging(session, problem, iterations, optimizer, report_every, should_stop):
        yield 0, session.run(problem.image), {"total": np.float32(np.inf), "content": 1.0,
                                              "style": np.inf, "tv": 0.0}
    monkeypatch.setattr(style_transfer, "stylize", diverging)
    code = style_transfer.main([str(arg) for arg in style_inputs(tmp_path)] +
                               ["--iterations", "5"])
    err = capsys.readouterr().err
    assert code == 1 and "the loss became inf at iteration 0, before any image to keep" in err
    assert not list((tmp_path / "out").glob("*.png"))


def test_style_transfer_that_diverges_later_keeps_the_last_good_image(tmp_path, monkeypatch,
                                                                      capsys):
    import style_transfer

    def diverging(session, problem, iterations, optimizer, report_every, should_stop):
        good = session.run(problem.image)
        yield 0, good, {"total": np.float32(5.0), "content": 1.0, "style": 4.0, "tv": 0.0}
        yield 1, None, {"total": np.float32(np.nan), "content": 1.0, "style": 4.0, "tv": 0.0}
    monkeypatch.setattr(style_transfer, "stylize", diverging)
    code = style_transfer.main([str(arg) for arg in style_inputs(tmp_path)] +
                               ["--iterations", "5", "--print-every", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "the loss became nan at iteration 1; the last good image " \
        f"(iteration 0) is kept as {tmp_path / 'out' / 'final.png'}" in err, err
    with Image.open(tmp_path / "out" / "final.png") as image:
        assert image.size == (32, 24)


def test_a_mirror_that_sends_without_end_is_cut_at_the_files_size(tmp_path, file_server):
    from book_support import downloads
    file_server.files["/w.bin"] = b"x" * 500_000  # the file is said to be 1,000 bytes
    remote = downloads.RemoteFile("w.bin", (file_server.url("/w.bin"),), 1000)
    with pytest.raises(UserError, match="the server sent more than the file's 1,000 bytes"):
        downloads.fetch(remote, tmp_path, quiet=True)
    assert not list(tmp_path.iterdir())  # neither the file nor a partial one


def test_fer2013_without_publictest_rows_is_one_line_in_test_mode(tmp_path, capsys):
    import emotion_cnn
    from conftest import write_fer_layout
    data = write_fer_layout(tmp_path / "fer", counts=(60, 0, 10))
    code = emotion_cnn.main(["--data-dir", str(data), "--logs-dir", str(tmp_path / "none"),
                             "--mode", "test"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "has no test faces" in err, err


def test_a_damaged_early_stopping_record_is_one_line(tmp_path):
    import json
    from conftest import write_book_layout
    data = write_book_layout(tmp_path / "data", train_count=60, test_count=10)
    common = ("--data-dir", data, "--logs-dir", tmp_path / "logs", "--batch-size", "8",
              "--patience", "3", "--eval-every", "5")
    assert run_script(PROJECT / "emotion_cnn.py", *common, "--iterations", "6").returncode == 0
    record = tmp_path / "logs" / "run.json"
    entries = json.loads(record.read_text())
    entries["early_stopping"]["best_loss"] = "low"  # a value of the wrong kind
    record.write_text(json.dumps(entries))
    result = run_script(PROJECT / "emotion_cnn.py", *common, "--iterations", "12")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "run.json cannot be read" in result.stderr


# --------------------------------------------------------------------------------------------
# Damaged checkpoints: one line, and the folder as it was
# --------------------------------------------------------------------------------------------

def damage(path, how):
    """Corrupt one file the ways disks and copies do."""
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes({"empty": b"", "truncated": data[:middle],
                      "random": np.random.default_rng(0).bytes(max(64, len(data))),
                      "bit flip": data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1:]
                      }[how])


def damage_newest(folder, kind, how):
    """Corrupt the newest checkpoint's `kind` file ("index", "data" or "meta")."""
    newest = max(folder.glob("model.ckpt-*.index"), key=lambda path: path.stat().st_mtime_ns)
    prefix = str(newest)[:-len(".index")]
    path = next(Path(prefix).parent.glob(Path(prefix).name + ("." + kind if kind != "data"
                                                                  else ".data-*")))
    damage(path, how)
    return path


def snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.fixture(scope="module")
def trained_folders(tmp_path_factory, book_trained_once):
    """One LeNet epoch and the book's emotion network (conftest), each in its folder, to copy
    and damage; with the run that resumes each."""
    root = tmp_path_factory.mktemp("trained")
    mnist = write_mnist(root / "mnist", train_count=300, test_count=60)
    lenet = ["--data-dir", str(mnist), "--validation-size", "100", "--batch-size", "64",
             "--test-size", "50"]
    assert lenet_mnist.main(lenet + ["--epochs", "1", "--checkpoint-dir", str(root / "lenet")]) \
        == 0
    emotion = book_trained_once
    photo = root / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 60, 3), dtype=np.uint8)) \
        .save(photo)
    return {"lenet": (root / "lenet", lambda folder: lenet_mnist.main(
                lenet + ["--epochs", "2", "--checkpoint-dir", str(folder)])),
            "emotion_cnn": (emotion.logs, lambda folder: __import__("emotion_cnn").main(
                emotion_resumed(emotion, folder))),
            "emotion_test": (emotion.logs, lambda folder: __import__("emotion_test").main(
                [str(photo), "--logs-dir", str(folder), "--figure", str(folder / "f.png")]))}


def emotion_resumed(emotion, folder):
    """The arguments that resume `emotion`'s training in `folder` for two more steps."""
    options = list(emotion.options)
    options[options.index("--iterations") + 1] = "5"
    return ["--data-dir", str(emotion.data), "--logs-dir", str(folder), *options]


@pytest.mark.parametrize("script, kind, how", [
    *[("lenet", "index", how) for how in ("empty", "truncated", "random", "bit flip")],
    *[("lenet", "data", how) for how in ("empty", "truncated", "bit flip")],
    *[("emotion_cnn", kind, how) for kind in ("index", "data") for how in ("truncated", "random")],
    *[("emotion_test", kind, how) for kind in ("index", "data", "meta")
      for how in ("empty", "truncated", "random")],
])
def test_a_damaged_checkpoint_file_is_one_line_and_the_folder_stays_as_it_was(
        trained_folders, tmp_path, capsys, script, kind, how):
    original, run = trained_folders[script]
    folder = tmp_path / "copy"
    shutil.copytree(original, folder)
    damaged = damage_newest(folder, kind, how)
    before = snapshot(folder)
    capsys.readouterr()
    assert run(folder) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "damaged" in err and "Traceback" not in err, err
    assert str(damaged).rsplit(".", 1)[0].split(".data")[0] in err
    assert snapshot(folder) == before


def test_a_copied_checkpoint_folder_resumes_from_its_own_files_and_leaves_the_original(
        trained_folders, tmp_path):
    original, run = trained_folders["lenet"]
    before = snapshot(original)
    shutil.copytree(original, tmp_path / "copy")  # its index names the original's files
    assert run(tmp_path / "copy") == 0
    assert snapshot(original) == before
    assert (tmp_path / "copy" / "model.ckpt-2.index").exists()


# --------------------------------------------------------------------------------------------
# Graph files from outside: run only what the network needs
# --------------------------------------------------------------------------------------------

def crafted_emotion_checkpoint(folder, side_effect):
    """A checkpoint in the book's layout whose output:0 also runs `side_effect(weights)`."""
    import tensorflow.compat.v1 as tf
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 48, 48, 1], name="input")
        weights = tf.Variable(np.zeros((2304, 7), np.float32), name="W_fc2")
        with tf.control_dependencies([side_effect(weights)]):
            tf.nn.softmax(tf.matmul(tf.reshape(x, [-1, 2304]), weights), name="output")
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            tf.train.Saver().save(session, str(folder / "model.ckpt"), global_step=1)
    return folder


@pytest.mark.parametrize("attack", ["WriteFile", "SaveV2"])
def test_emotion_test_refuses_a_graph_whose_output_writes_a_file(tmp_path, capsys, attack):
    import emotion_test
    import tensorflow.compat.v1 as tf
    target = tmp_path / "written"
    side_effects = {
        "WriteFile": lambda weights: tf.io.write_file(str(target), "owned"),
        "SaveV2": lambda weights: tf.raw_ops.SaveV2(prefix=str(target), tensor_names=["w"],
                                                    shape_and_slices=[""], tensors=[weights])}
    folder = crafted_emotion_checkpoint(tmp_path / "logs", side_effects[attack])
    photo = tmp_path / "face.png"
    Image.new("RGB", (60, 60), (90, 90, 90)).save(photo)
    code = emotion_test.main([str(photo), "--logs-dir", str(folder), "--figure",
                              str(tmp_path / "f.png")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "is refused" in err, err
    assert not list(tmp_path.glob("written*")) and not (tmp_path / "f.png").exists()


@pytest.mark.parametrize("extras", [[], ["--model", "vgg", "--augment", "--schedule",
                                           "cosine", "--patience", "1"]])
def test_every_graph_emotion_cnn_saves_passes_emotion_tests_op_check(tmp_path, extras):
    import emotion_cnn
    from book_support import graph_checks
    from conftest import write_book_layout
    faces = write_book_layout(tmp_path / "faces", train_count=40, test_count=10)
    assert emotion_cnn.main(["--data-dir", str(faces), "--logs-dir", str(tmp_path / "logs"),
                             "--iterations", "2", "--batch-size", "4", *extras]) == 0
    metas = list((tmp_path / "logs").rglob("*.meta"))
    assert len(metas) == (2 if extras else 1)  # with --patience, best/ holds one too
    for meta in metas:
        graph_def = graph_checks.read_meta_graph(meta).graph_def
        assert graph_checks.op_types(graph_def) <= graph_checks.EMOTION_OPS
        assert not graph_checks.SAVER_WRITES & graph_checks.ops_needed_by(graph_def, "output")


def test_classify_image_refuses_a_graph_that_writes_a_file(tmp_path, capsys):
    import classify_image
    from tests.standins import inception_graph_def, write_inception_files
    graph_def, _ = inception_graph_def()
    for name, value in (("path", str(tmp_path / "written")), ("text", "owned")):
        node = graph_def.node.add(name=name, op="Const")
        node.attr["dtype"].type = 7  # DT_STRING
        node.attr["value"].tensor.dtype = 7
        node.attr["value"].tensor.string_val.append(value.encode())
    graph_def.node.add(name="write", op="WriteFile", input=["path", "text"])
    softmax = next(node for node in graph_def.node if node.name == "softmax")
    softmax.input.append("^write")
    write_inception_files(tmp_path / "model", graph_def=graph_def)
    code = classify_image.main(["--model_dir", str(tmp_path / "model")])
    err = capsys.readouterr().err
    assert code == 1 and "is refused" in err and "WriteFile" in err and "Traceback" not in err
    assert not (tmp_path / "written").exists()


def test_the_published_inception_graph_is_trusted_without_the_op_check(tmp_path, monkeypatch,
                                                                      capsys):
    import hashlib
    import classify_image
    from book_support import graph_checks, inception_files
    from tests.standins import write_inception_files
    write_inception_files(tmp_path)
    monkeypatch.setattr(graph_checks, "INCEPTION_OPS", frozenset())  # every op is unexpected
    assert classify_image.main(["--model_dir", str(tmp_path)]) == 1
    assert "is refused" in capsys.readouterr().err
    graph = (tmp_path / inception_files.GRAPH_FILE).read_bytes()
    pinned = inception_files.PINNED_MEMBERS[0]
    monkeypatch.setattr(inception_files, "PINNED_MEMBERS", (
        type(pinned)(pinned.name, (), len(graph), md5=hashlib.md5(graph).hexdigest()),))
    assert classify_image.main(["--model_dir", str(tmp_path)]) == 0


# --------------------------------------------------------------------------------------------
# Downloads and archives
# --------------------------------------------------------------------------------------------

def test_a_download_killed_midway_is_continued_by_the_next_run(tmp_path, file_server):
    from book_support import downloads
    payload = np.random.default_rng(0).bytes(200_000)
    file_server.files["/w.bin"] = payload
    file_server.behaviour["/w.bin"] = "stall"  # half, then nothing: killed while it waits
    remote = downloads.RemoteFile("w.bin", (file_server.url("/w.bin"),), len(payload))
    code = ("import sys; from book_support import downloads; "
            "downloads.fetch(downloads.RemoteFile('w.bin', "
            f"({file_server.url('/w.bin')!r},), {len(payload)}), sys.argv[1], quiet=True)")
    first = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=PROJECT)
    part = tmp_path / ".w.bin.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 0):  # a first block has landed
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    with pytest.raises(UserError, match="another run is downloading w.bin"):
        downloads.fetch(remote, tmp_path, quiet=True)  # two writers would mix their bytes
    first.kill()
    first.wait()
    kept = part.stat().st_size
    file_server.behaviour["/w.bin"] = "ok"
    assert downloads.fetch(remote, tmp_path, quiet=True).read_bytes() == payload
    assert 0 < kept < len(payload) and file_server.ranges[-1] == f"bytes={kept}-"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["w.bin"]


# --------------------------------------------------------------------------------------------
# A full disk: one line, the last good checkpoint kept, no temporary file left
# --------------------------------------------------------------------------------------------

def disk_full_after(limit):
    """For subprocess's preexec_fn: no file the script writes may grow past `limit` bytes
    (EFBIG, Python ignores SIGXFSZ): how a disk that fills up shows, reported as one."""
    def apply():
        import resource  # POSIX only, as preexec_fn is
        sigint_as_in_a_terminal()
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def run_with_disk_full_after(limit, script, *args):
    return subprocess.run([sys.executable, str(PROJECT / script), *map(str, args)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=600,
                          preexec_fn=disk_full_after(limit))


def assert_disk_full_in_one_line(result):
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and "the disk is full" in errors[0], result.stderr


def checkpoint_files(folder):
    return {name: data for name, data in snapshot(folder).items()
            if name.startswith(("model.ckpt", "checkpoint", "run.json"))}


@posix_only
@pytest.mark.parametrize("script", ["lenet", "emotion_cnn"])
def test_a_disk_that_fills_up_mid_save_keeps_the_last_checkpoint(trained_folders, tmp_path,
                                                                  book_trained_once, script):
    original, _ = trained_folders[script]
    folder = tmp_path / "copy"
    shutil.copytree(original, folder)
    before = checkpoint_files(folder)
    mnist = original.parent / "mnist"
    args = {"lenet": ("lenet_mnist.py", "--data-dir", mnist, "--validation-size", "100",
                      "--batch-size", "64", "--test-size", "50", "--epochs", "2",
                      "--checkpoint-dir", folder),
            "emotion_cnn": ("emotion_cnn.py", *emotion_resumed(book_trained_once, folder))
            }[script]
    result = run_with_disk_full_after(1_000_000, *args)  # the checkpoints' .data are larger
    assert_disk_full_in_one_line(result)
    assert "could not be saved" in result.stderr and "model.ckpt-" in result.stderr
    assert checkpoint_files(folder) == before  # no .tempstate, the record as it was
    rerun = run_script(PROJECT / args[0], *args[1:])  # room again: the same command resumes
    assert rerun.returncode == 0, rerun.stderr


@posix_only
def test_a_full_disk_when_writing_an_image_or_figure_is_one_line_and_leaves_no_temporary(
        trained_folders, tmp_path):
    photo = tmp_path / "face.png"
    Image.new("RGB", (60, 60), (90, 90, 90)).save(photo)
    style = run_with_disk_full_after(1000, "style_transfer.py", *style_inputs(tmp_path),
                                     "--iterations", "2")
    figure = run_with_disk_full_after(10_000, "emotion_test.py", photo, "--logs-dir",
                                      trained_folders["emotion_test"][0], "--figure",
                                      tmp_path / "figure" / "f.png")
    for result, folder in ((style, tmp_path / "out"), (figure, tmp_path / "figure")):
        assert_disk_full_in_one_line(result)
        assert not list(folder.iterdir()) if folder.exists() else True


@posix_only
def test_a_full_disk_during_a_download_is_said_and_leaves_no_partial_file(tmp_path,
                                                                         file_server):
    file_server.files["/w.bin"] = np.random.default_rng(0).bytes(200_000)
    code = ("import sys; from book_support import downloads, plumbing; "
            "sys.exit(plumbing.run_reporting_errors(lambda: "
            "downloads.fetch(downloads.RemoteFile('w.bin', "
            f"({file_server.url('/w.bin')!r},), 200_000), sys.argv[1], quiet=True) and 0))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=PROJECT,
                            capture_output=True, text=True, preexec_fn=disk_full_after(50_000))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "cannot write w.bin" in result.stderr and "make room" in result.stderr
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# Photos that break mid-run, and what a killed run leaves
# --------------------------------------------------------------------------------------------

def test_a_photo_that_breaks_fine_tuning_midway_keeps_the_steps_done(tmp_path, capsys):
    import alexnet_finetune
    from book_support import pets_data
    train = tmp_path / "train"
    train.mkdir()
    rng = np.random.default_rng(0)
    for number in range(6):
        for animal in ("cat", "dog"):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
                train / f"{animal}.{number}.jpg")
    files, _, _, _ = pets_data.training_set(train, 0.1, 0)
    bad = files[0]
    first_use = next(step for step, indices in enumerate(alexnet_finetune.batches(
        len(files), 2, 0), start=1) if 0 in indices)
    assert first_use >= 2  # some steps are done before the photo is met
    good = bad.read_bytes()
    bad.write_bytes(good[:200])  # a photo cut short
    write_py2_alexnet_npy(tmp_path / "w.npy", alexnet_weights())
    args = ["--train-dir", str(train), "--test-dir", "", "--weights", str(tmp_path / "w.npy"),
            "--iterations", str(first_use + 1), "--batch-size", "2",
            "--checkpoint-dir", str(tmp_path / "ck")]
    assert alexnet_finetune.main(args) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and bad.name in errors[0], errors
    assert f"the {first_use - 1} steps done are saved" in errors[0]
    assert (tmp_path / "ck" / f"model.ckpt-{first_use - 1}.index").exists()
    bad.write_bytes(good)  # replaced: the same command resumes
    assert alexnet_finetune.main(args) == 0
    assert f"after {first_use - 1} steps" in capsys.readouterr().out


def test_prep_images_removes_the_temporaries_a_killed_run_left(tmp_path):
    source = tmp_path / "photos"
    source.mkdir()
    for number in range(4):
        for animal in ("cat", "dog"):
            Image.new("RGB", (50, 40), (number * 40, 90, 90)).save(
                source / f"{animal}.{number}.jpg")
    command = (PROJECT / "prep_images.py", source, tmp_path / "out", "--test-count", "2",
               "--size", "16", "--workers", "1")
    assert run_script(*command).returncode == 0
    leftover = tmp_path / "out" / "trainDir" / ".dog.3.hx5x198h.jpg"  # as a SIGKILL leaves it
    leftover.write_bytes(b"\xff\xd8 half a JPEG")
    (tmp_path / "out" / "trainDir" / "dog.3.jpg").unlink()  # the photo it was becoming
    assert run_script(*command).returncode == 0
    assert not leftover.exists() and (tmp_path / "out" / "trainDir" / "dog.3.jpg").exists()


def tarball_with(path, members):
    """A .tgz of (name, size) members of zeros, written without holding them in memory."""
    import io
    import tarfile
    with tarfile.open(path, "w:gz", compresslevel=1) as bundle:
        for name, size in members:
            info = tarfile.TarInfo(name)
            info.size = size
            bundle.addfile(info, io.BufferedReader(ZeroStream(size)))
    return path


class ZeroStream(io.RawIOBase):
    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


@pytest.mark.parametrize("kind", ["tgz", "zip"])
def test_an_archive_larger_than_its_contents_can_be_is_refused_from_its_headers(tmp_path,
                                                                               kind):
    import zipfile
    from book_support import downloads
    if kind == "tgz":
        archive = tarball_with(tmp_path / "a.tgz", [("small", 10), ("big", 5000)])
    else:
        archive = tmp_path / "a.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr("small", b"x" * 10)
            bundle.writestr("big", bytes(5000))
    with pytest.raises(UserError, match="its member big would be 5,000 bytes, more than the "
                                        "1,000 it can be"):
        downloads.extract_archive(archive, tmp_path / "out", largest_member=1000)
    with pytest.raises(UserError, match="would extract to 5,010 bytes, more than the 5,005"):
        downloads.extract_archive(archive, tmp_path / "out", largest_total=5005)
    assert not list((tmp_path / "out").iterdir())
    downloads.extract_archive(archive, tmp_path / "out", 5000, 5010)
    assert (tmp_path / "out" / "big").stat().st_size == 5000


def test_an_archive_larger_than_the_free_space_is_refused_before_writing(tmp_path,
                                                                        monkeypatch):
    import shutil as shell
    from book_support import downloads
    archive = tarball_with(tmp_path / "a.tgz", [("big", 5000)])
    usage = shell.disk_usage(tmp_path)
    monkeypatch.setattr(downloads.shutil, "disk_usage",
                        lambda path: usage._replace(free=4999))
    with pytest.raises(UserError, match="the disk is full: .* needs 5,000 bytes"):
        downloads.extract_archive(archive, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_a_hand_placed_inception_tarball_with_a_huge_member_is_one_line(tmp_path, capsys):
    import classify_image
    from book_support import inception_files
    model = tmp_path / "model"
    model.mkdir()
    tarball_with(model / inception_files.INCEPTION_TARBALL.name,
                 [(inception_files.GRAPH_FILE, 101_000_000)])  # 300 MB in the probe: same path
    code = classify_image.main(["--model_dir", str(model)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "more than the 100,000,000" in err, err
    assert [path.name for path in model.iterdir()] == [inception_files.INCEPTION_TARBALL.name]


# --------------------------------------------------------------------------------------------
# Crafted caches and weights: right fingerprint or name, wrong members
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("craft", [
    lambda t: t.pop("train_labels"),
    lambda t: t.update(train_pixels=t["train_pixels"][:, :10]),
    lambda t: t.update(train_labels=t["train_labels"][:-1]),
    lambda t: t.update(train_labels=np.full_like(t["train_labels"], 9)),  # no such emotion
    lambda t: t.update(test_pixels=np.array(3, np.uint8)),
    lambda t: t.update(has_test_labels=np.array([True, False])),
    lambda t: t.update(train_labels=t["train_labels"].astype(np.float32) + 0.5),
], ids=["member missing", "narrow pixels", "labels short", "label 9", "0-d pixels",
        "flag array", "float labels"])
def test_a_crafted_face_cache_with_the_right_fingerprint_is_rebuilt(tmp_path, monkeypatch,
                                                                    craft):
    import EmotionUtils
    from book_support import emotion_cache
    from conftest import write_book_layout
    data = write_book_layout(tmp_path, train_count=30, test_count=10)
    fresh = EmotionUtils.read_data(data, verbose=False)
    cache = data / emotion_cache.CACHE_NAME
    with np.load(cache) as stored:
        tables = {name: stored[name] for name in stored.files}
    craft(tables)
    with open(cache, "wb") as stream:
        np.savez(stream, **tables)
    parsed = []
    real_reader = EmotionUtils.read_face_csv
    monkeypatch.setattr(EmotionUtils, "read_face_csv",
                        lambda *args: parsed.append(args) or real_reader(*args))
    again = EmotionUtils.read_data(data, verbose=False)  # the CSV parsed again, no traceback
    assert parsed
    np.testing.assert_array_equal(again.train_images, fresh.train_images)
    np.testing.assert_array_equal(again.test_images, fresh.test_images)


@pytest.mark.parametrize("craft", [
    lambda w: w.update(conv1=[np.float32(1.0), np.float32(2.0)]),  # 0-d arrays
    lambda w: w.update(fc8=[w["fc8"][0] > 0, w["fc8"][1]]),
    lambda w: w.update(fc7=[w["fc7"][0].astype(np.complex64), w["fc7"][1]]),
    lambda w: w.update(conv2=[w["conv2"][0][..., :3], w["conv2"][1]]),
    lambda w: w.pop("fc6"),
], ids=["0-d", "bool", "complex", "wrong width", "layer missing"])
def test_crafted_alexnet_weights_are_one_line(tmp_path, craft):
    from book_support import alexnet_files
    weights = {layer: list(pair) for layer, pair in alexnet_weights().items()}
    craft(weights)
    write_py2_alexnet_npy(tmp_path / "w.npy", weights)
    with pytest.raises(UserError, match=str(tmp_path / "w.npy")) as error:
        alexnet_files.load_weights(tmp_path / "w.npy")
    assert "\n" not in str(error.value)


def test_a_labels_csv_that_is_not_utf8_is_one_line_before_training(tmp_path, capsys):
    import alexnet_finetune
    for folder in ("train", "test"):
        (tmp_path / folder).mkdir()
    for number in range(2):
        for animal in ("cat", "dog"):
            Image.new("RGB", (40, 40), (90, 90, number)).save(
                tmp_path / "train" / f"{animal}.{number}.jpg")
    Image.new("RGB", (40, 40)).save(tmp_path / "test" / "1.jpg")
    (tmp_path / "test" / "labels.csv").write_bytes("file,label\n1.jpg,chat\xe9\n".encode("cp1252"))
    code = alexnet_finetune.main(["--train-dir", str(tmp_path / "train"), "--test-dir",
                                  str(tmp_path / "test"), "--weights", str(tmp_path / "none.npy"),
                                  "--checkpoint-dir", str(tmp_path / "ck")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "labels.csv" in err, err
    assert not (tmp_path / "ck").exists()


def test_a_damaged_checkpoint_record_is_one_line(trained_folders, tmp_path, capsys):
    original, run = trained_folders["lenet"]
    shutil.copytree(original, tmp_path / "copy")
    (tmp_path / "copy" / "run.json").write_bytes(b'{"settings": {"seed"')
    assert run(tmp_path / "copy") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run.json cannot be read" in err, err


# --------------------------------------------------------------------------------------------
# Sizes that cannot fit: refused before any work, from an estimate
# --------------------------------------------------------------------------------------------

def test_sizes_that_cannot_fit_are_refused_before_work(tmp_path, capsys):
    import emotion_cnn
    import prep_images
    import style_transfer
    from conftest import write_book_layout
    faces = write_book_layout(tmp_path / "faces", train_count=20, test_count=5)
    photos = tmp_path / "photos"
    photos.mkdir()
    for animal in ("cat", "dog"):
        Image.new("RGB", (40, 40)).save(photos / f"{animal}.1.jpg")
    runs = {
        "--batch-size": lambda: emotion_cnn.main(["--data-dir", str(faces), "--logs-dir",
                                                  str(tmp_path / "logs"), "--batch-size",
                                                  "2147483647"]),
        "--size": lambda: prep_images.main([str(photos), str(tmp_path / "prepared"),
                                            "--size", "200000", "--test-count", "1"]),
        "--save-every": lambda: style_transfer.main(
            [str(arg) for arg in style_inputs(tmp_path)] + ["--iterations", "2147483647",
                                                            "--save-every", "1"]),
    }
    for option, run in runs.items():
        code = run()
        errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert code == 2 and len(errors) == 1 and option in errors[0], errors  # after usage
        assert "free" in errors[0]
    assert not any((tmp_path / name).exists() for name in ("logs", "prepared", "out"))
