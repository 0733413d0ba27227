"""Behaviour shared by the attention layers, and what each computes."""

import json
import re

import keras
import numpy as np
import pytest

from keras_attn import testing
from keras_attn.layers import (
    CBAM,
    EfficientChannelAttention,
    GlobalContext,
    SelectiveKernel,
    SplitAttention,
    SqueezeExcite,
    common,
    pytorch,
)

CASES = {
    "se": (SqueezeExcite, {}, 32),
    "se_rd_channels": (SqueezeExcite, {"rd_channels": 5, "gate_activation": "hard_sigmoid"}, 32),
    "sk_split_strided": (SelectiveKernel, {"filters": 16, "strides": 2, "cardinality": 4}, 16),
    "sk_whole_input": (
        SelectiveKernel,
        {"filters": 24, "cardinality": 2, "split_input": False, "rd_divisor": 16},
        12,
    ),
    "sk_three_5x5_7x7": (
        SelectiveKernel,
        {"filters": 16, "kernel_size": (3, 5, 7), "keep_3x3": False, "split_input": False,
         "strides": 2},
        8,
    ),
    "splat_r2": (SplitAttention, {"filters": 16, "radix": 2, "strides": 2}, 16),
    "splat_r4_k2": (SplitAttention, {"filters": 16, "radix": 4, "cardinality": 2}, 24),
    "splat_r1_k4": (SplitAttention, {"filters": 16, "radix": 1, "cardinality": 4}, 16),
    "eca": (EfficientChannelAttention, {}, 32),
    "eca_kernel5_hard_sigmoid": (
        EfficientChannelAttention, {"kernel_size": 5, "gate_activation": "hard_sigmoid"}, 12),
    # 128 channels: a bottleneck of 8 (timm's width, 1/16), where a fit step finds a live ReLU.
    "cbam": (CBAM, {}, 128),
    "cbam_3x3_mlp_bias": (
        CBAM, {"rd_channels": 8, "rd_divisor": 8, "spatial_kernel_size": 3, "mlp_bias": True}, 16),
    "gc": (GlobalContext, {}, 32),
    "gc_mean_context": (GlobalContext, {"use_attn": False, "rd_ratio": 0.25}, 16),
}


# Every case runs under TensorFlow. Under JAX and PyTorch (tests/backends), where a test's first
# call of each op and shape compiles it, the cheap checks (channels-last inputs, the frozen
# layer's .keras file, a wrong channel count) still run every case, so every case computes on
# every backend, and the costly ones (fit, .keras files, configs, unknown sizes, policies)
# run one case of each layer class (a set per check below).


def _on_every_backend(cases, rerun):
    """`cases` as parameters; those in `rerun` also run under JAX and PyTorch."""
    assert set(rerun) <= set(cases), set(rerun) - set(cases)
    return [pytest.param(case, marks=pytest.mark.backends) if case in rerun else case
            for case in cases]


def _layer(case, **kwargs):
    cls, init_kwargs, channels = CASES[case]
    return cls(**init_kwargs, **kwargs), channels


# A strided SK (three paths) and a strided Split-Attention: their output shape is computed.
@pytest.mark.parametrize("case", _on_every_backend(
    CASES, ("se", "sk_three_5x5_7x7", "splat_r2", "eca", "cbam", "gc")))
def test_unknown_height_and_width_and_output_shape(case):
    layer, channels = _layer(case)
    inputs = keras.Input((None, None, channels))
    outputs = layer(inputs)
    assert tuple(outputs.shape) == layer.compute_output_shape((None, None, None, channels))
    model = keras.Model(inputs, outputs)
    for height, width in ((9, 9), (8, 13)):
        x = testing.random_images((2, height, width, channels))
        y = model.predict(x, verbose=0)
        assert y.shape == layer.compute_output_shape(x.shape)


# The case of each class with the most non-default arguments.
@pytest.mark.parametrize("case", _on_every_backend(
    CASES, ("se_rd_channels", "sk_three_5x5_7x7", "splat_r4_k2", "eca_kernel5_hard_sigmoid",
            "cbam_3x3_mlp_bias", "gc")))
def test_config_round_trip(case):
    layer, channels = _layer(case, name="attention")
    x = testing.random_images((2, 9, 9, channels))
    layer(x)
    testing.assert_config_round_trip(layer, x)


# The case of each class with the most kinds of weights: grouped SK paths, grouped Split-Attention
# with radix 4, CBAM's MLP biases, GC's attention convolution.
@pytest.mark.parametrize("case", _on_every_backend(
    CASES, ("se", "sk_split_strided", "splat_r4_k2", "eca", "cbam_3x3_mlp_bias", "gc")))
def test_keras_file_round_trip_and_fit(case, tmp_path):
    layer, channels = _layer(case)
    inputs = keras.Input((None, None, channels))
    x = layer(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3)(x)
    model = keras.Model(inputs, outputs, name=f"with_{case}")
    testing.perturb_batch_norm_statistics(model)
    images = testing.random_images((4, 9, 9, channels))
    testing.assert_keras_file_round_trip(model, images, tmp_path)
    testing.assert_fit_changes_every_weight(model, images, np.array([0, 1, 2, 1]), from_logits=True)


# Every class under both policies; Split-Attention's radix-1 sigmoid gate under TensorFlow only.
@pytest.mark.parametrize("policy, atol", [("mixed_float16", 5e-3), ("mixed_bfloat16", 3e-2)])
@pytest.mark.parametrize("case", _on_every_backend(
    ["se", "sk_split_strided", "splat_r2", "splat_r1_k4", "eca", "cbam", "gc", "gc_mean_context"],
    ("se", "sk_split_strided", "splat_r2", "eca", "cbam", "gc", "gc_mean_context")))
def test_mixed_precision_computes_gates_in_float32(case, policy, atol):
    reference, channels = _layer(case)
    mixed, _ = _layer(case, dtype=policy)
    x = testing.random_images((2, 9, 9, channels))
    expected = keras.ops.convert_to_numpy(reference(x))
    mixed(x)
    mixed.set_weights(reference.get_weights())
    low_precision = policy.split("_")[1]
    outputs = mixed(x)
    assert keras.backend.standardize_dtype(outputs.dtype) == low_precision
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(outputs, "float32")), expected, atol=atol
    )
    # CBAM's are a dict of two (its channel gate and its spatial map).
    weights = keras.tree.flatten(mixed.attention_weights(x))
    expected_weights = keras.tree.flatten(reference.attention_weights(x))
    assert len(weights) == len(expected_weights)
    for ours, theirs in zip(weights, expected_weights):
        assert keras.backend.standardize_dtype(ours.dtype) == "float32"
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs), atol=atol
        )


@pytest.mark.backends
@pytest.mark.parametrize("case", CASES)
def test_inputs_are_channels_last_whatever_the_global_format(case):
    reference, channels = _layer(case)
    x = testing.random_images((2, 9, 9, channels))
    expected = keras.ops.convert_to_numpy(reference(x))
    keras.config.set_image_data_format("channels_first")  # conftest restores it
    layer, _ = _layer(case)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, atol=1e-6)


@pytest.mark.backends
@pytest.mark.parametrize("case", CASES)
def test_a_layer_made_frozen_keeps_its_statistics_also_after_load_model(case, tmp_path):
    # Keras' trainable setter reaches only the sublayers that exist when it runs; these are
    # made after it (in __init__ and build), as they are when load_model rebuilds a frozen layer.
    layer, channels = _layer(case, trainable=False)
    x = testing.random_images((4, 9, 9, channels))
    layer(x)
    testing.perturb_batch_norm_statistics(layer)
    inference = keras.ops.convert_to_numpy(layer(x, training=False))
    before = [keras.ops.convert_to_numpy(w) for w in layer.weights]
    # training=True normalizes with the moving statistics, unfolded: equal to float rounding.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x, training=True)), inference,
                               rtol=0, atol=1e-5)
    for was, weight in zip(before, layer.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), was, err_msg=weight.path)
    assert not [weight.path for weight in layer.weights if weight.trainable]

    inputs = keras.Input((9, 9, channels))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "frozen.keras")
    reloaded = keras.saving.load_model(tmp_path / "frozen.keras")
    assert not [weight.path for weight in reloaded.weights if weight.trainable]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x, training=True)),
                               inference, rtol=0, atol=1e-5)


@pytest.mark.backends
@pytest.mark.parametrize("case", ["se", "sk_split_strided", "splat_r2", "splat_r4_k2", "eca",
                                  "cbam", "gc"])
def test_a_wrong_channel_count_is_named_in_inference_too(case):
    # Selective Kernel's and Split-Attention's folded inference path calls the convolution op
    # itself, past the convolution layer's own check.
    layer, channels = _layer(case)
    layer(testing.random_images((2, 9, 9, channels)))
    for training in (False, True):
        with pytest.raises(ValueError, match=f"expected axis -1 of input shape to have value "
                                             f"{channels}"):
            layer(testing.random_images((2, 9, 9, 2 * channels)), training=training)


# CBAM's are a dict of two; Split-Attention's with radix 4 and cardinality 2 are reordered.
@pytest.mark.parametrize("case", _on_every_backend(
    CASES, ("se", "sk_split_strided", "splat_r4_k2", "eca", "cbam", "gc")))
def test_attention_weights_of_a_symbolic_input_make_a_model(case):
    layer, channels = _layer(case)
    inputs = keras.Input((None, None, channels))
    model = keras.Model(inputs, layer.attention_weights(inputs))
    x = testing.random_images((2, 9, 9, channels))
    predicted = keras.tree.flatten(model.predict(x, verbose=0))
    expected = keras.tree.flatten(layer.attention_weights(x))
    assert len(predicted) == len(expected)
    for ours, theirs in zip(predicted, expected):
        np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(theirs), rtol=0, atol=1e-5)


@pytest.mark.backends
@pytest.mark.parametrize("policy", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", ["se", "sk_split_strided", "splat_r2", "eca", "cbam", "gc"])
def test_a_plain_half_precision_policy_holds_for_the_gates_too(case, policy):
    # Only mixed policies move the gates to float32; "float16" means float16 throughout.
    layer, channels = _layer(case, dtype=policy)
    outputs = layer(testing.random_images((2, 9, 9, channels)))
    assert keras.backend.standardize_dtype(outputs.dtype) == policy
    assert {keras.backend.standardize_dtype(w.dtype) for w in layer.weights} == {policy}


@pytest.mark.backends
def test_numpy_numbers_are_taken_and_stored_as_python_numbers():
    numpy_made = [
        SplitAttention(np.int64(16), radix=np.int32(2), rd_ratio=np.float32(0.5)),
        SelectiveKernel(np.int64(16), kernel_size=(np.int64(3), np.int64(5)),
                        cardinality=np.int64(4), rd_divisor=np.int16(8)),
        SqueezeExcite(rd_ratio=np.float64(0.25), rd_channels=np.int64(4)),
        EfficientChannelAttention(kernel_size=np.int64(5), gamma=np.float32(1.5),
                                  beta=np.int32(2)),
        CBAM(rd_ratio=np.float64(0.25), rd_divisor=np.int64(4), spatial_kernel_size=np.int8(3)),
        GlobalContext(rd_ratio=np.float32(0.5), rd_channels=np.int64(6), use_attn=np.bool_(False)),
    ]
    python_made = [
        SplitAttention(16, radix=2, rd_ratio=0.5),
        SelectiveKernel(16, kernel_size=(3, 5), cardinality=4, rd_divisor=8),
        SqueezeExcite(rd_ratio=0.25, rd_channels=4),
        EfficientChannelAttention(kernel_size=5, gamma=1.5, beta=2),
        CBAM(rd_ratio=0.25, rd_divisor=4, spatial_kernel_size=3),
        GlobalContext(rd_ratio=0.5, rd_channels=6, use_attn=False),
    ]
    for ours, reference in zip(numpy_made, python_made):
        config = ours.get_config()
        del config["name"]
        expected = reference.get_config()
        del expected["name"]
        assert config == expected
        assert json.loads(json.dumps(config)) == json.loads(json.dumps(expected))


@pytest.mark.backends
def test_squeeze_excite_matches_numpy():
    layer = SqueezeExcite(rd_ratio=0.25)
    x = testing.random_images((2, 5, 6, 16))
    y = keras.ops.convert_to_numpy(layer(x))
    w1, b1, w2, b2 = layer.get_weights()
    assert w1.shape == (1, 1, 16, 8)  # make_divisible(16 * 0.25, 8) = 8
    squeezed = x.mean(axis=(1, 2))
    hidden = np.maximum(squeezed @ w1[0, 0] + b1, 0)
    gate = 1 / (1 + np.exp(-(hidden @ w2[0, 0] + b2)))
    np.testing.assert_allclose(y, x * gate[:, None, None, :], rtol=1e-5, atol=1e-6)


# The widths (these three tests) are integer arithmetic, the same on every backend: they run
# under TensorFlow only (under JAX, building the wide layers compiles their initializers).
@pytest.mark.parametrize(
    "channels, kwargs, expected",
    [
        (64, {}, 8),  # timm: 64 / 16 = 4, raised to the divisor 8
        (256, {}, 16),
        (2048, {}, 128),
        (256, {"rd_divisor": 1}, 16),  # legacy SENet: channels // 16
        (64, {"rd_channels": 5}, 5),
    ],
)
def test_squeeze_excite_width_follows_timm(channels, kwargs, expected):
    layer = SqueezeExcite(**kwargs)
    layer.build((None, 4, 4, channels))
    assert layer.fc1.filters == expected


@pytest.mark.parametrize(
    "filters, kwargs, expected",
    [
        (64, {"rd_ratio": 1 / 8, "rd_divisor": 16}, 16),  # skresnet18, stage 1
        (512, {"rd_ratio": 1 / 8, "rd_divisor": 16}, 64),
        (128, {"rd_ratio": 1 / 16, "rd_divisor": 32}, 32),  # SKNet-50: d = max(C / 16, 32)
        (1024, {"rd_ratio": 1 / 16, "rd_divisor": 32}, 64),
    ],
)
def test_selective_kernel_attention_width_follows_timm(filters, kwargs, expected):
    assert SelectiveKernel(filters, **kwargs).attention_channels == expected


@pytest.mark.parametrize(
    "channels, radix, cardinality, expected",
    [(64, 2, 1, 32), (512, 2, 1, 256), (80, 4, 2, 80), (96, 1, 4, 32)],
)
def test_split_attention_width_follows_timm(channels, radix, cardinality, expected):
    layer = SplitAttention(channels, radix=radix, cardinality=cardinality)
    layer.build((None, 8, 8, channels))
    assert layer.fc1.filters == expected


@pytest.mark.backends
@pytest.mark.parametrize("case", ["sk_split_strided", "sk_three_5x5_7x7"])
def test_selective_kernel_weights_sum_to_one_across_branches(case):
    layer, channels = _layer(case)
    weights = keras.ops.convert_to_numpy(
        layer.attention_weights(testing.random_images((3, 8, 8, channels)))
    )
    assert weights.shape == (3, 1, 1, layer.num_paths, layer.filters)
    np.testing.assert_allclose(weights.sum(axis=3), 1.0, atol=1e-6)
    assert (weights > 0).all()


@pytest.mark.backends
def test_split_attention_softmax_runs_over_radix_within_each_cardinal_group():
    layer = SplitAttention(16, radix=4, cardinality=2)
    x = testing.random_images((3, 8, 8, 16))
    layer(x)
    # Make fc2's logits depend on the output channel so that a wrong channel order shows.
    kernel, bias = layer.fc2.get_weights()
    layer.fc2.set_weights([kernel, np.linspace(-3, 3, bias.size).astype("float32")])
    weights = keras.ops.convert_to_numpy(layer.attention_weights(x))
    assert weights.shape == (3, 1, 1, 4, 16)
    np.testing.assert_allclose(weights.sum(axis=3), 1.0, atol=1e-6)

    # timm: fc2's outputs are (group, radix, channel); softmax over radix; reordered to
    # (radix, group, channel), the order of the convolution's splits.
    hidden = keras.ops.convert_to_numpy(
        layer.activation(layer.bn1(layer.fc1(
            keras.ops.mean(sum(keras.ops.split(layer._features(x), 4, axis=-1)), axis=(1, 2),
                           keepdims=True)
        ), training=False))
    )
    logits = keras.ops.convert_to_numpy(layer.fc2(hidden)).reshape(3, 2, 4, 8)
    expected = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    expected = expected.transpose(0, 2, 1, 3).reshape(3, 1, 1, 4, 16)
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.backends
def test_split_attention_radix_one_is_a_sigmoid_gate():
    layer = SplitAttention(16, radix=1, cardinality=4)
    weights = keras.ops.convert_to_numpy(
        layer.attention_weights(testing.random_images((2, 8, 8, 16)))
    )
    assert weights.shape == (2, 1, 1, 1, 16)
    assert ((weights > 0) & (weights < 1)).all()
    assert not np.allclose(weights.sum(axis=-1), 1.0)


@pytest.mark.backends
def test_spatial_mean_is_the_mean_over_height_and_width(monkeypatch):
    # An average pooling over the whole map where its size is known, else the mean.
    pools, average_pool = [], keras.ops.average_pool

    def pool_spy(*args, **kwargs):
        pools.append(kwargs)
        return average_pool(*args, **kwargs)

    monkeypatch.setattr(keras.ops, "average_pool", pool_spy)
    x = testing.random_images((2, 7, 5, 3))
    expected = x.mean(axis=(1, 2), keepdims=True)
    pooled = keras.ops.convert_to_numpy(common.spatial_mean(x, "float32"))
    np.testing.assert_allclose(pooled, expected, rtol=0, atol=1e-6)
    assert [p["pool_size"] for p in pools] == [(7, 5)]
    inputs = keras.Input((None, None, 3))  # size unknown when traced
    model = keras.Model(inputs, common.spatial_mean(inputs, "float32"))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=0, atol=1e-6)
    assert len(pools) == 1


@pytest.mark.backends
@pytest.mark.parametrize("axis", [2, 3])
def test_softmax_equals_keras_softmax_with_gradients(axis):
    # Logits up to +-300: exp overflows float32 unless the maximum is subtracted first.
    logits = 600 * testing.random_images((3, 1, 2, 3, 5)) - 300
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=axis))
    weights = keras.ops.convert_to_numpy(common.softmax(logits, axis))
    np.testing.assert_allclose(weights, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=axis), 1.0, rtol=0, atol=1e-6)
    cotangent = keras.ops.convert_to_tensor(testing.random_images(logits.shape, seed=3))
    ours, = testing.gradients(lambda x: keras.ops.sum(common.softmax(x, axis) * cotangent), logits)
    theirs, = testing.gradients(
        lambda x: keras.ops.sum(keras.ops.softmax(x, axis=axis) * cotangent), logits)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def _torch_conv_reference(x, kernel, strides, dilation, padding):
    """PyTorch's Conv2d (symmetric zero padding, floor mode), by definition, in NumPy."""
    x = np.pad(x, [(0, 0), (padding, padding), (padding, padding), (0, 0)])
    size = kernel.shape[0]
    span = dilation * (size - 1) + 1
    out_h = (x.shape[1] - span) // strides + 1
    out_w = (x.shape[2] - span) // strides + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[-1]), np.float64)
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * strides : i * strides + span : dilation,
                      j * strides : j * strides + span : dilation, :]
            out[:, i, j] = np.einsum("bhwc,hwco->bo", patch, kernel)
    return out


@pytest.mark.backends
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("strides", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("size", [7, 8])
def test_torch_conv_geometry_computes_pytorch_convolution(kernel_size, strides, dilation, size):
    geometry = pytorch.TorchConvGeometry(kernel_size, strides, dilation)
    conv = keras.layers.Conv2D(3, kernel_size, use_bias=False, **geometry.conv_kwargs)
    x = testing.random_images((1, size, size + 1, 2))
    conv.build(geometry.conv_input_shape(x.shape))
    y = keras.ops.convert_to_numpy(geometry.apply(conv, x))
    expected = _torch_conv_reference(
        x, conv.get_weights()[0], strides, dilation,
        pytorch.torch_padding(kernel_size, strides, dilation),
    )
    assert y.shape == expected.shape
    assert y.shape[1] == geometry.output_size(size)
    np.testing.assert_allclose(y, expected, atol=1e-5)


@pytest.mark.backends
def test_strided_dilated_geometry_pads_the_subsampled_map_only():
    # SKNet-50's dilated branch in a stride-2 block: every 2nd pixel, then a "same" 3x3
    # convolution; no pass over the full-size map to pad it.
    geometry = pytorch.TorchConvGeometry(kernel_size=3, strides=2, dilation_rate=2)
    assert (geometry.input_padding, geometry.input_step, geometry.padding) == (0, 2, 0)
    assert geometry.conv_kwargs == {
        "strides": 1, "dilation_rate": 1, "padding": "same", "data_format": "channels_last"
    }
    assert geometry.conv_input_shape((8, 56, 57, 64)) == (8, 28, 29, 64)


@pytest.mark.backends
@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: SplitAttention(16, radix=0), "radix=0"),
        (lambda: SplitAttention(16, cardinality=3), "cardinality=3"),
        (lambda: SplitAttention(16, rd_ratio=0), "rd_ratio=0"),
        (lambda: SelectiveKernel(16, cardinality=3), "cardinality=3"),
        (lambda: SelectiveKernel(16, kernel_size=(3, 4)), "kernel_size=(3, 4)"),
        (lambda: SelectiveKernel(16, kernel_size=(3,)), "kernel_size=(3,)"),
        (lambda: SelectiveKernel(0), "filters=0"),
        (lambda: SqueezeExcite(rd_ratio=-1), "rd_ratio=-1"),
        (lambda: SqueezeExcite(rd_channels=2.5), "rd_channels=2.5"),
        (lambda: SqueezeExcite(rd_divisor=0), "rd_divisor=0"),
        (lambda: SqueezeExcite(rd_ratio=float("inf")), "rd_ratio=inf"),
        (lambda: SqueezeExcite(rd_ratio=float("nan")), "rd_ratio=nan"),
        (lambda: SplitAttention(True), "filters=True"),
        (lambda: SelectiveKernel(16, kernel_size=(3, 5.0)), "kernel_size=(3, 5.0)"),
        (lambda: SelectiveKernel(16, kernel_size=None), "kernel_size=None"),
    ],
)
def test_bad_arguments_raise_a_named_value_error(factory, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        factory()


@pytest.mark.backends
@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (SplitAttention(16, radix=2, cardinality=2), (None, 8, 8, 18), "radix * cardinality = 4"),
        (SelectiveKernel(16), (None, 8, 8, 15), "divisible by the 2 branches"),
        (SelectiveKernel(16, cardinality=4, split_input=False), (None, 8, 8, 6), "cardinality=4"),
        (SqueezeExcite(), (None, 8, 8, None), "known channel count"),
        (SqueezeExcite(), (None, 8, 8), "rank-4"),
    ],
)
def test_incompatible_inputs_raise_a_named_value_error(layer, shape, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.build(shape)
