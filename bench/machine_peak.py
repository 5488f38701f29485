"""The machine's compute peak, measured: what a benchmark's GFLOP/s are a fraction of."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from book_support import tf_setup


def matmul_peak_gflops(dtype="float32", size=4096, repeats=5):
    """GFLOP/s of a size x size matmul in `dtype` through TensorFlow's own kernels."""
    with tf_setup.tensorflow_logging_quieted():
        import tensorflow.compat.v1 as tf
    graph = tf.Graph()
    with graph.as_default():
        a = tf.Variable(tf.cast(tf.random_normal([size, size]), dtype))
        b = tf.Variable(tf.cast(tf.random_normal([size, size]), dtype))
        corner = tf.matmul(a, b)[0, 0]  # fetch one number, not the whole product
    with tf_setup.new_session(graph) as session:
        session.run(tf.global_variables_initializer())
        session.run(corner)
        started = time.perf_counter()
        for _ in range(repeats):
            session.run(corner)
        return repeats * 2 * size ** 3 / (time.perf_counter() - started) / 1e9


if __name__ == "__main__":
    print(f"fp32 matmul peak: {matmul_peak_gflops():.0f} GFLOP/s")
