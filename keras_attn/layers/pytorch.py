"""What makes a Keras layer compute what its PyTorch (timm) twin computes.

Published weights are timm checkpoints; they give timm's logits only where every convolution
pads, strides and rounds its widths as PyTorch and timm do. Everything here serves that.
"""

from keras import ops

# PyTorch's BatchNorm2d defaults: eps 1e-5 and a running-average momentum of 0.1, which
# Keras expresses as the weight of the old value (0.9).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


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

    Examples:
        >>> make_divisible(256 / 16), make_divisible(20, 8), make_divisible(13, 8, round_limit=0.0)
        (16, 24, 16)
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def reduced_channels(channels, rd_ratio, rd_channels=None, rd_divisor=1):
    """The bottleneck width of an attention module, as timm's SE, CBAM and GC modules compute
    it: `rd_channels` where given, else `channels * rd_ratio` rounded to a multiple of
    `rd_divisor` (without timm's 0.9 round limit).

    Examples:
        >>> reduced_channels(256, 1 / 16), reduced_channels(100, 1 / 8, rd_divisor=8)
        (16, 16)
    """
    if rd_channels is not None:
        return rd_channels
    return make_divisible(channels * rd_ratio, rd_divisor, round_limit=0.0)

def torch_padding(kernel_size, strides=1, dilation_rate=1):
    """The symmetric padding PyTorch (timm's `get_padding`) uses for a convolution.

    TensorFlow's `"same"` pads strided convolutions asymmetrically (more at the end); a
    PyTorch network pads both sides equally. An explicit pad of this size followed by a
    `"valid"` convolution computes what PyTorch computes.

    Examples:
        >>> torch_padding(7, 2), torch_padding(3, 2, dilation_rate=2)
        (3, 2)
    """
    return ((strides - 1) + dilation_rate * (kernel_size - 1)) // 2


def torch_conv_output_size(size, kernel_size, strides=1, dilation_rate=1, padding=0):
    """Output length of a PyTorch convolution or pooling (floor mode); `None` stays `None`.

    Examples:
        >>> torch_conv_output_size(224, 7, 2, padding=3), torch_conv_output_size(None, 3)
        (112, None)
    """
    if size is None:
        return None
    return (size + 2 * padding - dilation_rate * (kernel_size - 1) - 1) // strides + 1


def every_nth_pixel(inputs, step):
    """`inputs[:, ::step, ::step, :]` (or, for a `(height, width)` step, each its own), as a 1x1
    max pooling, which every backend runs as one pass (a strided slice is a gather on some)."""
    return ops.max_pool(inputs, pool_size=1, strides=step, padding="valid",
                        data_format="channels_last")


def pad_spatial(inputs, padding):
    """Zero-pads height and width by `padding` on both sides (no-op for 0)."""
    if padding == 0:
        return inputs
    return ops.pad(inputs, [[0, 0], [padding, padding], [padding, padding], [0, 0]])


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

    Args:
        kernel_size: the (square) kernel's size.
        strides: the stride, as PyTorch's `stride`.
        dilation_rate: the dilation, as PyTorch's `dilation`.

    Examples:
        >>> import keras
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
        """`conv` applied to `inputs` as PyTorch's convolution of this geometry."""
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
