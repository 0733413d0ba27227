"""Published checkpoints: the manifest of what exists, and where to fetch it.

`weights/manifest.json` (shipped in the package as `keras_attn/weights/manifest.json`)
lists, per registry name, timm's published ImageNet checkpoints: hub id, URL, sha256 where
known, license, top-1, the preprocessing each was evaluated with, and how many classes its
classifier has (`num_classes`: ImageNet-1k's 1000, or ImageNet-12k's 11821 for the `in12k`
tags). `weights="imagenet"`
names a network's default tag. `keras_attn.weights.fetch` downloads, verifies, converts and
caches.

`KERAS_ATTN_WEIGHTS_URL` replaces `https://huggingface.co` (mirrors, air-gapped sites, tests).
"""

import functools
import json
import os
from importlib import resources

__all__ = [
    "checkpoint_url", "manifest", "names_with_weights", "resolve_tag", "tag_info", "tags",
]

BASE_URL_VARIABLE = "KERAS_ATTN_WEIGHTS_URL"
IMAGENET = "imagenet"


@functools.lru_cache(maxsize=1)
def manifest():
    """The parsed manifest: `{"hub_url": ..., "models": {name: {"default_tag", "tags"}}}`."""
    text = resources.files("keras_attn.weights").joinpath("manifest.json").read_text("utf-8")
    return json.loads(text)


def names_with_weights():
    """Registry names that have published weights, sorted."""
    return sorted(manifest()["models"])


def tags(name):
    """Published tags of `name`, the default first; empty when it has none."""
    entry = manifest()["models"].get(name)
    if entry is None:
        return []
    default = entry["default_tag"]
    return [default] + [tag for tag in entry["tags"] if tag != default]


def resolve_tag(name, weights):
    """The tag that `weights` ("imagenet" or a tag) names for the network `name`."""
    available = tags(name)
    if not available:
        raise ValueError(
            f"{name!r} has no published weights (weights={weights!r}). Networks with "
            f"published weights: {', '.join(names_with_weights())}."
        )
    if weights == IMAGENET:
        return available[0]
    if weights in available:
        return weights
    raise ValueError(
        f"{name!r} has no weights tagged {weights!r}; its tags are {available} "
        f"({IMAGENET!r} is {available[0]!r})."
    )


def tag_info(name, tag):
    """The manifest's record of one checkpoint (URL, hash, accuracy, preprocessing)."""
    return manifest()["models"][name]["tags"][tag]


def num_classes(name, tag):
    """How many classes the checkpoint's classifier has: 1000 (ImageNet-1k), 11821
    (ImageNet-12k), ..."""
    return tag_info(name, tag)["num_classes"]


# The label sets of timm's classifiers, by their number of classes.
DATASETS = {1000: "ImageNet-1k", 11821: "ImageNet-12k"}


def dataset_of(classes):
    """The label set a classifier of `classes` classes was trained on, in words."""
    return DATASETS.get(classes, f"{classes} classes of their own")


def tags_with_classes(classes):
    """`["name.tag", ...]` of every published checkpoint whose classifier has `classes`."""
    return [f"{name}.{tag}" for name in names_with_weights() for tag in tags(name)
            if num_classes(name, tag) == classes]


def checkpoint_url(name, tag):
    """Where the checkpoint is fetched from, with `KERAS_ATTN_WEIGHTS_URL` applied."""
    info = tag_info(name, tag)
    base = os.environ.get(BASE_URL_VARIABLE, "").rstrip("/")
    if not base:
        return info["url"]
    if info["hub_id"]:
        return f"{base}/{info['hub_id']}/resolve/main/model.safetensors"
    return f"{base}/{info['url'].rsplit('/', 1)[-1]}"
