"""alexnet_finetune.py on stand-in weights and a small learnable set of 'cats' and 'dogs'."""

import csv
import re

import numpy as np
import pytest

from book_support import alexnet_files
import alexnet_finetune
import alexnet_forward
from book_support import pets_data
from book_support import tf_setup
from conftest import PROJECT, ctrl_c_when, posix_only, run_script, start_script, write_pets

LOSS_LINE = re.compile(r"^Iter (\d+), Minibatch Loss= (\d+\.\d{6}), Training Accuracy= "
                       r"(\d\.\d{5})$", re.MULTILINE)


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    return write_pets(tmp_path_factory.mktemp("pets"))


def test_only_the_train_layers_change(pets):
    weights = alexnet_files.load_weights(pets / "bvlc_alexnet.npy")
    net = alexnet_finetune.build_graph(weights, ["fc7", "fc8"], 1e-2, seed=0)
    names = sorted(v.op.name for v in net.opt_vars)
    assert names == ["fc7/biases", "fc7/weights", "fc8b", "fc8w"]
    files = sorted((pets / "trainDir").iterdir())[:8]
    feed = {net.x: alexnet_finetune.load_batch(files),
            net.y: alexnet_finetune.one_hot(np.array([pets_data.class_of(f.name)
                                                       for f in files])),
            net.keep_prob: alexnet_finetune.KEEP_PROB}
    with tf_setup.new_session(net.graph) as sess:
        sess.run(net.initializer)
        alexnet_forward.load_params(sess, {k: v for k, v in net.params.items()
                                           if k in net.pretrained}, weights)
        before = sess.run({k: v for k, v in net.params.items()})
        for _ in range(3):
            sess.run(net.optimizer, feed)
        after = sess.run({k: v for k, v in net.params.items()})
    for layer in alexnet_forward.LAYERS:
        changed = not np.array_equal(before[layer][0], after[layer][0])
        assert changed == (layer in ("fc7", "fc8")), layer
    np.testing.assert_array_equal(after["conv1"][0], weights["conv1"][0])


def test_dropout_is_on_in_training_and_off_in_evaluation(pets):
    weights = alexnet_files.load_weights(pets / "bvlc_alexnet.npy")
    net = alexnet_finetune.build_graph(weights, ["fc8"], 1e-3, seed=0)
    batch = alexnet_finetune.load_batch(sorted((pets / "trainDir").iterdir())[:4])
    with tf_setup.new_session(net.graph) as sess:
        sess.run(net.initializer)
        alexnet_forward.load_params(sess, {k: v for k, v in net.params.items()
                                           if k in net.pretrained}, weights)
        first, second = (sess.run(net.prob, {net.x: batch}) for _ in range(2))
        dropped = sess.run(net.prob, {net.x: batch, net.keep_prob: 0.5})
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, dropped)


def test_batches_cover_every_image_each_epoch():
    batches = alexnet_finetune.batches(10, 4, seed=0)
    epoch = np.concatenate([next(batches) for _ in range(3)])
    assert sorted(epoch.tolist()) == list(range(10))


def test_training_lowers_the_loss_and_scores_the_labelled_test_folder(pets, tmp_path):
    result = run_script(PROJECT / "alexnet_finetune.py", "--train-dir", pets / "trainDir",
                        "--test-dir", pets / "testDir", "--weights", pets / "bvlc_alexnet.npy",
                        "--iterations", "30", "--batch-size", "12",
                        "--seed", "1", "--checkpoint-dir", tmp_path / "ck")
    assert result.returncode == 0, result.stderr
    losses = [float(loss) for _, loss, _ in LOSS_LINE.findall(result.stdout)]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    tested = re.search(r"^Testing Accuracy = (\d+\.\d)% \((\d+)/10\)$", result.stdout,
                       re.MULTILINE)
    assert tested and int(tested.group(2)) >= 8, result.stdout
    assert [p.name for p in (tmp_path / "ck").glob("*.index")] == ["model.ckpt-30.index"]


def test_an_unlabelled_folder_gets_a_kaggle_csv(pets, tmp_path):
    unlabelled = tmp_path / "test1"
    unlabelled.mkdir()
    for i in (1, 2, 3):
        (unlabelled / f"{i}.jpg").write_bytes((pets / "testDir" / f"{i}.jpg").read_bytes())
    result = run_script(PROJECT / "alexnet_finetune.py", "--train-dir", pets / "trainDir",
                        "--test-dir", unlabelled, "--weights", pets / "bvlc_alexnet.npy",
                        "--iterations", "2", "--batch-size", "4", "--checkpoint-dir",
                        tmp_path / "ck", "--predictions", tmp_path / "submission.csv")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "submission.csv") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["id", "label"] and sorted(r[0] for r in rows[1:]) == ["1", "2", "3"]
    assert all(r[1] in ("0", "1") for r in rows[1:])


def test_unknown_layers_are_refused(pets, capsys):
    assert alexnet_finetune.main(["--train-dir", str(pets / "trainDir"), "--train-layers",
                                  "fc9", "--weights", str(pets / "bvlc_alexnet.npy")]) == 2
    assert "--train-layers takes names from conv1" in capsys.readouterr().err


@posix_only
def test_ctrl_c_saves_a_checkpoint_and_the_same_command_resumes(pets, tmp_path):
    common = ("--train-dir", pets / "trainDir", "--test-dir", "", "--weights",
              pets / "bvlc_alexnet.npy", "--batch-size", "4", "--seed", "1",
              "--checkpoint-dir", tmp_path / "ck")
    process = start_script(PROJECT / "alexnet_finetune.py", *common, "--iterations", "100000")
    out, err = ctrl_c_when(process, r"^Iter 8,")
    assert process.returncode == 130 and "Traceback" not in err, err
    done = int(re.search(r"interrupted: saved a checkpoint after (\d+) steps", out).group(1))
    assert 2 <= done < 100000
    assert [p.name for p in (tmp_path / "ck").glob("*.index")] == [f"model.ckpt-{done}.index"]
    resumed = run_script(PROJECT / "alexnet_finetune.py", *common, "--iterations", str(done + 2))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {tmp_path / 'ck'} after {done} steps" in resumed.stdout
    steps = [int(images) // 4 for images, _, _ in LOSS_LINE.findall(resumed.stdout)]
    assert steps == [done + 1, done + 2]  # the batches after the saved ones, not from the start


def test_dry_run_saves_nothing(pets, tmp_path):
    result = run_script(PROJECT / "alexnet_finetune.py", "--train-dir", pets / "trainDir",
                        "--test-dir", "", "--weights", pets / "bvlc_alexnet.npy", "--dry-run",
                        "--checkpoint-dir", tmp_path / "ck")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "ck").exists()


def test_the_default_is_the_books_59_steps_ending_at_iter_5900(monkeypatch):
    seen = []
    monkeypatch.setattr(alexnet_finetune, "train_and_test", lambda args: seen.append(args))
    alexnet_finetune.main([])
    assert seen[0].iterations * seen[0].batch_size == 5900
