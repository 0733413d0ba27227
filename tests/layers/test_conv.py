"""Conv2D: Keras' Conv2D, with 1x1 convolutions on small maps computed as matrix products."""

import keras
import numpy as np
import pytest

from keras_attn import testing
from keras_attn.layers import Conv2D, grouped_conv_implementation, kernels
from keras_attn.layers.conv import MATMUL_MAX_PIXELS

pytestmark = pytest.mark.backends  # also run under JAX and PyTorch (tests/backends)


def _pair(filters, shape, kernel_size=1, **kwargs):
    reference = keras.layers.Conv2D(filters, kernel_size, **kwargs)
    layer = Conv2D(filters, kernel_size, **kwargs)
    return reference, layer, testing.build_with_reference_weights(layer, reference, shape)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize(
    "filters, shape, kernel_size, strides, padding",
    [
        (32, (8, 7, 7, 64), 1, 1, "valid"),  # ResNet-50's last stage at 224x224
        (24, (2, 14, 14, 16), 1, 2, "valid"),  # its strided shortcut: a 7x7 output
        (8, (2, 13, 13, 16), 1, 2, "same"),  # odd size: every other pixel from the first
        (8, (2, 4, 5, 16), 1, (1, 2), "valid"),  # unequal strides
        (8, (2, 9, 9, 16), 1, 1, "valid"),  # 81 pixels: Conv2D's own path
        (8, (2, 7, 7, 16), 3, 1, "same"),  # not 1x1: Conv2D's own path
    ],
)
def test_equals_keras_conv2d_with_gradients(filters, shape, kernel_size, strides, padding,
                                            use_bias):
    reference, layer, x = _pair(filters, shape, kernel_size, strides=strides, padding=padding,
                                use_bias=use_bias)
    testing.assert_convolution_equals(layer, reference, x)


def test_multiplies_matrices_where_tensorflow_onednn_convolves_slowly(monkeypatch):
    convolved = []
    convolution_op = keras.layers.Conv2D.convolution_op

    def convolution_spy(self, inputs, kernel):
        convolved.append((self.name, tuple(inputs.shape[1:3])))
        return convolution_op(self, inputs, kernel)

    monkeypatch.setattr(keras.layers.Conv2D, "convolution_op", convolution_spy)
    side = int(MATMUL_MAX_PIXELS**0.5)
    cases = [
        ("small", (2, side, side, 16), 1, 1),
        ("small_strided", (2, 2 * side, 2 * side, 16), 1, 2),
        ("large", (2, side + 1, side + 1, 16), 1, 1),
        ("wide_kernel", (2, side, side, 16), 3, 1),
    ]
    for name, shape, kernel_size, strides in cases:
        Conv2D(8, kernel_size, strides=strides, name=name)(testing.random_images(shape))
    with grouped_conv_implementation("native"):  # what the exports trace
        Conv2D(8, 1, name="exported")(testing.random_images((2, side, side, 16)))

    everything = ["small", "small_strided", "large", "wide_kernel", "exported"]
    if kernels.tensorflow_onednn_on_avx512():
        assert [name for name, _ in convolved] == ["large", "wide_kernel", "exported"]
    else:
        assert [name for name, _ in convolved] == everything


def test_weight_files_move_between_keras_conv2d_and_this_layer(tmp_path):
    def network(conv_class):
        inputs = keras.Input((7, 7, 8))
        x = conv_class(6, 1, name="reduce")(inputs)
        x = keras.layers.Conv2D(6, 3, padding="same", name="spatial")(x)
        return keras.Model(inputs, conv_class(4, 1, use_bias=False, name="expand")(x))

    theirs = network(keras.layers.Conv2D)
    theirs.set_weights([testing.random_images(w.shape, seed=i)
                        for i, w in enumerate(theirs.weights)])
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    ours = network(Conv2D)
    ours.load_weights(tmp_path / "theirs.weights.h5")
    for mine, reference in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, reference)

    ours.save_weights(tmp_path / "ours.weights.h5")
    back = network(keras.layers.Conv2D)
    back.load_weights(tmp_path / "ours.weights.h5")
    for mine, reference in zip(back.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, reference)


def test_keras_file_round_trip_keeps_the_class(tmp_path):
    inputs = keras.Input((7, 7, 8))
    model = keras.Model(inputs, Conv2D(4, 1, strides=2, name="conv")(inputs))
    restored = testing.assert_keras_file_round_trip(model, testing.random_images((2, 7, 7, 8)),
                                                    tmp_path)
    assert type(restored.get_layer("conv")) is Conv2D
    assert restored.get_layer("conv").get_config() == model.get_layer("conv").get_config()
