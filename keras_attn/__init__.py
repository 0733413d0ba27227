"""keras_attn: channel-attention CNNs (SE, SK, Split-Attention) for Keras 3."""

__version__ = "0.1.0"
