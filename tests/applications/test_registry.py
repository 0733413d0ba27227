"""Public constructors, preprocessing and decoding."""

import inspect
import re

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn import applications
from keras_attn import weights as published
from keras_attn.applications import constructors, get_model, imagenet_utils, registry, specs

EXPECTED_CONSTRUCTORS = {
    "SEResNet18": "seresnet18", "SEResNet34": "seresnet34", "SEResNet50": "seresnet50",
    "SEResNet101": "seresnet101", "SEResNet152": "seresnet152",
    "SEResNeXt50": "seresnext50_32x4d", "SEResNeXt101": "seresnext101_32x4d",
    "SENet154": "senet154", "ResNeXt50": "resnext50_32x4d", "ResNeXt101": "resnext101_32x4d",
    "SKResNet18": "skresnet18", "SKResNet34": "skresnet34", "SKNet50": "skresnext50_32x4d",
    "SKNet101": "sknet101", "ResNeSt14": "resnest14d", "ResNeSt26": "resnest26d",
    "ResNeSt50": "resnest50d", "ResNeSt101": "resnest101e", "ResNeSt200": "resnest200e",
    "ResNeSt269": "resnest269e", "SEInceptionV3": "se_inception_v3",
    "SEInceptionResNetV2": "se_inception_resnet_v2", "SEBNInception": "se_bn_inception",
    "SEResNet152D": "seresnet152d", "SEResNeXt26T": "seresnext26t_32x4d",
    "SEResNeXt101D": "seresnext101d_32x8d", "SEResNeXtAA101D": "seresnextaa101d_32x8d",
    "SEResNeXtAA201D": "seresnextaa201d_32x8d", "ResNetAA50D": "resnetaa50d",
    "ResNetAA101D": "resnetaa101d", "ResNetRS50": "resnetrs50", "ResNetRS101": "resnetrs101",
    "ResNetRS152": "resnetrs152", "ResNetRS200": "resnetrs200", "ResNetRS270": "resnetrs270",
    "ResNetRS350": "resnetrs350", "ResNetRS420": "resnetrs420",
    "ECAResNet26T": "ecaresnet26t", "ECAResNet50D": "ecaresnet50d", "ECAResNet50T": "ecaresnet50t",
    "ECAResNetLight": "ecaresnetlight", "ECAResNet101D": "ecaresnet101d",
    "ECAResNet269D": "ecaresnet269d", "CBAMResNet18": "cbamresnet18",
    "CBAMResNet50": "cbamresnet50", "GCResNet50": "gcresnet50",
}
KERAS_APPLICATION_ARGS = [
    "include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
    "classifier_activation", "name",
]


def test_constructors_are_public_and_have_the_keras_applications_signature():
    assert {f.__name__: f.registry_name for f in constructors.CONSTRUCTORS} == EXPECTED_CONSTRUCTORS
    for function in constructors.CONSTRUCTORS:
        assert getattr(applications, function.__name__) is function
        assert function.__name__ in applications.__all__
        parameters = inspect.signature(function).parameters
        assert list(parameters) == KERAS_APPLICATION_ARGS
        assert parameters["classes"].default == 1000
        has_weights = function.registry_name in published.names_with_weights()
        assert parameters["weights"].default == ("imagenet" if has_weights else None)
        assert parameters["classifier_activation"].default == "softmax"
        paper = specs.PAPERS[specs.SPECS[function.registry_name].paper]
        assert paper.title in function.__doc__ and "Args:" in function.__doc__


@pytest.mark.parametrize("function", constructors.CONSTRUCTORS, ids=lambda f: f.__name__)
def test_constructor_builds_its_row_with_every_argument(function, monkeypatch):
    calls = []
    monkeypatch.setattr(registry, "get_model", lambda *args, **kwargs: calls.append((args, kwargs)))
    inputs = object()
    function(include_top=False, weights=None, input_tensor=inputs, input_shape=(96, 96, 3),
             pooling="max", classes=7, classifier_activation=None, name="mine")
    assert calls == [((function.registry_name,), {
        "weights": None, "include_top": False, "input_tensor": inputs,
        "input_shape": (96, 96, 3), "pooling": "max", "classes": 7,
        "classifier_activation": None, "name": "mine",
    })]


@pytest.mark.slow
def test_quickstart_network_predicts_imagenet_classes():
    model = keras_attn.applications.ResNeSt50(weights=None)
    assert model.name == "resnest50d"
    assert model.input_shape == (None, 224, 224, 3)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3))
    predictions = model.predict(applications.preprocess_input(pixels, model="resnest50d"),
                                verbose=0)
    decoded = applications.decode_predictions(predictions, top=5)
    assert [len(row) for row in decoded] == [5, 5]
    for row, probabilities in zip(decoded, predictions):
        assert [score for _, _, score in row] == sorted(probabilities, reverse=True)[:5]


def test_preprocess_input_normalises_with_the_models_mean_and_std():
    pixels = np.array([[[[0.0, 127.5, 255.0]]]])
    expected = (pixels / 255.0 - np.array(specs.IMAGENET_MEAN)) / np.array(specs.IMAGENET_STD)
    for model in (None, "resnest50d", specs.get_spec("seresnet50")):
        result = applications.preprocess_input(pixels, model=model)
        assert isinstance(result, np.ndarray) and result.dtype == np.float32
        np.testing.assert_allclose(result, expected, rtol=1e-6)
    tensor = applications.preprocess_input(keras.ops.convert_to_tensor(pixels))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor), expected, rtol=1e-6)
    channels_first = applications.preprocess_input(
        pixels.transpose(0, 3, 1, 2), data_format="channels_first"
    )
    np.testing.assert_allclose(channels_first, expected.transpose(0, 3, 1, 2), rtol=1e-6)
    shifted = specs.get_spec("resnet50").replace(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    np.testing.assert_allclose(
        applications.preprocess_input(pixels, model=shifted), [[[[-1.0, 0.0, 1.0]]]], atol=1e-6
    )
    with pytest.raises(ValueError, match="data_format='nchw'"):
        applications.preprocess_input(pixels, data_format="nchw")
    for gray in (np.zeros((2, 4, 4, 1)), keras.ops.zeros((2, 4, 4, 1))):
        with pytest.raises(ValueError, match=r"RGB images, 3 channels on the last axis "
                                             r"\(channels_last\); received an array of shape "
                                             r"\(2, 4, 4, 1\)"):
            applications.preprocess_input(gray)
    with pytest.raises(ValueError, match="third-last axis"):
        applications.preprocess_input(pixels, data_format="channels_first")


def test_imagenet_class_index_ships_with_the_package():
    classes = imagenet_utils.imagenet_classes()
    assert len(classes) == 1000 and len({wnid for wnid, _ in classes}) == 1000
    assert classes[0] == ("n01440764", "tench")
    assert classes[207] == ("n02099601", "golden_retriever")
    assert classes[999] == ("n15075141", "toilet_tissue")


def test_decode_predictions_returns_the_best_classes_first():
    preds = np.zeros((2, 1000), "float32")
    preds[0, [207, 1, 999]] = [0.5, 0.3, 0.2]
    preds[1, 0] = 1.0
    decoded = applications.decode_predictions(preds, top=3)
    assert decoded[0] == [
        ("n02099601", "golden_retriever", 0.5), ("n01443537", "goldfish", pytest.approx(0.3)),
        ("n15075141", "toilet_tissue", pytest.approx(0.2)),
    ]
    assert decoded[1][0] == ("n01440764", "tench", 1.0)
    with pytest.raises(ValueError, match=r"shape \(2, 10\)"):
        applications.decode_predictions(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="top=0"):
        applications.decode_predictions(preds, top=0)
    assert applications.decode_predictions(preds, top=np.int64(2)) == [
        row[:2] for row in decoded]


def test_decode_predictions_names_what_it_cannot_decode():
    # ImageNet-12k classifiers (timm's in12k tags, 11821 classes) have no class index here.
    with pytest.raises(ValueError, match=re.escape(
            "received an array of shape (2, 11821). 11821 classes are those of ImageNet-12k "
            "(the published tags resnetaa101d.sw_in12k, resnetaa50d.sw_in12k, "
            "resnetaa50d.d_in12k, seresnextaa101d_32x8d.sw_in12k, "
            "seresnextaa201d_32x8d.sw_in12k), which it cannot decode.")):
        applications.decode_predictions(np.zeros((2, 11821)))
    preds = np.zeros((2, 1000))
    with pytest.raises(ValueError, match=re.escape(
            "the seresnextaa101d_32x8d weights 'sw_in12k' classify 11821 (ImageNet-12k), which "
            "it cannot decode")):
        applications.decode_predictions(preds, model="seresnextaa101d_32x8d", weights="sw_in12k")
    # Its ImageNet-1k fine-tuned tags decode.
    decoded = applications.decode_predictions(preds, top=1, model="seresnextaa101d_32x8d",
                                              weights="imagenet")
    assert [len(row) for row in decoded] == [1, 1]
    with pytest.raises(ValueError, match="`weights` needs `model`"):
        applications.decode_predictions(preds, weights="sw_in12k")


def test_published_classifier_sets_the_class_count():
    # The ImageNet-12k tag builds its 11821-way classifier unless told otherwise, and says so
    # when told otherwise; its include_top=False backbone takes any head.
    with pytest.raises(ValueError, match=re.escape(
            "The resnetaa50d weights 'sw_in12k' classify 11821 classes (ImageNet-12k); "
            "received classes=1000 with include_top=True")):
        applications.ResNetAA50D(weights="sw_in12k")
    with pytest.raises(ValueError, match=re.escape(
            "The resnetrs50 weights 'tf_in1k' classify 1000 classes (ImageNet-1k); received "
            "classes=10")):
        get_model("resnetrs50", weights="imagenet", classes=10)
