"""`--help` of every script: each option has a help line, and each default is shown once."""

import argparse
import importlib
import re

import pytest

SCRIPTS = ["lenet_mnist", "alexnet_forward", "alexnet_finetune", "prep_images",
           "style_transfer", "classify_image", "emotion_cnn", "emotion_test", "EmotionUtils"]


def parser_of(script, monkeypatch):
    """The parser the script's main() builds, caught as it parses."""
    caught = []

    def catch(self, args=None, namespace=None):
        caught.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(SystemExit):
        importlib.import_module(script).main([])
    return caught[0]


def option_blocks(help_text):
    """{option: its help, as one line}, from the formatted `--help`."""
    blocks, current = {}, None
    for line in help_text.split("options:", 1)[1].splitlines():
        match = re.match(r"^  (-[^ ,]+)", line)
        if match:
            current = match.group(1)
            blocks[current] = line
        elif current and line.startswith("   "):
            blocks[current] += " " + line.strip()
    return blocks


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_option_has_help_and_each_default_is_shown_once(script, monkeypatch):
    parser = parser_of(script, monkeypatch)
    for action in parser._actions:
        assert action.help, f"{script}: {action.option_strings or action.dest} has no help"
    blocks = option_blocks(parser.format_help())
    for option, text in blocks.items():
        assert text.lower().count("default") <= 1, (script, text)
        assert "(default: None)" not in text and "(default: False)" not in text, (script, text)
    shown = {action.option_strings[0] for action in parser._actions if action.option_strings
             and action.default not in (None, False, [], argparse.SUPPRESS)}
    for option in shown:
        assert "default" in blocks[option].lower(), (script, blocks[option])
