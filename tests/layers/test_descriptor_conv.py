"""DescriptorConv2D: Keras' 1x1 Conv2D, as a matrix product on one-pixel maps."""

import keras
import pytest

from keras_attn import testing
from keras_attn.layers import DescriptorConv2D

pytestmark = pytest.mark.backends  # also run under JAX and PyTorch (tests/backends)


def _pair(channels, filters, groups, shape, use_bias=True):
    reference = keras.layers.Conv2D(filters, 1, groups=groups, use_bias=use_bias)
    layer = DescriptorConv2D(filters, groups=groups, use_bias=use_bias)
    return reference, layer, testing.build_with_reference_weights(layer, reference, shape)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize(
    "channels, filters, groups, shape",
    [
        (128, 32, 1, (8, 1, 1, 128)),  # Selective Kernel's fc_reduce
        (32, 256, 1, (8, 1, 1, 32)),  # its fc_select
        (24, 12, 4, (3, 1, 1, 24)),  # Split-Attention's fc1 with cardinality 4
        (12, 48, 4, (3, 1, 1, 12)),
        (24, 12, 4, (2, 3, 5, 24)),  # a larger map: Conv2D's own path
    ],
)
def test_equals_keras_conv2d_with_gradients(channels, filters, groups, shape, use_bias):
    reference, layer, x = _pair(channels, filters, groups, shape, use_bias)
    testing.assert_convolution_equals(layer, reference, x)


def test_multiplies_matrices_on_one_pixel_and_convolves_larger_maps(monkeypatch):
    convolutions = []
    convolution_op = keras.layers.Conv2D.convolution_op

    def convolution_spy(self, inputs, kernel):
        convolutions.append(tuple(inputs.shape[1:3]))
        return convolution_op(self, inputs, kernel)

    monkeypatch.setattr(keras.layers.Conv2D, "convolution_op", convolution_spy)
    for groups in (1, 4):
        _, layer, x = _pair(16, 8, groups, (2, 1, 1, 16))
        layer(x)
        _, layer, x = _pair(16, 8, groups, (2, 2, 2, 16))
        layer(x)
    assert convolutions == [(2, 2), (2, 2)]


def test_weights_and_config_are_conv2d_ones():
    conv = keras.layers.Conv2D(32, 1, groups=4, name="fc1")
    fc = DescriptorConv2D(32, groups=4, name="fc1")
    conv.build((None, 1, 1, 64))
    fc.build((None, 1, 1, 64))
    assert [(w.path, w.shape) for w in fc.weights] == [(w.path, w.shape) for w in conv.weights]
    restored = DescriptorConv2D.from_config(fc.get_config())
    assert restored.get_config() == fc.get_config()
    assert restored.groups == 4 and restored.kernel_size == (1, 1)


def test_a_larger_kernel_names_the_argument():
    with pytest.raises(ValueError, match=r"kernel_size=3"):
        DescriptorConv2D(8, kernel_size=3)


def test_descriptors_are_channels_last_whatever_the_global_format():
    keras.config.set_image_data_format("channels_first")  # conftest restores it
    fc = DescriptorConv2D(8, groups=2)
    assert fc.get_config()["data_format"] == "channels_last"
    assert tuple(fc(testing.random_images((3, 1, 1, 4))).shape) == (3, 1, 1, 8)


def test_further_arguments_are_keywords():
    # Conv2D's third positional argument is `strides`: refused, not read as `groups`.
    with pytest.raises(TypeError, match="positional"):
        DescriptorConv2D(8, 1, 2)
