"""GroupedConv2D: every formulation computes Keras' Conv2D(groups=g), gradients included."""

import keras
import numpy as np
import pytest

from keras_attn import testing
from keras_attn.layers import GroupedConv2D, grouped_conv, grouped_conv_implementation

# (input channels, filters, groups, kernel size, strides, dilation, padding)
CASES = {
    "resnext_stage1": (32, 32, 8, 3, 1, 1, "same"),  # 4 channels a group
    "wide_groups_strided": (64, 64, 2, 3, 2, 1, "valid"),
    "widening_5x5_dilated": (16, 48, 4, 5, 1, 2, "same"),
    "pointwise_odd_groups": (24, 12, 3, 1, 1, 1, "valid"),
    "pointwise_strided": (16, 32, 2, 1, 2, 1, "valid"),
    "one_channel_per_group": (8, 16, 8, 3, 1, 1, "same"),
}


# Under JAX and PyTorch (tests/backends) both formulations run on the 3x3 and 5x5 cases: packed
# groups, one group a split, strides with "valid", dilation with widening, one channel a group.
# "auto" is one of the two there (split on JAX's CPU, native elsewhere: test_choice_says_what_
# and_why), and the 1x1 cases are the same ops at kernel size 1; TensorFlow runs them all.
_EVERY_BACKEND = ("resnext_stage1", "wide_groups_strided", "widening_5x5_dilated",
                  "one_channel_per_group")


def _pair(case, implementation):
    channels, filters, groups, kernel, strides, dilation, padding = CASES[case]
    kwargs = dict(kernel_size=kernel, strides=strides, dilation_rate=dilation, padding=padding,
                  groups=groups, use_bias=True)
    reference = keras.layers.Conv2D(filters, **kwargs)
    layer = GroupedConv2D(filters, implementation=implementation, **kwargs)
    shape = (3, 11, 11, channels)
    x = testing.random_images(shape)
    reference.build(shape)
    layer.build(shape)
    reference.bias.assign(testing.random_images(reference.bias.shape))
    layer.set_weights(reference.get_weights())
    return reference, layer, x


@pytest.mark.parametrize(
    "case, implementation",
    [pytest.param(case, implementation, marks=pytest.mark.backends)
     if case in _EVERY_BACKEND and implementation != "auto" else (case, implementation)
     for case in CASES for implementation in ("split", "native", "auto")],
)
def test_every_formulation_equals_keras_conv2d_with_gradients(case, implementation):
    reference, layer, x = _pair(case, implementation)
    if implementation == "native" and not _native_trains_here(CASES[case][2]):
        # TensorFlow's grouped Conv2D runs forward on its portable CPU kernels, and its
        # gradient is TensorFlow's own refusal, named; "auto" does not choose it here.
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)),
                                   keras.ops.convert_to_numpy(reference(x)), rtol=0, atol=1e-5)
        refusal = ("Gradients for grouped convolutions are not supported on CPU"
                   "|CPU implementations do not yet support dilation rates larger than 1")
        with pytest.raises(Exception, match=refusal):
            testing.assert_convolution_equals(layer, reference, x)
        return
    testing.assert_convolution_equals(layer, reference, x)


def _native_trains_here(groups):
    # A grouped convolution has no gradient only on TensorFlow's portable CPU kernels, which
    # are where "auto" chooses "split"; one group is an ordinary convolution.
    return (groups == 1 or keras.backend.backend() != "tensorflow"
            or grouped_conv.grouped_conv_choice().implementation == "native")


@pytest.mark.backends
def test_the_kernel_has_conv2d_layout_and_variable_paths():
    conv = keras.layers.Conv2D(32, 3, groups=8, name="conv")
    grouped = GroupedConv2D(32, 3, groups=8, name="conv")
    conv.build((None, 9, 9, 32))
    grouped.build((None, 9, 9, 32))
    assert [(w.path, w.shape) for w in grouped.weights] == [(w.path, w.shape) for w in conv.weights]


@pytest.mark.backends
def test_positional_arguments_are_conv2d_ones():
    # Conv2D's third positional argument is `strides`; a drop-in replacement must read it so.
    conv = keras.layers.Conv2D(8, 3, 2, "same", groups=4)
    grouped = GroupedConv2D(8, 3, 2, "same", groups=4)
    keys = ("strides", "padding", "groups")
    assert {k: grouped.get_config()[k] for k in keys} == {k: conv.get_config()[k] for k in keys}
    x = testing.random_images((2, 9, 9, 8))
    assert tuple(grouped(x).shape) == tuple(conv(x).shape) == (2, 5, 5, 8)


@pytest.mark.backends
def test_override_wins_and_is_restored(monkeypatch):
    _, layer, x = _pair("resnext_stage1", "native")
    calls = []
    native, block_diagonal = GroupedConv2D._native_convolution, grouped_conv.block_diagonal

    def native_spy(self, inputs, kernel):
        calls.append(("native", tuple(kernel.shape)))
        return native(self, inputs, kernel)

    def block_diagonal_spy(kernel, groups):
        dense = block_diagonal(kernel, groups)
        calls.append(("dense", tuple(dense.shape)))
        return dense

    monkeypatch.setattr(GroupedConv2D, "_native_convolution", native_spy)
    monkeypatch.setattr(grouped_conv, "block_diagonal", block_diagonal_spy)
    layer(x)
    with grouped_conv_implementation("split"):
        layer(x)
    layer(x)
    # native: one grouped kernel (3, 3, 4, 32); split: two dense 16-channel block-diagonal
    # kernels of 4 groups each; native again after the block.
    assert calls == [("native", (3, 3, 4, 32)), ("dense", (3, 3, 16, 16)),
                     ("dense", (3, 3, 16, 16)), ("native", (3, 3, 4, 32))]


@pytest.mark.backends
@pytest.mark.parametrize(
    "groups, channels_per_group, expected",
    [(32, 4, 4), (32, 8, 2), (32, 16, 1), (32, 32, 1), (2, 64, 1), (64, 4, 4), (3, 4, 3),
     (6, 4, 6), (8, 1, 8)],
)
def test_groups_per_split_packs_to_sixteen_channels(groups, channels_per_group, expected):
    assert grouped_conv.groups_per_split(groups, channels_per_group) == expected


@pytest.mark.backends
def test_block_diagonal_places_each_group_on_the_diagonal():
    kernel = np.arange(1 * 1 * 2 * 6, dtype="float32").reshape(1, 1, 2, 6) + 1
    dense = keras.ops.convert_to_numpy(grouped_conv.block_diagonal(kernel, 3))[0, 0]
    expected = np.zeros((6, 6), "float32")
    for g in range(3):
        expected[2 * g:2 * g + 2, 2 * g:2 * g + 2] = kernel[0, 0, :, 2 * g:2 * g + 2]
    np.testing.assert_array_equal(dense, expected)


@pytest.mark.backends
def test_config_round_trip_keeps_the_implementation():
    layer = GroupedConv2D(16, 3, groups=4, implementation="split", name="grouped")
    x = testing.random_images((2, 7, 7, 16))
    layer(x)
    assert layer.get_config()["implementation"] == "split"
    testing.assert_config_round_trip(layer, x)


@pytest.mark.backends
@pytest.mark.parametrize("bad", ["fast", None, 1])
def test_unknown_implementation_names_the_argument(bad):
    with pytest.raises(ValueError, match=r"`implementation` must be one of .*received "
                                         rf"implementation={bad!r}"):
        GroupedConv2D(16, 3, groups=4, implementation=bad)
    with pytest.raises(ValueError, match="implementation"):
        with grouped_conv_implementation(bad):
            pass


@pytest.mark.backends
def test_override_holds_in_its_own_thread_only():
    import threading

    seen = {}
    entered, checked = threading.Event(), threading.Event()

    def inside():
        with grouped_conv_implementation("split"):
            seen["inside"] = grouped_conv.resolve_implementation("native")
            entered.set()
            checked.wait(10)

    thread = threading.Thread(target=inside)
    thread.start()
    assert entered.wait(10)
    seen["other thread"] = grouped_conv.implementation_override()
    checked.set()
    thread.join()
    assert seen == {"inside": "split", "other thread": None}


@pytest.mark.backends
def test_choice_says_what_and_why():
    choice = grouped_conv.grouped_conv_choice()
    assert choice.implementation in ("native", "split") and choice.reason
    assert str(choice).startswith(choice.implementation + ": ")
    assert grouped_conv.resolve_implementation("auto") == choice.implementation
    with grouped_conv_implementation("split"):
        overridden = grouped_conv.grouped_conv_choice()
    assert (overridden.implementation, overridden.reason) == (
        "split", "set by a grouped_conv_implementation block")


@pytest.mark.backends
def test_groups_that_do_not_divide_the_input_channels_are_named():
    with pytest.raises(ValueError, match=r"groups=4 .* 6 channels"):
        GroupedConv2D(8, 3, groups=4)(testing.random_images((1, 5, 5, 6)))
