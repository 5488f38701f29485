"""style_transfer.py's iteration against a PyTorch implementation of the same loss.

1. Seconds per Adam iteration at 478x478 on a full-size VGG-19 (random weights: the real file
   cannot be had offline; speed does not depend on the values) for our graph in fp32 and in
   bf16 (the session's mixed-precision rewrite), and for PyTorch fp32 on the same weights, the
   same images and the same loss, in one run. Goal: 3x faster than PyTorch fp32.
   Beside them, the ceiling: the convolutions' GFLOP per iteration (forward, and backward to
   the image) at the machine's float32 and bfloat16 matmul peak measured in the same run.
2. Time to reach the loss that 1000 Adam iterations reach, Adam against L-BFGS, at a size that
   runs in a few minutes. Goal: L-BFGS in a quarter of Adam's time.

    pip install -r bench/requirements.txt      # torch, bench only
    python bench/style_transfer_vs_torch.py --content ../shared/data/images/cat.jpg \\
        --style ../shared/data/images/mosaic.jpg
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from book_support import image_io  # noqa: E402
import style_transfer  # noqa: E402
from book_support import style_preflight  # noqa: E402
from book_support import tf_setup  # noqa: E402
from book_support import vgg_files  # noqa: E402
from machine_peak import matmul_peak_gflops  # noqa: E402

WIDTHS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


def random_vgg19(seed=0):
    rng = np.random.default_rng(seed)
    params, previous = {}, 3
    for name in vgg_files.CONV_LAYERS:
        out = WIDTHS[int(name[4])]
        kernel = rng.standard_normal((3, 3, previous, out)) * np.sqrt(2 / (9 * previous))
        bias = rng.standard_normal(out) * 0.1  # VGG's own biases are not zero either
        params[name] = (kernel.astype(np.float32), bias.astype(np.float32))
        previous = out
    return params


def convolution_gflop(size, content_layer="conv5_4"):
    """Forward convolutions up to the content layer plus their input gradients (all 16 convs
    at the defaults): 2 * 9 * in * out FLOP per pixel, twice."""
    flop, previous, side = 0, 3, size
    for name in vgg_files.CONV_LAYERS:
        block = int(name[4])
        if name.endswith("_1") and block > 1:
            side = -(-side // 2)  # SAME average pooling rounds up
        flop += 2 * 9 * previous * WIDTHS[block] * side * side
        previous = WIDTHS[block]
        if name == content_layer:
            break
    return 2 * flop / 1e9


def settings():
    return style_preflight.settings_from(style_transfer.build_parser().parse_args(["--style", "x"]))


def tensorflow_problem(params, content, style, precision, start=None):
    """A session ready to optimise: targets set, the image `start` or the book's noisy one."""
    problem = style_transfer.build_problem(params, content.shape, settings(), 1)
    session = tf_setup.new_session(problem.graph, precision=precision)
    session.run(problem.initializer)
    if start is None:
        start = style_transfer.initial_image("noise", content, [style], 0, None)
    style_transfer.set_targets(session, problem, content, [style], start)
    return session, problem


def seconds_per_iteration(step, iterations):
    step()  # warm-up: graph optimisation, allocation
    started = time.perf_counter()
    for _ in range(iterations):
        step()
    return (time.perf_counter() - started) / iterations


def torch_step(params, content, style):
    """The same model and loss in PyTorch (NCHW), one Adam step per call."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
    weights = {name: (torch.from_numpy(k.transpose(3, 2, 0, 1).copy()), torch.from_numpy(b))
               for name, (k, b) in params.items()}

    def features(x):
        out = {}
        for name in vgg_files.CONV_LAYERS:
            kernel, bias = weights[name]
            x = F.relu(F.conv2d(x, kernel, bias, padding=1))
            out[name] = x
            if name in ("conv1_2", "conv2_2", "conv3_4", "conv4_4"):
                x = F.avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False)
        return out

    def gram(f):
        n = f.shape[1]
        flat = f.reshape(n, -1)
        return flat @ flat.T

    to_nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa
    with torch.no_grad():
        content_target = features(to_nchw(content))["conv5_4"]
        style_features = features(to_nchw(style))
        grams = {layer: gram(style_features[layer]) for layer, _ in style_transfer.STYLE_LAYERS}
    image = to_nchw(style_transfer.initial_image("noise", content, [style], 0, None))
    image.requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=1.5)

    def step():
        optimizer.zero_grad()
        f = features(image)
        size = content_target.numel()
        loss = ((f["conv5_4"] - content_target) ** 2).sum() / (2 * size)
        for layer, weight in style_transfer.STYLE_LAYERS:
            n, m = f[layer].shape[1], f[layer].shape[2] * f[layer].shape[3]
            loss = loss + 100 * weight * ((gram(f[layer]) - grams[layer]) ** 2).sum() / (
                4 * n ** 2 * m ** 2)
        loss.backward()
        optimizer.step()
    return step


def time_to_loss(params, content, style, adam_iterations):
    """(Adam seconds for `adam_iterations`, its loss, L-BFGS seconds to reach that loss)."""
    session, problem = tensorflow_problem(params, content, style, "fp32")
    started = time.perf_counter()
    for _, _, losses in style_transfer.stylize(session, problem, adam_iterations, "adam",
                                               adam_iterations):
        target = losses["total"]
    adam_seconds = time.perf_counter() - started
    session.close()
    session, problem = tensorflow_problem(params, content, style, "fp32")
    started, lbfgs_seconds = time.perf_counter(), None
    for iteration, _, losses in style_transfer.stylize(session, problem, adam_iterations,
                                                       "lbfgs", 10):
        if losses["total"] <= target:
            lbfgs_seconds = time.perf_counter() - started
            break
    session.close()
    return adam_seconds, target, lbfgs_seconds, iteration


def load(path, size):
    image = image_io.open_rgb(path)
    return style_transfer.preprocess(image, (size, size))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--content", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--size", type=int, default=478)
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations each")
    parser.add_argument("--ttl-size", type=int, default=128, help="size for time-to-loss")
    parser.add_argument("--ttl-iterations", type=int, default=1000)
    args = parser.parse_args(argv)
    tf_setup.configure_devices(cpu_only=True)
    params = random_vgg19()
    content, style = load(args.content, args.size), load(args.style, args.size)
    results = {}
    for precision in ("fp32", "bf16"):
        session, problem = tensorflow_problem(params, content, style, precision)
        results[precision] = seconds_per_iteration(lambda: session.run(problem.adam),
                                                   args.iterations)
        session.close()
    results["torch fp32"] = seconds_per_iteration(torch_step(params, content, style),
                                                  args.iterations)
    for name, seconds in results.items():
        print(f"{name:>10}: {seconds:.2f} s per iteration at {args.size}x{args.size}")
    print(f"torch fp32 / ours fp32: {results['torch fp32'] / results['fp32']:.2f}x")
    print(f"torch fp32 / ours bf16: {results['torch fp32'] / results['bf16']:.2f}x")
    gflop = convolution_gflop(args.size)
    for precision, dtype in (("fp32", "float32"), ("bf16", "bfloat16")):
        peak = matmul_peak_gflops(dtype)
        floor = gflop / peak
        print(f"{precision}: convolutions {gflop:.0f} GFLOP per iteration at "
              f"{gflop / results[precision]:.0f} GFLOP/s; matmul peak {peak:.0f} GFLOP/s, so at "
              f"least {floor:.2f} s per iteration, at most "
              f"{results['torch fp32'] / floor:.2f}x PyTorch fp32")
    small = load(args.content, args.ttl_size), load(args.style, args.ttl_size)
    adam, target, lbfgs, iterations = time_to_loss(params, *small, args.ttl_iterations)
    print(f"time to the loss of {args.ttl_iterations} Adam iterations ({target:.4g}) at "
          f"{args.ttl_size}x{args.ttl_size}: Adam {adam:.1f} s, L-BFGS "
          + (f"{lbfgs:.1f} s ({iterations} iterations), {lbfgs / adam:.2f} of Adam's time"
             if lbfgs else "did not get there"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
