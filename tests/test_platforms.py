"""Where the reader is (issue 30): nothing POSIX-only at import time, the scripts run where the
POSIX-only pieces are missing (as on Windows), one floor for each supported Python, and files
Windows holds open."""

import ast
import json
import os
import subprocess
import sys
import time

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from book_support import plumbing
from conftest import PROJECT, write_book_layout, write_mnist

POSIX_ONLY = {"fcntl", "resource", "pwd", "grp", "termios", "msvcrt"}  # msvcrt: Windows only
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
SCRIPTS = ["lenet_mnist", "alexnet_forward", "alexnet_finetune", "prep_images",
           "style_transfer", "classify_image", "emotion_cnn", "emotion_test", "EmotionUtils"]


def project_sources():
    """The project's Python files: not those in data/ or a hidden folder (.venv*, .git)."""
    return [path for path in PROJECT.rglob("*.py")
            if not any(part.startswith(".") or part == "data"
                       for part in path.relative_to(PROJECT).parts[:-1])]


def imported_at_module_level(tree):
    """The modules a file imports outside functions and outside `try: ... except ImportError`
    (a guarded fallback)."""
    found = []

    def visit(nodes, guarded):
        for node in nodes:
            if isinstance(node, ast.Import) and not guarded:
                found.extend(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not guarded and node.module:
                found.append(node.module.split(".")[0])
            elif isinstance(node, ast.Try):
                catches_import = any(
                    isinstance(handler.type, ast.Name)
                    and handler.type.id in ("ImportError", "ModuleNotFoundError")
                    for handler in node.handlers)
                visit(node.body, guarded or catches_import)
                visit(node.orelse + node.finalbody, guarded)
            elif isinstance(node, (ast.If, ast.With)):
                visit(node.body, guarded)
                visit(getattr(node, "orelse", []), guarded)
    visit(tree.body, False)
    return found


def test_no_project_file_imports_a_posix_only_module_at_module_level():
    offenders = {}
    for path in project_sources():
        modules = set(imported_at_module_level(ast.parse(path.read_text()))) & POSIX_ONLY
        if modules:
            offenders[str(path.relative_to(PROJECT))] = sorted(modules)
    assert not offenders, offenders
    assert imported_at_module_level(ast.parse("import fcntl\ndef f():\n    import resource\n"
                                              "try:\n    import pwd\nexcept ImportError:\n"
                                              "    pwd = None\n")) == ["fcntl"]  # the probe sees


# The pieces a Windows Python lacks, taken away from the project's own code: its imports of
# POSIX-only modules, its reads of /proc and its calls of os.sched_getaffinity and os.sysconf
# fail as they do there (TensorFlow, the libraries and the standard library keep theirs, as
# they have their own Windows paths).
WITHOUT_POSIX = """
import builtins, os, sys
PROJECT = {project!r}
BLOCKED = {blocked!r}

def from_the_project(frame):
    folder = os.path.dirname(os.path.abspath(frame.f_code.co_filename))
    return folder in (PROJECT, os.path.join(PROJECT, "book_support"))

real_import, real_open = builtins.__import__, builtins.open

def import_without_posix(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.split(".")[0] in BLOCKED and from_the_project(sys._getframe(1)):
        raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    return real_import(name, globals, locals, fromlist, level)

def open_without_proc(file, *args, **kwargs):
    if str(file).startswith("/proc") and from_the_project(sys._getframe(1)):
        raise FileNotFoundError(2, "No such file or directory", str(file))
    return real_open(file, *args, **kwargs)

def missing_for_the_project(name):
    real = getattr(os, name)

    def call(*args):
        if from_the_project(sys._getframe(1)):
            raise AttributeError(f"module 'os' has no attribute {{name!r}}")
        return real(*args)
    return call

builtins.__import__, builtins.open = import_without_posix, open_without_proc
for name in ("sched_getaffinity", "sysconf"):  # the standard library's asyncio needs sysconf
    setattr(os, name, missing_for_the_project(name))
"""

# Run in a new interpreter under WITHOUT_POSIX: every script's --help, a LeNet and an emotion
# --dry-run, and a LeNet run on a folder another run holds.
DRIVER = """
import contextlib, importlib, io, json, sys
results = {{}}
def run(name, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = importlib.import_module(name).main(argv)
        except SystemExit as exit:
            code = exit.code
    return {{"code": code, "out": out.getvalue(), "err": err.getvalue()}}
for name in {scripts!r}:
    results[name + " --help"] = run(name, ["--help"])
results["lenet --dry-run"] = run("lenet_mnist", ["--data-dir", {mnist!r}, "--dry-run",
                                                "--validation-size", "100"])
results["emotion --dry-run"] = run("emotion_cnn", ["--data-dir", {faces!r}, "--dry-run",
                                                   "--logs-dir", {logs!r}])
results["lenet on a held folder"] = run("lenet_mnist", ["--data-dir", {mnist!r},
                                        "--checkpoint-dir", {held!r}, "--epochs", "2"])
print(json.dumps(results))
"""


def wait_for(path, process, seconds=300):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.skipif(os.name != "posix", reason="simulates a Windows Python on a POSIX one")
def test_the_scripts_run_where_the_posix_only_pieces_are_missing(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(WITHOUT_POSIX.format(project=str(PROJECT),
                                                                blocked=sorted(POSIX_ONLY)))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(PROJECT)])}
    mnist = write_mnist(tmp_path / "mnist", train_count=2000, test_count=100)
    faces = write_book_layout(tmp_path / "faces", train_count=60, test_count=10)
    held = tmp_path / "held"
    first = subprocess.Popen([sys.executable, str(PROJECT / "lenet_mnist.py"), "--data-dir",
                              str(mnist), "--checkpoint-dir", str(held), "--epochs", "100",
                              "--validation-size", "100", "--batch-size", "16"],
                             env=environment, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(held / "model.ckpt-1.index", first)  # it trains, and holds the folder
        driver = DRIVER.format(scripts=SCRIPTS, mnist=str(mnist), faces=str(faces),
                               logs=str(tmp_path / "logs"), held=str(held))
        second = subprocess.run([sys.executable, "-c", driver], env=environment, cwd=tmp_path,
                                capture_output=True, text=True, timeout=600)
    finally:
        first.kill()
        first.communicate()
    assert second.returncode == 0, second.stderr[-3000:]
    results = json.loads(second.stdout)
    for name in SCRIPTS:
        run = results[name + " --help"]
        assert run["code"] == 0 and run["out"].startswith("usage: "), (name, run)
    for name in ("lenet --dry-run", "emotion --dry-run"):
        run = results[name]
        assert run["code"] == 0 and "Traceback" not in run["err"], (name, run)
    assert "test accuracy:" in results["lenet --dry-run"]["out"]
    assert "Validation Accuracy:" in results["emotion --dry-run"]["out"]
    refused = results["lenet on a held folder"]
    assert refused["code"] == 1 and f"another run is using {held}" in refused["err"], refused


def test_the_simulation_takes_the_pieces_away_from_project_code_only(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(WITHOUT_POSIX.format(project=str(tmp_path / "proj"),
                                                                blocked=sorted(POSIX_ONLY)))
    project = tmp_path / "proj"
    project.mkdir()
    (project / "uses_posix.py").write_text("import fcntl\n")
    (project / "asks.py").write_text("import os\n"
                                     "def meminfo():\n    return open('/proc/meminfo')\n"
                                     "def cpus():\n    return os.sched_getaffinity(0)\n"
                                     "def pages():\n    return os.sysconf('SC_PAGE_SIZE')\n")
    probe = ("import os, sys\nsys.path.insert(0, sys.argv[1])\nimport fcntl\n"
             "open('/proc/meminfo').close(); os.sched_getaffinity(0); os.sysconf('SC_PAGE_SIZE')\n"
             "try:\n    import uses_posix\nexcept ModuleNotFoundError as error:\n"
             "    print('refused', error.name)\n"
             "import asks\n"
             "for ask in (asks.meminfo, asks.cpus, asks.pages):\n"
             "    try:\n        ask()\n    except (OSError, AttributeError) as error:\n"
             "        print(type(error).__name__)\n")
    result = subprocess.run([sys.executable, "-c", probe, str(project)], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(site)})
    assert result.stdout.splitlines() == ["refused fcntl", "FileNotFoundError", "AttributeError",
                                          "AttributeError"], result.stderr


def test_default_paths_are_shown_with_the_readers_separator(monkeypatch):
    """Every default path of every script, shown in --help and in hints, is written the way the
    reader's system writes paths: checked by making this system write them as Windows does."""
    from pathlib import PureWindowsPath
    from test_help import parser_of
    monkeypatch.setattr(plumbing, "Path", PureWindowsPath)
    slashed = {}
    for name in SCRIPTS:
        for action in parser_of(name, monkeypatch)._actions:
            if isinstance(action.default, str) and "/" in action.default:
                slashed[f"{name} {action.option_strings[0]}"] = action.default
    assert not slashed, slashed
    assert plumbing.native_path("logs/emotion") == "logs\\emotion"


# --------------------------------------------------------------------------------------------
# One floor for each supported Python
# --------------------------------------------------------------------------------------------

def requirements(path):
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


# The first release of each with wheels for a Python (Linux, Windows and macOS arm64), where
# that is later than the oldest the requirements allow; read off PyPI with pip download.
FIRST_WITH_WHEELS = {
    "3.12": {"scipy": "1.11.2"},
    "3.13": {"tensorflow": "2.20.0", "numpy": "2.1.0", "scipy": "1.14.1", "pillow": "11.0.0",
             "matplotlib": "3.9.2", "opencv-python-headless": "4.10.0.84"},  # OpenCV: NumPy 2
}


@pytest.mark.parametrize("python", SUPPORTED_PYTHONS)
def test_the_floor_pins_each_requirement_once_for_each_python(python):
    environment = {"python_version": python, "python_full_version": python + ".0"}
    pins = [pin for pin in requirements(PROJECT / "requirements-floor.txt")
            if pin.marker is None or pin.marker.evaluate(environment)]
    pinned = {pin.name.lower(): pin for pin in pins}
    assert len(pinned) == len(pins), [str(pin) for pin in pins]  # no package twice
    wanted = requirements(PROJECT / "requirements.txt") + \
        requirements(PROJECT / "requirements-dev.txt")
    for requirement in wanted:
        if requirement.name == "pytest":
            continue  # not pinned: the floor is of what the scripts run on
        pin = pinned[requirement.name.lower()]
        version = next(iter(pin.specifier)).version
        assert pin.specifier.contains(version) and requirement.specifier.contains(version), \
            (python, str(pin), str(requirement))
        first = FIRST_WITH_WHEELS.get(python, {}).get(requirement.name.lower())
        assert first is None or Version(version) >= Version(first), (python, str(pin))


# --------------------------------------------------------------------------------------------
# A result file another program holds open (Windows refuses to replace it)
# --------------------------------------------------------------------------------------------

def test_a_result_held_open_for_a_moment_is_replaced_once_it_is_free(tmp_path, monkeypatch):
    real_replace, refusals = os.replace, []

    def held_twice(source, target):
        if len(refusals) < 2:
            refusals.append(target)
            raise PermissionError(13, "Permission denied", str(target))
        return real_replace(source, target)
    monkeypatch.setattr(plumbing, "REPLACE_RETRIES", 3)
    monkeypatch.setattr(plumbing.os, "replace", held_twice)
    with plumbing.atomic_output(tmp_path / "figure.png") as temporary:
        temporary.write_bytes(b"new")
    assert (tmp_path / "figure.png").read_bytes() == b"new" and len(refusals) == 2


def test_a_result_held_open_for_good_is_one_line_and_left_as_it_was(tmp_path, monkeypatch):
    (tmp_path / "figure.png").write_bytes(b"old")

    def held(source, target):
        raise PermissionError(13, "Permission denied", str(target))
    monkeypatch.setattr(plumbing, "REPLACE_RETRIES", 2)
    monkeypatch.setattr(plumbing.os, "replace", held)
    with pytest.raises(plumbing.UserError, match="if another program has it open, close it"):
        with plumbing.atomic_output(tmp_path / "figure.png") as temporary:
            temporary.write_bytes(b"new")
    assert [path.name for path in tmp_path.iterdir()] == ["figure.png"]
    assert (tmp_path / "figure.png").read_bytes() == b"old"
