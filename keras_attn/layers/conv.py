"""The networks' convolutions: `Conv2D`, which computes small 1x1 convolutions as matrix
products where that is faster, and `conv2d`, the one factory every block builds with."""

import math

import keras
from keras import ops

from keras_attn.layers import common, grouped_conv, kernels

# Largest output map (height x width) on which `Conv2D` multiplies matrices instead of
# convolving. TensorFlow's oneDNN 1x1 convolution rearranges its whole kernel into oneDNN's
# blocked layout on every call; on the last stage of a ResNet-50 (7x7 maps, kernels of 2 to
# 8 MB) that is a large part of the call, which a matrix product avoids. Batch 8, with the
# BatchNorm and ReLU after it (folded into the convolution by Grappler, apart after the
# product), 2-core AVX-512 CPU: 2048 -> 1024 channels 6.99 -> 5.72 ms, 1024 -> 512 2.23 ->
# 2.05 ms at 7x7; 4.18 -> 2.48 ms at 4x4. From 9x9 up the convolution was as fast or faster
# (512 -> 1024 channels at 14x14: 6.04 against 6.89 ms).
MATMUL_MAX_PIXELS = 49


def pointwise_matmul(inputs, kernel, groups=1):
    """A 1x1 convolution with stride 1 of channels-last `inputs`, as a matrix product.

    `kernel` is Keras' `(1, 1, in_per_group, filters)`; with `groups > 1`, group g's outputs
    are channels `[g * filters / groups, (g + 1) * filters / groups)`, as in `Conv2D`. The
    height and width of `inputs` must be known.
    """
    height, width = inputs.shape[1:3]
    in_per_group, filters = kernel.shape[2], kernel.shape[3]
    if groups == 1:
        outputs = ops.matmul(ops.reshape(inputs, (-1, in_per_group)),
                             ops.reshape(kernel, (in_per_group, filters)))
    else:
        grouped_inputs = ops.reshape(inputs, (-1, groups, in_per_group))
        grouped_kernel = ops.reshape(kernel, (in_per_group, groups, filters // groups))
        outputs = ops.einsum("bgi,igo->bgo", grouped_inputs, grouped_kernel)
    return ops.reshape(outputs, (-1, height, width, filters))


@keras.saving.register_keras_serializable(package="keras_attn")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D`, with 1x1 convolutions on small maps computed as matrix products
    where the backend's convolution is slower.

    Under `"auto"` (no `grouped_conv_implementation` block, or an `"auto"` one), where
    TensorFlow runs its oneDNN kernels on an AVX-512 CPU in float32, a 1x1 convolution whose
    output map has at most `MATMUL_MAX_PIXELS` pixels (7x7: the last stage of a ResNet at
    224x224) is a matrix product, strided ones after reading every `stride`-th pixel.
    TensorFlow's convolution rearranges the whole kernel on every call, which dominates on
    such maps: ResNeXt-50's inference ran 3% to 7% faster, its training step 6% (batch 8,
    2-core AVX-512 CPU). Every other convolution, and every one inside a
    `grouped_conv_implementation("native")` or `("split")` block (what the exports trace), is
    `Conv2D`'s own.

    The layer is named `Conv2D` on purpose: Keras 3 `.weights.h5` and `.keras` files key each
    layer by its class name, so weight files written from networks built with
    `keras.layers.Conv2D` load into networks built with this layer, and the other way around.
    Its variables, arguments and config are `Conv2D`'s. The 1x1 convolutions it speeds up are
    the bottleneck blocks' projections (He et al., 2016, "Deep Residual Learning for Image
    Recognition").

    Args:
        filters: output channels.
        kernel_size: as `Conv2D`.
        *args: `Conv2D`'s further positional arguments, in its order (`strides`, ...).
        **kwargs: any other `Conv2D` argument.

    Example:

    >>> conv = Conv2D(1024, 1, use_bias=False)
    >>> tuple(conv(keras.random.normal((8, 7, 7, 2048))).shape)
    (8, 7, 7, 1024)
    """

    def convolution_op(self, inputs, kernel):
        if not self._multiplies_matrices(inputs):
            return super().convolution_op(inputs, kernel)
        if self.strides != (1, 1):
            inputs = common.every_nth_pixel(inputs, self.strides)
        return pointwise_matmul(inputs, kernel, self.groups)

    def _multiplies_matrices(self, inputs):
        height, width = inputs.shape[1:3]
        if (self.kernel_size != (1, 1) or self.groups != 1 or height is None or width is None
                or self.data_format != "channels_last"):
            return False
        # A 1x1 convolution's output is every stride-th pixel, whatever its padding.
        pixels = math.ceil(height / self.strides[0]) * math.ceil(width / self.strides[1])
        return (pixels <= MATMUL_MAX_PIXELS
                and grouped_conv.implementation_override() in (None, "auto")
                and kernels.tensorflow_onednn_on_avx512()
                and keras.backend.standardize_dtype(inputs.dtype) == "float32")


def conv2d(filters, kernel_size, groups=1, **kwargs):
    """`GroupedConv2D` when `groups > 1`, else `Conv2D` (one choice for every block)."""
    if groups > 1:
        return grouped_conv.GroupedConv2D(filters, kernel_size, groups=groups, **kwargs)
    return Conv2D(filters, kernel_size, **kwargs)
