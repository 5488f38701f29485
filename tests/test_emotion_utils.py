"""EmotionUtils: both CSV layouts, the book's split, the safe cache, malformed rows."""

import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

import EmotionUtils
from conftest import (face_set, pixel_string, write_book_layout, write_face_csv,
                      write_fer_layout)
from book_support import emotion_cache, emotion_csv
from book_support.plumbing import UserError


def test_book_layout_shapes_and_split(tmp_path):
    data = EmotionUtils.read_data(write_book_layout(tmp_path), verbose=False)
    train_images, train_labels, valid_images, valid_labels, test_images = data
    assert train_images.shape == (180, 48, 48, 1) and valid_images.shape == (20, 48, 48, 1)
    assert train_labels.shape == (180, 7) and valid_labels.shape == (20, 7)
    assert test_images.shape == (60, 48, 48, 1) and data.test_labels.shape == (60, 7)
    assert train_images.dtype == np.float32 and 0 <= train_images.min() <= train_images.max() <= 1
    assert np.all(train_labels.sum(axis=1) == 1)
    assert data[4] is data.test_images and len(data) == 5  # the book indexes images[0..4]


def test_split_is_the_books_seed_0_permutation(tmp_path):
    write_book_layout(tmp_path)
    faces, labels = face_set(200, 0)
    data = EmotionUtils.read_data(tmp_path, verbose=False)
    order = np.random.RandomState(0).permutation(200)
    np.testing.assert_array_equal(np.argmax(data.valid_labels, 1), labels[order[:20]])
    np.testing.assert_allclose(data.train_images[0, :, :, 0], faces[order[20]] / 255.0, atol=1e-6)
    again = EmotionUtils.read_data(tmp_path, force=True, verbose=False)
    np.testing.assert_array_equal(again.train_images, data.train_images)


def test_book_test_csv_without_labels(tmp_path):
    write_book_layout(tmp_path, test_labels=False)
    data = EmotionUtils.read_data(tmp_path, verbose=False)
    assert data.test_labels is None and data.test_images.shape == (60, 48, 48, 1)


def test_fer2013_layout_uses_training_and_public_test(tmp_path):
    write_fer_layout(tmp_path, counts=(120, 30, 20))
    data = EmotionUtils.read_data(tmp_path, verbose=False)
    assert len(data.train_images) + len(data.valid_images) == 120
    assert len(data.valid_images) == 12
    assert data.test_images.shape == (30, 48, 48, 1)
    faces, labels = face_set(170, 0)
    np.testing.assert_array_equal(np.argmax(data.test_labels, 1), labels[120:150])


def test_header_spelling_quotes_and_crlf_are_accepted(tmp_path):
    faces, labels = face_set(30, 3)
    write_face_csv(tmp_path / "fer2013.csv", faces, labels, ["Training"] * 30,
                   header=' emotion , "pixels" , Usage', quote=True, newline="\r\n")
    table = EmotionUtils.read_face_csv(tmp_path / "fer2013.csv")
    np.testing.assert_array_equal(table.pixels, faces)
    np.testing.assert_array_equal(table.labels, labels)
    assert table.usage == ["Training"] * 30


def test_malformed_rows_are_skipped_with_their_line_numbers(tmp_path):
    faces, labels = face_set(6, 5)
    good = [f"{labels[i]},{pixel_string(faces[i])}" for i in range(6)]
    bad = ["9," + pixel_string(faces[0]),                          # line 3: label
           "1," + pixel_string(faces[0]).rsplit(" ", 1)[0],        # line 5: 2303 pixels
           "2," + pixel_string(faces[0]).replace("0", "x", 1),     # line 7: not a number
           "3," + pixel_string(faces[0]) + ",extra",               # line 9: columns
           "4," + pixel_string(faces[0]).replace(" ", " 300 ", 1)[:-4]]  # line 11: > 255
    lines = ["Emotion,Pixels"]
    for i in range(5):
        lines += [good[i], bad[i]]
    lines += [good[5], ""]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    warnings = []
    table = EmotionUtils.read_face_csv(tmp_path / "train.csv", warnings.append)
    np.testing.assert_array_equal(table.labels, labels)
    np.testing.assert_array_equal(table.pixels, faces)
    assert [w.split(" line ")[1].split(":")[0] for w in warnings] == ["3", "5", "7", "9", "11"]
    assert "emotion '9' is not a label 0..6" in warnings[0]
    assert "2303 pixel values instead of 2304" in warnings[1]
    assert "not a whole number" in warnings[2]
    assert "3 columns instead of 2" in warnings[3]
    assert "outside 0..255" in warnings[4]


def write_mixed_fer_csv(path, rows=40):
    """FER2013 columns, CRLF, a blank line, and a malformed row in each half of the file."""
    faces, labels = face_set(rows, 8)
    lines = ["emotion,pixels,Usage"]
    for i in range(rows):
        usage = "Training" if i % 3 else "PublicTest"
        lines.append(f"{labels[i]},{pixel_string(faces[i])},{usage}")
        if i in (5, 30):
            lines.append(f"7,{pixel_string(faces[i])},Training")  # label out of range
        if i == 20:
            lines.append("")
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def test_a_big_mixed_file_keeps_every_good_row_and_names_each_bad_line(tmp_path):
    path = write_mixed_fer_csv(tmp_path / "fer2013.csv")
    warnings = []
    table = EmotionUtils.read_face_csv(path, warnings.append)
    assert len(table.usage) == len(table.labels) == len(table.pixels) == 40
    assert [w.split(" line ")[1].split(":")[0] for w in warnings] == ["8", "35"]


def test_a_file_without_labels(tmp_path):
    faces, _ = face_set(30, 9)
    write_face_csv(tmp_path / "test.csv", faces)
    table = EmotionUtils.read_face_csv(tmp_path / "test.csv")
    np.testing.assert_array_equal(table.pixels, faces)
    assert table.labels is None


def test_a_file_without_usable_rows_or_pixels_is_an_error(tmp_path):
    (tmp_path / "train.csv").write_text("Emotion,Pixels\n1,2 3\n")
    with pytest.raises(UserError, match="no usable rows"):
        EmotionUtils.read_face_csv(tmp_path / "train.csv", lambda message: None)
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="no Pixels column"):
        EmotionUtils.read_face_csv(tmp_path / "other.csv")


def test_missing_data_names_what_to_put_where(tmp_path):
    with pytest.raises(UserError, match="train.csv and test.csv"):
        EmotionUtils.read_data(tmp_path)
    write_book_layout(tmp_path)
    os.remove(tmp_path / "test.csv")
    with pytest.raises(UserError, match="test.csv is missing"):
        EmotionUtils.read_data(tmp_path)


def test_the_cache_is_reused_and_rebuilt_when_a_csv_changes(tmp_path, monkeypatch):
    write_book_layout(tmp_path)
    first = EmotionUtils.read_data(tmp_path, verbose=False)
    assert (tmp_path / emotion_cache.CACHE_NAME).exists()
    real_reader = EmotionUtils.read_face_csv

    def no_parsing(*args, **kwargs):
        raise AssertionError("the CSV was parsed although the cache is fresh")
    monkeypatch.setattr(EmotionUtils, "read_face_csv", no_parsing)
    cached = EmotionUtils.read_data(tmp_path, verbose=False)
    np.testing.assert_array_equal(cached.train_images, first.train_images)

    monkeypatch.setattr(EmotionUtils, "read_face_csv", real_reader)
    faces, labels = face_set(100, 9)
    write_face_csv(tmp_path / "train.csv", faces, labels)
    rebuilt = EmotionUtils.read_data(tmp_path, verbose=False)
    assert len(rebuilt.train_images) == 90


class Planted:
    """Unpickling this creates a marker file: proof that a pickle was loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_pickle_is_never_loaded(tmp_path):
    write_book_layout(tmp_path)
    marker = tmp_path / "pickle-was-loaded"
    for name in (emotion_cache.CACHE_NAME, "EmotionDetectorData.pickle"):
        with open(tmp_path / name, "wb") as stream:
            pickle.dump({"train_images": Planted(str(marker))}, stream)
    data = EmotionUtils.read_data(tmp_path, verbose=False)
    assert not marker.exists()
    assert data.train_images.shape == (180, 48, 48, 1)
    with np.load(tmp_path / emotion_cache.CACHE_NAME, allow_pickle=False) as cache:
        assert "train_pixels" in cache.files  # replaced by a real cache


def test_a_cache_that_cannot_be_written_only_warns(tmp_path, capsys):
    write_book_layout(tmp_path)
    (tmp_path / emotion_cache.CACHE_NAME).mkdir()  # unwritable for any user, root included
    data = EmotionUtils.read_data(tmp_path, verbose=False)
    assert len(data.train_images) == 180
    assert "could not write the cache" in capsys.readouterr().err


def test_book_lines_and_test_result(capsys):
    assert EmotionUtils.format_emotions([0.001, 0, 0.02, 0.9, 0.05, 0.026, 0.003]).splitlines() \
        == ["anger = 0.1%", "disgust = 0.0%", "fear = 2.0%", "happy = 90.0%", "sad = 5.0%",
            "surprise = 2.6%", "neutral = 0.3%"]
    tResult = EmotionUtils.testResult()
    for label in [3, 3, 3, 4]:
        tResult.evaluate(label)
    assert tResult.happy == 3 and tResult.sad == 1 and tResult.anger == 0
    tResult.display_result(4)
    out = capsys.readouterr().out.splitlines()
    assert out[3] == "happy = 75.0%" and out[4] == "sad = 25.0%" and len(out) == 7


def test_show_data_prints_the_books_shapes_and_saves_the_first_image(tmp_path, capsys):
    write_book_layout(tmp_path / "data")
    assert EmotionUtils.main(["--data_dir", str(tmp_path / "data"),
                              "--save", str(tmp_path / "first.png")]) == 0
    out = capsys.readouterr().out
    assert "train images shape =  (180, 48, 48, 1)" in out
    assert "image_0 shape =  (48, 48, 1)" in out and "label set =  [" in out
    assert (tmp_path / "first.png").read_bytes()[:4] == b"\x89PNG"


def test_a_truncated_cache_is_rebuilt(tmp_path, capsys):
    write_book_layout(tmp_path, train_count=40, test_count=10)
    EmotionUtils.read_data(tmp_path)
    cache = tmp_path / emotion_cache.CACHE_NAME
    cache.write_bytes(cache.read_bytes()[:200])  # a copy cut short, or a full disk
    data = EmotionUtils.read_data(tmp_path)
    assert len(data.train_images) + len(data.valid_images) == 40
    assert len(cache.read_bytes()) > 200  # written again, whole


@pytest.mark.parametrize("header, message", [("emotion,pixels", "has no Usage column"),
                                             ("pixels,Usage", "has no Emotion column")])
def test_fer2013_without_its_usage_or_emotion_column_is_one_line(tmp_path, header, message):
    faces, labels = face_set(30, 0)
    has_labels, has_usage = "emotion" in header, "Usage" in header
    write_face_csv(tmp_path / "fer2013.csv", faces, labels if has_labels else None,
                   ["Training"] * 30 if has_usage else None, header=header)
    with pytest.raises(UserError, match=message):
        EmotionUtils.read_data(tmp_path)


def test_too_few_faces_for_a_validation_set_is_one_line(tmp_path):
    write_book_layout(tmp_path, train_count=9, test_count=5)
    with pytest.raises(UserError, match="9 training faces .* at least 10 are needed"):
        EmotionUtils.read_data(tmp_path)


def test_read_data_prints_in_the_books_order(tmp_path, capsys):
    write_book_layout(tmp_path, train_count=40, test_count=10)
    EmotionUtils.read_data(tmp_path)
    assert capsys.readouterr().out.splitlines() == [
        "Reading train.csv ...", "(40, 48, 48, 1)", "(40, 7)", "Reading test.csv ...",
        "Picking ..."]
    EmotionUtils.read_data(tmp_path)  # from the cache: the shapes alone
    assert capsys.readouterr().out.splitlines() == ["(40, 48, 48, 1)", "(40, 7)"]


# --------------------------------------------------------------------------------------------
# The face files as they come: .csv.gz, and Kaggle's fer2013.tar.gz
# --------------------------------------------------------------------------------------------

def gzipped(path):
    """`path` as the .gz beside it, the .csv gone."""
    target = path.with_name(path.name + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return target


def kaggle_tarball(csv, tarball, member="fer2013/fer2013.csv"):
    """Kaggle's fer2013.tar.gz: fer2013/fer2013.csv between a README and a .bib; the .csv gone."""
    with tarfile.open(tarball, "w:gz") as archive:
        for name, data in (("fer2013/README", b"the README"), (member, csv.read_bytes()),
                           ("fer2013/fer2013.bib", b"@article{}")):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    csv.unlink()
    return tarball


def assert_same_data(one, other):
    assert one.test_labels is not None and other.test_labels is not None
    for a, b in zip([*one, one.test_labels], [*other, other.test_labels]):
        np.testing.assert_array_equal(a, b)


def test_gzipped_book_csvs_are_read_as_the_csvs_and_cached_the_same(tmp_path, monkeypatch):
    plain = EmotionUtils.read_data(write_book_layout(tmp_path / "plain"), verbose=False)
    folder = write_book_layout(tmp_path / "gz")
    for name in ("train.csv", "test.csv"):
        gzipped(folder / name)
    assert_same_data(EmotionUtils.read_data(folder, verbose=False), plain)
    assert sorted(os.listdir(folder)) == [emotion_cache.CACHE_NAME, "test.csv.gz",
                                          "train.csv.gz"]  # nothing unpacked
    real_reader = EmotionUtils.read_face_csv
    monkeypatch.setattr(EmotionUtils, "read_face_csv", None)  # the cache, or a TypeError
    assert_same_data(EmotionUtils.read_data(folder, verbose=False), plain)
    monkeypatch.setattr(EmotionUtils, "read_face_csv", real_reader)
    faces, labels = face_set(100, 9)
    gzipped(write_face_csv(folder / "train.csv", faces, labels))
    assert len(EmotionUtils.read_data(folder, verbose=False).train_images) == 90


def test_fer2013_gzipped_or_in_kaggles_tarball_is_read_as_its_csv(tmp_path):
    plain = EmotionUtils.read_data(write_fer_layout(tmp_path / "plain"), verbose=False)
    gz = write_fer_layout(tmp_path / "gz")
    gzipped(gz / "fer2013.csv")
    assert_same_data(EmotionUtils.read_data(gz, verbose=False), plain)
    tarred = write_fer_layout(tmp_path / "tar")
    kaggle_tarball(tarred / "fer2013.csv", tarred / "fer2013.tar.gz")
    assert_same_data(EmotionUtils.read_data(tarred, verbose=False), plain)
    assert sorted(os.listdir(tarred)) == [emotion_cache.CACHE_NAME, "fer2013.tar.gz"]


def test_a_gzipped_file_read_in_small_pieces_keeps_every_row_and_each_bad_lines_number(
        tmp_path, monkeypatch):
    """Pieces cut mid-row, around blank lines and CRLFs: the rows and the warnings' line
    numbers are those of the file read whole."""
    whole_warnings = []
    read_whole = EmotionUtils.read_face_csv(write_mixed_fer_csv(tmp_path / "fer2013.csv"),
                                            whole_warnings.append)
    (tmp_path / "pieces").mkdir()
    piece = write_mixed_fer_csv(tmp_path / "pieces" / "fer2013.csv")
    monkeypatch.setattr(emotion_csv, "CHUNK_BYTES", 1000)  # a row is about 9 kB
    warnings = []
    table = EmotionUtils.read_face_csv(gzipped(piece), warnings.append)
    np.testing.assert_array_equal(table.pixels, read_whole.pixels)
    np.testing.assert_array_equal(table.labels, read_whole.labels)
    assert table.usage == read_whole.usage and len(table.usage) == 40
    assert [w.split(" line ")[1] for w in warnings] == [
        w.split(" line ")[1] for w in whole_warnings] and len(warnings) == 2
    assert str(tmp_path / "pieces" / "fer2013.csv.gz") in warnings[0]


def damaged_gzip(path):
    data = bytearray(gzip.compress(path.read_bytes()))
    data[len(data) // 2:len(data) // 2 + 20] = bytes(20)
    return bytes(data)


@pytest.mark.parametrize("damage, message", [
    (lambda csv: gzip.compress(csv.read_bytes())[:-200], "is truncated"),
    (lambda csv: csv.read_bytes(), "is not a readable gzip file (Not a gzipped file"),
    (damaged_gzip, "is not a readable gzip file")])
def test_a_cut_short_damaged_or_not_gzip_file_is_one_line(tmp_path, capsys, damage, message):
    data = write_book_layout(tmp_path / "data")
    (data / "train.csv.gz").write_bytes(damage(data / "train.csv"))
    (data / "train.csv").unlink()
    assert EmotionUtils.main(["--data-dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{data / 'train.csv.gz'} {message}" in err
    assert not (data / emotion_cache.CACHE_NAME).exists()


def test_a_tarball_without_fer2013_csv_or_cut_short_is_one_line(tmp_path, capsys):
    data = write_fer_layout(tmp_path / "data")
    kaggle_tarball(data / "fer2013.csv", data / "fer2013.tar.gz", "fer2013/faces.csv")
    assert EmotionUtils.main(["--data-dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no fer2013.csv" in err
    assert "fer2013/README, fer2013/faces.csv, fer2013/fer2013.bib" in err
    write_fer_layout(data)
    kaggle_tarball(data / "fer2013.csv", data / "fer2013.tar.gz")
    whole = (data / "fer2013.tar.gz").read_bytes()
    (data / "fer2013.tar.gz").write_bytes(whole[:len(whole) // 2])
    assert EmotionUtils.main(["--data-dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fer2013.tar.gz is not a readable .tar.gz archive" in err
    assert sorted(os.listdir(data)) == ["fer2013.tar.gz"]


def test_a_tarball_member_that_would_land_outside_is_never_written(tmp_path):
    """The member is read from the archive, never extracted: a link or a path that climbs
    out of the folder writes nothing anywhere."""
    data = write_fer_layout(tmp_path / "data")
    csv = (data / "fer2013.csv").read_bytes()
    with tarfile.open(data / "fer2013.tar.gz", "w:gz") as archive:
        for name, kind in (("../../escaped", tarfile.REGTYPE), ("fer2013/fer2013.csv",
                                                                  tarfile.SYMTYPE)):
            member = tarfile.TarInfo(name)
            member.type, member.linkname = kind, "/etc/passwd"
            member.size = len(csv) if kind == tarfile.REGTYPE else 0
            archive.addfile(member, io.BytesIO(csv) if kind == tarfile.REGTYPE else None)
    (data / "fer2013.csv").unlink()
    with pytest.raises(UserError, match="holds no fer2013.csv"):
        EmotionUtils.read_data(data, verbose=False)
    assert not (tmp_path / "escaped").exists() and not tmp_path.parent.joinpath(
        "escaped").exists()
    assert sorted(os.listdir(data)) == ["fer2013.tar.gz"]


def test_no_face_data_names_what_the_folder_holds_and_what_is_looked_for(tmp_path):
    for name in ("notes.txt", "faces.zip", "Train.CSV", "a.csv", "b.csv", ".hidden"):
        (tmp_path / name).write_text("x")
    with pytest.raises(UserError) as error:
        EmotionUtils.read_data(tmp_path)
    message = str(error.value)
    assert f"no face data in {tmp_path} (it holds Train.CSV, a.csv, b.csv, faces.zip and 1 " \
           f"more)" in message and ".hidden" not in message
    assert all(name in message for name in ("train.csv", "test.csv", "fer2013.csv", ".csv.gz",
                                            "fer2013.tar.gz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"\(it is empty\)"):
        EmotionUtils.read_data(tmp_path / "empty")
    with pytest.raises(UserError, match=r"\(no such folder\)"):
        EmotionUtils.read_data(tmp_path / "nowhere")
