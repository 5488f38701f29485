"""emotion_cnn.py's command line beyond the book's three flags (data_dir, logs_dir, mode): the
run's options (length, batch, seed, restart, dry run, device) and those that switch the extras
on (each off by default, so that the book's run stays the book's); the mistakes refused before
any work; the settings a checkpoint is recorded with; the sentences for a checkpoint of the
other network and for a test with nothing to test.
"""

import shlex
from types import SimpleNamespace

from book_support import checkpoints, file_roles, plumbing, tf_setup

MODELS = {
    # marker: a variable only a checkpoint of that network holds;
    # bytes_per_face: what a training step's peak memory grows by per face in the batch
    # (measured on the CPU, batch 16 against 400: 1.09 MB book, 1.88 MB vgg), rounded up
    "book": SimpleNamespace(marker="W_conv1", bytes_per_face=1_200_000),
    "vgg": SimpleNamespace(marker="vgg/conv1a/W", bytes_per_face=2_000_000),
}


def add_options(parser, iterations, batch_size, evaluate_every):
    """The run's options, then the group "beyond the book"; the defaults are the book's
    MAX_ITERATIONS, BATCH_SIZE and validation interval."""
    parser.add_argument("--iterations", type=plumbing.count(1), default=iterations,
                        help="training steps in all (the book's 1001)")
    parser.add_argument("--batch-size", type=plumbing.count(1), default=batch_size,
                        help="faces per training step")
    parser.add_argument("--seed", type=plumbing.seed, default=None,
                        help="seed for weights and dropout, with deterministic kernels. "
                             "Default: random (the validation split always uses seed 0)")
    parser.add_argument("--restart", action="store_true",
                        help="start over: remove the checkpoints in --logs-dir first")
    parser.add_argument("--dry-run", action="store_true",
                        help="train 3 iterations to check the set-up; nothing is written")
    tf_setup.add_device_option(parser)
    file_roles.writes(parser.add_argument(
        "--plot", metavar="PATH", default=None,
        help="after training, save the loss and accuracy curves, training and validation, as "
             "a PNG (a new file); also from a finished run's LOGS_DIR"))
    parser.add_argument("--overwrite", action="store_true",
                        help="let --plot replace an existing file")
    beyond = parser.add_argument_group("beyond the book")
    beyond.add_argument("--model", choices=sorted(MODELS), default="book",
                        help="the book's network, or vgg: deeper, with batch norm "
                             "(book_support/emotion_vgg.py; README: how it scores)")
    beyond.add_argument("--augment", action="store_true",
                        help="train on randomly flipped, shifted and zoomed faces")
    beyond.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                        help="learning rate: constant (the book's), or cosine from it "
                             "to 0 at --iterations")
    beyond.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam",
                        help="the book's Adam, or sgd: SGD with Nesterov momentum 0.9 (as the "
                             "best single FER2013 network was trained)")
    beyond.add_argument("--learning-rate", type=plumbing.number(positive=True), default=None,
                        metavar="RATE", help="the optimizer's (peak) learning rate. Default: "
                        + ", ".join(f"{rate:g} for {name}" for name, rate in OPTIMIZERS.items()))
    beyond.add_argument("--erase", type=plumbing.share, default=0.0, metavar="P",
                        help="with --augment: erase a random rectangle of a share P of the "
                             "training faces (random erasing)")
    beyond.add_argument("--label-smoothing", type=plumbing.share, default=0.0, metavar="S",
                        help="train towards 1-S on the right emotion, S spread over all seven")
    beyond.add_argument("--adjust-logits", action="store_true",
                        help="with --model vgg: after training, lower each emotion's logit "
                             "by tau x log(its share of the training faces), tau chosen on the "
                             "validation faces, so that rare ones (disgust) are answered too "
                             "(book_support/emotion_logit_adjustment.py)")
    beyond.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: train in bfloat16 where the CPU has it (AVX-512 BF16 or "
                             "AMX; 1.5-1.6x the faces/s here), through TensorFlow's oneDNN "
                             "rewrite; elsewhere, GPUs included, the run stays float32")
    beyond.add_argument("--tta", action="store_true",
                        help="--mode test: average each face's probabilities with its mirror "
                             "image's (test-time augmentation, twice the work per face)")
    beyond.add_argument("--patience", type=plumbing.count(0), default=0, metavar="N",
                        help="stop after N validations without a lower validation loss, the "
                             "best checkpoint kept in LOGS_DIR/best (0: never stop early)")
    beyond.add_argument("--eval-every", type=plumbing.count(1), default=evaluate_every,
                        metavar="STEPS",
                        help="steps between validations and checkpoints (the book's 100)")
    for action in parser._actions:  # the parser refuses them in the other mode (exit 2)
        if action.dest in TRAINING_ONLY:
            plumbing.applies_only(action, "to training (--mode train)",
                                  lambda args: args.mode == "train")
    plumbing.applies_only(next(action for action in parser._actions if action.dest == "tta"),
                          "with --mode test", lambda args: args.mode == "test")


TRAINING_ONLY = {"iterations", "batch_size", "seed", "restart", "augment", "schedule", "erase",
                 "label_smoothing", "precision", "patience", "eval_every", "plot", "optimizer",
                 "learning_rate", "adjust_logits"}

OPTIMIZERS = {"adam": 1e-3, "sgd": 0.01}  # each one's default learning rate (adam: the book's)


def learning_rate(args):
    """--learning-rate, or the optimizer's default."""
    return args.learning_rate if args.learning_rate is not None else OPTIMIZERS[args.optimizer]


def before_any_work(args):
    """Refuse a batch that cannot fit in memory, --erase without --augment (the files and
    folders the options name were checked before: book_support/file_roles.py)."""
    if args.mode == "train":
        problem = batch_problem(args, plumbing.available_memory_bytes())
        if problem:
            raise plumbing.ArgumentMistake(problem)
    if args.erase and not args.augment:
        raise plumbing.ArgumentMistake("--erase erases part of augmented faces: add --augment")
    if args.adjust_logits and args.model != "vgg":
        raise plumbing.ArgumentMistake("--adjust-logits adjusts the vgg network: add --model vgg")
    if args.adjust_logits and args.patience:
        raise plumbing.ArgumentMistake("--adjust-logits adjusts the last checkpoint, --patience "
                                       "tests the best one: choose one of them")
    if args.mode == "train" and not args.dry_run:  # held first: a second run is refused at once
        checkpoints.lock(args.logs_dir, "--logs-dir")



def hold_logs(args, data):
    """To train: hold LOGS_DIR, and refuse a rerun with other settings or on other faces
    (checkpoints.start); nothing for a test or a dry run."""
    if args.mode == "train" and not args.dry_run:
        args.training_data = checkpoints.fingerprint(len(data.train_images),
                                                     data.train_images, data.train_labels)
        checkpoints.start(args.logs_dir, "--logs-dir", settings_of(args), args.restart)


def asks_for_extras(args):
    """Whether the options ask for more than the book's graph."""
    return (args.model != "book" or args.augment or args.schedule != "constant" or args.erase
            or args.label_smoothing or args.optimizer != "adam"
            or learning_rate(args) != OPTIMIZERS["adam"])


def batch_problem(args, free):
    """Why one training step of --batch-size faces cannot fit in `free` bytes, or None."""
    needed = args.batch_size * MODELS[args.model].bytes_per_face
    if free is not None and needed > free:
        return (f"--batch-size {args.batch_size:,} needs about {needed / 2**30:,.1f} GiB for "
                f"one step and {free / 2**30:.1f} GiB are free; choose a smaller --batch-size")
    return None


def settings_of(args):
    """What a run's checkpoints depend on, recorded with them (a cosine schedule's length
    too: it sets every step's rate; and the faces trained on, once hold_logs has read them)."""
    settings = {"model": args.model, "batch_size": args.batch_size, "augment": args.augment,
                "schedule": args.schedule, "seed": args.seed, "erase": args.erase,
                "label_smoothing": args.label_smoothing, "optimizer": args.optimizer,
                "learning_rate": learning_rate(args)}
    if args.schedule == "cosine":
        settings["iterations"] = args.iterations
    if getattr(args, "training_data", None):
        settings[checkpoints.DATA] = args.training_data
    return settings


def other_network(net):
    """For CheckpointFolder: the sentence for a checkpoint of the other --model."""
    def identify(checkpoint, names):
        other = next((name for name, model in MODELS.items() if model.marker in names), None)
        if other and other != net.model:
            return (f"{checkpoint} is a checkpoint of the {other!r} network, not "
                    f"{net.model!r}: add --model {other}, or choose another --logs-dir")
        return None
    return identify


def training_command(argv):
    """The command that trains what the --mode test command line `argv` tests."""
    words, skip = [], False
    for word in argv:
        if skip or word in ("--mode", "--tta") or word.startswith("--mode="):
            skip = word == "--mode"
            continue
        words.append(word)
    return "python emotion_cnn.py " + shlex.join(words)


def next_steps(args, checkpoint, parser):
    """What a finished training run says last: its checkpoint, and the commands that test it,
    read a photo with it and show its curves (with this run's folders and network, where not
    `parser`'s defaults)."""
    def given(*dests):
        return "".join(f" --{dest.replace('_', '-')} {shlex.quote(str(getattr(args, dest)))}"
                       for dest in dests if getattr(args, dest) != parser.get_default(dest))
    return "\n".join([
        f"checkpoint: {checkpoint}",
        f"next: python emotion_cnn.py --mode test{given('data_dir', 'logs_dir', 'model')}"
        f"   # accuracy and the confusion matrix on the test faces",
        f"      python emotion_test.py PHOTO{given('logs_dir')}   # the emotion on a photo",
        f"      tensorboard --logdir {shlex.quote(str(args.logs_dir))}   # the training curves"])
