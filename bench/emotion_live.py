"""Frames per second of `emotion_test.py --video` on a 640x480 video, one face and four.

Times, per frame, the face detector (MTCNN, book_support/face_detector.py, down to faces of
40 pixels as `--video` looks for by default), the crops, and the network: all faces in one
`session.run` (ours) against one call per face (the peers' way; atulapra/Emotion-detection
calls Keras `model.predict` once per face, on OpenCV's Haar cascade run over the full frame).
The book's network with its initial weights: speed does not depend on what it learned. Then
the same at 1280x720 and 1920x1080 (the same faces on a larger frame): finding the same least
face in a larger frame costs time in proportion to its pixels.

    python bench/emotion_live.py --images ../shared/data/images
"""

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import emotion_cnn  # noqa: E402  (the project root is not a package)
import emotion_test  # noqa: E402
from book_support import faces, tf_setup  # noqa: E402


def frame_with_faces(images, count, size=(640, 480)):
    """A BGR frame holding `count` copies of the astronaut's head, about 150 pixels, in its
    top-left 640x480."""
    from PIL import Image
    head = Image.open(images / "astronaut.png").convert("RGB").crop((130, 20, 330, 240))
    head = np.asarray(head.resize((170, 187)))[..., ::-1]
    frame = np.full((size[1], size[0], 3), 70, np.uint8)
    for index in range(count):
        top, left = 30 + 230 * (index // 2), 60 + 320 * (index % 2)
        frame[top:top + head.shape[0], left:left + head.shape[1]] = head
    return frame


def per_frame(function, repeats):
    function()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def keras_book_network():
    import keras
    from keras import layers
    return keras.Sequential([
        keras.Input((48, 48, 1)),
        layers.Conv2D(32, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(256, activation="relu"), layers.Dense(7),
        layers.Softmax()])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="../shared/data/images",
                        help="folder holding astronaut.png (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=30, help="frames timed per figure")
    args = parser.parse_args()
    import cv2
    net = emotion_cnn.build_graph(seed=1)
    x, y = net.graph.get_tensor_by_name("input:0"), net.graph.get_tensor_by_name("output:0")
    figures = {}
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        for count in (1, 4):
            frame = frame_with_faces(Path(args.images), count)
            gray = frame[..., ::-1] @ emotion_test.LUMINANCE
            found = faces.separate_faces(detect(cv2, gray))
            squares = [faces.square_around(face, 640, 480) for face in found]
            batch = emotion_test.crop_faces(gray, squares)
            figures[count] = dict(
                found=len(squares), batch=batch,
                detect=per_frame(lambda: detect(cv2, gray), args.repeats),
                full=per_frame(lambda: face_cascade_full(cv2, gray), args.repeats),
                crop=per_frame(lambda: emotion_test.crop_faces(gray, squares), args.repeats),
                batched=per_frame(lambda: session.run(y, {x: batch}), args.repeats),
                looped=per_frame(lambda: [session.run(y, {x: face[None]}) for face in batch],
                                 args.repeats))
    model = keras_book_network()  # eager, outside the graph above
    for count, f in figures.items():
        f["predict"] = per_frame(lambda: [model.predict(face[None], verbose=0)
                                          for face in f["batch"]], max(args.repeats // 3, 3))
        ours = f["detect"] + f["crop"] + f["batched"]
        loop = f["detect"] + f["crop"] + f["looped"]
        peers = f["full"] + f["crop"] + f["predict"]
        print(f"{count} face(s), {f['found']} found: detector {f['detect'] * 1e3:.1f} ms (full "
              f"frame, the peers' {f['full'] * 1e3:.1f} ms), crops {f['crop'] * 1e3:.1f} ms, "
              f"network batched {f['batched'] * 1e3:.1f} ms, per face {f['looped'] * 1e3:.1f} "
              f"ms, Keras predict per face {f['predict'] * 1e3:.1f} ms")
        print(f"  frames/s: ours {1 / ours:.1f}; per-face loop {1 / loop:.1f} "
              f"(ours x{loop / ours:.2f}); the peers' way {1 / peers:.1f} "
              f"(ours x{peers / ours:.2f})")
    time_tta({count: f["batch"] for count, f in figures.items()}, args.repeats)
    time_frame_sizes(Path(args.images), args.repeats)


def detect(cv2, gray):
    """--video's face finding, down to --min-face's default."""
    return faces.detect_faces(cv2, gray, faces.VIDEO_MIN_FACE)


def time_frame_sizes(images, repeats):
    """The whole frame's time (detector, crops, network) at 640x480, 1280x720 and 1920x1080,
    with one face and four."""
    import cv2
    net = emotion_cnn.build_graph(seed=1)
    x, y = net.graph.get_tensor_by_name("input:0"), net.graph.get_tensor_by_name("output:0")
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        for size in ((640, 480), (1280, 720), (1920, 1080)):
            for count in (1, 4):
                gray = frame_with_faces(images, count, size)[..., ::-1] @ emotion_test.LUMINANCE

                def whole_frame():
                    squares = [faces.square_around(face, *size)
                               for face in faces.separate_faces(detect(cv2, gray))]
                    session.run(y, {x: emotion_test.crop_faces(gray, squares)})
                    return len(squares)
                found = whole_frame()
                seconds = per_frame(whole_frame, repeats)
                print(f"{size[0]}x{size[1]}, {count} face(s), {found} found: "
                      f"{seconds * 1e3:.1f} ms a frame, {1 / seconds:.1f} frames/s")


def time_tta(batches, repeats):
    """What `--tta` (each face averaged with its mirror, in the same run) costs per frame, on
    the vgg network that it is meant for."""
    net = emotion_cnn.build_training_graph(seed=1, model="vgg")
    x, y = net.graph.get_tensor_by_name("input:0"), net.graph.get_tensor_by_name("output:0")
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        for count, batch in batches.items():
            plain, tta = (per_frame(lambda: emotion_test.read_faces(session, x, y, batch, tta),
                                    repeats) for tta in (False, True))
            print(f"vgg network, {count} face(s): {plain * 1e3:.1f} ms a frame, with --tta "
                  f"{tta * 1e3:.1f} ms ({(tta - plain) / len(batch) * 1e3:.1f} ms more a face)")


def face_cascade_full(cv2, gray):
    """The peers' detector call: OpenCV's Haar cascade on the full frame, scaleFactor 1.3
    (atulapra's settings)."""
    return haar_cascade(cv2).detectMultiScale(
        np.clip(gray, 0, 255).astype(np.uint8), scaleFactor=1.3, minNeighbors=5)


@functools.lru_cache(maxsize=1)
def haar_cascade(cv2):
    return cv2.CascadeClassifier(
        str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))


if __name__ == "__main__":
    main()
