"""What every script of the chapter does around its work, written once.

Holds UserError and run_reporting_errors (a problem the user can fix is one line and exit 1,
an ArgumentMistake exit 2 with the usage line, Ctrl-C exit 130, and a full disk or TensorFlow
out of memory one line too), argument_parser (--help with each default shown once) and the
argument types every script checks its numbers with (count, number, seed), CtrlC (a first
Ctrl-C checked between steps), Progress (a line with rate and ETA), and the one policy for
output files: output_problem and folder_problem (applied before any work by
book_support/file_roles.py to every file a script declares, which also keeps two outputs from
naming one file; a result is never replaced without --overwrite), atomic_output, pyplot and
save_figure. run_reporting_errors runs that check, and lets go of what a run held (a
checkpoint folder's lock) however the run ends.

The rest of the package lives in modules named for their job (see book_support/__init__.py).
"""

import argparse
import contextlib
import errno
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path


class UserError(Exception):
    """A problem the user can fix (missing file, bad input, no network); reported in one line."""


class ArgumentMistake(UserError):
    """A command-line mistake argparse cannot see (options that must agree, an output that
    cannot be written), found before any work; exit 2 with the usage line, as argparse's own."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` with each default shown once: added to an option's help line unless the line
    already speaks of its default, and left off where there is none (None, off, empty)."""

    def _get_help_string(self, action):
        help_line = action.help or ""
        nothing = action.default is None or action.default is False or action.default == []
        if "default" in help_line.lower() or nothing or action.default == argparse.SUPPRESS:
            return help_line
        return super()._get_help_string(action)


class ScriptParser(argparse.ArgumentParser):
    """An ArgumentParser that keeps what it parsed, for run_reporting_errors to check the
    files its options name (book_support/file_roles.py) before any work."""

    parsed = None

    def parse_args(self, args=None, namespace=None):
        self.parsed = super().parse_args(args, namespace)
        return self.parsed


def argument_parser(description):
    """The argparse parser every script starts from, with HelpFormatter."""
    return ScriptParser(description=description, formatter_class=HelpFormatter)


def native_path(text):
    """A default path written with /, as this system writes it: a reader on Windows is shown,
    and told to type, its own separator."""
    return str(Path(text))


def program_name():
    return Path(sys.argv[0]).name or "script"


# The largest count any option takes: TensorFlow keeps steps and sizes, and OpenCV camera
# indices, in 32-bit integers, where a larger number fails deep inside, after the work began.
MAX_COUNT = 2**31 - 1


def count(minimum=1, maximum=MAX_COUNT):
    """An argparse type: a whole number of at least `minimum` and at most `maximum`."""
    def whole_number(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is more than {maximum:,}")
        return value
    return whole_number


def number(minimum=None, positive=False):
    """An argparse type: a finite number, more than 0 if `positive`, at least `minimum`."""
    def finite_number(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not more than 0")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is less than {minimum:g}")
        return value
    return finite_number


def share(text):
    """An argparse type: a fraction from 0 to 1."""
    value = number(minimum=0)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text} is more than 1")
    return value


def seed(text):
    """An argparse type: a seed NumPy and TensorFlow both take, 0 to 2**32 - 1."""
    value = count(0, maximum=None)(text)
    if value >= 2**32:
        raise argparse.ArgumentTypeError(f"{value} is more than {2**32 - 1}, the largest seed")
    return value


_RELEASES = []  # what the run holds (a folder's lock), let go of when it ends, however it ends


def release_when_the_run_ends(release):
    """Call `release()` when run_reporting_errors returns or raises: a script's main() that
    fails, is interrupted or is called again in the same process never keeps what it held."""
    _RELEASES.append(release)


def run_reporting_errors(work, parser=None):
    """Run `work()` and turn expected failures into one line on stderr and an exit code; an
    ArgumentMistake also prints `parser`'s usage line. What the run held is released after."""
    try:
        return _reporting_errors(work, parser)
    finally:
        while _RELEASES:
            _RELEASES.pop()()


def _reporting_errors(work, parser):
    program = program_name()
    try:
        if getattr(parser, "parsed", None) is not None:
            from book_support import file_roles  # it builds on this module
            file_roles.check(parser, parser.parsed)  # first: an input is never put at risk
            refuse_options_that_do_not_apply(parser, parser.parsed)
        code = work() or 0
        if code == 0 and getattr(getattr(parser, "parsed", None), "dry_run", False):
            print("dry run: the set-up works; nothing was written")
        return code
    except ArgumentMistake as error:
        if parser is not None:
            parser.print_usage(sys.stderr)
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    except UserError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if caused_by_ctrl_c(error):
            print(f"{program}: interrupted", file=sys.stderr)
            return 130
        if disk_full(error):
            print(f"{program}: error: the disk is full{written_to(error)}; make room, then run "
                  f"again (what was saved before is kept)", file=sys.stderr)
            return 1
        if out_of_memory(error):
            print(f"{program}: error: {out_of_memory(error)}", file=sys.stderr)
            return 1
        raise


def applies_only(action, where, applies):
    """Tag parser option `action` as meaningful only `where` ("with --mode test", say), which
    `applies(args)` tells. Given anywhere else it would be ignored in silence, so it is a
    command-line mistake, refused before any work."""
    action.applies_only = (where, applies)
    return action


def refuse_options_that_do_not_apply(parser, args):
    for action in parser._actions:
        where, applies = getattr(action, "applies_only", (None, None))
        if applies and getattr(args, action.dest) != action.default and not applies(args):
            raise ArgumentMistake(f"{'/'.join(action.option_strings)} applies only {where}")


def caused_by_ctrl_c(error):
    """Whether a KeyboardInterrupt is behind `error`: Ctrl-C inside a library's class set-up
    (matplotlib's, while TensorFlow loads) comes out as RuntimeError from __set_name__."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def out_of_memory(error):
    """What to say when TensorFlow could not get the memory for a tensor, or None: a batch
    or an image too large for this machine, or a graph file that asks for a huge tensor."""
    found = re.search(r"OOM when allocating tensor with (shape\[[^\]]*\])", str(error))
    if type(error).__name__ != "ResourceExhaustedError" or not found:
        return None
    return (f"TensorFlow ran out of memory for a tensor of {found.group(1)}; use a smaller batch "
            f"or image, and if a graph file from elsewhere asks for it, do not run that file")


# How a full disk or a file-size limit shows: errno from Python, the strerror text inside a
# TensorFlow error (whose class depends on the op that wrote: OutOfRange, ResourceExhausted...).
DISK_FULL = {errno.ENOSPC: "No space left on device", errno.EFBIG: "File too large",
             errno.EDQUOT: "Disk quota exceeded"}


def disk_full(error):
    if isinstance(error, OSError):
        return error.errno in DISK_FULL
    return type(error).__module__.startswith("tensorflow") and any(
        text in str(error) for text in DISK_FULL.values())


def written_to(error):
    name = getattr(error, "filename", None)
    return f" (writing {name})" if name else ""


def stop_if_not_finite(loss, where, kept, advice):
    """A loss that is NaN or infinite stops the run in one line: the weights after it are
    no use, so nothing more is saved. `kept` says what is left, `advice` what to change."""
    if not math.isfinite(float(loss)):
        raise UserError(f"the loss became {float(loss)} at {where}; {kept}; {advice}")


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
        self.total = total if total and total > 0 else None  # a video may not know its length
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
        replace_file(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


# Windows refuses to replace a file that another program holds open, often only for a moment
# (a virus scanner, an indexer); elsewhere a refusal does not pass by waiting.
REPLACE_RETRIES = 10 if sys.platform == "win32" else 0


def replace_file(source, target):
    """os.replace, tried again for a moment where Windows may free the file; then one line."""
    for attempt in range(REPLACE_RETRIES + 1):
        try:
            return os.replace(source, target)
        except PermissionError as error:
            if attempt == REPLACE_RETRIES:
                raise UserError(f"cannot replace {target} ({error.strerror}); if another "
                                f"program has it open, close it, then run again") from None
            time.sleep(0.1 * (attempt + 1))


def available_memory_bytes(meminfo="/proc/meminfo"):
    """Memory a new allocation can have: free pages and the page cache the kernel can drop
    (MemAvailable on Linux), free physical memory on Windows, free pages where the system says
    only that, or else (macOS) all physical memory: a need over it cannot be met either."""
    try:
        with open(meminfo) as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if sys.platform == "win32":
        return windows_available_memory_bytes()
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass
    return None


def windows_available_memory_bytes():
    """ullAvailPhys of GlobalMemoryStatusEx: the physical memory Windows can give now."""
    import ctypes

    class MemoryStatus(ctypes.Structure):
        _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                    *((name, ctypes.c_ulonglong) for name in (
                        "ullTotalPhys", "ullAvailPhys", "ullTotalPageFile", "ullAvailPageFile",
                        "ullTotalVirtual", "ullAvailVirtual", "ullAvailExtendedVirtual"))]
    status = MemoryStatus()
    status.dwLength = ctypes.sizeof(MemoryStatus)
    try:
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
            return status.ullAvailPhys
    except (AttributeError, OSError):
        pass
    return None


def free_disk_bytes(folder):
    """The free bytes where `folder` is, or would be made; None when that cannot be known."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


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


def output_problem(path, option, overwrite=False):
    """Why `path`, a result file named with `option`, cannot be written, or None. Results
    are never replaced without --overwrite; nothing is made or written by the check."""
    path = Path(path)
    if path.is_dir():
        return f"{option} {path} is a folder; give a file name"
    if path.exists() and not overwrite:
        return (f"{option} {path} already exists; add --overwrite to replace it, or choose "
                f"another name")
    return folder_problem(path.parent, option, path)


def folder_problem(folder, option, named=None):
    """Why `folder` (given with `option`, or holding the file `named`) cannot be made or
    written, or None; nothing is made."""
    folder = Path(folder) if str(folder) else Path(".")
    named = named or folder
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        return f"{option} {named}: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{option} {named}: cannot write in {existing}"
    return None
