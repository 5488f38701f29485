"""What lenet_mnist.py does around the book's loop: the settings a run's checkpoints depend on,
resuming from the newest checkpoint (with the history of the epochs before it), saving after
each whole epoch, and the line a Ctrl-C leaves (book_support/checkpoints.py does the files)."""

from book_support import checkpoints, tf_setup


def settings_of(args, train):
    """What a run's checkpoints depend on, recorded with them: the options, and the training
    images and labels themselves."""
    return {"batch_size": args.batch_size, "validation_size": args.validation_size,
            "seed": args.seed, checkpoints.DATA: checkpoints.fingerprint(
                len(train.images), train.images, train.labels)}


def resume(session, net, saved, epochs):
    """(epochs done, history) from the newest checkpoint, or (0, []) for a fresh network. A
    checkpoint past `epochs` is refused: its result is not this run's."""
    latest = saved.restore_or_initialize(session, lambda s: s.run(net.initializer))
    if latest is None:
        return 0, []
    epochs_done = int(session.run(net.epochs_done))
    saved.refuse_if_past(epochs_done, epochs, "epochs", "--epochs")
    print(f"resuming from {saved.folder} after {epochs_done} epochs")
    return epochs_done, saved.record().get("history", [])[:epochs_done]


def save(session, net, saved, epochs_done, settings, history):
    tf_setup.load_variable(session, net.epochs_done, epochs_done)
    saved.save(session, epochs_done, settings, history=history)


def interrupted(saved, epochs_done):
    # The epoch under way is dropped: its half-trained weights saved as the end of the last
    # epoch would train those batches twice after a resume.
    if saved.folder and epochs_done:
        print(f"interrupted: the checkpoint after {epochs_done} epochs in {saved.folder} is "
              f"kept; run the same command to resume")
    else:
        print("interrupted in the first epoch: nothing to keep")
    return 130
