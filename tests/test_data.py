"""timm's evaluation transform: decode, resize the shorter side, center-crop, normalise."""

import numpy as np
import pytest
import tensorflow as tf

from keras_attn import data
from keras_attn.applications import specs


def test_resize_and_center_crop_geometry():
    image = tf.reshape(tf.range(36 * 72 * 3, dtype=tf.float32), (36, 72, 3))
    # floor(32 / (32 / 36)) = 36: the shorter side is already the resize target.
    crop = data.resize_and_center_crop(image, 32, crop_pct=32 / 36, interpolation="bilinear")
    np.testing.assert_allclose(crop.numpy(), image.numpy()[2:34, 20:52], rtol=1e-5)


@pytest.mark.parametrize("shape", [(100, 200, 3), (300, 120, 3), (64, 64, 3)])
def test_output_is_the_requested_square(shape):
    image = tf.zeros(shape, tf.uint8)
    assert data.resize_and_center_crop(image, 56, crop_pct=0.875).shape == (56, 56, 3)


def test_eval_transform_uses_the_checkpoints_preprocessing():
    config = data.eval_config("resnest50d")
    assert config == {"input_size": 224, "crop_pct": 0.875, "interpolation": "bilinear",
                      "mean": list(specs.IMAGENET_MEAN), "std": list(specs.IMAGENET_STD)}
    assert data.eval_config("resnet50", "a1_in1k")["crop_pct"] == 0.95
    assert data.eval_config("resnet50d", "ra4_e3600_r224_in1k")["mean"] == [0.5, 0.5, 0.5]
    # Without published weights: timm's defaults.
    assert data.eval_config("seresnet18")["interpolation"] == "bicubic"
    gray = tf.fill((300, 400, 3), tf.constant(128, tf.uint8))
    out = data.eval_transform("resnest50d")(gray).numpy()
    assert out.shape == (224, 224, 3)
    expected = (128 / 255 - np.array(specs.IMAGENET_MEAN)) / np.array(specs.IMAGENET_STD)
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), rtol=1e-4)


def test_load_image_decodes_jpeg_and_png_and_names_bad_files(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    tf.io.write_file(str(tmp_path / "a.png"), tf.io.encode_png(pixels))
    tf.io.write_file(str(tmp_path / "a.jpg"), tf.io.encode_jpeg(pixels))
    np.testing.assert_array_equal(data.load_image(tmp_path / "a.png").numpy(), pixels)
    assert data.load_image(tmp_path / "a.jpg").shape == (20, 30, 3)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="Could not decode .*bad.jpg"):
        data.load_image(tmp_path / "bad.jpg")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        data.load_image(tmp_path / "missing.png")


def test_bad_crop_arguments_are_named():
    image = tf.zeros((10, 10, 3))
    with pytest.raises(ValueError, match="interpolation.*'lanczos9'"):
        data.resize_and_center_crop(image, 8, interpolation="lanczos9")
    with pytest.raises(ValueError, match="crop_pct=1.5"):
        data.resize_and_center_crop(image, 8, crop_pct=1.5)
    with pytest.raises(ValueError, match=r"one \(height, width, channels\) image; received "
                                         r"shape \(2, 10, 10, 3\)"):
        data.resize_and_center_crop(tf.zeros((2, 10, 10, 3)), 8)
