"""Shared plumbing for the chapter's scripts.

What every script needs and none of them should have to read past: downloads that verify what
they fetch, safe archive extraction, a progress line with ETA, atomic output writes, TensorFlow
session and device setup, and the one-line error reporting the scripts promise their users.

TensorFlow is imported inside the functions that need it, so scripts without a graph (such as
`prep_images.py`) need not load it.
"""

import argparse
import contextlib
import errno
import hashlib
import os
import signal
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

DOWNLOAD_TIMEOUT_SECONDS = 30
CHUNK_BYTES = 1 << 16
DOWNLOAD_ATTEMPTS = 3  # a connection cut mid-file is continued this many times in all


class UserError(Exception):
    """A problem the user can fix (missing file, bad input, no network); reported in one line."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` with each default shown once: added to an option's help line unless the line
    already speaks of its default, and left off where there is none (None, off, empty)."""

    def _get_help_string(self, action):
        help_line = action.help or ""
        nothing = action.default is None or action.default is False or action.default == []
        if "default" in help_line.lower() or nothing or action.default == argparse.SUPPRESS:
            return help_line
        return super()._get_help_string(action)


def argument_parser(description):
    """The argparse parser every script starts from, with HelpFormatter."""
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)


def program_name():
    return Path(sys.argv[0]).name or "script"


def run_reporting_errors(work):
    """Run `work()` and turn expected failures into one line on stderr and an exit code."""
    program = program_name()
    try:
        return work() or 0
    except UserError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130


class CtrlC:
    """`with CtrlC() as ctrl_c:` turns the first Ctrl-C into `ctrl_c.pressed`, which a training
    loop checks between steps. A KeyboardInterrupt raised at an arbitrary point can land inside
    TensorFlow's Python wrappers or half-way through a checkpoint write; a flag checked between
    steps cannot. A second Ctrl-C interrupts at once, as usual."""

    def __init__(self, message="Ctrl-C: stopping after this step (press it again to quit now)"):
        self.message, self.pressed, self._previous = message, False, None

    def __enter__(self):
        # Left alone where SIGINT is ignored on purpose (nohup, background jobs) or cannot be
        # handled (a thread other than the main one).
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
            self._previous = signal.signal(signal.SIGINT, self._press)
        return self

    def _press(self, signum, frame):
        self.pressed = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print(f"\n{self.message}", file=sys.stderr, flush=True)

    def __exit__(self, *exception):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------

def format_duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """A progress line with rate and ETA on stderr.

    On a terminal the line redraws in place; in a log (CI, a file) it prints a fresh line at
    every quarter so the log stays readable.
    """

    def __init__(self, total, label, unit="", scale=1.0, stream=None, initial=0):
        self.total = total
        self.label = label
        self.unit = unit
        self.scale = scale
        self.stream = stream or sys.stderr
        self.done = self.initial = initial  # a resumed download starts part-way
        self.started = time.monotonic()
        self.interactive = self.stream.isatty()
        self._last_draw = 0.0
        self._last_quarter = -1

    def update(self, amount=1):
        self.done += amount
        now = time.monotonic()
        if self.interactive:
            if now - self._last_draw >= 0.2 or self.done >= (self.total or 0):
                self._last_draw = now
                self.stream.write("\r" + self.describe(now))
                self.stream.flush()
        elif self.total:
            quarter = int(4 * self.done / self.total)
            if quarter > self._last_quarter and quarter < 4:
                self._last_quarter = quarter
                print(self.describe(now), file=self.stream, flush=True)

    def describe(self, now=None):
        elapsed = (now or time.monotonic()) - self.started
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        shown = f"{self.done / self.scale:,.1f}" if self.scale != 1 else f"{self.done:,}"
        if not self.total:
            return f"{self.label}: {shown}{self.unit} ({rate / self.scale:,.1f}{self.unit}/s)"
        fraction = min(self.done / self.total, 1.0)
        bar = "#" * int(20 * fraction)
        remaining = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = format_duration(remaining) if remaining != float("inf") else "?"
        total = f"{self.total / self.scale:,.1f}" if self.scale != 1 else f"{self.total:,}"
        return (f"{self.label}: {fraction:4.0%} |{bar:<20}| {shown}/{total}{self.unit} "
                f"{rate / self.scale:,.1f}{self.unit}/s ETA {eta}")

    def close(self):
        if self.interactive:
            self.stream.write("\r" + self.describe() + "\n")
        else:
            print(self.describe(), file=self.stream, flush=True)


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RemoteFile:
    """A file a script needs, where to get it and how to recognise the right bytes."""
    name: str
    urls: tuple
    size: int = None
    md5: str = None
    sha256: str = None

    def describe_source(self):
        return self.urls[0] if self.urls else "its publisher"


def _digests(remote):
    wanted = {}
    if remote.md5:
        wanted["md5"] = remote.md5.lower()
    if remote.sha256:
        wanted["sha256"] = remote.sha256.lower()
    return wanted


def verification_problem(path, remote):
    """Why the file at `path` is not `remote` (a short phrase), or None when it is."""
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"{size:,} bytes instead of {remote.size:,}"
    wanted = _digests(remote)
    hashers = {name: hashlib.new(name) for name in wanted}
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            for hasher in hashers.values():
                hasher.update(chunk)
    for name, hasher in hashers.items():
        if hasher.hexdigest() != wanted[name]:
            return f"{name} {hasher.hexdigest()} instead of {wanted[name]}"
    return None


def fetch(remote, directory, quiet=False):
    """Return the path of `remote` in `directory`, downloading and verifying it if absent.

    A file already there is the user's and is used as it is (the script's reader checks its
    structure), never replaced. A download goes to a hidden temporary file that is renamed only
    once its size and checksum are right and removed otherwise, so an interrupted run leaves
    neither a file that looks complete nor a partial one. A connection cut mid-file is continued
    where it stopped (HTTP Range, or from the start where the server does not allow that).
    Mirrors are tried in order; when all fail, a UserError says which file to put where.
    """
    directory = Path(directory)
    target = directory / remote.name
    if target.exists():
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {directory}: {error.strerror}") from None
    failures = {}
    for url in remote.urls:
        problem = _download_one(url, remote, target, quiet)
        if problem is None:
            return target
        failures[url] = problem
    if len(set(failures.values())) == 1:  # offline: one reason, said once
        why = f"{len(failures)} source(s): {next(iter(failures.values()))}"
    else:
        why = "; ".join(f"{url}: {problem}" for url, problem in failures.items()) or "no source"
    raise UserError(f"could not download {remote.name} ({why}); put the file at {target} "
                    f"(from {remote.describe_source()})")


def _download_one(url, remote, target, quiet):
    """Download `url` to `target`; return None on success or why it failed."""
    handle, temporary = tempfile.mkstemp(prefix=f".{remote.name}.", suffix=".part",
                                         dir=target.parent)
    os.close(handle)
    partial = Path(temporary)
    try:
        for _ in range(DOWNLOAD_ATTEMPTS):
            problem, cut_short = _stream_into(url, remote, partial, quiet)
            if not cut_short:
                break
        if problem is None:
            problem = verification_problem(partial, remote)
        if problem is None:
            os.replace(partial, target)
        return problem
    finally:
        partial.unlink(missing_ok=True)


def _stream_into(url, remote, partial, quiet):
    """Add what `url` sends to `partial`, asking only for the rest when it already holds some
    bytes. Returns (why it failed or None, whether it was cut short and worth continuing)."""
    offset = partial.stat().st_size
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            content_range = response.headers.get("Content-Range", "")
            if not (response.status == 206 and content_range.startswith(f"bytes {offset}-")):
                offset = 0  # the server sends the whole file
            announced = response.headers.get("Content-Length")
            sending = offset + int(announced) if announced else None
            with open(partial, "ab" if offset else "wb") as sink:
                received = offset + _copy_with_progress(response, sink, remote.size or sending,
                                                        offset, remote.name, quiet)
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}", False
    except urllib.error.URLError as error:
        return f"{getattr(error.reason, 'strerror', None) or error.reason}", False
    except (HTTPException, OSError) as error:
        if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise UserError(f"cannot write {remote.name} into {partial.parent} "
                            f"({error.strerror}); make room there, then run again") from None
        return f"connection lost ({type(error).__name__})", True
    if sending is not None and received < sending:
        return f"got {received:,} of {sending:,} bytes", True
    return None, False  # all the server had: whether it is the right file is checked next


def _copy_with_progress(response, sink, expected, offset, name, quiet):
    unit, scale = (" MB", 1e6) if (expected or 0) >= 1e6 else (" kB", 1e3)
    progress = None if quiet else Progress(expected, f"downloading {name}", unit=unit,
                                           scale=scale, initial=offset)
    copied = 0
    for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
        sink.write(chunk)
        copied += len(chunk)
        if progress:
            progress.update(len(chunk))
    if progress:
        progress.close()
    return copied


# --------------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------------

def _inside(directory, member_name):
    resolved = (directory / member_name).resolve()
    return resolved == directory or directory in resolved.parents


def extract_archive(archive, directory):
    """Extract a .tgz/.tar/.zip into `directory`, refusing the whole archive if any member
    would land outside it (absolute paths, `..`, links that point out, device files)."""
    archive, directory = Path(archive), Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    root = directory.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for name in bundle.namelist():
                    if not _inside(root, name):
                        raise UserError(f"{archive} has a member outside the folder: {name}")
                bundle.extractall(root)
            return
        with tarfile.open(archive) as bundle:
            for member in bundle.getmembers():
                bad_link = (member.issym() or member.islnk()) and not _inside(
                    root, Path(member.name).parent / member.linkname)
                if (not _inside(root, member.name) or bad_link
                        or member.isdev() or member.isfifo()):
                    raise UserError(f"{archive} has an unsafe member: {member.name}")
            bundle.extractall(root, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
        raise UserError(f"{archive} is not a readable archive ({error})") from None


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# A 200-megapixel phone photo fits; a "decompression bomb" (a small file declaring, say,
# 40000x40000 pixels, which would take gigabytes to decode) does not.
MAX_IMAGE_PIXELS = 2**28


def centre_square(image, size):
    """A PIL image resized so its shorter side is `size`, then its centre size x size cut."""
    from PIL import Image

    if image.size == (size, size):
        return image
    scale = size / min(image.size)
    width, height = (max(size, round(side * scale)) for side in image.size)
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def open_image(path):
    """The image file at `path`, opened but not decoded: only its header has been read.

    Everything that can be told from the header is a UserError naming the file: a missing
    file, a folder, a file that is no image Pillow knows, and one with more than
    MAX_IMAGE_PIXELS pixels, refused before a single pixel is decoded.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an image")
    # Pillow's own guard warns, or past twice its limit fails without giving the size; it is
    # switched off for the call so that the check below, with the size in its words, decides.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image = Image.open(path)
        except FileNotFoundError:
            raise UserError(f"{path} does not exist") from None
        except PermissionError:
            raise UserError(f"{path} cannot be read (permission denied)") from None
        except UnidentifiedImageError as error:
            raise UserError(f"{path} is not an image ({_what_it_is(path, error)})") from None
        except Exception as error:  # a format was recognised, then its header was bad
            raise UserError(f"{path} is damaged or truncated ({_reason(error)})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise UserError(f"{path} is refused: {width:,}x{height:,} = {width * height:,} pixels, "
                        f"over the limit of {MAX_IMAGE_PIXELS:,} (a decompression bomb?)")
    return image


def open_rgb(path, at_least=None):
    """Any image file as an upright 8-bit RGB PIL image.

    EXIF rotation is applied, transparency is laid on white, 16-bit and float images are scaled
    (not clipped) to 0..255, palette/CMYK/grayscale become RGB, an animation gives its first
    frame. With `at_least`, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale as long as both
    sides stay at least that many pixels: much faster for photos that will be shrunk anyway.
    What open_image refuses, and a file that cannot be decoded (truncated, damaged), is a
    UserError naming it.
    """
    from PIL import Image

    with open_image(path) as image:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                return _upright_rgb(image, at_least)
        except MemoryError:
            raise UserError(f"{path} is too large to decode in the free memory") from None
        except Exception as error:  # a damaged file fails inside whichever decoder reads it
            raise UserError(f"{path} is damaged or truncated ({_reason(error)})") from None


def _upright_rgb(image, at_least):
    import numpy as np
    from PIL import Image, ImageOps

    if at_least and image.format == "JPEG":
        image.draft("RGB", (at_least, at_least))
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block: the pixels are still good, shown as stored
        pass
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        high = 65535.0 if values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values * (255.0 / high), 0, 255).round()
                                .astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def _what_it_is(path, error):
    """What a file that no image format recognises starts with: an HTML error page saved
    under an image's name shows itself."""
    with open(path, "rb") as stream:
        start = stream.read(24)
    if not start:
        return "the file is empty"
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in start)
    return f"no image format starts like this: {text!r}"


def _reason(error):
    return str(error).splitlines()[0] if str(error) else type(error).__name__


class UnreadableImages:
    """The images of one run that could not be read. Each is named on stderr, with why, as it
    is met, so that the others are still done; at the end every script that takes many images
    prints the same summary and exits the same way (1 when any failed)."""

    def __init__(self, total):
        self.total, self.count = total, 0

    def report(self, error):
        print(f"{program_name()}: error: {error}", file=sys.stderr, flush=True)
        self.count += 1

    def each(self, paths, read):
        """(path, read(path)) for every path that `read` can take; the others are reported."""
        for path in paths:
            try:
                yield path, read(path)
            except UserError as error:
                self.report(error)

    def exit_code(self):
        if not self.count:
            return 0
        print(f"{program_name()}: {self.count} of {self.total} images could not be read",
              file=sys.stderr)
        return 1


# --------------------------------------------------------------------------------------------
# Where a network looks: Grad-CAM
# --------------------------------------------------------------------------------------------

def grad_cam(feature_maps, logits, chosen):
    """Grad-CAM (Selvaraju et al. 2017) as graph ops, so that it comes out of the same run as
    the prediction: for each image, the gradient of the chosen class's score averaged over the
    map's positions weighs each feature map; their sum, through a ReLU, scaled to a peak of 1
    (a map with no positive evidence stays all zeros). `feature_maps` (N, h, w, C), `logits`
    (N, classes), `chosen` (N,) int32; returns (N, h, w)."""
    import tensorflow.compat.v1 as tf

    # The images of a batch do not interact, so one gradient of the summed scores gives each
    # image the gradient of its own score.
    score = tf.reduce_sum(logits * tf.one_hot(chosen, tf.shape(logits)[1], dtype=logits.dtype))
    gradients = tf.gradients(score, feature_maps)[0]
    weights = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature_maps, axis=3))
    return tf.math.divide_no_nan(cam, tf.reduce_max(cam, axis=[1, 2], keepdims=True))


def upsampled(cam, size):
    """A heatmap (h, w) stretched bilinearly to `size` (width, height), as float32."""
    import numpy as np
    from PIL import Image

    heat = Image.fromarray(np.asarray(cam, np.float32), mode="F")
    return np.asarray(heat.resize(size, Image.Resampling.BILINEAR), np.float32)


def draw_cam(axes, rgb, cam, title):
    """The image with its Grad-CAM heatmap over it and a colour bar beside it."""
    heat = upsampled(cam, (rgb.shape[1], rgb.shape[0]))
    axes.imshow(rgb, cmap="gray" if rgb.ndim == 2 else None)
    shown = axes.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes.figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04, label="Grad-CAM")
    axes.set_title(title)
    axes.axis("off")


def save_cam_figure(rgb, cam, title, path):
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(5.5, 4.6))
    draw_cam(axes, rgb, cam, title)
    figure.tight_layout()
    save_figure(figure, path)


def class_index(class_names, wanted):
    """The index of the class the user named: a whole name or one of its comma-separated
    synonyms, any case; else the one name that contains it."""
    wanted = wanted.strip().lower()
    for index, name in enumerate(class_names):
        if wanted == name.lower() or wanted in (part.strip().lower() for part in name.split(",")):
            return index
    containing = [index for index, name in enumerate(class_names) if wanted in name.lower()]
    if len(containing) == 1:
        return containing[0]
    some = ", ".join(repr(class_names[i]) for i in containing[:3])
    raise UserError(f"--cam-class {wanted!r} names no class" if not containing else
                    f"--cam-class {wanted!r} is in {len(containing)} class names "
                    f"({some}...); give more of one")


def add_cam_arguments(parser, where):
    """--cam DIR and --cam-class NAME, the same in every script that draws Grad-CAM; `where`
    says which layer, over what."""
    parser.add_argument("--cam", metavar="DIR", default=None,
                        help=f"also save, per image, a Grad-CAM heatmap of where {where} "
                             f"found the class (DIR/NAME_cam.png)")
    parser.add_argument("--cam-class", metavar="NAME", default=None,
                        help="the class --cam shows (a name or synonym; default: the top one)")


def writable_folder(path, option):
    """Make the folder `path` (given with `option`) before any work, or say why it cannot be."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{option} {path}: cannot make that folder "
                        f"({error.strerror or error})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: cannot write there")
    return path


# --------------------------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside `path`; it becomes `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix,
                                         dir=path.parent)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp's 0600 would hide results
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def current_umask():
    """The process's umask, read without changing it. os.umask can only be read by setting
    it, and for that moment every file another thread (TensorFlow's) creates would get it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o077)  # no /proc: for that moment, new files are private, not public
    os.umask(umask)
    return umask


def numbered_if_taken(path):
    """`path`, or `name-1.png`, `name-2.png`... if it exists: results never replace a file."""
    path, number = Path(path), 1
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        number += 1
    return candidate


def pyplot():
    """matplotlib.pyplot drawing into files only, so plots work without a display."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(figure, path, dpi=100):
    """Write a matplotlib figure as PNG atomically, then free it."""
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi)
    pyplot().close(figure)


def require_new_output(path, overwrite=False):
    """Fail before any long work if `path` exists (and may not be replaced) or cannot be written."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; choose another name")
    folder = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    if not os.access(existing, os.W_OK):
        raise UserError(f"cannot write to {folder}")


# --------------------------------------------------------------------------------------------
# TensorFlow sessions and devices
# --------------------------------------------------------------------------------------------

def user_wants_tensorflow_logs():
    """True when TF_CPP_MIN_LOG_LEVEL asks for info lines (0 or 1); the default quiets them."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2").strip() in ("0", "1")


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for the block, unless the user asked for TF logs.

    TensorFlow's native libraries print start-up lines (oneDNN, "could not find cuda drivers",
    a cuInit *error* on every CPU-only machine) before TF_CPP_MIN_LOG_LEVEL is read, straight to
    the process's stderr, where Python cannot filter them.
    """
    if user_wants_tensorflow_logs():
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def tensorflow_logging_quieted():
    """Wrap `import tensorflow...` in this so that the book's output is not buried in logs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_silenced():
        yield
    if not user_wants_tensorflow_logs():
        import tensorflow as tf
        tf.get_logger().setLevel("ERROR")  # deprecation notices of the compat.v1 API


def configure_devices(cpu_only=False):
    """Hide GPUs for `--cpu`, let the rest grow their memory on demand; return a description.

    Must run before the first session is created: TensorFlow fixes its devices then.
    """
    import tensorflow as tf

    with native_stderr_silenced():
        gpus = tf.config.list_physical_devices("GPU")
    if cpu_only and gpus:
        tf.config.set_visible_devices([], "GPU")
        return "CPU (GPUs hidden by --cpu)"
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # already initialised: keep its setting
            tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        return f"{len(gpus)} GPU(s): " + ", ".join(gpu.name for gpu in gpus)
    return "CPU"


def make_deterministic(seed):
    """Seed NumPy's global generator and ask TensorFlow for deterministic kernels.

    TensorFlow's random ops are seeded by the graph each script builds (tf.set_random_seed
    inside it): a seed set here would not reach a graph made later. Both are needed for same
    seed, same numbers: graph-level seeds alone leave multi-threaded reductions free to sum in
    any order.
    """
    import numpy as np
    import tensorflow as tf

    np.random.seed(seed)
    tf.config.experimental.enable_op_determinism()


def load_variable(session, variable, value):
    """Set a variable of `session`'s graph to a NumPy value by feeding its initializer: no new
    op, so it works on a finalized graph, and it works outside `with session:` too (where
    Variable.load alone would try, and fail, to assign eagerly)."""
    with session.graph.as_default():
        variable.load(value, session)


def new_session(graph, precision="fp32"):
    """A `tf.compat.v1.Session` for `graph` that takes GPU memory as it needs it.

    precision "bf16" turns on TensorFlow's mixed-precision graph rewrites: bfloat16 through
    oneDNN on CPUs that have it, float16 on GPUs. The graph itself stays float32.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import rewriter_config_pb2

    config = tf.compat.v1.ConfigProto()
    config.gpu_options.allow_growth = True
    if precision == "bf16":
        rewrites = config.graph_options.rewrite_options
        rewrites.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
        rewrites.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
    return tf.compat.v1.Session(graph=graph, config=config)
