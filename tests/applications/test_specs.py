"""The network table: names, validation, overrides."""

import re

import numpy as np
import pytest

from keras_attn.applications import list_models, specs

# The names the registry must offer (timm's where timm has the network).
EXPECTED_NAMES = {
    "resnet50", "resnet50d", "resnet101d",
    "seresnet18", "seresnet34", "seresnet50", "seresnet101", "seresnet152",
    "legacy_seresnet50", "legacy_seresnet101", "legacy_seresnet152",
    "seresnext26d_32x4d", "seresnext50_32x4d", "seresnext101_32x4d", "seresnext101_32x8d",
    "seresnext101_64x4d", "legacy_seresnext50_32x4d", "legacy_seresnext101_32x4d",
    "senet154", "legacy_senet154",
    "resnext50_32x4d", "resnext50d_32x4d", "resnext101_32x4d", "resnext101_32x8d",
    "resnext101_64x4d",
    "skresnet18", "skresnet34", "skresnet50", "skresnext50_32x4d",
    "resnest14d", "resnest26d", "resnest50d", "resnest101e", "resnest200e", "resnest269e",
    "resnest50d_1s4x24d", "resnest50d_4s2x40d",
    "resnest50_fast_1s1x64d", "resnest50_fast_2s1x64d", "resnest50_fast_4s1x64d",
    "resnest50_fast_1s2x40d", "resnest50_fast_2s2x40d", "resnest50_fast_4s2x40d",
    "resnest50_fast_1s4x24d",
    "sknet101", "resnext29_8x64d", "resnext29_16x64d", "seresnet20_cifar",
    "se_inception_v3", "se_inception_resnet_v2", "se_bn_inception",
    # timm's later SE, anti-aliased and weakly supervised networks, and ResNet-RS.
    "seresnet152d", "seresnet200d", "seresnet269d", "seresnext26t_32x4d",
    "seresnext101d_32x8d", "seresnetaa50d", "seresnextaa101d_32x8d", "seresnextaa201d_32x8d",
    "resnetrs50", "resnetrs101", "resnetrs152", "resnetrs200", "resnetrs270", "resnetrs350",
    "resnetrs420", "resnetaa50d", "resnetaa101d", "resnext101_32x16d", "resnext101_32x32d",
    # ECA, CBAM and Global Context.
    "ecaresnet26t", "ecaresnet50d", "ecaresnet50t", "ecaresnetlight", "ecaresnet101d",
    "ecaresnet200d", "ecaresnet269d", "ecaresnext26t_32x4d", "ecaresnext50t_32x4d",
    "cbamresnet18", "cbamresnet50", "gcresnet50",
}


def test_registry_offers_exactly_the_expected_names():
    assert set(list_models()) == EXPECTED_NAMES
    assert list_models() == sorted(EXPECTED_NAMES)
    assert list_models("resnest50d*") == ["resnest50d", "resnest50d_1s4x24d", "resnest50d_4s2x40d"]


def test_fast_variant_names_describe_their_row():
    for name in list_models("resnest50_fast_*"):
        radix, cardinality, width = map(int, re.fullmatch(r".*_(\d)s(\d)x(\d+)d", name).groups())
        spec = specs.get_spec(name)
        assert (spec.conv_args["radix"], spec.cardinality, spec.base_width) == (
            radix, cardinality, width
        )
        assert spec.avd and spec.avd_first and spec.shortcut == "avg" and spec.stem == "deep"


def test_rows_are_frozen_and_replace_merges_slot_arguments():
    spec = specs.get_spec("resnest50d")
    with pytest.raises(AttributeError):
        spec.depths = (1, 1, 1, 1)
    with pytest.raises(TypeError):
        spec.conv_args["radix"] = 4
    narrow = spec.replace(widths=[8, 16, 32, 64], conv_args={"rd_ratio": 0.5})
    assert narrow.widths == (8, 16, 32, 64)
    assert dict(narrow.conv_args) == {"radix": 2, "rd_ratio": 0.5}
    assert spec.widths == (64, 128, 256, 512)


def test_rows_take_numpy_integers_and_hold_python_ints():
    # Rows built from arrays or parsed configs carry NumPy integers; configs must stay JSON.
    spec = specs.get_spec("seresnext26d_32x4d")
    numpy_row = spec.replace(depths=np.array([2, 2, 2, 2]), cardinality=np.int64(32),
                             default_size=np.int32(224))
    assert numpy_row == spec
    assert {type(value) for value in (*numpy_row.depths, numpy_row.cardinality,
                                      numpy_row.default_size)} == {int}
    with pytest.raises(ValueError, match=re.escape("cardinality=True")):
        spec.replace(cardinality=True)
    with pytest.raises(ValueError, match="depths"):
        spec.replace(depths=np.array([2.0, 2.0, 2.0, 2.0]))


def test_total_stride():
    assert specs.get_spec("resnet50").total_stride == 32
    assert specs.get_spec("resnext29_8x64d").total_stride == 4


def test_unknown_name_suggests_close_names():
    with pytest.raises(ValueError, match=r"Unknown model name 'resnest50'.*'resnest50d'"):
        specs.get_spec("resnest50")
    with pytest.raises(ValueError, match=r"Unknown model name 'seresnext50'.*'seresnext50_32x4d'"):
        specs.get_spec("seresnext50")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"block": "bottle"}, "block='bottle'"),
        ({"depths": (3, 4, 6)}, "one entry per stage"),
        ({"depths": ()}, "depths"),
        ({"widths": (64, 0, 256, 512)}, "widths"),
        ({"cardinality": 0}, "cardinality=0"),
        ({"stem": "deeper"}, "stem='deeper'"),
        ({"shortcut": "pool"}, "shortcut='pool'"),
        ({"shortcut_kernel": 2}, "shortcut_kernel=2"),
        ({"gate": "nonlocal"}, "gate='nonlocal'"),
        ({"conv": "dynamic"}, "conv='dynamic'"),
        ({"conv_args": {"radx": 2}}, "['radx']"),
        ({"gate_args": {"reduction": 16}}, "['reduction']"),
        ({"colour": "red"}, "['colour']"),
        ({"aa_layer": "blur"}, "aa_layer='blur'"),
        ({"stem_pool": "avg"}, "stem_pool='avg'"),
        ({"aa_layer": "avg"}, "`aa_layer`='avg' (timm's anti-aliasing in resnet.py) needs "
                              "conv in ('plain',); received conv='splat'"),
    ],
)
def test_bad_rows_raise_a_named_value_error(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        specs.get_spec("resnest50d").replace(**changes)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"avd": True}, "needs avd in (False,); received avd=True"),
        ({"stem_pool": "max_ceil"},
         "needs stem_pool in ('max', 'conv', None); received stem_pool='max_ceil'"),
        ({"stride_in_1x1": True}, "needs stride_in_1x1 in (False,); received stride_in_1x1=True"),
        ({"timm_layout": "sknet"},
         "needs timm_layout in ('resnet',); received timm_layout='sknet'"),
        ({"aa_layer": None, "stem_pool": "conv", "timm_layout": "senet"},
         "senet.py has no such module. Received stem_pool='conv' with timm_layout='senet'"),
    ],
)
def test_anti_aliasing_and_the_convolution_stem_pool_take_timms_layouts_only(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        specs.get_spec("resnetaa50d").replace(**changes)


def test_basic_blocks_reject_grouped_bottleneck_settings():
    with pytest.raises(ValueError, match="cardinality=4"):
        specs.get_spec("seresnet18").replace(cardinality=4)


def test_timm_rows_say_what_timm_builds():
    # timm.models.resnet's model_args: 't' is the tiered deep stem with average-pool shortcuts,
    # 'aa' average-pool anti-aliasing, ResNet-RS a strided convolution for the stem pool and SE
    # gates a quarter of the channels wide.
    tiered = specs.get_spec("seresnext26t_32x4d")
    assert (tiered.stem, tiered.stem_width, tiered.shortcut) == ("deep_tiered", 32, "avg")
    for name in ("resnetaa50d", "resnetaa101d", "seresnetaa50d", "seresnextaa101d_32x8d",
                 "seresnextaa201d_32x8d"):
        spec = specs.get_spec(name)
        assert (spec.aa_layer, spec.stem, spec.shortcut, spec.stem_pool) == (
            "avg", "deep", "avg", "max")
    assert specs.get_spec("seresnextaa201d_32x8d").stem_width == 64
    for name in list_models("resnetrs*"):
        spec = specs.get_spec(name)
        assert (spec.stem_pool, spec.gate, dict(spec.gate_args), spec.aa_layer) == (
            "conv", "se", {"rd_ratio": 0.25}, None)
    assert specs.get_spec("resnetrs420").depths == (4, 44, 87, 4)
    assert specs.get_spec("resnext101_32x32d").base_width == 32


def test_the_stem_pool_convolution_keeps_timms_module_names():
    # timm's replace_stem_pool: maxpool = Sequential(conv, [aa], bn, act).
    plain = specs.get_spec("resnetrs50")
    assert plain.timm_stem_pool() == ("maxpool.0", "maxpool.1")
    assert plain.replace(aa_layer="avg").timm_stem_pool() == ("maxpool.0", "maxpool.2")
