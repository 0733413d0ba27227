"""optimize_for_inference: an equal model with its BatchNorms folded away, for every family."""

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn import inspect, testing
from keras_attn.applications import get_model
from keras_attn.layers import PointwiseConv2D

WIDER = {"widths": (16, 32, 64, 128), "depths": (1, 1, 1, 1)}
GROUPED = dict(WIDER, cardinality=4)
# One small network of every family and of every block layout the builder knows.
NETWORKS = {
    "resnet50d": dict(WIDER, stem_width=8),
    "seresnet18": WIDER,
    "legacy_seresnet50": WIDER,
    "seresnext26d_32x4d": dict(GROUPED, stem_width=8),
    "senet154": dict(GROUPED, stem_width=8, base_width=16),
    "resnext50_32x4d": GROUPED,
    "skresnet18": WIDER,
    "skresnext50_32x4d": GROUPED,
    "resnest50d": dict(WIDER, stem_width=8),
    "resnest50d_4s2x40d": {"widths": (32, 32, 64, 64), "depths": (1, 1, 1, 1), "stem_width": 8},
    "resnest50_fast_1s1x64d": dict(WIDER, stem_width=8),
}


def _batch_norms(model):
    return [layer for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)]


def _assert_equal_and_folded(model, size, atol=1e-5):
    testing.perturb_batch_norm_statistics(model)
    images = testing.random_images((3, size, size, 3))
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    optimized = keras_attn.optimize_for_inference(model)
    actual = keras.ops.convert_to_numpy(optimized(images, training=False))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)
    assert _batch_norms(model) and not _batch_norms(optimized)
    assert len(optimized.optimization.folded_batch_norms) == len(_batch_norms(model))
    # The original is untouched: same weights, and its layers are called in no other model.
    for before, after in zip(weights, model.weights):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(after))
    assert all(len(layer._inbound_nodes) == 1 for layer in model.layers[1:])
    return optimized


@pytest.mark.parametrize("name", NETWORKS)
def test_every_family_optimizes_to_an_equal_model(name):
    model = get_model(name, **NETWORKS[name], input_shape=(64, 64, 3), classes=7,
                      classifier_activation=None)
    optimized = _assert_equal_and_folded(model, 64)
    # Where it was measured to pay, every 1x1 convolution (groups 1) with an output of at most
    # 7x7 pixels is a matrix product, and no other: at 64x64, those of the last two stages.
    small_maps = {layer.name for layer in model.layers
                  if type(layer) is keras.layers.Conv2D and layer.kernel_size == (1, 1)
                  and layer.output.shape[1] * layer.output.shape[2] <= 49}
    products = {layer.name for layer in optimized.layers if isinstance(layer, PointwiseConv2D)}
    assert products == set(optimized.optimization.matrix_products)
    if keras.backend.backend() == "tensorflow":
        assert products and products == small_maps
    else:
        assert products == set()


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("se_inception_v3", 75), ("se_inception_resnet_v2", 75),
                                        ("se_bn_inception", 64)])
def test_se_inception_optimizes_to_an_equal_model(name, size):
    model = get_model(name, input_shape=(size, size, 3), classes=7, classifier_activation=None)
    _assert_equal_and_folded(model, size)


def test_a_backbone_nested_in_a_fine_tuning_model_is_optimized_too():
    backbone = get_model("seresnext26d_32x4d", **NETWORKS["seresnext26d_32x4d"],
                         include_top=False, input_shape=(64, 64, 3))
    inputs = keras.Input((64, 64, 3))
    features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(features))
    optimized = _assert_equal_and_folded(model, 64)
    assert all(name.startswith(f"{backbone.name}/")
               for name in optimized.optimization.folded_batch_norms)


def test_attention_of_the_original_is_still_readable():
    model = get_model("skresnet18", **NETWORKS["skresnet18"], input_shape=(64, 64, 3))
    keras_attn.optimize_for_inference(model)
    weights = inspect.attention_model(model).predict(testing.random_images((2, 64, 64, 3)),
                                                     verbose=0)
    assert weights["stage1_block1_conv1"].shape == (2, 2, 16)


def test_matrix_products_can_be_turned_off_and_bad_values_are_named():
    model = get_model("resnet50d", **NETWORKS["resnet50d"], input_shape=(64, 64, 3))
    optimized = keras_attn.optimize_for_inference(model, pointwise_matmul_max_pixels=0)
    assert not any(isinstance(layer, PointwiseConv2D) for layer in optimized.layers)
    assert optimized.optimization.matrix_products == ()
    for bad in (-1, 2.5, True, "49"):
        with pytest.raises(ValueError, match=rf"pointwise_matmul_max_pixels={bad!r}"):
            keras_attn.optimize_for_inference(model, pointwise_matmul_max_pixels=bad)


def test_a_model_that_is_not_functional_is_refused():
    class Subclassed(keras.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(ValueError, match="functional keras.Model.*received Subclassed"):
        keras_attn.optimize_for_inference(Subclassed())


def test_verbose_says_what_it_changed(capsys):
    model = get_model("resnest50d", **NETWORKS["resnest50d"], input_shape=(64, 64, 3))
    optimized = keras_attn.optimize_for_inference(model, verbose=True)
    said = capsys.readouterr().out
    assert said.startswith("optimize_for_inference('resnest50d'): ")
    assert f"{len(optimized.optimization.folded_batch_norms)} BatchNorms folded" in said
    assert "4 inside attention layers" in said
