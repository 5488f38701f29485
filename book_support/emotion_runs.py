"""What wraps emotion_cnn.py's training loop (the book's, which stays in the script).

A TrainingRun is the loop's company: it resumes from the newest checkpoint in LOGS_DIR (or
starts a fresh network), hands the loop its steps until Ctrl-C is pressed, shows progress with
an ETA, writes TensorBoard's summaries, stops on a loss that is not finite, keeps the training
curves (at each validation: its loss and accuracy, and those of the training batches since the
last one; in TensorBoard, and in the record, so that they survive a resume), saves each
validation's checkpoint with the run's settings and curves, gives early stopping its turn
(book_support/emotion_early_stopping.py), after the loop saves the step Ctrl-C stopped at, and
draws the curves for --plot (book_support/training_curves.py). A dry run (LOGS_DIR None) neither
resumes nor writes anything. restore_for_testing restores the checkpoint `--mode test` scores.

    with session as sess, TrainingRun(net, logs_dir, iterations, settings) as training:
        if training.start(sess):      # False: early stopping had stopped this run before
            loop(sess, training)      # for step in training.steps(): ... training.save(...)
        return training.finish(sess)  # the exit code: 0, or 130 after Ctrl-C
"""

import numpy as np

from book_support import plumbing
from book_support import tf_setup, training_curves
from book_support.checkpoints import CheckpointFolder, preferred_folder
from book_support.emotion_early_stopping import EarlyStopping
from book_support.emotion_options import training_command

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

KEPT = "the last checkpoint saved is kept"  # what a diverged run leaves
ADVICE = "try another --seed or --batch-size"
CURVES = "validations"  # the curves' entry in the record (checkpoints.RECORD_SHAPE)


class TrainingRun:
    """`net`: the graph's tensors (saver, initializer, global_step, graph); `logs_dir`: a Path,
    or None for a dry run; `settings`: what the checkpoints depend on, recorded with them;
    `patience`: early stopping's (0: never); `identify`: for CheckpointFolder, the sentence
    for a checkpoint of another network; `plot`: where --plot draws the curves, or None."""

    def __init__(self, net, logs_dir, iterations, settings, patience=0, identify=None,
                 plot=None):
        self.net, self.logs_dir, self.iterations = net, logs_dir, iterations
        self.settings, self.patience = settings, patience
        self.plot = plot if logs_dir else None  # a dry run draws nothing either
        self.saved = CheckpointFolder(logs_dir, net.saver, "--logs-dir", identify=identify,
                                      fallback=getattr(net, "restore_by_value", None))
        self.ctrl_c = plumbing.CtrlC()
        self.stopper = self.summary_writer = self.progress = None
        self.first = self.steps_done = 0
        self.last_step = iterations - 1
        self.validations = []  # the curves: a point at each validation
        self.batches = []  # (loss, accuracy) of each training step since the last validation

    def __enter__(self):
        self.ctrl_c.__enter__()
        return self

    def __exit__(self, *exception):
        if self.summary_writer:
            self.summary_writer.close()
        return self.ctrl_c.__exit__(*exception)

    def start(self, session):
        """Resume or initialise the network; False when early stopping had already stopped
        this run (nothing is left to train)."""
        latest = self.saved.restore_or_initialize(session, lambda s: s.run(self.net.initializer))
        self.first = self.steps_done = int(session.run(self.net.global_step))
        self.saved.refuse_if_past(self.first, self.iterations, "iterations", "--iterations")
        if latest:
            print("Model Restored!")
            print(f"resuming from {latest} at step {self.first}")
            # A record one save ahead of the checkpoint (see checkpoints.py) holds a validation
            # this run will make again.
            self.validations = [entry for entry in self.saved.record().get(CURVES, [])
                                if entry["step"] < self.first]
        if self.patience:
            self.stopper = EarlyStopping(self.net, self.saved, self.patience)
            if self.stopper.has_stopped():
                print(self.stopper.verdict())
                self.draw_curves()
                return False
        if self.logs_dir:  # after the restore: a checkpoint that cannot be restored leaves no file
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            with self.net.graph.as_default():  # FileWriter refuses to start in eager mode
                self.summary_writer = tf.summary.FileWriter(
                    str(self.logs_dir), self.net.graph,
                    filename_suffix=training_curves.unique_suffix())
        self.progress = plumbing.Progress(max(self.iterations - self.first, 0), "training",
                                          unit=" steps")
        return True

    def steps(self):
        """The steps left, from the checkpoint's; none after Ctrl-C (checked between steps)."""
        for step in range(self.first, self.iterations):
            if self.ctrl_c.pressed:
                return
            yield step

    def step_done(self, step, loss, accuracy):
        """A training step done, with its batch's cross-entropy and accuracy (with dropout)."""
        plumbing.stop_if_not_finite(loss, f"step {step}", KEPT, ADVICE)
        self.batches.append((loss, accuracy))
        self.steps_done = step + 1
        self.progress.update()

    def training_loss(self, step, loss, summary):
        plumbing.stop_if_not_finite(loss, f"step {step}", KEPT, ADVICE)
        if self.summary_writer:
            self.summary_writer.add_summary(summary, global_step=step)

    def validation(self, step, loss, accuracy):
        """A validation's loss and accuracy: with the training batches' means since the last
        one, a point of the curves, written to TensorBoard and kept for the record."""
        plumbing.stop_if_not_finite(loss, f"step {step} (validation)", KEPT, ADVICE)
        train_loss, train_accuracy = np.mean(self.batches, axis=0)
        self.batches = []
        entry = {"step": step, "train_loss": float(train_loss),
                 "train_accuracy": float(train_accuracy), "validation_loss": float(loss),
                 "validation_accuracy": float(accuracy)}
        self.validations.append(entry)
        if self.summary_writer:
            self.summary_writer.add_summary(training_curves.summary(entry), global_step=step)

    def save(self, session, step):
        """The checkpoint of `step`, with the record of the run's settings and curves; its
        path."""
        return self.saved.save(session, step, self.settings, **{CURVES: self.validations})

    def stops_early(self, session, loss, step):
        """Early stopping's turn after a validation (with --patience): True to stop."""
        if self.stopper and self.stopper.update(session, loss, step):
            print(self.stopper.verdict())
            return True
        return False

    def finish(self, session):
        """After the loop: the checkpoint Ctrl-C leaves and the exit code (130 after Ctrl-C)."""
        if self.ctrl_c.pressed and self.steps_done < self.iterations:
            # Named, as the book names its checkpoints, by the last step done.
            if self.logs_dir and self.steps_done > self.first:
                path = self.save(session, self.steps_done - 1)
                print(f"interrupted after step {self.steps_done - 1}: saved {path}; run the "
                      f"same command to resume")
            elif self.logs_dir:
                print("interrupted before the first step: nothing new to save")
            return 130
        if self.first >= self.iterations:
            print(f"{self.logs_dir} already holds the {self.iterations} iterations asked for")
        else:
            self.progress.close()
        self.draw_curves()
        return 0

    def draw_curves(self):
        """--plot: the curves of every validation so far (a resumed run's included)."""
        if not self.plot:
            return
        if not self.validations:
            print(f"--plot: {self.logs_dir} holds no validations to draw (its run was made "
                  f"before the curves were kept)")
            return
        training_curves.plot(self.validations, "step", self.plot,
                             f"emotion CNN ({self.net.model} network)")
        print(f"saved the training curves to {self.plot}")


def restore_for_testing(session, net, logs_dir, command_line, identify=None):
    """Restore the checkpoint `--mode test` scores: the best one early stopping kept, else the
    newest; with none, one line saying how to train it. Returns its path."""
    folder = preferred_folder(logs_dir)
    checkpoint = CheckpointFolder(folder, net.saver, "--logs-dir", identify=identify,
                                  fallback=getattr(net, "restore_by_value", None)).restore(session)
    if checkpoint is None:
        raise plumbing.UserError(f"no checkpoint in {logs_dir}: train first "
                                 f"({training_command(command_line)})")
    return checkpoint
