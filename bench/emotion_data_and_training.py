"""EmotionUtils.read_data against the book's pandas + np.fromstring reading, and training speed.

1. Reading Kaggle's fer2013.csv, in one run, best of `--rounds` each. Goal: 10x faster.
   * the parse alone: `read_face_csv` against the book's pandas.read_csv, then one
     np.fromstring per row, / 255, dropna, vstack;
   * the whole cold `read_data(force=True)` (parse, split, float conversion, .npz cache) against
     the book's whole read_data on the same columns (its parse, one-hot labels, permutation,
     validation split and pickle cache).
2. Training images/second of emotion_cnn.py's graph at the book's batch size.

    python bench/emotion_data_and_training.py --fer2013 ../shared/data/fer2013/fer2013.csv.gz
(needs pandas for the book's way: pip install -r bench/requirements.txt)
"""

import argparse
import gzip
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import emotion_cnn  # noqa: E402
import EmotionUtils  # noqa: E402  (the project root is not a package)
from book_support import tf_setup  # noqa: E402


def books_parse(data_frame):
    """The book's parse of one CSV: a float64 array per row, then one stacked array."""
    data_frame["pixels"] = data_frame["pixels"].apply(lambda x: np.fromstring(x, sep=" ") / 255.0)
    data_frame = data_frame.dropna()
    return data_frame, np.vstack(data_frame["pixels"]).reshape(-1, 48, 48, 1)


def books_way(csv_path):
    import pandas as pd

    return books_parse(pd.read_csv(csv_path))[1]


def books_read_data(csv_path, pickle_path):
    """The book's whole read_data, on FER2013's columns (Training, then PublicTest rows)."""
    import pandas as pd

    def create_onehot_label(x):
        label = np.zeros((1, EmotionUtils.NUM_LABELS), dtype=np.float32)
        label[:, int(x)] = 1
        return label

    everything = pd.read_csv(csv_path)
    data_frame, train_images = books_parse(everything[everything["Usage"] == "Training"].copy())
    train_labels = np.array(list(map(create_onehot_label, data_frame["emotion"].values)))
    train_labels = train_labels.reshape(-1, EmotionUtils.NUM_LABELS)
    permutations = np.random.permutation(train_images.shape[0])
    train_images, train_labels = train_images[permutations], train_labels[permutations]
    validation_count = int(train_images.shape[0] * EmotionUtils.VALIDATION_PERCENT)
    _, test_images = books_parse(everything[everything["Usage"] == "PublicTest"].copy())
    with open(pickle_path, "wb") as file:
        pickle.dump({"train_images": train_images[validation_count:],
                     "train_labels": train_labels[validation_count:],
                     "validation_images": train_images[:validation_count],
                     "validation_labels": train_labels[:validation_count],
                     "test_images": test_images}, file, pickle.HIGHEST_PROTOCOL)


def best_time(work, rounds):
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def training_images_per_second(data, steps, batch_size):
    net = emotion_cnn.build_graph(seed=0)
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)

        def train(first, count):
            for step in range(first, first + count):
                images, labels = emotion_cnn.get_next_batch(data.train_images, data.train_labels,
                                                            step, batch_size)
                session.run(net.train_op, {net.input_dataset: images, net.input_labels: labels,
                                           net.keep_prob: emotion_cnn.KEEP_PROB})
        train(0, 10)
        started = time.perf_counter()
        train(10, steps)
        return steps * batch_size / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--fer2013", required=True, help="fer2013.csv or fer2013.csv.gz")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200, help="timed training steps")
    parser.add_argument("--batch-size", type=int, default=emotion_cnn.BATCH_SIZE)
    args = parser.parse_args(argv)
    tf_setup.configure_devices(cpu_only=True)
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "fer2013.csv"
        opener = gzip.open if args.fer2013.endswith(".gz") else open
        with opener(args.fer2013, "rb") as source, open(csv_path, "wb") as target:
            shutil.copyfileobj(source, target)
        parse = best_time(lambda: EmotionUtils.read_face_csv(csv_path), args.rounds)
        book_parse = best_time(lambda: books_way(csv_path), args.rounds)
        print(f"parse alone: read_face_csv {parse:.2f} s, the book's {book_parse:.2f} s: "
              f"{book_parse / parse:.1f}x")
        ours = best_time(lambda: EmotionUtils.read_data(folder, force=True, verbose=False),
                         args.rounds)
        book = best_time(lambda: books_read_data(csv_path, Path(folder) / "book.pickle"),
                         args.rounds)
        print(f"cold read_data: ours {ours:.2f} s, the book's {book:.2f} s: {book / ours:.1f}x")
        cached = best_time(lambda: EmotionUtils.read_data(folder, verbose=False), args.rounds)
        print(f"read_data from its .npz cache:      {cached:.2f} s")
        data = EmotionUtils.read_data(folder, verbose=False)
    rate = training_images_per_second(data, args.steps, args.batch_size)
    print(f"training: {rate:,.0f} images/s (batch {args.batch_size}, CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
