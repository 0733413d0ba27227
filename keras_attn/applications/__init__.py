"""ResNet-family networks with channel attention, with the `keras.applications` signature.

`list_models()` names every network; `get_model(name, **overrides)` builds any of them, with
any row of the table changed; the constructors (`ResNeSt50`, `SEResNeXt50`, `SKNet50`,
`SEInceptionV3`, ...; `keras_attn.applications.constructors`) build the papers' networks;
`feature_extractor` offers a network's feature maps. Every network is a `Network`, a functional
`keras.Model` that carries the `Structure` its builder recorded.
"""

from keras_attn.applications import constructors
from keras_attn.applications.application import Feature, Network, Structure
from keras_attn.applications.constructors import *  # noqa: F403 (each constructor, once)
from keras_attn.applications.imagenet_utils import decode_predictions, preprocess_input
from keras_attn.applications.registry import feature_extractor, get_model, list_models
from keras_attn.applications.specs import InceptionSpec, NetworkSpec

__all__ = [
    "Feature",
    "InceptionSpec",
    "Network",
    "NetworkSpec",
    "Structure",
    "decode_predictions",
    "feature_extractor",
    "get_model",
    "list_models",
    "preprocess_input",
    *constructors.__all__,
]
