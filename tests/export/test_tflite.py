"""TFLite export: builtin ops only, verified in LiteRT's interpreter, written whole or not
at all."""

import os
import re

import numpy as np
import pytest

from keras_attn import export
from keras_attn.applications import get_model, imagenet_utils
from keras_attn.export import serving, tflite_export
from tests.export.conftest import FAMILIES, REPRESENTATIVE, small_model

# Builtin operators are named in capitals (CONV_2D); Flex ops ("FlexConv2D") and custom ops
# are not.
_BUILTIN = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _calibration(seed=1, count=8):
    return np.random.default_rng(seed).uniform(0, 255, (count, 64, 64, 3)).astype("float32")


@pytest.mark.parametrize("family", REPRESENTATIVE)
def test_every_layer_kind_converts_to_builtins_within_1e4_of_keras(family, tmp_path):
    family_model = small_model(family)
    path = tmp_path / "model.tflite"
    report = export.tflite(family_model, path)
    assert report.max_abs_error <= 1e-4 and report.top1_agreement == 1.0
    assert os.listdir(tmp_path) == ["model.tflite"]
    assert report.size_bytes == os.path.getsize(path)
    operators = tflite_export.operators(str(path))
    assert "CONV_2D" in operators and all(_BUILTIN.match(op) for op in operators), operators
    # The file runs on its own, on any batch size.
    config = serving.serving_config(family_model)
    images = np.random.default_rng(2).uniform(0, 255, (3, config.size, config.size, 3))
    np.testing.assert_allclose(export.run_tflite(str(path), images),
                               serving.probabilities_fn(family_model, config)(images), atol=1e-4)


@pytest.fixture(scope="module")
def float32_file(tmp_path_factory):
    """SE-ResNeXt's float32 file, exported once for the tests that compare with it."""
    path = tmp_path_factory.mktemp("float32") / "float32.tflite"
    return path, export.tflite(small_model("SE-ResNeXt"), path)


@pytest.mark.parametrize("quantization", ["float16", "dynamic", "int8"])
def test_quantized_files_convert_and_run_with_builtins_only(quantization, float32_file,
                                                            tmp_path):
    model = small_model("SE-ResNeXt")
    float_size = float32_file[1].size_bytes
    path = tmp_path / f"{quantization}.tflite"
    report = export.tflite(model, path, quantization, representative_data=_calibration())
    operators = tflite_export.operators(str(path))
    assert all(_BUILTIN.match(op) for op in operators), operators
    assert report.quantization == quantization and report.images == 4
    # float16 halves the weights; int8 weights are a quarter of float32's.
    assert report.size_bytes < float_size * (0.6 if quantization == "float16" else 0.35)
    if quantization == "int8":
        assert {"QUANTIZE", "DEQUANTIZE"} <= set(operators)
        details = tflite_export.interpreter(str(path)).get_tensor_details()
        assert any(d["dtype"] == np.int8 and len(d["shape"]) == 4 for d in details)


def test_logits_convert_to_the_classifiers_scores_before_softmax():
    model = get_model("seresnet50", classifier_activation=None, classes=10,
                      **FAMILIES["SE-ResNet"][1])
    config = serving.serving_config(model)
    images = _calibration(seed=3, count=2)
    logits = np.asarray(serving.probabilities_fn(model, config, logits=True)(images))
    expected = model.predict(imagenet_utils.preprocess_input(images), verbose=0)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    content = tflite_export.convert(model, config, logits=True)
    np.testing.assert_allclose(export.run_tflite(content, images), logits, atol=1e-4)
    # Only the batch may differ from the file's input: anything else is named, not left to
    # LiteRT's "failed to prepare".
    for wrong in (images[0], images[:, :16]):
        with pytest.raises(ValueError, match=r"`images` must have shape \(batch, 64, 64, 3\) "
                                             rf"for this file; received an array of shape "
                                             rf"{re.escape(str(wrong.shape))}"):
            export.run_tflite(content, wrong)
    with pytest.raises(ValueError, match="`logits=True` needs a model that returns logits; "
                                         "'seresnet50' ends in an activation"):
        serving.probabilities_fn(small_model("SE-ResNet"), config, logits=True)


def test_int8_needs_representative_data_of_the_right_shape(tmp_path):
    model = small_model("SE-ResNeXt")
    with pytest.raises(ValueError, match="quantization='int8' needs `representative_data`"):
        export.tflite(model, tmp_path / "a.tflite", "int8")
    with pytest.raises(ValueError, match=r"received a batch of shape \(2, 32, 32, 3\)"):
        export.tflite(model, tmp_path / "a.tflite", "int8",
                      representative_data=np.zeros((2, 32, 32, 3), "float32"))
    with pytest.raises(ValueError, match="`quantization` must be one of"):
        export.tflite(model, tmp_path / "a.tflite", "int4")
    # Without one image to calibrate on the converter would write float32 and call it int8.
    size = model.input_shape[1]
    used_up = iter([np.zeros((1, size, size, 3), "float32")])
    next(used_up)
    for empty in (np.zeros((0, size, size, 3), "float32"), used_up):
        with pytest.raises(ValueError, match=r"`representative_data` holds no image"):
            export.tflite(model, tmp_path / "a.tflite", "int8", representative_data=empty)
    assert os.listdir(tmp_path) == []


def test_a_failed_verification_keeps_the_previous_file(float32_file, tmp_path, monkeypatch):
    model = small_model("SE-ResNeXt")
    path = tmp_path / "model.tflite"
    path.write_bytes(b"previous")
    # The verification is under test: the conversion returns the file converted before.
    content = float32_file[0].read_bytes()
    monkeypatch.setattr(tflite_export, "convert", lambda *args, **kwargs: content)
    monkeypatch.setattr(tflite_export, "run_tflite",
                        lambda path, images: np.zeros((len(images), 10), "float32"))
    with pytest.raises(export.ExportVerificationError, match=r"max abs error .* > 0\.0001"):
        export.tflite(model, path)
    assert os.listdir(tmp_path) == ["model.tflite"] and path.read_bytes() == b"previous"


@pytest.fixture(scope="module")
def digits_network():
    """seresnet20_cifar after 30 steps on the digits (about half right): a network whose
    probabilities depend on the image, unlike a random one's, and real images to check it on."""
    import keras

    from keras_attn.training import data as training_data

    keras.utils.set_random_seed(0)
    digits = training_data.digits()

    def pixels(split):
        return np.stack([image for image, _ in split.dataset.as_numpy_iterator()]).astype(
            "float32")

    train, held_out = pixels(digits.train), pixels(digits.val)
    labels = np.array([label for _, label in digits.train.dataset.as_numpy_iterator()])
    model = get_model("seresnet20_cifar", classes=10, input_shape=(32, 32, 3))
    config = serving.serving_config(model)
    mean, std = np.array(config.mean) * 255, np.array(config.std) * 255
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit((train - mean) / std, labels, batch_size=32, steps_per_epoch=30, epochs=1,
              verbose=0)
    held_out = held_out[:16]
    top1 = np.argmax(model.predict((held_out - mean) / std, verbose=0), -1)
    assert len(set(top1)) >= 4, f"the network did not learn: its top-1 classes are {top1}"
    return model, train[:64], held_out


def test_a_quantized_file_unlike_the_model_is_refused_by_default(digits_network, tmp_path,
                                                                 monkeypatch):
    model, calibration, held_out = digits_network
    path = tmp_path / "int8.tflite"
    # Calibrated on the data: within the default limit.
    report = export.tflite(model, path, "int8", representative_data=calibration,
                           verify_images=held_out)
    assert report.max_abs_error <= 0.1  # the default limit docs/export.md states
    # Calibrated on black images: the activation ranges are wrong, the file is another model.
    broken = tmp_path / "broken.tflite"
    black = np.zeros_like(calibration)
    convert, black_content = tflite_export.convert, []

    def convert_and_keep(*args, **kwargs):
        black_content.append(convert(*args, **kwargs))
        return black_content[-1]

    monkeypatch.setattr(tflite_export, "convert", convert_and_keep)
    with pytest.raises(export.ExportVerificationError,
                       match=r"max abs error 0\.\d+ > 0\.1 \(16 images\)\. Nothing was written"):
        export.tflite(model, broken, "int8", representative_data=black, verify_images=held_out)
    assert os.listdir(tmp_path) == ["int8.tflite"]
    # The caller may loosen the limit, and then gets what the file is: the same conversion
    # (of the same model on the same black images) as the one refused above, not redone.
    (content,) = black_content
    monkeypatch.setattr(tflite_export, "convert", lambda *args, **kwargs: content)
    loose = export.tflite(model, broken, "int8", representative_data=black,
                          verify_images=held_out, max_abs_error=None)
    assert loose.max_abs_error > 0.1 and loose.top1_agreement < 1.0
    assert sorted(os.listdir(tmp_path)) == ["broken.tflite", "int8.tflite"]


def test_representative_data_may_follow_tflites_own_convention(tmp_path):
    # TFLite's converter takes a function that returns a generator of [input batch] lists.
    model = small_model("SE-ResNeXt")
    config = serving.serving_config(model)
    pixels = _calibration(count=2)  # the same two images either way: equal files

    def representative_dataset():
        for image in pixels:
            yield [image[None]]

    images = _calibration(seed=5, count=3)
    outputs = [export.run_tflite(tflite_export.convert(model, config, "int8", data), images)
               for data in (pixels, representative_dataset)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
