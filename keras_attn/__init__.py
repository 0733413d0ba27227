"""keras_attn: channel-attention CNNs (SE, SK, Split-Attention) for Keras 3.

- `keras_attn.layers`: `SqueezeExcite`, `SelectiveKernel`, `SplitAttention`.
- `keras_attn.applications`: the networks, `get_model`, `list_models`, `feature_extractor`.
- `keras_attn.convert`: timm checkpoints -> Keras weights (`load_timm_weights`, `from_timm`).
- `keras_attn.inspect`: the attention weights of a network, excitation profiles, kernel
  selection, and their plots.
"""

__version__ = "0.1.0"

import importlib

from keras_attn import applications, convert, inspect, layers, weights  # noqa: E402

__all__ = ["applications", "convert", "data", "inspect", "layers", "weights"]


def __getattr__(name):
    # `data` decodes images with TensorFlow; loading it on first use keeps `import keras_attn`
    # working under the JAX and PyTorch backends on machines without TensorFlow.
    if name == "data":
        return importlib.import_module("keras_attn.data")
    raise AttributeError(f"module 'keras_attn' has no attribute {name!r}")
