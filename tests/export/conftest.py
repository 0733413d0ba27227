import pytest

from keras_attn.applications import get_model

_SMALL = {"widths": (16, 32, 64, 128), "depths": (1, 1, 1, 1), "input_shape": (64, 64, 3)}

# A small network of every family: the attention layers and grouped convolutions at a size
# that exports in seconds.
FAMILIES = {
    "ResNeSt": ("resnest26d", _SMALL),
    "SE-ResNet": ("seresnet50", _SMALL),
    "SE-ResNeXt": ("seresnext26d_32x4d", _SMALL),
    "SENet": ("legacy_senet154", {**_SMALL, "widths": (32, 32, 32, 32)}),
    "SKNet": ("skresnext50_32x4d", _SMALL),
    "ResNeXt": ("resnext29_8x64d", {"widths": (32, 64, 128), "depths": (1, 1, 1)}),
    # The Inception builders have no width knob: BN-Inception (12M parameters) at 96x96.
    "SE-Inception": ("se_bn_inception", {"input_shape": (96, 96, 3)}),
    # The stem pool as a strided convolution and SE gates a quarter wide.
    "ResNet-RS": ("resnetrs50", {**_SMALL, "stem_width": 8}),
    # Anti-aliasing: strides as average pools.
    "SE-ResNeXt-AA": ("seresnextaa101d_32x8d", {**_SMALL, "cardinality": 4, "stem_width": 8}),
    # The gates after SE: a 1-D convolution across channels; channel then spatial attention;
    # a softmax over positions and a LayerNorm.
    "ECA-ResNet": ("ecaresnet26t", {**_SMALL, "stem_width": 8}),
    "CBAM-ResNet": ("cbamresnet18", _SMALL),
    "GC-ResNet": ("gcresnet50", _SMALL),
}

# The exports to other runtimes (ONNX, OpenVINO) are also checked on the plain network the
# attention is added to.
RUNTIME_FAMILIES = {**FAMILIES, "ResNet": ("resnet50", _SMALL)}

_built = {}


def small_model(family, classes=10):
    """The family's small network with random weights and moving statistics, built once."""
    key = (family, classes)
    if key not in _built:
        from keras_attn import testing

        name, overrides = RUNTIME_FAMILIES[family]
        model = get_model(name, classes=classes, **overrides)
        testing.perturb_batch_norm_statistics(model)
        _built[key] = model
    return _built[key]


@pytest.fixture(params=sorted(FAMILIES))
def family_model(request):
    return small_model(request.param)


@pytest.fixture(params=[
    # BN-Inception's exports take over 20 s each.
    pytest.param(family, marks=pytest.mark.slow) if family == "SE-Inception" else family
    for family in sorted(RUNTIME_FAMILIES)
])
def runtime_family(request):
    return request.param


def grouped_convolutions(model):
    """The `groups` of every grouped convolution of `model`, attention layers' included, sorted."""
    import keras

    return sorted(layer.groups for layer in model._flatten_layers()
                  if isinstance(layer, keras.layers.Conv2D) and layer.groups > 1)
