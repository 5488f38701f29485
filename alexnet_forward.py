"""Classify images with the pretrained AlexNet (the book's myalexnet_forward.py).

    python alexnet_forward.py                      # the book's laska.png and poodle.png
    python alexnet_forward.py cat.jpg dog.png --top 3

Downloads `bvlc_alexnet.npy` (244 MB, the Caffe weights converted by Guerzhoy) and
`caffe_classes.py` into data/alexnet/ and prints, for each image, the book's block, with the
image's file name after `Image 0` and the scores as NumPy prints a float32. The block for
laska.png (the book's):

    Image 0
    weasel 0.503177
    black-footed ferret, ferret, Mustela nigripes 0.263265

What changed, and why:
  * conv1 uses VALID padding as Caffe trained it (55x55 maps). The book's SAME gave 57x57 maps
    the weights never saw.
  * Every image gets the same preprocessing: any size or mode, converted to RGB, resized and
    centre-cropped to 227x227, channels in BGR order, and the ImageNet mean pixel subtracted.
    The book subtracted one scalar mean from the first image only, and its channel swap
    (`im[:, :, 0], im[:, :, 2] = im[:, :, 2], im[:, :, 0]` on NumPy views) produced B, G, B.
  * The weights are unpickled by a loader that admits NumPy arrays and nothing else, and
    `caffe_classes.py` is read with `ast`, never executed: a downloaded file cannot run code.
  * All images go through one session in batches.

What the book does not have lives in book_support/: alexnet_files (the downloads, the safe
reading of the weights and class names, the book's sample images), gradcam (--cam), image_io
(opening any image, naming the bad ones), tf_setup (--cpu, sessions) and plumbing (errors).
alexnet_finetune.py builds its network from this file's.
"""

import time
from types import SimpleNamespace

import numpy as np

from book_support import alexnet_files
from book_support import file_roles
from book_support import gradcam
from book_support import image_io
from book_support import plumbing
from book_support import tf_setup

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

IMAGE_SIZE = 227
LAYERS = alexnet_files.LAYERS  # conv1 ... conv5, fc6, fc7, fc8
# Caffe's ILSVRC-2012 mean pixel, in the BGR order the weights expect.
IMAGENET_MEAN_BGR = np.array([104.00698793, 116.66876762, 122.67891434], np.float32)
BATCH_SIZE = 16

# --------------------------------------------------------------------------------------------
# The book, AlexNet: five convolutions, then three fully connected layers
# --------------------------------------------------------------------------------------------

def conv(input, kernel, biases, s_h, s_w, padding="VALID", group=1):
    """From caffe-tensorflow: a convolution whose channels may be split into groups, as the
    two-GPU AlexNet was."""
    convolve = lambda i, k: tf.nn.conv2d(i, k, [1, s_h, s_w, 1], padding=padding)  # noqa: E731
    if group == 1:
        output = convolve(input, kernel)
    else:
        input_groups = tf.split(input, group, 3)
        kernel_groups = tf.split(kernel, group, 3)
        output = tf.concat([convolve(i, k) for i, k in zip(input_groups, kernel_groups)], 3)
    return tf.nn.bias_add(output, biases)


def lrn(x):
    # Caffe's local_size 5, alpha 1e-4 in TensorFlow's terms: radius 2, alpha 1e-4 / 5
    return tf.nn.local_response_normalization(x, depth_radius=2, alpha=2e-05, beta=0.75,
                                              bias=1.0)


def max_pool(x):
    return tf.nn.max_pool(x, ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1], padding="VALID")


def alexnet(x, params, keep_prob=1.0):
    """The layers of AlexNet on `x` (N, 227, 227, 3), given {layer: (W, b)} tensors."""
    layers = {}
    layers["conv1"] = tf.nn.relu(conv(x, *params["conv1"], 4, 4, padding="VALID"))    # 55x55
    layers["pool1"] = max_pool(lrn(layers["conv1"]))                                   # 27x27
    layers["conv2"] = tf.nn.relu(conv(layers["pool1"], *params["conv2"], 1, 1, "SAME", 2))
    layers["pool2"] = max_pool(lrn(layers["conv2"]))                                   # 13x13
    layers["conv3"] = tf.nn.relu(conv(layers["pool2"], *params["conv3"], 1, 1, "SAME"))
    layers["conv4"] = tf.nn.relu(conv(layers["conv3"], *params["conv4"], 1, 1, "SAME", 2))
    layers["conv5"] = tf.nn.relu(conv(layers["conv4"], *params["conv5"], 1, 1, "SAME", 2))
    layers["pool5"] = max_pool(layers["conv5"])                                        # 6x6
    flat = tf.reshape(layers["pool5"], [-1, int(np.prod(layers["pool5"].shape[1:]))])
    layers["fc6"] = tf.nn.dropout(tf.nn.relu_layer(flat, *params["fc6"]), rate=1 - keep_prob)
    layers["fc7"] = tf.nn.dropout(tf.nn.relu_layer(layers["fc6"], *params["fc7"]),
                                  rate=1 - keep_prob)
    layers["fc8"] = tf.nn.xw_plus_b(layers["fc7"], *params["fc8"])
    layers["prob"] = tf.nn.softmax(layers["fc8"])
    return layers


# --------------------------------------------------------------------------------------------
# The book, 预训练的 AlexNet (pretrained AlexNet): the layers take the weights learnt on
# ImageNet, then each image's top classes
# --------------------------------------------------------------------------------------------

def make_params(shapes, trainable=()):
    """A (W, b) variable pair per layer, zero until `load_params` fills them from the file
    (feeding them keeps the 244 MB of weights out of the graph definition)."""
    params = {}
    for layer, (kernel_shape, bias_shape) in shapes.items():
        params[layer] = tuple(
            tf.get_variable(f"{layer}/{kind}", shape, trainable=layer in trainable,
                            initializer=tf.zeros_initializer())
            for kind, shape in (("weights", kernel_shape), ("biases", bias_shape)))
    return params


def load_params(session, params, weights):
    for layer, (kernel, bias) in params.items():
        tf_setup.load_variable(session, kernel, weights[layer][0])
        tf_setup.load_variable(session, bias, weights[layer][1])


def shapes_of(weights):
    return {layer: (kernel.shape, bias.shape) for layer, (kernel, bias) in weights.items()}


def build_classifier(weights, with_cam=False):
    """AlexNet ready to classify; with_cam adds Grad-CAM on conv5 for the top class, or for
    the class fed to `chosen`."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, (None, IMAGE_SIZE, IMAGE_SIZE, 3), name="x")
        params = make_params(shapes_of(weights))
        layers = alexnet(x, params)
        chosen = tf.placeholder_with_default(tf.argmax(layers["fc8"], 1, output_type=tf.int32),
                                             [None], name="chosen")
        cam = gradcam.grad_cam(layers["conv5"], layers["fc8"], chosen) if with_cam else None
        initializer = tf.global_variables_initializer()
    graph.finalize()
    return SimpleNamespace(graph=graph, x=x, prob=layers["prob"], params=params,
                           initializer=initializer, chosen=chosen, cam=cam)


def preprocess(path, size=IMAGE_SIZE):
    """Any image as the network's input: RGB, shorter side resized to 227 and centre-cropped,
    BGR order, the ImageNet mean pixel subtracted; float32 (227, 227, 3)."""
    image = image_io.centre_square(image_io.open_rgb(path, at_least=size), size)
    rgb = np.asarray(image, dtype=np.float32)
    return rgb[:, :, ::-1] - IMAGENET_MEAN_BGR


def classify(args):
    """The book's run: the weights loaded, every image through the network, its top classes."""
    images = ([alexnet_files.where_given(path) for path in args.images]
              or alexnet_files.books_sample_images(args.weights, args.classes))
    cam = gradcam.CamOption(args, images)  # its command-line mistakes, before any work
    unreadable = image_io.UnreadableImages(len(images))
    readable = list(unreadable.each(images, preprocess))
    if not readable:
        return unreadable.exit_code()
    images, batch = [path for path, _ in readable], np.stack([array for _, array in readable])
    weights_file, classes_file = alexnet_files.weights_and_classes(args.weights, args.classes)
    weights = alexnet_files.load_weights(weights_file)
    class_names = alexnet_files.read_class_names(classes_file)
    if len(class_names) != weights["fc8"][0].shape[1]:
        raise plumbing.UserError(f"{len(class_names)} class names for "
                                 f"{weights['fc8'][0].shape[1]} outputs of fc8")
    cam.choose_class(class_names)
    tf_setup.configure_devices(args.cpu)
    net = build_classifier(weights, with_cam=cam.wanted)
    with tf_setup.new_session(net.graph) as sess:
        sess.run(net.initializer)
        load_params(sess, net.params, weights)
        t = time.time()
        output, cams = run_batches(sess, net, batch, cam.index)
        elapsed = time.time() - t
    for input_im_ind, path in enumerate(images):
        inds = np.argsort(output[input_im_ind])
        print(f"Image {input_im_ind} ({path})")
        for i in range(min(args.top, len(inds))):
            # a float32 as NumPy prints it: the book's `weasel 0.503177`
            print(class_names[inds[-1 - i]], output[input_im_ind, inds[-1 - i]])
    print(f"{elapsed:.3f} s")
    cam.save(images, (network_view(array) for array in batch), output, cams, class_names)
    return unreadable.exit_code()


def run_batches(sess, net, batch, cam_class=None):
    """Probabilities, and with the Grad-CAM graph the conv5 heatmaps, from the same runs."""
    outputs, cams = [], []
    for start in range(0, len(batch), BATCH_SIZE):
        chunk = batch[start:start + BATCH_SIZE]
        feed = {net.x: chunk}
        if cam_class is not None:
            feed[net.chosen] = np.full(len(chunk), cam_class, np.int32)
        fetched = sess.run([net.prob] + ([net.cam] if net.cam is not None else []), feed)
        outputs.append(fetched[0])
        cams.extend(fetched[1:])
    return np.concatenate(outputs), np.concatenate(cams) if cams else None


# --------------------------------------------------------------------------------------------
# Beyond the book: the picture --cam draws on (book_support/gradcam.py saves it)
# --------------------------------------------------------------------------------------------

def network_view(array):
    """The 227x227 RGB picture the network was given, from its preprocessed input."""
    return np.clip(array + IMAGENET_MEAN_BGR, 0, 255).astype(np.uint8)[:, :, ::-1]


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main(argv=None):
    parser = plumbing.argument_parser(
        "Top classes of images under the pretrained AlexNet (ImageNet, 1000 classes).")
    file_roles.reads(parser.add_argument(
        "images", nargs="*", help=f"images of any size and mode (default: the book's laska.png "
                                  f"and poodle.png, here or in {alexnet_files.DATA_DIR})"))
    parser.add_argument("--top", type=plumbing.count(1), default=5,
                        help="classes printed per image")
    file_roles.reads(parser.add_argument(
        "--weights", default=None,
        help=f"bvlc_alexnet.npy (default: downloaded to {alexnet_files.DATA_DIR})"))
    file_roles.reads(parser.add_argument(
        "--classes", default=None, help=f"caffe_classes.py or a text file of names (default: "
                                        f"downloaded to {alexnet_files.DATA_DIR})"))
    tf_setup.add_device_option(parser)
    gradcam.add_cam_arguments(parser, "conv5, on the 227x227 input,", "images")
    args = parser.parse_args(argv)
    return plumbing.run_reporting_errors(lambda: classify(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
