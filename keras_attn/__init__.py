"""keras_attn: channel-attention CNNs (SE, SK, Split-Attention) for Keras 3.

- `keras_attn.layers`: `SqueezeExcite`, `SelectiveKernel`, `SplitAttention`.
- `keras_attn.applications`: the networks, `get_model`, `list_models`, `feature_extractor`.
- `keras_attn.convert`: timm checkpoints -> Keras weights (`load_timm_weights`, `from_timm`).
- `keras_attn.inspect`: the attention weights of a network, excitation profiles, kernel
  selection, and their plots.
- `keras_attn.export`: SavedModel for TF Serving and TFLite, verified before they land.
- `keras_attn.training`: the training program (`keras-attn train`) on `tf.distribute`.
"""

__version__ = "0.1.0"

import importlib
import os
import sys

if "tensorflow" not in sys.modules:
    # TensorFlow's oneDNN CPU kernels have a grouped convolution with a gradient: ResNeXt-50's
    # training step went from 1.76 to 3.47 images/s with them on a 2-core AVX2 CPU (README,
    # Performance). TensorFlow turns them on by itself only on CPUs with AVX-512
    # VNNI or newer, and reads this once, on import; `TF_ENABLE_ONEDNN_OPTS=0` keeps them off.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from keras_attn import applications, convert, inspect, layers, weights  # noqa: E402

__all__ = ["applications", "convert", "data", "export", "inspect", "layers", "training",
           "weights"]

# Modules that need TensorFlow: loaded on first use, so that `import keras_attn` works under
# the JAX and PyTorch backends on machines without TensorFlow.
_LAZY = ("data", "export", "training")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"keras_attn.{name}")
    raise AttributeError(f"module 'keras_attn' has no attribute {name!r}")
