"""Fixtures the tests share: generated MNIST-format and face files, a local HTTP server,
trained emotion checkpoints made once per test run (a copy for each test that asks), and the
way the scripts are run: in this process (run_script, tests/in_process.py) unless the process
itself is tested (start_script, run_process). Every test starts with the process as a new one
has it (fresh_process_state), and the Python interpreters the tests start are counted and held
to a budget at the end of the run."""

import gzip
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.in_process import (INTERPRETER_BUDGET, PROJECT, count_interpreter_starts,  # noqa: F401
                              fresh_process_state, interpreter_starts, run_process, run_script)


def idx_bytes(array, magic):
    """The bytes of an IDX file: big-endian magic, one uint32 per dimension, then uint8 data."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path, array, magic):
    path.write_bytes(gzip.compress(idx_bytes(array, magic)))
    return path


def digit_like_set(count, seed):
    """Learnable 28x28 images: each class is its own set of strokes, shifted and noisy."""
    templates_rng = np.random.default_rng(1234)  # the same ten "digits" in every set
    templates = np.zeros((10, 28, 28), np.float32)
    for digit in range(10):
        for _ in range(3):
            row, col = templates_rng.integers(6, 22, size=2)
            if templates_rng.random() < 0.5:
                templates[digit, row - 1:row + 2, 4:24] = 1.0
            else:
                templates[digit, 4:24, col - 1:col + 2] = 1.0
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count)
    images = np.empty((count, 28, 28), np.float32)
    for i, label in enumerate(labels):
        shifted = np.roll(templates[label], tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
        images[i] = shifted + rng.normal(0, 0.15, size=(28, 28))
    return (np.clip(images, 0, 1) * 255).astype(np.uint8), labels.astype(np.uint8)


MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def write_mnist(directory, train_count=700, test_count=300, seed=0):
    """The four MNIST files, in the real format, holding a small digit-like set."""
    directory.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = digit_like_set(train_count, seed)
    test_images, test_labels = digit_like_set(test_count, seed + 1)
    for name, array, magic in zip(MNIST_NAMES,
                                  (train_images, train_labels, test_images, test_labels),
                                  (2051, 2049, 2051, 2049)):
        write_idx(directory / name, array, magic)
    return directory


@pytest.fixture
def mnist_dir(tmp_path):
    return write_mnist(tmp_path / "MNIST-data")


# Tests of what a POSIX system does to a process (signals, kills, file-size limits, /proc):
# Windows has none of these, and skips them.
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX signals, kills, limits or /proc")


def sigint_as_in_a_terminal():
    # A CI runner that starts jobs in the background hands them SIGINT ignored, and Python
    # then never raises KeyboardInterrupt; a reader's terminal always delivers it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_script(*args):
    """Start a project script that a test will Ctrl-C; a crash prints its Python stack."""
    return subprocess.Popen([sys.executable, "-X", "faulthandler", *map(str, args)], cwd=PROJECT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_in_a_terminal if os.name == "posix" else None)


def ctrl_c_when(process, pattern, then_wait=0.0):
    """Send SIGINT once a stdout line matches `pattern` (and `then_wait` seconds have passed);
    returns (stdout, stderr) at its end."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if re.match(pattern, line):
            time.sleep(then_wait)
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=300)
    return "".join(lines) + out, err


def pytest_configure(config):
    count_interpreter_starts()


def pytest_terminal_summary(terminalreporter):
    starts = len(interpreter_starts)
    terminalreporter.write_line(f"Python interpreters started by the tests: {starts} "
                                f"(budget {INTERPRETER_BUDGET})", red=starts > INTERPRETER_BUDGET)
    if starts > INTERPRETER_BUDGET:
        terminalreporter.write_line("over the budget: run the scripts in process (run_script) "
                                    "unless the process itself is what a test is about",
                                    red=True)


def pytest_sessionfinish(session):
    if len(interpreter_starts) > INTERPRETER_BUDGET:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class FileServer:
    """A loopback HTTP server. `files` maps a path to bytes; `behaviour` maps a path to
    'ok' (default; honours `Range: bytes=N-`), 'missing' (404), 'drop' (announce the full
    length, send half, hang up), 'drop-once' (drop the first request only) or
    'drop-once-no-range' (the same, and always the whole file) or 'stall' (send half, then
    nothing until the server closes). `ranges` records each request's Range header (None
    without one)."""

    def __init__(self):
        self.files, self.behaviour, self.requests, self.ranges = {}, {}, [], []
        self.closing = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                server.ranges.append(self.headers.get("Range"))
                body = server.files.get(self.path)
                mode = server.behaviour.get(self.path, "ok")
                if body is None or mode == "missing":
                    self.send_error(404)
                    return
                drop = mode == "drop" or (mode.startswith("drop-once")
                                          and server.requests.count(self.path) == 1)
                wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(wanted.group(1)) if wanted and "no-range" not in mode else None
                if start is not None and start >= len(body):
                    self.send_error(416)
                    return
                if start is not None:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                    body = body[start:]
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if drop or mode == "stall" else body)
                self.wfile.flush()
                if mode == "stall":
                    server.closing.wait(120)
                if drop:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self):
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def closed_port_url():
    """A loopback URL where nothing listens: what an offline machine sees."""
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing-here"


def face_set(count, seed):
    """Learnable 48x48 'faces': each of the 7 emotions is its own blob pattern, noisy."""
    templates_rng = np.random.default_rng(4321)
    templates = templates_rng.random((7, 6, 6)).repeat(8, axis=1).repeat(8, axis=2)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, size=count)
    faces = templates[labels] + rng.normal(0, 0.2, size=(count, 48, 48))
    return (np.clip(faces, 0, 1) * 255).astype(np.uint8), labels


def pixel_string(face):
    return " ".join(map(str, face.reshape(-1)))


def write_face_csv(path, faces, labels=None, usage=None, header=None, quote=False,
                   newline="\n"):
    """A face CSV: columns Emotion (when labels), Pixels, Usage (when usage)."""
    names = header or ",".join((["Emotion"] if labels is not None else []) + ["Pixels"]
                               + (["Usage"] if usage is not None else []))
    rows = [names]
    for i, face in enumerate(faces):
        pixels = f'"{pixel_string(face)}"' if quote else pixel_string(face)
        fields = ([str(labels[i])] if labels is not None else []) + [pixels]
        rows.append(",".join(fields + ([usage[i]] if usage is not None else [])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(rows) + newline).encode())
    return path


def write_book_layout(directory, train_count=200, test_count=60, test_labels=True, seed=0):
    faces, labels = face_set(train_count, seed)
    write_face_csv(directory / "train.csv", faces, labels)
    faces, labels = face_set(test_count, seed + 1)
    write_face_csv(directory / "test.csv", faces, labels if test_labels else None)
    return directory


def write_fer_layout(directory, counts=(120, 30, 20), seed=0):
    faces, labels = face_set(sum(counts), seed)
    usage = ["Training"] * counts[0] + ["PublicTest"] * counts[1] + ["PrivateTest"] * counts[2]
    write_face_csv(directory / "fer2013.csv", faces, labels, usage,
                   header="emotion,pixels,Usage")
    return directory


# --------------------------------------------------------------------------------------------
# Trained emotion checkpoints, each made once per test run; a test gets its own copy
# --------------------------------------------------------------------------------------------

class TrainedRun:
    """A training run of emotion_cnn.py in `root`: its faces in data/, its checkpoints in
    logs/, the options it was trained with (`options`, data and logs folders left out) and
    what it printed (`result`)."""

    def __init__(self, root, options, result):
        self.root, self.options, self.result = root, list(options), result
        self.data, self.logs = root / "data", root / "logs"

    def command(self, *extra):
        """emotion_cnn.py with this run's folders and options, then `extra`."""
        return (PROJECT / "emotion_cnn.py", "--data-dir", self.data, "--logs-dir", self.logs,
                *self.options, *extra)

    def copied_to(self, folder):
        shutil.copytree(self.root, folder)
        return TrainedRun(folder, self.options, self.result)


def train_once(root, options, write_faces, spelled=("--data-dir", "--logs-dir")):
    write_faces(root / "data")
    result = run_script(PROJECT / "emotion_cnn.py", spelled[0], root / "data", spelled[1],
                        root / "logs", *options)
    assert result.returncode == 0, result.stderr
    return TrainedRun(root, options, result)


# The README's FER2013 recipe, on the vgg network.
RECIPE = ("--model", "vgg", "--augment", "--erase", "0.5", "--schedule", "cosine", "--precision",
          "bf16")


@pytest.fixture(scope="session")
def book_trained_once(tmp_path_factory):
    """The book's network, 3 steps on 270 training faces (the book's option spellings)."""
    return train_once(tmp_path_factory.mktemp("book"), ["--iterations", "3", "--seed", "1"],
                      lambda data: write_book_layout(data, train_count=300, test_count=70),
                      spelled=("--data_dir", "--logs_dir"))


@pytest.fixture(scope="session")
def vgg_trained_once(tmp_path_factory):
    """The vgg network with the README's recipe, 8 steps on 90 training faces."""
    return train_once(tmp_path_factory.mktemp("vgg"),
                      [*RECIPE, "--iterations", "8", "--batch-size", "16", "--eval-every", "4",
                       "--seed", "3"],
                      lambda data: write_book_layout(data, train_count=100, test_count=30))


def write_memorisable_layout(directory):
    """Noise faces with random labels: training fits them, so the validation loss turns up."""
    rng = np.random.default_rng(11)
    faces = (rng.random((300, 48, 48)) * 255).astype(np.uint8)
    write_face_csv(directory / "train.csv", faces, rng.integers(0, 7, 300))
    write_face_csv(directory / "test.csv", faces[:20], rng.integers(0, 7, 20))
    return directory


@pytest.fixture(scope="session")
def stopped_early_once(tmp_path_factory):
    """The book's network on faces it can only memorise, stopped early with --patience 3."""
    return train_once(tmp_path_factory.mktemp("early"),
                      ["--iterations", "400", "--batch-size", "32", "--eval-every", "5",
                       "--patience", "3", "--seed", "1"], write_memorisable_layout)


@pytest.fixture
def book_trained(book_trained_once, tmp_path):
    return book_trained_once.copied_to(tmp_path / "book")


@pytest.fixture
def vgg_trained(vgg_trained_once, tmp_path):
    return vgg_trained_once.copied_to(tmp_path / "vgg")


@pytest.fixture
def stopped_early(stopped_early_once, tmp_path):
    return stopped_early_once.copied_to(tmp_path / "early")


def cpu_has_bfloat16():
    """Whether the CPU has AVX-512 BF16 or AMX, the hardware of TensorFlow's oneDNN bf16
    rewrite (skipped elsewhere: the run stays fp32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        flags = []
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def has_bfloat16():
    """Whether TensorFlow's bf16 rewrite has hardware to run on here: a GPU, or such a CPU."""
    import tensorflow as tf
    return bool(tf.config.list_physical_devices("GPU")) or cpu_has_bfloat16()


def animal(kind, rng):
    """Cats are reddish, dogs bluish, with noise: learnable from any reasonable features."""
    from PIL import Image

    base = np.array((200, 60, 40) if kind == "cat" else (40, 60, 200), np.float64)
    pixels = base + rng.normal(0, 40, (227, 227, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_pets(root):
    """A small learnable set of 'cats' and 'dogs' (trainDir/, a labelled testDir/) and
    stand-in AlexNet weights in `root`, as alexnet_finetune.py reads them."""
    import csv

    from tests.standins import alexnet_weights, write_py2_alexnet_npy

    rng = np.random.default_rng(0)
    for folder, count in (("trainDir", 40), ("testDir", 10)):
        (root / folder).mkdir()
        for i in range(count):
            kind = ("cat", "dog")[i % 2]
            name = f"{kind}.{i}.jpg" if folder == "trainDir" else f"{i + 1}.jpg"
            animal(kind, rng).save(root / folder / name)
    with open(root / "testDir" / "labels.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["file", "label", "source"])
        writer.writerows([f"{i + 1}.jpg", ("cat", "dog")[i % 2], ""] for i in range(10))
    write_py2_alexnet_npy(root / "bvlc_alexnet.npy", alexnet_weights(seed=1))
    return root
