"""TensorFlow set-up for the chapter's graphs: quiet start-up, devices, sessions, seeds.

Holds tensorflow_logging_quieted (wrap `import tensorflow` in it), native_stderr_silenced,
add_device_option (the scripts' --cpu) and configure_devices (GPUs hidden for --cpu, memory
growth otherwise), make_deterministic, new_session (allow_growth; bf16/fp16 rewrites on
request), load_variable, and count_weights. TensorFlow is imported inside the functions, so
importing this module costs nothing.
"""

import contextlib
import os
import sys

from book_support.plumbing import program_name

def user_wants_tensorflow_logs():
    """True when TF_CPP_MIN_LOG_LEVEL asks for info lines (0 or 1); the default quiets them."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2").strip() in ("0", "1")


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for the block, unless the user asked for TF logs.

    TensorFlow's native libraries print start-up lines (oneDNN, "could not find cuda drivers",
    a cuInit *error* on every CPU-only machine) before TF_CPP_MIN_LOG_LEVEL is read, straight to
    the process's stderr, where Python cannot filter them.
    """
    if user_wants_tensorflow_logs():
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def tensorflow_logging_quieted():
    """Wrap `import tensorflow...` in this so that the book's output is not buried in logs, and
    so that a Ctrl-C while TensorFlow loads (seconds) ends the script as a Ctrl-C at any other
    moment does: one line and exit 130, not a traceback from inside TensorFlow's import."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with native_stderr_silenced():
            yield
    except KeyboardInterrupt:
        print(f"{program_name()}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    if not user_wants_tensorflow_logs():
        import tensorflow as tf
        tf.get_logger().setLevel("ERROR")  # deprecation notices of the compat.v1 API


def configure_devices(cpu_only=False):
    """Hide GPUs for `--cpu`, let the rest grow their memory on demand; return a description.

    Must run before the first session is created: TensorFlow fixes its devices then.
    """
    import tensorflow as tf

    with native_stderr_silenced():
        gpus = tf.config.list_physical_devices("GPU")
    if cpu_only and gpus:
        tf.config.set_visible_devices([], "GPU")
        return "CPU (GPUs hidden by --cpu)"
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # already initialised: keep its setting
            tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        return f"{len(gpus)} GPU(s): " + ", ".join(gpu.name for gpu in gpus)
    return "CPU"


def make_deterministic(seed):
    """Seed NumPy's global generator and ask TensorFlow for deterministic kernels.

    TensorFlow's random ops are seeded by the graph each script builds (tf.set_random_seed
    inside it): a seed set here would not reach a graph made later. Both are needed for same
    seed, same numbers: graph-level seeds alone leave multi-threaded reductions free to sum in
    any order.

    With `seed` None, the opposite: NumPy reseeded from the system and TensorFlow's kernels
    free, as in a new process (a second main() in one process, a notebook's, must not inherit
    the first's determinism: it refuses random ops without a seed).
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework import config  # the only way back: no public API

    np.random.seed(seed)
    if seed is None:
        config.disable_op_determinism()
    else:
        tf.config.experimental.enable_op_determinism()


def seeded_dropout(dropout_seed):
    """tf.nn.dropout whose masks follow a fed seed (an int64 [2] tensor), a fresh one for each
    layer it is called for, instead of a random stream that restarts with every session: a run
    resumed from a checkpoint then drops exactly what the uninterrupted run would have."""
    import tensorflow.compat.v1 as tf

    layers = []

    def dropout(x, rate):
        layers.append(x)
        seed = tf.stack([dropout_seed[0], dropout_seed[1] + len(layers)])
        return tf.nn.experimental.stateless_dropout(x, rate=rate, seed=seed)
    return dropout


def load_variable(session, variable, value):
    """Set a variable of `session`'s graph to a NumPy value by feeding its initializer: no new
    op, so it works on a finalized graph, and it works outside `with session:` too (where
    Variable.load alone would try, and fail, to assign eagerly)."""
    with session.graph.as_default():
        variable.load(value, session)


def new_session(graph, precision="fp32", float16_on_gpus=True):
    """A `tf.compat.v1.Session` for `graph` that takes GPU memory as it needs it.

    precision "bf16" turns on TensorFlow's mixed-precision graph rewrites: bfloat16 through
    oneDNN on CPUs that have it, float16 on GPUs unless `float16_on_gpus` is False (training
    in float16 needs loss scaling, which the rewrite does not add). The graph itself stays
    float32.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import rewriter_config_pb2

    config = tf.compat.v1.ConfigProto()
    config.gpu_options.allow_growth = True
    if precision == "bf16":
        rewrites = config.graph_options.rewrite_options
        rewrites.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
        if float16_on_gpus:
            rewrites.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
    return tf.compat.v1.Session(graph=graph, config=config)


def add_device_option(parser):
    """--cpu, the same in every script: hide the GPUs for one run."""
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is there")


def count_weights(variables):
    """The number of numbers in `variables` (a network's weights and biases)."""
    import numpy as np

    return sum(int(np.prod(variable.get_shape().as_list())) for variable in variables)
