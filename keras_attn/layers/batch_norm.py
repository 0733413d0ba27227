"""Batch normalization trained with TensorFlow's fused kernel."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_attn")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, trained with TensorFlow's fused kernel.

    Keras 3 normalizes with element-wise ops (`ops.moments`, `tf.nn.batch_normalization`),
    which TensorFlow runs as separate passes over every activation, forward and backward. In
    training on TensorFlow this layer computes the same function with one `FusedBatchNormV3`
    op and its fused gradient, as Keras 2 did (`docs/performance.md` has the measured gain).
    Everywhere else (inference, the other backends, masks, channels-first inputs, inputs other
    than float32, renormalization, synchronized statistics) it is `BatchNormalization`. For
    inference, `keras_attn.optimize_for_inference` folds it into the convolution before it.

    The weights, their names, the config and the update of the moving statistics are those of
    `BatchNormalization` (Ioffe & Szegedy, 2015, "Batch Normalization: Accelerating Deep
    Network Training by Reducing Internal Covariate Shift", https://arxiv.org/abs/1502.03167),
    so `get_weights` / `set_weights` move them either way.

    It takes `keras.layers.BatchNormalization`'s arguments, all of them by keyword.

    Examples:
        >>> bn = FusedBatchNormalization(epsilon=1e-5, momentum=0.9, name="bn1")
        >>> tuple(bn(keras.random.normal((8, 56, 56, 64)), training=True).shape)
        (8, 56, 56, 64)
    """

    def _fusable(self, inputs, training, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and bool(training)
            and self.trainable  # a frozen layer normalizes with its moving statistics
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (3, [3], -1, [-1])
            and inputs.dtype == "float32"
            and self.compute_dtype == "float32"
            and not self.renorm
            and not self.synchronized
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones((channels,), inputs.dtype)
        offset = self.beta if self.center else tf.zeros((channels,), inputs.dtype)
        empty = tf.zeros((0,), inputs.dtype)  # the op computes the batch statistics itself
        # The raw op: `tf.compat.v1.nn.fused_batch_norm` raises epsilon to at least 1.001e-5,
        # which would move timm's 1e-5 networks off their logits.
        outputs, mean, corrected_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=ops.convert_to_tensor(scale),
            offset=ops.convert_to_tensor(offset),
            mean=empty,
            variance=empty,
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
