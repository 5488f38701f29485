"""emotion_cnn.py for every emotion: --adjust-logits (post-hoc logit adjustment, chosen on the
validation faces, kept in the graph before output:0) and --optimizer sgd."""

import numpy as np
import pytest
from conftest import PROJECT, run_script, write_book_layout

import emotion_cnn
import emotion_test
from book_support import emotion_logit_adjustment, tf_setup


def rare_class_scores(seed=0, count=4000):
    """Probabilities as a network trained on unequal classes gives them: the evidence for
    each class plus the log of its prior, so that a rare class (1: 5% of the faces) is
    under-answered."""
    rng = np.random.default_rng(seed)
    priors = np.array([0.3, 0.05, 0.15, 0.2, 0.1, 0.1, 0.1])
    labels = rng.choice(7, size=count, p=priors)
    logits = rng.normal(0, 1, (count, 7)) + 1.5 * np.eye(7)[labels] + np.log(priors)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities, labels, priors


def test_tau_raises_the_mean_recall_within_the_accuracy_tolerance():
    probabilities, labels, priors = rare_class_scores()
    tau, table = emotion_logit_adjustment.choose_tau(probabilities, labels, priors)
    by_tau = {row[0]: row[1:] for row in table}
    assert tau > 0
    assert by_tau[tau][1] > by_tau[0.0][1] + 0.02  # the mean recall rises
    assert by_tau[tau][0] >= by_tau[0.0][0] - emotion_logit_adjustment.TOLERANCE
    # and no tau within the tolerance has a higher mean recall
    assert all(recall <= by_tau[tau][1] for accuracy, recall in by_tau.values()
               if accuracy >= by_tau[0.0][0] - emotion_logit_adjustment.TOLERANCE)
    rare = emotion_logit_adjustment.recalls(np.argmax(probabilities / priors ** tau, 1), labels)
    plain = emotion_logit_adjustment.recalls(np.argmax(probabilities, 1), labels)
    assert rare[1] > plain[1]


def test_equal_priors_change_nothing_and_keep_tau_0():
    probabilities, labels, _ = rare_class_scores()
    tau, _ = emotion_logit_adjustment.choose_tau(probabilities, labels, np.full(7, 1 / 7))
    assert tau == 0.0


def test_the_adjustment_in_the_graph_is_the_logits_minus_it():
    """output:0 = softmax(logits - adjustment), checked against NumPy from the same logits."""
    net = emotion_cnn.build_training_graph(seed=1, model="vgg")
    logits = net.graph.get_tensor_by_name("output:0").op.inputs[0]
    faces = np.random.default_rng(0).random((5, 48, 48, 1), dtype=np.float32)
    adjustment = np.log([0.13, 0.015, 0.14, 0.25, 0.17, 0.11, 0.17]) * 0.7
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        plain_logits = session.run(logits, {net.input_dataset: faces})
        tf_setup.load_variable(session, net.logit_adjustment, adjustment)
        output = session.run(net.output_pred, {net.input_dataset: faces})
    shifted = plain_logits - adjustment
    expected = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def adjusted_run(tmp_path_factory):
    """8 steps of vgg with --adjust-logits on faces where emotion 1 is rare."""
    root = tmp_path_factory.mktemp("adjusted")
    write_book_layout(root / "data", train_count=120, test_count=30)
    result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", root / "data", "--logs-dir",
                        root / "logs", "--model", "vgg", "--iterations", "8", "--batch-size",
                        "16", "--eval-every", "4", "--seed", "3", "--adjust-logits")
    assert result.returncode == 0, result.stderr
    return root, result


def test_adjust_logits_saves_tau_times_log_priors_in_the_last_checkpoint(adjusted_run):
    import tensorflow.compat.v1 as tf
    root, result = adjusted_run
    said = [line for line in result.stdout.splitlines() if line.startswith("adjusted logits by")]
    assert len(said) == 1 and "chosen on the validation faces" in said[0]
    tau = float(said[0].split()[3])
    checkpoint = tf.train.latest_checkpoint(str(root / "logs"))
    assert checkpoint.endswith("model.ckpt-7")
    saved = tf.train.load_variable(checkpoint, "logit_adjustment")
    import EmotionUtils
    priors = np.mean(EmotionUtils.read_data(root / "data", verbose=False).train_labels, axis=0)
    np.testing.assert_allclose(saved, tau * np.log(priors), rtol=1e-5, atol=1e-7)


def test_fit_sets_tau_times_log_priors_in_the_graph():
    probabilities, labels, priors = rare_class_scores()
    net = emotion_cnn.build_training_graph(seed=1, model="vgg")
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        tf_setup.load_variable(session, net.logit_adjustment, np.ones(7))  # a previous fit
        tau, _ = emotion_logit_adjustment.fit(session, net, None, np.eye(7)[labels], priors,
                                              lambda images: probabilities)
        assert tau > 0
        np.testing.assert_allclose(session.run(net.logit_adjustment), tau * np.log(priors),
                                   rtol=1e-6)


def test_the_meta_workflow_reads_the_adjusted_output(adjusted_run, tmp_path):
    """emotion_test.py's import_meta_graph path gives softmax(logits - adjustment): the
    adjustment is in the saved graph, not in a script."""
    import tensorflow.compat.v1 as tf
    root, _ = adjusted_run
    faces = np.random.default_rng(1).random((3, 48, 48, 1), dtype=np.float32)
    adjustment = np.log([0.13, 0.015, 0.14, 0.25, 0.17, 0.11, 0.17])
    net = emotion_cnn.build_training_graph(model="vgg")
    logits = net.graph.get_tensor_by_name("output:0").op.inputs[0]  # less the adjustment
    with tf_setup.new_session(net.graph) as session:
        net.saver.restore(session, tf.train.latest_checkpoint(str(root / "logs")))
        tf_setup.load_variable(session, net.logit_adjustment, np.zeros(7))  # the fitted one off
        plain_logits = session.run(logits, {net.input_dataset: faces})
        tf_setup.load_variable(session, net.logit_adjustment, adjustment)
        checkpoint = net.saver.save(session, str(tmp_path / "model.ckpt"), global_step=7)
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as session:
        tf.train.import_meta_graph(checkpoint + ".meta", clear_devices=True).restore(
            session, checkpoint)
        read = session.run("output:0", {"input:0": faces})
    shifted = plain_logits - adjustment
    np.testing.assert_allclose(read, np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True),
                               rtol=1e-5, atol=1e-6)
    assert emotion_test.__doc__.count("import_meta_graph")  # the workflow this stands for


def test_the_same_command_again_refits_the_same_tau(adjusted_run, tmp_path):
    import shutil
    root, first = adjusted_run
    shutil.copytree(root, tmp_path / "again")
    again = run_script(PROJECT / "emotion_cnn.py", "--data-dir", tmp_path / "again" / "data",
                       "--logs-dir", tmp_path / "again" / "logs", "--model", "vgg",
                       "--iterations", "8", "--batch-size", "16", "--eval-every", "4", "--seed",
                       "3", "--adjust-logits")
    assert again.returncode == 0, again.stderr
    assert "already holds the 8 iterations" in again.stdout

    def said(result):
        return next(line for line in result.stdout.splitlines() if line.startswith("adjusted"))
    assert said(again) == said(first)


@pytest.mark.parametrize("options, words", [
    (["--adjust-logits"], "--adjust-logits adjusts the vgg network: add --model vgg"),
    (["--model", "vgg", "--adjust-logits", "--patience", "3"], "choose one of them"),
    (["--model", "vgg", "--mode", "test", "--adjust-logits"], "--adjust-logits"),
])
def test_adjust_logits_where_it_cannot_apply_is_one_line(tmp_path, options, words):
    write_book_layout(tmp_path / "data", train_count=30, test_count=10)
    result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", tmp_path / "data",
                        "--logs-dir", tmp_path / "logs", *options)
    assert result.returncode == 2 and words in result.stderr
    assert len(result.stderr.strip().splitlines()[-1]) < 200 and "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


# --------------------------------------------------------------------------------------------
# --optimizer sgd
# --------------------------------------------------------------------------------------------

def test_sgd_is_nesterov_momentum_at_its_rate():
    import tensorflow.compat.v1 as tf
    net = emotion_cnn.build_training_graph(seed=1, model="vgg", optimizer="sgd",
                                           learning_rate=0.05)
    kinds = {op.type for op in net.graph.get_operations()}
    assert "ResourceApplyMomentum" in kinds and "ResourceApplyAdam" not in kinds
    apply = next(op for op in net.graph.get_operations() if op.type == "ResourceApplyMomentum")
    assert apply.get_attr("use_nesterov")
    with tf.Session(graph=net.graph) as session:
        session.run(net.initializer)
        assert session.run(net.learning_rate) == pytest.approx(0.05)


def test_an_sgd_run_tests_and_a_rerun_with_another_optimizer_is_refused(tmp_path):
    write_book_layout(tmp_path / "data", train_count=60, test_count=10)
    common = ["--data-dir", tmp_path / "data", "--logs-dir", tmp_path / "logs", "--model", "vgg",
              "--iterations", "2", "--batch-size", "8", "--seed", "1"]
    first = run_script(PROJECT / "emotion_cnn.py", *common, "--optimizer", "sgd")
    assert first.returncode == 0, first.stderr
    tested = run_script(PROJECT / "emotion_cnn.py", *common[:6], "--mode", "test")
    assert tested.returncode == 0 and "Test accuracy" in tested.stdout, tested.stderr
    again = run_script(PROJECT / "emotion_cnn.py", *common, "--iterations", "3")
    assert again.returncode == 1 and "--optimizer sgd, now adam" in again.stderr, again.stderr
    assert "--learning-rate 0.01, now 0.001" in again.stderr


def test_a_checkpoint_from_before_the_adjustment_is_tested_unadjusted(tmp_path):
    """A vgg run trained before `logit_adjustment` existed still tests and resumes."""
    import tensorflow.compat.v1 as tf
    write_book_layout(tmp_path / "data", train_count=60, test_count=20)
    net = emotion_cnn.build_training_graph(seed=1, model="vgg")
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        values = {variable.op.name: session.run(variable)
                  for variable in net.graph.get_collection("variables")
                  if variable.op.name != "logit_adjustment"}
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as session:
        older = {name: tf.Variable(value, name=name) for name, value in values.items()}
        session.run(tf.global_variables_initializer())
        tf.train.Saver(older).save(session, str(tmp_path / "logs" / "model.ckpt"),
                                   global_step=0)
    assert "logit_adjustment" not in dict(tf.train.list_variables(str(tmp_path / "logs")))
    result = run_script(PROJECT / "emotion_cnn.py", "--data-dir", tmp_path / "data",
                        "--logs-dir", tmp_path / "logs", "--model", "vgg", "--mode", "test")
    assert result.returncode == 0, result.stderr
    assert "Test accuracy" in result.stdout
