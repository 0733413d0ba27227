"""benchmarks/natural_images.py: crops of the photographs' two parts, whose pixels never overlap,
labelled by photograph; BatchNorm statistics re-estimated to the averages of their batches'."""

import keras
import numpy as np
import pytest

from benchmarks import natural_images


def test_crops_are_labelled_rgb_pixels_and_repeat_with_the_seed():
    pytest.importorskip("skimage")
    names = ("camera", "chelsea")
    pixels, labels = natural_images.crops("train", 4, 24, seed=3, names=names)
    assert pixels.shape == (4, 24, 24, 3) and pixels.dtype == np.float32
    assert 0.0 <= pixels.min() and pixels.max() <= 255.0
    np.testing.assert_array_equal(labels, [0, 1, 0, 1])  # the photographs take turns
    np.testing.assert_array_equal(pixels[0, ..., 0], pixels[0, ..., 2])  # grayscale camera
    assert not np.array_equal(pixels[1, ..., 0], pixels[1, ..., 2])  # the colour cat
    again, _ = natural_images.crops("train", 4, 24, seed=3, names=names)
    np.testing.assert_array_equal(again, pixels)


def test_train_and_held_out_crops_come_from_either_side_of_the_cut(monkeypatch):
    # A photograph whose every column holds its index: a crop's pixels say where it was cut.
    width = 100
    columns = np.broadcast_to(np.arange(width, dtype="uint8")[None, :, None], (50, width, 3))
    monkeypatch.setattr(natural_images, "photographs", lambda names: {"ramp": columns})
    cut = int(width * natural_images.TRAIN_FRACTION)
    for part, inside in (("train", lambda c: c < cut), ("held_out", lambda c: c >= cut)):
        # Resizing averages a crop's columns: its pixels stay within the columns it took.
        for seed in range(20):
            pixels, _ = natural_images.crops(part, 3, 4, seed=seed, names=("ramp",))
            assert inside(pixels.min()) and inside(pixels.max()), (part, seed)
    with pytest.raises(ValueError, match=r"`part` must be one of \('train', 'held_out'\); "
                                         r"received part='val'"):
        natural_images.crops("val", 1, 4, seed=0, names=("ramp",))


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
