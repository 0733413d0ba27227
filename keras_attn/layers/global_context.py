"""Global Context block: attention pooling over positions, a bottleneck transform, fusion."""

import keras
from keras import ops

from keras_attn.layers import checks, common
from keras_attn.layers.pointwise_conv import PointwiseConv2D
from keras_attn.layers.precision import gate_dtype_policy
from keras_attn.layers.pytorch import reduced_channels

# timm's LayerNorm2d, the normalization of the transform.
_LAYER_NORM_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="keras_attn")
class GlobalContext(keras.layers.Layer):
    """Global Context block (Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation
    Networks and Beyond", 2019, https://arxiv.org/abs/1904.11492).

    Context modelling: a 1x1 convolution gives one logit per position, a softmax over all
    positions turns them into attention weights, and the features summed with those weights
    are the context, one vector per image (with `use_attn=False`, the spatial mean).
    Transform: a bottleneck of a 1x1 convolution, LayerNorm (epsilon 1e-6, timm's
    `LayerNorm2d`), ReLU and a 1x1 convolution back to the input width. Fusion, as timm's
    `GlobalContext` does by default: the transform through a sigmoid rescales each channel
    (`fuse_scale`); with `fuse_add`, a second transform of the context is added to every
    position (the paper's choice), starting at zero as timm initialises it. The attention and
    transforms run in float32 under mixed precision.

    Arguments follow timm's `GlobalContext`. Sublayers are `conv_attn` and, per fusion,
    `mlp_scale_fc1`, `mlp_scale_norm`, `mlp_scale_fc2` (`mlp_add_...`), timm's `conv_attn`,
    `mlp_scale.fc1`, `mlp_scale.norm`, `mlp_scale.fc2` (`keras_attn.attention` maps them for
    the timm converter).

    `conv_attn`'s bias is kept for timm's checkpoints although a softmax over positions
    cancels it: its gradient is zero.

    Args:
        use_attn: pool the context with the attention over positions (else the spatial mean).
        fuse_add: add a transform of the context to the features.
        fuse_scale: rescale the features by a sigmoid of a transform of the context. At least
            one of `fuse_add` and `fuse_scale` must be set.
        rd_ratio: width of the transform's bottleneck relative to the input channels.
        rd_channels: width of the bottleneck; overrides `rd_ratio` when given.
        rd_divisor: the bottleneck width `channels * rd_ratio` is rounded to a multiple of
            this (timm's `make_divisible` without the 90% rule; timm's default 1 rounds to the
            nearest integer).
        activation: activation of the bottleneck.
        gate_activation: the gate function of `fuse_scale`, `"sigmoid"` in timm.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, `trainable`).

    Input shape: `(batch, height, width, channels)`; output shape: the same.

    Examples:
        >>> features = keras.Input((None, None, 256))
        >>> layer = GlobalContext()
        >>> fused = layer(features)
        >>> layer.mlp_scale_fc1.filters   # 256 / 8
        32
        >>> weights = layer.attention_weights(keras.random.uniform((2, 14, 14, 256)))
        >>> tuple(weights.shape)   # one weight per position, summing to 1 over the map
        (2, 14, 14, 1)
    """

    def __init__(
        self,
        use_attn=True,
        fuse_add=False,
        fuse_scale=True,
        rd_ratio=1.0 / 8,
        rd_channels=None,
        rd_divisor=1,
        activation="relu",
        gate_activation="sigmoid",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.use_attn = bool(use_attn)
        self.fuse_add = bool(fuse_add)
        self.fuse_scale = bool(fuse_scale)
        if not (self.fuse_add or self.fuse_scale):
            raise ValueError(
                "At least one of `fuse_add` and `fuse_scale` must be True (else the layer "
                f"changes nothing); received fuse_add={fuse_add!r}, fuse_scale={fuse_scale!r}."
            )
        self.rd_ratio, self.rd_channels, self.rd_divisor = checks.check_reduction(
            rd_ratio, rd_channels, rd_divisor
        )
        self.activation = keras.activations.get(activation)
        self.gate_activation = keras.activations.get(gate_activation)
        self._gate_policy = gate_dtype_policy(self.dtype_policy)
        self.conv_attn = None
        if self.use_attn:
            # timm's initialisation: kaiming_normal_(mode="fan_in", nonlinearity="relu").
            self.conv_attn = PointwiseConv2D(
                1, name="conv_attn", dtype=self._gate_policy,
                kernel_initializer=keras.initializers.VarianceScaling(
                    2.0, mode="fan_in", distribution="untruncated_normal"),
            )
        self.mlp_scale_fc1 = self.mlp_scale_norm = self.mlp_scale_fc2 = None
        self.mlp_add_fc1 = self.mlp_add_norm = self.mlp_add_fc2 = None

    def reduced_channels(self, channels):
        """Width of the transform's bottleneck for an input with `channels` channels."""
        return reduced_channels(channels, self.rd_ratio, self.rd_channels, self.rd_divisor)

    def _transform(self, fusion, channels, reduced):
        """The bottleneck of one fusion: `(fc1, norm, fc2)`, built."""
        fc1 = PointwiseConv2D(reduced, name=f"mlp_{fusion}_fc1", dtype=self._gate_policy)
        norm = keras.layers.LayerNormalization(
            axis=-1, epsilon=_LAYER_NORM_EPSILON, name=f"mlp_{fusion}_norm",
            dtype=self._gate_policy,
        )
        # timm starts the added transform at zero, so that the block starts as the identity.
        fc2 = PointwiseConv2D(channels, name=f"mlp_{fusion}_fc2", dtype=self._gate_policy,
                              kernel_initializer="zeros" if fusion == "add" else "glorot_uniform")
        fc1.build((None, 1, 1, channels))
        norm.build((None, 1, 1, reduced))
        fc2.build((None, 1, 1, reduced))
        return fc1, norm, fc2

    def build(self, input_shape):
        # The transforms' widths depend on the input's channel count, so they are made here.
        channels = checks.check_channels_last("GlobalContext", input_shape)
        reduced = self.reduced_channels(channels)
        if self.conv_attn is not None:
            self.conv_attn.build(tuple(input_shape))
        if self.fuse_add:
            self.mlp_add_fc1, self.mlp_add_norm, self.mlp_add_fc2 = self._transform(
                "add", channels, reduced)
        if self.fuse_scale:
            self.mlp_scale_fc1, self.mlp_scale_norm, self.mlp_scale_fc2 = self._transform(
                "scale", channels, reduced)
        common.finish_build(self, channels)

    def _attention_and_context(self, inputs):
        """`(attention over positions, (batch, height, width, 1); the context, (batch, 1, 1,
        channels))`, in the gates' dtype."""
        dtype = self._gate_policy.compute_dtype
        x = ops.cast(inputs, dtype)
        if self.conv_attn is None:
            ones = ops.ones_like(x[..., :1])
            return ones / ops.sum(ones, axis=(1, 2), keepdims=True), common.spatial_mean(x, dtype)
        logits = self.conv_attn(x)
        exponentials = ops.exp(logits - ops.max(logits, axis=(1, 2), keepdims=True))
        attention = exponentials / ops.sum(exponentials, axis=(1, 2), keepdims=True)
        # The attention-weighted sum over positions, as a product and a sum: TFLite's converter
        # rejects the einsum of the same product ('tf.BatchMatMulV2' op found invalid output
        # dimension), and these are builtin operators of every exporter.
        return attention, ops.sum(ops.multiply(x, attention), axis=(1, 2), keepdims=True)

    def attention_weights(self, inputs):
        """The attention over positions, `(batch, height, width, 1)`, summing to 1 over each
        map (uniform with `use_attn=False`), in float32 under mixed precision."""
        common.ensure_built(self, inputs)
        return self._attention_and_context(inputs)[0]

    def call(self, inputs):
        _, context = self._attention_and_context(inputs)
        outputs = inputs
        if self.fuse_scale:
            scale = self.mlp_scale_fc2(self.activation(self.mlp_scale_norm(
                self.mlp_scale_fc1(context))))
            outputs = ops.multiply(outputs, ops.cast(self.gate_activation(scale), inputs.dtype))
        if self.fuse_add:
            added = self.mlp_add_fc2(self.activation(self.mlp_add_norm(
                self.mlp_add_fc1(context))))
            outputs = ops.add(outputs, ops.cast(added, inputs.dtype))
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "use_attn": self.use_attn,
                "fuse_add": self.fuse_add,
                "fuse_scale": self.fuse_scale,
                "rd_ratio": self.rd_ratio,
                "rd_channels": self.rd_channels,
                "rd_divisor": self.rd_divisor,
                "activation": keras.activations.serialize(self.activation),
                "gate_activation": keras.activations.serialize(self.gate_activation),
            }
        )
        return config
