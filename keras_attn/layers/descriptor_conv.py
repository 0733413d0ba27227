"""The 1x1 convolutions that attention gates apply to pooled (batch, 1, 1, channels) descriptors."""

import keras

from keras_attn.layers.conv import Conv2D


@keras.saving.register_keras_serializable(package="keras_attn")
class DescriptorConv2D(Conv2D):
    """A 1x1 `Conv2D` that computes as a matrix product on a 1x1 map.

    The gates of Squeeze-and-Excitation (`fc1`, `fc2`), Selective Kernel (`fc_reduce`,
    `fc_select`) and Split-Attention (`fc1`, `fc2`) are fully connected layers that timm writes
    as 1x1 convolutions over globally pooled features (Hu et al., 2018, "Squeeze-and-Excitation
    Networks"). This layer keeps `Conv2D`'s kernel (same shape, same variable names, so
    `get_weights` / `set_weights` and timm checkpoints map one to one) and, on a map of one
    pixel, multiplies matrices instead: TensorFlow's oneDNN convolution spends about 0.2 ms
    preparing each such call at batch 8, the product about 40 us (SE-ResNeXt-50, batch 8:
    341.1 -> 336.7 ms, 2-core AVX-512 CPU). On larger maps, or with strides or dilation, it is
    `Conv2D`.

    Args:
        filters: output channels.
        kernel_size: 1 (the only size it takes).
        groups: number of groups (Split-Attention's cardinality); must divide the input and
            output channels.
        data_format: `"channels_last"` (default, whatever `keras.config.image_data_format()`
            says: the attention layers' descriptors are channels-last) or `"channels_first"`.
        **kwargs: any other `Conv2D` argument, by keyword.

    Example:

    >>> fc = DescriptorConv2D(32, name="fc1")
    >>> tuple(fc(keras.random.normal((8, 1, 1, 128))).shape)
    (8, 1, 1, 32)
    """

    def __init__(self, filters, kernel_size=1, *, groups=1, data_format="channels_last",
                 **kwargs):
        if kernel_size not in (1, (1, 1), [1, 1]):
            raise ValueError(
                f"DescriptorConv2D is a 1x1 convolution; received kernel_size={kernel_size!r}."
            )
        super().__init__(filters, 1, groups=groups, data_format=data_format, **kwargs)

    def _multiplies_matrices(self, inputs):
        return (tuple(inputs.shape[1:3]) == (1, 1) and self.strides == (1, 1)
                and self.data_format == "channels_last")
