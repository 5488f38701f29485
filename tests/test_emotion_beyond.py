"""emotion_cnn.py beyond the book: --model vgg, --augment, --schedule, --patience, precision and
recall, and emotion_test.py on either network."""

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
from book_support.checkpoints import CheckpointFolder
from conftest import PROJECT, run_script, write_book_layout

import emotion_cnn
import emotion_test
import EmotionUtils
from book_support import emotion_report, tf_setup


def faces_and_labels(count, seed):
    rng = np.random.default_rng(seed)
    faces = rng.random((count, 48, 48, 1), dtype=np.float32)
    return faces, np.eye(7, dtype=np.float32)[rng.integers(0, 7, count)]


def settings(augment=False, augment_seed=0):
    """The two parsed options training_feed reads."""
    return SimpleNamespace(augment=augment, augment_seed=augment_seed)


@pytest.fixture(scope="module", params=["book", "vgg"])
def model_and_session(request):
    net = emotion_cnn.build_training_graph(seed=1, model=request.param)
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        yield net, session


# --------------------------------------------------------------------------------------------
# Both networks
# --------------------------------------------------------------------------------------------

def test_parameter_counts_and_the_tensors_the_other_scripts_feed(model_and_session):
    net, _ = model_and_session
    expected = {"book": 2_380_679,
                # 3x3 convolutions 1-32, 32-64, 64-64, 64-128, 128-128, 128-256, 256-256 (no
                # bias), gamma and beta of their 7 batch norms, fc 2304-256 and 256-7
                "vgg": 9 * (32 + 32 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 256 * 256)
                + 2 * (32 + 64 * 2 + 128 * 2 + 256 * 2) + 2304 * 256 + 256 + 256 * 7 + 7}
    assert tf_setup.count_weights(net.variables) == expected[net.model]
    assert net.graph.get_tensor_by_name("input:0").shape.as_list() == [None, 48, 48, 1]
    assert net.graph.get_tensor_by_name("output:0").shape.as_list() == [None, 7]


def test_feeding_the_input_alone_gives_the_deterministic_network(model_and_session):
    """What emotion_test.py and the .meta workflow do: no dropout, no batch statistics."""
    net, session = model_and_session
    faces, _ = faces_and_labels(6, 0)
    alone = session.run(net.output_pred, {net.input_dataset: faces})
    one_by_one = [session.run(net.output_pred, {net.input_dataset: faces[i:i + 1]})[0]
                  for i in range(6)]  # batch statistics would make a face depend on the others
    np.testing.assert_allclose(alone, one_by_one, rtol=1e-4, atol=1e-6)
    training = session.run(net.output_pred, {net.input_dataset: faces, net.keep_prob: 0.5,
                                             net.training: True})
    assert not np.allclose(alone, training, atol=1e-4)


def test_a_training_step_updates_the_batch_norm_averages():
    net = emotion_cnn.build_training_graph(seed=1, model="vgg")
    average = next(v for v in net.graph.get_collection("variables")
                   if v.op.name == "vgg/conv1a/moving_mean")
    faces, labels = faces_and_labels(16, 1)
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        session.run(net.output_pred, {net.input_dataset: faces})
        assert not session.run(average).any()  # inference leaves them alone
        session.run(net.train_op, emotion_cnn.training_feed(net, settings(), faces, labels, 0))
        assert session.run(average).any()


def test_cosine_schedule_falls_from_the_books_rate_to_zero():
    net = emotion_cnn.build_training_graph(schedule="cosine", iterations=100)
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        rates = []
        for step in (0, 50, 100):
            tf_setup.load_variable(session, net.global_step, step)
            rates.append(session.run(net.learning_rate))
    np.testing.assert_allclose(rates, [1e-3, 5e-4, 0], atol=1e-9)


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------

def left_heavy_faces(count):
    """Faces bright on the left, with a dark spot: a flip and a shift are both visible."""
    faces = np.tile(np.linspace(1, 0, 48, dtype=np.float32), (count, 48, 1))[..., None]
    faces[:, 20:28, 20:28] = 0
    return faces


def augmented_batch(session, net, faces, seed, step, augment=True):
    feed = emotion_cnn.training_feed(net, settings(augment, seed), faces,
                                     np.zeros((len(faces), 7), np.float32), step)
    return session.run(net.faces, feed)


def test_augmentation_flips_and_shifts_training_faces_reproducibly(model_and_session):
    net, session = model_and_session
    faces = left_heavy_faces(64)
    batch = augmented_batch(session, net, faces, seed=7, step=3)
    flipped = batch[:, :, :24].mean(axis=(1, 2, 3)) < batch[:, :, 24:].mean(axis=(1, 2, 3))
    assert 15 < flipped.sum() < 49  # about half, each face on its own
    spot_rows = [np.argmin(face[:, 24 - 10:24 + 10].mean(axis=1)) for face in batch[..., 0]]
    assert len(set(spot_rows)) > 3  # the spot moves up and down from face to face
    np.testing.assert_array_equal(batch, augmented_batch(session, net, faces, seed=7, step=3))
    assert not np.allclose(batch, augmented_batch(session, net, faces, seed=7, step=4))
    assert not np.allclose(batch, augmented_batch(session, net, faces, seed=8, step=3))
    np.testing.assert_array_equal(augmented_batch(session, net, faces, 7, 3, augment=False),
                                  faces)


def test_evaluation_is_never_augmented(model_and_session):
    net, session = model_and_session
    faces, labels = faces_and_labels(40, 2)
    loss, _ = emotion_cnn.evaluate(session, net, faces, labels)
    plain = session.run(net.cross_entropy_loss, {net.input_dataset: faces,
                                                 net.input_labels: labels})
    augmented = session.run(net.cross_entropy_loss, {net.input_dataset: faces,
                                                     net.input_labels: labels,
                                                     net.augment: True})
    assert loss == pytest.approx(plain, rel=1e-5)
    assert abs(augmented - plain) > 1e-4  # so the test above could fail


def test_augmented_seeded_runs_repeat_and_other_seeds_do_not(tmp_path):
    data = write_book_layout(tmp_path / "data", train_count=80, test_count=10)

    def losses(seed):
        result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", data, "--model", "vgg",
                            "--augment", "--seed", seed, "--iterations", "12",
                            "--batch-size", "16", "--eval-every", "4", "--logs-dir",
                            tmp_path / f"logs{seed}-{len(list(tmp_path.iterdir()))}")
        assert result.returncode == 0, result.stderr
        return re.findall(r"Loss: (\d+\.\d+)", result.stdout)

    first = losses(5)
    assert len(first) == 2 + 4 and first == losses(5) and first != losses(6)


# --------------------------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------------------------

# stopped_early: conftest, a copy per test

def test_early_stopping_stops_when_the_validation_loss_turns_up(stopped_early):
    root, result = stopped_early.root, stopped_early.result
    assert result.returncode == 0, result.stderr
    losses = [float(x) for x in re.findall(r"Validation Loss: (\d+\.\d+)", result.stdout)]
    best = int(np.argmin(losses))
    assert losses[-1] > losses[best] and len(losses) == best + 1 + 3  # patience 3, then stop
    assert f"the best was {losses[best]:.6f} at step {best * 5}" in result.stdout
    record = json.loads((root / "logs" / "run.json").read_text())["early_stopping"]
    assert record["best_step"] == best * 5 and record["since_best"] == 3


def test_the_best_checkpoint_is_kept_and_tested(stopped_early):
    root, result = stopped_early.root, stopped_early.result
    losses = [float(x) for x in re.findall(r"Validation Loss: (\d+\.\d+)", result.stdout)]
    best = root / "logs" / "best"
    kept = emotion_cnn.tf.train.latest_checkpoint(str(best))
    assert kept.endswith(f"model.ckpt-{np.argmin(losses) * 5}")
    net = emotion_cnn.build_graph()
    data = EmotionUtils.read_data(root / "data", verbose=False)
    with tf_setup.new_session(net.graph) as session:
        CheckpointFolder(best, net.saver, "--logs-dir").restore(session)
        loss, _ = emotion_cnn.evaluate(session, net, data.valid_images, data.valid_labels)
    assert loss == pytest.approx(min(losses), abs=2e-6)
    tested = run_script(PROJECT / "emotion_cnn.py", "--data-dir", root / "data", "--logs-dir",
                        root / "logs", "--mode", "test")
    assert f"best/model.ckpt-{np.argmin(losses) * 5}" in tested.stdout


def test_a_rerun_after_an_early_stop_trains_nothing(stopped_early):
    again = run_script(*stopped_early.command())
    assert again.returncode == 0 and "early stop:" in again.stdout
    assert "Training Loss" not in again.stdout


# --------------------------------------------------------------------------------------------
# Testing and emotion_test.py with either network
# --------------------------------------------------------------------------------------------

def test_precision_and_recall_per_class():
    matrix = np.zeros((7, 7), np.int64)
    matrix[0, 0], matrix[0, 3], matrix[3, 3], matrix[1, 3] = 3, 1, 4, 2
    precision, recall = emotion_report.precision_and_recall(matrix)
    assert precision[0] == 1 and recall[0] == 0.75
    assert precision[3] == pytest.approx(4 / 7) and recall[3] == 1
    assert recall[1] == 0 and np.isnan(precision[1])  # never predicted: no precision to give


def test_an_emotion_never_predicted_is_said_in_words_not_nan(capsys):
    matrix = np.zeros((7, 7), np.int64)
    matrix[0, 0], matrix[3, 3], matrix[1, 3] = 3, 4, 2
    emotion_report.print_precision_and_recall(matrix, ["anger", "disgust", "fear", "happy",
                                                       "sad", "surprise", "neutral"])
    out = capsys.readouterr().out
    assert "nan" not in out
    assert re.search(r"^ +disgust +never +0\.000 +2$", out, re.MULTILINE), out
    assert re.search(r"^ +fear +never +- +0$", out, re.MULTILINE), out
    assert "predicted no face as disgust, fear, sad, surprise, neutral" in out


# vgg_trained: conftest, trained with the README's recipe; a copy per test

def test_mode_test_prints_precision_and_recall(vgg_trained):
    assert "emotion CNN (vgg network): 1,755,239 parameters" in vgg_trained.result.stdout
    result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", vgg_trained.data,
                        "--logs-dir", vgg_trained.logs, "--model", "vgg", "--mode", "test")
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^ +(\w+) +(\d\.\d{3}|never) +(\d\.\d{3}|-) +(\d+)$", result.stdout,
                      re.MULTILINE)
    assert [row[0] for row in rows] == ["anger", "disgust", "fear", "happy", "sad",
                                        "surprise", "neutral"]
    assert sum(int(row[3]) for row in rows) == 30


@pytest.mark.parametrize("trained_as, asked", [("vgg", "book"), ("book", "vgg")])
def test_a_checkpoint_of_the_other_network_is_one_line(tmp_path, vgg_trained, trained_as,
                                                       asked):
    logs = vgg_trained.logs
    if trained_as == "book":
        logs = tmp_path / "logs"
        assert run_script(PROJECT / "emotion_cnn.py", "--data-dir", vgg_trained.data,
                          "--logs-dir", logs, "--iterations", "1").returncode == 0
    for mode in ("train", "test"):
        result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", vgg_trained.data,
                            "--logs-dir", logs, "--model", asked, "--mode", mode)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        if mode == "train":  # the settings recorded with the checkpoint say it first
            assert f"--model {trained_as}, now {asked}" in result.stderr
            assert "give the same settings to resume it" in result.stderr
        else:
            assert f"is a checkpoint of the '{trained_as}' network, not '{asked}': add " \
                   f"--model {trained_as}" in result.stderr


def test_emotion_test_reads_a_face_with_the_vgg_network(tmp_path, vgg_trained):
    from PIL import Image
    Image.fromarray((left_heavy_faces(1)[0, ..., 0] * 255).astype(np.uint8)).save(
        tmp_path / "me.png")
    result = run_script(PROJECT / "emotion_test.py", tmp_path / "me.png", "--logs-dir",
                        vgg_trained.logs, "--figure", tmp_path / "fig.png")
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"^\w+ = [0-9.]+%$", result.stdout, re.MULTILINE)) == 7
    assert "note:" not in result.stdout  # deterministic: batch norm uses its averages
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


def test_emotion_test_prefers_the_best_checkpoint(stopped_early):
    root = stopped_early.root
    checkpoint = emotion_test.latest_checkpoint(root / "logs")
    assert "/best/" in checkpoint
