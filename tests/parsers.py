"""A script's parser, caught as its main() builds it, and the options it tags: what the
tests that cover every option of every script (file roles, dry runs) read."""

import importlib

import pytest

from book_support import plumbing

SCRIPTS = ("lenet_mnist", "alexnet_forward", "alexnet_finetune", "prep_images",
           "style_transfer", "classify_image", "emotion_cnn", "emotion_test", "EmotionUtils")


class Parsed(Exception):
    pass


def parser_of(script, monkeypatch):
    """The parser `script`'s main() builds, caught as it parses."""
    def catch(self, args=None, namespace=None):
        raise Parsed(self)
    with monkeypatch.context() as patched:
        patched.setattr(plumbing.ScriptParser, "parse_args", catch)
        try:
            importlib.import_module(script).main([])
        except Parsed as caught:
            return caught.args[0]
    raise AssertionError(f"{script}.main() parsed nothing")


def tagged(parser, role, kind=None):
    return [action for action in parser._actions if getattr(action, role, None) is not None
            and (kind is None or getattr(action, role) == kind)]


def name_of(action):
    return action.option_strings[0] if action.option_strings else action.dest


def from_every_parser(collect):
    """What `collect(script, parser)` returns for every script's parser, in one list: how the
    tests that cover every option build their cases, so a new option is covered by itself."""
    monkeypatch = pytest.MonkeyPatch()
    try:
        return [case for script in SCRIPTS
                for case in collect(script, parser_of(script, monkeypatch))]
    finally:
        monkeypatch.undo()
