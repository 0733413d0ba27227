"""Channel-attention layers for Keras 3, computed with `keras.ops` (any backend).

- `SqueezeExcite` - Squeeze-and-Excitation (Hu et al., 2018).
- `SelectiveKernel` - Selective Kernel convolution (Li et al., 2019).
- `SplitAttention` - Split-Attention convolution of ResNeSt (Zhang et al., 2020).
- `EfficientChannelAttention` - ECA-Net's gate (Wang et al., 2020).
- `CBAM` - Convolutional Block Attention Module (Woo et al., 2018).
- `GlobalContext` - GCNet's Global Context block (Cao et al., 2019).
- `GroupedConv2D` - `Conv2D(groups=g)`'s weights, computed the fastest way for the device;
  `grouped_conv_choice()` says which way and why, `grouped_conv_implementation(...)` overrides
  it for a block of code.
- `PointwiseConv2D` - a 1x1 `Conv2D` computed as a matrix product (the gates' fully connected
  layers).
- `FusedBatchNormalization` - `BatchNormalization`, trained with TensorFlow's fused kernel.

Each attention layer exposes `attention_weights(inputs)`, the gate or branch weights it
applies; `keras_attn.attention` declares each kind once (its slot in a network, its paper, its
timm counterpart).
"""

import keras

from keras_attn.layers.batch_norm import FusedBatchNormalization
from keras_attn.layers.cbam import CBAM
from keras_attn.layers.efficient_channel_attention import EfficientChannelAttention
from keras_attn.layers.global_context import GlobalContext
from keras_attn.layers.grouped_conv import (
    GroupedConv2D,
    GroupedConvChoice,
    grouped_conv_choice,
    grouped_conv_implementation,
)
from keras_attn.layers.pointwise_conv import PointwiseConv2D
from keras_attn.layers.selective_kernel import SelectiveKernel
from keras_attn.layers.split_attention import SplitAttention
from keras_attn.layers.squeeze_excite import SqueezeExcite

# Files saved by keras_attn 0.1 name the networks' convolutions "keras_attn>Conv2D" (a subclass
# of keras.layers.Conv2D with the same config and weights, since removed): they load as Keras'
# own. Registering a name for deserialization only; Keras' Conv2D still saves as itself.
keras.saving.get_custom_objects().setdefault("keras_attn>Conv2D", keras.layers.Conv2D)

__all__ = [
    "CBAM",
    "EfficientChannelAttention",
    "FusedBatchNormalization",
    "GlobalContext",
    "GroupedConv2D",
    "GroupedConvChoice",
    "PointwiseConv2D",
    "SelectiveKernel",
    "SplitAttention",
    "SqueezeExcite",
    "grouped_conv_choice",
    "grouped_conv_implementation",
]
