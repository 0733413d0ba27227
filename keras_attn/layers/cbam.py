"""Convolutional Block Attention Module: a channel gate, then a spatial attention map."""

import keras
from keras import ops

from keras_attn.layers import checks, common
from keras_attn.layers.pointwise_conv import PointwiseConv2D
from keras_attn.layers.precision import gate_dtype_policy
from keras_attn.layers.pytorch import reduced_channels


def _spatial_max(inputs):
    """Global max pool over height and width, kept as (batch, 1, 1, channels): a max pooling
    over the whole map where its size is known (as `common.spatial_mean`), else the max."""
    size = tuple(inputs.shape[1:3])
    if None not in size:
        return ops.max_pool(inputs, pool_size=size, strides=1, padding="valid",
                            data_format="channels_last")
    return ops.max(inputs, axis=(1, 2), keepdims=True)


@keras.saving.register_keras_serializable(package="keras_attn")
class CBAM(keras.layers.Layer):
    """Convolutional Block Attention Module (Woo et al., "CBAM: Convolutional Block Attention
    Module", ECCV 2018, https://arxiv.org/abs/1807.06521).

    Channel attention, then spatial attention, as timm's `CbamModule` computes them:
    - channel: the input's spatial mean and spatial max each pass through one shared
      bottleneck of two 1x1 convolutions without bias (reduce, ReLU, expand); their sum
      through a sigmoid is a gate in (0, 1) per channel that rescales the input;
    - spatial: the channel-wise mean and max of that result (in this order, as timm
      concatenates them) pass through a `spatial_kernel_size` convolution to one channel, a
      BatchNorm and a sigmoid: a map in (0, 1) per position that rescales every channel.
    Both attentions run in float32 under mixed precision.

    Arguments follow timm's `CbamModule`. Sublayers are `channel_fc1`, `channel_fc2`,
    `spatial_conv` and `spatial_bn`, timm's `channel.fc1`, `channel.fc2`, `spatial.conv.conv`
    and `spatial.conv.bn` (`keras_attn.attention` maps them for the timm converter).

    Args:
        rd_ratio: width of the bottleneck relative to the input channels (the paper's 1/r).
        rd_channels: width of the bottleneck; overrides `rd_ratio` when given.
        rd_divisor: the bottleneck width `channels * rd_ratio` is rounded to a multiple of
            this (timm's `make_divisible` without the 90% rule; timm's default 1 rounds to the
            nearest integer).
        spatial_kernel_size: size of the spatial attention's convolution, an odd integer (7 in
            the paper).
        activation: activation of the bottleneck.
        gate_activation: the function of both gates, `"sigmoid"` in the paper.
        mlp_bias: whether the bottleneck's convolutions have a bias (timm: no).
        batch_norm: whether the spatial convolution is followed by a BatchNorm (timm's
            layer). `False` gives it a bias instead: the inference form
            `keras_attn.optimize_for_inference` folds the BatchNorm into.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, `trainable`).

    Input shape: `(batch, height, width, channels)`; output shape: the same.

    Examples:
        >>> features = keras.Input((None, None, 256))
        >>> layer = CBAM()
        >>> attended = layer(features)
        >>> layer.channel_fc1.filters, layer.spatial_conv.kernel_size   # 256 / 16, 7x7
        (16, (7, 7))
        >>> weights = layer.attention_weights(keras.random.uniform((2, 14, 14, 256)))
        >>> tuple(weights["channel"].shape), tuple(weights["spatial"].shape)
        ((2, 1, 1, 256), (2, 14, 14, 1))
    """

    def __init__(
        self,
        rd_ratio=1.0 / 16,
        rd_channels=None,
        rd_divisor=1,
        spatial_kernel_size=7,
        activation="relu",
        gate_activation="sigmoid",
        mlp_bias=False,
        batch_norm=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rd_ratio, self.rd_channels, self.rd_divisor = checks.check_reduction(
            rd_ratio, rd_channels, rd_divisor
        )
        self.spatial_kernel_size = checks.check_odd_int("spatial_kernel_size",
                                                        spatial_kernel_size)
        self.activation = keras.activations.get(activation)
        self.gate_activation = keras.activations.get(gate_activation)
        self.mlp_bias = bool(mlp_bias)
        self.batch_norm = bool(batch_norm)
        self._gate_policy = gate_dtype_policy(self.dtype_policy)
        self.channel_fc1 = self.channel_fc2 = self.spatial_conv = self.spatial_bn = None

    def reduced_channels(self, channels):
        """Width of the bottleneck for an input with `channels` channels."""
        return reduced_channels(channels, self.rd_ratio, self.rd_channels, self.rd_divisor)

    def build(self, input_shape):
        # The bottleneck's widths depend on the input's channel count, so the sublayers are
        # made here (in timm's order: channel, then spatial).
        channels = checks.check_channels_last("CBAM", input_shape)
        reduced = self.reduced_channels(channels)
        self.channel_fc1 = PointwiseConv2D(reduced, use_bias=self.mlp_bias, name="channel_fc1",
                                           dtype=self._gate_policy)
        self.channel_fc2 = PointwiseConv2D(channels, use_bias=self.mlp_bias,
                                           name="channel_fc2", dtype=self._gate_policy)
        self.channel_fc1.build((None, 2, 1, channels))
        self.channel_fc2.build((None, 2, 1, reduced))
        self.spatial_conv = keras.layers.Conv2D(
            1, self.spatial_kernel_size, padding="same", use_bias=not self.batch_norm,
            data_format="channels_last", name="spatial_conv", dtype=self._gate_policy,
        )
        self.spatial_bn = (common.batch_norm("spatial_bn", dtype=self._gate_policy)
                           if self.batch_norm else None)
        self.spatial_conv.build((None, input_shape[1], input_shape[2], 2))
        if self.spatial_bn is not None:
            self.spatial_bn.build((None, input_shape[1], input_shape[2], 1))
        common.finish_build(self, channels)

    def conv_batch_norm_pairs(self):
        """`[(convolution, BatchNorm or None)]`: the spatial convolution and its BatchNorm."""
        return [(self.spatial_conv, self.spatial_bn)]

    def _attend(self, inputs, training=None):
        """`(inputs rescaled by the channel gate, the channel gate, the spatial map)`."""
        dtype = self._gate_policy.compute_dtype
        x = ops.cast(inputs, dtype)
        # The mean and the max share the bottleneck: one pass over both, stacked on an axis
        # that the 1x1 convolutions leave alone, then summed (with the bias, if any, twice, as
        # timm adds two outputs of fc2).
        pooled = ops.concatenate([common.spatial_mean(x, dtype), _spatial_max(x)], axis=1)
        logits = self.channel_fc2(self.activation(self.channel_fc1(pooled)))
        channel = self.gate_activation(ops.sum(logits, axis=1, keepdims=True))
        gated = ops.multiply(inputs, ops.cast(channel, inputs.dtype))
        x = ops.cast(gated, dtype)
        descriptor = ops.concatenate(
            [ops.mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)], axis=-1
        )
        spatial = self.spatial_conv(descriptor)
        if self.spatial_bn is not None:
            spatial = self.spatial_bn(spatial, training=training)
        return gated, channel, self.gate_activation(spatial)

    def attention_weights(self, inputs, training=None):
        """`{"channel": the channel gate, (batch, 1, 1, channels), "spatial": the spatial map,
        (batch, height, width, 1)}`, in float32 under mixed precision. The spatial map is
        computed from the input rescaled by the channel gate, as the layer applies it."""
        common.ensure_built(self, inputs)
        _, channel, spatial = self._attend(inputs, training)
        return {"channel": channel, "spatial": spatial}

    def call(self, inputs, training=None):
        gated, _, spatial = self._attend(inputs, training)
        return ops.multiply(gated, ops.cast(spatial, gated.dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rd_ratio": self.rd_ratio,
                "rd_channels": self.rd_channels,
                "rd_divisor": self.rd_divisor,
                "spatial_kernel_size": self.spatial_kernel_size,
                "activation": keras.activations.serialize(self.activation),
                "gate_activation": keras.activations.serialize(self.gate_activation),
                "mlp_bias": self.mlp_bias,
                "batch_norm": self.batch_norm,
            }
        )
        return config
