"""What each script reads and writes, taken from its own parser (book_support/file_roles.py):
every output option pointed at every input option's file, through a symbolic and a hard link
too, is refused before any work with the input untouched; every input that is a pipe is
refused in one line before it is opened. A new option tagged in a parser is covered here
without a new test."""

import importlib
import os

import pytest

from conftest import posix_only
from tests.parsers import from_every_parser, name_of, parser_of, tagged

CONTENT = b"the reader's own file"


def output_input_pairs(script, parser):
    """(script, output option, input option) for every pair of `parser`'s options."""
    return [(script, name_of(output), name_of(read))
            for output in tagged(parser, "writes", "file") for read in tagged(parser, "reads")]


def command(parser, given):
    """argv giving `given` ({option or positional dest: value}), fillers for the other
    positionals, and --overwrite where the script has it."""
    argv = []
    for action in parser._actions:
        if not action.option_strings and action.dest != "help":
            value = given.get(action.dest, "filler.avi" if action.nargs in (None, "+") else None)
            argv += [] if value is None else [str(value)]
    for option, value in given.items():
        if option.startswith("-"):
            argv += [option, str(value)]
    return argv + (["--overwrite"] if any("--overwrite" in action.option_strings
                                         for action in parser._actions) else [])


PAIRS = from_every_parser(output_input_pairs)


def test_the_parsers_declare_the_files_each_script_reads_and_writes():
    declared = {(script, output) for script, output, _ in PAIRS}
    for expected in [("lenet_mnist", "--plot"), ("lenet_mnist", "--plot-inside"),
                     ("EmotionUtils", "--save"), ("emotion_test", "--figure"),
                     ("emotion_test", "--output"), ("style_transfer", "--output"),
                     ("alexnet_finetune", "--predictions")]:
        assert expected in declared, expected
    assert len(PAIRS) >= 17


@pytest.mark.parametrize("link", ["itself", "symbolic link", "hard link"])
@pytest.mark.parametrize("script, output, read", PAIRS)
def test_no_output_may_replace_an_input(tmp_path, monkeypatch, capsys, script, output, read,
                                        link):
    parser = parser_of(script, monkeypatch)
    kind = next(getattr(a, "reads") for a in tagged(parser, "reads") if name_of(a) == read)
    if kind == "folder":
        (tmp_path / "input").mkdir()
        victim = tmp_path / "input" / "inside.avi"
        given_input = tmp_path / "input"
    else:
        victim = given_input = tmp_path / "input.avi"
    victim.write_bytes(CONTENT)
    target = victim
    if link == "symbolic link":
        target = tmp_path / "via_link.avi"
        target.symlink_to(victim)
    elif link == "hard link":
        target = tmp_path / "elsewhere" / "same_file.avi"
        target.parent.mkdir()
        os.link(victim, target)
    dest = next(a.dest for a in tagged(parser, "reads") if name_of(a) == read)
    given = {read if read.startswith("-") else dest: given_input, output: target}
    code = importlib.import_module(script).main(command(parser, given))
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2, errors
    assert len(errors) == 1 and "outputs never replace inputs" in errors[0], errors
    assert victim.read_bytes() == CONTENT


def file_inputs(script, parser):
    return [(script, name_of(action)) for action in tagged(parser, "reads", "file")]


@posix_only
@pytest.mark.parametrize("through_a_link", [False, True])
@pytest.mark.parametrize("script, read", from_every_parser(file_inputs))
def test_an_input_that_is_a_pipe_is_refused_before_it_is_opened(tmp_path, monkeypatch, capsys,
                                                                script, read, through_a_link):
    parser = parser_of(script, monkeypatch)
    pipe = tmp_path / "photo.avi"
    os.mkfifo(pipe)  # opening it to read would wait for a writer for ever
    given = pipe
    if through_a_link:
        given = tmp_path / "link.avi"
        given.symlink_to(pipe)
    dest = next(a.dest for a in tagged(parser, "reads") if name_of(a) == read)
    argv = command(parser, {read if read.startswith("-") else dest: given})
    code = importlib.import_module(script).main(argv)
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 1 and len(errors) == 1, errors
    assert "is not a regular file" in errors[0] and str(given) in errors[0]
