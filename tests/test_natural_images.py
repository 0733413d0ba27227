"""benchmarks/natural_images.py: photographs split without overlap, and BatchNorm statistics
re-estimated to the averages of their batches' statistics."""

import keras
import numpy as np
import pytest

from benchmarks import natural_images


def test_calibration_and_held_out_photographs_share_none():
    assert set(natural_images.CALIBRATION).isdisjoint(natural_images.HELD_OUT)
    assert len(natural_images.CALIBRATION) == 12 and len(natural_images.HELD_OUT) == 6


def test_crops_are_rgb_pixels_of_the_photographs_and_repeat_with_the_seed():
    pytest.importorskip("skimage")
    crops = natural_images.crops(("camera", "chelsea"), 4, 24, seed=3)
    assert crops.shape == (4, 24, 24, 3) and crops.dtype == np.float32
    assert 0.0 <= crops.min() and crops.max() <= 255.0
    np.testing.assert_array_equal(crops[0, ..., 0], crops[0, ..., 2])  # grayscale camera
    assert not np.array_equal(crops[1, ..., 0], crops[1, ..., 2])  # the colour cat
    np.testing.assert_array_equal(natural_images.crops(("camera", "chelsea"), 4, 24, seed=3),
                                  crops)


def test_reestimated_statistics_are_the_batches_average_and_momentum_is_restored():
    inputs = keras.Input((2, 2, 3))
    first = keras.layers.BatchNormalization(momentum=0.9)
    second = keras.layers.BatchNormalization(momentum=0.7)
    model = keras.Model(inputs, second(keras.layers.Dense(3)(first(inputs))))
    images = np.random.default_rng(0).normal(3.0, 2.0, (10, 2, 2, 3)).astype("float32")
    natural_images.reestimate_batch_norm(model, images, lambda x: x * 2.0, batch_size=4)
    # Batches of 4, 4 and 2 images: each batch's statistics, averaged with equal weight.
    batches = [images[:4] * 2.0, images[4:8] * 2.0, images[8:] * 2.0]
    np.testing.assert_allclose(first.moving_mean.numpy(),
                               np.mean([b.mean((0, 1, 2)) for b in batches], 0), rtol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(),
                               np.mean([b.var((0, 1, 2)) for b in batches], 0), rtol=1e-4)
    # The second BatchNorm sees its input as the first normalises it in training mode.
    dense = model.layers[2]
    normalised = [dense((b - b.mean((0, 1, 2))) / np.sqrt(b.var((0, 1, 2)) + first.epsilon))
                  .numpy() for b in batches]
    np.testing.assert_allclose(second.moving_mean.numpy(),
                               np.mean([n.mean((0, 1, 2)) for n in normalised], 0),
                               rtol=1e-4, atol=1e-6)
    assert (first.momentum, second.momentum) == (0.9, 0.7)
