"""keras_attn: channel-attention CNNs (SE, SK, Split-Attention) for Keras 3.

- `keras_attn.layers`: `SqueezeExcite`, `SelectiveKernel`, `SplitAttention`.
- `keras_attn.applications`: the networks, `get_model`, `list_models`, `feature_extractor`.
- `keras_attn.convert`: timm checkpoints -> Keras weights (`load_timm_weights`, `from_timm`).
"""

__version__ = "0.1.0"

from keras_attn import applications, convert, data, layers, weights  # noqa: E402

__all__ = ["applications", "convert", "data", "layers", "weights"]
