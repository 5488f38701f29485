"""classify_image.py on a stand-in of the 2015 Inception graph and tarball."""

import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import classify_image
from book_support import downloads
from book_support import gradcam
from book_support import inception_cam
from book_support import inception_files
from book_support import tf_setup
from conftest import PROJECT, run_script
from tests.standins import (DEFAULT_LABELS, inception_graph_def, numpy_inception,
                            pack_inception_tarball, tiny_jpeg, write_inception_files)

LINE = re.compile(r"^(.+) \(score = (\d\.\d{5})\)$", re.MULTILINE)
PANDA = DEFAULT_LABELS[169][1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("inception")
    write_inception_files(directory)
    return directory


def classify(*args):
    return run_script(PROJECT / "classify_image.py", *args)


def test_labels_are_read_in_the_tutorials_layout(model_dir):
    lookup = classify_image.NodeLookup(model_dir / inception_files.LABEL_MAP_FILE,
                                       model_dir / inception_files.SYNSET_FILE)
    assert lookup.id_to_string(449) == "tench, Tinca tinca"
    assert lookup.id_to_string(169) == PANDA
    assert lookup.id_to_string(0) == "unknown (id 0)"
    assert lookup.id_to_string(1005) == "unknown (id 1005)"


@pytest.mark.parametrize("newline, final_newline", [("\r\n", True), ("\n", False),
                                                    ("\r\n", False)])
def test_labels_survive_crlf_and_a_missing_final_newline(tmp_path, newline, final_newline):
    write_inception_files(tmp_path, newline=newline, final_newline=final_newline)
    lookup = classify_image.NodeLookup(tmp_path / inception_files.LABEL_MAP_FILE,
                                       tmp_path / inception_files.SYNSET_FILE)
    assert lookup.id_to_string(449) == "tench, Tinca tinca"
    assert lookup.id_to_string(1) == "kit fox, Vulpes macrotis"


def test_labels_survive_blank_lines(tmp_path):
    write_inception_files(tmp_path)
    for name in (inception_files.LABEL_MAP_FILE, inception_files.SYNSET_FILE):
        path = tmp_path / name
        path.write_text("\n\n" + path.read_text().replace("\n", "\n\n"))
    lookup = classify_image.NodeLookup(tmp_path / inception_files.LABEL_MAP_FILE,
                                       tmp_path / inception_files.SYNSET_FILE)
    assert lookup.id_to_string(450) == "goldfish, Carassius auratus"


def test_the_panda_is_classified_with_the_tutorials_lines(model_dir):
    result = classify("--model_dir", model_dir)
    assert result.returncode == 0, result.stderr
    lines = LINE.findall(result.stdout)
    assert len(lines) == 5 and result.stdout.count("\n") == 5
    scores = [float(score) for _, score in lines]
    assert scores == sorted(scores, reverse=True)
    assert {PANDA, "tench, Tinca tinca"} & {name for name, _ in lines}
    assert "BatchNormWithGlobalNormalization" in result.stderr  # explained once
    assert result.stderr.count("BatchNormWithGlobalNormalization") == 1
    assert "Traceback" not in result.stderr


def test_forward_pass_matches_numpy(tmp_path):
    graph_def, weights = inception_graph_def(channels=6, seed=3)
    (tmp_path / "g.pb").write_bytes(graph_def.SerializeToString())
    graph = classify_image.create_graph(tmp_path / "g.pb")
    with tf_setup.new_session(graph) as session:
        for colour in [(200, 30, 60), (10, 240, 128), (128, 128, 128)]:
            data = tiny_jpeg(colour, size=(64, 48))
            decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[10, 10]
            scores, features, _ = classify_image.run_inference_on_image(session, data)
            expected_scores, expected_features = numpy_inception(weights, decoded)
            assert scores.shape == (1008,) and features.shape == (6,)
            # float32 AvgPool sums 149x149 values: agreement to about 1e-4 relative
            np.testing.assert_allclose(features, expected_features, rtol=2e-3, atol=1e-5)
            np.testing.assert_allclose(scores, expected_scores, rtol=2e-3, atol=1e-7)
            assert np.argmax(scores) == np.argmax(expected_scores)


def image_of_kind(tmp_path, kind):
    picture = Image.new("RGB", (40, 30), (200, 120, 40))
    path = tmp_path / f"picture.{kind}"
    if kind == "cmyk.jpg":
        picture.convert("CMYK").save(path, format="JPEG")
    elif kind == "gray.jpg":
        picture.convert("L").save(path, format="JPEG")
    elif kind == "rgba.png":
        picture.convert("RGBA").save(path)
    elif kind == "p.gif":
        picture.convert("P").save(path)
    elif kind == "rotated.jpg":
        exif = Image.Exif()
        exif[0x0112] = 6
        picture.save(path, exif=exif)
    else:
        picture.save(path)
    return path


@pytest.mark.parametrize("kind", ["png", "gif", "bmp", "webp", "cmyk.jpg", "gray.jpg",
                                  "rgba.png", "p.gif", "rotated.jpg", "jpg"])
def test_every_image_kind_becomes_a_jpeg_the_graph_decodes(tmp_path, model_dir, kind):
    path = image_of_kind(tmp_path, kind)
    data = inception_files.jpeg_bytes(path)
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.format == "JPEG" and decoded.mode in ("RGB", "L")
        assert decoded.size == ((30, 40) if kind == "rotated.jpg" else (40, 30))
    if kind in ("jpg", "gray.jpg"):
        assert data == path.read_bytes()  # a plain JPEG goes in untouched, as in the tutorial


def test_several_images_a_text_file_and_bottlenecks(tmp_path, model_dir):
    png, gif = image_of_kind(tmp_path, "png"), image_of_kind(tmp_path, "webp")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    result = classify("--model_dir", model_dir, "--image_file", png, notes,
                      "--image_file", gif, "--num_top_predictions", "3",
                      "--bottleneck", tmp_path / "features")
    assert result.returncode == 1  # one image failed; the others ran
    assert f"{png}:" in result.stdout and f"{gif}:" in result.stdout
    assert len(LINE.findall(result.stdout)) == 6
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "notes.txt is not an image" in errors[0]
    saved = sorted(p.name for p in (tmp_path / "features").iterdir())
    assert saved == ["picture_png.npy", "picture_webp.npy"]
    assert np.load(tmp_path / "features" / "picture_png.npy").shape == (4,)
    again = classify("--model_dir", model_dir, "--image_file", png, "--bottleneck",
                     tmp_path / "features")
    assert again.returncode == 0, again.stderr  # a cache: the same image replaces its file
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == saved


def test_the_books_image_flag_is_accepted(tmp_path, model_dir):
    jpg = image_of_kind(tmp_path, "jpg")
    result = classify(f"--model_dir={model_dir}", f"--image={jpg}")
    assert result.returncode == 0 and len(LINE.findall(result.stdout)) == 5


def serve_tarball(tmp_path, file_server, monkeypatch):
    members = tmp_path / "members"
    write_inception_files(members)
    tarball = pack_inception_tarball(members, tmp_path / "inception.tgz")
    file_server.files["/inception.tgz"] = tarball.read_bytes()
    monkeypatch.setattr(inception_files, "INCEPTION_TARBALL", downloads.RemoteFile(
        "inception-2015-12-05.tgz", (file_server.url("/inception.tgz"),),
        size=tarball.stat().st_size))
    pin_members_of(members, monkeypatch)
    return tarball


def pin_members_of(members, monkeypatch):
    """Pin the stand-in's graph and label map, as the real ones are pinned."""
    monkeypatch.setattr(inception_files, "PINNED_MEMBERS", tuple(
        downloads.RemoteFile(name, (), (members / name).stat().st_size,
                            md5=hashlib.md5((members / name).read_bytes()).hexdigest())
        for name in (inception_files.GRAPH_FILE, inception_files.LABEL_MAP_FILE)))


def test_without_the_real_graph_the_real_pins_refuse_the_tarball(tmp_path, capsys):
    """The pins in force are the real graph's: a stand-in tarball, right in every other way,
    is refused for its graph (and its label map is never trusted either)."""
    members = tmp_path / "members"
    write_inception_files(members)
    model = tmp_path / "model"
    model.mkdir()
    pack_inception_tarball(members, model / "inception-2015-12-05.tgz")
    assert classify_image.main(["--model_dir", str(model)]) == 1
    err = capsys.readouterr().err
    assert f"holds a {inception_files.GRAPH_FILE} of" in err and "is not the 2015 graph" in err
    assert [p.name for p in model.iterdir()] == ["inception-2015-12-05.tgz"]


def test_data_readme_gives_the_pins_in_force():
    readme = (PROJECT / "data" / "README.md").read_text()
    for member in inception_files.PINNED_MEMBERS:
        assert f"{member.size:,} | md5 `{member.md5}`" in readme, member.name


def test_a_tarball_whose_graph_is_not_the_pinned_one_is_refused_and_nothing_kept(
        tmp_path, monkeypatch, capsys):
    members = tmp_path / "members"
    write_inception_files(members)
    pin_members_of(members, monkeypatch)
    (members / inception_files.GRAPH_FILE).write_bytes(
        inception_graph_def(seed=5)[0].SerializeToString())  # a graph, but another one
    model = tmp_path / "model"
    model.mkdir()
    pack_inception_tarball(members, model / "inception-2015-12-05.tgz")
    assert classify_image.main(["--model_dir", str(model)]) == 1
    err = capsys.readouterr().err
    assert "is not the 2015 graph" in err and "md5" in err
    assert [p.name for p in model.iterdir()] == ["inception-2015-12-05.tgz"]


def test_an_extraction_cut_short_leaves_nothing_a_rerun_would_trust(tmp_path, monkeypatch,
                                                                      capsys):
    members = tmp_path / "members"
    write_inception_files(members)
    pin_members_of(members, monkeypatch)
    model = tmp_path / "model"
    model.mkdir()
    pack_inception_tarball(members, model / "inception-2015-12-05.tgz")
    real_extract = downloads.extract_archive

    def cut(archive, directory, *sizes):
        (Path(directory) / inception_files.GRAPH_FILE).write_bytes(b"half a gra")
        raise KeyboardInterrupt  # Ctrl-C, a crash or a full disk half-way

    monkeypatch.setattr(downloads, "extract_archive", cut)
    assert classify_image.main(["--model_dir", str(model)]) == 130
    assert [p.name for p in model.iterdir()] == ["inception-2015-12-05.tgz"]
    monkeypatch.setattr(downloads, "extract_archive", real_extract)
    assert classify_image.main(["--model_dir", str(model)]) == 0
    assert len(LINE.findall(capsys.readouterr().out)) == 5


def test_download_check_and_extract_then_classify(tmp_path, file_server, monkeypatch, capsys):
    serve_tarball(tmp_path, file_server, monkeypatch)
    assert classify_image.main(["--model_dir", str(tmp_path / "model")]) == 0
    assert len(LINE.findall(capsys.readouterr().out)) == 5
    assert (tmp_path / "model" / "classify_image_graph_def.pb").exists()
    assert classify_image.main(["--model_dir", str(tmp_path / "model")]) == 0
    assert file_server.requests == ["/inception.tgz"]  # downloaded once


def test_a_truncated_download_is_kept_only_as_a_hidden_part(tmp_path, file_server, monkeypatch,
                                                            capsys):
    serve_tarball(tmp_path, file_server, monkeypatch)
    file_server.behaviour["/inception.tgz"] = "drop"
    assert classify_image.main(["--model_dir", str(tmp_path / "model")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "could not download inception-2015-12-05.tgz" in errors[0]
    assert [path.name for path in (tmp_path / "model").iterdir()] == [
        ".inception-2015-12-05.tgz.part"]


def test_a_download_cut_once_is_continued_in_the_same_run(tmp_path, file_server, monkeypatch,
                                                          capsys):
    serve_tarball(tmp_path, file_server, monkeypatch)
    file_server.behaviour["/inception.tgz"] = "drop-once"
    assert classify_image.main(["--model_dir", str(tmp_path / "model")]) == 0
    assert file_server.ranges[0] is None and file_server.ranges[1].startswith("bytes=")
    assert len(LINE.findall(capsys.readouterr().out)) == 5


def test_a_tarball_with_a_member_outside_the_folder_is_refused(tmp_path, capsys):
    import tarfile
    model = tmp_path / "model"
    model.mkdir()
    with tarfile.open(model / "inception-2015-12-05.tgz", "w:gz") as bundle:
        evil = tarfile.TarInfo("../escaped.pb")
        evil.size = 4
        bundle.addfile(evil, io.BytesIO(b"boom"))
    assert classify_image.main(["--model_dir", str(model)]) == 1
    assert "unsafe member: ../escaped.pb" in capsys.readouterr().err
    assert not (tmp_path / "escaped.pb").exists()


def test_a_file_that_is_not_a_graph_is_one_line(tmp_path, capsys):
    write_inception_files(tmp_path)
    (tmp_path / "classify_image_graph_def.pb").write_bytes(b"\xff\xfe garbage")
    assert classify_image.main(["--model_dir", str(tmp_path)]) == 1
    assert "is not a TensorFlow GraphDef" in capsys.readouterr().err


def test_a_truncated_tarball_on_disk_is_one_line(tmp_path, capsys):
    members = tmp_path / "members"
    write_inception_files(members)
    tarball = pack_inception_tarball(members, tmp_path / "t.tgz").read_bytes()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "inception-2015-12-05.tgz").write_bytes(tarball[:len(tarball) // 2])
    assert classify_image.main(["--model_dir", str(tmp_path / "model")]) == 1
    assert "not a readable archive" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["inception-2015-12-05.tgz"]
    assert hashlib.md5((tmp_path / "model" / "inception-2015-12-05.tgz").read_bytes()).digest() \
        == hashlib.md5(tarball[:len(tarball) // 2]).digest()  # the user's file is untouched


# --------------------------------------------------------------------------------------------
# Grad-CAM (--cam)
# --------------------------------------------------------------------------------------------

def red_detector_model(directory):
    """A stand-in whose only feature is 'red here': channel 0 of the last layer answers red
    pixels (R up, G and B down) and votes for the panda; the other channels see nothing."""
    conv = np.zeros((3, 3, 3, 4), np.float32)
    conv[:, :, 0, 0], conv[:, :, 1:, 0] = 1.0, -1.0
    overrides = {"conv/conv2d_params": conv,
                 "conv/batchnorm/moving_mean": np.zeros(4, np.float32),
                 "conv/batchnorm/moving_variance": np.ones(4, np.float32),
                 "conv/batchnorm/beta": np.zeros(4, np.float32),
                 "conv/batchnorm/gamma": np.ones(4, np.float32)}
    graph_def, _ = inception_graph_def(favourites={0: 169}, overrides=overrides)
    write_inception_files(directory, graph_def=graph_def)
    return directory


def red_patch_photo(path, box, size=(320, 240)):
    pixels = np.full((size[1], size[0], 3), 128, np.uint8)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = (250, 10, 10)
    Image.fromarray(pixels).save(path, quality=95)
    return path


def heat_of(session, graph, cam, path):
    _, _, heatmap = classify_image.run_inference_on_image(
        session, inception_files.jpeg_bytes(path), cam)
    return gradcam.upsampled(heatmap, Image.open(path).size)


def test_the_heatmap_lies_where_the_evidence_is_and_follows_it(tmp_path):
    model = red_detector_model(tmp_path / "model")
    graph = classify_image.create_graph(model / inception_files.GRAPH_FILE)
    cam = (*inception_cam.add_grad_cam(graph), None)
    boxes = {"top left": (30, 20, 110, 90), "bottom right": (210, 150, 290, 220)}
    with tf_setup.new_session(graph) as session:
        heats = {where: heat_of(session, graph, cam,
                                red_patch_photo(tmp_path / f"{where}.jpg", box))
                 for where, box in boxes.items()}
    for where, (left, top, right, bottom) in boxes.items():
        heat = heats[where]
        margin = 8  # a 149x149 map stretched to 320x240 blurs a pixel or two
        inside = heat[top - margin:bottom + margin, left - margin:right + margin].sum()
        assert inside > 0.9 * heat.sum(), (where, inside / heat.sum())
    # and it moved with the patch: each map is near zero where the other patch was
    first, second = boxes["top left"], boxes["bottom right"]
    assert heats["top left"][second[1]:second[3], second[0]:second[2]].max() < 0.05
    assert heats["bottom right"][first[1]:first[3], first[0]:first[2]].max() < 0.05


def test_cam_on_every_kind_of_image_in_one_run(tmp_path, model_dir):
    images = [image_of_kind(tmp_path, kind) for kind in ("png", "cmyk.jpg", "rotated.jpg")]
    result = classify("--model_dir", model_dir, "--image_file", *images, "--cam",
                      tmp_path / "cams", "--cam-class", "tench")
    assert result.returncode == 0, result.stderr
    saved = re.findall(r"^saved where the network looked for '(.+)' to (.+)$", result.stdout,
                       re.MULTILINE)
    assert [name for name, _ in saved] == ["tench"] * 3
    assert len(list((tmp_path / "cams").glob("picture*_cam.png"))) == 3


@pytest.mark.parametrize("option, value, words", [
    ("--cam-class", "unicorn", "--cam-class 'unicorn' names no class"),
    ("--cam", "file.txt/cams", "file.txt is a file, not a folder"),
])
def test_cam_mistakes_are_one_line(tmp_path, model_dir, capsys, option, value, words):
    (tmp_path / "file.txt").write_text("x")
    args = ["--model_dir", str(model_dir), "--cam", str(tmp_path / "cams")]
    args += [option, str(tmp_path / value) if option == "--cam" else value]
    assert classify_image.main(args) == (2 if option == "--cam" else 1)
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and words in err[0], err


def test_a_bottleneck_file_may_not_replace_an_image_it_reads(model_dir, tmp_path):
    # cat.jpg's features go to DIR/cat_jpg.npy: here that name is one of the images given.
    folder = tmp_path / "d"
    folder.mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(folder / "cat.jpg")
    Image.new("RGB", (32, 32), (10, 200, 10)).save(folder / "cat_jpg.npy", format="JPEG")
    kept = (folder / "cat_jpg.npy").read_bytes()
    result = run_script(PROJECT / "classify_image.py", "--model_dir", model_dir, "--image_file",
                        folder / "cat.jpg", folder / "cat_jpg.npy", "--bottleneck", folder)
    assert result.returncode == 2 and "outputs never replace inputs" in result.stderr
    assert (folder / "cat_jpg.npy").read_bytes() == kept
