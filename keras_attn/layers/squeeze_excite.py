"""Squeeze-and-Excitation: a learned per-channel gate."""

import keras
from keras import ops

from keras_attn.layers import checks, common
from keras_attn.layers.pointwise_conv import PointwiseConv2D
from keras_attn.layers.precision import gate_dtype_policy
from keras_attn.layers.pytorch import reduced_channels


@keras.saving.register_keras_serializable(package="keras_attn")
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-and-Excitation block (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018,
    https://arxiv.org/abs/1709.01507).

    Squeezes each channel to its spatial mean, passes the vector through a bottleneck of two
    1x1 convolutions (reduce, ReLU, expand), turns it into a gate in (0, 1) with a sigmoid and
    rescales the input channels by it. The gate runs in float32 under mixed precision.

    Arguments follow timm's `SEModule`, so timm checkpoints load one-to-one (`fc1`, `fc2`).

    Args:
        rd_ratio: width of the bottleneck relative to the input channels (the paper's 1/r).
        rd_channels: width of the bottleneck; overrides `rd_ratio` when given.
        rd_divisor: the bottleneck width `channels * rd_ratio` is rounded to a multiple of this
            (timm's `make_divisible` without the 90% rule).
        activation: activation of the bottleneck.
        gate_activation: the gate function, `"sigmoid"` in the paper; `"hard_sigmoid"` is
            friendlier to integer quantization.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, `trainable`).

    Input shape: `(batch, height, width, channels)`; output shape: the same.

    Examples:
        >>> features = keras.Input((None, None, 256))
        >>> gated = SqueezeExcite(rd_ratio=1 / 16)(features)   # bottleneck of 16 channels
    """

    def __init__(
        self,
        rd_ratio=1.0 / 16,
        rd_channels=None,
        rd_divisor=8,
        activation="relu",
        gate_activation="sigmoid",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rd_ratio, self.rd_channels, self.rd_divisor = checks.check_reduction(
            rd_ratio, rd_channels, rd_divisor
        )
        self.activation = keras.activations.get(activation)
        self.gate_activation = keras.activations.get(gate_activation)
        self._gate_policy = gate_dtype_policy(self.dtype_policy)
        self.fc1 = None
        self.fc2 = None

    def reduced_channels(self, channels):
        """Width of the bottleneck for an input with `channels` channels."""
        return reduced_channels(channels, self.rd_ratio, self.rd_channels, self.rd_divisor)

    def build(self, input_shape):
        # Both widths depend on the input's channel count, so the sublayers are made here.
        channels = checks.check_channels_last("SqueezeExcite", input_shape)
        reduced = self.reduced_channels(channels)
        self.fc1 = PointwiseConv2D(reduced, name="fc1", dtype=self._gate_policy)
        self.fc2 = PointwiseConv2D(channels, name="fc2", dtype=self._gate_policy)
        self.fc1.build((None, 1, 1, channels))
        self.fc2.build((None, 1, 1, reduced))
        common.finish_build(self, channels)

    def attention_weights(self, inputs):
        """The gate, shape `(batch, 1, 1, channels)`, in float32 under mixed precision."""
        common.ensure_built(self, inputs)
        squeezed = common.spatial_mean(inputs, self._gate_policy.compute_dtype)
        return self.gate_activation(self.fc2(self.activation(self.fc1(squeezed))))

    def call(self, inputs):
        return inputs * ops.cast(self.attention_weights(inputs), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rd_ratio": self.rd_ratio,
                "rd_channels": self.rd_channels,
                "rd_divisor": self.rd_divisor,
                "activation": keras.activations.serialize(self.activation),
                "gate_activation": keras.activations.serialize(self.gate_activation),
            }
        )
        return config
