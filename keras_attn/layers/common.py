"""Helpers shared by the attention layers and the network builders.

Everything here exists to make a Keras network compute the same function as its timm
(PyTorch) twin, so that published checkpoints load and give the same logits.
"""

import math
import numbers

import keras
from keras import ops

from keras_attn.layers import kernels
from keras_attn.layers.batch_norm import FusedBatchNormalization

# PyTorch's BatchNorm2d defaults: eps 1e-5 and a running-average momentum of 0.1, which
# Keras expresses as the weight of the old value (0.9).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

_LOW_PRECISION = ("float16", "bfloat16")


def make_divisible(value, divisor=8, min_value=None, round_limit=0.9):
    """Rounds `value` to a multiple of `divisor`, exactly as timm's `make_divisible`.

    Args:
        value: the width to round.
        divisor: the multiple to round to.
        min_value: the smallest result; defaults to `divisor`.
        round_limit: when rounding loses more than `1 - round_limit` of `value`, one more
            `divisor` is added. `0.0` turns this off (timm's SE module does).

    Returns:
        An int.
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def torch_padding(kernel_size, strides=1, dilation_rate=1):
    """The symmetric padding PyTorch (timm's `get_padding`) uses for a convolution.

    TensorFlow's `"same"` pads strided convolutions asymmetrically (more at the end); a
    PyTorch network pads both sides equally. An explicit pad of this size followed by a
    `"valid"` convolution computes what PyTorch computes.
    """
    return ((strides - 1) + dilation_rate * (kernel_size - 1)) // 2


def torch_conv_output_size(size, kernel_size, strides=1, dilation_rate=1, padding=0):
    """Output length of a PyTorch convolution or pooling (floor mode); `None` stays `None`."""
    if size is None:
        return None
    return (size + 2 * padding - dilation_rate * (kernel_size - 1) - 1) // strides + 1


def every_nth_pixel(inputs, step):
    """`inputs[:, ::step, ::step, :]` (or, for a `(height, width)` step, with each its own), as
    a 1x1 max pooling: TensorFlow's CPU strided slice took 22 ms for SKNet-50's stage-2 input
    (batch 8), the pooling a fraction of it."""
    return ops.max_pool(inputs, pool_size=1, strides=step, padding="valid",
                        data_format="channels_last")


class TorchConvGeometry:
    """How to make a Keras `Conv2D` compute what a PyTorch `Conv2d` with symmetric padding does.

    Strided convolutions get an explicit symmetric pad and `"valid"` padding (TensorFlow's
    `"same"` pads more at the end). A convolution that is both strided and dilated (Selective
    Kernel's dilated branch in a stride-2 block), which TensorFlow cannot run, is rewritten
    exactly: when the dilation is a multiple of the stride it reads every `stride`-th pixel
    and convolves with `dilation / stride`; otherwise it convolves with stride 1 and keeps
    every `stride`-th output. When the padding is a multiple of the stride too, the small map
    is padded after reading every `stride`-th pixel instead of the full map before (the same
    pixels): SKNet-50's dilated branches then pad nothing, the convolution's `"same"` does.

    Example:

    >>> geometry = TorchConvGeometry(kernel_size=3, strides=2, dilation_rate=2)
    >>> conv = keras.layers.Conv2D(64, 3, use_bias=False, **geometry.conv_kwargs)
    >>> inputs = keras.random.normal((2, 15, 15, 32))
    >>> tuple(geometry.apply(conv, inputs).shape)  # PyTorch: (15 + 2 * 2 - 4 - 1) // 2 + 1
    (2, 8, 8, 64)
    """

    def __init__(self, kernel_size, strides=1, dilation_rate=1):
        self.kernel_size = kernel_size
        self.strides = strides
        self.dilation_rate = dilation_rate
        padding = torch_padding(kernel_size, strides, dilation_rate)
        # Applied in this order: input_padding, every input_step-th pixel, padding, the
        # convolution, every output_step-th pixel.
        self.input_padding = 0
        self.input_step = self.output_step = 1
        conv_strides, conv_dilation = strides, dilation_rate
        if strides > 1 and dilation_rate > 1:
            conv_strides = 1
            if dilation_rate % strides == 0:
                self.input_step, conv_dilation = strides, dilation_rate // strides
                if padding % strides == 0:
                    padding //= strides
                else:
                    self.input_padding, padding = padding, 0
            else:
                self.output_step = strides
        same = conv_strides == 1 and conv_dilation * (kernel_size - 1) == 2 * padding
        self.padding = 0 if same else padding
        self.conv_kwargs = {
            "strides": conv_strides,
            "dilation_rate": conv_dilation,
            "padding": "same" if same else "valid",
            "data_format": "channels_last",
        }

    def conv_input_shape(self, input_shape):
        """The shape the wrapped `Conv2D` sees for a given layer input shape."""
        batch, height, width, channels = input_shape

        def size(length):
            if length is None:
                return None
            return -(-(length + 2 * self.input_padding) // self.input_step) + 2 * self.padding

        return (batch, size(height), size(width), channels)

    def apply(self, conv, inputs):
        x = pad_spatial(inputs, self.input_padding)
        if self.input_step > 1:
            x = every_nth_pixel(x, self.input_step)
        x = conv(pad_spatial(x, self.padding))
        if self.output_step > 1:
            x = every_nth_pixel(x, self.output_step)
        return x

    def output_size(self, size):
        """Spatial output length for an input length (PyTorch's formula)."""
        return torch_conv_output_size(
            size,
            self.kernel_size,
            self.strides,
            self.dilation_rate,
            torch_padding(self.kernel_size, self.strides, self.dilation_rate),
        )


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
    radix convolution of Split-Attention.

    In traced inference where TensorFlow runs oneDNN on an AVX-512 CPU, the BatchNorm folds
    itself into the convolution (`FusedBatchNormalization`): on an SK branch of SKNet-50 at
    56x56 (batch 8, 3x3, 32 groups, 64 -> 128 channels) 3.13 ms unfolded, 2.65 ms folded.
    """
    return activation(bn(geometry.apply(conv, inputs), training=training))


def gate_dtype_policy(policy):
    """The dtype policy for the small layers that compute an attention gate.

    Under `mixed_float16` or `mixed_bfloat16` the gates (pooled statistics, their fully
    connected layers, sigmoid or softmax) run in float32: they are cheap, and a softmax over
    radix or a sigmoid near saturation is where half precision loses accuracy. Otherwise they
    follow the layer's own policy.
    """
    # A mixed policy keeps float32 variables and computes in half precision; a plain
    # "float16" or "bfloat16" policy asks for half precision throughout, and gets it.
    if policy.compute_dtype in _LOW_PRECISION and policy.variable_dtype == "float32":
        return keras.DTypePolicy("float32")
    return policy


def spatial_mean(inputs, dtype):
    """Global average pool over height and width, kept as (batch, 1, 1, channels).

    Where TensorFlow runs oneDNN and the map's size is known, an average pooling over the
    whole map: oneDNN's pooling read SE-ResNet-50's 56x56x256 maps 3.3x faster than the
    mean reduction (0.95 instead of 3.15 ms a batch of 8, 2-core AVX-512 CPU).
    """
    inputs = ops.cast(inputs, dtype)
    size = tuple(inputs.shape[1:3])
    if None not in size and kernels.tensorflow_onednn_enabled():
        return ops.average_pool(inputs, pool_size=size, strides=1, padding="valid",
                                data_format="channels_last")
    return ops.mean(inputs, axis=(1, 2), keepdims=True)


def softmax(logits, axis):
    """`ops.softmax(logits, axis)`, written out in element-wise ops and reductions.

    TensorFlow's softmax over an axis other than the last transposes there and back; on the
    branch logits of Selective Kernel and Split-Attention, (8, 1, 1, 2, 256), that took 150 us
    a call (oneDNN, 2-core AVX-512 CPU), the written-out form 36 us.
    """
    exponentials = ops.exp(ops.subtract(logits, ops.max(logits, axis=axis, keepdims=True)))
    return ops.divide(exponentials, ops.sum(exponentials, axis=axis, keepdims=True))


def weighted_sum(paths, weights):
    """`sum(paths[i] * weights[:, :, :, i, :])`: paths of shape (batch, height, width,
    channels) weighted per channel by `weights` of shape (batch, 1, 1, paths, channels)."""
    return sum(path * weights[:, :, :, i, :] for i, path in enumerate(paths))


def pad_spatial(inputs, padding):
    """Zero-pads height and width by `padding` on both sides (no-op for 0)."""
    if padding == 0:
        return inputs
    return ops.pad(inputs, [[0, 0], [padding, padding], [padding, padding], [0, 0]])


def is_integer(value):
    """Whether `value` is an integer, a Python or NumPy one; bools are not."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(name, value, minimum=1):
    """`value` as a Python int; raises a `ValueError` naming `name` unless it is an integer
    (NumPy's included, bools not) >= `minimum`."""
    if not is_integer(value) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received {name}={value!r}.")
    return int(value)


def check_positive_number(name, value):
    """`value` as a Python number (an int stays an int); raises a `ValueError` naming `name`
    unless it is a finite real number > 0 (NumPy's included, bools not)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not (value > 0 and math.isfinite(value))):
        raise ValueError(f"`{name}` must be a finite number > 0; received {name}={value!r}.")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def check_reduction(rd_ratio, rd_channels, rd_divisor):
    """Validates timm's attention-width arguments; returns them as Python numbers."""
    return (
        check_positive_number("rd_ratio", rd_ratio),
        None if rd_channels is None else check_positive_int("rd_channels", rd_channels),
        check_positive_int("rd_divisor", rd_divisor),
    )


def check_cardinality(cardinality, filters):
    """`cardinality` as a Python int; raises unless it is a positive integer that divides
    `filters`."""
    cardinality = check_positive_int("cardinality", cardinality)
    if filters % cardinality:
        raise ValueError(
            f"`cardinality` must divide `filters`; received cardinality={cardinality} "
            f"with filters={filters}."
        )
    return cardinality


def check_channels_last(layer_name, input_shape):
    """Raises unless the input is a rank-4 NHWC tensor with a known channel count."""
    if len(input_shape) != 4:
        raise ValueError(
            f"{layer_name} expects a rank-4 input (batch, height, width, channels); "
            f"received input_shape={tuple(input_shape)}."
        )
    if input_shape[-1] is None:
        raise ValueError(
            f"{layer_name} needs a known channel count (the last axis); "
            f"received input_shape={tuple(input_shape)}."
        )
    return int(input_shape[-1])


def finish_build(layer, channels):
    """What an attention layer's `build` ends with, once all its sublayers exist.

    - An input spec for `channels`, so that Keras names a wrong channel count on every path:
      the folded inference path calls the convolution op itself, past the convolution
      layer's own check.
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
