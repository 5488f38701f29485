"""Training throughput: lenet_mnist.py's tf.compat.v1 graph against Keras `model.fit`.

Both train the same architecture (the book's LeNet-5: no biases, the same dropout, RMSProp
0.001/0.9) on the same MNIST images at the same batch size, in one process, taking turns so that
both see the same machine. Prints images/second for each and ours/Keras as a ratio (goal >= 1.0).

    python bench/lenet_vs_keras.py --data-dir ../shared/data/mnist
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import lenet_mnist  # noqa: E402  (the project root is not a package)
from book_support import mnist_data  # noqa: E402
from book_support import tf_setup  # noqa: E402


def time_ours(train, batch_size, steps, warmup):
    net = lenet_mnist.build_graph(seed=0)
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        rng = np.random.default_rng(0)
        lenet_mnist.train_epoch(session, net, train, batch_size, rng, "warm-up", warmup)
        started = time.perf_counter()
        lenet_mnist.train_epoch(session, net, train, batch_size, rng, "graph", steps)
        return steps * batch_size / (time.perf_counter() - started)


def keras_lenet():
    import keras
    from keras import layers

    def conv_block(filters):
        return [layers.Conv2D(filters, 3, padding="same", activation="relu", use_bias=False),
                layers.MaxPooling2D(2, padding="same")]

    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        *conv_block(32), layers.Dropout(0.2),
        *conv_block(64), layers.Dropout(0.2),
        *conv_block(128), layers.Flatten(), layers.Dropout(0.2),
        layers.Dense(625, activation="relu", use_bias=False), layers.Dropout(0.5),
        layers.Dense(10, use_bias=False)])
    model.compile(optimizer=keras.optimizers.RMSprop(0.001, rho=0.9),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    assert model.count_params() == 1_378_698
    return model


def time_keras(train, batch_size, steps, warmup):
    model = keras_lenet()
    fit = dict(batch_size=batch_size, shuffle=True, verbose=0)
    model.fit(train.images[:warmup * batch_size], train.labels[:warmup * batch_size], **fit)
    started = time.perf_counter()
    model.fit(train.images[:steps * batch_size], train.labels[:steps * batch_size], **fit)
    return steps * batch_size / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default="data/MNIST-data")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="turns each; the best is kept")
    args = parser.parse_args(argv)
    tf_setup.configure_devices(cpu_only=True)
    mnist = mnist_data.read_data_sets(args.data_dir)
    ours, keras = [], []
    for round_number in range(args.rounds):
        ours.append(time_ours(mnist.train, args.batch_size, args.steps, args.warmup))
        keras.append(time_keras(mnist.train, args.batch_size, args.steps, args.warmup))
        print(f"round {round_number}: graph {ours[-1]:,.0f} images/s, "
              f"keras fit {keras[-1]:,.0f} images/s", flush=True)
    print(f"lenet_mnist graph: {max(ours):,.0f} images/s")
    print(f"keras model.fit:   {max(keras):,.0f} images/s")
    print(f"ratio (ours / keras): {max(ours) / max(keras):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
