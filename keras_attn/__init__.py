"""keras_attn: channel-attention CNNs (SE, SK, Split-Attention) for Keras 3.

- `keras_attn.layers`: `SqueezeExcite`, `SelectiveKernel`, `SplitAttention`, `GroupedConv2D`.
- `keras_attn.attention`: the registry that declares each attention kind once.
- `keras_attn.applications`: the networks, `get_model`, `list_models`, `feature_extractor`.
- `keras_attn.convert`: timm checkpoints -> Keras weights (`load_timm_weights`, `from_timm`).
- `keras_attn.optimize_for_inference`: an equal model that infers faster (BatchNorms folded).
- `keras_attn.inspect`: the attention weights of a network, excitation profiles, kernel
  selection, and their plots.
- `keras_attn.export`: SavedModel for TF Serving and TFLite, verified before they land.
- `keras_attn.training`: the training program (`keras-attn train`) on `tf.distribute`.

Importing it sets no environment variable and changes no global Keras state.
"""

__version__ = "0.2.0"

import importlib

from keras_attn import applications, attention, convert, inspect, layers, weights
from keras_attn.optimize import optimize_for_inference

__all__ = ["applications", "attention", "convert", "data", "export", "inspect", "layers",
           "optimize_for_inference", "training", "weights"]

# Modules that need TensorFlow: loaded on first use, so that `import keras_attn` works under
# the JAX and PyTorch backends on machines without TensorFlow.
_LAZY = ("data", "export", "training")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"keras_attn.{name}")
    raise AttributeError(f"module 'keras_attn' has no attribute {name!r}")
