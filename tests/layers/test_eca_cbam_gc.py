"""ECA, CBAM and Global Context: what each computes is what timm's module computes, ECA's kernel
size is the paper's equation as timm evaluates it, and what is particular to each.

The timm values come from tests/fixtures/make_timm_attention_layers.py (timm 1.0.31, random
values in every parameter and BatchNorm buffer); timm is not a test dependency.
"""

import fractions
import json
import math
import os
import re

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn import attention, inspect, testing
from keras_attn.applications import get_model
from keras_attn.convert import timm as timm_convert
from keras_attn.layers import CBAM, EfficientChannelAttention, GlobalContext
from keras_attn.layers.efficient_channel_attention import eca_kernel_size

FIXTURE = np.load(os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                               "timm_attention_layers.npz"))

# case: (layer, its arguments, timm's arguments as the fixture records them)
TIMM_CASES = {
    "eca_256": (EfficientChannelAttention, {}, {"channels": 256}),
    "eca_40_gamma1_beta0": (EfficientChannelAttention, {"gamma": 1, "beta": 0},
                            {"channels": 40, "gamma": 1, "beta": 0}),
    "eca_kernel7": (EfficientChannelAttention, {"kernel_size": 7},
                    {"channels": None, "kernel_size": 7}),
    "cbam_64": (CBAM, {}, {"channels": 64}),
    "cbam_48_options": (
        CBAM, {"rd_ratio": 0.25, "rd_divisor": 8, "spatial_kernel_size": 3, "mlp_bias": True},
        {"channels": 48, "rd_ratio": 0.25, "rd_divisor": 8, "spatial_kernel_size": 3,
         "mlp_bias": True},
    ),
    "gc_64": (GlobalContext, {}, {"channels": 64}),
    "gc_48_add_and_scale": (
        GlobalContext, {"fuse_add": True, "fuse_scale": True, "rd_ratio": 0.25},
        {"channels": 48, "fuse_add": True, "fuse_scale": True, "rd_ratio": 0.25},
    ),
    "gc_32_mean_add": (
        GlobalContext, {"use_attn": False, "fuse_add": True, "fuse_scale": False, "rd_channels": 6},
        {"channels": 32, "use_attn": False, "fuse_add": True, "fuse_scale": False,
         "rd_channels": 6},
    ),
}
# What the fixture calls the one array a kind's registry entry reads (CBAM reads a dict).
READ_AS = {EfficientChannelAttention: "channel", GlobalContext: "positions"}


def _timm_state(case):
    """`{timm key: array}` of a fixture case (timm's keys hold a dot; the other entries not)."""
    prefix = f"{case}/"
    return {key[len(prefix):]: FIXTURE[key] for key in FIXTURE.files
            if key.startswith(prefix) and "." in key[len(prefix):]}


def _load_timm_tensors(layer, state):
    """Sets `layer`'s weights from a timm module's `state` with the converter's name map, as
    `load_timm_weights` does inside a network whose gate is timm's `se` module; every timm
    tensor must be used."""
    unused = {key for key in state if not key.endswith("num_batches_tracked")}
    values = []
    for variable in layer.weights:
        key = timm_convert._variable_key("se", layer, variable).removeprefix("se.")
        if key not in state:
            pytest.fail(f"{variable.path} -> {key!r}, which timm's module lacks: {sorted(state)}")
        unused.discard(key)
        values.append(timm_convert._transpose(state[key], timm_convert._KERAS_AXES))
    assert not unused, f"timm tensors no weight takes: {sorted(unused)}"
    layer.set_weights(values)


def _timm_twin(case):
    cls, kwargs, timm_kwargs = TIMM_CASES[case]
    assert json.loads(str(FIXTURE[f"{case}/timm_kwargs"])) == timm_kwargs
    x = FIXTURE[f"{case}/input"]
    layer = cls(**kwargs)
    layer.build(x.shape)
    _load_timm_tensors(layer, _timm_state(case))
    return layer, x


# Under JAX and PyTorch (tests/backends) every case but two of ECA's: its three compute the same
# ops with kernels of other sizes (the sizes are Python arithmetic, compared with timm's below).
@pytest.mark.parametrize(
    "case",
    [case if case in ("eca_40_gamma1_beta0", "eca_kernel7")
     else pytest.param(case, marks=pytest.mark.backends) for case in TIMM_CASES],
)
def test_each_layer_computes_what_timms_module_computes(case):
    layer, x = _timm_twin(case)
    outputs = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(outputs, FIXTURE[f"{case}/output"], rtol=0, atol=1e-5)

    # What keras_attn.inspect reads is what timm's gates (and GC's softmax) computed.
    read = attention.kind_of(layer).read(layer.attention_weights(x))
    parts = read if isinstance(read, dict) else {READ_AS[type(layer)]: read}
    assert parts
    for part, weights in parts.items():
        key = f"{case}/attention/{part}"
        if key in FIXTURE.files:
            expected = FIXTURE[key]
        else:  # use_attn=False: the context is the plain mean, uniform weights
            assert case == "gc_32_mean_add"
            expected = np.full(x.shape[:3], 1 / (x.shape[1] * x.shape[2]), "float32")
        np.testing.assert_allclose(keras.ops.convert_to_numpy(weights), expected,
                                   rtol=0, atol=1e-6, err_msg=part)


def _paper_kernel_size(channels, gamma, beta):
    """ECA-Net's equation (12), k = |log2(C) / gamma + beta / gamma|_odd, with |t|_odd as the
    paper's code and timm take it (t truncated, one added when even) and timm's floor of 3;
    in exact integer arithmetic: with gamma = p / q and beta = r / q, t is the largest integer
    with p * t <= q * log2(C) + r, that is 2 ** (p * t) <= C ** q * 2 ** r."""
    gamma, beta = fractions.Fraction(gamma), fractions.Fraction(beta)
    q = math.lcm(gamma.denominator, beta.denominator)
    p, r = int(gamma * q), int(beta * q)
    bound = channels ** q * 2 ** max(r, 0)
    t = 0
    while 2 ** (p * (t + 1) + max(-r, 0)) <= bound:
        t += 1
    return max(t if t % 2 else t + 1, 3)


@pytest.mark.backends
@pytest.mark.parametrize("gamma, beta", [(2, 1), (1, 0), (1.5, 0.5), (3, 2)])
def test_eca_kernel_size_is_timms_for_every_channel_count_from_16_to_4096(gamma, beta):
    channels = FIXTURE["eca_kernel_size/channels"].tolist()
    assert channels == list(range(16, 4097))
    layer = EfficientChannelAttention(gamma=gamma, beta=beta)
    ours = [layer.kernel_size_for(c) for c in channels]
    assert ours == [_paper_kernel_size(c, gamma, beta) for c in channels]
    assert ours == FIXTURE[f"eca_kernel_size/gamma{gamma}_beta{beta}"].tolist()
    # The kernel the layer builds is that one.
    for c in (16, 31, 32, 127, 128, 2047, 2048, 4096):
        built = EfficientChannelAttention(gamma=gamma, beta=beta)
        built.build((None, 3, 3, c))
        assert built.conv.kernel_size == (ours[c - 16],)
        assert built.conv.kernel.shape == (ours[c - 16], 1, 1)


@pytest.mark.backends
def test_eca_kernel_size_when_given_ignores_the_channel_count():
    layer = EfficientChannelAttention(kernel_size=9, gamma=1)
    assert [layer.kernel_size_for(c) for c in (16, 4096)] == [9, 9]
    assert eca_kernel_size(2048) == 7 and eca_kernel_size(4096, gamma=1, beta=0) == 13


@pytest.mark.backends
@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: EfficientChannelAttention(kernel_size=4), "kernel_size=4"),
        (lambda: EfficientChannelAttention(kernel_size=0), "kernel_size=0"),
        (lambda: EfficientChannelAttention(kernel_size=3.0), "kernel_size=3.0"),
        (lambda: EfficientChannelAttention(gamma=0), "gamma=0"),
        (lambda: EfficientChannelAttention(gamma=-2), "gamma=-2"),
        (lambda: EfficientChannelAttention(gamma=float("inf")), "gamma=inf"),
        (lambda: EfficientChannelAttention(beta=float("nan")), "beta=nan"),
        (lambda: EfficientChannelAttention(beta="1"), "beta='1'"),
        (lambda: CBAM(spatial_kernel_size=6), "spatial_kernel_size=6"),
        (lambda: CBAM(spatial_kernel_size=None), "spatial_kernel_size=None"),
        (lambda: CBAM(rd_ratio=0), "rd_ratio=0"),
        (lambda: CBAM(rd_ratio=-0.25), "rd_ratio=-0.25"),
        (lambda: CBAM(rd_channels=0), "rd_channels=0"),
        (lambda: CBAM(rd_divisor=0), "rd_divisor=0"),
        (lambda: GlobalContext(rd_ratio=0), "rd_ratio=0"),
        (lambda: GlobalContext(rd_channels=2.5), "rd_channels=2.5"),
        (lambda: GlobalContext(fuse_add=False, fuse_scale=False),
         "fuse_add=False, fuse_scale=False"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_the_argument_and_value(factory, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        factory()


@pytest.mark.backends
@pytest.mark.parametrize("layer", [EfficientChannelAttention, CBAM, GlobalContext])
def test_mixed_precision_computes_every_sublayer_of_the_attention_in_float32(layer):
    mixed = layer(dtype="mixed_float16")
    mixed.build((None, 9, 9, 32))
    sublayers = [sub for sub in mixed._flatten_layers(include_self=False)]
    assert len(sublayers) >= 1
    assert {sub.compute_dtype for sub in sublayers} == {"float32"}
    assert {keras.backend.standardize_dtype(w.dtype) for w in mixed.weights} == {"float32"}


@pytest.mark.backends
def test_global_context_attention_bias_is_cancelled_by_the_softmax():
    # timm's conv_attn has a bias (so its checkpoints hold one); a softmax over positions
    # cancels it: the output does not depend on it, and its gradient is zero but for rounding
    # (the generic fit test sees it move by about 1e-11).
    layer, x = _timm_twin("gc_64")
    expected = keras.ops.convert_to_numpy(layer(x))
    kernel, bias = layer.conv_attn.get_weights()
    layer.conv_attn.set_weights([kernel, bias + 5.0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=0, atol=1e-6)

    cotangent = keras.ops.convert_to_tensor(testing.random_images(x.shape, seed=3))

    def loss(kernel, bias):
        given = {id(layer.conv_attn.kernel): kernel, id(layer.conv_attn.bias): bias}
        trainable = [given.get(id(v), v) for v in layer.trainable_variables]
        outputs, _ = layer.stateless_call(trainable, layer.non_trainable_variables, x)
        return keras.ops.sum(outputs * cotangent)

    kernel_gradient, bias_gradient = testing.gradients(loss, kernel, bias + 5.0)
    assert np.abs(kernel_gradient).max() > 1e-2
    assert np.abs(bias_gradient).max() < 1e-6 * np.abs(kernel_gradient).max()


def test_global_context_fuse_add_starts_as_the_identity_and_then_trains():
    # timm (and the paper) start the added transform at zero; its first layers then get no
    # gradient until the last one has moved, so the fit check starts from a trained state.
    layer = GlobalContext(fuse_add=True, fuse_scale=False, rd_ratio=0.25)
    x = testing.random_images((4, 9, 9, 32))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    inputs = keras.Input((None, None, 32))
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(layer(inputs)))
    model = keras.Model(inputs, outputs)
    kernel, bias = layer.mlp_add_fc2.get_weights()
    layer.mlp_add_fc2.set_weights([testing.random_images(kernel.shape) - 0.5, bias])
    testing.assert_fit_changes_every_weight(model, x, np.array([0, 1, 2, 1]), from_logits=True)


SMALL = {"widths": (16, 32, 64, 128), "depths": (1, 1, 1, 1), "input_shape": (32, 32, 3),
         "classes": 5}
DEFAULT_CASE = {"eca": "eca_256", "cbam": "cbam_64", "gc": "gc_64"}


@pytest.mark.parametrize("kind", ["eca", "cbam", "gc"])
def test_a_network_with_the_gate_converts_to_and_from_timm_keys(kind):
    # A row's gate replaced by the kind; timm's ResNet names a block's attention module `se`
    # (create_attn(attn_layer, ...)) whatever its kind.
    model = get_model("seresnet18", gate=kind, **SMALL)
    layer = model.get_layer(f"stage1_block1_{kind}")
    assert type(layer) is attention.get(kind).layer
    keys = timm_convert.timm_variable_keys(model)
    gate_keys = {keys[w.path] for w in layer.weights}
    timm_keys = {f"layer1.0.se.{key}" for key in _timm_state(DEFAULT_CASE[kind])
                 if not key.endswith("num_batches_tracked")}
    assert gate_keys == timm_keys
    testing.perturb_batch_norm_statistics(model)
    state = timm_convert.timm_state_dict(model)
    keras.utils.set_random_seed(1)
    twin = get_model("seresnet18", gate=kind, **SMALL)
    timm_convert.load_timm_weights(twin, state)
    images = testing.random_images((2, 32, 32, 3))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(twin(images)),
                                  keras.ops.convert_to_numpy(model(images)))


def test_cbam_spatial_batch_norm_is_folded_for_inference():
    model = get_model("seresnet18", gate="cbam", **SMALL)
    testing.perturb_batch_norm_statistics(model)
    images = testing.random_images((3, 32, 32, 3))
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    optimized = keras_attn.optimize_for_inference(model)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(optimized(images, training=False)),
                               expected, rtol=0, atol=1e-5)
    gates = [f"stage{stage}_block1_cbam" for stage in (1, 2, 3, 4)]
    assert list(optimized.optimization.rebuilt_attention) == gates
    for name in gates:
        folded = optimized.get_layer(name)
        assert folded.spatial_bn is None and folded.spatial_conv.use_bias


@pytest.mark.parametrize("kind", ["eca", "cbam", "gc"])
def test_inspect_reads_what_each_gate_applies(kind):
    model = get_model("seresnet18", gate=kind, **SMALL)
    testing.perturb_batch_norm_statistics(model)
    images = testing.random_images((3, 32, 32, 3))
    weights = inspect.attention_model(model).predict(images, verbose=0)
    gates = [layer for layer in model.layers if type(layer) is attention.get(kind).layer]
    expected_keys = [
        key for gate in gates
        for key in ([f"{gate.name}/channel", f"{gate.name}/spatial"] if kind == "cbam"
                    else [gate.name])
    ]
    assert list(weights) == expected_keys
    for gate in gates:
        gate_input = keras.Model(model.input, gate.input)(images)
        own = gate.attention_weights(gate_input)
        height, width, channels = gate.input.shape[1:]
        if kind == "cbam":
            read = {"channel": ((3, channels), own["channel"]),
                    "spatial": ((3, height, width), own["spatial"])}
        elif kind == "eca":
            read = {"": ((3, channels), own)}
        else:
            read = {"": ((3, height, width), own)}
            np.testing.assert_allclose(weights[gate.name].sum(axis=(1, 2)), 1.0, atol=1e-5)
        for part, (shape, value) in read.items():
            key = f"{gate.name}/{part}" if part else gate.name
            assert weights[key].shape == shape and weights[key].dtype == np.float32
            np.testing.assert_allclose(weights[key],
                                       keras.ops.convert_to_numpy(value).reshape(shape),
                                       rtol=0, atol=1e-6, err_msg=key)
