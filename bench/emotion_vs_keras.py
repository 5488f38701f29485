"""Training throughput of emotion_cnn.py's chosen FER2013 network against Keras 3 `model.fit`.

The network and recipe of the README's best command (`--model vgg --augment --erase 0.5
--label-smoothing 0.1 --schedule cosine`): ours is emotion_cnn.py's tf.compat.v1 graph fed
NumPy batches, the peer the same network written in Keras 3 (the same layers, batch norm
settings, L2, dropout, Adam with cosine decay, label smoothing, and Keras's own augmentation
layers for the flips, shifts, zooms and erasing, inside the model as ours are inside the
graph), trained with `model.fit` on the same arrays at the same batch size. Both run in float32
and in bf16 (ours: `--precision bf16`; Keras: the `mixed_bfloat16` policy), in one process,
taking turns. Prints faces/second of each and ours/Keras (goal >= 1.0).

    python bench/emotion_vs_keras.py
"""

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import emotion_cnn  # noqa: E402  (the project root is not a package)
from book_support import emotion_training_aids, emotion_vgg, tf_setup  # noqa: E402

ERASE, SMOOTHING, ITERATIONS = 0.5, 0.1, 12000


def faces_and_labels(count, seed=0):
    """Random faces: a step's time does not depend on what the faces show."""
    rng = np.random.default_rng(seed)
    faces = rng.random((count, 48, 48, 1), dtype=np.float32)
    labels = np.eye(7, dtype=np.float32)[rng.integers(0, 7, count)]
    return faces, labels


def time_ours(faces, labels, batch_size, steps, warmup, precision):
    net = emotion_cnn.build_training_graph(0, "vgg", "cosine", ITERATIONS, erase=ERASE,
                                           label_smoothing=SMOOTHING)
    args = SimpleNamespace(augment=True, augment_seed=0)
    with tf_setup.new_session(net.graph, precision, float16_on_gpus=False) as session:
        session.run(net.initializer)

        def train(first, count):
            for step in range(first, first + count):
                batch = emotion_cnn.get_next_batch(faces, labels, step, batch_size)
                session.run(net.train_op, emotion_cnn.training_feed(net, args, *batch, step))

        train(0, warmup)
        started = time.perf_counter()
        train(warmup, steps)
        return steps * batch_size / (time.perf_counter() - started)


def keras_vgg():
    """emotion_vgg.vgg_cnn in Keras 3 (1,755,239 parameters, as ours)."""
    import keras
    from keras import layers

    l2 = keras.regularizers.L2(emotion_vgg.REGULARIZATION / 2)  # ours: l2_loss

    def conv_bn_relu(channels):
        return [layers.Conv2D(channels, 3, padding="same", use_bias=False,
                              kernel_initializer="he_normal", kernel_regularizer=l2),
                layers.BatchNormalization(momentum=emotion_vgg.BATCH_NORM_DECAY, epsilon=1e-3),
                layers.ReLU()]

    stages = []
    for stage, channels in enumerate(emotion_vgg.VGG_CHANNELS, start=1):
        for _ in range(1 if stage == 1 else 2):
            stages += conv_bn_relu(channels)
        stages.append(layers.MaxPooling2D(2))
    shift = emotion_training_aids.MAX_SHIFT / 48
    model = keras.Sequential([
        keras.Input((48, 48, 1)),
        layers.RandomFlip("horizontal"), layers.RandomTranslation(shift, shift),
        layers.RandomZoom(emotion_training_aids.MAX_ZOOM),
        layers.RandomErasing(factor=ERASE, scale=(0.02, 0.25), value_range=(0, 1)),
        *stages, layers.Flatten(),
        layers.Dense(256, activation="relu", kernel_initializer="he_normal",
                     kernel_regularizer=l2),
        layers.Dropout(1 - emotion_cnn.KEEP_PROB),
        layers.Dense(7, kernel_initializer="he_normal", kernel_regularizer=l2,
                     dtype="float32")])
    schedule = keras.optimizers.schedules.CosineDecay(emotion_cnn.LEARNING_RATE, ITERATIONS)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                            label_smoothing=SMOOTHING))
    batch_norms = 2 * sum(emotion_vgg.VGG_CHANNELS) - emotion_vgg.VGG_CHANNELS[0]
    assert model.count_params() == 1_755_239 + 2 * batch_norms, \
        model.count_params()  # Keras also counts BN's moving averages, which ours does not
    return model


def time_keras(faces, labels, batch_size, steps, warmup, precision):
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16"
                                            else "float32")
    model = keras_vgg()
    fit = dict(batch_size=batch_size, shuffle=True, verbose=0)
    model.fit(faces[:warmup * batch_size], labels[:warmup * batch_size], **fit)
    started = time.perf_counter()
    model.fit(faces[:steps * batch_size], labels[:steps * batch_size], **fit)
    return steps * batch_size / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=emotion_cnn.BATCH_SIZE)
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                        choices=["fp32", "bf16"])
    args = parser.parse_args(argv)
    tf_setup.configure_devices(cpu_only=True)
    faces, labels = faces_and_labels(args.steps * args.batch_size)
    for precision in args.precisions:
        ours = time_ours(faces, labels, args.batch_size, args.steps, args.warmup, precision)
        keras = time_keras(faces, labels, args.batch_size, args.steps, args.warmup, precision)
        print(f"{precision}: emotion_cnn graph {ours:,.0f} faces/s, keras model.fit "
              f"{keras:,.0f} faces/s, ratio (ours / keras) {ours / keras:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
