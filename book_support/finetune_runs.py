"""What alexnet_finetune.py does around the book's training loop, which stays as the book has it.

The book's loop runs its steps once, from the first, and keeps nothing. Around it here:
  * plan: the command-line mistakes argparse cannot see (--train-layers, --test-labels, the
    folders), the photos and their labels, a dry run's few, and the checkpoint folder held (or
    cleared with --restart) before any work;
  * Steps: what the loop iterates over: the steps after those a checkpoint holds, up to
    --iterations, drawn as an uninterrupted run draws them, ending after the step under way at
    Ctrl-C, with a progress line; a photo that cannot be read raises PhotoFailed;
  * SavedSteps: resume from the newest checkpoint, and save the steps done when a photo fails,
    at Ctrl-C and at the end, with the run's settings (book_support/checkpoints.py).
"""

import contextlib
from pathlib import Path
from types import SimpleNamespace

from book_support import checkpoints
from book_support import pets_data
from book_support import plumbing
from book_support import tf_setup

VALIDATION_FRACTION = 0.1
DRY_RUN_IMAGES = 4  # a dry run's largest batch, and the validation and test photos it scores


def plan(args, layer_names):
    """The run the options ask for, checked before any work: its --train-layers, photos,
    labels and settings (`record`: what its checkpoints depend on). A dry run keeps 2 steps of
    a few photos and writes nothing (args.checkpoint_dir and args.predictions become None)."""
    train_layers = checked_layers(args, layer_names)
    seed = 0 if args.seed is None else args.seed
    train_files, train_y, valid_files, valid_y = pets_data.training_set(
        args.train_dir, VALIDATION_FRACTION, seed)
    test_files = pets_data.image_files(args.test_dir) if args.test_dir else []
    test_y = (pets_data.test_labels(args.test_dir, test_files, args.test_labels)
              if test_files else None)
    run = SimpleNamespace(train_layers=train_layers, iterations=args.iterations,
                          batch_size=args.batch_size, display_step=args.display_step, seed=seed,
                          train_files=train_files, train_y=train_y, valid_files=valid_files,
                          valid_y=valid_y, test_files=test_files, test_y=test_y,
                          record=settings_of(args, train_layers, train_files, train_y))
    if args.dry_run:  # a check of the set-up: nothing is written
        run.iterations, run.batch_size = 2, min(args.batch_size, DRY_RUN_IMAGES)
        args.checkpoint_dir, args.predictions = None, None
        run.valid_files, run.valid_y = valid_files[:DRY_RUN_IMAGES], valid_y[:DRY_RUN_IMAGES]
        run.test_files = test_files[:DRY_RUN_IMAGES]
        run.test_y = None if test_y is None else test_y[:DRY_RUN_IMAGES]
    checkpoints.start(args.checkpoint_dir, "--checkpoint-dir", run.record, args.restart)
    return run


def checked_layers(args, layer_names):
    """The --train-layers asked for, after the command-line mistakes argparse cannot see."""
    layers = [layer.strip() for layer in args.train_layers.split(",") if layer.strip()]
    unknown = set(layers) - set(layer_names)
    problem = None
    if unknown or not layers:
        problem = (f"--train-layers takes names from {', '.join(layer_names)}, "
                   f"not {args.train_layers}")
    if args.test_labels and not Path(args.test_labels).is_file():
        problem = problem or f"--test-labels {args.test_labels} does not exist"
    if problem:
        raise plumbing.ArgumentMistake(problem)
    return layers


def settings_of(args, train_layers, train_files, train_y):
    """What a run's checkpoints depend on, recorded with them: the options, and which photos
    (by name: a broken photo replaced by a good one is the same set) with which labels."""
    photos = "\n".join(Path(path).name for path in train_files)
    return {"train_layers": train_layers, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "seed": args.seed,
            checkpoints.DATA: checkpoints.fingerprint(len(train_files), photos, train_y)}


class PhotoFailed(plumbing.UserError):
    """A training photo that cannot be read, met after `steps_done` steps."""

    def __init__(self, message, steps_done):
        super().__init__(message)
        self.steps_done = steps_done


class Steps:
    """(step, batch_x, batch_y) for the steps after the `done` ones up to `iterations`, from
    `batches` (each step's indices, as an uninterrupted run draws them, so that a resumed run
    goes on where it stopped) made into a batch by `make_batch`. Iterating stops after the step
    under way once Ctrl-C is pressed (`stopped` then says so); `done` counts the steps done."""

    def __init__(self, batches, make_batch, done, iterations, ctrl_c):
        self.batches, self.make_batch, self.ctrl_c = batches, make_batch, ctrl_c
        self.first = self.done = done
        self.iterations = iterations

    def __iter__(self):
        progress = plumbing.Progress(self.iterations, "training", unit=" steps",
                                     initial=self.done)
        for step, indices in enumerate(self.batches, start=1):
            if step <= self.first:
                continue
            if step > self.iterations or self.ctrl_c.pressed:
                return
            try:
                batch_x, batch_y = self.make_batch(indices)
            except plumbing.UserError as error:
                raise PhotoFailed(str(error), self.done) from None
            yield step, batch_x, batch_y
            self.done = step
            progress.update()

    @property
    def stopped(self):
        return self.ctrl_c.pressed and self.done < self.iterations


class SavedSteps:
    """The checkpoints of a fine-tuning run in `folder` (--checkpoint-dir; None in a dry run),
    recorded with its settings `record`. They hold what training changes (net.saver's
    variables: the trainable layers, Adam's state, the steps done), not the frozen weights."""

    def __init__(self, sess, net, folder, record):
        self.saved = checkpoints.CheckpointFolder(folder, net.saver, "--checkpoint-dir")
        self.sess, self.net, self.record = sess, net, record

    def resume(self, iterations):
        """After the pretrained weights are loaded: the newest checkpoint over them, if any;
        returns the steps it holds."""
        if self.saved.restore(self.sess) is None:
            return 0
        steps_done = int(self.sess.run(self.net.steps_done))
        self.saved.refuse_if_past(steps_done, iterations, "steps", "--iterations")
        print(f"resuming from {self.saved.folder} after {steps_done} steps")
        return steps_done

    def save(self, steps_done):
        tf_setup.load_variable(self.sess, self.net.steps_done, steps_done)
        return self.saved.save(self.sess, steps_done, self.record)

    @contextlib.contextmanager
    def kept_when_a_photo_fails(self, steps):
        """A photo that cannot be read stops the run, with the steps done this run saved first
        and then said, so the same command resumes once the photo is replaced."""
        try:
            yield
        except PhotoFailed as failure:
            if not self.saved.folder or failure.steps_done == steps.first:
                raise
            checkpoint = self.save(failure.steps_done)
            raise plumbing.UserError(f"{failure}; the {failure.steps_done} steps done are saved "
                                     f"to {checkpoint}: replace or remove the photo, then run "
                                     f"the same command to resume") from None

    def save_interrupted(self, steps_done):
        if self.saved.folder:
            checkpoint = self.save(steps_done)
            print(f"interrupted: saved a checkpoint after {steps_done} steps to "
                  f"{checkpoint}; run the same command to resume")

    def save_finished(self, steps_done):
        if self.saved.folder:
            checkpoint = self.save(steps_done)
            print(f"saved a checkpoint to {checkpoint}")
