"""What a script reads and what it writes, declared once beside its options and checked in one
place, before any work: plumbing.run_reporting_errors calls `check` with the parsed options.

A script tags the options that name files:

    file_roles.reads(parser.add_argument("--data-dir", ...), file_roles.FOLDER)
    file_roles.writes(parser.add_argument("--plot", ...))

and names, with `also_writes`, what it writes under no option of its own (a name made from an
input's, such as PHOTO_emotions.png, or the files that go into an output folder). Then:
  * an input must be a regular file (or a folder, for a FOLDER): a pipe, a device, or a link to
    one, is refused in one line before a byte of it is read;
  * an output never is an input: not the same file (after links, symbolic or hard), and not one
    of the files inside an input folder, even with --overwrite;
  * an existing output is replaced only with --overwrite, two outputs never name one file, and
    each output's folder can be written in;
  * a folder the script keeps its state in (checkpoints, logs) owns its files: no output may be
    one of them.
Each is one line: a wrong output an ArgumentMistake (exit 2), an input that cannot be read a
UserError (exit 1). A --dry-run, which writes nothing, is checked too: the mistake it finds is
the one the real run would meet.
"""

import os
import stat
from pathlib import Path

from book_support import plumbing

FILE, FOLDER = "file", "folder"


def reads(action, kind=FILE):
    """Tag an argparse action as naming input(s) of `kind`; returns the action."""
    action.reads = kind
    return action


def writes(action, kind=FILE):
    """Tag an argparse action as naming an output file (or a FOLDER the script writes into,
    whose files it names with also_writes); returns the action."""
    action.writes = kind
    return action


def keeps_state(action, owns):
    """Tag an argparse action as naming the folder the script keeps its state in; `owns(folder,
    path)` says whether a path is one of the folder's own files."""
    action.keeps_state = owns
    return action


def also_writes(parser, outputs, cache=False):
    """Declare outputs that no option names: `outputs(args)` gives [(label, path)], the label
    the way the reader would know the file (the option whose default it is, or whose folder
    it goes in). A `cache` is replaced without --overwrite, but never over an input either."""
    parser.__dict__.setdefault("derived_outputs", []).append((outputs, cache))


def check(parser, args):
    """Every declared input and output of `args`, checked as the module docstring says."""
    inputs = declared(parser, args, "reads")
    for option, path, kind in inputs:
        problem = input_problem(path, kind)
        if problem:
            raise plumbing.UserError(f"{option} {path}: {problem}")
    overwrite = getattr(args, "overwrite", False)
    outputs = [(option, path, overwrite) for option, path, kind in
               declared(parser, args, "writes") if kind == FILE]
    for derive, cache in getattr(parser, "derived_outputs", []):
        outputs += [(label, Path(path), overwrite or cache) for label, path in derive(args)
                    if path]
    problem, seen = None, {}
    for number, (option, path, replaceable) in enumerate(outputs):
        first, earlier = seen.setdefault(path.resolve(), (number, option))
        problem = (problem or (first != number and earlier != option and
                               f"{earlier} and {option} name the same file, {path}")
                   or clobbered_input(option, path, inputs)
                   or owned_by_state(option, path, parser, args)
                   or plumbing.output_problem(path, option, replaceable))
    folders = [(option, path) for option, path, kind in declared(parser, args, "writes")
               if kind == FOLDER] + [(option, path) for option, path, _ in
                                     declared(parser, args, "keeps_state")]
    for option, path in folders:
        problem = problem or plumbing.folder_problem(path, option)
    if problem:
        raise plumbing.ArgumentMistake(problem)


def declared(parser, args, role):
    """[(option, Path, kind)] of each path given to (or defaulted for) options tagged `role`."""
    found = []
    for action in parser._actions:
        kind = getattr(action, role, None)
        value = getattr(args, action.dest, None)
        if kind is None or value in (None, ""):
            continue
        option = action.option_strings[0] if action.option_strings else action.dest
        for path in value if isinstance(value, (list, tuple)) else [value]:
            if path not in (None, ""):
                found.append((option, Path(path), kind))
    return found


def input_problem(path, kind):
    """Why `path` cannot be read as an input of `kind`, or None (a missing path is the
    script's to say, in its words: a download may make it)."""
    try:
        mode = os.stat(path).st_mode  # after links: a link to a pipe is a pipe
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if kind == FOLDER and not stat.S_ISDIR(mode) and not stat.S_ISREG(mode):
        return "is not a folder"
    if kind == FILE and stat.S_ISDIR(mode):
        return None  # some inputs take a folder of files too; the script says if not
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "is not a regular file (a pipe or a device); give a file"
    return None


def clobbered_input(option, path, inputs):
    """Why writing `path` would write over one of `inputs`, or None."""
    if not path.exists():
        return None
    for input_option, input_path, kind in inputs:
        if not input_path.exists():
            continue
        if same_file(path, input_path) or (kind == FOLDER and input_path.is_dir() and (
                inside(path, input_path) or hard_linked_into(path, input_path))):
            what = (f"{input_option}'s input" if not input_path.is_dir() or
                    same_file(path, input_path) else f"one of {input_option}'s files in")
            return (f"{option} {path} is {what} {input_path}: outputs never replace inputs, "
                    f"not even with --overwrite; choose another name")
    return None


def owned_by_state(option, path, parser, args):
    for action in parser._actions:
        owns = getattr(action, "keeps_state", None)
        folder = getattr(args, action.dest, None) if owns else None
        if folder and owns(folder, path):
            return (f"{option} {path} is one of the checkpoint's own files (in "
                    f"{action.option_strings[0]} {folder}); choose another name")
    return None


def same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def inside(path, folder):
    return Path(folder).resolve() in Path(path).resolve().parents


def hard_linked_into(path, folder):
    """Whether `path`, a file with other names, is also one of the files under `folder`."""
    try:
        if os.stat(path).st_nlink < 2:
            return False
    except OSError:
        return False
    for root, _, names in os.walk(folder):
        if any(same_file(path, Path(root) / name) for name in names):
            return True
    return False


def read_bytes(path, largest):
    """The bytes of `path`, a file a script finds by itself (a checkpoint's graph, a record):
    refused in one line if it is not a regular file (a pipe would never end, a device such as
    /dev/zero never stop) or is larger than `largest` bytes."""
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            raise plumbing.UserError(f"{path} is not a regular file; only a file a run wrote "
                                     f"can be read there")
        if status.st_size > largest:
            raise plumbing.UserError(f"{path} is {status.st_size:,} bytes, more than the "
                                     f"{largest:,} such a file can be")
        return Path(path).read_bytes()
    except OSError as error:
        raise plumbing.UserError(f"cannot read {path}: {error.strerror}") from None
