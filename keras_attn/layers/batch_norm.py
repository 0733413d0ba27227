"""Batch normalization computed with TensorFlow's fused kernel."""

import math

import keras
from keras import ops

from keras_attn.layers import kernels


# The largest kernel, relative to the convolution's output (elements), into which inference
# folds a BatchNorm. Whole networks, batch 8, 2-core AVX-512 CPU, images/s at limits 0 (no
# fold), 0.25, 0.5 and 1: ResNeXt-50 30.1, 31.8, 31.8, 31.0; SKNet-50 24.9, 26.2, 26.5, 25.9.
# Between 0.5 and 1 sit ResNeXt-50's 14x14 1x1 convolutions that a ReLU follows: the fold
# gained nothing there and cost its pass over 0.5M-element kernels.
FOLD_MAX_KERNEL_TO_OUTPUT = 0.5


def _convolution_to_fold(inputs):
    """The channels-last `Conv2D` op whose output `inputs` is, in a traced TensorFlow graph,
    when folding a BatchNorm into its kernel saves more than it costs; else None.

    Rescaling the kernel is a pass over the kernel on every call; the fold saves work on every
    output element. So a kernel with more than `FOLD_MAX_KERNEL_TO_OUTPUT` times as many
    elements as the convolution's output is left alone. Eager tensors (which have no op) and
    Keras' symbolic tensors are never folded.
    """
    convolution = getattr(inputs, "op", None)  # an eager tensor's `op` raises AttributeError
    if (convolution is None or getattr(convolution, "type", None) != "Conv2D"
            or convolution.get_attr("data_format") != b"NHWC"):
        return None
    batch, *map_shape = inputs.shape
    if None in map_shape:
        return None
    kernel_elements = math.prod(convolution.inputs[1].shape)
    if kernel_elements > FOLD_MAX_KERNEL_TO_OUTPUT * (batch or 1) * math.prod(map_shape):
        return None
    return convolution


def _folded(convolution, scale, offset, mean, variance, epsilon):
    """The BatchNorm of `convolution`'s output, as a new convolution with the kernel rescaled
    per output channel and a `BiasAdd`: the same function to float rounding."""
    import tensorflow as tf

    multiplier = scale * tf.math.rsqrt(variance + epsilon)
    attributes = ("strides", "padding", "explicit_paddings", "dilations", "use_cudnn_on_gpu")
    outputs = tf.raw_ops.Conv2D(
        input=convolution.inputs[0],
        filter=convolution.inputs[1] * multiplier,
        data_format="NHWC",
        **{name: convolution.get_attr(name) for name in attributes},
    )
    return tf.nn.bias_add(outputs, offset - mean * multiplier)


def fused_inference():
    """Whether inference runs TensorFlow's fused BatchNorm: where oneDNN folds it into the
    convolution before it and runs the result fast (measured on AVX-512 CPUs, not on AVX2)."""
    return kernels.tensorflow_onednn_on_avx512()


@keras.saving.register_keras_serializable(package="keras_attn")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, computed with TensorFlow's fused kernel where it can be.

    Keras 3 normalizes with elementwise ops (`ops.moments`, `tf.nn.batch_normalization`),
    which TensorFlow runs as separate passes over every activation, forward and backward. In
    training this layer computes the same function with one `FusedBatchNormV3` op and its
    fused gradient, as Keras 2 did. In inference it does so too where TensorFlow runs oneDNN
    on an AVX-512 CPU: Grappler then folds the BatchNorm (and the ReLU after it) into the
    convolution before it, which saved 10% of SE-ResNet-50's inference time (313 instead of
    349 ms a batch of 8 on a 2-core AVX-512 CPU). Elsewhere inference keeps Keras' ops: on a
    2-core AVX2 CPU oneDNN ran the folded convolutions of batches of one 5-13x slower (a 3x3
    convolution on 56x56x64: 40 ms instead of 7 ms).

    In a traced graph (`predict`, `tf.function`), where its input comes straight from a
    channels-last `Conv2D` whose kernel has at most half as many elements as its output,
    inference goes one step further and folds the BatchNorm into that convolution's kernel and
    a `BiasAdd` (the first convolution is left unused, and Grappler prunes it). Grappler fuses
    `Conv2D`, `BiasAdd`, the residual `Add` and `Relu` into one oneDNN call, but not a
    BatchNorm followed by an `Add`; and oneDNN runs a bias faster than the BatchNorm's four
    post-ops on grouped convolutions. Inference on a batch of 8 ran 1% to 5% faster than with
    no fold (ResNeXt-50 4.0%, SE-ResNeXt-50 3.1%, SKNet-50 4.1%, ResNeSt-50 1.0%, SE-ResNet-50
    4.6%, one side-by-side run); ResNeXt-50's residual additions and their ReLUs took 0.9 and
    0.6 ms of a batch instead of 9.7 and 6.8.

    The weights, their names and the update of the moving statistics are those of
    `BatchNormalization` (Ioffe & Szegedy, 2015, "Batch Normalization: Accelerating Deep
    Network Training by Reducing Internal Covariate Shift"), so `get_weights` /
    `set_weights` move them either way (a Keras 3 `.weights.h5` or `.keras` file keys each
    layer by its class, so such a file loads into a model built with the same classes).
    Other backends, masks, channels-first inputs, non-float32 inputs, renormalization and
    synchronized statistics take `BatchNormalization`'s own path.

    Args:
        **kwargs: any `keras.layers.BatchNormalization` argument.

    Example:

    >>> bn = FusedBatchNormalization(epsilon=1e-5, momentum=0.9, name="bn1")
    >>> tuple(bn(keras.random.normal((8, 56, 56, 64)), training=True).shape)
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
            and not self.synchronized
            and (self._batch_statistics(training) or fused_inference())
        )

    def _batch_statistics(self, training):
        # As in BatchNormalization: a frozen layer normalizes with its moving statistics.
        return bool(training) and self.trainable

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        batch_statistics = self._batch_statistics(training)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones((channels,), inputs.dtype)
        offset = self.beta if self.center else tf.zeros((channels,), inputs.dtype)
        if batch_statistics:  # the op computes them and takes none
            mean = variance = tf.zeros((0,), inputs.dtype)
        else:
            mean, variance = self.moving_mean, self.moving_variance
            convolution = _convolution_to_fold(inputs)
            if convolution is not None:
                return _folded(convolution, scale, offset, mean, variance, self.epsilon)
        # The raw op: `tf.compat.v1.nn.fused_batch_norm` raises epsilon to at least 1.001e-5,
        # which would move timm's 1e-5 networks off their logits.
        outputs, mean, corrected_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=ops.convert_to_tensor(scale),
            offset=ops.convert_to_tensor(offset),
            mean=ops.convert_to_tensor(mean),
            variance=ops.convert_to_tensor(variance),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=batch_statistics,
        )
        if not batch_statistics:
            return outputs
        # The kernel returns the unbiased (Bessel-corrected) batch variance; Keras averages the
        # biased one into its moving variance.
        count = ops.cast(ops.prod(ops.shape(inputs)[:-1]), inputs.dtype)
        variance = corrected_variance * ops.maximum(count - 1.0, 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return outputs
