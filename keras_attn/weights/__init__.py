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
    """The parsed manifest of published checkpoints, read once from the package.

    Returns:
        A dict `{"about": ..., "hub_url": ..., "models": {name: {"default_tag": tag,
        "tags": {tag: record}}}}`; each record is what `tag_info` returns. The same dict on
        every call (cached): do not change it.

    Examples:
        >>> entry = manifest()["models"]["seresnet50"]
        >>> entry["default_tag"], sorted(entry["tags"])
        ('a1_in1k', ['a1_in1k', 'a2_in1k', 'a3_in1k', 'ra2_in1k'])
    """
    text = resources.files("keras_attn.weights").joinpath("manifest.json").read_text("utf-8")
    return json.loads(text)


def names_with_weights():
    """Registry names that have published weights, so that `weights="imagenet"` works.

    Returns:
        The names (of `keras_attn.applications.list_models()`) with at least one published
        checkpoint in the manifest, sorted.

    Examples:
        >>> names = names_with_weights()
        >>> "seresnet50" in names, "seresnet20_cifar" in names
        (True, False)
    """
    return sorted(manifest()["models"])


def tags(name):
    """Published tags of the network `name`, the default (`weights="imagenet"`) first.

    Args:
        name: a registry name.

    Returns:
        A list of tags, the default tag first and the others in the manifest's order; empty
        when `name` has no published weights (or is no registry name).

    Examples:
        >>> tags("seresnet50")
        ['a1_in1k', 'a2_in1k', 'a3_in1k', 'ra2_in1k']
        >>> tags("seresnet20_cifar")
        []
    """
    entry = manifest()["models"].get(name)
    if entry is None:
        return []
    default = entry["default_tag"]
    return [default] + [tag for tag in entry["tags"] if tag != default]


def resolve_tag(name, weights):
    """The tag that `weights` ("imagenet" or a tag) names for the network `name`.

    Args:
        name: a registry name.
        weights: `"imagenet"` (the network's default tag) or one of its published tags.

    Returns:
        The tag, a string of `tags(name)`.

    Raises:
        ValueError: `name` has no published weights, or `weights` is none of its tags
            (the message lists them).

    Examples:
        >>> resolve_tag("seresnet50", "imagenet")
        'a1_in1k'
        >>> resolve_tag("seresnet50", "ra2_in1k")
        'ra2_in1k'
        >>> resolve_tag("seresnet50", "in21k")
        Traceback (most recent call last):
        ...
        ValueError: 'seresnet50' has no weights tagged 'in21k'; its tags are ...
    """
    available = tags(name)
    if available and weights == IMAGENET:
        return available[0]
    if weights in available:
        return weights
    raise _no_such_weights(name, "weights", weights)


def _no_such_weights(name, argument, value):
    """The `ValueError` for `argument=value` naming no published weights of `name`."""
    available = tags(name)
    if not available:
        return ValueError(
            f"{name!r} has no published weights ({argument}={value!r}). Networks with "
            f"published weights: {', '.join(names_with_weights())}."
        )
    return ValueError(
        f"{name!r} has no weights tagged {value!r}; its tags are {available} "
        f"({IMAGENET!r} is {available[0]!r})."
    )


def tag_info(name, tag):
    """The manifest's record of one checkpoint (URL, hash, accuracy, preprocessing).

    Args:
        name: a registry name with published weights.
        tag: one of its tags, as `resolve_tag` returns it (not `"imagenet"`).

    Returns:
        A dict with `hub_id` (None for checkpoints outside the Hugging Face hub), `url`,
        `format` ("safetensors" or "pth"), `sha256` (None where timm publishes none),
        `license`, `top1` and `top5` (timm's ImageNet accuracy, percent), `eval_size`,
        `input_size`, `test_input_size`, `crop_pct`, `test_crop_pct`, `interpolation`,
        `mean`, `std` and `num_classes`.

    Raises:
        ValueError: `name` has no published weights or `tag` is not one of its tags (the
            message lists them; `"imagenet"` is resolved by `resolve_tag`, not here).

    Examples:
        >>> info = tag_info("seresnet50", "a1_in1k")
        >>> info["top1"], info["input_size"], info["crop_pct"], info["interpolation"]
        (80.012, 224, 0.95, 'bicubic')
        >>> tag_info("seresnet50", "imagenet")
        Traceback (most recent call last):
        ...
        ValueError: 'seresnet50' has no weights tagged 'imagenet'; its tags are ...
    """
    published = manifest()["models"].get(name, {}).get("tags", {})
    if tag not in published:
        raise _no_such_weights(name, "tag", tag)
    return published[tag]


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
    """Where the checkpoint is fetched from, with `KERAS_ATTN_WEIGHTS_URL` applied.

    The variable (read at call time) replaces the host, for a mirror, an air-gapped site or
    a test server: a hub checkpoint is then fetched from
    `<base>/<hub id>/resolve/main/model.safetensors`, one outside the hub (the `legacy_`
    networks' GitHub releases) from `<base>/<its file name>`.

    Args:
        name: a registry name with published weights.
        tag: one of its tags (not `"imagenet"`: see `resolve_tag`).

    Returns:
        The URL, a string.

    Raises:
        ValueError: `name` has no published weights or `tag` is not one of its tags.

    Examples:
        >>> import os
        >>> _ = os.environ.pop(BASE_URL_VARIABLE, None)   # unset: the hub itself
        >>> checkpoint_url("seresnet50", "a1_in1k")
        'https://huggingface.co/timm/seresnet50.a1_in1k/resolve/main/model.safetensors'
        >>> os.environ[BASE_URL_VARIABLE] = "http://127.0.0.1:8000"   # a mirror
        >>> checkpoint_url("seresnet50", "a1_in1k")
        'http://127.0.0.1:8000/timm/seresnet50.a1_in1k/resolve/main/model.safetensors'
        >>> checkpoint_url("legacy_seresnet50", "in1k")
        'http://127.0.0.1:8000/se_resnet50-ce0d4300.pth'
        >>> del os.environ[BASE_URL_VARIABLE]
    """
    info = tag_info(name, tag)
    base = os.environ.get(BASE_URL_VARIABLE, "").rstrip("/")
    if not base:
        return info["url"]
    if info["hub_id"]:
        return f"{base}/{info['hub_id']}/resolve/main/model.safetensors"
    return f"{base}/{info['url'].rsplit('/', 1)[-1]}"
