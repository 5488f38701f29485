"""What every script of the chapter does around its work, written once.

Holds UserError and run_reporting_errors (a problem the user can fix is one line and exit 1,
Ctrl-C exit 130), argument_parser (--help with each default shown once), CtrlC (a first Ctrl-C
checked between steps), Progress (a line with rate and ETA), and the rules for output files:
atomic_output, require_new_output, numbered_if_taken, writable_folder, pyplot and save_figure.

The rest of the shared code lives in modules named for their job: downloads.py, image_io.py,
tf_setup.py, checkpoints.py and gradcam.py.
"""

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path


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
