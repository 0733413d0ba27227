"""Preprocessing and decoding for ImageNet classifiers; the class index ships with the package."""

import functools
import json
from importlib import resources

import numpy as np
from keras import ops

from keras_attn import weights as published
from keras_attn.applications import specs
from keras_attn.layers import checks

NUM_CLASSES = 1000


def mean_and_std(model=None, weights=None):
    """The per-channel mean and std a network (and, when given, a published tag) expects."""
    spec = None if model is None else specs.get_spec(model)
    if weights is not None:
        if spec is None:
            raise ValueError("`weights` needs `model`: the tags are per network.")
        info = published.tag_info(spec.name, published.resolve_tag(spec.name, weights))
        return tuple(info["mean"]), tuple(info["std"])
    if spec is None:
        return specs.IMAGENET_MEAN, specs.IMAGENET_STD
    return spec.mean, spec.std


def preprocess_input(x, model=None, data_format=None, weights=None):
    """Scales RGB pixels in [0, 255] to what a network expects: `(x / 255 - mean) / std`.

    Args:
        x: a float array or tensor of RGB images, `(..., height, width, 3)` (channels last)
            or `(..., 3, height, width)` with `data_format="channels_first"`.
        model: registry name (or `NetworkSpec`) whose mean and std to use; by default the
            ImageNet mean and std that every ResNet-family network here uses.
        data_format: "channels_last" (default) or "channels_first".
        weights: a published tag of `model` ("imagenet" for the default) whose own mean and
            std to use (a few checkpoints were trained with others).

    Returns:
        The normalised images: a NumPy array for NumPy input, else a tensor.

    Raises:
        ValueError: `x` does not have 3 channels where `data_format` puts them, an unknown
            `data_format`, or `weights` without `model`.

    Examples:
        >>> images = np.full((2, 224, 224, 3), 255.0)
        >>> preprocess_input(images, model="resnest50d")[0, 0, 0].round(3)   # (1 - mean) / std
        array([2.249, 2.429, 2.64 ], dtype=float32)
    """
    mean, std = mean_and_std(model, weights)
    data_format = data_format or "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "`data_format` must be 'channels_last' or 'channels_first'; received "
            f"data_format={data_format!r}."
        )
    _check_rgb(x, data_format)
    shape = (3,) if data_format == "channels_last" else (3, 1, 1)
    mean = np.reshape(np.asarray(mean, "float32") * 255.0, shape)
    scale = np.reshape(1.0 / (np.asarray(std, "float32") * 255.0), shape)
    if isinstance(x, np.ndarray):
        return (x.astype("float32") - mean) * scale
    x = ops.cast(x, "float32")
    return (x - mean) * scale


@functools.lru_cache(maxsize=1)
def imagenet_classes():
    """The 1000 ImageNet classes as `[(wnid, name), ...]`, indexed by class id."""
    text = resources.files("keras_attn.applications").joinpath("imagenet_class_index.json")
    index = json.loads(text.read_text(encoding="utf-8"))
    return tuple(tuple(index[str(i)]) for i in range(NUM_CLASSES))


def _check_rgb(x, data_format):
    """Raises unless `x` has 3 channels where `data_format` puts them (when its shape says)."""
    try:
        shape = tuple(np.shape(x) if getattr(x, "shape", None) is None else x.shape)
    except (TypeError, ValueError):  # a tensor of unknown rank: nothing to check
        return
    axis = -1 if data_format == "channels_last" else -3
    if len(shape) < -axis or shape[axis] not in (3, None):
        raise ValueError(
            "`preprocess_input` takes RGB images, 3 channels on the "
            f"{'last' if axis == -1 else 'third-last'} axis ({data_format}); received an array "
            f"of shape {shape}."
        )


def check_decodable(model, weights):
    """Raises a `ValueError` unless the published tag `weights` of `model` (a registry name
    or row) classifies ImageNet-1k's 1000 classes, which `decode_predictions` decodes; the
    error names the tag and its class count."""
    if model is None:
        raise ValueError("`weights` needs `model`: the tags are per network.")
    spec = specs.get_spec(model)
    tag = published.resolve_tag(spec.name, weights)
    classes = published.num_classes(spec.name, tag)
    if classes != NUM_CLASSES:
        raise ValueError(
            f"decode_predictions decodes ImageNet-1k's {NUM_CLASSES} classes; the "
            f"{spec.name} weights {tag!r} classify {classes} "
            f"({published.dataset_of(classes)}), which it cannot decode."
        )


def decode_predictions(preds, top=5, model=None, weights=None):
    """Turns ImageNet class probabilities into `(wnid, name, score)` tuples, best first.

    Only ImageNet-1k's 1000 classes decode: predictions of a classifier with other classes
    (the ImageNet-12k tags such as `"sw_in12k"`, 11821 classes) raise a `ValueError` that
    names the published tags with that many classes, or, given `model` and `weights`, that tag.

    Args:
        preds: array or tensor of shape `(batch, 1000)`.
        top: how many classes to return per image.
        model: optional registry name of the network that predicted, with `weights`.
        weights: optional published tag of `model` ("imagenet" for the default) whose
            classifier made `preds`; its class count is checked.

    Returns:
        One list per image of `top` tuples `(wnid, class_name, score)`, as
        `keras.applications.imagenet_utils.decode_predictions` returns. The class index
        ships with the package: no download.

    Raises:
        ValueError: `preds` is not `(batch, 1000)` (the message names the published tags
            with that many classes), `top` is not in [1, 1000], or the tag `weights` of
            `model` classifies other classes than ImageNet-1k's.

    Examples:
        >>> scores = np.zeros((1, 1000), "float32")
        >>> scores[0, 281] = 0.9
        >>> decode_predictions(scores, top=1)
        [[('n02123045', 'tabby', 0.8999999761581421)]]
    """
    if weights is not None:
        check_decodable(model, weights)
    preds = np.asarray(ops.convert_to_numpy(preds))
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        tags = published.tags_with_classes(preds.shape[-1]) if preds.ndim == 2 else []
        known = (f" {preds.shape[1]} classes are those of {published.dataset_of(preds.shape[1])}"
                 f" (the published tags {', '.join(tags)}), which it cannot decode."
                 if tags else "")
        raise ValueError(
            f"`decode_predictions` expects a batch of ImageNet-1k predictions, shape (batch, "
            f"{NUM_CLASSES}); received an array of shape {preds.shape}.{known}"
        )
    if not checks.is_integer(top) or not 1 <= top <= NUM_CLASSES:
        raise ValueError(f"`top` must be an integer in [1, {NUM_CLASSES}]; received top={top!r}.")
    top = int(top)
    classes = imagenet_classes()
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(*classes[i], float(row[i])) for i in best])
    return results
