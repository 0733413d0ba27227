"""Load timm (PyTorch) checkpoints into keras_attn networks."""

from keras_attn.convert.timm import from_timm, load_timm_weights

__all__ = ["from_timm", "load_timm_weights"]
