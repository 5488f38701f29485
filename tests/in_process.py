"""Running the project's scripts in the test process, as a new process would run them.

Each new Python interpreter pays TensorFlow's import (about 6 s), so the tests call a script's
main() here (run_script) and start an interpreter (run_process, conftest.start_script) only
where the process itself is what is tested: real signals, kills, file-size limits, two runs at
once, and one as-typed launch per script. process_state_kept puts back what a run leaves in the
process, around every run and, through the fixture fresh_process_state (imported by both
conftests), around every test; conftest also counts the interpreters started.
"""

import contextlib
import importlib
import io
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parent.parent
STARTING_FOLDER = os.getcwd()  # pytest's, which every test starts in
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as the scripts set it: no C++ info lines


def run_script(script, *args, cwd=None):
    """Run `script`'s main() in this process as `python script args` from `cwd` (the project
    by default) would: its stdout and stderr captured, its exit code as the process's (an
    uncaught exception is a traceback on stderr and exit 1), and the process left as a new
    one would find it. Returns a subprocess.CompletedProcess."""
    argv = [str(arg) for arg in args]
    module = importlib.import_module(Path(script).stem)
    out, err = io.StringIO(), io.StringIO()
    with process_state_kept(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        os.chdir(cwd or PROJECT)
        sys.argv = [str(script), *argv]
        code = exit_code_of(lambda: module.main(argv))
    return subprocess.CompletedProcess([str(script), *argv], code, out.getvalue(),
                                       err.getvalue())


def exit_code_of(main):
    """The exit code Python gives `raise SystemExit(main())`, argparse's exits included."""
    try:
        code = main()
    except SystemExit as exit:
        code = exit.code
    except Exception:
        traceback.print_exc()
        return 1
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def run_process(*args, cwd=None, timeout=600, **options):
    """Run a command line of Python in a new interpreter (`args` after `python`)."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd or PROJECT,
                          capture_output=True, text=True, timeout=timeout, **options)


@contextlib.contextmanager
def process_state_kept():
    """Put back, after the block, what a script's run changes in its process and a new process
    would not have: TensorFlow's op determinism (a seeded run turns it on, and unseeded random
    ops then fail), the default graph, NumPy's global generator (reseeded at random, as a new
    process's is), the working folder, sys.argv, the environment, the umask, the signal
    handlers and open matplotlib figures."""
    cwd, argv, environ = os.getcwd(), list(sys.argv), dict(os.environ)
    handlers = {signum: signal.getsignal(signum) for signum in HANDLED_SIGNALS}
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.argv = argv
        if dict(os.environ) != environ:
            os.environ.clear()
            os.environ.update(environ)
        os.umask(umask)
        for signum, handler in handlers.items():
            if handler is not None:
                signal.signal(signum, handler)
        np.random.seed(None)
        tensorflow_state_reset()
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture(autouse=True)
def fresh_process_state():
    """Each test starts as in a new process, whatever the test before it ran in this one."""
    with process_state_kept():
        yield


HANDLED_SIGNALS = [signal.SIGINT, signal.SIGTERM] + (
    [signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


def tensorflow_state_reset():
    """Op determinism off and a new default graph, where TensorFlow is loaded at all. A graph
    made default by an open `with session:` (a module fixture's) is left to its owner."""
    if "tensorflow" not in sys.modules:
        return
    import tensorflow as tf
    from tensorflow.python.framework import config
    if config.is_op_determinism_enabled():
        config.disable_op_determinism()
    with contextlib.suppress(AssertionError):  # nested: the fixture's graph stays default
        tf.compat.v1.reset_default_graph()


INTERPRETER_BUDGET = 40
interpreter_starts = []


def counting_python_starts(popen_init):
    def init(self, args, *rest, **options):
        words = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
        program = Path(str(words[0]).split()[0]).name if words else ""
        if program == Path(sys.executable).name or program.startswith("python"):
            interpreter_starts.append(" ".join(map(str, words))[:200])
        popen_init(self, args, *rest, **options)
    return init


def count_interpreter_starts():
    """From now on, every Python interpreter a test starts is listed in interpreter_starts."""
    if not getattr(subprocess.Popen.__init__, "counting", False):
        subprocess.Popen.__init__ = counting_python_starts(subprocess.Popen.__init__)
        subprocess.Popen.__init__.counting = True
