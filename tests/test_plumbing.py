"""The shared plumbing: verified downloads, safe extraction, atomic outputs, error reporting."""

import argparse
import errno
import hashlib
import io
import os
import signal
import tarfile
import time
import zipfile

import pytest

from book_support import downloads
from book_support import image_io
from book_support import plumbing
from book_support import tf_setup
from book_support.downloads import RemoteFile
from book_support.plumbing import UserError
from conftest import posix_only

PAYLOAD = os.urandom(300_000)  # several chunks, so a dropped connection happens mid-file


def remote_for(urls, data=PAYLOAD, **overrides):
    fields = dict(name="weights.bin", urls=tuple(urls), size=len(data),
                  md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest())
    fields.update(overrides)
    return RemoteFile(**fields)


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_download_good_file(tmp_path, file_server):
    file_server.files["/w.bin"] = PAYLOAD
    path = downloads.fetch(remote_for([file_server.url("/w.bin")]), tmp_path / "d", quiet=True)
    assert path.read_bytes() == PAYLOAD
    assert leftovers(tmp_path / "d") == ["weights.bin"]


def test_download_with_wrong_checksum_leaves_nothing(tmp_path, file_server):
    file_server.files["/w.bin"] = PAYLOAD
    remote = remote_for([file_server.url("/w.bin")], sha256="0" * 64)
    with pytest.raises(UserError) as error:
        downloads.fetch(remote, tmp_path, quiet=True)
    message = str(error.value)
    assert "sha256" in message and str(tmp_path / "weights.bin") in message
    assert "\n" not in message
    assert leftovers(tmp_path) == []


def test_server_gone_mid_file_leaves_only_a_hidden_part_that_the_next_run_continues(
        tmp_path, file_server):
    file_server.files["/w.bin"] = PAYLOAD
    file_server.behaviour["/w.bin"] = "drop"  # every time, so every continuation fails too
    with pytest.raises(UserError) as error:
        downloads.fetch(remote_for([file_server.url("/w.bin")]), tmp_path, quiet=True)
    assert "weights.bin" in str(error.value)
    assert leftovers(tmp_path) == [".weights.bin.part"]  # hidden: nothing looks complete
    half, quarter, eighth = len(PAYLOAD) // 2, len(PAYLOAD) // 4, len(PAYLOAD) // 8
    assert file_server.ranges == [None, f"bytes={half}-", f"bytes={half + quarter}-"]
    file_server.behaviour["/w.bin"] = "ok"
    path = downloads.fetch(remote_for([file_server.url("/w.bin")]), tmp_path, quiet=True)
    assert path.read_bytes() == PAYLOAD and leftovers(tmp_path) == ["weights.bin"]
    assert file_server.ranges[-1] == f"bytes={half + quarter + eighth}-"


@pytest.mark.parametrize("behaviour", ["drop-once", "drop-once-no-range"])
def test_a_connection_cut_mid_file_is_continued_in_the_same_run(tmp_path, file_server, behaviour):
    """With Range support the rest is appended; without it the whole file comes again."""
    file_server.files["/w.bin"] = PAYLOAD
    file_server.behaviour["/w.bin"] = behaviour
    path = downloads.fetch(remote_for([file_server.url("/w.bin")]), tmp_path, quiet=True)
    assert path.read_bytes() == PAYLOAD and leftovers(tmp_path) == ["weights.bin"]
    assert file_server.ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_a_full_disk_is_said_once_and_not_retried_as_a_lost_connection(tmp_path, file_server,
                                                                       monkeypatch):
    file_server.files["/w.bin"] = PAYLOAD
    real_open = open

    class FullDisk:
        def __init__(self, stream):
            self.stream = stream

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exception):
            self.stream.close()

    monkeypatch.setattr(downloads, "open", lambda path, mode="r", *args, **kwargs: (
        FullDisk(real_open(path, mode, *args, **kwargs)) if "b" in mode and "w" in mode or
        "a" in mode else real_open(path, mode, *args, **kwargs)), raising=False)
    with pytest.raises(UserError, match=r"cannot write weights.bin into .*No space left on "
                                        r"device.*make room there"):
        downloads.fetch(remote_for([file_server.url("/w.bin")]), tmp_path, quiet=True)
    assert len(file_server.requests) == 1
    assert leftovers(tmp_path) == []


def test_size_is_checked_when_no_checksum_is_known(tmp_path, file_server):
    file_server.files["/w.bin"] = PAYLOAD
    remote = remote_for([file_server.url("/w.bin")], size=len(PAYLOAD) + 1, md5=None, sha256=None)
    with pytest.raises(UserError, match="bytes"):
        downloads.fetch(remote, tmp_path, quiet=True)
    assert leftovers(tmp_path) == []


def test_mirrors_are_tried_in_turn(tmp_path, file_server, closed_port_url):
    file_server.files["/good/w.bin"] = PAYLOAD
    file_server.files["/bad/w.bin"] = b"not the file"
    urls = [closed_port_url, file_server.url("/missing/w.bin"), file_server.url("/bad/w.bin"),
            file_server.url("/good/w.bin")]
    path = downloads.fetch(remote_for(urls), tmp_path, quiet=True)
    assert path.read_bytes() == PAYLOAD
    assert file_server.requests == ["/missing/w.bin", "/bad/w.bin", "/good/w.bin"]


def test_offline_says_which_file_to_put_where(tmp_path, closed_port_url):
    remote = remote_for([closed_port_url])
    with pytest.raises(UserError) as error:
        downloads.fetch(remote, tmp_path / "data", quiet=True)
    message = str(error.value)
    assert message.startswith("could not download weights.bin")
    assert f"put the file at {tmp_path / 'data' / 'weights.bin'}" in message
    assert closed_port_url in message and "\n" not in message


def test_offline_one_line_names_every_missing_file_and_where_to_put_it(tmp_path, monkeypatch,
                                                                       closed_port_url):
    remotes = [remote_for([f"{closed_port_url}/{name}"], name=name)
               for name in ("a.bin", "b.bin", "c.bin")]
    (tmp_path / "b.bin").write_bytes(b"the user's own copy")
    tries = []
    real_download_one = downloads._download_one
    monkeypatch.setattr(downloads, "_download_one",
                        lambda url, *rest: tries.append(url) or real_download_one(url, *rest))
    with pytest.raises(UserError) as error:
        downloads.fetch_all(remotes, tmp_path, quiet=True)
    message = str(error.value)
    assert message.startswith("could not download 2 files (1 source(s): ") and "\n" not in message
    assert message.endswith(f"; put them in {tmp_path}: a.bin, c.bin (from {closed_port_url}/)")
    assert tries == [f"{closed_port_url}/a.bin"]  # a host that cannot be reached, tried once
    assert leftovers(tmp_path) == ["b.bin"]


def test_what_can_be_downloaded_is_and_the_rest_is_named_with_why(tmp_path, file_server,
                                                                   closed_port_url):
    file_server.files["/good.bin"] = PAYLOAD
    remotes = [remote_for([file_server.url("/missing.bin")], name="missing.bin"),
               remote_for([file_server.url("/good.bin")], name="good.bin"),
               remote_for([closed_port_url], name="away.bin")]
    with pytest.raises(UserError) as error:
        downloads.fetch_all(remotes, tmp_path / "data", quiet=True)
    message = str(error.value)
    assert message.startswith("could not download 2 files (missing.bin: 1 source(s): HTTP 404; "
                              "away.bin: 1 source(s): ")
    assert message.endswith(f"; put them in {tmp_path / 'data'}: missing.bin (from "
                            f"{file_server.url('/missing.bin')}), away.bin (from "
                            f"{closed_port_url})")
    assert (tmp_path / "data" / "good.bin").read_bytes() == PAYLOAD
    assert downloads.fetch_all(remotes[1:2], tmp_path / "data")[0].read_bytes() == PAYLOAD


def test_files_never_downloaded_are_named_in_the_same_line(tmp_path, closed_port_url):
    photo = RemoteFile("photo.png", ("https://example.org/book/photo.png",))
    with pytest.raises(UserError) as error:
        downloads.fetch_all([remote_for([closed_port_url])], tmp_path, quiet=True,
                            by_hand=("no photo given", [photo]))
    message = str(error.value)
    assert message.startswith("no photo given, and could not download weights.bin (1 source(s): ")
    assert message.endswith(f"; put these 2 files in {tmp_path}: photo.png (from "
                            f"https://example.org/book/photo.png), weights.bin (from "
                            f"{closed_port_url})")
    (tmp_path / "weights.bin").write_bytes(PAYLOAD)
    with pytest.raises(UserError) as error:
        downloads.fetch_all([remote_for([closed_port_url])], tmp_path, quiet=True,
                            by_hand=("no photo given", [photo]))
    assert str(error.value) == (f"no photo given; put it in {tmp_path}: photo.png (from "
                                f"https://example.org/book/photo.png)")


def test_an_existing_file_is_used_and_never_replaced(tmp_path, file_server):
    (tmp_path / "weights.bin").write_bytes(b"the user's own copy")
    path = downloads.fetch(remote_for([file_server.url("/w.bin")]), tmp_path, quiet=True)
    assert path.read_bytes() == b"the user's own copy"
    assert file_server.requests == []


def test_progress_shows_rate_and_eta_in_a_log():
    stream = io.StringIO()
    progress = plumbing.Progress(8, "epoch 0", unit=" batches", stream=stream)
    for _ in range(8):
        progress.update()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert 2 <= len(lines) <= 5  # one line per quarter in a log, not one per step
    assert "ETA" in lines[0] and "8/8 batches" in lines[-1]


@pytest.mark.parametrize("total", [None, 0, -1, -9223372036854775808])
def test_a_progress_of_unknown_length_counts_without_a_share_or_an_eta(total):
    # OpenCV gives a video of unknown length as 0 frames, or as the smallest 64-bit integer.
    progress = plumbing.Progress(total, "reading", unit=" frames", stream=io.StringIO())
    progress.update(7)
    line = progress.describe(now=progress.started + 2.0)
    assert "7 frames" in line and "%" not in line and "ETA" not in line and "-" not in line


def test_a_resumed_progress_counts_its_rate_from_where_it_resumed():
    progress = plumbing.Progress(100, "downloading", stream=io.StringIO(), initial=90)
    progress.update(10)
    line = progress.describe(now=progress.started + 2.0)  # two seconds for the last ten
    assert "100/100" in line
    assert " 5.0/s" in line  # 10 in 2 s, not 100 in 2 s


def make_tar(path, members):
    with tarfile.open(path, "w:gz") as bundle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return path


def test_extract_tgz(tmp_path):
    archive = make_tar(tmp_path / "a.tgz", {"model.pb": b"graph", "labels/x.txt": b"x"})
    downloads.extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "model.pb").read_bytes() == b"graph"
    assert (tmp_path / "out" / "labels" / "x.txt").read_bytes() == b"x"


@pytest.mark.parametrize("evil", ["../escaped.txt", "/tmp/absolute-escape.txt",
                                  "ok/../../escaped.txt"])
def test_tar_member_outside_the_folder_is_refused(tmp_path, evil):
    archive = make_tar(tmp_path / "a.tgz", {"fine.txt": b"x", evil: b"boom"})
    with pytest.raises(UserError, match="unsafe member"):
        downloads.extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    assert leftovers(tmp_path / "out") == []  # refused whole, before anything was written


@pytest.mark.parametrize("kind, name, target", [
    (tarfile.SYMTYPE, "innocent", "../../etc/passwd"),
    (tarfile.LNKTYPE, "innocent", "../outside.txt"),
    # a hard link's target is named from the archive's root, not from the link's folder
    (tarfile.LNKTYPE, "deep/er/innocent", "../outside.txt"),
])
def test_tar_link_pointing_outside_is_refused(tmp_path, kind, name, target):
    (tmp_path / "outside.txt").write_text("the reader's")
    archive = tmp_path / "a.tgz"
    with tarfile.open(archive, "w:gz") as bundle:
        link = tarfile.TarInfo(name)
        link.type, link.linkname = kind, target
        bundle.addfile(link)
    with pytest.raises(UserError, match=f"unsafe member: {name}"):
        downloads.extract_archive(archive, tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_zip_member_outside_the_folder_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../escaped.txt", "boom")
    with pytest.raises(UserError, match="outside"):
        downloads.extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_not_an_archive(tmp_path):
    (tmp_path / "a.tgz").write_bytes(b"plain text, no archive")
    with pytest.raises(UserError, match="not a readable archive"):
        downloads.extract_archive(tmp_path / "a.tgz", tmp_path / "out")


def test_atomic_output_leaves_nothing_when_writing_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with plumbing.atomic_output(tmp_path / "plot.png") as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert leftovers(tmp_path) == []
    with plumbing.atomic_output(tmp_path / "plot.png") as temporary:
        temporary.write_bytes(b"whole")
    assert leftovers(tmp_path) == ["plot.png"]


def test_an_output_is_checked_without_making_anything(tmp_path):
    (tmp_path / "out.png").write_bytes(b"earlier result")
    (tmp_path / "file").write_text("x")
    assert "--plot" in plumbing.output_problem(tmp_path / "out.png", "--plot")
    assert "add --overwrite" in plumbing.output_problem(tmp_path / "out.png", "--plot")
    assert plumbing.output_problem(tmp_path / "out.png", "--plot", overwrite=True) is None
    assert plumbing.output_problem(tmp_path / "new" / "deeper" / "out.png", "--plot") is None
    assert "is a folder" in plumbing.output_problem(tmp_path, "--plot")
    assert f"{tmp_path / 'file'} is a file, not a folder" in plumbing.output_problem(
        tmp_path / "file" / "deeper" / "out.png", "--plot")
    assert plumbing.folder_problem(tmp_path / "a" / "b", "--logdir") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out.png"]


@pytest.mark.parametrize("kind, text, value", [
    (plumbing.count(1), "3", 3), (plumbing.count(0), "0", 0), (plumbing.seed, "4294967295",
                                                                4294967295),
    (plumbing.number(positive=True), "1e-3", 1e-3), (plumbing.number(minimum=0), "0", 0.0)])
def test_argument_types_take_what_is_in_range(kind, text, value):
    assert kind(text) == value


@pytest.mark.parametrize("kind, text, words", [
    (plumbing.count(1), "0", "0 is less than 1"), (plumbing.count(1), "2.5", "not a whole"),
    (plumbing.seed, "-1", "-1 is less than 0"), (plumbing.seed, "4294967296", "largest seed"),
    (plumbing.number(positive=True), "nan", "not a finite number"),
    (plumbing.number(positive=True), "-inf", "not a finite number"),
    (plumbing.number(positive=True), "0", "not more than 0"),
    (plumbing.number(minimum=0), "-0.5", "less than 0")])
def test_argument_types_refuse_what_is_not(kind, text, words):
    with pytest.raises(argparse.ArgumentTypeError, match=words):
        kind(text)


def test_an_argument_mistake_is_exit_2_after_the_usage_line(capsys):
    parser = plumbing.argument_parser("a script")

    def mistaken():
        raise plumbing.ArgumentMistake("--a and --b name the same file")
    assert plumbing.run_reporting_errors(mistaken, parser) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ") and err.rstrip().endswith(
        "error: --a and --b name the same file")


def test_errors_are_reported_in_one_line(capsys):
    def failing():
        raise UserError("data/x.gz is truncated")
    assert plumbing.run_reporting_errors(failing) == 1
    assert plumbing.run_reporting_errors(lambda: 0) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip().endswith("error: data/x.gz is truncated")


def test_ctrl_c_inside_a_class_set_up_is_an_interruption_not_a_traceback(capsys):
    class PressedDuringSetUp:  # as Ctrl-C lands in matplotlib's classes while TensorFlow loads
        def __set_name__(self, owner, name):
            raise KeyboardInterrupt

    def loading():
        type("Artist", (), {"stale": PressedDuringSetUp()})
    assert plumbing.run_reporting_errors(loading) == 130
    assert capsys.readouterr().err.rstrip().endswith(": interrupted")

    def unrelated():
        raise RuntimeError("a real fault")
    with pytest.raises(RuntimeError):  # other errors keep their traceback
        plumbing.run_reporting_errors(unrelated)


def test_tensorflow_out_of_memory_is_one_line(capsys):
    with tf_setup.tensorflow_logging_quieted():
        import tensorflow.compat.v1 as tf
    graph = tf.Graph()
    with graph.as_default():
        count = tf.placeholder(tf.int64, [1])
        total = tf.reduce_sum(tf.fill(count, 0.0))

    def huge():
        with tf.Session(graph=graph) as session:
            session.run(total, {count: [10**15]})
    assert plumbing.run_reporting_errors(huge) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "TensorFlow ran out of memory for a tensor of shape[1000000000000000]" in err


def test_free_memory_is_known_on_windows_and_macos(monkeypatch):
    import ctypes
    import sys

    class Kernel32:
        @staticmethod
        def GlobalMemoryStatusEx(pointer):
            status = pointer._obj
            assert status.dwLength == ctypes.sizeof(status)  # as Windows checks
            status.ullAvailPhys = 3 * 2**30
            return 1
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(ctypes, "windll", type("WinDLL", (), {"kernel32": Kernel32}),
                        raising=False)
    assert plumbing.available_memory_bytes("/no/proc/meminfo") == 3 * 2**30

    real_sysconf = os.sysconf
    monkeypatch.setattr(sys, "platform", "darwin")

    def macos_sysconf(name):  # macOS has no count of free pages, only of all of them
        if name == "SC_AVPHYS_PAGES":
            raise ValueError("unrecognized configuration name")
        return {"SC_PHYS_PAGES": 4 * 2**20, "SC_PAGE_SIZE": 4096}.get(name) or real_sysconf(name)
    monkeypatch.setattr(os, "sysconf", macos_sysconf)
    assert plumbing.available_memory_bytes("/no/proc/meminfo") == 16 * 2**30


def test_outputs_follow_the_umask_which_is_read_without_being_set(tmp_path, monkeypatch):
    before = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("the umask was set"))
        with plumbing.atomic_output(tmp_path / "result.txt") as temporary:
            temporary.write_text("x")
    finally:
        monkeypatch.undo()
        os.umask(before)
    assert (tmp_path / "result.txt").stat().st_mode & 0o777 == 0o640


def test_saved_figures_are_readable_by_others(tmp_path):
    plt = plumbing.pyplot()
    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    plumbing.save_figure(figure, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "plot.png").stat().st_mode & 0o044  # not mkstemp's private 0600


def test_open_rgb_makes_every_mode_upright_8_bit_rgb(tmp_path):
    import numpy as np
    from PIL import Image
    base = Image.new("RGB", (30, 20), (200, 100, 50))
    cases = {"p.png": base.convert("P"), "l.png": base.convert("L"),
             "cmyk.jpg": base.convert("CMYK"), "la.png": base.convert("LA"),
             "deep.png": Image.fromarray(np.full((20, 30), 40000, np.uint16))}
    clear = Image.new("RGBA", (30, 20), (0, 0, 0, 0))
    cases["clear.png"] = clear
    for name, image in cases.items():
        image.save(tmp_path / name)
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to view
    base.save(tmp_path / "rotated.jpg", exif=exif)
    for name in [*cases, "rotated.jpg"]:
        image = image_io.open_rgb(tmp_path / name)
        assert image.mode == "RGB"
        assert image.size == ((20, 30) if name == "rotated.jpg" else (30, 20)), name
    assert image_io.open_rgb(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)
    assert image_io.open_rgb(tmp_path / "deep.png").getpixel((0, 0))[0] == round(40000 / 257)


def test_open_rgb_names_a_file_that_is_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(UserError, match="notes.png is not an image"):
        image_io.open_rgb(tmp_path / "notes.png")
    with pytest.raises(UserError, match="does not exist"):
        image_io.open_rgb(tmp_path / "missing.png")


def test_load_variable_works_outside_the_sessions_context():
    import numpy as np
    import tensorflow.compat.v1 as tf
    graph = tf.Graph()
    with graph.as_default():
        variable = tf.Variable(tf.zeros([2, 3]))
        initializer = tf.global_variables_initializer()
    graph.finalize()
    session = tf_setup.new_session(graph)
    try:
        session.run(initializer)
        tf_setup.load_variable(session, variable, np.ones((2, 3), np.float32))
        assert session.run(variable).sum() == 6
    finally:
        session.close()


@posix_only
def test_the_first_ctrl_c_is_a_flag_and_the_second_interrupts():
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with plumbing.CtrlC("stopping") as ctrl_c:
            assert not ctrl_c.pressed
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs at the next bytecode boundary
            assert ctrl_c.pressed
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


@posix_only
def test_ctrl_c_ignored_on_purpose_stays_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with plumbing.CtrlC() as ctrl_c:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert not ctrl_c.pressed and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_make_deterministic_seeds_numpy_and_asks_for_deterministic_kernels():
    # conftest turns op determinism off again after the test, as a new process has it
    import numpy as np
    from tensorflow.python.framework import config
    from book_support import tf_setup
    tf_setup.make_deterministic(3)
    first = np.random.rand(3)
    tf_setup.make_deterministic(3)
    np.testing.assert_array_equal(first, np.random.rand(3))
    assert config.is_op_determinism_enabled()
    tf_setup.make_deterministic(None)  # a run without --seed after one with, in one process
    assert not config.is_op_determinism_enabled()
