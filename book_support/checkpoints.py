"""Checkpoints of the chapter's training scripts, one way for all three.

A CheckpointFolder is the folder a training script saves into (lenet_mnist.py's and
alexnet_finetune.py's --checkpoint-dir, emotion_cnn.py's --logs-dir). It holds:
  * newest: the newest checkpoint, found also in a folder that was moved (TensorFlow's
    `checkpoint` index may keep the absolute path it was written at);
  * restore_or_initialize: resume from it, or start a fresh model when there is none;
  * one line, not a traceback, for a checkpoint that is not this model's (naming the model it
    is, where the script can tell) or that cannot be read; restore_by_value for one that lacks
    only variables the model can do without (another optimizer's slots, a newer variable);
  * save: the model with its step, and beside it a record (run.json) of the settings the run
    was made with and what else the script needs to resume, such as the training curves so
    far; update_record changes one entry of it between saves (emotion_cnn.py's early stopping
    keeps its count there), and a save keeps the entries it does not restate: one record per
    folder;
  * preferred_folder: FOLDER/best, where early stopping keeps the best checkpoint (its files
    only: the count is in FOLDER's record), when there is one;
  * start: before any work, hold the folder (lock: a second run at once is refused), refuse a
    rerun whose settings differ from the recorded ones, naming each (a longer run of the same
    settings continues), or clear the folder for --restart; owns: whether a path is one of a
    checkpoint folder's own files.
The record is written before the model, each atomically, so a crash between the two leaves a
record one save ahead of the checkpoint, never behind it.
"""

import json
import math
import os
import shutil
import stat
from pathlib import Path

from filelock import FileLock, Timeout

from book_support import file_roles, plumbing

RECORD_NAME = "run.json"
LARGEST_RECORD = 64 * 2**20  # LeNet's history of 100 epochs is 20 kB
LOCK_NAME = ".lock"
BEST = "best"  # the subfolder where early stopping keeps the best checkpoint
_LOCKS = {}  # folder -> its held lock, until the run ends (plumbing.run_reporting_errors)


class Optional:
    """In RECORD_SHAPE, a table's entry that may be missing (records written before it was)."""

    def __init__(self, kind):
        self.kind = kind


# What run.json holds, entry by entry, in one place: the record is read only through record(),
# which checks every entry it knows against this (an entry it does not know is kept, unread).
# A type is a value of that type (int: a count, float: any number, None: null), a dict the
# entry's own keys, a list [shape] a list of such, a tuple one of several.
COUNT, NUMBER, SETTING = int, float, (str, int, float, bool, type(None), [str])
RECORD_SHAPE = {
    "settings": ({str: SETTING}, type(None)),  # the options a run's checkpoints depend on
    # The training curves (book_support/training_curves.py): LeNet's after each epoch...
    "history": [{"epoch": COUNT, "train_loss": NUMBER, "validation_loss": NUMBER,
                 "train_accuracy": Optional(NUMBER),  # older records lack it
                 "test_sample_accuracy": NUMBER, "validation_accuracy": NUMBER}],
    # ...and the emotion CNN's at each validation
    "validations": [{"step": COUNT, "train_loss": NUMBER, "train_accuracy": NUMBER,
                     "validation_loss": NUMBER, "validation_accuracy": NUMBER}],
    "early_stopping": {"best_loss": NUMBER, "best_step": (COUNT, type(None)),  # emotion's
                       "since_best": COUNT},
}


def preferred_folder(folder):
    """FOLDER/best when early stopping kept a best checkpoint there, else FOLDER: the one to
    test or read a face with."""
    best = Path(folder) / BEST
    return best if (best / "checkpoint").exists() else Path(folder)


def restore_by_value(variables, optional):
    """A CheckpointFolder fallback: each of `variables` set from the checkpoint's value of the
    same name (fed to its initializer: no new op, so a finalized graph is fine, and no second
    saver in the graph, which graph_checks would refuse); those of `optional` that it lacks
    (an optimizer's slots, a variable newer than the checkpoint) initialised. NotFoundError
    when it lacks another."""
    import tensorflow.compat.v1 as tf

    from book_support import tf_setup

    optional = {variable.op.name for variable in optional}

    def restore(session, checkpoint):
        reader = tf.train.load_checkpoint(checkpoint)
        missing = {variable.op.name for variable in variables
                   if not reader.has_tensor(variable.op.name)}
        if missing - optional:
            raise tf.errors.NotFoundError(None, None, f"{checkpoint} has no "
                                          f"{sorted(missing - optional)[0]}")
        for variable in variables:
            if variable.op.name in missing:
                session.run(variable.initializer)
            else:
                tf_setup.load_variable(session, variable, reader.get_tensor(variable.op.name))
    return restore


class CheckpointFolder:
    """`folder` (None for a dry run: nothing read, nothing written), the graph's `saver`, and
    the command-line `option` that names the folder, for messages. `identify`, if given, maps
    a checkpoint that does not fit, and its variable names, to a sentence saying what it is
    (or None). `recorded=False` saves the model alone, without run.json (best/: the run's
    record is its parent folder's). `fallback(session, path)`, if given, is tried when `saver`
    finds a variable missing (restore_by_value: a checkpoint that lacks only optional ones)."""

    def __init__(self, folder, saver, option, identify=None, recorded=True, fallback=None):
        self.folder = Path(folder) if folder else None
        self.saver, self.option, self.identify = saver, option, identify
        self.recorded, self.fallback = recorded, fallback

    def newest(self):
        """The newest checkpoint's path prefix, or None when the folder holds none."""
        import tensorflow.compat.v1 as tf

        if self.folder is None or not (self.folder / "checkpoint").exists():
            return None
        try:  # TensorFlow logs a damaged index and returns None, or raises ValueError
            state = tf.train.get_checkpoint_state(str(self.folder))
        except ValueError:  # empty, or not text
            state = None
        if state is None or not state.model_checkpoint_path:
            raise plumbing.UserError(f"{self.folder / 'checkpoint'} cannot be read; move the "
                                     f"folder away or choose another {self.option}")
        # Always this folder's own file: the index may name another folder's (this one moved,
        # or copied from one whose files the saver would then delete as old checkpoints).
        named = state.model_checkpoint_path
        prefix = str(self.folder / Path(named).name)
        if Path(prefix + ".index").exists():
            return prefix
        raise plumbing.UserError(f"{self.folder} names the checkpoint {Path(named).name}, "
                                 f"whose files are not there; choose another {self.option}")

    def restore(self, session):
        """Restore the newest checkpoint; return its path, or None when there is none."""
        latest = self.newest()
        if latest is not None:
            self._restore(session, latest)
            # The saver then counts it among the checkpoints it keeps, and removes it in its
            # turn: a resumed run, too, leaves only the newest.
            self.saver.recover_last_checkpoints([latest])
        return latest

    def restore_or_initialize(self, session, initialize):
        """Resume from the newest checkpoint, else call `initialize(session)`; returns the
        checkpoint's path or None."""
        latest = self.restore(session)
        if latest is None:
            initialize(session)
        return latest

    def _restore(self, session, latest):
        import tensorflow.compat.v1 as tf

        try:
            self.saver.restore(session, latest)
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError):
            if not self._restored_by_fallback(session, latest):
                raise plumbing.UserError(self._not_this_model(latest)) from None
        except tf.errors.OpError as error:  # DataLossError, OutOfRangeError, ...
            raise plumbing.UserError(f"{latest} cannot be restored: its .index or .data file is "
                                     f"damaged ({type(error).__name__}); move the folder away "
                                     f"or choose another {self.option}") from None

    def _restored_by_fallback(self, session, latest):
        import tensorflow.compat.v1 as tf

        if self.fallback is None:
            return False
        try:
            self.fallback(session, latest)
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError):
            return False
        return True

    def _not_this_model(self, latest):
        import tensorflow.compat.v1 as tf

        if not list(Path(latest).parent.glob(Path(latest).name + ".data-*")):
            return f"{latest} is missing its .data file; choose another {self.option}"
        try:
            names = {name for name, _ in tf.train.list_variables(latest)}
        except (tf.errors.OpError, ValueError):
            names = None
        said = self.identify(latest, names) if self.identify and names is not None else None
        return said or (f"{self.folder} holds a checkpoint of another model; choose another "
                        f"{self.option}")

    def refuse_if_past(self, done, asked, unit, option):
        """A checkpoint holding more `unit` than the run asks for (`option` `asked`) is not
        this run's: refused, so that its result is never printed as the new one's."""
        if done > asked:
            raise plumbing.UserError(f"{self.folder} holds {done} {unit}, more than {option} "
                                     f"{asked}; choose another {self.option} to start fresh, "
                                     f"or add --restart to start over in this one")

    def save(self, session, step, settings=None, **state):
        """Save the model as model.ckpt-STEP, with the record of `settings` and `state`
        beside it (and the last record's other entries, kept); returns the checkpoint's path
        (None for a dry run)."""
        if self.folder is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        record, kept = self.folder / RECORD_NAME, self.folder / (RECORD_NAME + ".kept")
        kept.unlink(missing_ok=True)
        if self.recorded and record.exists():  # the last save's record, back if this one fails
            try:
                os.link(record, kept)  # no space needed, even on a full disk
            except OSError:  # a file system without hard links
                shutil.copyfile(record, kept)
        try:
            if self.recorded:
                self._write_record({**self._entries_kept(), "settings": settings, **state})
            path = self.saver.save(session, str(self.folder / "model.ckpt"), global_step=step)
        except Exception as error:
            last = self._undo_save(step, kept, record)
            if plumbing.disk_full(error):
                last = f"{Path(last).name} is kept" if last else "no checkpoint is there yet"
                raise plumbing.UserError(
                    f"the disk is full: step {step} could not be saved in {self.folder} "
                    f"({last}); make room, then run again") from None
            raise
        kept.unlink(missing_ok=True)
        return path

    def _undo_save(self, step, kept, record):
        """Remove what a failed save of `step` left (a .tempstate file the size of the free
        space, a half-written .index) and put the last record back; returns the newest
        checkpoint, which stays."""
        try:
            newest = self.newest()
        except plumbing.UserError:
            newest = None
        prefix = f"model.ckpt-{step}"
        for path in [*self.folder.glob(prefix + ".*"), *self.folder.glob(prefix + "_temp*")]:
            if "tempstate" in path.name or newest != str(self.folder / prefix):
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        if kept.exists():
            os.replace(kept, record)
        elif self.recorded:
            record.unlink(missing_ok=True)
        return newest

    def update_record(self, **entries):
        """Set `entries` in the record the last save wrote, keeping the rest; atomic, so a
        crash leaves the record as it was. Nothing for a dry run."""
        if self.folder is not None:
            self._write_record({**self.record(), **entries})

    def _write_record(self, record):
        with plumbing.atomic_output(self.folder / RECORD_NAME) as temporary:
            temporary.write_text(json.dumps(record, indent=1))

    def _entries_kept(self):
        """The last record's entries, which a save keeps unless it restates them (early
        stopping's count, say, which its own runs write and a run without it leaves alone)."""
        try:
            return self.record()
        except plumbing.UserError:  # unreadable: start() refused it before any work
            return {}

    def record(self):
        """What the last save recorded: {"settings": ..., and the script's state}, or {};
        every entry checked against RECORD_SHAPE, a wrong one refused in one line."""
        path = None if self.folder is None else self.folder / RECORD_NAME
        if path is None or not path.exists():
            return {}
        try:
            record = json.loads(file_roles.read_bytes(path, LARGEST_RECORD))
            problem = shape_problem(record, {key: RECORD_SHAPE.get(key, object)
                                             for key in record}
                                    if isinstance(record, dict) else {}, "the record")
        except (OSError, ValueError) as error:
            problem = str(error)
        if problem:
            raise plumbing.UserError(f"{path} cannot be read ({problem}); add --restart to "
                                     f"start over, or choose another {self.option}")
        return record


def shape_problem(value, shape, where):
    """What is wrong with `value` against `shape` (RECORD_SHAPE's kinds), as a phrase naming
    where; None when nothing is."""
    if shape is object:
        return None
    if isinstance(shape, Optional):
        return shape_problem(value, shape.kind, where)
    if isinstance(shape, tuple):
        problems = [shape_problem(value, kind, where) for kind in shape]
        return None if None in problems else problems[0]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where} is not a list"
        return next(filter(None, (shape_problem(item, shape[0], f"{where}, item {number}")
                                  for number, item in enumerate(value))), None)
    if isinstance(shape, dict) and str in shape:  # any names, each value of one kind
        if not isinstance(value, dict):
            return f"{where} is not a table of names"
        return next(filter(None, (shape_problem(item, shape[str], f"{where}: {name!r}")
                                  for name, item in value.items())), None)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where} is not a table"
        missing = [name for name, kind in shape.items()
                   if name not in value and not isinstance(kind, Optional)]
        if missing:
            return f"{where} has no {missing[0]!r}"
        return next(filter(None, (shape_problem(value[name], kind, f"{where}: {name!r}")
                                  for name, kind in shape.items() if name in value)), None)
    return None if is_of_kind(value, shape) else f"{where} is {json.dumps(value)[:40]}, " \
        f"not {KIND_NAMES[shape]}"


KIND_NAMES = {int: "a count", float: "a finite number", str: "text", bool: "true or false",
              type(None): "null"}


def is_of_kind(value, kind):
    if isinstance(value, bool) or kind is bool:  # JSON's true is no number, 1 no truth value
        return isinstance(value, bool) and kind is bool
    if kind is int:
        return isinstance(value, int) and value >= 0
    if kind is float:  # a run stops on a loss that is not finite, so none is ever recorded
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def start(folder, option, settings, restart=False):
    """Before any work. With `restart`, remove the checkpoints in `folder` (and the record, and
    the best checkpoint) so that training starts over there. Otherwise, when the folder holds a
    run recorded with other `settings`, refuse in one line naming each setting that differs and
    how to start fresh; the same settings resume."""
    if folder is None:
        return
    folder = Path(folder)
    lock(folder, option)
    if restart:
        for path in [*folder.glob("model.ckpt-*"), folder / "checkpoint", folder / RECORD_NAME,
                     folder / (RECORD_NAME + ".kept")]:
            path.unlink(missing_ok=True)
        shutil.rmtree(folder / BEST, ignore_errors=True)
        return
    recorded = CheckpointFolder(folder, None, option).record().get("settings") or {}
    said = lambda value: "not given" if value is None else value  # noqa: E731
    named = lambda key: ("the training data" if key == DATA  # noqa: E731
                         else f"--{key.replace('_', '-')}")
    changed = [f"{named(key)} {said(recorded[key])}, now {said(value)}"
               for key, value in settings.items() if key in recorded and recorded[key] != value]
    if changed:
        raise plumbing.UserError(f"{folder} holds a run made with other settings "
                                 f"({'; '.join(changed)}): give the same settings to resume it, "
                                 f"choose another {option} to start fresh, or add --restart "
                                 f"to start over in this one")


DATA = "training_data"  # the settings' entry that says which data a run trains on


def fingerprint(count, *parts):
    """What the settings' DATA entry holds: how many examples, and a checksum of `parts`
    (arrays, or text) that a copy of the same data shares, wherever its folder is; a resume on
    other data is then refused as other settings are."""
    import zlib

    import numpy as np

    checksum = 0
    for part in parts:
        data = part.encode() if isinstance(part, str) else np.ascontiguousarray(part)
        checksum = zlib.crc32(data, checksum)
    return f"{count:,} examples, checksum {checksum:08x}"


def lock(folder, option):
    """Hold `folder` for this run: a second run on it at the same time is refused in one line
    (two runs would overwrite each other's checkpoints, or resume from one half-written). The
    lock is the operating system's (filelock: flock on Linux and macOS, a Windows file lock there),
    so a run that is killed leaves nothing stuck."""
    folder = Path(folder)
    key = folder.resolve()
    if key in _LOCKS:
        return
    made = next((path for path in reversed([folder, *folder.parents]) if not path.exists()),
                None)  # the outermost folder this run makes, if any
    folder.mkdir(parents=True, exist_ok=True)
    refuse_a_strange_lock(folder / LOCK_NAME, option)
    held = FileLock(folder / LOCK_NAME, timeout=0)
    try:
        held.acquire()
    except Timeout:
        raise plumbing.UserError(f"another run is using {folder}; let it finish (or stop it), "
                                 f"or choose another {option}") from None
    _LOCKS[key] = held
    plumbing.release_when_the_run_ends(lambda: release(key, folder, made))


def refuse_a_strange_lock(path, option):
    """The lock is a plain file this project makes: anything else in its place (a folder, a
    link that may lead out of the folder, a pipe that would hang the open) is refused."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a link" if stat.S_ISLNK(mode)
                else "not a regular file")
        raise plumbing.UserError(f"{path} is {kind}, not the lock file a run makes; remove it, "
                                 f"or choose another {option}")


def release(key, folder, made):
    """Let go of `folder`'s lock. When this run made the folder (`made`: the outermost one it
    made) and left nothing else in it, the folders go too: a run refused before its first save
    leaves no trace."""
    held = _LOCKS.pop(key, None)
    if held is None:
        return
    held.release()
    if made is None or [path.name for path in folder.iterdir()] != [LOCK_NAME]:
        return
    (folder / LOCK_NAME).unlink(missing_ok=True)
    for path in [folder, *folder.parents]:
        try:
            path.rmdir()
        except OSError:  # something arrived meanwhile: it stays
            return
        if path == made:
            return


def owns(folder, path):
    """Whether `path` is one of the files a CheckpointFolder at `folder` writes."""
    if folder is None:
        return False
    path, folder = Path(path).resolve(), Path(folder).resolve()
    inside = path.parent in (folder, folder / BEST)
    return inside and (path.name in ("checkpoint", RECORD_NAME, RECORD_NAME + ".kept",
                                     LOCK_NAME)
                       or path.name.startswith("model.ckpt"))
