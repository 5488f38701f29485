"""checkpoints.CheckpointFolder, the one checkpoint mechanism of the three training scripts."""

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from book_support import tf_setup
from book_support.checkpoints import BEST, CheckpointFolder, preferred_folder
from book_support.plumbing import UserError

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf


def tiny_model(name="weights"):
    graph = tf.Graph()
    with graph.as_default():
        variable = tf.Variable(np.zeros(3, np.float32), name=name)
        saver, initializer = tf.train.Saver(), tf.global_variables_initializer()
    graph.finalize()
    return SimpleNamespace(graph=graph, variable=variable, saver=saver, initializer=initializer)


def save_values(folder, values, step=4, **record):
    model = tiny_model()
    checkpoints = CheckpointFolder(folder, model.saver, "--checkpoint-dir")
    with tf_setup.new_session(model.graph) as session:
        session.run(model.initializer)
        tf_setup.load_variable(session, model.variable, np.array(values, np.float32))
        return checkpoints.save(session, step, {"seed": 1}, **record)


def restored_values(folder, name="weights", identify=None):
    """(the values restored, the path restored, whether it initialised instead)."""
    model = tiny_model(name)
    checkpoints = CheckpointFolder(folder, model.saver, "--checkpoint-dir", identify)
    initialised = []
    with tf_setup.new_session(model.graph) as session:
        path = checkpoints.restore_or_initialize(
            session, lambda s: initialised.append(s.run(model.initializer)))
        return session.run(model.variable).tolist(), path, bool(initialised)


def test_a_save_resumes_with_its_record(tmp_path):
    assert restored_values(tmp_path / "ck") == ([0, 0, 0], None, True)
    history = [{"epoch": 0, "train_loss": 0.5, "validation_loss": 0.4,
                "test_sample_accuracy": 0.9, "validation_accuracy": 0.875}]
    path = save_values(tmp_path / "ck", [7, 8, 9], history=history)
    assert path == str(tmp_path / "ck" / "model.ckpt-4")
    assert restored_values(tmp_path / "ck") == ([7, 8, 9], path, False)
    record = CheckpointFolder(tmp_path / "ck", None, "--checkpoint-dir").record()
    assert record == {"settings": {"seed": 1}, "history": history}


def test_a_folder_moved_and_named_by_its_new_absolute_path_resumes(tmp_path):
    save_values((tmp_path / "before").resolve(), [1, 2, 3])
    shutil.move(tmp_path / "before", tmp_path / "after")
    values, path, initialised = restored_values((tmp_path / "after").resolve())
    assert values == [1, 2, 3] and not initialised
    assert path == str((tmp_path / "after" / "model.ckpt-4").resolve())


def test_another_models_checkpoint_is_one_line(tmp_path):
    save_values(tmp_path / "ck", [1, 2, 3])
    with pytest.raises(UserError, match="holds a checkpoint of another model; choose another "
                                        "--checkpoint-dir"):
        restored_values(tmp_path / "ck", name="other")
    said = lambda checkpoint, names: f"{checkpoint} holds {sorted(names)}"  # noqa: E731
    with pytest.raises(UserError, match=r"model.ckpt-4 holds \['weights'\]"):
        restored_values(tmp_path / "ck", name="other", identify=said)


@pytest.mark.parametrize("damage, words", [
    ("data", "is missing its .data file"),
    ("index text", "checkpoint cannot be read"),
    ("index empty", "checkpoint cannot be read"),
    ("index names a lost file", "names the checkpoint model.ckpt-9, whose files are not there"),
])
def test_a_damaged_checkpoint_is_one_line_and_never_a_fresh_start(tmp_path, damage, words):
    save_values(tmp_path / "ck", [1, 2, 3])
    index = tmp_path / "ck" / "checkpoint"
    if damage == "data":
        for data in (tmp_path / "ck").glob("model.ckpt-4.data-*"):
            data.unlink()
    elif damage == "index text":
        index.write_bytes(b"\x00\xff not a checkpoint state {{")
    elif damage == "index empty":
        index.write_bytes(b"")
    else:
        index.write_text('model_checkpoint_path: "model.ckpt-9"\n')
    with pytest.raises(UserError, match=words):
        restored_values(tmp_path / "ck")


def test_a_dry_run_reads_and_writes_nothing(tmp_path):
    model = tiny_model()
    checkpoints = CheckpointFolder(None, model.saver, "--checkpoint-dir")
    with tf_setup.new_session(model.graph) as session:
        assert checkpoints.restore_or_initialize(session, lambda s: s.run(model.initializer)) \
            is None
        assert checkpoints.save(session, 1, {"seed": 1}) is None
    assert checkpoints.record() == {} and not list(tmp_path.iterdir())


def test_the_best_folder_is_preferred_once_it_holds_a_checkpoint(tmp_path):
    assert preferred_folder(tmp_path) == tmp_path
    (tmp_path / BEST).mkdir()
    assert preferred_folder(tmp_path) == tmp_path  # an empty best/ is not a checkpoint
    save_values(tmp_path / BEST, [1, 2, 3])
    assert preferred_folder(tmp_path) == tmp_path / BEST


def test_a_failed_save_puts_the_last_record_back_also_without_hard_links(tmp_path,
                                                                        monkeypatch):
    from book_support import checkpoints
    save_values(tmp_path / "ck", [1, 2, 3], step=4, epoch=4)
    before = (tmp_path / "ck" / "run.json").read_bytes()

    def no_links(source, target):
        raise OSError(1, "Operation not permitted")  # as exFAT or a network share answers
    monkeypatch.setattr(checkpoints.os, "link", no_links)
    model = tiny_model()
    folder = CheckpointFolder(tmp_path / "ck", model.saver, "--checkpoint-dir")
    monkeypatch.setattr(model.saver, "save", lambda *args, **kwargs: (_ for _ in ()).throw(
        OSError(28, "No space left on device")))
    with tf_setup.new_session(model.graph) as session:
        session.run(model.initializer)
        with pytest.raises(UserError, match=r"the disk is full: step 5 could not be saved .*"
                                            r"model.ckpt-4 is kept"):
            folder.save(session, 5, {"seed": 1}, epoch=5)
    assert (tmp_path / "ck" / "run.json").read_bytes() == before
    assert sorted(path.name for path in (tmp_path / "ck").iterdir()
                  if not path.name.startswith("model.ckpt-4.")) == ["checkpoint", "run.json"]
