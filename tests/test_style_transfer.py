"""style_transfer.py on tiny VGG-19 .mat files in both MatConvNet layouts."""

import re

import numpy as np
import pytest
from PIL import Image

from book_support import image_io
from book_support import lbfgs
from book_support import plumbing
from book_support import style_losses
from book_support import style_preflight
import style_transfer
from book_support import tf_setup
from book_support import vgg_files
from conftest import PROJECT, ctrl_c_when, has_bfloat16, posix_only, run_script, start_script
from book_support.plumbing import UserError
from tests.standins import vgg19_weights, write_vgg_mat

COST = re.compile(r"^iteration: (\d+) cost:  ([0-9.e+-]+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def mats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vgg")
    weights = vgg19_weights()
    return {"weights": weights,
            "new": write_vgg_mat(folder / "new.mat", weights, "new"),
            "old": write_vgg_mat(folder / "old.mat", weights, "old"),
            "folder": folder}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A non-square 'photo' with a colour gradient and a striped 'style'."""
    folder = tmp_path_factory.mktemp("pictures")
    y, x = np.mgrid[0:60, 0:90]
    photo = np.stack([x * 2.5, y * 3.5, np.full_like(x, 120)], -1).astype(np.uint8)
    Image.fromarray(photo).save(folder / "content.png")
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::8] = (250, 40, 40)
    stripes[::8, :] = (30, 30, 220)
    Image.fromarray(stripes).save(folder / "style.jpg")
    Image.fromarray(np.full((50, 50, 3), (20, 200, 90), np.uint8)).save(folder / "style2.png")
    return folder


# --------------------------------------------------------------------------------------------
# Loading the .mat file
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["new", "old"])
def test_both_layouts_give_the_weights_written(mats, layout):
    loaded = vgg_files.load_vgg(mats[layout])
    assert len(loaded) == 19
    for name, (kernel, bias) in mats["weights"].items():
        np.testing.assert_array_equal(loaded[name][0], kernel)
        np.testing.assert_array_equal(loaded[name][1], bias)
        assert loaded[name][1].ndim == 1


def test_a_misnamed_layer_is_rejected_by_name(mats, tmp_path):
    path = write_vgg_mat(tmp_path / "bad.mat", mats["weights"], rename=(5, "conv2_x"))
    with pytest.raises(UserError, match="layer 5 is 'conv2_x', where VGG-19 has conv2_1"):
        vgg_files.load_vgg(path)


def test_a_missing_layer_is_rejected(mats, tmp_path):
    path = write_vgg_mat(tmp_path / "short.mat", mats["weights"], drop=12)
    with pytest.raises(UserError, match="has 42 layers; VGG-19 has 43"):
        vgg_files.load_vgg(path)


def test_a_file_that_is_not_a_mat_file(tmp_path):
    (tmp_path / "x.mat").write_text("<html>not found</html>")
    with pytest.raises(UserError, match="is not a MatConvNet .mat file"):
        vgg_files.load_vgg(tmp_path / "x.mat")
    with pytest.raises(UserError, match="does not exist"):
        vgg_files.load_vgg(tmp_path / "missing.mat")


def test_list_layers_prints_the_books_lines(mats):
    result = run_script(PROJECT / "style_transfer.py", "--weights", mats["new"], "--list-layers")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "(3, 3, 3, 4) conv1_1" and lines[-1] == "(1, 1, 8, 5) fc8"
    assert len(lines) == 19


# --------------------------------------------------------------------------------------------
# The losses against NumPy
# --------------------------------------------------------------------------------------------

def evaluate(build):
    import tensorflow.compat.v1 as tf
    graph = tf.Graph()
    with graph.as_default():
        tensor = build()
    with tf_setup.new_session(graph) as session:
        return session.run(tensor)


def numpy_conv_relu(x, kernel, bias):
    """SAME 3x3 convolution, bias and ReLU of one (h, w, c) image, as plain sums."""
    h, w, _ = x.shape
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = sum(padded[i:i + h, j:j + w] @ kernel[i, j] for i in range(3) for j in range(3))
    return np.maximum(out + bias, 0)


def numpy_avg_pool(x):
    """2x2, stride 2, SAME: an odd edge's window averages only the pixels it has."""
    h, w, c = x.shape
    padded = np.full((h + h % 2, w + w % 2, c), np.nan)
    padded[:h, :w] = x
    windows = padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2, c)
    return np.nanmean(windows, axis=(1, 3))


def test_the_vgg19_forward_pass_matches_numpy(mats):
    """Every conv layer of the book's model (average pooling) on weights read back from the
    tiny .mat, against a NumPy reference, on an odd-sized image that pooling leaves ragged."""
    params = vgg_files.load_vgg(mats["new"])
    image = np.random.default_rng(2).uniform(-120, 130, (1, 21, 18, 3)).astype(np.float32)
    model = evaluate(lambda: style_transfer.vgg19(image, params))
    x = image[0].astype(np.float64)
    for name in vgg_files.VGG19_LAYERS:
        if name.startswith("conv"):
            kernel, bias = mats["weights"][name]
            x = numpy_conv_relu(x, kernel.astype(np.float64), bias)
            np.testing.assert_allclose(model[name][0], x, rtol=1e-4, atol=1e-3 * np.abs(x).max(),
                                       err_msg=name)
        elif name.startswith("pool"):
            x = numpy_avg_pool(x)
            if name == "pool5":
                break
            np.testing.assert_allclose(model["avg" + name][0], x, rtol=1e-4,
                                       atol=1e-3 * np.abs(x).max(), err_msg=name)


def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 5, 7, 3)).astype(np.float32)
    p = rng.standard_normal((1, 5, 7, 3)).astype(np.float32)
    F = x.reshape(35, 3).astype(np.float64)
    A = p.reshape(35, 3).T.astype(np.float64) @ p.reshape(35, 3)
    gram = evaluate(lambda: style_transfer.gram_matrix(x, 3, 35))
    np.testing.assert_allclose(gram, F.T @ F, rtol=1e-5)
    content = evaluate(lambda: style_transfer.content_loss(p, x))
    np.testing.assert_allclose(content, np.sum((x - p) ** 2) / (2 * 105), rtol=1e-5)
    style = evaluate(lambda: style_transfer.style_loss(A.astype(np.float32), x))
    np.testing.assert_allclose(style, np.sum((F.T @ F - A) ** 2) / (4 * 9 * 35 ** 2), rtol=1e-4)
    tv = evaluate(lambda: style_losses.total_variation_loss(x))
    expected = np.sum(np.diff(x, axis=1) ** 2) + np.sum(np.diff(x, axis=2) ** 2)
    np.testing.assert_allclose(tv, expected, rtol=1e-5)


def test_the_gram_gradient_matches_numpy():
    """d/dF of sum(W * F^T F) is F (W + W^T); W not symmetric, to catch a gradient that
    assumed it was."""
    import tensorflow.compat.v1 as tf
    rng = np.random.default_rng(1)
    F = rng.standard_normal((35, 3)).astype(np.float32)
    W = rng.standard_normal((3, 3)).astype(np.float32)

    def gradient():
        Ft = tf.constant(F)
        return tf.gradients(tf.reduce_sum(W * style_losses.transposed_times_itself(Ft)), Ft)[0]
    np.testing.assert_allclose(evaluate(gradient), F @ (W + W.T), rtol=1e-5, atol=1e-5)


def test_the_tv_term_is_left_out_of_the_graph_at_weight_0():
    shape = (1, 16, 16, 3)

    def slices(tv_weight):
        settings = style_preflight.settings_from(style_transfer.build_parser().parse_args(
            ["--style", "s.jpg", "--tv-weight", str(tv_weight)]))
        problem = style_transfer.build_problem(vgg19_weights(), shape, settings, 1)
        return [op for op in problem.graph.get_operations() if op.type == "StridedSlice"]
    assert slices(0) == [] and len(slices(0.5)) == 4


# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------

def stylize(mats, pictures, out, *extra, style=("style.jpg",)):
    return run_script(PROJECT / "style_transfer.py", "--content", pictures / "content.png",
                      "--style", *(pictures / s for s in style), "--weights", mats["new"],
                      "--size", "48", "--output-dir", out, "--seed", "1", *extra)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_few_iterations_lower_the_loss_and_write_pngs(mats, pictures, tmp_path, optimizer):
    before = {p.name: p.read_bytes() for p in pictures.iterdir()}
    result = stylize(mats, pictures, tmp_path / "out", "--optimizer", optimizer,
                     "--iterations", "20", "--print-every", "10", "--save-every", "10")
    assert result.returncode == 0, result.stderr
    costs = [float(cost) for _, cost in COST.findall(result.stdout)]
    assert len(costs) == 3 and costs[-1] < 0.5 * costs[0], costs
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["0.png", "10.png", "20.png", "final.png", "loss_curve.png",
                     "progress_grid.png"]
    with Image.open(tmp_path / "out" / "final.png") as image:
        assert image.size == (48, 32)  # the longest side is --size; the aspect ratio stays
    assert {p.name: p.read_bytes() for p in pictures.iterdir()} == before


def test_preserve_colors_keeps_the_contents_chroma(mats, pictures, tmp_path):
    result = stylize(mats, pictures, tmp_path / "out", "--iterations", "10",
                     "--preserve-colors", "--save-every", "10")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out" / "final.png") as image:
        output = np.asarray(image.convert("YCbCr"), np.float64)
    content = image_io.open_rgb(pictures / "content.png").resize((48, 32),
                                                                 Image.Resampling.LANCZOS)
    expected = np.asarray(content.convert("YCbCr"), np.float64)
    assert np.abs(output[..., 1:] - expected[..., 1:]).mean() < 2.0
    assert np.abs(output[..., 0] - expected[..., 0]).mean() > 2.0  # the luminance did change


def test_earlier_outputs_and_inputs_are_never_replaced(mats, pictures, tmp_path):
    first = stylize(mats, pictures, tmp_path / "out", "--iterations", "2")
    assert first.returncode == 0, first.stderr
    again = stylize(mats, pictures, tmp_path / "out", "--iterations", "2")
    assert again.returncode == 2 and "already exists; add --overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    assert stylize(mats, pictures, tmp_path / "out", "--iterations", "2",
                   "--overwrite").returncode == 0
    onto_input = stylize(mats, pictures, tmp_path / "out2", "--iterations", "2",
                         "--output", pictures / "content.png", "--overwrite")
    assert onto_input.returncode == 2 and "outputs never replace inputs" in onto_input.stderr
    onto_weights = stylize(mats, pictures, tmp_path / "out4", "--iterations", "2",
                           "--output", mats["new"], "--overwrite")
    assert onto_weights.returncode == 2 and "outputs never replace inputs" in onto_weights.stderr
    onto_initial = stylize(mats, pictures, tmp_path / "out3", "--iterations", "2", "--initial",
                           pictures / "style2.png", "--output", pictures / "style2.png",
                           "--overwrite")
    assert onto_initial.returncode == 2 and "outputs never replace inputs" in onto_initial.stderr


def style_loss_of(mats, pictures, names, blend):
    """The style loss of the content image against `names` blended by `blend`."""
    params = vgg_files.load_vgg(mats["new"])
    content = style_transfer.preprocess(image_io.open_rgb(pictures / "content.png"), (24, 16))
    styles = [style_transfer.preprocess(image_io.open_rgb(pictures / n), (24, 16))
              for n in names]
    settings = style_transfer.build_parser().parse_args(
        ["--style", *names, "--style-blend-weights", *map(str, blend)])
    problem = style_transfer.build_problem(params, content.shape,
                                           style_preflight.settings_from(settings), len(names))
    with tf_setup.new_session(problem.graph) as session:
        session.run(problem.initializer)
        style_transfer.set_targets(session, problem, content, styles, content)
        return float(session.run(problem.losses["style"]))


def test_two_styles_blend_their_losses_by_the_weights(mats, pictures, tmp_path):
    first = style_loss_of(mats, pictures, ["style.jpg"], [1])
    second = style_loss_of(mats, pictures, ["style2.png"], [1])
    blended = style_loss_of(mats, pictures, ["style.jpg", "style2.png"], [7, 3])  # normalised
    assert first != pytest.approx(second, rel=0.05)  # so the check below can tell them apart
    assert blended == pytest.approx(0.7 * first + 0.3 * second, rel=1e-4)
    wrong = stylize(mats, pictures, tmp_path / "out2", "--iterations", "5",
                    "--style-blend-weights", "1", style=("style.jpg", "style2.png"))
    assert wrong.returncode == 2 and "one --style-blend-weights value per" in wrong.stderr


def test_bf16_precision_really_computes_in_bfloat16(mats, pictures, tmp_path):
    import tensorflow.compat.v1 as tf
    result = stylize(mats, pictures, tmp_path / "out", "--iterations", "10", "--precision",
                     "bf16", "--print-every", "10")
    assert result.returncode == 0, result.stderr
    costs = [float(cost) for _, cost in COST.findall(result.stdout)]
    assert costs[-1] < costs[0]
    if not has_bfloat16():
        pytest.skip("this machine has no bfloat16 hardware (no GPU, no AVX-512 BF16 or AMX), "
                    "so TensorFlow leaves the graph in float32 here")
    params = vgg_files.load_vgg(mats["new"])
    content = style_transfer.preprocess(image_io.open_rgb(pictures / "content.png"), (24, 16))
    settings = style_transfer.build_parser().parse_args(["--style", "x"])
    problem = style_transfer.build_problem(params, content.shape,
                                           style_preflight.settings_from(settings), 1)
    rewritten = {}
    for precision in ("fp32", "bf16"):
        metadata = tf.RunMetadata()
        with tf_setup.new_session(problem.graph, precision=precision) as session:
            session.run(problem.initializer)
            session.run(problem.adam, options=tf.RunOptions(output_partition_graphs=True),
                        run_metadata=metadata)
        rewritten[precision] = any(
            attr.type == tf.bfloat16.as_datatype_enum
            for graph in metadata.partition_graphs for node in graph.node
            for attr in node.attr.values())
    assert rewritten == {"fp32": False, "bf16": True}


@pytest.mark.parametrize("problem, message", [
    (("--content", "missing.jpg"), "does not exist"),
    (("--style", "notes.txt"), "is not an image"),
    (("--size", "200000"), "GiB"),
    (("--weights", "nothing.mat"), "does not exist"),
])
def test_clear_errors_before_any_long_work(mats, pictures, tmp_path, problem, message):
    (tmp_path / "notes.txt").write_text("text")
    args = {"--content": str(pictures / "content.png"), "--style": str(pictures / "style.jpg"),
            "--weights": str(mats["new"]), "--size": "48"}
    args[problem[0]] = problem[1] if problem[0] == "--size" else str(tmp_path / problem[1])
    flat = [item for pair in args.items() for item in pair]
    result = run_script(PROJECT / "style_transfer.py", *flat, "--output-dir", tmp_path / "o",
                        "--iterations", "2")
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def small_problem(mats, pictures):
    params = vgg_files.load_vgg(mats["new"])
    content = style_transfer.preprocess(image_io.open_rgb(pictures / "content.png"), (24, 16))
    style = style_transfer.preprocess(image_io.open_rgb(pictures / "style.jpg"), (24, 16))
    settings = style_transfer.build_parser().parse_args(["--style", "x"])
    problem = style_transfer.build_problem(params, content.shape,
                                           style_preflight.settings_from(settings), 1)
    return problem, content, style


def test_the_optimiser_is_a_generator_of_progress(mats, pictures):
    problem, content, style = small_problem(mats, pictures)
    with tf_setup.new_session(problem.graph) as session:
        session.run(problem.initializer)
        style_transfer.set_targets(session, problem, content, [style], content)
        steps = list(style_transfer.stylize(session, problem, 6, "adam", 3))
    assert [iteration for iteration, _, _ in steps] == list(range(7))
    assert [image is not None for _, image, _ in steps] == [True, False, False, True, False,
                                                            False, True]
    assert set(steps[0][2]) == {"total", "content", "style", "tv"}


def test_an_initial_image_path_is_used(mats, pictures, tmp_path):
    result = stylize(mats, pictures, tmp_path / "out", "--iterations", "2", "--initial",
                     pictures / "style2.png", "--learning-rate", "0.001")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out" / "0.png") as image:
        start = np.asarray(image, np.float64).mean(axis=(0, 1))
    assert np.allclose(start, (20, 200, 90), atol=3)  # the plain green image, barely moved


@posix_only
@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_ctrl_c_keeps_the_image_where_the_optimiser_stands(mats, pictures, tmp_path,
                                                           optimizer):
    # Nothing is printed or saved between iteration 0 and the (far) end, so the Ctrl-C lands
    # inside the optimiser's run.
    out = tmp_path / "out"
    process = start_script(PROJECT / "style_transfer.py", "--content", pictures / "content.png",
                           "--style", pictures / "style.jpg", "--weights", mats["new"],
                           "--size", "48", "--output-dir", out, "--seed", "1", "--optimizer",
                           optimizer, "--iterations", "100000", "--print-every", "100000",
                           "--save-every", "100000")
    stdout, stderr = ctrl_c_when(process, r"^iteration: 0 cost", then_wait=2.0)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    stopped_at = int(re.search(r"^interrupted at iteration (\d+): saved that image as (.+), ",
                               stdout, re.MULTILINE).group(1))
    assert 0 < stopped_at < 100000
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "final.png", "loss_curve.png",
                                                     "progress_grid.png"]
    with Image.open(out / "0.png") as start, Image.open(out / "final.png") as final:
        moved = np.abs(np.asarray(final, np.float64) - np.asarray(start, np.float64)).mean()
    assert moved > 1.0  # the work done before Ctrl-C is in the final image


def test_each_adam_iterations_cost_is_that_of_its_image_after_the_step(mats, pictures):
    problem, content, style = small_problem(mats, pictures)
    with tf_setup.new_session(problem.graph) as session:
        session.run(problem.initializer)
        style_transfer.set_targets(session, problem, content, [style], content)
        steps = list(style_transfer.stylize(session, problem, 4, "adam", 2))
        shown = [(iteration, image, losses["total"]) for iteration, image, losses in steps
                 if image is not None]
        assert [iteration for iteration, _, _ in shown] == [0, 2, 4]
        for _, image, total in shown:
            tf_setup.load_variable(session, problem.image, image)
            assert session.run(problem.total) == pytest.approx(total, rel=1e-5)
    totals = [losses["total"] for _, _, losses in steps]
    assert [iteration for iteration, _, _ in steps] == list(range(5))
    assert all(later < earlier for earlier, later in zip(totals, totals[1:]))


class CountingSession:
    """A session that counts the runs fetching the loss's gradient."""

    def __init__(self, session, gradient):
        self.session, self.gradient, self.gradients = session, gradient, 0

    def run(self, fetches, *args, **kwargs):
        if isinstance(fetches, list) and any(f is self.gradient for f in fetches):
            self.gradients += 1
        return self.session.run(fetches, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.session, name)


def test_lbfgs_reports_each_iteration_and_never_raises_the_loss(mats, pictures):
    problem, content, style = small_problem(mats, pictures)
    with tf_setup.new_session(problem.graph) as session:
        session.run(problem.initializer)
        style_transfer.set_targets(session, problem, content, [style], content)
        counting = CountingSession(session, problem.gradient)
        steps = list(style_transfer.stylize(counting, problem, 30, "lbfgs", 10))
        # the start and 30 steps, and a few more where a step raised the loss and was halved
        assert 31 <= counting.gradients < 45
        shown = [(iteration, image, losses["total"]) for iteration, image, losses in steps
                 if image is not None]
        assert [iteration for iteration, _, _ in shown] == [0, 10, 20, 30]
        for _, image, total in shown:  # each iteration's loss is its own image's
            tf_setup.load_variable(session, problem.image, image)
            assert session.run(problem.total) == pytest.approx(total, rel=1e-5)
    assert [iteration for iteration, _, _ in steps] == list(range(31))
    totals = [losses["total"] for _, _, losses in steps]
    assert all(later <= earlier for earlier, later in zip(totals, totals[1:]))
    assert totals[-1] < 0.1 * totals[0]


def test_lbfgs_from_a_point_with_no_gradient_stays_there(mats, pictures):
    params = vgg_files.load_vgg(mats["new"])
    content = style_transfer.preprocess(image_io.open_rgb(pictures / "content.png"), (24, 16))
    settings = style_transfer.build_parser().parse_args(["--style", "x", "--style-weight", "0"])
    problem = style_transfer.build_problem(params, content.shape,
                                           style_preflight.settings_from(settings), 1)
    with tf_setup.new_session(problem.graph) as session:
        session.run(problem.initializer)
        style_transfer.set_targets(session, problem, content, [content], content)
        steps = list(style_transfer.stylize(session, problem, 3, "lbfgs", 1))
    assert [losses["total"] for _, _, losses in steps] == [0, 0, 0, 0]
    assert np.array_equal(steps[-1][1], content)


def dense_bfgs_inverse(pairs):
    """The textbook BFGS update of the inverse Hessian, as dense matrices, from
    gamma * I with gamma = s'y / y'y of the newest pair (Nocedal & Wright, 7.2)."""
    s, y = pairs[-1]
    inverse = np.eye(len(s)) * (s @ y) / (y @ y)
    for s, y in pairs:
        rho = 1 / (y @ s)
        left = np.eye(len(s)) - rho * np.outer(s, y)
        inverse = left @ inverse @ left.T + rho * np.outer(s, s)
    return inverse


def test_the_lbfgs_direction_is_the_dense_bfgs_one():
    rng = np.random.default_rng(0)
    root = rng.standard_normal((12, 12))
    hessian = root @ root.T + 12 * np.eye(12)  # a convex quadratic's
    pairs = [(s, hessian @ s) for s in rng.standard_normal((5, 12))]
    steps = [(s, y, 1 / (s @ y)) for s, y in pairs]
    gradient = rng.standard_normal(12)
    direction = lbfgs.search_direction(gradient, steps)
    assert np.allclose(direction, -dense_bfgs_inverse(pairs) @ gradient)
    newest_step, newest_change = pairs[-1]  # the secant condition: H y = s
    assert np.allclose(lbfgs.search_direction(newest_change, steps), -newest_step)
    assert np.array_equal(lbfgs.search_direction(gradient, []), -gradient)


def test_the_memory_check_comes_before_the_weights_are_read(mats, pictures, tmp_path,
                                                           monkeypatch, capsys):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 8000000 kB\nMemFree: 100 kB\nMemAvailable: 2000000 kB\n")
    assert plumbing.available_memory_bytes(meminfo) == 2000000 * 1024  # the cache counts
    monkeypatch.setattr(plumbing, "available_memory_bytes", lambda: 2000000 * 1024)
    monkeypatch.setattr(vgg_files, "load_vgg", lambda path: pytest.fail("read first"))
    assert style_transfer.main(["--content", str(pictures / "content.png"), "--style",
                                str(pictures / "style.jpg"), "--weights", str(mats["new"]),
                                "--size", "2000", "--output-dir", str(tmp_path / "o")]) == 1
    assert "GiB are free; choose a smaller --size" in capsys.readouterr().err


@pytest.mark.parametrize("given, expected", [
    ([], (1000, 100, 100)),  # the book's
    (["--optimizer", "lbfgs"], (100, 10, 10)),
    (["--optimizer", "lbfgs", "--iterations", "7", "--save-every", "50"], (7, 10, 50)),
])
def test_each_optimizer_has_its_own_iteration_defaults(given, expected):
    args = style_preflight.with_optimizer_defaults(
        style_transfer.build_parser().parse_args(given))
    assert (args.iterations, args.print_every, args.save_every) == expected
