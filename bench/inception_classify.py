"""classify_image.py's loop on a full-size Inception-v3: images/second and GFLOP/s at batch 1.

A Keras InceptionV3(weights=None) (random weights, the real architecture) is frozen into a
GraphDef behind a JPEG-decoding input and renamed to the tutorial's tensor names
(`DecodeJpeg/contents:0`, `softmax:0`, `pool_3:0`), then driven by classify_image.py's own
functions: JPEG bytes in, top-5 lines out, graph loaded once. The peer is the same Keras model
called directly on already-decoded 299x299 arrays, in the same run. Inception-v3 costs 5.7 GMAC
(11.4 GFLOP) per 299x299 image.

    python bench/inception_classify.py --image ../shared/data/images/inception_example.jpg
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import classify_image  # noqa: E402  (the project root is not a package)
from book_support import inception_files  # noqa: E402
from book_support import tf_setup  # noqa: E402

GFLOP_PER_IMAGE = 2 * 5.7


def frozen_inception():
    """(GraphDef with the tutorial's tensor names, the Keras model it was frozen from)."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    model = keras.applications.InceptionV3(weights=None)
    features = keras.Model(model.input, [model.get_layer("avg_pool").output, model.output])

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="contents")])
    def classify(contents):
        image = tf.cast(tf.io.decode_jpeg(contents, channels=3), tf.float32)
        image = tf.image.resize(image[tf.newaxis], [299, 299])
        pooled, probabilities = features((image - 128.0) / 128.0, training=False)
        return (tf.identity(tf.reshape(pooled, [1, 1, 1, -1]), name="pool_3"),
                tf.identity(probabilities, name="softmax"))

    graph_def = convert_variables_to_constants_v2(
        classify.get_concrete_function()).graph.as_graph_def()
    for node in graph_def.node:  # the tutorial feeds DecodeJpeg/contents:0
        if node.name == "contents":
            node.name = "DecodeJpeg/contents"
        node.input[:] = ["DecodeJpeg/contents" if name == "contents" else name
                         for name in node.input]
    return graph_def, model


def best_rate(work, count, rounds):
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            work()
        best = max(best, count / (time.perf_counter() - started))
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--image", required=True, help="a JPEG to classify over and over")
    parser.add_argument("--count", type=int, default=20, help="images per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    tf_setup.configure_devices(cpu_only=True)
    graph_def, model = frozen_inception()
    labels = classify_image.NodeLookup.__new__(classify_image.NodeLookup)
    labels.node_lookup = {}
    with tempfile.TemporaryDirectory() as folder:
        graph_path = Path(folder) / inception_files.GRAPH_FILE
        graph_path.write_bytes(graph_def.SerializeToString())
        graph = classify_image.create_graph(graph_path)
    image_data = inception_files.jpeg_bytes(args.image)
    with tf_setup.new_session(graph) as sess:
        def ours():
            predictions, _, _ = classify_image.run_inference_on_image(sess, image_data)
            classify_image.top_predictions(predictions, labels, 5)
        ours()  # warm-up
        ours_rate = best_rate(ours, args.count, args.rounds)

    import tensorflow as tf
    decoded = tf.image.resize(tf.cast(tf.io.decode_jpeg(image_data, channels=3),
                                      tf.float32)[tf.newaxis], [299, 299])
    decoded = ((decoded - 128.0) / 128.0).numpy()
    keras_call = tf.function(lambda x: model(x, training=False))
    keras_call(decoded)  # trace
    keras_rate = best_rate(lambda: np.asarray(keras_call(decoded)), args.count, args.rounds)
    print(f"classify_image loop (JPEG in, top-5 out): {ours_rate:.2f} images/s, "
          f"{ours_rate * GFLOP_PER_IMAGE:.1f} GFLOP/s")
    print(f"keras model call (decoded array in):      {keras_rate:.2f} images/s, "
          f"{keras_rate * GFLOP_PER_IMAGE:.1f} GFLOP/s")
    print(f"ratio (ours / keras): {ours_rate / keras_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
