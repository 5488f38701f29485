"""emotion_cnn.py's FER2013 recipe (#23): --erase, --label-smoothing, --precision bf16, and
test-time augmentation (--tta) in `--mode test` and emotion_test.py."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import PROJECT, cpu_has_bfloat16, run_script

import emotion_cnn
import emotion_test
from book_support import emotion_training_aids, emotion_tta, emotion_vgg, tf_setup


def faces_and_labels(count, seed):
    rng = np.random.default_rng(seed)
    faces = rng.random((count, 48, 48, 1), dtype=np.float32)
    return faces, np.eye(7, dtype=np.float32)[rng.integers(0, 7, count)]


def feed(net, faces, labels, augment=True, seed=3, step=0):
    return emotion_cnn.training_feed(net, SimpleNamespace(augment=augment, augment_seed=seed),
                                     faces, labels, step)


# --------------------------------------------------------------------------------------------
# --erase
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def erasing():
    """The augmentation graph with every face erased, and one with none."""
    import tensorflow.compat.v1 as tf
    graph = tf.Graph()
    with graph.as_default():
        faces = tf.placeholder(tf.float32, [None, 48, 48, 1])
        seed = tf.placeholder(tf.int64, [2])
        always = emotion_training_aids.erased(faces, seed, 1.0)
        half = emotion_training_aids.erased(faces, seed, 0.5)
    with tf_setup.new_session(graph) as session:
        yield lambda batch, output, key=(1, 2): session.run(
            output, {faces: batch, seed: key}), always, half


def test_erasing_replaces_one_rectangle_of_2_to_25_percent_with_noise(erasing):
    run, always, _ = erasing
    grey = np.full((200, 48, 48, 1), 0.5, np.float32)
    out = run(grey, always)
    for face in out[..., 0]:
        changed = np.argwhere(face != 0.5)
        assert len(changed), "every face is erased at probability 1"
        rows, columns = changed[:, 0], changed[:, 1]
        height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
        # 2-25% of the face, give or take the pixels a rectangle's edges partly cover
        assert 0.012 * 48 * 48 <= height * width <= 0.30 * 48 * 48
        # a filled rectangle: (almost) every pixel of the box is noise
        assert len(changed) >= 0.97 * height * width
    np.testing.assert_array_equal(out, run(grey, always))  # the same seed, the same faces
    assert not np.array_equal(out, run(grey, always, key=(1, 3)))


def test_erasing_touches_about_the_share_asked_for(erasing):
    run, _, half = erasing
    grey = np.full((400, 48, 48, 1), 0.5, np.float32)
    erased = (run(grey, half) != 0.5).any(axis=(1, 2, 3))
    assert 150 < erased.sum() < 250


def test_erasing_is_part_of_training_augmentation_only():
    net = emotion_cnn.build_training_graph(seed=1, model="vgg", erase=1.0)
    faces = np.full((8, 48, 48, 1), 0.5, np.float32)
    labels = np.eye(7, dtype=np.float32)[[0] * 8]
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        trained_on = session.run(net.faces, feed(net, faces, labels))
        tested_on = session.run(net.faces, {net.input_dataset: faces})
    assert all((face != 0.5).mean() > 0.015 for face in trained_on)
    np.testing.assert_array_equal(tested_on, faces)


# --------------------------------------------------------------------------------------------
# --label-smoothing
# --------------------------------------------------------------------------------------------

def test_label_smoothing_trains_towards_smoothed_targets_and_validates_on_plain_ones():
    net = emotion_cnn.build_training_graph(seed=1, model="vgg", label_smoothing=0.1)
    faces, labels = faces_and_labels(16, 4)
    regularization = emotion_vgg.REGULARIZATION
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        plain_feed = {net.input_dataset: faces, net.input_labels: labels}
        probabilities, plain, trained, penalty = session.run(
            [net.output_pred, net.cross_entropy_loss, net.loss_val,
             net.graph.get_tensor_by_name("AddN:0")], plain_feed)
    targets = labels * 0.9 + 0.1 / 7
    log_p = np.log(probabilities.astype(np.float64))
    assert plain == pytest.approx(-np.mean(np.sum(labels * log_p, axis=1)), rel=1e-4)
    assert trained == pytest.approx(-np.mean(np.sum(targets * log_p, axis=1))
                                    + regularization * penalty, rel=1e-4)
    # and the validation loss (evaluate) is the plain cross-entropy
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        assert emotion_cnn.evaluate(session, net, faces, labels)[0] == pytest.approx(plain,
                                                                                     rel=1e-4)


@pytest.mark.parametrize("option, value, words", [
    ("--label-smoothing", "1.5", "1.5 is more than 1"),
    ("--erase", "-0.1", "less than 0"),
    ("--erase", "half", "is not a number")])
def test_a_share_outside_0_to_1_is_one_line(tmp_path, option, value, words):
    result = run_script(PROJECT / "emotion_cnn.py", "--model", "vgg", "--augment", option,
                        value, "--data-dir", tmp_path, "--logs-dir", tmp_path / "logs")
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_erase_without_augment_is_one_line(tmp_path):
    result = run_script(PROJECT / "emotion_cnn.py", "--model", "vgg", "--erase", "0.5",
                        "--data-dir", tmp_path, "--logs-dir", tmp_path / "logs")
    assert result.returncode == 2 and "add --augment" in result.stderr
    assert not (tmp_path / "logs").exists()


# --------------------------------------------------------------------------------------------
# The whole recipe from the command line: seeded, resumable only with the same settings
# --------------------------------------------------------------------------------------------

def losses_printed(result):
    assert result.returncode == 0, result.stderr
    return re.findall(r"Loss: (\d+\.\d+)", result.stdout)


def test_the_recipe_repeats_under_a_seed_and_differs_with_another(vgg_trained_once, tmp_path):
    trained = vgg_trained_once  # conftest: RECIPE, 8 steps, --eval-every 4, --seed 3

    def retrained(seed):
        options = list(trained.options)
        options[options.index("--seed") + 1] = seed
        return run_script(PROJECT / "emotion_cnn.py", "--data-dir", trained.data, "--logs-dir",
                          tmp_path / f"logs{seed}", *options)

    first = losses_printed(trained.result)
    assert len(first) == 1 + 3 and first == losses_printed(retrained("3"))
    assert first != losses_printed(retrained("4"))
    assert "training on CPU, bf16" in trained.result.stdout


def test_a_rerun_with_another_erase_or_smoothing_is_refused(vgg_trained):
    for option, value, said in (("--erase", "0.2", "--erase 0.5, now 0.2"),
                                ("--label-smoothing", "0.1", "--label-smoothing 0.0, now 0.1")):
        words = [*vgg_trained.options]
        if option in words:
            words[words.index(option) + 1] = value
        else:  # the recipe leaves label smoothing at 0
            words += [option, value]
        result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", vgg_trained.data,
                            "--logs-dir", vgg_trained.logs, *words)
        assert result.returncode == 1 and said in result.stderr, result.stderr


# --------------------------------------------------------------------------------------------
# --precision bf16
# --------------------------------------------------------------------------------------------

def test_bf16_rewrites_the_training_step_where_the_cpu_has_it():
    import tensorflow.compat.v1 as tf
    net = emotion_cnn.build_training_graph(seed=1, model="vgg", schedule="cosine",
                                           iterations=10, erase=0.5, label_smoothing=0.1)
    faces, labels = faces_and_labels(16, 5)
    found = {}
    for precision in ("fp32", "bf16"):
        metadata = tf.RunMetadata()
        with tf_setup.new_session(net.graph, precision, float16_on_gpus=False) as session:
            session.run(net.initializer)
            session.run(net.train_op, feed(net, faces, labels),
                        options=tf.RunOptions(output_partition_graphs=True),
                        run_metadata=metadata)
        found[precision] = {node.op for graph in metadata.partition_graphs
                            for node in graph.node
                            if any(attr.type == tf.bfloat16.as_datatype_enum
                                   for attr in node.attr.values())}
    assert not found["fp32"]
    if cpu_has_bfloat16() and not tf.config.list_physical_devices("GPU"):
        # the convolutions, under oneDNN's own op names (GPUs stay float32 in training)
        assert any("Conv2D" in op for op in found["bf16"]), found["bf16"]
    else:  # TensorFlow leaves the graph in float32 where the CPU cannot run bfloat16
        assert not found["bf16"]


def test_training_sessions_never_ask_gpus_for_float16():
    """float16 training needs loss scaling, which the rewrite does not add."""
    net = emotion_cnn.build_training_graph(seed=1, model="vgg")
    for float16_on_gpus, expected in ((True, 1), (False, 0)):  # RewriterConfig.ON is 1
        with tf_setup.new_session(net.graph, "bf16", float16_on_gpus) as session:
            rewrites = session._config.graph_options.rewrite_options
            assert rewrites.auto_mixed_precision == expected
            assert rewrites.auto_mixed_precision_onednn_bfloat16 == 1


# --------------------------------------------------------------------------------------------
# --tta
# --------------------------------------------------------------------------------------------

def test_mirror_averaged_is_the_mean_of_the_face_and_its_mirror_from_one_batch():
    faces, _ = faces_and_labels(5, 6)
    batches = []

    def scores_of(batch):
        batches.append(len(batch))
        return batch.reshape(len(batch), -1)[:, :7] * 3

    averaged = emotion_tta.mirror_averaged(scores_of, faces)
    expected = (scores_of(faces) + scores_of(faces[:, :, ::-1])) / 2
    np.testing.assert_allclose(averaged, expected, rtol=1e-6)
    assert batches[0] == 10  # one run for both halves


@pytest.mark.parametrize("tta", [False, True])
def test_many_faces_are_read_in_runs_no_larger_than_graph_checks_allows(tta):
    from book_support import graph_checks
    faces, _ = faces_and_labels(600, 6)
    batches = []

    def scores_of(batch):
        batches.append(len(batch))
        return batch.reshape(len(batch), -1)[:, :7] * 3

    scores = emotion_tta.scores_in_batches(scores_of, faces, tta)
    assert max(batches) <= graph_checks.LARGEST_BATCH and len(batches) == 3
    expected = emotion_tta.mirror_averaged(scores_of, faces) if tta else scores_of(faces)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


@pytest.fixture(scope="module")
def vgg_session():
    net = emotion_cnn.build_training_graph(seed=2, model="vgg")
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        faces, labels = faces_and_labels(32, 7)
        for step in range(3):  # batch norm averages away from their start
            session.run(net.train_op, feed(net, faces, labels, step=step))
        yield net, session


def test_tta_in_mode_test_equals_the_mean_of_the_two_passes(vgg_session):
    net, session = vgg_session
    faces, labels = faces_and_labels(700, 8)  # more than one evaluation batch

    def probabilities(batch):
        return session.run(net.output_pred, {net.input_dataset: batch})

    mean = (probabilities(faces) + probabilities(faces[:, :, ::-1])) / 2
    loss, predicted = emotion_tta.evaluate_with_mirror(session, net, faces, labels)
    np.testing.assert_array_equal(predicted, np.argmax(mean, axis=1))
    right = mean[np.arange(700), np.argmax(labels, axis=1)]
    assert loss == pytest.approx(-np.mean(np.log(right)), rel=1e-5)
    plain_loss, _ = emotion_cnn.evaluate(session, net, faces, labels)
    assert abs(plain_loss - loss) > 1e-5  # the mirrored faces count


def test_tta_in_emotion_test_equals_the_mean_of_the_two_passes(vgg_session):
    net, session = vgg_session
    faces, _ = faces_and_labels(3, 9)
    x, y = net.input_dataset, net.output_pred
    mean = (session.run(y, {x: faces}) + session.run(y, {x: faces[:, :, ::-1]})) / 2
    np.testing.assert_allclose(emotion_test.read_faces(session, x, y, faces, tta=True), mean,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(emotion_test.read_faces(session, x, y, faces),
                               session.run(y, {x: faces}), rtol=1e-6)


def test_mode_test_with_tta_scores_the_mirrored_faces_too(vgg_trained):
    def tested(*extra):
        result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", vgg_trained.data,
                            "--logs-dir", vgg_trained.logs, "--model", "vgg", "--mode", "test",
                            *extra)
        assert result.returncode == 0, result.stderr
        return re.search(r"Test accuracy: \d\.\d+ \(\d+/30\)  loss (\d+\.\d+)",
                         result.stdout).group(1)

    assert tested("--tta") != tested()  # the losses differ: the mirrored faces were scored


def test_emotion_test_with_tta_prints_the_books_seven_lines(tmp_path, vgg_trained):
    from PIL import Image
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((60, 60)) * 255).astype(np.uint8)).save(tmp_path / "me.png")
    lines = {}
    for extra in ((), ("--tta",)):
        result = run_script(PROJECT / "emotion_test.py", tmp_path / "me.png", "--logs-dir",
                            vgg_trained.logs, "--figure", tmp_path / f"fig{len(extra)}.png", *extra)
        assert result.returncode == 0, result.stderr
        lines[extra] = re.findall(r"^\w+ = [0-9.]+%$", result.stdout, re.MULTILINE)
        assert len(lines[extra]) == 7
    assert lines[()] != lines[("--tta",)]


def test_tta_with_evaluations_is_one_line(tmp_path):
    result = run_script(PROJECT / "emotion_test.py", tmp_path / "me.png", "--tta",
                        "--evaluations", "10")
    assert result.returncode == 2 and "choose one" in result.stderr

