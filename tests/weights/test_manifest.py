"""The manifest: shipped in the package, consistent with the registry and timm's configs."""

import filecmp
import json
import os
import re

from keras_attn import weights as published
from keras_attn.applications import list_models, specs

from tests.conftest import FIXTURES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIELDS = {"hub_id", "url", "format", "sha256", "license", "top1", "top5", "eval_size",
          "input_size", "test_input_size", "crop_pct", "test_crop_pct", "interpolation",
          "mean", "std", "num_classes"}


def test_package_copy_equals_the_top_level_manifest():
    top_level = os.path.join(ROOT, "weights", "manifest.json")
    shipped = os.path.join(ROOT, "keras_attn", "weights", "manifest.json")
    assert filecmp.cmp(top_level, shipped, shallow=False)
    with open(top_level) as file:
        assert json.load(file) == published.manifest()


def test_every_entry_is_a_registry_network_with_complete_records():
    models = published.manifest()["models"]
    assert set(models) <= set(list_models())
    for name, entry in models.items():
        assert entry["default_tag"] in entry["tags"]
        for tag, info in entry["tags"].items():
            assert set(info) == FIELDS, (name, tag)
            assert info["interpolation"] in ("bilinear", "bicubic")
            # ImageNet-12k classifiers (timm's in12k tags) have no ImageNet-1k accuracy.
            assert info["num_classes"] == (11821 if tag.endswith("in12k") else 1000), (name, tag)
            if info["num_classes"] == 1000:
                assert 0 < info["top5"] < 100 and 0 < info["top1"] < info["top5"]
                assert info["eval_size"] == info["input_size"]
            else:
                assert info["top1"] is None and info["top5"] is None
                assert info["eval_size"] is None
            assert info["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", info["sha256"])
            if info["hub_id"]:
                assert info["hub_id"] == f"timm/{name}.{tag}"
                assert info["url"] == (
                    f"https://huggingface.co/{info['hub_id']}/resolve/main/model.safetensors"
                )
                assert info["format"] == "safetensors"
            else:
                assert info["format"] == "pth" and info["url"].startswith("https://")


def test_default_tags_match_timms_pretrained_configs():
    with open(os.path.join(FIXTURES, "timm_models.json")) as file:
        timm = json.load(file)
    published_names = {name for name, info in timm.items() if info.get("tag") not in
                       (None, "untrained")} & set(list_models())
    assert set(published.names_with_weights()) == published_names
    for name in published_names:
        info = published.tag_info(name, published.resolve_tag(name, "imagenet"))
        reference = timm[name]
        assert published.tags(name)[0] == reference["tag"]
        if "tags" in reference:  # every tag timm publishes
            assert sorted(published.tags(name)) == sorted(reference["tags"]), name
        assert info["hub_id"] == reference["hf_hub_id"]
        assert info["input_size"] == reference["input_size"][1] == specs.SPECS[name].default_size
        assert info["crop_pct"] == reference["crop_pct"]
        assert info["interpolation"] == reference["interpolation"]
        assert info["mean"] == reference["mean"] and info["std"] == reference["std"]
        assert tuple(info["mean"]) == specs.SPECS[name].mean
