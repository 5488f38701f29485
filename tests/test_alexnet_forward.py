"""alexnet_forward.py: the weights loader, class names, preprocessing and the forward pass."""

import pickle
import re

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from book_support import alexnet_files
import alexnet_forward
from book_support import gradcam
from book_support import tf_setup
from conftest import PROJECT, run_script
from book_support.plumbing import UserError
from tests.standins import (alexnet_weights, caffe_classes_text, npy_header_2016,
                            write_py2_alexnet_npy)

NAMES = [f"class {i}, with a comma" for i in range(999)] + ["jack-o'-lantern"]


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("alexnet")
    weights = alexnet_weights()
    write_py2_alexnet_npy(folder / "bvlc_alexnet.npy", weights)
    (folder / "caffe_classes.py").write_text(caffe_classes_text(NAMES))
    return folder, weights


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def test_the_python2_file_loads_with_every_layer(standin):
    folder, weights = standin
    loaded = alexnet_files.load_weights(folder / "bvlc_alexnet.npy")
    assert list(loaded) == list(alexnet_forward.LAYERS)
    for layer, (kernel, bias) in weights.items():
        np.testing.assert_array_equal(loaded[layer][0], kernel)
        np.testing.assert_array_equal(loaded[layer][1], bias)


def test_a_python3_np_save_dict_loads_too(tmp_path):
    weights = alexnet_weights(seed=2)
    np.save(tmp_path / "w.npy", {k: list(v) for k, v in weights.items()}, allow_pickle=True)
    loaded = alexnet_files.load_weights(tmp_path / "w.npy")
    np.testing.assert_array_equal(loaded["fc8"][0], weights["fc8"][0])


def test_a_missing_layer_is_named(tmp_path):
    weights = alexnet_weights()
    del weights["fc7"]
    write_py2_alexnet_npy(tmp_path / "w.npy", weights)
    with pytest.raises(UserError, match="has no layer fc7"):
        alexnet_files.load_weights(tmp_path / "w.npy")


def test_a_wrong_shape_is_named(tmp_path):
    weights = alexnet_weights()
    weights["conv4"] = (np.zeros((3, 3, 6, 6), np.float32), weights["conv4"][1])  # no groups
    write_py2_alexnet_npy(tmp_path / "w.npy", weights)
    with pytest.raises(UserError, match=r"layer conv4 has weights \(3, 3, 6, 6\).*\(3, 3, 3, 6\)"):
        alexnet_files.load_weights(tmp_path / "w.npy")


@pytest.mark.parametrize("content, message", [
    ("plain array", "not a dictionary of layers"),
    ("truncated", "is not AlexNet weights"),
    ("not npy", "is not AlexNet weights"),
])
def test_files_that_are_not_the_weights(tmp_path, content, message):
    path = tmp_path / "w.npy"
    if content == "plain array":
        np.save(path, np.zeros((3, 3), np.float32))
    elif content == "truncated":
        write_py2_alexnet_npy(path, alexnet_weights())
        path.write_bytes(path.read_bytes()[:5000])
    else:
        path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(UserError, match=message):
        alexnet_files.load_weights(path)


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_weights_file_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(np.array({"conv1": RunsCode(str(marker))}, dtype=object), protocol=2)
    (tmp_path / "evil.npy").write_bytes(npy_header_2016() + payload)
    with pytest.raises(UserError, match=r"refusing _?io\.open"):
        alexnet_files.load_weights(tmp_path / "evil.npy")
    assert not marker.exists()


def test_caffe_classes_is_read_without_running_it(standin):
    folder, _ = standin
    names = alexnet_files.read_class_names(folder / "caffe_classes.py")
    assert names == NAMES and len(names) == 1000


def test_a_plain_text_file_of_names(tmp_path):
    (tmp_path / "names.txt").write_text("tench, Tinca tinca\n\ngoldfish\n")
    assert alexnet_files.read_class_names(tmp_path / "names.txt") == ["tench, Tinca tinca",
                                                                         "goldfish"]


@pytest.mark.parametrize("source", [
    "__import__('os').system('touch {marker}')\nclass_names = ['a']",
    "class_names = __import__('os').system('touch {marker}')",
    "class_names = [open('{marker}', 'w').name]",
    "class_names = '''a\\nb'''.split(__import__('os').system('touch {marker}'))",
])
def test_a_classes_file_with_code_is_rejected_not_run(tmp_path, source):
    marker = tmp_path / "code-ran"
    (tmp_path / "caffe_classes.py").write_text(source.format(marker=marker))
    try:
        names = alexnet_files.read_class_names(tmp_path / "caffe_classes.py")
    except UserError as error:
        assert "read, never run" in str(error)
    else:
        assert names == ["a"]  # the plain assignment after the code is all that is read
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# An independent NumPy AlexNet
# --------------------------------------------------------------------------------------------

def np_conv(x, kernel, bias, stride, padding, group=1):
    """x (H, W, C); TensorFlow's SAME rule puts the odd padding pixel at the bottom/right."""
    k = kernel.shape[0]
    if padding == "SAME":
        out = -(-x.shape[0] // stride)
        total = max((out - 1) * stride + k - x.shape[0], 0)
        x = np.pad(x, ((total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0)))
    windows = sliding_window_view(x, (k, k), axis=(0, 1))[::stride, ::stride]  # i j c h w
    outputs = []
    for part, weights in zip(np.split(windows, group, axis=2), np.split(kernel, group, axis=3)):
        outputs.append(np.einsum("ijchw,hwcd->ijd", part, weights, optimize=True))
    return np.concatenate(outputs, axis=2) + bias


def np_lrn(x, radius=2, alpha=2e-05, beta=0.75, bias=1.0):
    squared = np.pad(x ** 2, ((0, 0), (0, 0), (radius, radius)))
    window = sum(squared[:, :, i:i + x.shape[2]] for i in range(2 * radius + 1))
    return x / (bias + alpha * window) ** beta


def np_max_pool(x):
    return sliding_window_view(x, (3, 3), axis=(0, 1))[::2, ::2].max(axis=(-2, -1))


def numpy_alexnet(image, weights, layers=None):
    """Logits, probabilities and map sizes; `layers`, a dict, also receives conv5 and the
    activations after it."""
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    w = {k: (v[0].astype(np.float64), v[1].astype(np.float64)) for k, v in weights.items()}
    x = relu(np_conv(image.astype(np.float64), *w["conv1"], 4, "VALID"))
    shapes = [x.shape[0]]
    x = np_max_pool(np_lrn(x))
    shapes.append(x.shape[0])
    x = np_max_pool(np_lrn(relu(np_conv(x, *w["conv2"], 1, "SAME", 2))))
    shapes.append(x.shape[0])
    x = relu(np_conv(x, *w["conv3"], 1, "SAME"))
    x = relu(np_conv(x, *w["conv4"], 1, "SAME", 2))
    conv5 = relu(np_conv(x, *w["conv5"], 1, "SAME", 2))
    x = np_max_pool(conv5)
    shapes.append(x.shape[0])
    fc6 = relu(x.reshape(-1) @ w["fc6"][0] + w["fc6"][1])
    fc7 = relu(fc6 @ w["fc7"][0] + w["fc7"][1])
    logits = fc7 @ w["fc8"][0] + w["fc8"][1]
    scores = np.exp(logits - logits.max())
    if layers is not None:
        layers.update(conv5=conv5, pool5=x, fc6=fc6, fc7=fc7, w=w)
    return logits, scores / scores.sum(), shapes


def numpy_grad_cam(image, weights, chosen=None):
    """Grad-CAM on conv5 by hand: the chosen logit's gradient, back through fc8, fc7, fc6 and
    the 3x3/2 max pool, averaged over conv5's 13x13 positions, weighs conv5's maps; ReLU; /max.
    Each pooled gradient lands on one position of its window, and a spatial mean only needs
    their sum per channel, so which position (a tie) does not matter."""
    layers = {}
    logits, _, _ = numpy_alexnet(image, weights, layers)
    chosen = int(np.argmax(logits)) if chosen is None else chosen
    w = layers["w"]
    d_fc7 = w["fc8"][0][:, chosen] * (layers["fc7"] > 0)
    d_fc6 = (w["fc7"][0] @ d_fc7) * (layers["fc6"] > 0)
    d_pool5 = (w["fc6"][0] @ d_fc6).reshape(layers["pool5"].shape)
    conv5 = layers["conv5"]
    alpha = d_pool5.sum(axis=(0, 1)) / (conv5.shape[0] * conv5.shape[1])
    cam = np.maximum(conv5 @ alpha, 0)
    return cam / cam.max() if cam.max() > 0 else cam, chosen


def test_grad_cam_matches_numpy(standin):
    _, weights = standin
    rng = np.random.default_rng(6)
    images = (rng.random((2, 227, 227, 3)) * 255 - 120).astype(np.float32)
    net = alexnet_forward.build_classifier(weights, with_cam=True)
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        alexnet_forward.load_params(session, net.params, weights)
        top, cams = session.run([net.chosen, net.cam], {net.x: images})
        other, other_cams = session.run([net.chosen, net.cam],
                                        {net.x: images, net.chosen: [3, 3]})
    for image, cam, chosen, named_cam in zip(images, cams, top, other_cams):
        expected, expected_class = numpy_grad_cam(image, weights)
        assert chosen == expected_class and cam.shape == (13, 13)
        assert expected.max() == 1.0 and (expected > 0).sum() > 5  # a real, spread-out map
        np.testing.assert_allclose(cam, expected, atol=1e-4)
        np.testing.assert_allclose(named_cam, numpy_grad_cam(image, weights, 3)[0], atol=1e-4)


def tensorflow_alexnet(weights, images):
    net = alexnet_forward.build_classifier(weights)
    logits = net.graph.get_tensor_by_name("xw_plus_b:0")
    with tf_setup.new_session(net.graph) as session:
        session.run(net.initializer)
        alexnet_forward.load_params(session, net.params, weights)
        return session.run([logits, net.prob], {net.x: images}), net.graph


def test_forward_pass_matches_numpy_on_real_size_input(standin):
    _, weights = standin
    rng = np.random.default_rng(5)
    images = (rng.random((2, 227, 227, 3)) * 255 - 120).astype(np.float32)
    (logits, probabilities), _ = tensorflow_alexnet(weights, images)
    for image, tf_logits, tf_probabilities in zip(images, logits, probabilities):
        np_logits, np_probabilities, _ = numpy_alexnet(image, weights)
        assert np.std(np_logits) > 0.1  # the weights make the classes differ
        np.testing.assert_allclose(tf_logits, np_logits, rtol=1e-4, atol=1e-4)
        assert np.max(np.abs(tf_probabilities - np_probabilities)) < 1e-4


def test_full_width_shapes_are_55_27_13_6():
    weights = alexnet_weights(widths=(96, 256, 384, 384, 256, 4096, 4096), scale=0.01)
    image = np.random.default_rng(0).random((1, 227, 227, 3)).astype(np.float32) * 100
    (_, probabilities), graph = tensorflow_alexnet(weights, image)
    sizes = [graph.get_tensor_by_name(name).shape.as_list()[1:] for name in
             ("Relu:0", "MaxPool:0", "MaxPool_1:0", "MaxPool_2:0")]
    assert sizes == [[55, 55, 96], [27, 27, 96], [13, 13, 256], [6, 6, 256]]
    assert probabilities.shape == (1, 1000) and abs(probabilities.sum() - 1) < 1e-4


# --------------------------------------------------------------------------------------------
# Preprocessing and the script
# --------------------------------------------------------------------------------------------

def test_preprocessing_is_bgr_minus_the_imagenet_mean(tmp_path):
    Image.new("RGB", (300, 227), (255, 0, 0)).save(tmp_path / "red.png")
    array = alexnet_forward.preprocess(tmp_path / "red.png")
    assert array.shape == (227, 227, 3) and array.dtype == np.float32
    np.testing.assert_allclose(array[100, 100], [0 - 104.00698793, 0 - 116.66876762,
                                                 255 - 122.67891434], atol=1e-3)


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK"])
def test_any_mode_and_size_becomes_227_by_227(tmp_path, mode):
    image = Image.new("RGB", (500, 331), (10, 200, 30)).convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    image.save(path)
    assert alexnet_forward.preprocess(path).shape == (227, 227, 3)


def test_a_227_image_is_used_as_it_is(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (227, 227, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "exact.png")
    array = alexnet_forward.preprocess(tmp_path / "exact.png")
    np.testing.assert_allclose(array + alexnet_forward.IMAGENET_MEAN_BGR, pixels[:, :, ::-1])


BLOCK = re.compile(r"^Image (\d+) \((.+)\)\n((?:.+ [0-9.e-]+\n)+)", re.MULTILINE)


def test_the_script_prints_the_books_blocks(standin, tmp_path):
    folder, _ = standin
    for name, colour in (("a.png", (250, 10, 10)), ("b.jpg", (10, 10, 250))):
        Image.new("RGB", (240, 260), colour).save(tmp_path / name)
    result = run_script(PROJECT / "alexnet_forward.py", tmp_path / "a.png", tmp_path / "b.jpg",
                        "--weights", folder / "bvlc_alexnet.npy", "--classes",
                        folder / "caffe_classes.py", "--top", "3")
    assert result.returncode == 0, result.stderr
    blocks = BLOCK.findall(result.stdout)
    assert [b[0] for b in blocks] == ["0", "1"]
    assert all(len(b[2].splitlines()) == 3 for b in blocks)
    assert all(line.rsplit(" ", 1)[0] in NAMES for b in blocks for line in b[2].splitlines())
    # Scores as the book printed them: NumPy's float32 text (0.0649517, not 0.064952).
    scores = [line.rsplit(" ", 1)[1] for b in blocks for line in b[2].splitlines()]
    assert all(score == str(np.float32(score)) for score in scores), scores
    assert re.search(r"^\d+\.\d{3} s$", result.stdout, re.MULTILINE)


def test_class_count_must_match_fc8(standin, tmp_path, capsys):
    folder, _ = standin
    (tmp_path / "few.txt").write_text("a\nb\n")
    Image.new("RGB", (227, 227)).save(tmp_path / "x.png")
    assert alexnet_forward.main([str(tmp_path / "x.png"), "--weights",
                                 str(folder / "bvlc_alexnet.npy"), "--classes",
                                 str(tmp_path / "few.txt")]) == 1
    assert "2 class names for 1000 outputs" in capsys.readouterr().err


def test_with_no_images_the_books_samples_are_taken_from_data_alexnet(standin, tmp_path,
                                                                     monkeypatch, capsys):
    folder, _ = standin
    monkeypatch.chdir(tmp_path)
    args = ["--weights", str(folder / "bvlc_alexnet.npy"), "--classes",
            str(folder / "caffe_classes.py")]
    assert alexnet_forward.main(args) == 1
    err = capsys.readouterr().err
    assert "laska.png and poodle.png are neither here nor in data/alexnet" in err
    assert "guerzhoy/tf_alexnet" in err and err.count("\n") == 1
    (tmp_path / "data" / "alexnet").mkdir(parents=True)
    for name in ("laska.png", "poodle.png"):
        Image.new("RGBA", (227, 227), (90, 60, 30, 255)).save(tmp_path / "data/alexnet" / name)
    assert alexnet_forward.main(args) == 0
    out = capsys.readouterr().out
    assert "Image 0 (data/alexnet/laska.png)" in out and "Image 1 (data/alexnet/poodle.png)" in out


def test_offline_one_line_names_the_samples_and_the_downloads_together(tmp_path, monkeypatch,
                                                                      capsys, closed_port_url):
    monkeypatch.chdir(tmp_path)
    for name in ("ALEXNET_WEIGHTS", "CAFFE_CLASSES"):
        remote = getattr(alexnet_files, name)
        monkeypatch.setattr(alexnet_files, name, remote.__class__(
            remote.name, (f"{closed_port_url}/{remote.name}",), remote.size, remote.md5,
            remote.sha256))
    assert alexnet_forward.main([]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "are neither here nor in data/alexnet" in err
    assert err.endswith("; put these 4 files in data/alexnet: laska.png, poodle.png (from "
                        f"{alexnet_files.ALEXNET_URL}), bvlc_alexnet.npy, caffe_classes.py "
                        f"(from {closed_port_url}/)\n")
    for name in ("laska.png", "poodle.png"):
        Image.new("RGB", (227, 227)).save(tmp_path / "data/alexnet" / name)
    assert alexnet_forward.main([]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not download 2 files" in err
    assert err.endswith("; put them in data/alexnet: bvlc_alexnet.npy, caffe_classes.py "
                        f"(from {closed_port_url}/)\n")


def test_cam_saves_one_titled_heatmap_per_image(standin, tmp_path):
    folder, _ = standin
    for name, size, mode in (("wide.png", (400, 150), "RGBA"), ("gray.jpg", (227, 227), "L")):
        Image.new("RGB", size, (120, 60, 200)).convert(mode).save(tmp_path / name)
    result = run_script(PROJECT / "alexnet_forward.py", tmp_path / "wide.png",
                        tmp_path / "gray.jpg", "--weights", folder / "bvlc_alexnet.npy",
                        "--classes", folder / "caffe_classes.py", "--cam", tmp_path / "cams")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "cams").iterdir()) == ["gray_jpg_cam.png",
                                                                     "wide_png_cam.png"]
    saved = re.findall(r"^saved where the network looked for '(.+)' to (.+)$", result.stdout,
                       re.MULTILINE)
    tops = [b[2].splitlines()[0].rsplit(" ", 1)[0] for b in BLOCK.findall(result.stdout)]
    assert [name for name, _ in saved] == [top[:40] for top in tops]
    with Image.open(tmp_path / "cams" / "wide_png_cam.png") as figure:
        assert figure.format == "PNG" and figure.size[0] > 300


@pytest.mark.parametrize("option, value, words", [
    ("--cam-class", "no such animal", "--cam-class 'no such animal' names no class"),
    ("--cam-class", "class", "is in 999 class names"),
    ("--cam", "a_file.txt/cams", "{tmp}/a_file.txt is a file, not a folder"),
])
def test_cam_mistakes_are_one_line(standin, tmp_path, capsys, option, value, words):
    folder, _ = standin
    Image.new("RGB", (227, 227)).save(tmp_path / "x.png")
    (tmp_path / "a_file.txt").write_text("not a folder")
    args = [str(tmp_path / "x.png"), "--weights", str(folder / "bvlc_alexnet.npy"),
            "--classes", str(folder / "caffe_classes.py"), "--cam", str(tmp_path / "cams")]
    args += [option, str(tmp_path / value) if option == "--cam" else value]
    code = alexnet_forward.main(args)
    err = capsys.readouterr().err
    assert code == (2 if option == "--cam" else 1), err  # a folder under a file: a mistake
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and words.format(tmp=tmp_path) in errors[0], err


def test_cam_class_takes_a_synonym():
    names = ["tabby, tabby cat", "tiger cat", "jack-o'-lantern"]
    assert gradcam.class_index(names, "Tabby Cat") == 0
    assert gradcam.class_index(names, "tiger") == 1
    assert gradcam.class_index(names, "lantern") == 2
