"""Every line the README and the scripts' docstrings present as the book's is in the chapter
(../shared/book/), verbatim. A quoted block is marked by the words "(the book's):" just before
it: in the README, the next fenced block; in a docstring, the indented lines that follow."""

import ast
import re

from conftest import PROJECT

README_QUOTE = re.compile(r"\(the book's\):\s*\n\s*```[a-z]*\n(.*?)```", re.S)
DOCSTRING_QUOTE = re.compile(r"\(the book's\):\n\n((?:    .+\n)+)")


def chapter_lines(shared_data):
    book = shared_data.parent / "book"
    chapters = [path for path in book.glob("*.txt")]
    assert chapters, f"no chapter text in {book}"
    return {line.strip() for path in chapters for line in path.read_text().splitlines()}


def quoted_lines():
    """{where: [line, ...]} of every block marked as the book's."""
    quoted = {"README.md": [line for block in README_QUOTE.findall(
        (PROJECT / "README.md").read_text()) for line in block.splitlines() if line.strip()]}
    for script in sorted(PROJECT.glob("*.py")):
        docstring = (ast.get_docstring(ast.parse(script.read_text()), clean=False) or "")
        lines = [line.strip() for block in DOCSTRING_QUOTE.findall(docstring + "\n")
                 for line in block.splitlines()]
        if lines:
            quoted[script.name] = lines
    return quoted


def test_every_line_quoted_as_the_books_is_in_the_chapter(shared_data):
    chapter = chapter_lines(shared_data)
    quoted = quoted_lines()
    # The blocks this check exists for: AlexNet's scores, fine-tuning's lines, style
    # transfer's costs, the panda, the emotion validation losses; and the docstrings' copies.
    assert len(quoted["README.md"]) >= 12, quoted
    assert {"alexnet_forward.py", "style_transfer.py", "classify_image.py"} <= set(quoted)
    missing = {where: [line for line in lines if line.strip() not in chapter]
               for where, lines in quoted.items()}
    assert not any(missing.values()), missing


def test_the_figures_once_misquoted_are_quoted_as_the_chapter_prints_them(shared_data):
    chapter = chapter_lines(shared_data)
    readme = (PROJECT / "README.md").read_text()
    for line in ("weasel 0.503177", "iteration: 0 cost:  8.14037e+11",
                 "iteration: 100 cost:  1.65584e+10", "Testing Accuracy = 82%"):
        assert line in chapter and line in readme
    for wrong in ("weasel 0.503629", "7.45494e+11", "8.24306e+09", "alexnet_fine_tune.py",
                  "lenet5.py", "plot_results.py"):
        assert wrong not in readme, wrong
