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
"""

import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from book_support import downloads
from book_support import image_io
from book_support import plumbing
from book_support import tf_setup

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

VGG_URL = "http://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat"
VGG_WEIGHTS = downloads.RemoteFile(
    "imagenet-vgg-verydeep-19.mat", (VGG_URL,), 534904783,
    sha256="abdb57167f82a2a1fbab1e1c16ad9373411883f262a1a37ee5db2e6fb0044695")
DATA_DIR = Path("data/vgg")

VGG19_LAYERS = tuple(
    name for block, convs in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for name in [x for i in range(1, convs + 1) for x in (f"conv{block}_{i}", f"relu{block}_{i}")]
    + [f"pool{block}"]) + ("fc6", "relu6", "fc7", "relu7", "fc8", "prob")
CONV_LAYERS = tuple(name for name in VGG19_LAYERS if name.startswith("conv"))
MEAN_VALUES = np.array([123.68, 116.779, 103.939]).reshape((1, 1, 1, 3))
STYLE_LAYERS = [("conv1_1", 0.5), ("conv2_1", 1.3), ("conv3_1", 2.3), ("conv4_1", 3.1),
                ("conv5_1", 4.0)]
LBFGS_HALVINGS = 10  # of a step that raised the loss, before it is taken anyway
LBFGS_MEMORY = 20  # steps L-BFGS remembers: neural-style keeps 100; 10, 20 and 50 do as well here
GRID_IMAGES = 20  # progress_grid.png shows at most this many of the saved images

# --------------------------------------------------------------------------------------------
# The model: VGG-19 from MatConvNet's .mat file
# --------------------------------------------------------------------------------------------


def load_vgg(path):
    """{layer name: (kernel [h, w, in, out] float32, bias [out])} for every conv and fc layer,
    after checking that the file's 43 layers are VGG-19's, in order, by name."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    if not Path(path).is_file():
        raise plumbing.UserError(f"{path} does not exist")
    try:
        data = scipy.io.loadmat(path)
    # What scipy raises on an empty, truncated, damaged or foreign file, measured on such files
    # (zlib.error for a damaged compressed block, IndexError for a header cut short).
    except (MatReadError, ValueError, OSError, EOFError, IndexError, TypeError, KeyError,
            NotImplementedError, struct.error, zlib.error) as error:
        raise plumbing.UserError(f"{path} is not a MatConvNet .mat file "
                                 f"({type(error).__name__}: {error})") from None
    if "layers" not in data:
        raise plumbing.UserError(f"{path} has no `layers`: not a MatConvNet model")
    layers = data["layers"].reshape(-1)
    if len(layers) != len(VGG19_LAYERS):
        raise plumbing.UserError(f"{path} has {len(layers)} layers; VGG-19 has 43")
    params = {}
    for index, expected in enumerate(VGG19_LAYERS):
        record = np.asarray(layers[index]).reshape(-1)[0]
        fields = record.dtype.names or ()
        name = str(np.asarray(record["name"]).reshape(-1)[0]) if "name" in fields else "?"
        if name != expected:
            raise plumbing.UserError(f"{path}: layer {index} is {name!r}, where VGG-19 has "
                                     f"{expected}")
        if expected.startswith(("conv", "fc")):
            params[expected] = layer_weights(record, expected, path)
    check_chain(params, path)
    return params


def layer_weights(record, name, path):
    try:
        cell = np.asarray(record["weights"]).reshape(-1)
        kernel = np.asarray(cell[0], np.float32)
        bias = np.asarray(cell[1], np.float32).reshape(-1)
    except (ValueError, IndexError, TypeError):
        raise plumbing.UserError(f"{path}: layer {name} has no [weights, bias] pair") from None
    if kernel.ndim != 4 or bias.size != kernel.shape[3]:
        raise plumbing.UserError(f"{path}: layer {name} has weights {kernel.shape} and bias "
                                 f"{bias.shape}")
    return kernel, bias


def check_chain(params, path):
    previous = 3
    for name in CONV_LAYERS:
        kernel = params[name][0]
        if kernel.shape[2] != previous:
            raise plumbing.UserError(f"{path}: layer {name} takes {kernel.shape[2]} channels "
                                     f"but gets {previous}")
        previous = kernel.shape[3]


def vgg19(image, params):
    """The book's model: each convN_M is conv + ReLU, each block ends in average pooling.
    The kernels are used as stored: MatConvNet's import already put them in [h, w, in, out]
    order (neural-style transposes h and w; for 3x3 kernels trained on upright images the
    effect is small, and the book does not)."""
    model, x = {}, image
    for name in VGG19_LAYERS:
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


def list_layers(params):
    return "\n".join(f"{params[name][0].shape} {name}" for name in VGG19_LAYERS if name in params)


# --------------------------------------------------------------------------------------------
# The losses (equations 1, 5 and 7 of Gatys et al., as the book writes them)
# --------------------------------------------------------------------------------------------

def content_loss(p, x):
    size = np.prod(p.shape[1:])
    return (1. / (2 * size)) * tf.reduce_sum(tf.pow((x - p), 2))


def gram_matrix(F, N, M):
    Ft = tf.reshape(F, (M, N))
    return transposed_times_itself(Ft)


@tf.custom_gradient
def transposed_times_itself(Ft):
    """The book's tf.matmul(tf.transpose(Ft), Ft), without copying the transpose and with a
    gradient of one big matmul where TensorFlow's generic one takes two and their sum."""
    def gradient(dG):
        return tf.matmul(Ft, dG + tf.transpose(dG))
    return tf.matmul(Ft, Ft, transpose_a=True), gradient


def style_loss(A, x):
    """`A` is the style image's Gram matrix at the layer whose activations are `x`."""
    N = int(x.shape[3])
    M = int(x.shape[1]) * int(x.shape[2])
    G = gram_matrix(x, N, M)
    return (1 / (4 * N ** 2 * M ** 2)) * tf.reduce_sum(tf.pow(G - A, 2))


def total_variation_loss(image):
    """Sum of squared differences between neighbouring pixels: smooths speckle."""
    return (tf.reduce_sum(tf.square(image[:, 1:, :, :] - image[:, :-1, :, :]))
            + tf.reduce_sum(tf.square(image[:, :, 1:, :] - image[:, :, :-1, :])))


# --------------------------------------------------------------------------------------------
# The optimisation: a graph, its targets, and a generator of progress
# --------------------------------------------------------------------------------------------

def build_problem(params, shape, settings, style_count):
    """The graph: the image variable, VGG-19 on it, and the weighted loss. The targets are
    variables filled once by `set_targets`."""
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
                  "tv": (settings.tv_weight * total_variation_loss(image) if settings.tv_weight
                         else tf.constant(0.0))}
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


def stylize(session, problem, iterations, optimizer, report_every, should_stop=lambda: False):
    """Optimise the image; yields (iteration, image or None, losses) after every iteration,
    with the image at every `report_every`-th iteration and the last. Once `should_stop()`
    is true it yields the image where it stands and ends. Printing, saving and plotting are
    the caller's."""
    fetch = {"total": problem.total, **problem.losses}
    if optimizer == "adam":
        yield from adam(session, problem, iterations, report_every, fetch, should_stop)
        return
    yield from lbfgs(session, problem, iterations, report_every, fetch, should_stop)


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


def lbfgs(session, problem, iterations, report_every, fetch, should_stop):
    """L-BFGS as neural-style runs it (Torch's optim.lbfgs): a step of 1 along the direction
    its memory of the last LBFGS_MEMORY steps gives, with no line search beyond halving a step
    that raised the loss, so an iteration is usually one loss-and-gradient evaluation, the cost
    of an Adam step, and no progress report restarts it. Yields as `adam` does."""
    def evaluate(image):
        tf_setup.load_variable(session, problem.image, image)
        return session.run([fetch, problem.gradient])

    image = session.run(problem.image)
    losses, gradient = evaluate(image)
    steps = []  # (step, gradient change, 1 / their product), oldest first
    for iteration in range(iterations + 1):
        if iteration:
            direction = lbfgs_direction(gradient, steps)
            # with no curvature known yet, step to where the loss's tangent reaches 0 (Polyak)
            step_size = 1.0 if steps else \
                float(losses["total"]) / max(float(np.vdot(gradient, gradient)), 1e-30)
            for _ in range(LBFGS_HALVINGS):
                step = step_size * direction
                new_image = image + step
                new_losses, new_gradient = evaluate(new_image)
                if new_losses["total"] <= losses["total"]:
                    break
                step_size /= 2
            change = new_gradient - gradient
            curvature = float(np.vdot(step, change))
            if curvature > 1e-10:  # only a step along which the loss curves upwards teaches
                steps = steps[-(LBFGS_MEMORY - 1):] + [(step, change, 1 / curvature)]
            image, losses, gradient = new_image, new_losses, new_gradient
        stopping = should_stop()
        shown = iteration % report_every == 0 or iteration == iterations or stopping
        yield iteration, image if shown else None, losses
        if stopping:
            return


def lbfgs_direction(gradient, steps):
    """The two-loop recursion: minus the gradient times L-BFGS's inverse-Hessian estimate
    from the remembered (step, gradient change, 1 / their product) triples, oldest first."""
    direction, alphas = -gradient, []
    for step, change, rho in reversed(steps):
        alphas.append(rho * float(np.vdot(step, direction)))
        direction = direction - alphas[-1] * change
    if steps:
        step, change, rho = steps[-1]
        direction = direction / (rho * float(np.vdot(change, change)))
    for (step, change, rho), alpha in zip(steps, reversed(alphas)):
        direction = direction + step * (alpha - rho * float(np.vdot(change, direction)))
    return direction


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

def content_size(image, longest):
    """(width, height) with the longest side `longest`, keeping the aspect ratio."""
    scale = longest / max(image.size)
    return max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale))


def preprocess(image, size):
    """A PIL image resized to `size` (width, height) as the network's input: a batch of one,
    the mean pixel subtracted."""
    from PIL import Image

    image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image, np.float32)[np.newaxis] - MEAN_VALUES.astype(np.float32)


def deprocess(image):
    return np.clip(image[0] + MEAN_VALUES[0], 0, 255).astype(np.uint8)


def preserve_colors(stylized, content):
    """The stylized image's luminance with the content's colour (YCbCr chroma)."""
    from PIL import Image

    luminance = Image.fromarray(stylized).convert("YCbCr").split()[0]
    _, cb, cr = Image.fromarray(content).convert("YCbCr").split()
    return np.asarray(Image.merge("YCbCr", (luminance, cb, cr)).convert("RGB"))


def initial_image(choice, content, styles, seed, size, opened=None):
    """The starting image; `opened` is the already-opened image when `choice` is a path."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-20, 20, content.shape).astype(np.float32)
    if choice == "content":
        return content
    if choice == "style":
        return styles[0]
    if choice == "noise":
        return noise * 0.7 + content * 0.3  # the book's start: noise_content_ratio 0.7
    return preprocess(opened or image_io.open_rgb(choice), size)


def save_png(array, path):
    from PIL import Image
    with plumbing.atomic_output(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")


def save_grid(saved, path):
    """The grid of saved iterations, each titled: GRID_IMAGES of them at most, evenly spread,
    the last one always."""
    from PIL import Image
    plt = plumbing.pyplot()
    picks = np.unique(np.linspace(0, len(saved) - 1, min(len(saved), GRID_IMAGES)).round())
    saved = [saved[int(index)] for index in picks]
    columns = min(5, len(saved))
    rows = -(-len(saved) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (iteration, file) in zip(axes.ravel(), saved):
        with Image.open(file) as image:
            ax.imshow(np.asarray(image))
        ax.set_title(f"iteration {iteration}")
    figure.tight_layout()
    plumbing.save_figure(figure, path)


def save_loss_curve(history, path):
    plt = plumbing.pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    iterations = [i for i, _ in history]
    for name in ("total", "content", "style", "tv"):
        values = [losses[name] for _, losses in history]
        if max(values) > 0:
            axes.plot(iterations, values, label=name)
    axes.set(yscale="log", xlabel="iteration", ylabel="loss", title="Style transfer loss")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    plumbing.save_figure(figure, path)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

VGG19_WIDTHS = {name: 64 * 2 ** min(int(name[4]) - 1, 3) for name in CONV_LAYERS}


def estimated_bytes(size):
    """The weights (the .mat file's size), then activations, their gradients, and Adam's
    moments or L-BFGS's memory for one image, roughly: known before the 535 MB file is read."""
    width, height = size
    floats, scale = 0, 1
    for name in CONV_LAYERS:
        floats += (width // scale + 1) * (height // scale + 1) * VGG19_WIDTHS[name]
        if name.endswith(("1_2", "2_2", "3_4", "4_4")):
            scale *= 2
    return VGG_WEIGHTS.size + 4 * floats * 4 + (16 + 8 * LBFGS_MEMORY) * width * height * 3


def is_save_point(iteration, args):
    return iteration % args.save_every == 0 or iteration == args.iterations


def planned_outputs(args):
    """The files this run writes that are there already (numbered images of its save points
    included, found without listing every save point), and the ones it always writes."""
    out = Path(args.output_dir)
    numbered = [path for path in out.glob("*.png") if path.stem.isdigit()
                and int(path.stem) <= args.iterations and is_save_point(int(path.stem), args)]
    return sorted(numbered) + [out / "progress_grid.png", out / "loss_curve.png",
                               Path(args.output or out / "final.png")]


def saves_problem(args, size, free):
    """Why the images --save-every asks for cannot fit in `free` bytes, or None."""
    count = args.iterations // args.save_every + 2
    largest = size[0] * size[1] * 3 + 1024  # a PNG's worst case, roughly
    if free is not None and count * largest > free:
        return (f"--iterations {args.iterations} --save-every {args.save_every} would save "
                f"{count:,} images of up to {largest:,} bytes, and {free / 1e9:.1f} GB are free "
                f"in {args.output_dir}; choose a larger --save-every")
    return None


def check_before_work(args):
    """Every command-line mistake, found before the long work starts. Every file the run
    reads (the images and the weights) is an input, and outputs never replace inputs."""
    if not args.content or not args.style:
        raise plumbing.ArgumentMistake("give --content and --style images")
    if args.content_layer not in CONV_LAYERS:
        raise plumbing.ArgumentMistake(f"--content-layer must be one of "
                                       f"{', '.join(CONV_LAYERS)}")
    if args.style_blend_weights and len(args.style_blend_weights) != len(args.style):
        raise plumbing.ArgumentMistake(f"give one --style-blend-weights value per --style image "
                                       f"({len(args.style)} images, "
                                       f"{len(args.style_blend_weights)} weights)")
    if args.style_blend_weights and sum(args.style_blend_weights) <= 0:
        raise plumbing.ArgumentMistake("--style-blend-weights must not all be 0")
    images = [args.content, *args.style]
    if args.initial not in ("content", "noise", "style"):
        images.append(args.initial)
    inputs = [Path(path).resolve() for path in images + ([args.weights] if args.weights else [])]
    for output in planned_outputs(args):
        if output.resolve() in inputs:
            raise plumbing.ArgumentMistake(f"{output} is an input; outputs never replace inputs")
        option = "--output" if args.output and output == Path(args.output) else "--output-dir"
        problem = plumbing.output_problem(output, option, args.overwrite)
        if problem:
            raise plumbing.ArgumentMistake(problem)


def settings_from(args):
    blend = np.array(args.style_blend_weights or [1.0] * len(args.style), np.float64)
    return SimpleNamespace(content_layer=args.content_layer, content_weight=args.content_weight,
                           style_weight=args.style_weight, tv_weight=args.tv_weight,
                           learning_rate=args.learning_rate,
                           style_blend_weights=list(blend / blend.sum()))


def run(args):
    if args.list_layers:
        print(list_layers(load_vgg(args.weights or downloads.fetch(VGG_WEIGHTS, DATA_DIR))))
        return 0
    check_before_work(args)
    content_image = image_io.open_rgb(args.content)
    style_images = [image_io.open_rgb(path) for path in args.style]
    initial_source = None if args.initial in ("content", "noise", "style") \
        else image_io.open_rgb(args.initial)
    size = content_size(content_image, args.size)
    needed, free = estimated_bytes(size), plumbing.available_memory_bytes()
    if free and needed > free:
        raise plumbing.UserError(f"--size {args.size} needs about {needed / 2**30:.1f} GiB and "
                                 f"{free / 2**30:.1f} GiB are free; choose a smaller --size")
    problem = saves_problem(args, size, plumbing.free_disk_bytes(args.output_dir))
    if problem:
        raise plumbing.ArgumentMistake(problem)
    params = load_vgg(args.weights or downloads.fetch(VGG_WEIGHTS, DATA_DIR))
    content = preprocess(content_image, size)
    styles = [preprocess(image, size) for image in style_images]
    initial = initial_image(args.initial, content, styles, args.seed, size, initial_source)
    device = tf_setup.configure_devices(args.cpu)
    problem = build_problem(params, content.shape, settings_from(args), len(styles))
    print(f"{size[0]}x{size[1]} pixels, {args.optimizer}, {args.precision}, on {device}")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    content_pixels = deprocess(content)
    finish = (lambda a: preserve_colors(deprocess(a), content_pixels)) if args.preserve_colors \
        else deprocess
    saved, history = [], []
    progress = plumbing.Progress(args.iterations, "stylizing", unit=" iterations")
    with tf_setup.new_session(problem.graph, precision=args.precision) as sess, \
            plumbing.CtrlC() as ctrl_c:
        sess.run(problem.initializer)
        set_targets(sess, problem, content, styles, initial)
        last = diverged = None
        for iteration, image, losses in stylize(sess, problem, args.iterations, args.optimizer,
                                                min(args.print_every, args.save_every),
                                                lambda: ctrl_c.pressed):
            if not np.isfinite(losses["total"]):  # kept: the last good image, saved below
                diverged = iteration, float(losses["total"])
                break
            history.append((iteration, {k: float(v) for k, v in losses.items()}))
            progress.update(iteration - progress.done)
            if iteration % args.print_every == 0:
                print("iteration:", iteration, "cost: ", f"{losses['total']:.6g}", flush=True)
            if image is not None:
                last = iteration, image
                if is_save_point(iteration, args):
                    save_png(finish(image), out / f"{iteration}.png")
                    saved.append((iteration, out / f"{iteration}.png"))
    progress.close()
    if last is None:
        raise plumbing.UserError(f"the loss became {diverged[1]} at iteration {diverged[0]}, "
                                 f"before any image to keep; try a smaller --learning-rate")
    final = Path(args.output or out / "final.png")
    save_png(finish(last[1]), final)
    if not saved or saved[-1][0] != last[0]:
        saved.append((last[0], final))  # the grid ends with the image the run ended on
    save_grid(saved, out / "progress_grid.png")
    save_loss_curve(history, out / "loss_curve.png")
    if diverged:
        raise plumbing.UserError(f"the loss became {diverged[1]} at iteration {diverged[0]}; "
                                 f"the last good image (iteration {last[0]}) is kept as {final}; "
                                 f"try a smaller --learning-rate, or --optimizer lbfgs")
    if ctrl_c.pressed:
        print(f"interrupted at iteration {last[0]}: saved that image as {final}, and "
              f"progress_grid.png and loss_curve.png in {out}")
        return 130
    print(f"saved {final}, {len(saved)} images, progress_grid.png and loss_curve.png in {out}")
    return 0


def build_parser():
    parser = plumbing.argument_parser(
        "Paint the content image in the style of the style image(s) with VGG-19.")
    parser.add_argument("--content", help="the photo to repaint (never modified)")
    parser.add_argument("--style", nargs="+", default=[], help="one or more style images")
    parser.add_argument("--style-blend-weights", type=plumbing.number(minimum=0), nargs="+",
                        default=None,
                        help="one weight per style (normalised); default equal")
    parser.add_argument("--weights", default=None,
                        help=f"imagenet-vgg-verydeep-19.mat (default: downloaded to {DATA_DIR})")
    parser.add_argument("--list-layers", action="store_true",
                        help="print each conv/fc kernel shape beside its name, and exit")
    parser.add_argument("--output-dir", default="out",
                        help="where N.png, progress_grid.png and loss_curve.png go")
    parser.add_argument("--output", default=None,
                        help="the final image (default: OUTPUT_DIR/final.png)")
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
    parser.add_argument("--initial", default="noise",
                        help="content, noise (the book's 0.7 noise + 0.3 content), style, or "
                             "an image path")
    parser.add_argument("--preserve-colors", action="store_true",
                        help="keep the content's colours: transfer luminance only")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: mixed precision (oneDNN bf16 on CPUs that have it, fp16 on "
                             "GPUs)")
    parser.add_argument("--seed", type=plumbing.seed, default=None,
                        help="seed of the starting noise")
    tf_setup.add_device_option(parser)
    return parser


# (iterations, print and save every): L-BFGS needs a tenth of Adam's iterations
OPTIMIZER_DEFAULTS = {"adam": (1000, 100), "lbfgs": (100, 10)}


def with_optimizer_defaults(args):
    iterations, every = OPTIMIZER_DEFAULTS[args.optimizer]
    for name, default in (("iterations", iterations), ("print_every", every),
                          ("save_every", every)):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def main(argv=None):
    parser = build_parser()
    args = with_optimizer_defaults(parser.parse_args(argv))
    return plumbing.run_reporting_errors(lambda: run(args), parser)


if __name__ == "__main__":
    raise SystemExit(main())
