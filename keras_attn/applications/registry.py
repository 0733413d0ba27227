"""Public constructors, `get_model`, `list_models` and `feature_extractor`.

Constructors take the `keras.applications` arguments. `get_model(name, **overrides)` also
takes any `NetworkSpec` field, so tests and users can shrink or change any row:

    model = get_model("resnest50d", widths=(16, 32, 64, 128), depths=(1, 1, 1, 1),
                      input_shape=(64, 64, 3), classes=10)
"""

import fnmatch
import inspect
import math
import os
import re

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
    """Sorted registry names, optionally filtered by a shell pattern such as `"resnest*"`."""
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
        A `keras.Model`.

    Example:

    >>> tiny = get_model("seresnet50", widths=(8, 16, 32, 64), depths=(1, 1, 1, 1),
    ...                  input_shape=(64, 64, 3), classes=10)
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
            _check_imagenet_top(kwargs)
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


def _check_imagenet_top(kwargs):
    classes = kwargs.get("classes", 1000)
    if classes != 1000:
        raise ValueError(
            f"ImageNet weights classify 1000 classes; received classes={classes} with "
            "include_top=True. Use include_top=False (and your own head) to fine-tune on "
            "other classes, or weights=None."
        )


def feature_extractor(name_or_model, **kwargs):
    """A model whose outputs are the feature maps of every stage, for detection/segmentation.

    Outputs are a dict keyed `P{level}` where the map is `2**level` times smaller than the
    input, like keras-hub's `pyramid_outputs`: `P2`..`P5` (strides 4, 8, 16, 32) for the
    ImageNet networks.

    Args:
        name_or_model: a registry name, built with `include_top=False` and `kwargs`, or a
            model built by this package.
        **kwargs: `get_model` arguments, when a name is given.

    Example:

    >>> backbone = feature_extractor("seresnet50", input_shape=(256, 256, 3))
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
    stage_outputs = {}
    for layer in model.layers:
        match = re.fullmatch(r"stage(\d+)_block(\d+)_out", layer.name)
        if match:  # later blocks of a stage replace earlier ones
            stage_outputs[int(match[1])] = layer.output
    if not stage_outputs:
        raise ValueError(
            f"Model {model.name!r} has no stage outputs (layers named 'stage<i>_block<j>_out'); "
            "pass a network built by keras_attn."
        )
    outputs = [stage_outputs[stage] for stage in sorted(stage_outputs)]
    levels = _pyramid_levels(model, outputs)
    return keras.Model(
        model.inputs,
        {f"P{level}": output for level, output in zip(levels, outputs)},
        name=f"{model.name}_features",
    )


def _pyramid_levels(model, outputs):
    input_shape = model.inputs[0].shape
    height = input_shape[1]
    if height is None or any(output.shape[1] is None for output in outputs):
        height = 1024  # a probe: shapes only, nothing is computed
        probe = keras.Model(model.inputs, outputs)
        shapes = probe.compute_output_spec(
            keras.KerasTensor((1, height, height, input_shape[-1]))
        )
        sizes = [shape.shape[1] for shape in shapes]
    else:
        sizes = [output.shape[1] for output in outputs]
    # Stage by stage rather than each from the input: a stride-2 layer gives ceil(size / 2),
    # so on a small odd input (33 -> 9, 5, 3, 2) log2(input / size) drifts a level low, while
    # each halving, 5 -> 3 or 3 -> 2, still has a ratio of 1.5 or more.
    levels = [round(math.log2(height / sizes[0]))]
    for previous, size in zip(sizes, sizes[1:]):
        levels.append(levels[-1] + round(math.log2(previous / size)))
    return levels


_CONSTRUCTOR_DOC = """
    Args:
        include_top: whether to include the classifier (global average pooling and a
            `Dense` layer named `predictions`).
        weights: "imagenet" (the published weights of the default tag, downloaded once
            and cached), a published tag, None (random initialisation), or the path to a
            `.weights.h5` file or a timm checkpoint.
        input_tensor: optional Keras tensor (output of `keras.Input()`) to use as input.
        input_shape: optional `(height, width, channels)`; by default
            `({size}, {size}, 3)` with `include_top`, else `(None, None, 3)`. Height and
            width must be at least {stride}.
        pooling: with `include_top=False`: None for the 4D feature map, "avg" or "max".
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier, or None to return logits.
        name: the model's name; defaults to `"{registry_name}"`.

    Returns:
        A `keras.Model` of the {family} family, registry name `"{registry_name}"`.

    Example:

    >>> model = keras_attn.applications.{function}()
    >>> images = keras_attn.applications.preprocess_input(pixels, model="{registry_name}")
    >>> keras_attn.applications.decode_predictions(model.predict(images))
    """


def _application(registry_name, paper_note, summary):
    """Documents a constructor from its registry row; the function body stays explicit."""

    def decorate(function):
        spec = specs.SPECS[registry_name]
        function.registry_name = registry_name
        paper = specs.PAPERS[spec.paper]
        function.__doc__ = (
            f"{summary} {paper_note}\n\n    Reference: {paper} ({paper.url}).\n"
            + _CONSTRUCTOR_DOC.format(
                size=spec.default_size,
                stride=spec.min_input_size,
                registry_name=registry_name,
                function=function.__name__,
                family=spec.family,
            )
        )
        return function

    return decorate


def _build(registry_name, include_top, weights, input_tensor, input_shape, pooling, classes,
           classifier_activation, name):
    return get_model(
        registry_name,
        weights=weights,
        include_top=include_top,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
    )


@_application("seresnet18", "Basic blocks with an SE gate.", "SE-ResNet-18.")
def SEResNet18(include_top=True, weights=None, input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnet18", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("seresnet34", "Basic blocks with an SE gate.", "SE-ResNet-34.")
def SEResNet34(include_top=True, weights=None, input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnet34", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("seresnet50", "Bottleneck blocks with an SE gate (ratio 1/16).", "SE-ResNet-50.")
def SEResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnet50", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("seresnet101", "Bottleneck blocks with an SE gate.", "SE-ResNet-101.")
def SEResNet101(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnet101", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("seresnet152", "Bottleneck blocks with an SE gate.", "SE-ResNet-152.")
def SEResNet152(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnet152", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("seresnext50_32x4d", "ResNeXt-50 (32x4d) with SE gates.", "SE-ResNeXt-50 (32x4d).")
def SEResNeXt50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnext50_32x4d", include_top, weights, input_tensor, input_shape,
                  pooling, classes, classifier_activation, name)


@_application(
    "seresnext101_32x4d", "ResNeXt-101 (32x4d) with SE gates.", "SE-ResNeXt-101 (32x4d)."
)
def SEResNeXt101(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                 pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnext101_32x4d", include_top, weights, input_tensor, input_shape,
                  pooling, classes, classifier_activation, name)


@_application(
    "senet154",
    "64x4d bottlenecks (first 1x1 halved), a deep stem and 3x3 strided shortcuts.",
    "SENet-154, the ILSVRC 2017 winning network.",
)
def SENet154(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("senet154", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("resnext50_32x4d", "Cardinality 32, width 4 per group.", "ResNeXt-50 (32x4d).")
def ResNeXt50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnext50_32x4d", include_top, weights, input_tensor, input_shape,
                  pooling, classes, classifier_activation, name)


@_application("resnext101_32x4d", "Cardinality 32, width 4 per group.", "ResNeXt-101 (32x4d).")
def ResNeXt101(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnext101_32x4d", include_top, weights, input_tensor, input_shape,
                  pooling, classes, classifier_activation, name)


@_application(
    "skresnet18", "Basic blocks whose first 3x3 is a Selective Kernel convolution.",
    "SK-ResNet-18.",
)
def SKResNet18(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("skresnet18", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "skresnet34", "Basic blocks whose first 3x3 is a Selective Kernel convolution.",
    "SK-ResNet-34.",
)
def SKResNet34(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("skresnet34", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "skresnext50_32x4d",
    "ResNeXt-50 (32x4d) with Selective Kernel convolutions (M=2, G=32, r=16, L=32).",
    "SKNet-50, the paper's network.",
)
def SKNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
            pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("skresnext50_32x4d", include_top, weights, input_tensor, input_shape,
                  pooling, classes, classifier_activation, name)


@_application(
    "sknet101",
    "ResNeXt-101 (32x4d) with Selective Kernel convolutions; 48.9M parameters (Table 2).",
    "SKNet-101.",
)
def SKNet101(include_top=True, weights=None, input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("sknet101", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("resnest14d", "Radix 2, deep stem, average-pool shortcuts.", "ResNeSt-14.")
def ResNeSt14(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnest14d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("resnest26d", "Radix 2, deep stem, average-pool shortcuts.", "ResNeSt-26.")
def ResNeSt26(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnest26d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("resnest50d", "Radix 2, deep stem, average-pool shortcuts.", "ResNeSt-50.")
def ResNeSt50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnest50d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("resnest101e", "Radix 2, 64-wide deep stem, 256x256 input.", "ResNeSt-101.")
def ResNeSt101(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnest101e", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("resnest200e", "Radix 2, 64-wide deep stem, 320x320 input.", "ResNeSt-200.")
def ResNeSt200(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnest200e", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application("resnest269e", "Radix 2, 64-wide deep stem, 416x416 input.", "ResNeSt-269.")
def ResNeSt269(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnest269e", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "se_inception_v3",
    "SE gate after each of the 11 Inception modules; with gate=None it is "
    "keras.applications.InceptionV3.",
    "SE-Inception-v3.",
)
def SEInceptionV3(include_top=True, weights=None, input_tensor=None, input_shape=None,
                  pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("se_inception_v3", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "se_inception_resnet_v2",
    "SE gate on the residual branch of each Inception-ResNet block, before the scaled add; "
    "with gate=None it is keras.applications.InceptionResNetV2.",
    "SE-Inception-ResNet-v2.",
)
def SEInceptionResNetV2(include_top=True, weights=None, input_tensor=None, input_shape=None,
                        pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("se_inception_resnet_v2", include_top, weights, input_tensor, input_shape,
                  pooling, classes, classifier_activation, name)


@_application(
    "se_bn_inception",
    "BN-Inception (Inception-v2) with an SE gate after each module, as the official "
    "SE-BN-Inception release.",
    "SE-BN-Inception.",
)
def SEBNInception(include_top=True, weights=None, input_tensor=None, input_shape=None,
                  pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("se_bn_inception", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


def count_parameters(name, **overrides):
    """`count_params()` of the network `name` with 1000 classes (builds it, then clears)."""
    model = get_model(name, **overrides)
    count = model.count_params()
    del model
    keras.backend.clear_session()
    return count


def markdown_table(param_counts):
    """The README's model table: one row per registry name.

    Args:
        param_counts: `{name: count_params()}` for every name (see `count_parameters`).
    """
    constructors = {function.registry_name: function.__name__ for function in CONSTRUCTORS}
    lines = [
        "| name | constructor | parameters | input size | family | paper |",
        "|---|---|---:|---:|---|---|",
    ]
    for name in list_models():
        spec = specs.SPECS[name]
        paper = specs.PAPERS[spec.paper]
        constructor = f"`{constructors[name]}`" if name in constructors else ""
        lines.append(
            f"| `{name}` | {constructor} | {param_counts[name]:,} | {spec.default_size} "
            f"| {spec.family} | [{paper.citation}]({paper.url}) |"
        )
    return "\n".join(lines) + "\n"


# SE networks whose cost the README reports against the same network with gate=None.
GATE_OVERHEAD_NAMES = (
    "seresnet50", "seresnext50_32x4d", "senet154", "se_inception_v3", "se_inception_resnet_v2",
    "se_bn_inception",
)
# What the SENet paper reports (Section 5: ~2.5M parameters on ResNet-50's ~25M).
_PAPER_OVERHEAD = {"seresnet50": "~10%"}


def markdown_gate_overhead(param_counts, ungated_counts):
    """The README's table of what the SE gates cost in parameters.

    Args:
        param_counts: `{name: count_params()}` with the gates.
        ungated_counts: `{name: count_parameters(name, gate=None)}`.
    """
    lines = [
        "| name | parameters | without gates | SE overhead | paper |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in GATE_OVERHEAD_NAMES:
        gated, ungated = param_counts[name], ungated_counts[name]
        lines.append(
            f"| `{name}` | {gated:,} | {ungated:,} | {100 * (gated / ungated - 1):.1f}% "
            f"| {_PAPER_OVERHEAD.get(name, '')} |"
        )
    return "\n".join(lines) + "\n"


CONSTRUCTORS = (
    SEResNet18, SEResNet34, SEResNet50, SEResNet101, SEResNet152, SEResNeXt50, SEResNeXt101,
    SENet154, ResNeXt50, ResNeXt101, SKResNet18, SKResNet34, SKNet50, SKNet101, ResNeSt14,
    ResNeSt26, ResNeSt50, ResNeSt101, ResNeSt200, ResNeSt269, SEInceptionV3,
    SEInceptionResNetV2, SEBNInception,
)
