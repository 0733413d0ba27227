"""What the attention layers share: their pooling, softmax, branch sum and build steps."""

import keras
from keras import ops

from keras_attn.layers.batch_norm import FusedBatchNormalization
from keras_attn.layers.pytorch import BN_EPSILON, BN_MOMENTUM


def batch_norm(name=None, dtype=None, synchronized=False):
    """A `BatchNormalization` with PyTorch's epsilon and momentum, so timm statistics fit,
    trained with TensorFlow's fused kernel where it can be (`FusedBatchNormalization`)."""
    return FusedBatchNormalization(
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        synchronized=synchronized,
        name=name,
        dtype=dtype,
    )


def conv_bn_activation(conv, bn, activation, geometry, inputs, training=None):
    """`activation(bn(geometry.apply(conv, inputs)))`: a branch of Selective Kernel or the
    radix convolution of Split-Attention. `bn` is None where `optimize_for_inference` has
    folded it into the convolution's kernel and bias."""
    x = geometry.apply(conv, inputs)
    if bn is not None:
        x = bn(x, training=training)
    return activation(x)


def spatial_mean(inputs, dtype):
    """Global average pool over height and width, kept as (batch, 1, 1, channels).

    Where the map's size is known, an average pooling over the whole map, which backends run
    as one pass over the channels-last map (a mean reduction over two inner axes is slower on
    TensorFlow's CPU kernels: `docs/performance.md`); else the mean.
    """
    inputs = ops.cast(inputs, dtype)
    size = tuple(inputs.shape[1:3])
    if None not in size:
        return ops.average_pool(inputs, pool_size=size, strides=1, padding="valid",
                                data_format="channels_last")
    return ops.mean(inputs, axis=(1, 2), keepdims=True)


def softmax(logits, axis):
    """`ops.softmax(logits, axis)`, written out in element-wise ops and reductions.

    TensorFlow's softmax over an axis other than the last transposes there and back; the
    branch logits of Selective Kernel and Split-Attention, (batch, 1, 1, branches, channels),
    need it over the branches.
    """
    exponentials = ops.exp(ops.subtract(logits, ops.max(logits, axis=axis, keepdims=True)))
    return ops.divide(exponentials, ops.sum(exponentials, axis=axis, keepdims=True))


def weighted_sum(paths, weights):
    """`sum(paths[i] * weights[:, :, :, i, :])`: paths of shape (batch, height, width,
    channels) weighted per channel by `weights` of shape (batch, 1, 1, paths, channels)."""
    return sum(path * weights[:, :, :, i, :] for i, path in enumerate(paths))


def finish_build(layer, channels):
    """What an attention layer's `build` ends with, once all its sublayers exist.

    - An input spec for `channels`, so that Keras names a wrong channel count on every path.
    - `trainable=False` passed on to the sublayers: Keras' setter reaches only the sublayers
      that exist when it runs, so a layer made with `trainable=False` (as `load_model` makes
      a frozen one) would otherwise train its BatchNorms' statistics again.
    """
    layer.input_spec = keras.InputSpec(ndim=4, axes={-1: channels})
    if not layer.trainable:
        # Through the property itself: on TensorFlow, `layer.trainable = False` is skipped
        # when the attribute holds that value already (Keras' `self.x = self.x` shortcut).
        keras.layers.Layer.trainable.fset(layer, False)


def ensure_built(layer, inputs):
    """Builds `layer` for `inputs` unless it is built (for methods other than `call`)."""
    if not layer.built:
        layer.build(tuple(inputs.shape))
