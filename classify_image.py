"""Simple image classification with Inception-v3 (TensorFlow's classify_image.py tutorial).

    python classify_image.py                          # downloads the model, classifies the panda
    python classify_image.py --image_file cat.jpg dog.png

Loads the 2015 frozen graph `classify_image_graph_def.pb` and prints the top predictions of each
image exactly as the tutorial did; the first line for the panda (the book's):

    giant panda, panda, panda bear, coon bear, Ailuropoda melanoleuca (score = 0.88493)

What changed, and why:
  * It runs on TensorFlow 2 (tf.compat.v1), downloads over https, checks the tarball's size
    and, after extracting it safely (no member may land outside --model_dir) into a folder of
    its own, the checksums of the graph and the label map before moving them into place.
  * The graph is loaded once and every image is fed through it; the tutorial rebuilt it per run.
  * The graph can only decode JPEG, so PNG, GIF, BMP, WebP, CMYK or EXIF-rotated photos are
    converted to an upright RGB JPEG first. A file that is not an image is reported by name and
    the other images still run.
  * The label files are parsed without the tutorial's fixed slicing, which broke on CRLF line
    ends, blank lines or a missing final newline; an id with no label prints `unknown (id N)`.
  * `--bottleneck DIR` saves each image's 2048 `pool_3` features, for transfer learning.

The tutorial's code comes first, under the chapter's section title, then the glue that runs it;
the rest is in book_support: inception_files (the tarball, checked and extracted; the label
files; the graph file's checks; any image as the JPEG the graph decodes), inception_cam
(Grad-CAM on the last mixed layer, --cam) and inception_bottlenecks (--bottleneck's files).
"""

from pathlib import Path

import numpy as np

from book_support import downloads
from book_support import file_roles
from book_support import gradcam
from book_support import image_io
from book_support import inception_bottlenecks
from book_support import inception_cam
from book_support import inception_files
from book_support import plumbing
from book_support import tf_setup

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

# --------------------------------------------------------------------------------------------
# The book, Inception-v3: 使用 TensorFlow 探索初始化 (exploring Inception with TensorFlow;
# the translation's 初始化, "initialisation", stands for Inception)
# --------------------------------------------------------------------------------------------


class NodeLookup:
    """Converts integer node IDs to human readable labels."""

    def __init__(self, label_lookup_path, uid_lookup_path):
        self.node_lookup = self.load(label_lookup_path, uid_lookup_path)

    @staticmethod
    def load(label_lookup_path, uid_lookup_path):
        """{softmax node id: 'comma, separated, names'} from the two label files."""
        return inception_files.read_labels(label_lookup_path, uid_lookup_path)

    def id_to_string(self, node_id):
        return self.node_lookup.get(int(node_id), f"unknown (id {node_id})")


def create_graph(graph_path):
    """Import the frozen GraphDef into a graph of its own."""
    graph_def = inception_files.read_graph_def(graph_path)  # refused if it is not the graph
    graph = tf.Graph()
    with graph.as_default(), tf_setup.native_stderr_silenced():
        try:
            tf.import_graph_def(graph_def, name="")
        except (ValueError, tf.errors.OpError) as error:
            raise plumbing.UserError(f"{graph_path} cannot be loaded: "
                                     f"{str(error).splitlines()[0]}") from None
    inception_files.check_tensors(graph, graph_path)
    return graph


def run_inference_on_image(sess, image_data, cam=None):
    """(1008 softmax scores, 2048 pool_3 features, and the Grad-CAM heatmap when `cam` is
    given as (heatmap, chosen, class or None)) of one JPEG, in one run."""
    fetches, feed = ["softmax:0", "pool_3:0"], {"DecodeJpeg/contents:0": image_data}
    if cam:
        heatmap, chosen, cam_class = cam
        fetches.append(heatmap)
        if cam_class is not None:
            feed[chosen] = [cam_class]
    predictions, features, *heatmaps = sess.run(fetches, feed)
    return np.squeeze(predictions), np.reshape(features, -1), \
        heatmaps[0][0] if heatmaps else None


def top_predictions(predictions, node_lookup, count):
    top_k = predictions.argsort()[-count:][::-1]
    return ["%s (score = %.5f)" % (node_lookup.id_to_string(node_id), predictions[node_id])
            for node_id in top_k]


def maybe_download_and_extract(model_dir):
    """Make sure the frozen graph and label files are in `model_dir`."""
    model_dir = Path(model_dir)
    if all((model_dir / name).exists() for name in (inception_files.GRAPH_FILE,
                                                    inception_files.LABEL_MAP_FILE,
                                                    inception_files.SYNSET_FILE)):
        return
    tarball = downloads.fetch(inception_files.INCEPTION_TARBALL, model_dir)
    inception_files.extract_checked(tarball, model_dir)


# --------------------------------------------------------------------------------------------
# Beyond the book: images of any format, several in one run, --bottleneck and --cam
# --------------------------------------------------------------------------------------------

def classify(args):
    model_dir = Path(args.model_dir)
    images = args.image_file or [str(model_dir / "cropped_panda.jpg")]
    cam_paths = gradcam.cam_paths(args.cam, images, args.overwrite)
    features = inception_bottlenecks.paths(args.bottleneck, images)
    maybe_download_and_extract(model_dir)
    node_lookup = NodeLookup(model_dir / inception_files.LABEL_MAP_FILE,
                             model_dir / inception_files.SYNSET_FILE)
    tf_setup.configure_devices(args.cpu)
    graph = create_graph(model_dir / inception_files.GRAPH_FILE)
    cam = inception_cam.prepare(graph, node_lookup, args.cam_class) if args.cam else None
    unreadable = image_io.UnreadableImages(len(images))
    with tf_setup.new_session(graph) as sess:
        for image, data in unreadable.each(images, inception_files.jpeg_bytes):
            try:
                # DecodeJpeg also logs its complaint natively; the line below says it once
                with tf_setup.native_stderr_silenced():
                    predictions, pool_3, heatmap = run_inference_on_image(sess, data, cam)
            except tf.errors.InvalidArgumentError as error:
                unreadable.report(f"{image} is damaged or truncated "
                                  f"({inception_files.decode_error(error)})")
                continue
            if len(images) > 1:
                print(f"{image}:")
            print("\n".join(top_predictions(predictions, node_lookup, args.num_top_predictions)))
            if features:
                inception_bottlenecks.save(features[image], pool_3)
            if cam:
                inception_cam.save_cam(cam_paths[image], image, heatmap, predictions,
                                       node_lookup, cam[2])
    return unreadable.exit_code()


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main(argv=None):
    parser = plumbing.argument_parser(
        "Classify images with the 2015 Inception-v3 frozen graph.")
    file_roles.reads(parser.add_argument(
        "--model_dir", "--model-dir", default=plumbing.native_path("data/inception"),
        help="where classify_image_graph_def.pb and the label files are, or where the tarball "
             "is downloaded and extracted"), file_roles.FOLDER)
    file_roles.reads(parser.add_argument(
        "--image_file", "--image-file", "--image", nargs="+", action="extend", metavar="IMAGE",
        default=[], help="images to classify (default: the tarball's cropped_panda.jpg)"))
    parser.add_argument("--num_top_predictions", "--num-top-predictions", type=plumbing.count(1),
                        default=5, help="display this many predictions")
    parser.add_argument("--bottleneck", metavar="DIR", default=None,
                        help="also save each image's 2048 pool_3 features as DIR/FILE.npy "
                             "(cat_jpg.npy for cat.jpg), replaced when the image is run again")
    tf_setup.add_device_option(parser)
    gradcam.add_cam_arguments(parser, "the last 8x8 mixed layer", "image_file")
    file_roles.also_writes(parser, lambda args: [
        ("--bottleneck", path) for path in
        inception_bottlenecks.paths(args.bottleneck, args.image_file).values()], cache=True)
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: classify(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
