import tempfile

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


# Which families each format is checked on. The exports to other runtimes (ONNX, OpenVINO)
# run every family, as issue 33 accepts them: tf2onnx and OpenVINO's converter are where Keras'
# graphs are known to break (grouped convolutions, tensorflow-onnx#2099), and each family has
# its own grouping (ResNeXt's 8 wide groups, SENet's 64, SKNet's and ResNeSt's groups inside
# their attention) and pooling (BN-Inception's and SENet's ceil-mode pools).
RUNTIME_EXPORT_FAMILIES = sorted(RUNTIME_FAMILIES)
# The SavedModel and TFLite exports, TensorFlow's own, are checked on a set that holds every
# layer kind of the zoo once:
#   SE-ResNeXt-AA: grouped convolutions, SE, anti-aliased strides (average pools), the deep
#     stem and the average-pool shortcuts of the "d" networks (as SE-ResNeXt, ResNeXt, SENet's
#     grouped and SE blocks, SE-ResNet's and ResNet-RS's SE gates);
#   ResNeSt: split attention (a softmax over radix groups) and its zero-padded avd pool;
#   SKNet: selective kernels (two branches, a softmax across them);
#   ECA-ResNet: ECA's 1-D convolution across channels, the tiered stem;
#   CBAM-ResNet: channel then spatial attention, basic blocks, the padded stem max pool;
#   GC-ResNet: global context (a softmax over positions and a LayerNorm).
# Left out here, checked in ONNX and OpenVINO only: ResNet-RS (its stem pool is a strided
# convolution, an ordinary one), SENet (a ceil-mode stem pool: an asymmetric ZeroPadding before a
# max pool, as in BN-Inception), ResNeXt (CIFAR stem), SE-ResNet, SE-ResNeXt and ResNet (their
# layers are SE-ResNeXt-AA's, without some).
REPRESENTATIVE = ["CBAM-ResNet", "ECA-ResNet", "GC-ResNet", "ResNeSt", "SE-ResNeXt-AA", "SKNet"]
# The SavedModel also takes BN-Inception: its concatenated branches and Caffe's ceil-mode,
# padded pools are in no other family.
SAVED_MODEL_FAMILIES = sorted([*REPRESENTATIVE, "SE-Inception"])


def exported_once(tmp_path_factory, write, file_name):
    """`export_once(family)`: the family's small model, the `file_name` that `write(model, path)`
    exported it to, and its report; each family exported once for the module that asks."""
    exports = {}

    def export_once(family):
        if family not in exports:
            model = small_model(family)
            path = tmp_path_factory.mktemp(family) / file_name
            exports[family] = model, path, write(model, path)
        return exports[family]

    return export_once


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The system's temporary folder, redirected to an empty folder the test can look into."""
    folder = tmp_path / "system_tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def grouped_convolutions(model):
    """The `groups` of every grouped convolution of `model`, attention layers' included, sorted."""
    import keras

    return sorted(layer.groups for layer in model._flatten_layers()
                  if isinstance(layer, keras.layers.Conv2D) and layer.groups > 1)
