"""emotion_test.py's figures, which the book does not draw.

For one face: the 48x48 input the network saw, where on it the network found the emotion it
reports (Grad-CAM on the restored graph, from the same run as the probabilities: add_grad_cam
and probabilities_and_cam), and the seven probabilities as bars (save_face_figure). For a photo
of several faces: the photo with each face boxed and labelled (save_boxed_photo).
"""

import numpy as np

from book_support import gradcam, image_io, plumbing


def last_feature_maps(y_conv):
    """The last 4-D maps before the dense layers: the input of the Reshape that flattens them
    (h_pool2, 12x12x64, in emotion_cnn.py's graph and in the book's)."""
    waiting, seen = [y_conv.op], set()
    while waiting:
        op = waiting.pop(0)
        if op.type == "Reshape" and op.inputs[0].shape.ndims == 4:
            return op.inputs[0]
        seen.add(op.name)
        waiting += [tensor.op for tensor in op.inputs if tensor.op.name not in seen]
    raise plumbing.UserError("this model has no 4-D feature maps to look inside")


def add_grad_cam(y_conv):
    """Grad-CAM of the top emotion on the last feature maps, for the restored graph."""
    import tensorflow.compat.v1 as tf

    logits = y_conv.op.inputs[0] if y_conv.op.type == "Softmax" else y_conv
    with y_conv.graph.as_default():
        chosen = tf.argmax(logits, 1, output_type=tf.int32)
        return gradcam.grad_cam(last_feature_maps(y_conv), logits, chosen)


def probabilities_and_cam(session, x, y_conv, heatmap, image):
    """The probabilities and where the net looked for the top one, from one run."""
    scores, cam = session.run([y_conv, heatmap], feed_dict={x: image})
    return scores[0], cam[0]


def save_face_figure(face, fractions, names, title, path, cam, looked_for):
    """The network's input (1, h, w, 1), where it looked for `looked_for`, and the bars of
    `fractions` under the emotion `names` (the top one in orange), side by side."""
    plt = plumbing.pyplot()
    labels = [names[i] for i in range(len(fractions))]
    figure, (face_axes, cam_axes, bar_axes) = plt.subplots(
        1, 3, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1, 1.25, 1.6]})
    pixels = face.reshape(face.shape[1], face.shape[2])
    face_axes.imshow(pixels, cmap="gray", vmin=0, vmax=1)
    face_axes.set_title(f"network input ({pixels.shape[1]}x{pixels.shape[0]})")
    face_axes.axis("off")
    gradcam.draw_cam(cam_axes, (pixels * 255).astype(np.uint8), cam,
                     f"where it looked for {looked_for}")
    bars = bar_axes.barh(labels[::-1], [f * 100 for f in fractions][::-1], color="tab:blue")
    bars[len(labels) - 1 - int(np.argmax(fractions))].set_color("tab:orange")
    bar_axes.set(xlim=(0, 100), xlabel="%", title=title)
    figure.tight_layout()
    plumbing.save_figure(figure, path)


def save_boxed_photo(photo, squares, labels, path):
    """The photo with a box and a label on each face."""
    from matplotlib.patches import Rectangle
    plt = plumbing.pyplot()
    rgb = np.asarray(image_io.open_rgb(photo))
    height, width = rgb.shape[:2]
    inches = min(12, max(width, height) / 100) / max(width, height)  # about the photo's pixels
    figure, axes = plt.subplots(figsize=(width * inches + 0.5, height * inches + 0.5))
    axes.imshow(rgb)
    for (left, top, size, angle), label in zip(squares, labels):
        # turned as the face was read (the y axis points down: the angle turns it clockwise)
        axes.add_patch(Rectangle((left, top), size, size, angle=angle, rotation_point="center",
                                 fill=False, color="tab:orange", linewidth=2))
        axes.text(left, max(top - 4, 0), label, color="white", fontsize=11, va="bottom",
                  bbox={"facecolor": "tab:orange", "edgecolor": "none", "pad": 2})
    axes.axis("off")
    figure.tight_layout()
    plumbing.save_figure(figure, path)
