"""classify_image.py with the real ImageNet label files and the stand-in graph."""

import re
import shutil
import sys

from conftest import PROJECT, run_script

sys.path.insert(0, str(PROJECT))
from tests.standins import write_inception_files  # noqa: E402

LINE = re.compile(r"^(.+) \(score = (\d\.\d{5})\)$", re.MULTILINE)


def real_names(imagenet):
    wnids = re.findall(r'target_class_string: "(n\d+)"',
                       (imagenet / "imagenet_2012_challenge_label_map_proto.pbtxt").read_text())
    human = dict(line.split("\t", 1) for line in
                 (imagenet / "imagenet_synset_to_human_label_map.txt").read_text().splitlines())
    return {human[wnid] for wnid in wnids}


def test_real_images_get_names_from_the_real_label_map(shared_data, tmp_path):
    imagenet = shared_data / "imagenet"
    write_inception_files(tmp_path)
    for name in ("imagenet_2012_challenge_label_map_proto.pbtxt",
                 "imagenet_synset_to_human_label_map.txt"):
        shutil.copy(imagenet / name, tmp_path / name)
    images = [shared_data / "images" / "inception_example.jpg",
              shared_data / "images" / "laska.png"]
    result = run_script(PROJECT / "classify_image.py", "--model_dir", tmp_path,
                        "--image_file", *images)
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    lines = LINE.findall(result.stdout)
    assert len(lines) == 10
    names = real_names(imagenet)
    assert len(names) == 999  # 1000 classes; "crane" names both the bird and the machine
    assert all(name in names or name.startswith("unknown (id ") for name, _ in lines)
    assert sum(name in names for name, _ in lines) >= 8  # ids 1..1000 carry real names
