"""timm checkpoints load into keras_attn networks and give timm's logits."""

import json
import os
import re

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from keras_attn.applications import get_model, specs
from keras_attn.convert import from_timm, load_timm_weights
from keras_attn.convert import timm as timm_convert
from keras_attn.layers import grouped_conv

from tests.conftest import FIXTURES

TIMM_FIXTURES = os.path.join(FIXTURES, "timm")

# Fixture -> (registry name, overrides). `test_overrides_build_what_timm_built` checks each
# against the timm arguments recorded in NAME.json.
CASES = {
    "resnet50d_narrow": ("resnet50d", {"stem_width": 8}),
    "resnext50_narrow": ("resnext50_32x4d", {"cardinality": 4}),
    "seresnet18_narrow": ("seresnet18", {}),
    "seresnet50_narrow": ("seresnet50", {}),
    "seresnext26d_narrow": ("seresnext26d_32x4d", {"cardinality": 4, "stem_width": 8}),
    "skresnet18_narrow": ("skresnet18", {}),
    "skresnext50_narrow": ("skresnext50_32x4d", {"cardinality": 4}),
    "resnest50d_narrow": ("resnest50d", {"stem_width": 8}),
    "resnest50d_4s2x40d_narrow": ("resnest50d_4s2x40d", {"stem_width": 8}),
    "resnetrs50_narrow": ("resnetrs50", {"stem_width": 8}),
    "resnetaa50d_narrow": ("resnetaa50d", {"stem_width": 8}),
    "seresnextaa101d_narrow": ("seresnextaa101d_32x8d", {"cardinality": 4, "stem_width": 8}),
    "ecaresnet50d_narrow": ("ecaresnet50d", {"stem_width": 8}),
    "ecaresnet26t_narrow": ("ecaresnet26t", {"stem_width": 8}),
    "cbamresnet50_narrow": ("cbamresnet50", {}),
    "cbamresnet18_narrow": ("cbamresnet18", {}),
    # timm's ResNet-D layout with GC gates (the gcresnet50 row has the plain stem).
    "gcresnet50_narrow": ("gcresnet50", {"stem": "deep", "stem_width": 8, "shortcut": "avg"}),
}
TIMM_BLOCKS = {
    "BasicBlock": ("basic", "plain"),
    "Bottleneck": ("bottleneck", "plain"),
    "SelectiveKernelBasic": ("basic", "sk"),
    "SelectiveKernelBottleneck": ("bottleneck", "sk"),
    "ResNestBottleneck": ("bottleneck", "splat"),
}


def _fixture(case):
    with open(os.path.join(TIMM_FIXTURES, f"{case}.json")) as file:
        timm_args = json.load(file)
    data = np.load(os.path.join(TIMM_FIXTURES, f"{case}.npz"))
    return timm_args, data["input_nhwc"], data["logits"]


def _overrides(case, timm_args):
    name, overrides = CASES[case]
    return name, dict(overrides, widths=timm_args["channels"], depths=timm_args["layers"])


def _model(case, **kwargs):
    timm_args, images, _ = _fixture(case)
    name, overrides = _overrides(case, timm_args)
    return get_model(
        name, input_shape=images.shape[1:], classes=timm_args["num_classes"],
        classifier_activation=None, **overrides, **kwargs,
    )


def _checkpoint(case):
    return os.path.join(TIMM_FIXTURES, f"{case}.safetensors")


@pytest.mark.parametrize("case", CASES)
def test_overrides_build_what_timm_built(case):
    """Reads the timm arguments of NAME.json and compares them with the row we build."""
    timm_args, _, _ = _fixture(case)
    name, overrides = _overrides(case, timm_args)
    spec = specs.get_spec(name).replace(**overrides)
    block_args = dict(timm_args.get("block_args", {}))
    block, conv = TIMM_BLOCKS[timm_args["block"]]
    assert (spec.block, spec.conv) == (block, conv)
    assert spec.widths == tuple(timm_args["channels"])
    assert spec.depths == tuple(timm_args["layers"])
    assert spec.cardinality == timm_args.get("cardinality", 1)
    assert spec.base_width == timm_args.get("base_width", 64)
    assert spec.stem == (timm_args.get("stem_type") or "plain")  # timm's "" is the plain stem
    if spec.stem != "plain":  # timm's plain stem is 64 wide whatever its stem_width
        assert spec.stem_width == timm_args["stem_width"]
    assert spec.stem_pool == ("conv" if timm_args.get("replace_stem_pool") else "max")
    assert spec.aa_layer == {None: None, "AvgPool2d": "avg"}[timm_args.get("aa_layer")]
    assert spec.shortcut == ("avg" if timm_args.get("avg_down") else "conv")
    assert spec.gate == block_args.pop("attn_layer", None)
    assert dict(spec.gate_args) == timm_args.get("attn_kwargs", {})
    if conv == "sk":
        assert dict(spec.conv_args) == block_args.pop("sk_kwargs")
    if conv == "splat":
        assert spec.conv_args["radix"] == block_args.pop("radix")
        assert (spec.avd, spec.avd_first) == (block_args.pop("avd"), block_args.pop("avd_first"))
    assert not block_args, f"timm arguments the test does not compare: {block_args}"


# Every fixture also runs under JAX and PyTorch (tests/backends): issues 30 and 31 promise
# timm's logits on all three backends for each of them.
@pytest.mark.backends
@pytest.mark.parametrize("case", CASES)
def test_logits_equal_timm(case):
    """timm's logits with every grouped-convolution formulation (GroupedConv2D)."""
    timm_args, images, logits = _fixture(case)
    model = _model(case)
    untrained = model.predict(images, verbose=0)
    assert np.abs(untrained - logits).max() > 1e-2  # the comparison below can fail
    load_timm_weights(model, _checkpoint(case))
    np.testing.assert_allclose(model.predict(images, verbose=0), logits, rtol=0, atol=1e-4)
    name, overrides = _overrides(case, timm_args)
    spec = specs.get_spec(name).replace(**overrides)
    if spec.cardinality == 1 and spec.conv != "splat":
        # No convolution with groups (the 3x3, SK's paths and Split-Attention's have
        # `cardinality` groups, Split-Attention's times radix): the formulations are one. Under
        # JAX each eager call below costs more than the rest of the test.
        return
    for implementation in ("native", "split"):  # "auto" is one of them
        with grouped_conv.grouped_conv_implementation(implementation):
            outputs = keras.ops.convert_to_numpy(model(images, training=False))
        np.testing.assert_allclose(outputs, logits, rtol=0, atol=1e-4, err_msg=implementation)


def test_a_renamed_network_and_one_reloaded_from_its_keras_file_convert_alike(tmp_path):
    # The converter reads the record the builder made, which the .keras file keeps: not the
    # model's name (a legacy SENet renamed once converted with resnet.py's names).
    _, images, logits = _fixture("skresnet18_narrow")
    model = _model("skresnet18_narrow", name="my_backbone")
    model.save(tmp_path / "untrained.keras")
    reloaded = keras.saving.load_model(tmp_path / "untrained.keras")
    for network in (model, reloaded):
        load_timm_weights(network, _checkpoint("skresnet18_narrow"))
        np.testing.assert_allclose(network.predict(images, verbose=0), logits, rtol=0, atol=1e-4)


def test_a_model_this_package_did_not_build_is_refused_by_name():
    inputs = keras.Input((32, 32, 3))
    foreign = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs), name="foreign")
    with pytest.raises(ValueError, match="'foreign' carries no record of its timm modules"):
        load_timm_weights(foreign, _checkpoint("skresnet18_narrow"))


@pytest.mark.backends  # also under JAX and PyTorch (tests/backends)
def test_from_timm_builds_loads_and_infers_the_classes():
    timm_args, images, logits = _fixture("resnest50d_4s2x40d_narrow")
    _, overrides = _overrides("resnest50d_4s2x40d_narrow", timm_args)
    model = from_timm("resnest50d_4s2x40d", _checkpoint("resnest50d_4s2x40d_narrow"),
                      classifier_activation=None, input_shape=(None, None, 3), **overrides)
    assert model.output_shape == (None, 10)
    np.testing.assert_allclose(model.predict(images, verbose=0), logits, atol=1e-4)
    bigger = model.predict(np.concatenate([images, images], axis=1), verbose=0)
    assert bigger.shape == (2, 10)


def test_without_top_the_features_reproduce_timm_logits():
    state = load_file(_checkpoint("seresnet50_narrow"))
    _, images, logits = _fixture("seresnet50_narrow")
    backbone = _model("seresnet50_narrow", include_top=False, pooling="avg")
    load_timm_weights(backbone, state)
    features = backbone.predict(images, verbose=0)
    np.testing.assert_allclose(features @ state["fc.weight"].T + state["fc.bias"], logits,
                               atol=1e-4)


def _weights(model):
    return [keras.ops.convert_to_numpy(w).copy() for w in model.weights]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("layer2.0.conv2.fc1.bias"),
         "no tensor 'layer2.0.conv2.fc1.bias' for weight 'stage2_block1_conv2/fc1/bias' "
         "of shape (32,)"),
        (lambda s: s.update({"layer9.0.conv1.weight": np.zeros((4, 4, 1, 1), "float32")}),
         "have no weight in model 'resnest50d': layer9.0.conv1.weight (4, 4, 1, 1)"),
        (lambda s: s.update({"layer1.0.bn3.running_var": np.ones(32, "float32")}),
         "'layer1.0.bn3.running_var' has shape (32,) ((32,) in Keras layout) but weight "
         "'stage1_block1_bn3/moving_variance' has shape (64,)"),
        # The last tensor cannot be cast: every one before it must stay unassigned too.
        (lambda s: s.update({"fc.bias": np.full(s["fc.bias"].shape, "x")}),
         "Checkpoint tensor 'fc.bias' (<U1) cannot be cast to weight 'predictions/bias'"),
    ],
)
def test_checkpoint_that_does_not_fit_is_named_and_changes_nothing(edit, message):
    state = load_file(_checkpoint("resnest50d_narrow"))
    edit(state)
    model = _model("resnest50d_narrow")
    before = _weights(model)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_timm_weights(model, state)
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)


def test_torch_tensors_load_in_bfloat16_too():
    # NumPy has no bfloat16: torch's tensors are read through float32 (exact), as safetensors'
    # bfloat16 already was.
    import torch

    state = load_file(_checkpoint("seresnet18_narrow"))
    rounded = {key: torch.from_numpy(value).to(torch.bfloat16) for key, value in state.items()}
    model = _model("seresnet18_narrow")
    load_timm_weights(model, rounded)
    expected = _model("seresnet18_narrow")
    load_timm_weights(expected, {key: value.float().numpy() for key, value in rounded.items()})
    for ours, theirs in zip(_weights(model), _weights(expected)):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("case", ["skresnet18_narrow", "seresnet18_narrow"])
def test_timm_state_dict_uses_the_rows_layout_and_inverts_loading(case):
    model = _model(case)
    load_timm_weights(model, _checkpoint(case))
    state = timm_convert.timm_state_dict(model)  # sknet.py's names for the SK network
    assert set(state) == {key for key in load_file(_checkpoint(case))
                          if not key.endswith("num_batches_tracked")}
    again = _model(case)
    load_timm_weights(again, state)
    for ours, theirs in zip(_weights(again), _weights(model)):
        np.testing.assert_array_equal(ours, theirs)


def test_checkpoint_of_another_architecture_is_refused():
    model = _model("seresnet50_narrow")
    with pytest.raises(ValueError, match="no tensor"):
        load_timm_weights(model, _checkpoint("resnet50d_narrow"))


def test_bad_checkpoint_arguments(tmp_path):
    model = _model("seresnet18_narrow")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_timm_weights(model, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match=re.escape("received 'model.ckpt'")):
        load_timm_weights(model, "model.ckpt")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_timm_weights(model, str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="received int"):
        load_timm_weights(model, 3)


def _training_checkpoint(state, ema_state, prefix=""):
    """What timm's train.py saves as model_best.pth.tar (timm.utils.CheckpointSaver): the
    weights beside the optimizer state, the arguments as an argparse.Namespace, the AMP
    scaler's state, the EMA's weights and the metric."""
    import argparse

    import torch

    def tensors(weights):
        return {prefix + key: torch.from_numpy(np.array(value)) for key, value in weights.items()}

    parameters = [torch.nn.Parameter(torch.ones(3))]
    optimizer = torch.optim.AdamW(parameters, lr=0.1)
    parameters[0].sum().backward()
    optimizer.step()
    return {
        "epoch": 41,
        "arch": "skresnet18",
        "state_dict": tensors(state),
        "optimizer": optimizer.state_dict(),
        "version": 2,
        "args": argparse.Namespace(model="skresnet18", lr=0.1, epochs=100, device="cuda:0",
                                   mean=None, input_size=(3, 64, 64), amp=True),
        "amp_scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                       "growth_interval": 2000, "_growth_tracker": 7},
        "state_dict_ema": tensors(ema_state),
        "metric": 71.5,
    }


@pytest.mark.parametrize("prefix", ["", "module.", "module._orig_mod."])
def test_timm_training_checkpoint_loads_the_model_or_its_ema(tmp_path, prefix):
    import torch

    trained = load_file(_checkpoint("skresnet18_narrow"))  # gives timm's logits
    noise = np.random.default_rng(0)
    latest = {key: np.asarray(value + noise.normal(0, 0.1, value.shape)).astype(value.dtype)
              for key, value in trained.items()}
    path = tmp_path / "model_best.pth.tar"
    torch.save(_training_checkpoint(latest, trained, prefix), path)
    _, images, logits = _fixture("skresnet18_narrow")

    ema = load_timm_weights(_model("skresnet18_narrow"), path, use_ema=True)
    np.testing.assert_allclose(ema.predict(images, verbose=0), logits, rtol=0, atol=1e-4)
    model = load_timm_weights(_model("skresnet18_narrow"), str(path))
    expected = load_timm_weights(_model("skresnet18_narrow"), latest)
    for ours, theirs in zip(_weights(model), _weights(expected)):
        np.testing.assert_array_equal(ours, theirs)
    assert not np.allclose(model.predict(images, verbose=0), logits, atol=1e-2)


def test_ema_weights_are_named_when_missing(tmp_path):
    state = load_file(_checkpoint("seresnet18_narrow"))
    model = _model("seresnet18_narrow")
    before = _weights(model)
    with pytest.raises(ValueError, match=re.escape(
            "seresnet18_narrow.safetensors' has no EMA weights (no state_dict_ema or model_ema "
            f"entry): it is a state dict of {len(state)} tensors, not a training checkpoint. "
            "Pass use_ema=False")):
        load_timm_weights(model, _checkpoint("seresnet18_narrow"), use_ema=True)
    with pytest.raises(ValueError, match=re.escape(
            "The checkpoint has no EMA weights (no state_dict_ema or model_ema entry): its "
            "entries are 'state_dict', 'epoch'. Pass")):
        load_timm_weights(model, {"state_dict": state, "epoch": 3}, use_ema=True)
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)


class _Hook:  # any class but argparse.Namespace stays refused
    pass


def test_a_pickled_object_in_a_training_checkpoint_is_still_refused(tmp_path):
    import argparse

    import torch

    state = load_file(_checkpoint("seresnet18_narrow"))
    path = tmp_path / "last.pth.tar"
    torch.save({"state_dict": state, "args": argparse.Namespace(hook=_Hook())}, path)
    with pytest.raises(ValueError, match="is not a plain PyTorch state dict"):
        load_timm_weights(_model("seresnet18_narrow"), path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        load_timm_weights(_model("seresnet18_narrow"), path)


def _legacy_keys(stem_convs, depths, shortcut_blocks):
    """The keys timm's senet.py gives a legacy SENet (layer0, se_module, last_linear)."""
    bn = ("weight", "bias", "running_mean", "running_var")
    keys = set()
    for i in range(1, stem_convs + 1):
        keys |= {f"layer0.conv{i}.weight"} | {f"layer0.bn{i}.{p}" for p in bn}
    for stage, depth in enumerate(depths, start=1):
        for index in range(depth):
            block = f"layer{stage}.{index}"
            for i in (1, 2, 3):
                keys |= {f"{block}.conv{i}.weight"} | {f"{block}.bn{i}.{p}" for p in bn}
            keys |= {f"{block}.se_module.fc{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
            if (stage, index) in shortcut_blocks:
                keys |= {f"{block}.downsample.0.weight"} | {f"{block}.downsample.1.{p}" for p in bn}
    return keys | {"last_linear.weight", "last_linear.bias"}


@pytest.mark.parametrize(
    "name, stem_convs, shortcut_blocks, overrides",
    [
        # 64 stem channels = 4 x 16: the first block needs no projection.
        ("legacy_seresnet50", 1, {(2, 0), (3, 0), (4, 0)}, {"widths": (16, 32, 64, 128)}),
        ("legacy_senet154", 3, {(1, 0), (2, 0), (3, 0), (4, 0)},
         {"widths": (16, 32, 64, 128), "cardinality": 4, "base_width": 16, "stem_width": 8}),
    ],
)
def test_legacy_senet_checkpoints_use_senet_py_names(
    name, stem_convs, shortcut_blocks, overrides, tmp_path
):
    depths = (2, 1, 1, 1)
    model = get_model(name, depths=depths, input_shape=(64, 64, 3), classes=7, **overrides)
    keys = timm_convert.timm_variable_keys(model)
    expected = _legacy_keys(stem_convs, depths, shortcut_blocks)
    assert set(keys.values()) == expected
    # A checkpoint with exactly those keys, in PyTorch layouts, loads and sets every weight.
    rng = np.random.default_rng(0)
    state = {}
    for variable in model.weights:
        value = rng.normal(size=variable.shape).astype("float32")
        if value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)
        elif value.ndim == 2:
            value = value.T
        state[keys[variable.path]] = np.ascontiguousarray(value)  # safetensors writes raw buffers
    save_file(state, str(tmp_path / "legacy.safetensors"))
    load_timm_weights(model, str(tmp_path / "legacy.safetensors"))
    kernel = model.get_layer("stage1_block1_conv2").kernel
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(kernel), state["layer1.0.conv2.weight"].transpose(2, 3, 1, 0)
    )
