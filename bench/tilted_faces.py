"""How well emotion_test.py reads a tilted head: as found, and turned upright (issue 32).

FER2013 PublicTest faces, scaled to 150 pixels and tilted by each angle (half of them one way,
half the other), on a gray 640x480 frame, found by the face detector as a photo is searched;
each face found on the pasted one is read by a trained network three ways: as it was found (its
upright square), turned by its eyes' slope (faces.upright_pixels) whatever the slope, and as
emotion_test.py reads it (turned from faces.TURN_FROM degrees on). Prints, per angle, the faces
found and the share of those read right each way. The peer is the same face read untilted.

    python bench/tilted_faces.py --fer2013 ../shared/data/fer2013/fer2013.csv.gz \\
        --logs-dir logs/emotion_vgg
"""

import argparse
import csv
import gzip
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import emotion_test  # noqa: E402  (the project root is not a package)
from book_support import faces, tf_setup  # noqa: E402

FRAME = (640, 480)
SIDE, LEFT, TOP = 150, 150, 100  # the face's size and where its turned picture is pasted


def public_test_faces(path, count):
    """(faces (n, 48, 48) float32 0..255, labels (n,)) of the first `count` PublicTest rows."""
    opener = gzip.open if str(path).endswith(".gz") else open
    pictures, labels = [], []
    with opener(path, "rt") as rows:
        for row in csv.DictReader(rows):
            if row["Usage"] == "PublicTest" and len(labels) < count:
                pictures.append(np.array(row["pixels"].split(), np.float32).reshape(48, 48))
                labels.append(int(row["emotion"]))
    return np.array(pictures), np.array(labels)


def tilted_frame(face, angle):
    """The face scaled to SIDE pixels, tilted `angle` degrees (counter-clockwise), on gray; the
    frame and the tilted face's centre."""
    picture = Image.fromarray(face).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    picture = np.asarray(picture.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True,
                                        fillcolor=128.0))
    frame = np.full(FRAME[::-1], 128.0, np.float32)
    frame[TOP:TOP + picture.shape[0], LEFT:LEFT + picture.shape[1]] = picture
    return frame, (LEFT + picture.shape[1] / 2, TOP + picture.shape[0] / 2)


def square_on(frame, centre):
    """The Square emotion_test.py reads for the face found on `centre`, or None, with the
    angle the eyes' slope gives it (before faces.TURN_FROM rounds small ones to 0)."""
    cv2 = faces.opencv_with_detector()
    found = [(box, angle) for box, _, angle in faces.face_detector.detect(
        cv2, np.clip(frame, 0, 255).astype(np.uint8), faces.PHOTO_MIN_FACE)]
    on_face = [((x, y, w, h), angle) for (x, y, w, h), angle in found
               if abs(x + w / 2 - centre[0]) < SIDE / 4 and abs(y + h / 2 - centre[1]) < SIDE / 4]
    if not on_face:
        return None, 0.0
    box, angle = on_face[0]
    read_as = faces.square_around(faces.face_square(box, angle), *FRAME)
    return read_as, angle


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--fer2013", required=True, help="fer2013.csv or fer2013.csv.gz")
    parser.add_argument("--logs-dir", required=True, help="a trained network's checkpoints")
    parser.add_argument("--faces", type=int, default=500, help="PublicTest faces per angle")
    parser.add_argument("--angles", type=float, nargs="+", default=[0, 20, 35, 45, 60])
    args = parser.parse_args(argv)
    if faces.opencv_with_detector() is None:
        sys.exit(f"the face detector is not installed: {faces.INSTALL}")
    pictures, labels = public_test_faces(args.fer2013, args.faces)
    import tensorflow.compat.v1 as tf
    checkpoint = emotion_test.latest_checkpoint(args.logs_dir)
    graph = tf.Graph()
    with graph.as_default(), tf_setup.new_session(graph) as session:
        x, y_conv = emotion_test.restore(session, checkpoint)
        print(f"{checkpoint}; {len(labels)} PublicTest faces per angle\n")
        print("| tilt | found | read right: as found | turned by the eyes' slope | as "
              "emotion_test.py reads (turned from 10 degrees) |\n|---|---|---|---|---|")
        for tilt in args.angles:
            right, found = np.zeros(3), 0
            for number, (face, label) in enumerate(zip(pictures, labels)):
                frame, centre = tilted_frame(face, tilt if number % 2 else -tilt)
                square, angle = square_on(frame, centre)
                if square is None:
                    continue
                found += 1
                ways = [square._replace(angle=0.0), square._replace(angle=round(angle)), square]
                scores = emotion_test.read_faces(session, x, y_conv,
                                                 emotion_test.crop_faces(frame, ways))
                right += np.argmax(scores, axis=1) == label
            shares = " | ".join(f"{100 * r / max(found, 1):.1f}%" for r in right)
            print(f"| {tilt:g} | {found} of {len(labels)} | {shares} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
