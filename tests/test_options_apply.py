"""An option given where it means nothing (emotion_cnn.py --mode test --augment, emotion_test.py
photo.png --every 3, --cam-class without --cam) is a command-line mistake that names it
(exit 2, before any work), not ignored in silence (plumbing.applies_only). Every tagged option
of every script is tried from the parsers themselves, in a context where it does not apply."""

import argparse
import importlib

import pytest

from tests.parsers import from_every_parser


def a_value(action):
    """argv words giving `action` a value other than its default."""
    if isinstance(action, argparse._StoreTrueAction):
        return [action.option_strings[0]]
    if action.choices:
        return [action.option_strings[0],
                next(str(value) for value in action.choices if value != action.default)]
    numeric = action.type is not None and action.type not in (str,) and action.metavar != "PATH"
    return [action.option_strings[0], "0.3" if action.dest in ("erase", "label_smoothing")
            else "64" if numeric else "somewhere.png"]


def contexts(parser):
    """Commands a reader might start from: nothing, each --mode, a photo, a video."""
    found = [[]]
    for action in parser._actions:
        if action.dest == "mode":
            found += [["--mode", value] for value in action.choices]
        elif not action.option_strings and action.dest != "help":
            found.append(["photo.png"])
        elif action.dest in ("video",):
            found.append(["--video", "clip.avi"])
    return found


def out_of_place(script, parser):
    """(script, option, argv) for each tagged option, in the first context where it does not
    apply."""
    cases = []
    for action in parser._actions:
        where, applies = getattr(action, "applies_only", (None, None))
        if applies is None:
            continue
        for context in contexts(parser):
            argv = context + a_value(action)
            if not applies(parser.parse_args(argv)):
                cases.append((script, action.option_strings[0], argv))
                break
        else:
            raise AssertionError(f"{script} {action.option_strings[0]}: no context")
    return cases


CASES = from_every_parser(out_of_place)


def test_the_options_that_apply_in_one_mode_only_are_declared():
    declared = {(script, option) for script, option, _ in CASES}
    for expected in [("emotion_cnn", "--augment"), ("emotion_cnn", "--seed"),
                     ("emotion_cnn", "--tta"), ("emotion_test", "--every"),
                     ("emotion_test", "--output"), ("emotion_test", "--figure"),
                     ("lenet_mnist", "--digit-index"), ("classify_image", "--cam-class")]:
        assert expected in declared, expected


@pytest.mark.parametrize("script, option, argv", CASES,
                         ids=[f"{script} {' '.join(argv)}" for script, _, argv in CASES])
def test_an_option_where_it_does_not_apply_is_a_mistake_that_names_it(capsys, tmp_path,
                                                                      monkeypatch, script,
                                                                      option, argv):
    monkeypatch.chdir(tmp_path)
    code = importlib.import_module(script).main(argv)
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1, errors
    assert option in errors[0] and "applies only" in errors[0], errors
    assert not list(tmp_path.iterdir())
