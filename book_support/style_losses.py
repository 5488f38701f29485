"""What style_transfer.py's loss has beyond the book's code, as graph ops.

Holds total_variation_loss (--tv-weight: the book's training text names this smoothing term,
its code leaves it out, as the default weight 0 does) and transposed_times_itself, the product
inside the book's Gram matrix, F^T F, computed without copying the transpose and with a
gradient of one matmul.
"""


def total_variation_loss(image):
    """Sum of squared differences between neighbouring pixels: smooths speckle."""
    import tensorflow.compat.v1 as tf

    return (tf.reduce_sum(tf.square(image[:, 1:, :, :] - image[:, :-1, :, :]))
            + tf.reduce_sum(tf.square(image[:, :, 1:, :] - image[:, :, :-1, :])))


def transposed_times_itself(Ft):
    """The book's tf.matmul(tf.transpose(Ft), Ft), without copying the transpose and with a
    gradient of one big matmul where TensorFlow's generic one takes two and their sum."""
    import tensorflow.compat.v1 as tf

    @tf.custom_gradient
    def product(Ft):
        def gradient(dG):
            return tf.matmul(Ft, dG + tf.transpose(dG))
        return tf.matmul(Ft, Ft, transpose_a=True), gradient
    return product(Ft)
