"""Grad-CAM (Selvaraju et al. 2017): where in the picture a network found the class.

Model code a reader may want to read beside the chapter: grad_cam builds the heatmap as graph
ops, so it comes out of the same run as the prediction; draw_cam and save_cam_figure lay it
over the picture; class_index and add_cam_arguments give the scripts that draw it (AlexNet,
Inception) the same --cam and --cam-class options (emotion_test.py's figure uses grad_cam
directly); CamOption wires them
around a script that classifies a batch (AlexNet): checked first, one titled figure per image.
"""

from pathlib import Path

from book_support import plumbing


def grad_cam(feature_maps, logits, chosen):
    """Grad-CAM as graph ops: for each image, the gradient of the chosen class's score
    averaged over the map's positions weighs each feature map; their sum, through a ReLU,
    scaled to a peak of 1 (a map with no positive evidence stays all zeros). `feature_maps`
    (N, h, w, C), `logits` (N, classes), `chosen` (N,) int32; returns (N, h, w)."""
    import tensorflow.compat.v1 as tf

    # The images of a batch do not interact, so one gradient of the summed scores gives each
    # image the gradient of its own score.
    score = tf.reduce_sum(logits * tf.one_hot(chosen, tf.shape(logits)[1], dtype=logits.dtype))
    gradients = tf.gradients(score, feature_maps)[0]
    weights = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature_maps, axis=3))
    return tf.math.divide_no_nan(cam, tf.reduce_max(cam, axis=[1, 2], keepdims=True))


def upsampled(cam, size):
    """A heatmap (h, w) stretched bilinearly to `size` (width, height), as float32."""
    import numpy as np
    from PIL import Image

    heat = Image.fromarray(np.asarray(cam, np.float32), mode="F")
    return np.asarray(heat.resize(size, Image.Resampling.BILINEAR), np.float32)


def draw_cam(axes, rgb, cam, title):
    """The image with its Grad-CAM heatmap over it and a colour bar beside it."""
    heat = upsampled(cam, (rgb.shape[1], rgb.shape[0]))
    axes.imshow(rgb, cmap="gray" if rgb.ndim == 2 else None)
    shown = axes.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes.figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04, label="Grad-CAM")
    axes.set_title(title)
    axes.axis("off")


def save_cam_figure(rgb, cam, title, path):
    plt = plumbing.pyplot()
    figure, axes = plt.subplots(figsize=(5.5, 4.6))
    draw_cam(axes, rgb, cam, title)
    figure.tight_layout()
    plumbing.save_figure(figure, path)


def class_index(class_names, wanted):
    """The index of the class the user named: a whole name or one of its comma-separated
    synonyms, any case; else the one name that contains it."""
    wanted = wanted.strip().lower()
    for index, name in enumerate(class_names):
        if wanted == name.lower() or wanted in (part.strip().lower() for part in name.split(",")):
            return index
    containing = [index for index, name in enumerate(class_names) if wanted in name.lower()]
    if len(containing) == 1:
        return containing[0]
    some = ", ".join(repr(class_names[i]) for i in containing[:3])
    raise plumbing.UserError(f"--cam-class {wanted!r} names no class" if not containing else
                    f"--cam-class {wanted!r} is in {len(containing)} class names "
                    f"({some}...); give more of one")


def add_cam_arguments(parser, where, images):
    """--cam DIR, --cam-class NAME and --overwrite, the same in every script that draws
    Grad-CAM; `where` says which layer, over what; `images` is the option naming the images,
    whose heatmaps are declared as outputs (book_support/file_roles.py)."""
    from book_support import file_roles

    file_roles.also_writes(parser, lambda args: [
        ("--cam", path) for path in cam_paths(args.cam, getattr(args, images) or [],
                                              args.overwrite).values()])
    parser.add_argument("--cam", metavar="DIR", default=None,
                        help=f"also save, per image, a Grad-CAM heatmap of where {where} "
                             f"found the class (DIR/FILE_cam.png: cat_jpg_cam.png for "
                             f"cat.jpg)")
    plumbing.applies_only(parser.add_argument(
        "--cam-class", metavar="NAME", default=None,
        help="the class --cam shows (a name or synonym; default: the top one)"),
        "with --cam", lambda args: args.cam is not None)
    parser.add_argument("--overwrite", action="store_true",
                        help="let --cam replace heatmaps saved before")


def cam_paths(folder, images, overwrite):
    """{image: DIR/FILE_cam.png} for --cam (cat.jpg and cat.png get cat_jpg_cam.png and
    cat_png_cam.png), checked before any work: two images of one file name (from two folders)
    or an existing file (without --overwrite) is a command-line mistake."""
    if folder is None:
        return {}
    paths, taken = {}, {}
    for image in images:
        path = Path(folder) / f"{Path(image).name.replace('.', '_')}_cam.png"
        if path in taken:
            raise plumbing.ArgumentMistake(f"--cam: {taken[path]} and {image} would both be "
                                           f"saved as {path}")
        problem = plumbing.output_problem(path, "--cam", overwrite)
        if problem:
            raise plumbing.ArgumentMistake(problem)
        paths[image], taken[path] = path, image
    return paths


class CamOption:
    """--cam and --cam-class for a script that classifies a batch of images, as the scripts
    wire them around the book's path: made before any work (so that the --cam paths are
    checked first), then `choose_class` once the class names are read, then `save` after the
    predictions are printed. `wanted` says whether the graph needs the Grad-CAM ops; `index` is
    the class --cam-class named (None: each image's top class)."""

    def __init__(self, args, images):
        self.paths = cam_paths(args.cam, images, args.overwrite)
        self.wanted, self.named, self.index = bool(self.paths), args.cam_class, None

    def choose_class(self, class_names):
        if self.named is not None:
            self.index = class_index(class_names, self.named)

    def save(self, images, pictures, probabilities, cams, class_names):
        """One titled figure per image (its shown class and that class's score), each said in
        one line; `pictures` are the RGB images the network was given."""
        import numpy as np

        if not self.paths:
            return
        for image, picture, scores, cam in zip(images, pictures, probabilities, cams):
            shown = self.index if self.index is not None else int(np.argmax(scores))
            name = class_names[shown][:40]
            save_cam_figure(picture, cam, f"{name} {scores[shown]:.1%}", self.paths[image])
            print(f"saved where the network looked for {name!r} to {self.paths[image]}")
