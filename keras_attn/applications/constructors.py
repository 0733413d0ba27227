"""The public constructors: the papers' networks with the `keras.applications` signature.

Each is a short explicit function that builds its registry row with `get_model`; the
`_application` decorator writes its docstring from the row and lists it in `CONSTRUCTORS`,
the one list of them (`keras_attn.applications` exports them from here).

Examples:
    >>> import keras_attn
    >>> model = keras_attn.applications.SEResNet50(weights=None, input_shape=(64, 64, 3),
    ...                                           classes=10)
    >>> model.name
    'seresnet50'
"""

from keras_attn.applications import registry, specs

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
        A `Network` (a functional `keras.Model`) of the {family} family, registry name
        `"{registry_name}"`.

    Examples:
        Shown as plain code, not run as a doctest: {weights_note}. The module's example
        builds a network offline.

        ```python
        model = keras_attn.applications.{function}()
        pixels = np.random.uniform(0, 255, (1, {size}, {size}, 3))   # RGB in [0, 255]
        images = keras_attn.applications.preprocess_input(pixels, model="{registry_name}")
        print(keras_attn.applications.decode_predictions(model.predict(images)))
        ```
    """


# Every public constructor, in the order they are defined: the one list of them.
CONSTRUCTORS = []


def _application(registry_name, paper_note, summary):
    """Documents a constructor from its registry row and lists it in `CONSTRUCTORS`; the
    function body stays explicit."""

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
                weights_note=(
                    "the default `weights=\"imagenet\"` downloads timm's checkpoint once"
                    if function.__defaults__[1] == "imagenet" else
                    "random weights (no published checkpoint), but a full-size build"
                ),
            )
        )
        CONSTRUCTORS.append(function)
        return function

    return decorate


def _build(registry_name, include_top, weights, input_tensor, input_shape, pooling, classes,
           classifier_activation, name):
    return registry.get_model(
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


__all__ = [function.__name__ for function in CONSTRUCTORS]  # noqa: PLE0605 (built above)
