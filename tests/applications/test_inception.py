"""SE-Inception: keras.applications exactly with the gates off; trains, saves, sizes with them."""

import re

import keras
import numpy as np
import pytest

from keras_attn import testing
from keras_attn.applications import (
    SEBNInception,
    SEInceptionResNetV2,
    SEInceptionV3,
    feature_extractor,
    get_model,
)

KERAS_TWINS = {
    "se_inception_v3": (keras.applications.InceptionV3, 23_851_784),
    "se_inception_resnet_v2": (keras.applications.InceptionResNetV2, 55_873_736),
}
MIN_SIZES = {"se_inception_v3": 75, "se_inception_resnet_v2": 75, "se_bn_inception": 32}
# A larger, non-square input each network takes (BN-Inception needs even maps: see below).
OTHER_SIZES = {"se_inception_v3": (120, 96), "se_inception_resnet_v2": (120, 96),
               "se_bn_inception": (100, 64)}


@pytest.mark.slow
@pytest.mark.parametrize("name", KERAS_TWINS)
def test_gate_off_is_exactly_the_keras_application(name):
    application, params = KERAS_TWINS[name]
    reference = application(weights=None)
    ours = get_model(name, gate=None)
    assert reference.count_params() == ours.count_params() == params
    testing.perturb_batch_norm_statistics(reference)
    ours.set_weights(reference.get_weights())
    images = testing.random_images((2, 299, 299, 3))
    # Called eagerly: predict's tracing of these networks takes several times their run.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(images, training=False)),
                               keras.ops.convert_to_numpy(reference(images, training=False)),
                               rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MIN_SIZES))
def test_se_inception_trains_saves_and_takes_any_size_from_its_minimum(name, tmp_path):
    smallest = MIN_SIZES[name]
    model = get_model(name, input_shape=(None, None, 3), classes=3)
    testing.perturb_batch_norm_statistics(model)
    gates = [layer.name for layer in model.layers if layer.name.endswith("_se")]
    assert len(gates) == {"se_inception_v3": 11, "se_inception_resnet_v2": 40,
                          "se_bn_inception": 10}[name]
    for height, width in ((smallest, smallest), OTHER_SIZES[name]):
        outputs = model(testing.random_images((1, height, width, 3)), training=False)
        assert tuple(outputs.shape) == (1, 3)
    images = testing.random_images((2, smallest, smallest, 3))
    testing.assert_keras_file_round_trip(model, images, str(tmp_path))
    # One step, eagerly: compiling Inception-ResNet-v2's train step takes several times it.
    testing.assert_fit_changes_every_weight(model, images, np.array([0, 2]), run_eagerly=True)


@pytest.mark.slow
@pytest.mark.parametrize("constructor", [SEInceptionV3, SEInceptionResNetV2, SEBNInception])
def test_include_top_false_with_every_pooling_and_its_feature_maps(constructor):
    channels = {SEInceptionV3: 2048, SEInceptionResNetV2: 1536, SEBNInception: 1024}[constructor]
    features = constructor(include_top=False)
    assert features.output_shape == (None, None, None, channels)
    # Its stride 8, 16 and 32 maps: the last module of each size, with its gate.
    size, sides, layers = {
        SEInceptionV3: (299, (35, 17, 8), ("mixed2_se", "mixed7_se", "mixed10_se")),
        SEInceptionResNetV2: (299, (35, 17, 8), ("block35_10_ac", "block17_20_ac",
                                                  "conv_7b_ac")),
        SEBNInception: (224, (28, 14, 7), ("inception_3b_se", "inception_4d_se",
                                           "inception_5b_se")),
    }[constructor]
    assert [f.layer for f in features.structure.features] == list(layers)
    pyramid = feature_extractor(features)(testing.random_images((1, size, size, 3)))
    assert {level: tuple(m.shape[1:3]) for level, m in pyramid.items()} == {
        f"P{level}": (side, side) for level, side in zip((3, 4, 5), sides)}
    assert pyramid["P5"].shape[-1] == channels
    for pooling, layer in (("avg", "avg_pool"), ("max", "max_pool")):
        pooled = constructor(include_top=False, pooling=pooling, input_shape=(160, 160, 3))
        assert pooled.output_shape == (None, channels)
        assert pooled.layers[-1].name == layer


@pytest.mark.parametrize("name", sorted(MIN_SIZES))
def test_inputs_below_the_minimum_are_refused_by_name(name):
    smallest = MIN_SIZES[name]
    with pytest.raises(ValueError, match=re.escape(f"must be at least {smallest}")):
        get_model(name, input_shape=(smallest - 1, smallest + 10, 3))


def test_bn_inception_names_the_sizes_its_strided_modules_take():
    with pytest.raises(ValueError, match=re.escape("cannot take inputs of size 77") + ".*"
                       + re.escape("The nearest sizes that work are 70 and 95")):
        get_model("se_bn_inception", input_shape=(77, 96, 3))


def test_default_input_sizes_and_gate_argument():
    assert get_model("se_bn_inception").input_shape == (None, 224, 224, 3)
    with pytest.raises(ValueError, match="gate='nonlocal'"):
        get_model("se_bn_inception", gate="nonlocal")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['radix'\]"):
        get_model("se_inception_v3", radix=2)
