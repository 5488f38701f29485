"""The book's style-transfer result in a fraction of the book's time.

For each size and precision asked, in one run, on a full-size VGG-19 with random weights (the
real file cannot be had offline; the same weights, images and start for every path):
  1. the book's run: Adam 1.5 for 1000 iterations from the book's noisy start; its time and the
     loss it ends at (the target);
  2. `--optimizer lbfgs` as style_transfer.py runs it, stopped at the first iteration whose
     loss reaches the target: its time and its ratio to Adam's. Goal: at most 1/20;
  3. the peer: scipy's L-BFGS-B (line search, 10 corrections) on the same loss and gradient,
     in one run, then restarted every 10 iterations as the previous style_transfer.py did
     when asked for progress every 10 iterations;
  4. coarse to fine: the same L-BFGS for a few iterations at a fraction of the size, the image
     stretched to the full size, then on to the target; its stages' times add up to the whole.
Every time counts from before the graph is built, so set-up is in it.

    python bench/style_transfer_fast.py --content ../shared/data/images/cat.jpg \\
        --style ../shared/data/images/mosaic.jpg          # about 40 minutes on 2 cores
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from book_support import gradcam  # noqa: E402
from book_support import image_io  # noqa: E402
import style_transfer  # noqa: E402
from book_support import style_preflight  # noqa: E402
from book_support import tf_setup  # noqa: E402
from style_transfer_vs_torch import random_vgg19, tensorflow_problem  # noqa: E402

COARSE_TO_FINE = ((0.5, 10), (0.25, 20))  # (scale, iterations) of the one coarse stage


class Reached(Exception):
    pass


def problem_at(params, content_image, style_image, size, precision, start=None):
    content = style_transfer.preprocess(content_image, size)
    style = style_transfer.preprocess(style_image, size)
    return tensorflow_problem(params, content, style, precision, start)


def ours(session, problem, iterations, target=None):
    """style_transfer.py's L-BFGS: (iterations done, last image, last loss)."""
    for iteration, image, losses in style_transfer.stylize(session, problem, iterations,
                                                           "lbfgs", iterations):
        if target is not None and losses["total"] <= target:
            return iteration, None, losses["total"]
    return iteration, image, losses["total"]


def scipy_lbfgs(session, problem, target, restart_every):
    """scipy's L-BFGS-B until the loss reaches `target`; returns its evaluations."""
    import scipy.optimize

    shape, evaluations = problem.image.shape.as_list(), []

    def loss_and_gradient(flat):
        tf_setup.load_variable(session, problem.image, flat.reshape(shape).astype(np.float32))
        loss, gradient = session.run([problem.total, problem.gradient])
        evaluations.append(loss)
        if loss <= target:
            raise Reached
        return float(loss), gradient.ravel().astype(np.float64)

    current = session.run(problem.image).ravel().astype(np.float64)
    try:
        while len(evaluations) < 2000:
            current = scipy.optimize.minimize(loss_and_gradient, current, jac=True,
                                              method="L-BFGS-B",
                                              options={"maxiter": restart_every}).x
    except Reached:
        pass
    return len(evaluations)


def stretched(image, size):
    return np.stack([gradcam.upsampled(image[0, :, :, channel], size)
                     for channel in range(3)], axis=-1)[np.newaxis]


def measure(params, content_image, style_image, longest, precision):
    size = style_preflight.content_size(content_image, longest)
    started = time.perf_counter()
    session, problem = problem_at(params, content_image, style_image, size, precision)
    for _, _, losses in style_transfer.stylize(session, problem, 1000, "adam", 1000):
        target = losses["total"]
    adam = time.perf_counter() - started
    session.close()
    print(f"{size[0]}x{size[1]} {precision}: Adam 1000 iterations {adam:.1f} s, "
          f"loss {target:.5g}", flush=True)

    def report(name, seconds, detail):
        print(f"  {name}: {seconds:.1f} s = 1/{adam / seconds:.1f} of Adam's time ({detail})",
              flush=True)

    started = time.perf_counter()
    session, problem = problem_at(params, content_image, style_image, size, precision)
    iterations, _, loss = ours(session, problem, 2000, target)
    report("--optimizer lbfgs", time.perf_counter() - started,
           f"{iterations} iterations, loss {loss:.5g}")
    session.close()
    for restart_every in (2000, 10):
        started = time.perf_counter()
        session, problem = problem_at(params, content_image, style_image, size, precision)
        evaluations = scipy_lbfgs(session, problem, target, restart_every)
        how = "one run" if restart_every == 2000 else f"restarted every {restart_every}"
        report(f"scipy L-BFGS-B, {how}", time.perf_counter() - started,
               f"{evaluations} evaluations")
        session.close()
    for scale, coarse_iterations in COARSE_TO_FINE:
        started = time.perf_counter()
        coarse = style_preflight.content_size(content_image, round(longest * scale))
        session, problem = problem_at(params, content_image, style_image, coarse, precision)
        _, image, _ = ours(session, problem, coarse_iterations)
        session.close()
        coarse_seconds = time.perf_counter() - started
        session, problem = problem_at(params, content_image, style_image, size, precision,
                                      stretched(image, size))
        iterations, _, loss = ours(session, problem, 2000, target)
        session.close()
        seconds = time.perf_counter() - started
        report(f"coarse to fine, {scale} then 1", seconds,
               f"{coarse[0]}x{coarse[1]}: {coarse_iterations} iterations {coarse_seconds:.1f} s;"
               f" full size: {iterations} iterations {seconds - coarse_seconds:.1f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--content", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--runs", nargs="+", default=["478:fp32", "256:fp32", "128:fp32",
                                                      "478:bf16", "256:bf16", "128:bf16"],
                        help="SIZE:PRECISION pairs, in order")
    args = parser.parse_args(argv)
    tf_setup.configure_devices(cpu_only=True)
    params = random_vgg19()
    content, style = image_io.open_rgb(args.content), image_io.open_rgb(args.style)
    for run in args.runs:
        longest, precision = run.split(":")
        measure(params, content, style, int(longest), precision)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
