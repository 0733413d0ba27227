"""`get_model`, `list_models` and `feature_extractor`: the network registry.

`get_model(name, **overrides)` takes the `keras.applications` arguments and any `NetworkSpec`
field, so tests and users can shrink or change any row (the public constructors,
`keras_attn.applications.constructors`, call it):

    model = get_model("resnest50d", widths=(16, 32, 64, 128), depths=(1, 1, 1, 1),
                      input_shape=(64, 64, 3), classes=10)
"""

import fnmatch
import inspect
import os

import keras

from keras_attn import weights as published
from keras_attn.applications import application, inception, resnet_family, specs
from keras_attn.convert import timm as timm_convert
from keras_attn.weights import fetch

# One builder per row type of the table; both take the keras.applications arguments.
BUILDERS = {
    specs.NetworkSpec: resnet_family.build_model,
    specs.InceptionSpec: inception.build_model,
}
_BUILDER_ARGS = tuple(inspect.signature(application.build_application).parameters)[2:]
_KERAS_WEIGHTS = (".weights.h5",)
_TIMM_CHECKPOINTS = (".safetensors",) + timm_convert.TORCH_SUFFIXES


def list_models(pattern=None):
    """The registry names of every network, sorted: what `get_model` builds.

    Args:
        pattern: a shell pattern such as `"resnest*"` to filter the names; None for all.

    Returns:
        A sorted list of names.

    Examples:
        >>> list_models("skres*")
        ['skresnet18', 'skresnet34', 'skresnet50', 'skresnext50_32x4d']
    """
    names = sorted(specs.SPECS)
    if pattern is not None:
        names = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
    return names


def get_model(model_name, /, weights=None, **kwargs):
    """Builds the network `model_name` with optional changes to its row.

    Args:
        model_name: a registry name (`list_models()`), e.g. `"seresnext50_32x4d"`.
        weights: None (random initialisation), "imagenet" (the default tag's published
            ImageNet weights), a published tag such as "a1_in1k", the path to a `.weights.h5`
            file saved from the same architecture, or a timm checkpoint (`.safetensors`, or a
            PyTorch `.pth` or training checkpoint `.pth.tar` where torch is installed; a
            training checkpoint gives its model's weights, `convert.from_timm(...,
            use_ema=True)` its EMA's).
        **kwargs: the `keras.applications` arguments (`include_top`, `input_tensor`,
            `input_shape`, `pooling`, `classes`, `classifier_activation`, `name`) and any field
            of `NetworkSpec` (`depths`, `widths`, `stem_width`, `cardinality`, `conv_args`...).

    Returns:
        A `Network` (a functional `keras.Model`).

    Raises:
        ValueError: an unknown name (close names are suggested), argument or field value, a
            weights file that does not exist, or ImageNet weights with `classes` other than
            1000 and `include_top=True`.

    Examples:
        >>> tiny = get_model("seresnet50", widths=(8, 16, 32, 64), depths=(1, 1, 1, 1),
        ...                  input_shape=(64, 64, 3), classes=10)
        >>> tiny.output_shape
        (None, 10)
        >>> get_model("seresnext50")
        Traceback (most recent call last):
        ...
        ValueError: Unknown model name 'seresnext50'. Did you mean 'seresnext50_32x4d', ...
    """
    spec, kwargs = specs.resolve(model_name, **kwargs)
    unknown = sorted(set(kwargs) - set(_BUILDER_ARGS))
    if unknown:
        raise ValueError(
            f"get_model({model_name!r}) received unknown argument(s) {unknown}. It takes "
            f"{['weights', *_BUILDER_ARGS]} and the {type(spec).__name__} fields "
            f"{sorted(set(specs.field_names(type(spec))) - {'name'})}."
        )
    source = _weights_source(weights)
    include_top = kwargs.get("include_top", True)
    tag = None
    if source == "published":
        tag = published.resolve_tag(spec.name, weights)
        if include_top:
            _check_published_top(spec.name, tag, kwargs)
            if kwargs.get("input_shape") is None and kwargs.get("input_tensor") is None:
                size = published.tag_info(spec.name, tag)["input_size"]
                kwargs["input_shape"] = (size, size, 3)
    model = BUILDERS[type(spec)](spec, **kwargs)
    if source == "keras":
        try:
            model.load_weights(weights)
        except ValueError as error:  # Keras names neither the file nor the network
            raise ValueError(
                f"`weights` file {os.fspath(weights)!r} does not fit {model.name!r} (saved from "
                f"another network or row?): {str(error).splitlines()[0]}"
            ) from error
    elif source == "timm":
        timm_convert.load_timm_weights(model, weights)
    elif source == "published":
        fetch.load_pretrained(model, spec, tag, include_top)
    return model


def _weights_source(weights):
    """None, "keras" (a .weights.h5 file), "timm" (a checkpoint file) or "published" (a tag)."""
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "`weights` must be None, 'imagenet', a published tag or a file path; received "
            f"weights={weights!r}."
        )
    path = os.fspath(weights)
    if not path.endswith(_KERAS_WEIGHTS + _TIMM_CHECKPOINTS):
        return "published"
    if not os.path.isfile(path):
        raise ValueError(f"`weights` file not found: {path!r}.")
    return "keras" if path.endswith(_KERAS_WEIGHTS) else "timm"


def published_tag(weights):
    """The published tag a `weights` argument names ("imagenet" or a tag), else None.

    None for `weights=None` and for a weights or checkpoint file (told apart by its suffix,
    `.weights.h5`, `.safetensors`, `.pth`, `.pth.tar`); such a file must exist, so a mistyped
    path is reported as a missing file rather than as an unknown tag.
    """
    return weights if _weights_source(weights) == "published" else None


def _check_published_top(name, tag, kwargs):
    """The classifier of published weights has the checkpoint's classes: `classes` defaults
    to them (11821 for the ImageNet-12k tags) and must not differ."""
    expected = published.num_classes(name, tag)
    classes = kwargs.setdefault("classes", expected)
    if classes != expected:
        raise ValueError(
            f"The {name} weights {tag!r} classify {expected} classes "
            f"({published.dataset_of(expected)}); received classes={classes} with "
            f"include_top=True. Leave `classes` out (or pass classes={expected}) for their "
            "classifier, use include_top=False (and your own head) to fine-tune on other "
            "classes, or weights=None."
        )


def feature_extractor(name_or_model, **kwargs):
    """A model whose outputs are the network's feature maps, for detection and segmentation.

    Outputs are a dict keyed `P{level}` where the map is `2**level` times smaller than the
    input, like keras-hub's `pyramid_outputs`, read from what the builder recorded
    (`model.structure.features`):

    - ResNet-family networks: the output of every stage, `P2`..`P5` (strides 4 to 32) for the
      ImageNet networks (`P0`..`P2` for the CIFAR ones, whose stem does not stride);
    - SE-Inception: `P3`, `P4`, `P5` (strides 8, 16, 32): the last module of each map size
      (Inception-v3: mixed2, mixed7, mixed10; Inception-ResNet-v2: block35_10, block17_20,
      conv_7b; BN-Inception: inception_3b, inception_4d, inception_5b), with its SE gate.

    Args:
        name_or_model: a registry name, built with `include_top=False` and `kwargs`, or a
            network built by this package (or loaded from its `.keras` file).
        **kwargs: `get_model` arguments, when a name is given.

    Returns:
        A functional `keras.Model` with the network's inputs.

    Raises:
        ValueError: a model and `kwargs` together, or a model this package did not build.

    Examples:
        >>> backbone = feature_extractor("seresnet50", depths=(1, 1, 1, 1),
        ...                              input_shape=(256, 256, 3))
        >>> sorted(backbone.output.keys())
        ['P2', 'P3', 'P4', 'P5']
    """
    if isinstance(name_or_model, str):
        model = get_model(name_or_model, include_top=False, **kwargs)
    elif kwargs:
        raise ValueError(
            f"feature_extractor() takes get_model() arguments only with a model name; "
            f"received a model and {sorted(kwargs)}."
        )
    else:
        model = name_or_model
    structure = getattr(model, "structure", None)
    if not isinstance(model, keras.Model) or structure is None or not structure.features:
        name = getattr(model, "name", type(model).__name__)
        raise ValueError(
            f"Model {name!r} carries no record of its feature maps: pass a registry name or a "
            "network built by keras_attn.applications (or loaded from its .keras file)."
        )
    return keras.Model(
        model.inputs,
        {f"P{feature.level}": model.get_layer(feature.layer).output
         for feature in structure.features},
        name=f"{model.name}_features",
    )


def count_parameters(name, **overrides):
    """`count_params()` of the network `name` with 1000 classes (builds it, then clears).

    The network is built in a `keras.StatelessScope`, where Keras creates its variables
    without running their initializers (the count needs only their shapes): a third less time
    for the deep rows.

    Examples:
        >>> count_parameters("resnet50")
        25610152
    """
    with keras.StatelessScope():
        model = get_model(name, **overrides)
        count = model.count_params()
    del model
    keras.backend.clear_session()
    return count
