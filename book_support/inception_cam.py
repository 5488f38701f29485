"""Grad-CAM on the 2015 Inception-v3 graph (classify_image.py --cam): where in the picture the
network found the class, computed in the same run as the prediction.

Holds add_grad_cam (the heatmap's ops on the imported graph, on the last 8x8 mixed layer),
prepare (those ops and the class --cam-class names, if any) and save_cam (the heatmap over the
whole picture, as book_support/gradcam.py draws it).
"""

import numpy as np

from book_support import gradcam
from book_support import image_io
from book_support import plumbing

LOGITS = "softmax/logits:0"
SOFTMAX_WIDTH = 1008  # 1000 classes, and 8 ids that name none


def add_grad_cam(graph):
    """Grad-CAM ops on the imported graph: (heatmap, chosen class). Its gradient runs from the
    logits back to mixed_10 only, through pool_3 and the last layer; the batch norms of 2015
    lie before it and take no part."""
    import tensorflow.compat.v1 as tf

    with graph.as_default():
        try:
            logits = graph.get_tensor_by_name(LOGITS)
            maps = graph.get_tensor_by_name("pool_3:0").op.inputs[0]  # mixed_10/join, 8x8x2048
        except (KeyError, IndexError):  # IndexError: a pool_3 made of no input
            maps = logits = None
        if maps is None or maps.shape.rank != 4 or tf.gradients(logits, maps)[0] is None:
            raise plumbing.UserError(f"--cam needs {LOGITS} computed from pool_3's 8x8 maps, "
                                     f"and this graph has not")
        chosen = tf.placeholder_with_default(tf.argmax(logits, 1, output_type=tf.int32),
                                             [None], name="cam_class")
        return gradcam.grad_cam(maps, logits, chosen), chosen


def prepare(graph, node_lookup, cam_class_name):
    """(heatmap, chosen class, the class --cam-class names or None), as
    classify_image.run_inference_on_image takes it."""
    names = [node_lookup.id_to_string(i) for i in range(SOFTMAX_WIDTH)]
    cam_class = None if cam_class_name is None else gradcam.class_index(names, cam_class_name)
    return (*add_grad_cam(graph), cam_class)


def save_cam(target, path, cam, predictions, node_lookup, cam_class):
    """The heatmap over the whole picture: the graph resizes all of it to 299x299, uncropped.
    It shows `cam_class`, or the top class when that is None."""
    shown = cam_class if cam_class is not None else int(np.argmax(predictions))
    rgb = image_io.open_rgb(path)
    rgb.thumbnail((800, 800))
    name = node_lookup.id_to_string(shown).split(",")[0]
    gradcam.save_cam_figure(np.asarray(rgb), cam, f"{name} {predictions[shown]:.1%}", target)
    print(f"saved where the network looked for {name!r} to {target}")
