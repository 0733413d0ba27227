"""Split-Attention convolution, the building block of ResNeSt."""

import keras
from keras import ops

from keras_attn.layers import checks, common
from keras_attn.layers.grouped_conv import conv2d
from keras_attn.layers.pointwise_conv import PointwiseConv2D
from keras_attn.layers.precision import gate_dtype_policy
from keras_attn.layers.pytorch import TorchConvGeometry, make_divisible

# timm's SplitAttn never lets the attention bottleneck fall below 32 channels.
_MIN_ATTENTION_CHANNELS = 32


@keras.saving.register_keras_serializable(package="keras_attn")
class SplitAttention(keras.layers.Layer):
    """Split-Attention convolution (Zhang et al., "ResNeSt: Split-Attention Networks", 2020,
    https://arxiv.org/abs/2004.08955).

    One grouped convolution with `radix * cardinality` groups produces `radix` splits of
    `filters` channels for each of the `cardinality` cardinal groups; BatchNorm and ReLU
    follow. The splits are summed, pooled globally and passed through a reduced fully
    connected layer (grouped by cardinality, with BatchNorm and ReLU) and an expanding one
    that gives `radix` weights per channel. An r-softmax normalises them across the radix
    within each cardinal group (a sigmoid when `radix` is 1), and the splits are summed with
    those weights. The attention runs in float32 under mixed precision.

    Channel order matches timm's `SplitAttn`: the convolution's output is radix-major
    (split r holds channels `[r * filters, (r + 1) * filters)`), and `fc2`'s output is
    cardinal-group-major (group, radix, channel). Sublayers are named after timm's (`conv`,
    `bn0`, `fc1`, `bn1`, `fc2`) so timm checkpoints map onto them.

    Args:
        filters: output channels.
        kernel_size: size of the (square) convolution.
        strides: stride of the convolution.
        dilation_rate: dilation of the convolution.
        radix: number of splits per cardinal group R (>= 1).
        cardinality: number of cardinal groups K.
        rd_ratio: width of the attention bottleneck relative to `input_channels * radix`;
            the width is rounded to a multiple of `rd_divisor` and is at least 32.
        rd_channels: width of the attention bottleneck per split; overrides `rd_ratio`.
        rd_divisor: the bottleneck width is rounded to a multiple of this.
        activation: activation after the convolution and in the attention bottleneck.
        batch_norm: whether the convolution and the attention's reducing layer are followed by
            a BatchNorm (timm's layer). `False` gives the convolution a bias instead: the
            inference form `keras_attn.optimize_for_inference` folds the BatchNorms into.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape: `(batch, height, width, channels)` with `channels` divisible by
    `radix * cardinality`; output shape: `(batch, new_height, new_width, filters)`, the
    spatial size that of a PyTorch convolution with symmetric padding.

    Examples:
        >>> features = keras.Input((None, None, 64))
        >>> attended = SplitAttention(64, radix=2, cardinality=1)(features)
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        dilation_rate=1,
        radix=2,
        cardinality=1,
        rd_ratio=0.25,
        rd_channels=None,
        rd_divisor=8,
        activation="relu",
        batch_norm=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = checks.check_positive_int("filters", filters)
        self.kernel_size = checks.check_positive_int("kernel_size", kernel_size)
        self.strides = checks.check_positive_int("strides", strides)
        self.dilation_rate = checks.check_positive_int("dilation_rate", dilation_rate)
        self.radix = checks.check_positive_int("radix", radix)
        self.cardinality = checks.check_cardinality(cardinality, self.filters)
        self.rd_ratio, self.rd_channels, self.rd_divisor = checks.check_reduction(
            rd_ratio, rd_channels, rd_divisor
        )
        self.activation = keras.activations.get(activation)
        self.batch_norm = bool(batch_norm)

        self._geometry = TorchConvGeometry(
            self.kernel_size, self.strides, self.dilation_rate
        )
        self.conv = conv2d(
            self.filters * self.radix,
            self.kernel_size,
            groups=self.cardinality * self.radix,
            use_bias=not self.batch_norm,
            name="conv",
            dtype=self.dtype_policy,
            **self._geometry.conv_kwargs,
        )
        self.bn0 = common.batch_norm("bn0", dtype=self.dtype_policy) if self.batch_norm else None
        self._gate_policy = gate_dtype_policy(self.dtype_policy)
        self.fc1 = None
        self.bn1 = None
        self.fc2 = None

    def attention_channels(self, input_channels):
        """Width of the attention bottleneck for an input with `input_channels` channels."""
        if self.rd_channels is not None:
            return self.rd_channels * self.radix
        return make_divisible(
            input_channels * self.radix * self.rd_ratio,
            self.rd_divisor,
            min_value=_MIN_ATTENTION_CHANNELS,
        )

    def build(self, input_shape):
        channels = checks.check_channels_last("SplitAttention", input_shape)
        groups = self.radix * self.cardinality
        if channels % groups:
            raise ValueError(
                f"SplitAttention needs input channels divisible by radix * cardinality = "
                f"{groups}; received input_shape={tuple(input_shape)} with radix={self.radix}, "
                f"cardinality={self.cardinality}."
            )
        # The bottleneck's width depends on the input channels (as in timm), so the attention
        # layers are made here rather than in __init__.
        attention = self.attention_channels(channels)
        if attention % self.cardinality:
            raise ValueError(
                f"`cardinality` must divide the attention width {attention}; received "
                f"cardinality={self.cardinality}."
            )
        self.fc1 = PointwiseConv2D(
            attention, groups=self.cardinality, name="fc1", dtype=self._gate_policy
        )
        self.bn1 = common.batch_norm("bn1", dtype=self._gate_policy) if self.batch_norm else None
        self.fc2 = PointwiseConv2D(
            self.filters * self.radix, groups=self.cardinality, name="fc2",
            dtype=self._gate_policy,
        )
        conv_input = self._geometry.conv_input_shape(tuple(input_shape))
        self.conv.build(conv_input)
        self.fc1.build((None, 1, 1, self.filters))
        if self.batch_norm:
            self.bn0.build(self.conv.compute_output_shape(conv_input))
            self.bn1.build((None, 1, 1, attention))
        self.fc2.build((None, 1, 1, attention))
        common.finish_build(self, channels)

    def _features(self, inputs, training=None):
        """The convolution's activated output: the `radix` splits side by side, radix-major."""
        return common.conv_bn_activation(self.conv, self.bn0, self.activation, self._geometry,
                                         inputs, training)

    def _attention(self, features, training=None):
        # The mean of the splits' sum is the sum of their means: pooling the convolution's
        # output once and summing the small pooled splits skips a full-size split and sum.
        pooled = common.spatial_mean(features, self._gate_policy.compute_dtype)
        pooled = ops.sum(ops.reshape(pooled, (-1, 1, 1, self.radix, self.filters)), axis=3)
        hidden = self.fc1(pooled)
        if self.bn1 is not None:
            hidden = self.bn1(hidden, training=training)
        hidden = self.activation(hidden)
        logits = self.fc2(hidden)
        if self.radix == 1:
            return ops.reshape(ops.sigmoid(logits), (-1, 1, 1, 1, self.filters))
        width = self.filters // self.cardinality
        logits = ops.reshape(logits, (-1, self.cardinality, self.radix, width))
        weights = common.softmax(logits, axis=2)
        if self.cardinality > 1:
            # (group, radix, channel) -> (radix, group, channel): the order of the splits.
            weights = ops.transpose(weights, (0, 2, 1, 3))
        return ops.reshape(weights, (-1, 1, 1, self.radix, self.filters))

    def conv_batch_norm_pairs(self):
        """`[(convolution, BatchNorm or None)]`: every convolution a BatchNorm follows."""
        return [(self.conv, self.bn0), (self.fc1, self.bn1)]

    def attention_weights(self, inputs, training=None):
        """Weights of the splits, shape `(batch, 1, 1, radix, filters)`.

        With radix > 1 they sum to 1 across the radix axis; with radix 1 they are sigmoid gates.
        """
        common.ensure_built(self, inputs)
        return self._attention(self._features(inputs, training), training)

    def call(self, inputs, training=None):
        features = self._features(inputs, training)
        weights = ops.cast(self._attention(features, training), features.dtype)
        splits = ops.split(features, self.radix, axis=-1) if self.radix > 1 else [features]
        return common.weighted_sum(splits, weights)

    def compute_output_shape(self, input_shape):
        return (
            input_shape[0],
            self._geometry.output_size(input_shape[1]),
            self._geometry.output_size(input_shape[2]),
            self.filters,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "dilation_rate": self.dilation_rate,
                "radix": self.radix,
                "cardinality": self.cardinality,
                "rd_ratio": self.rd_ratio,
                "rd_channels": self.rd_channels,
                "rd_divisor": self.rd_divisor,
                "activation": keras.activations.serialize(self.activation),
                "batch_norm": self.batch_norm,
            }
        )
        return config
