"""FER2013 PublicTest accuracy of emotion_cnn.py, and the wall time it took to train.

Trains from scratch, as a reader would type it, on Kaggle's fer2013.csv (`Training` rows; a tenth
held back for validation) in a fresh logs folder, then scores `--mode test` on the `PublicTest`
rows, as they are and with `--tta`. Everything after `--` goes to emotion_cnn.py unchanged. The
peers' published figures: atulapra/Emotion-detection 63.2% (4-conv Keras net, 50 epochs),
oarriaga/face_classification 66% (mini-Xception), the `fer` library about 71%. Goal (#23): at
least 69% in at most 60 minutes on 2 CPU cores. The machine's fp32 matmul peak is printed beside
the time, as machines differ. Printed for each configuration: accuracy, the mean of the seven
emotions' recalls and disgust's, as they are and with `--tta`; the minutes and faces/s of
training (#33's goal: 71%, disgust recall 0.40, mean recall 0.65, in 60 minutes).

    python bench/emotion_fer2013.py --fer2013 ../shared/data/fer2013/fer2013.csv.gz -- \\
        --model vgg --augment --erase 0.5 --schedule cosine --precision bf16 \\
        --iterations 12000 --eval-every 500 --seed 1 --adjust-logits
"""

import argparse
import gzip
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
import emotion_cnn as emotion_cnn_script  # noqa: E402  (the project root is not a package)
import machine_peak  # noqa: E402


def unpacked(fer2013, folder):
    target = Path(folder) / "fer2013.csv"
    opener = gzip.open if str(fer2013).endswith(".gz") else open
    with opener(fer2013, "rb") as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink)
    return folder


def emotion_cnn(*arguments, log):
    """Run emotion_cnn.py; its output goes on to `log` (and the screen); returns (code, stdout)."""
    command = [sys.executable, str(PROJECT / "emotion_cnn.py"), *map(str, arguments)]
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        for line in process.stdout:
            lines.append(line)
            log.write(line)
            log.flush()
    return process.returncode, "".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--fer2013", required=True, help="fer2013.csv or fer2013.csv.gz")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="keep the checkpoints in DIR (default: a temporary folder)")
    parser.add_argument("options", nargs=argparse.REMAINDER,
                        help="-- then emotion_cnn.py's options")
    args = parser.parse_args(argv)
    options = args.options[1:] if args.options[:1] == ["--"] else args.options
    with tempfile.TemporaryDirectory() as folder:
        data = unpacked(args.fer2013, folder)
        emotion_cnn("--data-dir", data, "--dry-run", log=sys.stderr)  # parse once, untimed
        logs = Path(args.keep) if args.keep else Path(folder) / "logs"
        started = time.perf_counter()
        code, _ = emotion_cnn("--data-dir", data, "--logs-dir", logs, *options, log=sys.stderr)
        minutes = (time.perf_counter() - started) / 60
        if code != 0:
            return code
        model = emotion_cnn_script.build_parser().parse_args(options).model
        scores = {}
        for extra in ((), ("--tta",)):
            code, tested = emotion_cnn("--data-dir", data, "--logs-dir", logs, "--mode", "test",
                                       "--model", model, *extra, log=sys.stdout)
            scores[" ".join(extra) or "plain"] = scores_in(tested)
    settings = emotion_cnn_script.build_parser().parse_args(options)
    faces_per_second = settings.iterations * settings.batch_size / (minutes * 60)
    print(f"python emotion_cnn.py {' '.join(options)}")
    print(f"  trained in {minutes:.1f} minutes, {faces_per_second:.0f} faces/s overall (this "
          f"machine's matmul peak: {machine_peak.matmul_peak_gflops():.0f} GFLOP/s fp32)")
    for how, (accuracy, mean_recall, disgust) in scores.items():
        print(f"  FER2013 PublicTest, {how}: accuracy {accuracy}, mean recall {mean_recall}, "
              f"disgust recall {disgust}")
    return code


def scores_in(tested):
    """(accuracy, mean recall, disgust recall) as `--mode test` printed them ("none" where it
    printed nothing)."""
    patterns = (r"Test accuracy: (\d\.\d+)", r"^mean recall: (\d\.\d+)",
                r"^\s*disgust\s+(?:\d\.\d+|never)\s+(\d\.\d+|-)")  # the recall table's row
    found = [re.search(pattern, tested, re.MULTILINE) for pattern in patterns]
    return [match.group(1) if match else "none" for match in found]


if __name__ == "__main__":
    raise SystemExit(main())
