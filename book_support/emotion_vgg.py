"""`emotion_cnn.py --model vgg`: a deeper network for the same faces, with batch norm.

The book's network (in emotion_cnn.py) reaches about 51% on FER2013's PublicTest; this one is
the VGG pattern the best single FER2013 networks use (README: how it scores). It takes the
faces emotion_cnn.py feeds, `keep_prob` for its dropout and `training`, a boolean tensor that
switches batch norm to the batch's statistics, and returns the logits; emotion_cnn.py puts the
book's output and losses on them, so `input:0` and `output:0` are the same tensors for both.
"""

from book_support import tf_setup

with tf_setup.tensorflow_logging_quieted():
    import tensorflow.compat.v1 as tf

NUM_LABELS = 7  # the seven emotions
REGULARIZATION = 5e-4  # multiplies the sum of tf.nn.l2_loss over the "losses" collection
VGG_CHANNELS = (32, 64, 128, 256)  # per stage; 48 -> 24 -> 12 -> 6 -> 3 pixels
BATCH_NORM_DECAY = 0.99


def batch_norm(x, training):
    """Batch normalisation over the batch and both image axes: batch statistics when `training`
    is fed True (and moving averages updated with the training step), the averages otherwise."""
    channels = x.get_shape().as_list()[-1]
    gamma = tf.get_variable("gamma", initializer=tf.ones([channels]))
    beta = tf.get_variable("beta", initializer=tf.zeros([channels]))
    mean = tf.get_variable("moving_mean", initializer=tf.zeros([channels]), trainable=False)
    variance = tf.get_variable("moving_variance", initializer=tf.ones([channels]),
                               trainable=False)
    y, batch_mean, batch_variance = tf.cond(
        training,
        lambda: tf.nn.fused_batch_norm(x, gamma, beta, epsilon=1e-3, is_training=True),
        lambda: tf.nn.fused_batch_norm(x, gamma, beta, mean, variance, epsilon=1e-3,
                                       is_training=False))
    for average, value in ((mean, batch_mean), (variance, batch_variance)):
        update = tf.assign_sub(average, (1 - BATCH_NORM_DECAY) * (average - value))
        tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, update)
    return y


def conv_bn_relu(x, channels, training, name):
    with tf.variable_scope(name):
        W = tf.get_variable("W", [3, 3, x.get_shape().as_list()[-1], channels],
                            initializer=tf.initializers.he_normal())
        tf.add_to_collection("losses", tf.nn.l2_loss(W))
        conv = tf.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding="SAME")
        return tf.nn.relu(batch_norm(conv, training))


def dense(x, units, name):
    with tf.variable_scope(name):
        W = tf.get_variable("W", [x.get_shape().as_list()[-1], units],
                            initializer=tf.initializers.he_normal())
        b = tf.get_variable("b", initializer=tf.zeros([units]))
        tf.add_to_collection("losses", tf.nn.l2_loss(W))
        return tf.matmul(x, W) + b


def max_pool_2x2(x):  # as the book's network pools
    return tf.nn.max_pool(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")


def vgg_cnn(faces, keep_prob, training):
    """`--model vgg`: the VGG pattern (Simonyan & Zisserman 2015, arXiv:1409.1556) as applied to
    FER2013 by Khaireddin & Chen 2021 (arXiv:2105.03588): stages of 3x3 convolutions with
    batch norm and ReLU, each halving the image by max-pooling, then a dropout-regularised
    classifier. Scaled down to train in an hour on two CPU cores: channels 32-64-128-256 (theirs
    64-512), one convolution in the first stage and two in the others, one hidden layer of 256
    (theirs two of 4096): 1.75 M parameters.

        48x48x1 -> conv 32 -> pool -> conv 64 x2 -> pool -> conv 128 x2 -> pool
                -> conv 256 x2 -> pool -> 3x3x256 -> fc 256 -> dropout -> fc 7
    """
    x = faces
    with tf.variable_scope("vgg"):
        for stage, channels in enumerate(VGG_CHANNELS, start=1):
            for layer in "ab" if stage > 1 else "a":
                x = conv_bn_relu(x, channels, training, f"conv{stage}{layer}")
            x = max_pool_2x2(x)
        x = tf.reshape(x, [-1, 3 * 3 * VGG_CHANNELS[-1]])
        hidden = tf.nn.relu(dense(x, 256, "fc1"))
        return dense(tf.nn.dropout(hidden, rate=1 - keep_prob), NUM_LABELS, "fc2")
