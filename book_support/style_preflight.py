"""style_transfer.py's command line, settled before any work: a mistake found after the 535 MB
weights are read, or an hour into the optimisation, costs the reader that much.

Holds with_optimizer_defaults (the iteration counts that depend on --optimizer), settings_from
(what the loss needs of the options), content_size (the size the images are worked at: any
aspect ratio, the longest side --size, where the book's were 478x478), check_before_work (the
command-line mistakes, and outputs that would replace an input or an earlier result),
check_fits (a --size the free memory cannot hold, from an estimate, and --save-every images the
free disk cannot), and open_inputs, which runs those checks and opens the images, all before
the 535 MB of weights are read.
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from book_support import image_io
from book_support import lbfgs
from book_support import plumbing
from book_support import style_outputs
from book_support import vgg_files

# (iterations, print and save every): L-BFGS needs a tenth of Adam's iterations
OPTIMIZER_DEFAULTS = {"adam": (1000, 100), "lbfgs": (100, 10)}

# Each conv layer's channels: 64, 128, 256, then 512 in blocks 4 and 5
VGG19_WIDTHS = {name: 64 * 2 ** min(int(name[4]) - 1, 3) for name in vgg_files.CONV_LAYERS}


def with_optimizer_defaults(args):
    iterations, every = OPTIMIZER_DEFAULTS[args.optimizer]
    for name, default in (("iterations", iterations), ("print_every", every),
                          ("save_every", every)):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def settings_from(args):
    """What build_problem needs of the options, the style blend weights normalised to sum 1."""
    blend = np.array(args.style_blend_weights or [1.0] * len(args.style), np.float64)
    return SimpleNamespace(content_layer=args.content_layer, content_weight=args.content_weight,
                           style_weight=args.style_weight, tv_weight=args.tv_weight,
                           learning_rate=args.learning_rate,
                           style_blend_weights=list(blend / blend.sum()))


def content_size(image, longest):
    """(width, height) with the longest side `longest`, keeping the aspect ratio."""
    scale = longest / max(image.size)
    return max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale))


def estimated_bytes(size):
    """The weights (the .mat file's size), then activations, their gradients, and Adam's
    moments or L-BFGS's memory for one image, roughly: known before the 535 MB file is read."""
    width, height = size
    floats, scale = 0, 1
    for name in vgg_files.CONV_LAYERS:
        floats += (width // scale + 1) * (height // scale + 1) * VGG19_WIDTHS[name]
        if name.endswith(("1_2", "2_2", "3_4", "4_4")):
            scale *= 2
    return (vgg_files.VGG_WEIGHTS.size + 4 * floats * 4
            + (16 + 8 * lbfgs.MEMORY) * width * height * 3)


def planned_outputs(args):
    """The files this run writes that are there already (numbered images of its save points
    included, found without listing every save point), and the ones it always writes."""
    out = Path(args.output_dir)
    numbered = [path for path in out.glob("*.png") if path.stem.isdigit()
                and int(path.stem) <= args.iterations
                and style_outputs.is_save_point(int(path.stem), args)]
    return sorted(numbered) + [out / "progress_grid.png", out / "loss_curve.png",
                               Path(args.output or out / "final.png")]


def outputs(args):
    """[(option, path)] of planned_outputs, for book_support/file_roles.py to check before any
    work (none when the run will only list the layers, or is missing its images)."""
    if args.list_layers or not (args.content and args.style):
        return []
    return [("--output" if args.output and path == Path(args.output) else "--output-dir", path)
            for path in planned_outputs(with_optimizer_defaults(args))]


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
    if args.content_layer not in vgg_files.CONV_LAYERS:
        raise plumbing.ArgumentMistake(f"--content-layer must be one of "
                                       f"{', '.join(vgg_files.CONV_LAYERS)}")
    if args.style_blend_weights and len(args.style_blend_weights) != len(args.style):
        raise plumbing.ArgumentMistake(f"give one --style-blend-weights value per --style image "
                                       f"({len(args.style)} images, "
                                       f"{len(args.style_blend_weights)} weights)")
    if args.style_blend_weights and sum(args.style_blend_weights) <= 0:
        raise plumbing.ArgumentMistake("--style-blend-weights must not all be 0")


def check_fits(args, size):
    """Refuse an image of `size` (width, height) that the free memory cannot hold (exit 1),
    and saves the free disk cannot (a command-line mistake), before the weights are read."""
    needed, free = estimated_bytes(size), plumbing.available_memory_bytes()
    if free and needed > free:
        raise plumbing.UserError(f"--size {args.size} needs about {needed / 2**30:.1f} GiB and "
                                 f"{free / 2**30:.1f} GiB are free; choose a smaller --size")
    problem = saves_problem(args, size, plumbing.free_disk_bytes(args.output_dir))
    if problem:
        raise plumbing.ArgumentMistake(problem)


def open_inputs(args):
    """(content, styles, initial image or None, (width, height) to work at): the images the
    run reads, opened, after the command line is checked and before the 535 MB of weights are
    read, as is whether the size fits."""
    check_before_work(args)
    content = image_io.open_rgb(args.content)
    styles = [image_io.open_rgb(path) for path in args.style]
    initial = None if args.initial in ("content", "noise", "style") \
        else image_io.open_rgb(args.initial)
    size = content_size(content, args.size)
    check_fits(args, size)
    return content, styles, initial, size
