"""A 1x1 convolution computed as a matrix product."""

import keras
from keras import ops

from keras_attn.layers.pytorch import every_nth_pixel


def pointwise_matmul(inputs, kernel, groups=1):
    """A 1x1 convolution with stride 1 of channels-last `inputs`, as a matrix product.

    `kernel` is Keras' `(1, 1, in_per_group, filters)`; with `groups > 1`, group g's outputs
    are channels `[g * filters / groups, (g + 1) * filters / groups)`, as in `Conv2D`.
    """
    shape = ops.shape(inputs)
    in_per_group, filters = kernel.shape[2], kernel.shape[3]
    if groups == 1:
        outputs = ops.matmul(ops.reshape(inputs, (-1, in_per_group)),
                             ops.reshape(kernel, (in_per_group, filters)))
    else:
        grouped_inputs = ops.reshape(inputs, (-1, groups, in_per_group))
        grouped_kernel = ops.reshape(kernel, (in_per_group, groups, filters // groups))
        outputs = ops.einsum("bgi,igo->bgo", grouped_inputs, grouped_kernel)
    return ops.reshape(outputs, (shape[0], shape[1], shape[2], filters))


@keras.saving.register_keras_serializable(package="keras_attn")
class PointwiseConv2D(keras.layers.Conv2D):
    """A 1x1 `Conv2D` computed as a matrix product (strided: on every `stride`-th pixel).

    The same function, weights (shape and variable names) and config as
    `keras.layers.Conv2D(filters, 1, ...)`, so `get_weights` / `set_weights` and timm
    checkpoints map one to one. Attention gates apply their fully connected layers, which timm
    writes as 1x1 convolutions, to globally pooled `(batch, 1, 1, channels)` descriptors (Hu et
    al., 2018, "Squeeze-and-Excitation Networks", https://arxiv.org/abs/1709.01507): there a
    backend's convolution spends more time preparing the call than computing, a matrix product
    none. `keras_attn.optimize_for_inference` also uses it for 1x1 convolutions on small maps.

    Args:
        filters: output channels.
        kernel_size: 1 (the only size it takes).
        strides: the stride; the product reads every `strides`-th pixel.
        groups: number of groups (Split-Attention's cardinality); must divide the input and
            output channels.
        **kwargs: any other `Conv2D` argument, by keyword (`use_bias`, initializers, `name`).
            Inputs are channels-last whatever `keras.config.image_data_format()` says.

    Examples:
        >>> fc = PointwiseConv2D(32, name="fc1")
        >>> tuple(fc(keras.random.normal((8, 1, 1, 128))).shape)
        (8, 1, 1, 32)
    """

    def __init__(self, filters, kernel_size=1, strides=1, *, groups=1, **kwargs):
        if kernel_size not in (1, (1, 1), [1, 1]):
            raise ValueError(
                f"PointwiseConv2D is a 1x1 convolution; received kernel_size={kernel_size!r}."
            )
        for name in ("data_format", "dilation_rate", "padding"):
            value = kwargs.pop(name, None)
            allowed = {"data_format": ("channels_last", None),
                       "dilation_rate": (1, (1, 1), None), "padding": ("valid", "same", None)}
            if value not in allowed[name]:
                raise ValueError(
                    f"PointwiseConv2D takes channels-last inputs, no dilation and any padding "
                    f"(a 1x1 kernel pads nothing); received {name}={value!r}."
                )
        super().__init__(filters, 1, strides, groups=groups, data_format="channels_last",
                         **kwargs)

    def convolution_op(self, inputs, kernel):
        if self.strides != (1, 1):
            inputs = every_nth_pixel(inputs, self.strides)
        return pointwise_matmul(inputs, kernel, self.groups)
