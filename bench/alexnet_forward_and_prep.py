"""AlexNet forward speed against the machine's peak, and prep_images.py against a plain loop.

1. alexnet_forward.py's graph at real widths (random weights): images/second at batch 1 and 32
   and the GFLOP/s they mean (1.45 GFLOP a 227x227 image with conv1 VALID and the grouped
   convs), against the machine's peak measured in the same run as a large float32 matmul
   through the same TensorFlow kernels.
2. prep_images.py (all cores) against a plain single-process PIL loop doing the same work
   (open, RGB, resize to 227x227, save JPEG), on the same photos, as a ratio.

    python bench/alexnet_forward_and_prep.py --photos ../shared/data/dogs_vs_cats/train
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import alexnet_forward  # noqa: E402  (the project root is not a package)
import prep_images  # noqa: E402
from book_support import tf_setup  # noqa: E402
from machine_peak import matmul_peak_gflops  # noqa: E402
from tests.standins import alexnet_weights  # noqa: E402

MACS = {"conv1": 55 * 55 * 96 * 11 * 11 * 3, "conv2": 27 * 27 * 256 * 5 * 5 * 48,
        "conv3": 13 * 13 * 384 * 3 * 3 * 256, "conv4": 13 * 13 * 384 * 3 * 3 * 192,
        "conv5": 13 * 13 * 256 * 3 * 3 * 192, "fc6": 9216 * 4096, "fc7": 4096 * 4096,
        "fc8": 4096 * 1000}
GFLOP_PER_IMAGE = 2 * sum(MACS.values()) / 1e9


def forward_rates(batch_sizes, seconds):
    weights = alexnet_weights(widths=(96, 256, 384, 384, 256, 4096, 4096), scale=0.01)
    net = alexnet_forward.build_classifier(weights)
    rates = {}
    with tf_setup.new_session(net.graph) as sess:
        sess.run(net.initializer)
        alexnet_forward.load_params(sess, net.params, weights)
        for batch_size in batch_sizes:
            batch = np.random.default_rng(0).random((batch_size, 227, 227, 3), np.float32)
            sess.run(net.prob, {net.x: batch})
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                sess.run(net.prob, {net.x: batch})
                count += batch_size
            rates[batch_size] = count / (time.perf_counter() - started)
    return rates


def plain_loop(sources, output):
    from PIL import Image
    for source in sources:
        with Image.open(source) as image:
            image.convert("RGB").resize((227, 227), Image.Resampling.BILINEAR).save(
                output / (source.stem + ".jpg"), format="JPEG", quality=95)


def prep_rates(photos, repeat=1):
    """(ours, plain, photo count) in images/second; `repeat` links every photo in that many
    times under new names, for a job closer to Kaggle's 25,000 photos."""
    with tempfile.TemporaryDirectory() as folder:
        linked = Path(folder) / "photos"
        linked.mkdir()
        for copy in range(repeat):
            for photo in Path(photos).glob("*.jpg"):
                (linked / f"{photo.stem}{copy}.jpg").symlink_to(photo.resolve())
        photos = linked
        sources = sorted(linked.iterdir())
        plain_out = Path(folder) / "plain"
        plain_out.mkdir()
        started = time.perf_counter()
        plain_loop(sources, plain_out)
        plain = len(sources) / (time.perf_counter() - started)
        # As a user runs it: its worker processes then import only prep_images, not this
        # benchmark's TensorFlow.
        started = time.perf_counter()
        subprocess.run([sys.executable, prep_images.__file__, str(photos),
                        str(Path(folder) / "ours"), "--test-count", "0"], check=True,
                       capture_output=True)
        ours = len(sources) / (time.perf_counter() - started)
        shutil.rmtree(Path(folder) / "ours")
    return ours, plain, len(sources)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--photos", required=True, help="a folder of dogs-vs-cats JPEGs")
    parser.add_argument("--seconds", type=float, default=10, help="timing per batch size")
    parser.add_argument("--repeat", type=int, default=4,
                        help="use every photo this many times (under new names) for prep")
    args = parser.parse_args(argv)
    tf_setup.configure_devices(cpu_only=True)
    peak = matmul_peak_gflops()
    print(f"machine peak (4096x4096 float32 matmul): {peak:.1f} GFLOP/s")
    for batch_size, rate in forward_rates((1, 32), args.seconds).items():
        achieved = rate * GFLOP_PER_IMAGE
        print(f"AlexNet forward, batch {batch_size:>2}: {rate:6.1f} images/s, "
              f"{achieved:6.1f} GFLOP/s = {achieved / peak:.0%} of peak")
    ours, plain, count = prep_rates(args.photos, args.repeat)
    print(f"prep_images.py: {ours:.1f} images/s; plain PIL loop: {plain:.1f} images/s "
          f"({count} photos); ratio {ours / plain:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
