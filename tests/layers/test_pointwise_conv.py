"""PointwiseConv2D: Keras' 1x1 Conv2D, computed as a matrix product."""

import keras
import pytest

from keras_attn import testing
from keras_attn.layers import PointwiseConv2D


def _pair(filters, shape, groups=1, use_bias=True, **kwargs):
    reference = keras.layers.Conv2D(filters, 1, groups=groups, use_bias=use_bias, **kwargs)
    layer = PointwiseConv2D(filters, groups=groups, use_bias=use_bias, **kwargs)
    return reference, layer, testing.build_with_reference_weights(layer, reference, shape)


# The cases marked `backends` also run under JAX and PyTorch (tests/backends): each path of the
# layer once (the matrix product, the grouped einsum on a descriptor and on a map, odd and
# unequal strides); the others are the same paths at other sizes, under TensorFlow only.
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize(
    "filters, shape, groups, kwargs",
    [
        # Selective Kernel's fc_reduce on a pooled descriptor
        pytest.param(32, (8, 1, 1, 128), 1, {}, marks=pytest.mark.backends),
        (256, (8, 1, 1, 32), 1, {}),  # its fc_select
        # Split-Attention's fc1 with cardinality 4
        pytest.param(12, (3, 1, 1, 24), 4, {}, marks=pytest.mark.backends),
        (48, (3, 1, 1, 12), 4, {}),
        (32, (8, 7, 7, 64), 1, {}),  # ResNet-50's last stage at 224x224
        pytest.param(12, (2, 3, 5, 24), 4, {}, marks=pytest.mark.backends),  # grouped, a map
        (24, (2, 14, 14, 16), 1, {"strides": 2}),  # a strided shortcut: a 7x7 output
        # odd: from the first pixel
        pytest.param(8, (2, 13, 13, 16), 1, {"strides": 2, "padding": "same"},
                     marks=pytest.mark.backends),
        # unequal strides
        pytest.param(8, (2, 4, 5, 16), 1, {"strides": (1, 2)}, marks=pytest.mark.backends),
    ],
)
def test_equals_keras_conv2d_with_gradients(filters, shape, groups, kwargs, use_bias):
    reference, layer, x = _pair(filters, shape, groups, use_bias, **kwargs)
    testing.assert_convolution_equals(layer, reference, x)


@pytest.mark.backends
def test_never_convolves(monkeypatch):
    convolved = []
    monkeypatch.setattr(keras.ops, "conv", lambda *args, **kwargs: convolved.append(args))
    for groups, shape in ((1, (2, 1, 1, 16)), (4, (2, 3, 3, 16))):
        _, layer, x = _pair(8, shape, groups)
        layer(x)
    assert convolved == []


@pytest.mark.backends
def test_weights_and_config_are_conv2d_ones():
    conv = keras.layers.Conv2D(32, 1, groups=4, name="fc1")
    fc = PointwiseConv2D(32, groups=4, name="fc1")
    conv.build((None, 1, 1, 64))
    fc.build((None, 1, 1, 64))
    assert [(w.path, w.shape) for w in fc.weights] == [(w.path, w.shape) for w in conv.weights]
    restored = PointwiseConv2D.from_config(fc.get_config())
    assert restored.get_config() == fc.get_config()
    assert restored.groups == 4 and restored.kernel_size == (1, 1)


@pytest.mark.backends
@pytest.mark.parametrize("kwargs, message", [
    ({"kernel_size": 3}, r"kernel_size=3"),
    ({"dilation_rate": 2}, r"dilation_rate=2"),
    ({"data_format": "channels_first"}, r"data_format='channels_first'"),
])
def test_what_a_1x1_product_cannot_be_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PointwiseConv2D(8, **kwargs)


@pytest.mark.backends
def test_inputs_are_channels_last_whatever_the_global_format():
    keras.config.set_image_data_format("channels_first")  # conftest restores it
    fc = PointwiseConv2D(8, groups=2)
    assert fc.get_config()["data_format"] == "channels_last"
    assert tuple(fc(testing.random_images((3, 1, 1, 4))).shape) == (3, 1, 1, 8)


@pytest.mark.backends
def test_positional_arguments_are_conv2d_ones():
    # Conv2D's third positional argument is `strides`.
    assert PointwiseConv2D(8, 1, 2).strides == keras.layers.Conv2D(8, 1, 2).strides == (2, 2)
