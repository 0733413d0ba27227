"""ResNet-family networks with channel attention, with the `keras.applications` signature.

`list_models()` names every network; `get_model(name, **overrides)` builds any of them, with
any row of the table changed; the constructors (`ResNeSt50`, `SEResNeXt50`, `SKNet50`, ...)
build the papers' networks.
"""

from keras_attn.applications.imagenet_utils import decode_predictions, preprocess_input
from keras_attn.applications.registry import (
    CONSTRUCTORS,
    ResNeSt14,
    ResNeSt26,
    ResNeSt50,
    ResNeSt101,
    ResNeSt200,
    ResNeSt269,
    ResNeXt50,
    ResNeXt101,
    SENet154,
    SEResNet18,
    SEResNet34,
    SEResNet50,
    SEResNet101,
    SEResNet152,
    SEResNeXt50,
    SEResNeXt101,
    SKNet50,
    SKNet101,
    SKResNet18,
    SKResNet34,
    feature_extractor,
    get_model,
    list_models,
)
from keras_attn.applications.specs import NetworkSpec

__all__ = [
    "NetworkSpec",
    "decode_predictions",
    "feature_extractor",
    "get_model",
    "list_models",
    "preprocess_input",
    *(constructor.__name__ for constructor in CONSTRUCTORS),
]
