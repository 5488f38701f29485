"""What style_transfer.py writes beyond the book's cost lines and numbered PNGs, and how.

Holds Record, one run's outputs around the book's loop: the progress line, each iteration's
losses (for the loss curve), a loss that stops being finite (the last good image is kept), the
numbered PNGs, and at the end the final image, the grid of saved iterations (progress_grid.png,
like the chapter's figure of the result, which shows only the last), the loss curve
(loss_curve.png) and the closing line. Beside it: save_png (written atomically, so a full disk
or Ctrl-C never leaves half a PNG), is_save_point, and preserve_colors (--preserve-colors: the
stylized luminance with the content's colour, as neural-style offers).
"""

from pathlib import Path

import numpy as np

from book_support import plumbing

GRID_IMAGES = 20  # progress_grid.png shows at most this many of the saved images


def is_save_point(iteration, args):
    return iteration % args.save_every == 0 or iteration == args.iterations


def save_png(array, path):
    from PIL import Image
    with plumbing.atomic_output(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")


def preserve_colors(stylized, content):
    """The stylized image's luminance with the content's colour (YCbCr chroma)."""
    from PIL import Image

    luminance = Image.fromarray(stylized).convert("YCbCr").split()[0]
    _, cb, cr = Image.fromarray(content).convert("YCbCr").split()
    return np.asarray(Image.merge("YCbCr", (luminance, cb, cr)).convert("RGB"))


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


class Record:
    """One run's outputs around the book's loop: the progress line and each iteration's losses
    (for the loss curve) as the optimiser's steps go by, the numbered PNGs, and at the end the
    final image, the grid and the loss curve, with the line that says what was kept."""

    def __init__(self, args, deprocess, content):
        self.out = Path(args.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.final = Path(args.output or self.out / "final.png")
        self.finish = deprocess
        if args.preserve_colors:
            self.finish = lambda image: preserve_colors(deprocess(image), content)
        self.saved, self.history, self.diverged = [], [], None
        self.progress = plumbing.Progress(args.iterations, "stylizing", unit=" iterations")

    def watch(self, steps):
        """The optimiser's (iteration, image, losses) steps, passed on until a loss is not
        finite: the last good image is then kept, and `end` says so."""
        for iteration, image, losses in steps:
            if not np.isfinite(losses["total"]):
                self.diverged = iteration, float(losses["total"])
                break
            self.history.append((iteration, {k: float(v) for k, v in losses.items()}))
            self.progress.update(iteration - self.progress.done)
            yield iteration, image, losses
        self.progress.close()

    def save(self, iteration, image):
        save_png(self.finish(image), self.out / f"{iteration}.png")
        self.saved.append((iteration, self.out / f"{iteration}.png"))

    def end(self, last, interrupted):
        """Save the image the run ended on, `last` = (iteration, image), with the grid and the
        loss curve; the exit code (130 after Ctrl-C), or a UserError if the loss diverged."""
        if last is None:
            raise plumbing.UserError(f"the loss became {self.diverged[1]} at iteration "
                                     f"{self.diverged[0]}, before any image to keep; try a "
                                     f"smaller --learning-rate")
        save_png(self.finish(last[1]), self.final)
        if not self.saved or self.saved[-1][0] != last[0]:
            self.saved.append((last[0], self.final))  # the grid ends with the last image
        save_grid(self.saved, self.out / "progress_grid.png")
        save_loss_curve(self.history, self.out / "loss_curve.png")
        if self.diverged:
            raise plumbing.UserError(f"the loss became {self.diverged[1]} at iteration "
                                     f"{self.diverged[0]}; the last good image (iteration "
                                     f"{last[0]}) is kept as {self.final}; try a smaller "
                                     f"--learning-rate, or --optimizer lbfgs")
        if interrupted:
            print(f"interrupted at iteration {last[0]}: saved that image as {self.final}, and "
                  f"progress_grid.png and loss_curve.png in {self.out}")
            return 130
        print(f"saved {self.final}, {len(self.saved)} images, progress_grid.png and "
              f"loss_curve.png in {self.out}")
        return 0
