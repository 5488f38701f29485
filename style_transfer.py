"""Artistic style transfer with VGG-19 (Gatys et al.): the book's style_transfer.py.

    python style_transfer.py --content cat.jpg --style mosaic.jpg
    python style_transfer.py --content me.jpg --style a.jpg b.jpg --style-blend-weights 0.7 0.3 \\
        --optimizer lbfgs --iterations 300 --preserve-colors --output-dir out/me

By default everything is the book's: VGG-19 conv1_1 ... conv5_4 with average pooling, content
loss on conv5_4, style loss on conv1_1 ... conv5_1 weighted 0.5, 1.3, 2.3, 3.1, 4.0, alpha 1,
beta 100, a start of 0.7 x noise + 0.3 x content, Adam at 1.5, 478 pixels, and every 100
iterations a line and the image out/100.png, both after that iteration's step, as the book
printed them. Its first two lines (the book's):

    iteration: 0 cost:  8.14037e+11
    iteration: 100 cost:  1.65584e+10

The book contradicts itself on the length: its loop runs `range(2001)` while its text and
printed output stop at iteration 1000; the script follows the output, 1000 (--iterations).

What changed, and why:
  * TensorFlow 2 through tf.compat.v1; the image is a variable of its own graph, and the
    targets (content features, style Gram matrices) are computed once, before optimising.
  * Inputs are never written to (the book saved its resized cat.jpg over the original), and an
    earlier output is only replaced with --overwrite.
  * Any aspect ratio: the longest side becomes --size, and the style is scaled to the content.
  * The .mat file is read by field name, so MatConvNet's current layout (the book's) and the
    old beta16 one both work; every layer's name is checked, as the book's assert did.
  * A grid of the saved iterations is drawn (the chapter shows only the last), with the loss
    curve beside it.
Beyond the book, as neural-style offers: L-BFGS (`--optimizer lbfgs`, much faster to the same
loss; README: how long things take), several blended styles, colour preservation,
total-variation smoothing, bf16 mixed precision, and a progress line with ETA. Ctrl-C keeps the
work: the image where the optimiser stands becomes the final image, with the grid and the loss
curve so far.

The book's code comes first, under the chapter's section titles, then the glue that runs it;
the rest is in book_support: vgg_files (the .mat file, downloaded and checked), style_losses
(the total-variation term, the Gram matrix's fast gradient), lbfgs (L-BFGS, a generator of
progress like the book's loop here), style_preflight (options settled and checked, memory and
disk estimated, before any work) and style_outputs (PNGs, colours, the grid, the loss curve).
"""

from types import SimpleNamespace

import numpy as np

from book_support import file_roles
from book_support import image_io
from book_support import lbfgs
from book_support import plumbing
from book_support import style_losses
from book_support import style_outputs
from book_support import style_preflight
from book_support import tf_setup
from book_support import vgg_files

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

# --------------------------------------------------------------------------------------------
# The book, 输入图像 (input images)
# --------------------------------------------------------------------------------------------

MEAN_VALUES = np.array([123.68, 116.779, 103.939]).reshape((1, 1, 1, 3))


def preprocess(image, size):
    """A PIL image resized to `size` (width, height) as the network's input: a batch of one,
    the mean pixel subtracted."""
    from PIL import Image

    image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image, np.float32)[np.newaxis] - MEAN_VALUES.astype(np.float32)


def deprocess(image):
    return np.clip(image[0] + MEAN_VALUES[0], 0, 255).astype(np.uint8)


def initial_image(choice, content, styles, seed, size, opened=None):
    """The starting image; `opened` is the already-opened image when `choice` is a path. The
    book draws its noise_image beside the style loss; it is the optimiser's start, so here."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-20, 20, content.shape).astype(np.float32)
    if choice == "content":
        return content
    if choice == "style":
        return styles[0]
    if choice == "noise":
        return noise * 0.7 + content * 0.3  # the book's start: noise_content_ratio 0.7
    return preprocess(opened or image_io.open_rgb(choice), size)


# --------------------------------------------------------------------------------------------
# The book, 内容提取器和损失 (content extractor and loss)
# --------------------------------------------------------------------------------------------

def vgg19(image, params):
    """The book's model: each convN_M is conv + ReLU, each block ends in average pooling.
    The kernels are used as stored: MatConvNet's import already put them in [h, w, in, out]
    order (neural-style transposes h and w; for 3x3 kernels trained on upright images the
    effect is small, and the book does not)."""
    model, x = {}, image
    for name in vgg_files.VGG19_LAYERS:
        if name.startswith("conv"):
            kernel, bias = params[name]
            # bias_add, not "+": grappler then fuses conv, BiasAdd and ReLU into one oneDNN op
            x = tf.nn.conv2d(x, tf.constant(kernel), strides=[1, 1, 1, 1], padding="SAME")
            x = tf.nn.relu(tf.nn.bias_add(x, tf.constant(bias)))
            model[name] = x
        elif name.startswith("pool"):
            x = tf.nn.avg_pool(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
            model["avg" + name] = x
            if name == "pool5":
                return model
    return model


def content_loss(p, x):
    size = np.prod(p.shape[1:])
    return (1. / (2 * size)) * tf.reduce_sum(tf.pow((x - p), 2))


# --------------------------------------------------------------------------------------------
# The book, 样式提取器和损失 (style extractor and loss)
# --------------------------------------------------------------------------------------------

STYLE_LAYERS = [("conv1_1", 0.5), ("conv2_1", 1.3), ("conv3_1", 2.3), ("conv4_1", 3.1),
                ("conv5_1", 4.0)]


def gram_matrix(F, N, M):
    Ft = tf.reshape(F, (M, N))
    return style_losses.transposed_times_itself(Ft)  # the book's matmul, made faster


def style_loss(A, x):
    """`A` is the style image's Gram matrix at the layer whose activations are `x`."""
    N = int(x.shape[3])
    M = int(x.shape[1]) * int(x.shape[2])
    G = gram_matrix(x, N, M)
    return (1 / (4 * N ** 2 * M ** 2)) * tf.reduce_sum(tf.pow(G - A, 2))


# --------------------------------------------------------------------------------------------
# The book, 合并和总损失 (merge and total loss)
# --------------------------------------------------------------------------------------------

def build_problem(params, shape, settings, style_count):
    """The graph: the image variable, VGG-19 on it, the weighted loss and the book's Adam.
    The targets are variables filled once by `set_targets`."""
    graph = tf.Graph()
    with graph.as_default():
        image = tf.Variable(tf.zeros(shape), name="image")
        x = tf.placeholder_with_default(image.value(), shape, name="x")
        model = vgg19(x, params)
        content_layer = model[settings.content_layer]
        content_target = tf.Variable(tf.zeros(content_layer.shape), trainable=False)
        grams, style_targets, style_terms = {}, [], []
        for layer, _ in STYLE_LAYERS:
            activations = model[layer]
            channels = int(activations.shape[3])
            grams[layer] = gram_matrix(activations, channels,
                                       int(activations.shape[1]) * int(activations.shape[2]))
        for blend in settings.style_blend_weights[:style_count]:
            targets = {layer: tf.Variable(tf.zeros(grams[layer].shape), trainable=False)
                       for layer, _ in STYLE_LAYERS}
            style_targets.append(targets)
            style_terms.append(blend * sum(weight * style_loss(targets[layer], model[layer])
                                           for layer, weight in STYLE_LAYERS))
        losses = {"content": settings.content_weight * content_loss(content_target,
                                                                       content_layer),
                  "style": settings.style_weight * tf.add_n(style_terms),
                  # not even built at weight 0 (the default): its gradient costs time
                  "tv": (settings.tv_weight * style_losses.total_variation_loss(image)
                         if settings.tv_weight else tf.constant(0.0))}
        total = tf.add_n(list(losses.values()), name="total_loss")
        gradient = tf.gradients(total, image)[0]
        adam = tf.train.AdamOptimizer(settings.learning_rate).minimize(total, var_list=[image])
        initializer = tf.global_variables_initializer()
    graph.finalize()
    return SimpleNamespace(graph=graph, image=image, x=x, content_layer=content_layer,
                           content_target=content_target, grams=grams,
                           style_targets=style_targets, losses=losses, total=total,
                           gradient=gradient, adam=adam, initializer=initializer)


def set_targets(session, problem, content, styles, initial):
    tf_setup.load_variable(session, problem.content_target,
                           session.run(problem.content_layer, {problem.x: content}))
    for style, targets in zip(styles, problem.style_targets):
        grams = session.run(problem.grams, {problem.x: style})
        for layer, variable in targets.items():
            tf_setup.load_variable(session, variable, grams[layer])
    tf_setup.load_variable(session, problem.image, initial)


# --------------------------------------------------------------------------------------------
# The book, 训练 (training)
# --------------------------------------------------------------------------------------------

def adam(session, problem, iterations, report_every, fetch, should_stop):
    """The book's loop: each iteration one Adam step, and every iteration's losses those of
    the image after its step, as the book printed them. A step measures the losses of the
    image before it, so an iteration's losses are yielded with the next step, except where
    the image is reported: there one more forward pass measures them at once."""
    waiting = None  # the iteration whose losses the next step measures
    for iteration in range(iterations + 1):
        _, before = session.run([problem.adam, fetch])
        if waiting is not None:
            yield waiting, None, before
        stopping = should_stop()
        if iteration % report_every == 0 or iteration == iterations or stopping:
            yield iteration, session.run(problem.image), session.run(fetch)
            waiting = None
            if stopping:
                return
        else:
            waiting = iteration


def train(steps, args, save):
    """The book's loop around the optimiser's steps: the cost every --print-every iterations
    and `save(iteration, image)` every --save-every. Returns the last (iteration, image)."""
    last = None
    for iteration, image, losses in steps:
        if iteration % args.print_every == 0:
            print("iteration:", iteration, "cost: ", f"{losses['total']:.6g}", flush=True)
        if image is not None:
            last = iteration, image
            if style_outputs.is_save_point(iteration, args):
                save(iteration, image)
    return last


# --------------------------------------------------------------------------------------------
# Beyond the book: L-BFGS beside Adam, the run around the book's loop
# --------------------------------------------------------------------------------------------

def stylize(session, problem, iterations, optimizer, report_every, should_stop=lambda: False):
    """Optimise the image; yields (iteration, image or None, losses) after every iteration,
    with the image at every `report_every`-th iteration and the last. Once `should_stop()`
    is true it yields the image where it stands and ends. Printing, saving and plotting are
    the caller's. `optimizer` is the book's "adam" or "lbfgs" (book_support/lbfgs.py)."""
    fetch = {"total": problem.total, **problem.losses}
    if optimizer == "adam":
        yield from adam(session, problem, iterations, report_every, fetch, should_stop)
        return

    def evaluate(image):
        tf_setup.load_variable(session, problem.image, image)
        return session.run([fetch, problem.gradient])
    yield from lbfgs.minimize(evaluate, session.run(problem.image), iterations, report_every,
                              should_stop)


def run(args):
    if args.list_layers:
        print(vgg_files.list_layers(vgg_files.load_vgg(args.weights or vgg_files.download())))
        return 0
    # mistakes, unreadable images and sizes that cannot fit: found before the weights are read
    content_image, style_images, initial_source, size = style_preflight.open_inputs(args)
    params = vgg_files.load_vgg(args.weights or vgg_files.download())
    content = preprocess(content_image, size)
    styles = [preprocess(image, size) for image in style_images]
    initial = initial_image(args.initial, content, styles, args.seed, size, initial_source)
    device = tf_setup.configure_devices(args.cpu)
    problem = build_problem(params, content.shape, style_preflight.settings_from(args), len(styles))
    print(f"{size[0]}x{size[1]} pixels, {args.optimizer}, {args.precision}, on {device}")
    record = style_outputs.Record(args, deprocess, deprocess(content))
    with tf_setup.new_session(problem.graph, precision=args.precision) as sess, \
            plumbing.CtrlC() as ctrl_c:
        sess.run(problem.initializer)
        set_targets(sess, problem, content, styles, initial)
        steps = stylize(sess, problem, args.iterations, args.optimizer,
                        min(args.print_every, args.save_every), lambda: ctrl_c.pressed)
        last = train(record.watch(steps), args, record.save)
    return record.end(last, ctrl_c.pressed)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def build_parser():
    parser = plumbing.argument_parser(
        "Paint the content image in the style of the style image(s) with VGG-19.")
    file_roles.reads(parser.add_argument("--content",
                                         help="the photo to repaint (never modified)"))
    file_roles.reads(parser.add_argument("--style", nargs="+", default=[],
                                         help="one or more style images"))
    parser.add_argument("--style-blend-weights", type=plumbing.number(minimum=0), nargs="+",
                        default=None, help="one weight per style (normalised); default equal")
    file_roles.reads(parser.add_argument(
        "--weights", default=None,
        help=f"imagenet-vgg-verydeep-19.mat (default: downloaded to {vgg_files.DATA_DIR})"))
    parser.add_argument("--list-layers", action="store_true",
                        help="print each conv/fc kernel shape beside its name, and exit")
    parser.add_argument("--output-dir", default="out",
                        help="where N.png, progress_grid.png and loss_curve.png go")
    file_roles.writes(parser.add_argument(
        "--output", default=None, help="the final image (default: OUTPUT_DIR/final.png)"))
    parser.add_argument("--overwrite", action="store_true", help="replace earlier outputs")
    parser.add_argument("--iterations", type=plumbing.count(1), default=None,
                        help="optimiser steps (default: the book's 1000 with adam, 100 with "
                             "lbfgs)")
    parser.add_argument("--print-every", type=plumbing.count(1), default=None,
                        help="print the cost every this many iterations (default: 100 with "
                             "adam, 10 with lbfgs)")
    parser.add_argument("--save-every", type=plumbing.count(1), default=None,
                        help="save OUTPUT_DIR/N.png every this many iterations (default: as "
                             "--print-every)")
    parser.add_argument("--size", type=plumbing.count(16), default=478,
                        help="longest side in pixels")
    parser.add_argument("--content-layer", default="conv5_4",
                        help="the layer whose features the content loss compares")
    parser.add_argument("--content-weight", type=plumbing.number(minimum=0), default=1.0,
                        help="alpha")
    parser.add_argument("--style-weight", type=plumbing.number(minimum=0), default=100.0,
                        help="beta")
    parser.add_argument("--tv-weight", type=plumbing.number(minimum=0), default=0.0,
                        help="total-variation weight")
    parser.add_argument("--learning-rate", type=plumbing.number(positive=True), default=1.5,
                        help="Adam's step")
    parser.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam",
                        help="the book's Adam, or L-BFGS: the loss of the book's 1000 Adam "
                             "iterations in a few dozen iterations (README)")
    file_roles.reads(parser.add_argument(
        "--initial", default="noise",
        help="content, noise (the book's 0.7 noise + 0.3 content), style, or an image path"))
    parser.add_argument("--preserve-colors", action="store_true",
                        help="keep the content's colours: transfer luminance only")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: mixed precision (oneDNN bf16 on CPUs that have it, fp16 on "
                             "GPUs)")
    parser.add_argument("--seed", type=plumbing.seed, default=None,
                        help="seed of the starting noise")
    tf_setup.add_device_option(parser)
    file_roles.also_writes(parser, style_preflight.outputs)
    return parser


def main(argv=None):
    parser = build_parser()
    args = style_preflight.with_optimizer_defaults(parser.parse_args(argv))
    return plumbing.run_reporting_errors(lambda: run(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
