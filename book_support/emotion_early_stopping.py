"""`emotion_cnn.py --patience N`: early stopping, with the best checkpoint kept.

The checkpoint with the lowest validation loss is kept in LOGS_DIR/best (where `--mode test`
and emotion_test.py look first), and training stops once N validations in a row have not
lowered it. Where the count stands is one entry of the run's record, LOGS_DIR/run.json
(`early_stopping`: the best loss, its step, the validations since), beside the settings: a
rerun picks the count up, and best/ holds nothing but the checkpoint's files.
"""

from book_support import tf_setup
from book_support.checkpoints import BEST, CheckpointFolder

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

ENTRY = "early_stopping"  # its key in run.json


class EarlyStopping:
    """`saved` is the run's CheckpointFolder (LOGS_DIR, or None for a dry run), whose record
    holds the count; `net.saver` the graph's saver, whose ops the best checkpoint shares."""

    def __init__(self, net, saved, patience):
        self.saved, self.patience = saved, patience
        self.folder = saved.folder / BEST if saved.folder else None
        self.best = CheckpointFolder(self.folder, keeping_one(net.saver), saved.option,
                                     recorded=False)
        kept = self.best.newest()
        if kept:  # a resumed run's next best replaces it
            self.best.saver.recover_last_checkpoints([kept])
        self.best_loss, self.best_step, self.since_best = recorded_count(saved)

    def has_stopped(self):
        return self.since_best >= self.patience

    def update(self, session, loss, step):
        """Record one validation; True when training should stop. The record follows the best
        checkpoint, so it never names a best that best/ does not hold."""
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.since_best = loss, step, 0
            self.best.save(session, step)
        else:
            self.since_best += 1
        self.saved.update_record(**{ENTRY: {"best_loss": self.best_loss,
                                            "best_step": self.best_step,
                                            "since_best": self.since_best}})
        return self.has_stopped()

    def verdict(self):
        kept = f", kept in {self.folder}" if self.folder else ""
        return (f"early stop: {self.since_best} validations without a lower loss; the best was "
                f"{self.best_loss:.6f} at step {self.best_step}{kept}")


def recorded_count(saved):
    """(best loss, its step, validations since) from the record's entry (its kinds checked
    where every entry's are: checkpoints.RECORD_SHAPE); a fresh count when there is none."""
    entry = saved.record().get(ENTRY)
    if entry is None:
        return float("inf"), None, 0
    return float(entry["best_loss"]), entry["best_step"], entry["since_best"]


def keeping_one(saver):
    """A saver that keeps only its newest checkpoint, sharing `saver`'s save and restore ops:
    a finalized graph can take no new ones, and the book's graph needs none."""
    saver_def = tf.train.SaverDef()
    saver_def.CopyFrom(saver.as_saver_def())
    saver_def.max_to_keep = 1
    return tf.train.Saver(saver_def=saver_def)
