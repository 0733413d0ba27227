"""Channel-attention layers for Keras 3, computed with `keras.ops` (any backend).

- `SqueezeExcite` — Squeeze-and-Excitation (Hu et al., 2018).
- `SelectiveKernel` — Selective Kernel convolution (Li et al., 2019).
- `SplitAttention` — Split-Attention convolution of ResNeSt (Zhang et al., 2020).
- `Conv2D` — `keras.layers.Conv2D`, with 1x1 convolutions on small maps computed as matrix
  products where that is faster (the networks' convolutions; same weights and weight files).
- `GroupedConv2D` — `Conv2D(groups=g)`'s weights, computed the fastest way for the device
  (`grouped_conv_implementation` overrides the choice).
- `DescriptorConv2D` — the attention gates' 1x1 convolutions over pooled descriptors,
  computed as matrix products.
- `FusedBatchNormalization` — `BatchNormalization`, computed with TensorFlow's fused kernel
  on TensorFlow (in training; in inference where oneDNN folds it into the convolution).

Each exposes `attention_weights(inputs)`, the gate or branch weights it applies.
"""

from keras_attn.layers.batch_norm import FusedBatchNormalization
from keras_attn.layers.conv import Conv2D
from keras_attn.layers.descriptor_conv import DescriptorConv2D
from keras_attn.layers.grouped_conv import GroupedConv2D, grouped_conv_implementation
from keras_attn.layers.selective_kernel import SelectiveKernel
from keras_attn.layers.split_attention import SplitAttention
from keras_attn.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "Conv2D",
    "DescriptorConv2D",
    "FusedBatchNormalization",
    "GroupedConv2D",
    "SelectiveKernel",
    "SplitAttention",
    "SqueezeExcite",
    "grouped_conv_implementation",
]
