"""emotion_cnn.py and emotion_test.py: the network, training, testing and photos of every kind."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import emotion_cnn
import emotion_test
from book_support import emotion_figure, faces, tf_setup
from book_support import emotion_report
from conftest import PROJECT, ctrl_c_when, posix_only, run_script, start_script, write_book_layout

SEVEN_LINES = re.compile(r"^(anger|disgust|fear|happy|sad|surprise|neutral) = ([0-9.]+)%$",
                         re.MULTILINE)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def net_and_session():
    net = emotion_cnn.build_graph(seed=1)
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        yield net, session


def test_parameter_count_and_the_books_names(net_and_session):
    net, _ = net_and_session
    assert tf_setup.count_weights(net.variables) == 2_380_679
    names = {v.op.name: v.get_shape().as_list() for v in net.graph.get_collection("variables")}
    assert names["W_conv1"] == [5, 5, 1, 32] and names["W_fc1"] == [9216, 256]
    assert names["Variable"] == [] and "W_conv1/Adam" in names and "beta1_power" in names
    assert net.graph.get_tensor_by_name("input:0").get_shape().as_list() == [None, 48, 48, 1]
    assert net.graph.get_tensor_by_name("output:0").get_shape().as_list() == [None, 7]


def test_inference_is_deterministic_and_training_is_not(net_and_session):
    net, session = net_and_session
    faces = np.random.default_rng(0).random((8, 48, 48, 1), dtype=np.float32)
    first = session.run(net.output_pred, {net.input_dataset: faces})
    np.testing.assert_array_equal(first, session.run(net.output_pred, {net.input_dataset: faces}))
    np.testing.assert_allclose(first.sum(axis=1), 1, rtol=1e-5)
    dropped = session.run(net.output_pred, {net.input_dataset: faces, net.keep_prob: 0.5})
    assert not np.allclose(first, dropped)


def test_validation_loss_leaves_out_the_l2_term(net_and_session):
    net, session = net_and_session
    faces = np.random.default_rng(1).random((8, 48, 48, 1), dtype=np.float32)
    labels = np.eye(7, dtype=np.float32)[np.arange(8) % 7]
    loss, _ = emotion_cnn.evaluate(session, net, faces, labels)
    with_l2 = session.run(net.loss_val, {net.input_dataset: faces, net.input_labels: labels})
    assert with_l2 > loss + 1e-3


def test_books_batches_cover_the_training_set():
    images, labels = np.arange(1000), np.arange(1000)
    seen = set()
    for step in range(8):
        batch, _ = emotion_cnn.get_next_batch(images, labels, step)
        assert len(batch) == 128
        seen.update(batch.tolist())
    assert len(seen) == 1000


def test_confusion_matrix_counts_true_against_predicted():
    labels = np.eye(7)[[0, 0, 3, 3, 3]]
    matrix = emotion_report.confusion_matrix(np.array([0, 3, 3, 3, 1]), labels)
    assert matrix[0, 0] == 1 and matrix[0, 3] == 1 and matrix[3, 3] == 2 and matrix[3, 1] == 1
    assert matrix.sum() == 5


# --------------------------------------------------------------------------------------------
# Training and testing, as a reader runs them (the trained checkpoint: conftest.book_trained)
# --------------------------------------------------------------------------------------------

def test_dry_run_prints_the_books_lines_and_writes_nothing(tmp_path):
    data = write_book_layout(tmp_path / "data", train_count=60, test_count=10)
    before = sorted(p.name for p in data.iterdir())
    result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", data, "--logs-dir",
                        tmp_path / "logs", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Training Loss:" in result.stdout and "Validation Accuracy:" in result.stdout
    assert not (tmp_path / "logs").exists()
    assert sorted(p.name for p in data.iterdir()) == sorted(before)  # not even the cache


def test_training_prints_the_books_lines_and_saves_a_checkpoint(book_trained):
    root, result = book_trained.root, book_trained.result
    for line in ("Train size: 270", "Validation size: 30", "Test size: 70",
                 "emotion CNN (book network): 2,380,679 parameters"):
        assert line in result.stdout
    assert re.search(r"^Training Loss: \d+\.\d{6}$", result.stdout, re.MULTILINE)
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ Validation Loss: \d+\.\d{6}  "
                     r"Validation Accuracy: \d\.\d{4}$", result.stdout, re.MULTILINE)
    assert (root / "logs" / "model.ckpt-2.index").exists()
    assert list((root / "logs").glob("events.out.tfevents.*"))


def test_training_ends_with_its_checkpoint_and_the_next_commands_which_run_as_typed(
        tmp_path, monkeypatch, capsys):
    import shlex
    write_book_layout(tmp_path / "faces", train_count=60, test_count=20)
    monkeypatch.chdir(tmp_path)
    assert emotion_cnn.main(["--data-dir", "faces", "--logs-dir", "my logs", "--iterations",
                             "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint: {Path('my logs', 'model.ckpt-1')}" in out
    commands = [line.split("#")[0].strip().removeprefix("next:").strip()
                for line in out[out.index("next:"):].splitlines()]
    assert commands[0] == "python emotion_cnn.py --mode test --data-dir faces --logs-dir 'my logs'"
    assert commands[1] == "python emotion_test.py PHOTO --logs-dir 'my logs'"
    assert commands[2] == "tensorboard --logdir 'my logs'"
    assert emotion_cnn.main(shlex.split(commands[0])[2:]) == 0
    photo("RGB").save(tmp_path / "me.png")
    assert emotion_test.main(shlex.split(commands[1].replace("PHOTO", "me.png"))[2:]) == 0


def test_mode_test_reports_accuracy_and_a_confusion_matrix(book_trained):
    root = book_trained.root
    result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", root / "data", "--logs-dir",
                        root / "logs", "--mode", "test")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^Test accuracy: \d\.\d{4} \(\d+/70\)", result.stdout, re.MULTILINE)
    rows = [line for line in result.stdout.splitlines()
            if re.match(r"^ +(anger|neutral)( +\d+){7}$", line)]
    assert len(rows) == 2
    assert (root / "logs" / "confusion_matrix-model.ckpt-2.png").read_bytes()[:4] == b"\x89PNG"


def test_mode_test_keeps_one_figure_per_checkpoint_and_tta_and_a_dry_run_writes_none(
        book_trained):
    def test(*extra):
        result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", book_trained.data,
                            "--logs-dir", book_trained.logs, "--mode", "test", *extra)
        assert result.returncode == 0, result.stderr
        return result.stdout
    before = set(book_trained.logs.iterdir())
    assert "confusion matrix" in test("--dry-run")
    assert set(book_trained.logs.iterdir()) == before  # a dry run writes nothing
    assert "saved the confusion matrix to" in test()
    assert "saved the confusion matrix to" in test("--tta")  # its own file, not the plain one
    assert {path.name for path in book_trained.logs.iterdir()} - {p.name for p in before} == {
        "confusion_matrix-model.ckpt-2.png", "confusion_matrix-model.ckpt-2-tta.png"}
    assert "replaced the same checkpoint's confusion matrix" in test()  # said, not silent


def test_mode_test_without_a_checkpoint_is_one_clear_line(tmp_path):
    data = write_book_layout(tmp_path / "data", train_count=40, test_count=10)
    result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", data, "--logs-dir",
                        tmp_path / "none", "--mode", "test")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no checkpoint in" in result.stderr


def test_training_learns_and_a_rerun_resumes(tmp_path):
    data = write_book_layout(tmp_path / "data", train_count=400, test_count=100, seed=3)
    common = ("--data-dir", data, "--logs-dir", tmp_path / "logs", "--batch-size", "32",
              "--seed", "2")
    first = run_script(PROJECT / "emotion_cnn.py", *common, "--iterations", "101")
    assert first.returncode == 0, first.stderr
    second = run_script(PROJECT / "emotion_cnn.py", *common, "--iterations", "201")
    assert "Model Restored!" in second.stdout
    # The last checkpoint is what resume needs; the book's saver kept five.
    assert [p.name for p in (tmp_path / "logs").glob("*.index")] == ["model.ckpt-200.index"]
    losses = re.findall(r"^Training Loss", second.stdout, re.MULTILINE)
    assert len(losses) == 10  # steps 101..200 only: nothing trained twice
    tested = run_script(PROJECT / "emotion_cnn.py", "--data-dir", data, "--logs-dir",
                        tmp_path / "logs", "--mode", "test")
    accuracy = float(re.search(r"Test accuracy: (\d\.\d{4})", tested.stdout).group(1))
    assert accuracy > 0.5, tested.stdout  # chance is 1/7


@posix_only
def test_ctrl_c_saves_a_checkpoint_and_a_rerun_resumes_from_it(tmp_path):
    data = write_book_layout(tmp_path / "data", train_count=100, test_count=20)
    common = ("--data-dir", data, "--logs-dir", tmp_path / "logs", "--batch-size", "8")
    process = start_script(PROJECT / "emotion_cnn.py", *common, "--iterations", "100000")
    out, err = ctrl_c_when(process, r"^Training Loss")
    assert process.returncode == 130 and "Traceback" not in err, err
    step, saved = re.search(r"interrupted after step (\d+): saved (\S+);", out).groups()
    assert saved.endswith(f"model.ckpt-{step}")  # the step printed is the step in the name
    assert 0 <= int(step) < 100000
    resumed = run_script(PROJECT / "emotion_cnn.py", *common, "--iterations", str(int(step) + 2))
    assert resumed.returncode == 0 and "Model Restored!" in resumed.stdout
    assert f"resuming from {saved} at step {int(step) + 1}" in resumed.stdout
    assert "training: 100% |" in resumed.stderr and "1/1 steps" in resumed.stderr


# --------------------------------------------------------------------------------------------
# Photos of every kind
# --------------------------------------------------------------------------------------------

def photo(mode):
    """A 60x40 photo in `mode`: a bright face-ish square on a dark background."""
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[5:35, 15:45] = (220, 180, 150)
    image = Image.fromarray(rgb)
    if mode == "I;16":
        return Image.fromarray((np.asarray(image.convert("L")).astype(np.uint16) * 257))
    return image.convert(mode)


@pytest.mark.parametrize("mode, suffix", [("RGB", ".jpg"), ("RGBA", ".png"), ("L", ".png"),
                                          ("P", ".png"), ("LA", ".png"), ("I;16", ".png"),
                                          ("CMYK", ".jpg"), ("1", ".png")])
def test_every_image_mode_becomes_a_48x48_face_in_0_to_1(tmp_path, mode, suffix):
    path = tmp_path / f"face{suffix}"
    photo(mode).save(path)
    gray = emotion_test.read_gray(path)
    assert gray.shape == (40, 60) and gray.max() <= 255.0 + 1e-6
    # region means, so that a 1-bit photo's dithered face counts too
    assert gray[10:30, 20:40].mean() > gray[:, :10].mean() + 100
    face, _, _ = emotion_test.face_inputs(gray)
    assert face.shape == (1, 48, 48, 1) and face.dtype == np.float32
    assert 0.0 <= face.min() and face.max() <= 1.0


def test_luminance_uses_the_books_weights(tmp_path):
    Image.fromarray(np.full((4, 4, 3), (200, 100, 50), np.uint8)).save(tmp_path / "c.png")
    gray = emotion_test.read_gray(tmp_path / "c.png")
    assert gray[0, 0] == pytest.approx(0.299 * 200 + 0.587 * 100 + 0.114 * 50)


def test_exif_rotation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    photo("RGB").save(tmp_path / "rotated.jpg", exif=exif)
    assert emotion_test.read_gray(tmp_path / "rotated.jpg").shape == (60, 40)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    photo("I;16").save(tmp_path / "deep.png")
    gray = emotion_test.read_gray(tmp_path / "deep.png")
    assert 150 < gray.max() <= 255


def test_the_face_is_resized_not_np_resized():
    gray = np.tile(np.linspace(0, 255, 96), (96, 1))  # a left-to-right ramp
    face, _, crops = emotion_test.face_inputs(gray)
    row = face[0, 24, :, 0]
    assert np.all(np.diff(row) > 0)  # still one ramp; np.resize would repeat or cut it
    assert len(crops) == 1 and crops[0].startswith("the centre square")  # a ramp: no face


@pytest.mark.parametrize("content, message", [(b"just text", "not an image"),
                                               (None, "does not exist")])
def test_a_file_that_is_not_a_photo_is_one_line(tmp_path, capsys, book_trained, content,
                                                 message):
    root = book_trained.root
    path = tmp_path / "notes.jpg"
    if content is not None:
        path.write_bytes(content)
    assert emotion_test.main([str(path), "--logs-dir", str(root / "logs")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_emotion_test_prints_seven_lines_and_a_figure(tmp_path, book_trained):
    root = book_trained.root
    photo("RGBA").save(tmp_path / "me.png")
    result = run_script(PROJECT / "emotion_test.py", tmp_path / "me.png", "--logs-dir",
                        root / "logs", "--figure", tmp_path / "fig.png")
    assert result.returncode == 0, result.stderr
    lines = SEVEN_LINES.findall(result.stdout)
    assert [name for name, _ in lines] == ["anger", "disgust", "fear", "happy", "sad",
                                           "surprise", "neutral"]
    assert abs(sum(float(value) for _, value in lines) - 100) < 0.5
    assert "note:" not in result.stdout  # our checkpoints are deterministic
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"
    again = run_script(PROJECT / "emotion_test.py", tmp_path / "me.png", "--logs-dir",
                       root / "logs", "--figure", tmp_path / "fig.png")
    assert again.returncode == 2 and "add --overwrite" in again.stderr  # never replaced
    replaced = run_script(PROJECT / "emotion_test.py", tmp_path / "me.png", "--logs-dir",
                          root / "logs", "--figure", tmp_path / "fig.png", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.split("model:")[1].count("%") == 7


def save_book_style_graph(directory):
    """A checkpoint laid out like the book's: `input`, `output`, dropout fixed inside."""
    import tensorflow.compat.v1 as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        x = tf.placeholder(tf.float32, [None, 48, 48, 1], name="input")
        hidden = tf.nn.dropout(tf.reshape(x, [-1, 2304]), rate=0.5)
        weights = tf.Variable(tf.random_normal([2304, 7], stddev=0.05), name="W_fc2")
        tf.nn.softmax(tf.matmul(hidden, weights), name="output")
        saver = tf.train.Saver()
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            saver.save(session, str(directory / "model.ckpt"), global_step=1000)


def test_a_book_style_graph_with_baked_dropout(tmp_path, capsys):
    save_book_style_graph(tmp_path / "logs")
    photo("RGB").save(tmp_path / "me.jpg")
    common = [str(tmp_path / "me.jpg"), "--logs-dir", str(tmp_path / "logs"),
              "--figure", str(tmp_path / "f.png")]
    assert emotion_test.main(common) == 0
    assert "answer changes from run to run" in capsys.readouterr().out
    assert emotion_test.main(common + ["--evaluations", "250", "--overwrite"]) == 0
    counted = SEVEN_LINES.findall(capsys.readouterr().out)
    values = [float(value) for _, value in counted]
    assert len(values) == 7 and abs(sum(values) - 100) < 1e-6
    assert all(abs(v * 2.5 - round(v * 2.5)) < 1e-6 for v in values)  # counts out of 250


@pytest.mark.parametrize("faces_in_photo", [1, 2])
def test_evaluations_on_a_network_without_dropout_print_its_probabilities(
        book_trained, tmp_path, monkeypatch, capsys, faces_in_photo):
    photo("RGB").save(tmp_path / "me.png")
    if faces_in_photo == 2:
        monkeypatch.setattr(faces, "detect_faces",
                            lambda cv2, gray: [(2, 2, 20, 20), (35, 5, 20, 20)])
    assert emotion_test.main([str(tmp_path / "me.png"), "--logs-dir", str(book_trained.logs),
                              "--evaluations", "10", "--figure", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert "answers the same on every pass" in out and "its probabilities instead" in out
    values = [float(value) for _, value in SEVEN_LINES.findall(out)]
    assert len(values) == 7 * faces_in_photo
    assert not any(value in (0.0, 100.0) for value in values), out  # not one answer counted


@pytest.mark.parametrize("asked, present", [("author_image.jpg", "author_img.jpg"),
                                            ("author_img.jpg", "author_image.jpg")])
def test_either_name_of_the_authors_photo_reads_it(book_trained, tmp_path, monkeypatch, capsys,
                                                   asked, present):
    photo("RGB").save(tmp_path / present)
    monkeypatch.chdir(tmp_path)
    assert emotion_test.main([asked, "--logs-dir", str(book_trained.logs)]) == 0
    out = capsys.readouterr().out
    assert f"reading {present}" in out and f"photo: {present}" in out
    assert (tmp_path / f"{present[:-4]}_emotions.png").is_file()
    assert emotion_test.main(["someone_else.jpg", "--logs-dir", str(book_trained.logs)]) == 1
    assert "someone_else.jpg" in capsys.readouterr().err


def test_a_checkpoint_without_its_data_file_is_one_line(tmp_path, capsys):
    save_book_style_graph(tmp_path / "logs")
    for data in (tmp_path / "logs").glob("*.data-*"):
        data.unlink()
    photo("RGB").save(tmp_path / "me.jpg")
    assert emotion_test.main([str(tmp_path / "me.jpg"), "--logs-dir",
                              str(tmp_path / "logs")]) == 1
    assert ".data file is missing" in capsys.readouterr().err


def test_without_opencv_the_centre_square_is_used(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    squares, descriptions = faces.find_faces(np.zeros((40, 60)))
    assert squares == [faces.Square(10, 0, 40)]
    assert "no face detector" in descriptions[0]


def test_grad_cam_looks_at_h_pool2_and_comes_from_the_prediction_run(book_trained):
    import tensorflow.compat.v1 as tf
    root = book_trained.root
    checkpoint = emotion_test.latest_checkpoint(root / "logs")
    graph = tf.Graph()
    with graph.as_default(), tf_setup.new_session(graph) as session:
        x, y_conv = emotion_test.restore(session, checkpoint)
        assert emotion_figure.last_feature_maps(y_conv).shape.as_list() == [None, 12, 12, 64]
        heatmap = emotion_figure.add_grad_cam(y_conv)
        face = np.random.default_rng(0).random((1, 48, 48, 1)).astype(np.float32)
        scores, cam = emotion_figure.probabilities_and_cam(session, x, y_conv, heatmap, face)
        np.testing.assert_allclose(scores, emotion_test.probabilities(session, x, y_conv, face),
                                   rtol=1e-6)
    assert cam.shape == (12, 12) and 0 <= cam.min() and cam.max() <= 1


def test_every_face_in_a_photo_gets_its_lines_and_a_box_from_one_run(book_trained, tmp_path,
                                                                      monkeypatch, capsys):
    from book_support import tf_setup
    root = book_trained.root
    Image.new("RGB", (120, 60), (90, 90, 90)).save(tmp_path / "group.png")
    # Stand-in faces cannot fool OpenCV's cascade, so the detector is given its boxes; the
    # third lies inside the first, as the cascade's second finds do, and is dropped.
    monkeypatch.setattr(faces, "detect_faces",
                        lambda cv2, gray: [(70, 12, 28, 28), (10, 10, 30, 30), (14, 14, 12, 12)])
    batches, real_session = [], tf_setup.new_session

    def counting_session(graph, **options):
        session = real_session(graph, **options)
        real_run = session.run

        def run(fetches, feed_dict=None, **kwargs):
            batches.extend(len(value) for value in (feed_dict or {}).values()
                           if getattr(value, "ndim", 0) == 4)
            return real_run(fetches, feed_dict=feed_dict, **kwargs)
        session.run = run
        return session
    monkeypatch.setattr(tf_setup, "new_session", counting_session)
    figure = tmp_path / "boxed.png"
    assert emotion_test.main([str(tmp_path / "group.png"), "--logs-dir", str(root / "logs"),
                              "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "2 faces found by OpenCV" in out
    heads = re.findall(r"^face (\d) at x=(\d+), y=(\d+), (\d+)x\d+: (\w+)$", out, re.MULTILINE)
    assert [(number, x) for number, x, _, _, _ in heads] == [("1", "7"), ("2", "67")]
    assert len(re.findall(r"^\w+ = \d+\.\d%$", out, re.MULTILINE)) == 14
    assert batches == [2]  # both faces through the network in one session.run
    with Image.open(figure) as image:
        assert image.width > image.height  # the photo's shape, boxed; not the 3-panel figure
