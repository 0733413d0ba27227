"""Every family at small size: training, saving, shapes, the keras.applications arguments."""

import re

import keras
import numpy as np
import pytest

from keras_attn import testing
from keras_attn.applications import feature_extractor, get_model

NARROW = {"widths": (8, 16, 32, 64), "depths": (1, 1, 1, 1)}
# Grouped convolutions need room for groups, and SE gates for a few hidden units: a gate of
# two ReLU units can start dead for every image, and then its weights rightly get no gradient.
WIDER = {"widths": (16, 32, 64, 128), "depths": (1, 1, 1, 1)}
GROUPED = dict(WIDER, cardinality=4)

# One narrow network per family and per layout the builder knows.
SMALL = {
    "resnet50d": dict(NARROW, stem_width=8),
    "seresnet18": WIDER,
    "legacy_seresnet50": WIDER,
    "seresnext26d_32x4d": dict(GROUPED, stem_width=8),
    "senet154": dict(GROUPED, stem_width=8, base_width=16),
    "resnext50_32x4d": GROUPED,
    "resnext29_8x64d": {"widths": (8, 16, 32), "depths": (1, 1, 1), "cardinality": 2},
    "skresnet18": NARROW,
    "skresnext50_32x4d": GROUPED,
    "resnest50d": dict(NARROW, stem_width=8),
    "resnest50d_4s2x40d": {"widths": (32, 32, 64, 64), "depths": (1, 1, 1, 1), "stem_width": 8},
    "resnest50_fast_1s1x64d": dict(NARROW, stem_width=8),
    "resnetrs50": dict(NARROW, stem_width=8),
    "seresnextaa101d_32x8d": dict(GROUPED, stem_width=8),
}


def _small(name, **kwargs):
    return get_model(name, **SMALL[name], classes=5, **kwargs)


def _size(name):
    return 32 if name.startswith("resnext29") else 64


def _other_size(name):
    # Anti-aliased strides need even maps (as timm's): multiples of 32 for those networks.
    size = _size(name)
    return (size + 32, size + 64) if "aa" in name else (size + 32, size + 8)


# These three also run under JAX and PyTorch (tests/backends): between them every layer the
# networks are made of (grouped convolution, SqueezeExcite, SelectiveKernel, SplitAttention,
# FusedBatchNormalization, PointwiseConv2D, anti-aliasing average pools, the D stem and
# average-pool shortcuts). The other rows are other arrangements of the same layers, which the
# TensorFlow run checks; each layer's own tests rerun there too.
_EVERY_BACKEND = ("seresnextaa101d_32x8d", "skresnext50_32x4d", "resnest50d")


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=pytest.mark.backends) if name in _EVERY_BACKEND else name
     for name in SMALL],
)
def test_family_trains_saves_and_takes_any_input_size(name, tmp_path):
    model = _small(name, input_shape=(None, None, 3))
    testing.perturb_batch_norm_statistics(model)
    size = _size(name)
    images = testing.random_images((4, size, size, 3))

    for height, width in ((size, size), _other_size(name)):
        probabilities = keras.ops.convert_to_numpy(
            model(testing.random_images((2, height, width, 3)), training=False)
        )
        assert probabilities.shape == (2, 5)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    testing.assert_keras_file_round_trip(model, images, str(tmp_path))
    testing.assert_fit_changes_every_weight(model, images, np.array([0, 1, 2, 3]))


@pytest.mark.parametrize("policy, atol", [("mixed_float16", 1e-2), ("mixed_bfloat16", 5e-2)])
def test_mixed_precision_network_trains_and_outputs_float32(policy, atol):
    reference = get_model("resnest50d_4s2x40d", input_shape=(64, 64, 3), classes=5,
                          **SMALL["resnest50d_4s2x40d"])
    keras.config.set_dtype_policy(policy)  # restored by the conftest fixture
    mixed = get_model("resnest50d_4s2x40d", input_shape=(64, 64, 3), classes=5,
                      **SMALL["resnest50d_4s2x40d"])
    mixed.set_weights(reference.get_weights())
    images = testing.random_images((4, 64, 64, 3))
    outputs = mixed(images, training=False)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"
    assert mixed.get_layer("stage1_block1_conv2").compute_dtype == policy.split("_")[1]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs),
        keras.ops.convert_to_numpy(reference(images, training=False)),
        atol=atol,
    )
    optimizer = keras.optimizers.SGD(0.1)
    if policy == "mixed_float16":
        # Keras' default loss scale (2**15) overflows float16 gradients here, and a step with
        # overflow is skipped by design; a smaller initial scale makes the first step count.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0**6)
    testing.assert_fit_changes_every_weight(
        mixed, images, np.array([0, 1, 2, 3]), optimizer=optimizer
    )


def test_default_input_shape_follows_keras_applications():
    assert get_model("resnest50d", **NARROW).input_shape == (None, 224, 224, 3)
    assert get_model("resnest101e", **NARROW).input_shape == (None, 256, 256, 3)
    assert get_model("resnest50d", include_top=False, **NARROW).input_shape == (None, None, None, 3)


@pytest.mark.parametrize(
    "pooling, expected_shape, last_layer",
    [(None, (None, 2, 2, 256), "stage4_block1_out"), ("avg", (None, 256), "avg_pool"),
     ("max", (None, 256), "max_pool")],
)
def test_include_top_false_with_every_pooling(pooling, expected_shape, last_layer):
    model = get_model("seresnet50", include_top=False, pooling=pooling, input_shape=(64, 64, 3),
                      **NARROW)
    assert model.output_shape == expected_shape
    assert model.layers[-1].name == last_layer


def test_input_tensor_and_logits():
    inputs = keras.Input((48, 48, 3))
    model = get_model("skresnet18", input_tensor=inputs, classes=3, classifier_activation=None,
                      name="tiny_sk", **NARROW)
    assert model.inputs[0] is inputs
    assert model.name == "tiny_sk"
    assert model.get_layer("predictions").get_config()["activation"] == "linear"
    logits = model.predict(testing.random_images((2, 48, 48, 3)), verbose=0)
    assert not np.allclose(logits.sum(axis=1), 1.0)


def test_weights_file_round_trip(tmp_path):
    source = get_model("resnest50d", input_shape=(64, 64, 3), classes=5, **NARROW)
    testing.perturb_batch_norm_statistics(source)
    path = str(tmp_path / "tiny.weights.h5")
    source.save_weights(path)
    loaded = get_model("resnest50d", weights=path, input_shape=(64, 64, 3), classes=5, **NARROW)
    images = testing.random_images((2, 64, 64, 3))
    np.testing.assert_array_equal(loaded.predict(images, verbose=0),
                                  source.predict(images, verbose=0))


def test_layer_names_are_deterministic():
    names = [layer.name for layer in get_model("resnest50d", **NARROW).layers]
    assert names == [layer.name for layer in get_model("resnest50d", **NARROW).layers]
    assert {"stem_conv1", "stem_bn3", "stage2_block1_down_pool", "stage2_block1_avd_pool",
            "stage2_block1_conv2", "stage4_block1_out", "predictions"} <= set(names)
    assert not any(re.search(r"_\d+$", name) for name in names), "auto-generated names"


def test_feature_extractor_returns_strides_4_to_32():
    model = get_model("seresnext26d_32x4d", include_top=False, input_shape=(None, None, 3),
                      **GROUPED)
    backbone = feature_extractor(model)
    assert sorted(backbone.output) == ["P2", "P3", "P4", "P5"]
    images = testing.random_images((1, 128, 96, 3))
    features = backbone.predict(images, verbose=0)
    for level, stage in zip(range(2, 6), range(1, 5)):
        assert features[f"P{level}"].shape[1:3] == (128 // 2**level, 96 // 2**level)
        stage_model = keras.Model(model.inputs, model.get_layer(f"stage{stage}_block1_out").output)
        np.testing.assert_allclose(features[f"P{level}"], stage_model.predict(images, verbose=0),
                                   atol=1e-6)


def test_feature_extractor_by_name_and_cifar_levels():
    backbone = feature_extractor("resnet50d", input_shape=(64, 64, 3), stem_width=8, **NARROW)
    assert {key: tuple(value.shape) for key, value in backbone.output.items()} == {
        "P2": (None, 16, 16, 32), "P3": (None, 8, 8, 64), "P4": (None, 4, 4, 128),
        "P5": (None, 2, 2, 256),
    }
    cifar = feature_extractor("resnext29_8x64d", widths=(8, 16, 32), depths=(1, 1, 1),
                              cardinality=2)
    assert sorted(cifar.output) == ["P0", "P1", "P2"]


@pytest.mark.parametrize("shape", [(33, 33, 3), (45, 45, 3), (67, 67, 3), (40, 640, 3)])
@pytest.mark.parametrize("name", ["resnet50d", "legacy_seresnet50"])
def test_feature_extractor_levels_hold_on_odd_sizes(name, shape):
    # Stride-2 layers give ceil(size / 2): 33 -> P2..P5 of 9, 5, 3, 2, where log2(33 / 3) and
    # log2(33 / 2) round a level low.
    extra = {} if name.startswith("legacy") else {"stem_width": 8}
    backbone = feature_extractor(name, input_shape=shape, **extra, **NARROW)
    assert sorted(backbone.output) == ["P2", "P3", "P4", "P5"]
    channels = [backbone.output[f"P{level}"].shape[-1] for level in range(2, 6)]
    assert channels == sorted(channels) and len(set(channels)) == 4  # one stage per level


def test_feature_extractor_rejects_foreign_models():
    inputs = keras.Input((32, 32, 3))
    foreign = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="carries no record of its feature maps"):
        feature_extractor(foreign)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (16, 16, 3)}, "height and width must be at least 32"),
        ({"input_shape": (64, 31, 3)}, "height and width must be at least 32"),
        ({"input_shape": (64, 64)}, "(height, width, channels)"),
        ({"input_shape": (64, 64, None)}, "a known number of channels >= 1"),
        ({"input_shape": (64, 64, 0)}, "a known number of channels >= 1"),
        ({"input_tensor": keras.Input((16, 16, 3))},
         "`input_tensor` shape (16, 16, 3) is too small"),
        ({"pooling": "mean", "include_top": False}, "pooling='mean'"),
        ({"classes": 0}, "classes=0"),
        ({"classifier_activation": "softmaxx"}, "classifier_activation='softmaxx'"),
        ({"weights": "a1_in1k"}, "no weights tagged 'a1_in1k'"),
        ({"weights": "missing.weights.h5"}, "not found"),
        ({"radix": 2}, "['radix']"),
        ({"model_name": "resnet50"}, "['model_name']"),
        ({"conv_args": {"radix": 0}}, "radix=0"),
        ({"cardinality": 3}, "cardinality=3"),
    ],
)
def test_bad_arguments_raise_a_named_value_error(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_model("resnest50d", **{**NARROW, **kwargs})


def test_anti_aliasing_puts_each_pool_where_timm_does():
    # timm.models.resnet with aa_layer=nn.AvgPool2d: a strided block's 3x3 convolution runs at
    # stride 1 and AvgPool2d(2) follows its ReLU; replace_stem_pool's convolution runs at
    # stride 1 and the pool comes before its BatchNorm (maxpool.0 conv, .1 pool, .2 bn); the
    # shortcut keeps its own pool.
    model = get_model("resnetrs50", aa_layer="avg", input_shape=(64, 64, 3), classes=5,
                      stem_width=8, **NARROW)
    names = [layer.name for layer in model.layers]
    start = names.index("stem_pool_conv")
    assert names[start : start + 4] == [
        "stem_pool_conv", "stem_pool_aa", "stem_pool_bn", "stem_pool_relu"]
    assert model.get_layer("stem_pool_conv").strides == (1, 1)
    timm = model.structure.timm_modules
    assert (timm["stem_pool_conv"], timm["stem_pool_bn"]) == ("maxpool.0", "maxpool.2")
    block = model.structure.blocks["stage2_block1"]
    assert block[block.index("stage2_block1_relu2") + 1] == "stage2_block1_aa"
    assert model.get_layer("stage2_block1_conv2").strides == (1, 1)
    assert "stage2_block1_down_pool" in block and "stage1_block1_aa" not in names
    for name in ("stem_pool_aa", "stage2_block1_aa"):
        pool = model.get_layer(name)
        assert isinstance(pool, keras.layers.AveragePooling2D)
        assert (pool.pool_size, pool.strides, pool.padding) == ((2, 2), (2, 2), "valid")
    # Without the convolution, the anti-aliasing pool is the stem pool itself (AvgPool2d(2)).
    plain = get_model("resnetaa50d", input_shape=(64, 64, 3), stem_width=8, **NARROW)
    assert isinstance(plain.get_layer("stem_pool"), keras.layers.AveragePooling2D)
    assert "stem_pool_pad" not in [layer.name for layer in plain.layers]
    basic = get_model("resnetaa50d", block="basic", input_shape=(64, 64, 3), stem_width=8,
                      **NARROW)
    block = basic.structure.blocks["stage3_block1"]
    assert block[block.index("stage3_block1_relu1") + 1] == "stage3_block1_aa"


def test_anti_aliasing_names_a_map_it_cannot_halve():
    # 200 -> 100 (stem) -> 50 (pool) -> 50 -> 25, odd where stage 3 halves it.
    with pytest.raises(ValueError, match=re.escape(
            "stage3_block1 halves a 25x25 map: with aa_layer='avg' every map a block halves "
            "must have an even height and width")):
        get_model("resnetaa50d", input_shape=(200, 200, 3), stem_width=8, **NARROW)
    get_model("resnetaa50d", input_shape=(65, 65, 3), stem_width=8, **NARROW)  # 33 -> 16


def test_cardinality_that_does_not_divide_the_width_is_named():
    with pytest.raises(ValueError, match=re.escape("`cardinality`=4 does not divide the 2 input")):
        get_model("senet154", **GROUPED)
    # 8 planes of base width 4 leave 8 * 4 // 64 = 0 channels per group: named, not Keras'
    # "filters=0" from deep inside the builder.
    with pytest.raises(ValueError, match=re.escape(
            "stage1_block1's grouped 3x3 convolution gets no channels: planes=8 * base_width=4 "
            "// 64 is 0 channels per group")):
        get_model("skresnext50_32x4d", widths=(8, 16, 32, 64), depths=(1, 1, 1, 1))


def test_cifar_stem_takes_32x32_but_not_less():
    get_model("resnext29_8x64d", input_shape=(32, 32, 3), **SMALL["resnext29_8x64d"])
    with pytest.raises(ValueError, match="must be at least 4"):
        get_model("resnext29_8x64d", input_shape=(2, 2, 3), **SMALL["resnext29_8x64d"])


def test_channels_first_is_refused_by_name():
    keras.config.set_image_data_format("channels_first")
    with pytest.raises(ValueError, match="image_data_format\\(\\)='channels_first'"):
        get_model("resnest50d", **NARROW)
