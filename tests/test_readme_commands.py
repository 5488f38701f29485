"""The reader's path: every command the README and the scripts' docstrings show, run as typed.

Each runs from a fresh folder that holds the project's files and, where data/README.md puts
them, stand-ins for what a reader downloads or places by hand (in the real formats), with the
default output folders. Only documented options are added, and only to keep the work small:
SMALLER below. The commands are read from the README's code blocks and the docstrings, so a
command added there is run here; one that fails is a failure of the README.
"""

import ast
import re
import shlex
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import (PROJECT, run_process, run_script, write_book_layout, write_fer_layout,
                      write_mnist)
from tests.standins import (alexnet_weights, caffe_classes_text, vgg19_weights,
                            write_inception_files, write_py2_alexnet_npy, write_vgg_mat)

pytestmark = pytest.mark.reader

# Documented options that keep each command small on stand-in data; an option given twice
# takes its last value, so these win over the command's own.
SMALLER = {
    "lenet_mnist.py": ["--epochs", "2"],
    "emotion_cnn.py": ["--iterations", "30", "--eval-every", "10"],
    "alexnet_finetune.py": ["--iterations", "3", "--batch-size", "8"],
    "style_transfer.py": ["--size", "32", "--iterations", "4"],
}
PHOTOS = ("cat.jpg", "mosaic.jpg", "me.jpg", "me.png", "a.jpg", "b.jpg", "dog.png",
          "astronaut.png", "author_img.jpg", "author_image.jpg", "astronaut_and_author.png")
VIDEOS = ("party.mp4",)


def commands_in(text):
    """The `python ...` command lines of a text's code blocks or indented examples, with
    continuation lines joined and comments dropped."""
    commands, pending = [], ""
    for line in text.splitlines():
        line = pending + line.strip().removeprefix("$ ")
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if re.match(r"python \S+\.py\b", line):
            commands.append(line.split(" #")[0].strip())
    return commands


def readme_commands():
    blocks = re.findall(r"```[a-z]*\n(.*?)```", (PROJECT / "README.md").read_text(), re.S)
    return commands_in("\n".join(blocks))


def docstring_commands():
    found = {}
    for script in sorted(PROJECT.glob("*.py")):
        docstring = ast.get_docstring(ast.parse(script.read_text())) or ""
        for command in commands_in(docstring):
            found.setdefault(command, script.name)
    return list(found)


def photo(path, seed):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    pixels[15:45, 25:55] = rng.integers(0, 256, 3, dtype=np.uint8)  # a patch to look at
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def fresh_folder(root):
    """A clone's files, and stand-ins where data/README.md says a reader's files go."""
    root.mkdir()
    for source in PROJECT.glob("*.py"):
        shutil.copy(source, root)
    shutil.copytree(PROJECT / "book_support", root / "book_support",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROJECT / "docs", root / "docs")
    shutil.copy(PROJECT / ".gitignore", root)
    data = root / "data"
    write_mnist(data / "MNIST-data", train_count=5300, test_count=300)
    weights = alexnet_weights()
    (data / "alexnet").mkdir()
    write_py2_alexnet_npy(data / "alexnet" / "bvlc_alexnet.npy", weights)
    (data / "alexnet" / "caffe_classes.py").write_text(
        caffe_classes_text([f"class {i}, thing {i}" for i in range(1000)]))
    for seed, name in enumerate(("laska.png", "poodle.png")):
        photo(data / "alexnet" / name, seed)
    (data / "vgg").mkdir()
    write_vgg_mat(data / "vgg" / "imagenet-vgg-verydeep-19.mat", vgg19_weights())
    write_inception_files(data / "inception")
    write_book_layout(data / "EmotionDetector")
    write_fer_layout(data / "fer2013")
    for number in range(60):  # Kaggle's 25,000 in miniature: more than the 100 set aside
        for seed, animal in enumerate(("cat", "dog")):
            photo(data / "dogs-vs-cats" / "train" / f"{animal}.{number}.jpg", 10 * number + seed)
    for seed, name in enumerate(PHOTOS):
        photo(root / name, 100 + seed)
    for name in VIDEOS:
        video(root / name)
    return root


def video(path, frames=12):
    import cv2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (80, 60))
    rng = np.random.default_rng(7)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    writer.release()


def as_run_here(command):
    """The command's words after `python`, with SMALLER's options added."""
    words = shlex.split(command)
    script = words[1]
    extra = [] if "--mode" in words or "--list-layers" in words else SMALLER.get(script, [])
    if "--train-count" in words:  # the chapter's 6,000, from 120 stand-in photos
        extra = ["--train-count", "10"]
    return [*words[1:], *extra]


def run_in(folder, command, new_process=False):
    """Run `command` from `folder`: its script's main() in this process, or, `new_process`,
    as typed in a new Python interpreter."""
    words = as_run_here(command)
    if new_process:
        result = run_process(*words, cwd=folder)
    else:
        result = run_script(*words, cwd=folder)
    assert "Traceback" not in result.stderr, (command, result.stderr[-3000:])
    if "--camera" in command and "no camera at index" in result.stderr:
        return result  # no webcam on a test machine: the reader's one line is what it can check
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="session")
def fresh_folder_once(tmp_path_factory):
    return fresh_folder(tmp_path_factory.mktemp("fresh") / "clone")


def test_the_readme_shows_the_commands_this_test_runs():
    commands = readme_commands()
    scripts = {shlex.split(command)[1] for command in commands}
    assert {"lenet_mnist.py", "alexnet_forward.py", "alexnet_finetune.py", "prep_images.py",
            "style_transfer.py", "classify_image.py", "emotion_cnn.py", "emotion_test.py",
            "EmotionUtils.py"} <= scripts
    assert "python alexnet_forward.py laska.png poodle.png" in commands
    assert "python alexnet_finetune.py" in commands


def git(folder, *words):
    return subprocess.run(["git", *words], cwd=folder, capture_output=True, text=True,
                          check=True).stdout


def regenerated_pictures():
    """The docs/ files that README commands marked `# regenerates ...` write."""
    joined = re.sub(r"\\\n\s*", " ", (PROJECT / "README.md").read_text())  # continued lines
    return sorted({path for line in joined.splitlines()
                   if re.match(r"(\$ )?python ", line) and "# regenerates" in line
                   for path in re.findall(r"docs/[\w.-]+\.png", line.split(" #")[0])})


def make_run_command():
    """What `make run` types after installing: the Makefile's run recipe with its ARGS."""
    makefile = (PROJECT / "Makefile").read_text()
    recipe = re.search(r"^run:.*\n(?:\t.*\n)*?\t\$\(BIN\)/(python lenet_mnist\.py) \$\(ARGS\)$",
                       makefile, re.M)
    args = re.search(r"^ARGS \?= (.*)$", makefile, re.M)
    assert recipe and args, "the Makefile's run target is not `python lenet_mnist.py $(ARGS)`"
    return f"{recipe.group(1)} {args.group(1)}".strip()


def test_every_readme_command_runs_as_typed_in_a_fresh_folder(fresh_folder_once, tmp_path):
    """`make run` first, as the README's set-up says; then in the README's order, one after
    the other in one folder: each script's first command in a new interpreter as typed, the
    rest in this process."""
    folder = shutil.copytree(fresh_folder_once, tmp_path / "clone")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "-c", "user.name=reader", "-c", "user.email=reader@example.org", "commit",
        "-qm", "the clone, with the reader's photos beside it")
    run_in(folder, make_run_command())
    launched = set()
    for command in readme_commands():
        script = shlex.split(command)[1]
        run_in(folder, command, new_process=script not in launched)
        launched.add(script)
    # What the commands wrote is ignored by git, and only the commands that say they
    # regenerate a picture of docs/ change one.
    changed = git(folder, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(line[3:] for line in changed) == sorted(regenerated_pictures()), \
        "\n".join(changed)
    assert (folder / "checkpoints" / "alexnet_finetune").is_dir()  # the default, made
    assert (folder / "out" / "final.png").is_file()


def test_every_docstring_command_runs_as_typed_in_a_fresh_folder(fresh_folder_once, tmp_path):
    """The docstrings' commands as a sequence of their own (emotion_test.py's reads what
    emotion_cnn.py's trained), in this process: the test above launched each script."""
    folder = shutil.copytree(fresh_folder_once, tmp_path / "clone")
    for command in docstring_commands():
        run_in(folder, command)
