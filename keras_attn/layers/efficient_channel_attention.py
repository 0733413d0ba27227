"""Efficient Channel Attention: a per-channel gate from a 1-D convolution across channels."""

import math
import numbers

import keras
from keras import ops

from keras_attn.layers import checks, common
from keras_attn.layers.precision import gate_dtype_policy


def eca_kernel_size(channels, gamma=2, beta=1):
    """The kernel size ECA-Net chooses for `channels` channels, exactly as timm's `EcaModule`
    computes it: `t = int(|log2(channels) + beta| / gamma)`, made odd by adding one when it
    is even, and at least 3.

    Examples:
        >>> [eca_kernel_size(c) for c in (64, 128, 256, 512, 1024, 2048)]
        [3, 5, 5, 5, 5, 7]
    """
    t = int(abs(math.log(channels, 2) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


@keras.saving.register_keras_serializable(package="keras_attn")
class EfficientChannelAttention(keras.layers.Layer):
    """Efficient Channel Attention (Wang et al., "ECA-Net: Efficient Channel Attention for
    Deep Convolutional Neural Networks", CVPR 2020, https://arxiv.org/abs/1910.03151).

    Squeezes each channel to its spatial mean, as Squeeze-and-Excitation does, but replaces
    SE's two fully connected layers by one 1-D convolution across the pooled channels (no
    bias, zero padding): each channel's gate sees only its `kernel_size` neighbours, for
    `kernel_size` weights in all. A sigmoid turns the result into a gate in (0, 1) that
    rescales the input channels. The gate runs in float32 under mixed precision.

    The kernel size grows with the channel count C as the paper's equation (12) says,
    `|log2(C) / gamma + beta / gamma|` made odd, exactly as timm's `EcaModule` computes it
    (`eca_kernel_size`), unless `kernel_size` is given. Arguments follow timm's (`gamma`,
    `beta`; the convolution is `conv`), so timm checkpoints load one-to-one.

    Args:
        kernel_size: the convolution's size, an odd integer; `None` (the default, as timm's
            networks build it) chooses it from the channel count with `gamma` and `beta`.
        gamma: the paper's gamma, > 0: the channel count per kernel size, on a log2 scale.
        beta: the paper's b: an offset of the kernel size, on a log2 scale.
        gate_activation: the gate function, `"sigmoid"` in the paper.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, `trainable`).

    Input shape: `(batch, height, width, channels)`; output shape: the same.

    Examples:
        >>> features = keras.Input((None, None, 256))
        >>> layer = EfficientChannelAttention()
        >>> gated = layer(features)
        >>> layer.conv.kernel_size   # log2(256) = 8: int((8 + 1) / 2) = 4, made odd
        (5,)
    """

    def __init__(self, kernel_size=None, gamma=2, beta=1, gate_activation="sigmoid", **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = (None if kernel_size is None
                            else checks.check_odd_int("kernel_size", kernel_size))
        self.gamma = checks.check_positive_number("gamma", gamma)
        if (isinstance(beta, bool) or not isinstance(beta, numbers.Real)
                or not math.isfinite(beta)):
            raise ValueError(f"`beta` must be a finite number; received beta={beta!r}.")
        self.beta = int(beta) if isinstance(beta, numbers.Integral) else float(beta)
        self.gate_activation = keras.activations.get(gate_activation)
        self._gate_policy = gate_dtype_policy(self.dtype_policy)
        self.conv = None

    def kernel_size_for(self, channels):
        """The convolution's size for an input with `channels` channels."""
        if self.kernel_size is not None:
            return self.kernel_size
        return eca_kernel_size(channels, self.gamma, self.beta)

    def build(self, input_shape):
        channels = checks.check_channels_last("EfficientChannelAttention", input_shape)
        # Over the pooled channels, as a sequence of `channels` steps of one feature.
        self.conv = keras.layers.Conv1D(
            1, self.kernel_size_for(channels), padding="same", use_bias=False,
            data_format="channels_last", name="conv", dtype=self._gate_policy,
        )
        self.conv.build((None, channels, 1))
        common.finish_build(self, channels)

    def attention_weights(self, inputs):
        """The gate, shape `(batch, 1, 1, channels)`, in float32 under mixed precision."""
        common.ensure_built(self, inputs)
        channels = inputs.shape[-1]
        squeezed = common.spatial_mean(inputs, self._gate_policy.compute_dtype)
        logits = self.conv(ops.reshape(squeezed, (-1, channels, 1)))
        return self.gate_activation(ops.reshape(logits, (-1, 1, 1, channels)))

    def call(self, inputs):
        return ops.multiply(inputs, ops.cast(self.attention_weights(inputs), inputs.dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kernel_size": self.kernel_size,
                "gamma": self.gamma,
                "beta": self.beta,
                "gate_activation": keras.activations.serialize(self.gate_activation),
            }
        )
        return config
