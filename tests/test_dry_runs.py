"""--dry-run writes nothing, in every mode. Each script whose parser has --dry-run is run with
each value of each of its choice options and with each of its flags, one at a time; every
output it writes only when asked (--plot, --predictions...) is asked for, and the outputs with
a default folder go to that default, in the working folder. Before and after, every file under
the test's folder (the inputs, the working folder, the checkpoints) is the same, and no file or
folder is new. The runs come from the parsers: a new option or mode is covered without a new
test."""

import argparse
import importlib

import pytest

from conftest import write_book_layout, write_mnist, write_pets
from tests.parsers import from_every_parser, name_of, parser_of, tagged


def inputs_for(script, root, book_trained):
    """The options giving `script` its inputs, written under `root`: what a reader has after
    the set-up (and, for emotion_cnn.py, a trained checkpoint for --mode test and --restart)."""
    if script == "lenet_mnist":
        write_mnist(root / "mnist")
        return ["--data-dir", root / "mnist", "--validation-size", "100"]
    if script == "emotion_cnn":  # faces never read before: no cache of them yet
        write_book_layout(root / "faces", train_count=100, test_count=30)
        return ["--data-dir", root / "faces", "--logs-dir", book_trained.logs]
    if script == "alexnet_finetune":
        root.mkdir()
        write_pets(root)
        return ["--train-dir", root / "trainDir", "--test-dir", root / "testDir",
                "--weights", root / "bvlc_alexnet.npy"]
    raise AssertionError(f"{script} has --dry-run: say here what it reads")


def variants(parser):
    """In each --mode (where there is one): as it is, and with each choice value and each flag
    of `parser`, one at a time (--help and --dry-run itself left out)."""
    changes = [[]]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "dry_run", "mode"):
            continue
        if action.choices:
            changes += [[action.option_strings[0], str(value)] for value in action.choices
                        if value != action.default]
        elif isinstance(action, argparse._StoreTrueAction):
            changes.append([action.option_strings[0]])
    return [mode + change for mode in parser_modes(parser) or [[]] for change in changes]


def parser_modes(parser):
    return [[action.option_strings[0], str(value)] for action in parser._actions
            if action.dest == "mode" for value in action.choices]


def dry_runs(script, parser):
    if not any(action.dest == "dry_run" for action in parser._actions):
        return []
    return [(script, variant) for variant in variants(parser)]


def asked_for_outputs(parser, folder, argv):
    """Each output `parser` declares that is written only when asked for, pointed into
    `folder`, where it applies to the command `argv` (plumbing.applies_only)."""
    asked = []
    for action in tagged(parser, "writes"):
        where, applies = getattr(action, "applies_only", (None, None))
        if action.option_strings and action.default is None and (
                applies is None or applies(parser.parse_args([str(each) for each in argv]))):
            asked += [name_of(action), folder / action.dest]
    return asked


def snapshot(root):
    return {path.relative_to(root): (path.is_dir(), None if path.is_dir() else
                                     (path.stat().st_size, path.stat().st_mtime_ns,
                                      path.read_bytes()))
            for path in sorted(root.rglob("*"))}


RUNS = from_every_parser(dry_runs)


def test_every_script_with_a_dry_run_is_covered_in_more_than_one_mode():
    scripts = {script for script, _ in RUNS}
    assert scripts == {"lenet_mnist", "emotion_cnn", "alexnet_finetune"}, scripts
    assert ["--mode", "test", "--tta"] in [variant for script, variant in RUNS
                                           if script == "emotion_cnn"]
    assert len(RUNS) >= 20


@pytest.mark.parametrize("script, variant", RUNS, ids=[
    f"{script} {' '.join(variant) or 'as it is'}" for script, variant in RUNS])
def test_a_dry_run_writes_nothing(tmp_path, monkeypatch, capsys, book_trained, script, variant):
    parser = parser_of(script, monkeypatch)
    argv = [*inputs_for(script, tmp_path / "inputs", book_trained), *variant, "--dry-run"]
    argv += asked_for_outputs(parser, tmp_path / "asked", argv)
    (tmp_path / "reader").mkdir()
    monkeypatch.chdir(tmp_path / "reader")  # where default outputs would land
    before = snapshot(tmp_path)
    code = importlib.import_module(script).main([str(each) for each in argv])
    out, err = capsys.readouterr()
    assert snapshot(tmp_path) == before, err
    errors = [line for line in err.splitlines() if "error:" in line]
    if variant == [] or variant in parser_modes(parser):
        assert code == 0, err
    if code == 0:
        assert out.rstrip().endswith(
            "dry run: the set-up works; nothing was written")
    else:  # options that do not go together, or with the checkpoint given: one line
        assert code == 0 or (code in (1, 2) and len(errors) == 1), err
