"""The attention registry: each kind declared once, and an application's own kind plugs into the
networks, training, saving and keras_attn.inspect without any change to the package."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_attn import attention, inspect, testing
from keras_attn.applications import get_model, specs
from keras_attn.layers import (
    CBAM,
    EfficientChannelAttention,
    GlobalContext,
    SelectiveKernel,
    SplitAttention,
    SqueezeExcite,
)


@keras.saving.register_keras_serializable(package="keras_attn_tests")
class ChannelScale(keras.layers.Layer):
    """A gate of this test's own: a learned sigmoid scale per channel, times the pooled mean's
    sigmoid (so that it depends on the input)."""

    def __init__(self, temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="scale")

    def attention_weights(self, inputs):
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
        return ops.sigmoid((self.scale + pooled) / self.temperature)

    def call(self, inputs):
        return inputs * self.attention_weights(inputs)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@pytest.fixture
def channel_scale():
    kind = attention.register(attention.AttentionKind(
        name="chscale", slot="gate", layer=ChannelScale, arguments=("temperature",),
        paper=attention.Paper("Tests, 2026", "A scale per channel", "https://example.org"),
        description="a learned sigmoid scale per channel"))
    yield kind
    attention.unregister("chscale")


def test_the_package_declares_its_kinds_once():
    assert [(k.name, k.slot, k.layer) for k in attention.kinds()] == [
        ("se", "gate", SqueezeExcite), ("sk", "conv", SelectiveKernel),
        ("splat", "conv", SplitAttention), ("eca", "gate", EfficientChannelAttention),
        ("cbam", "gate", CBAM), ("gc", "gate", GlobalContext)]
    assert [k.name for k in attention.kinds("gate")] == ["se", "eca", "cbam", "gc"]
    assert [k.timm_module for k in attention.kinds("gate")] == [
        "timm.layers.SEModule", "timm.layers.EcaModule", "timm.layers.cbam.CbamModule",
        "timm.layers.GlobalContext"]
    assert specs.PAPERS["senet"] is attention.get("se").paper
    # Which kinds make maps over positions is declared, not inferred from ranks (SK's
    # (batch, branches, channels) is rank 3 as a map is).
    assert {k.name: k.spatial_map for k in attention.kinds()} == {
        "se": False, "sk": False, "splat": False, "eca": False, "cbam": "spatial", "gc": True}


def test_an_applications_own_gate_builds_trains_saves_and_is_inspected(channel_scale, tmp_path):
    model = get_model("resnet50", gate="chscale", gate_args={"temperature": 2.0},
                      widths=(8, 16, 32, 64), depths=(1, 1, 1, 1), input_shape=(32, 32, 3),
                      classes=3)
    gates = [layer for layer in model.layers if isinstance(layer, ChannelScale)]
    assert [g.name for g in gates] == [f"stage{s}_block1_chscale" for s in (1, 2, 3, 4)]
    assert {g.temperature for g in gates} == {2.0}
    images = testing.random_images((4, 32, 32, 3))
    testing.assert_fit_changes_every_weight(model, images, np.array([0, 1, 2, 1]))
    reloaded = testing.assert_keras_file_round_trip(model, images, str(tmp_path))
    assert reloaded.structure == model.structure
    weights = inspect.attention_model(reloaded).predict(images, verbose=0)
    assert sorted(weights) == [g.name for g in gates]
    # What the gate of the first block applies to its input, the output of the BatchNorm before.
    gate_input = keras.Model(model.input, model.get_layer("stage1_block1_bn3").output)(images)
    expected = keras.ops.convert_to_numpy(gates[0].attention_weights(gate_input))
    np.testing.assert_allclose(weights["stage1_block1_chscale"], expected.reshape(4, -1),
                               rtol=0, atol=1e-6)


def test_rows_are_checked_against_the_registry(channel_scale):
    with pytest.raises(ValueError, match=r"`gate` must be None or a registered gate-slot "
                                         r"attention kind \['se', 'eca', 'cbam', 'gc', "
                                         r"'chscale'\]; received gate='nonlocal'"):
        specs.get_spec("resnet50").replace(gate="nonlocal")
    with pytest.raises(ValueError, match=r"`conv` must be 'plain' or a registered conv-slot "
                                         r"attention kind \['sk', 'splat'\]; received conv='se'"):
        specs.get_spec("resnet50").replace(conv="se")
    with pytest.raises(ValueError, match=r"`gate_args` has arguments \['rd_ratio'\] that the "
                                         r"'chscale' slot does not take; it takes "
                                         r"\['temperature'\]"):
        specs.get_spec("resnet50").replace(gate="chscale", gate_args={"rd_ratio": 0.5})


def test_registering_is_checked(channel_scale):
    with pytest.raises(ValueError, match="named 'chscale' exists already"):
        attention.register(channel_scale)
    assert attention.register(channel_scale, replace=True) is channel_scale
    with pytest.raises(ValueError, match=r"Unknown attention kind 'nonlocal'; registered kinds "
                                         r"are \['cbam', 'chscale', 'eca', 'gc', 'se', 'sk', "
                                         r"'splat'\]"):
        attention.get("nonlocal")
    paper = channel_scale.paper
    for changes, message in [
        ({"slot": "neck"}, r"`slot` must be one of \('gate', 'conv'\); received slot='neck'"),
        ({"name": "Se-2"}, r"lowercase identifier.*name='Se-2'"),
        ({"name": "plain"}, "'plain' is the conv slot's plain convolution"),
        ({"layer": keras.layers.ReLU}, r"ReLU has no attention_weights\(inputs\) method"),
        ({"spatial_map": ""}, r"`spatial_map` must be True .*received spatial_map=''"),
        ({"spatial_map": 1}, r"`spatial_map` must be True .*received spatial_map=1\."),
        ({"spatial_map": ("spatial",)}, r"received spatial_map=\('spatial',\)"),
    ]:
        fields = dict(name="x", slot="gate", layer=ChannelScale, arguments=(), paper=paper,
                      description="-")
        with pytest.raises(ValueError, match=message):
            attention.AttentionKind(**{**fields, **changes})


def test_a_kind_without_a_timm_module_cannot_load_timm_checkpoints(channel_scale):
    from keras_attn.convert import timm as timm_convert

    model = get_model("resnet50", gate="chscale", widths=(8, 16, 32, 64), depths=(1, 1, 1, 1),
                      input_shape=(32, 32, 3), classes=3)
    with pytest.raises(ValueError, match="'stage1_block1_chscale' is a ChannelScale, attention "
                                         "kind 'chscale', which has no timm counterpart"):
        timm_convert.timm_variable_keys(model)
