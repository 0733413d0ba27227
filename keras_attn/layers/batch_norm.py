"""Batch normalization trained with TensorFlow's fused kernel."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_attn")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, trained with TensorFlow's fused kernel where it can be.

    Keras 3 normalizes with elementwise ops (`ops.moments`, `tf.nn.batch_normalization`),
    which TensorFlow runs as separate passes over every activation, forward and backward. In
    training this layer computes the same function with one `FusedBatchNormV3` op and its
    fused gradient, as Keras 2 did. Inference keeps Keras' ops: Grappler would fold a fused
    BatchNorm into the convolution before it, and oneDNN's folded convolution ran batches of
    one 5-13x slower (a 3x3 convolution on 56x56x64: 40 ms instead of 7 ms on a 2-core CPU).

    The weights, their names and the update of the moving statistics are those of
    `BatchNormalization` (Ioffe & Szegedy, 2015, "Batch Normalization: Accelerating Deep
    Network Training by Reducing Internal Covariate Shift"), so checkpoints and `.keras` files
    are interchangeable. Other backends, masks, channels-first inputs, non-float32 inputs,
    renormalization and synchronized statistics take `BatchNormalization`'s own path.

    Args:
        **kwargs: any `keras.layers.BatchNormalization` argument.

    Example:

    >>> bn = FusedBatchNormalization(epsilon=1e-5, momentum=0.9, name="bn1")
    >>> bn(keras.random.normal((8, 56, 56, 64)), training=True).shape
    (8, 56, 56, 64)
    """

    def _fusable(self, inputs, training, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (3, [3], -1, [-1])
            and inputs.dtype == "float32"
            and self.compute_dtype == "float32"
            and not self.renorm
            and bool(training)
            and self.trainable
            and not self.synchronized
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones((channels,), inputs.dtype)
        offset = self.beta if self.center else tf.zeros((channels,), inputs.dtype)
        # The raw op: `tf.compat.v1.nn.fused_batch_norm` raises epsilon to at least 1.001e-5,
        # which would move timm's 1e-5 networks off their logits.
        outputs, mean, corrected_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=ops.convert_to_tensor(scale),
            offset=ops.convert_to_tensor(offset),
            mean=tf.zeros((0,), inputs.dtype),
            variance=tf.zeros((0,), inputs.dtype),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel returns the unbiased (Bessel-corrected) batch variance; Keras averages the
        # biased one into its moving variance.
        count = ops.cast(ops.prod(ops.shape(inputs)[:-1]), inputs.dtype)
        variance = corrected_variance * ops.maximum(count - 1.0, 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return outputs
