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
    "seresnet152d",
    "ResNet-152-D (deep stem, average-pool shortcuts) with SE gates; 256x256 input.",
    "SE-ResNet-152-D.",
)
def SEResNet152D(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                 pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnet152d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "seresnext26t_32x4d",
    "ResNeXt-26 (32x4d) with SE gates, a tiered deep stem (24, 32, 64 channels) and average-pool "
    "shortcuts.",
    "SE-ResNeXt-26-T (32x4d).",
)
def SEResNeXt26T(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                 pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnext26t_32x4d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "seresnext101d_32x8d",
    "ResNeXt-101 (32x8d) with SE gates, a deep stem and average-pool shortcuts.",
    "SE-ResNeXt-101-D (32x8d).",
)
def SEResNeXt101D(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                  pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnext101d_32x8d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "seresnextaa101d_32x8d",
    "SE-ResNeXt-101-D (32x8d) with average-pool anti-aliasing of its strides; the default weights "
    "were pre-trained on ImageNet-12k and fine-tuned on ImageNet-1k at 288x288 (tag 'sw_in12k' is "
    "the ImageNet-12k classifier: classes=11821).",
    "SE-ResNeXt-AA-101-D (32x8d).",
)
def SEResNeXtAA101D(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                    pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnextaa101d_32x8d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "seresnextaa201d_32x8d",
    "SE-ResNeXt-201-D (32x8d, 64-wide deep stem) with average-pool anti-aliasing of its strides; "
    "the default weights were pre-trained on ImageNet-12k and fine-tuned on ImageNet-1k at 384x384"
    " (tag 'sw_in12k' is the ImageNet-12k classifier: classes=11821).",
    "SE-ResNeXt-AA-201-D (32x8d).",
)
def SEResNeXtAA201D(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                    pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("seresnextaa201d_32x8d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "resnetaa50d",
    "ResNet-50-D with average-pool anti-aliasing of its strides; the default weights were pre-"
    "trained on ImageNet-12k and fine-tuned on ImageNet-1k.",
    "ResNet-AA-50-D.",
)
def ResNetAA50D(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnetaa50d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "resnetaa101d",
    "ResNet-101-D with average-pool anti-aliasing of its strides; the default weights were pre-"
    "trained on ImageNet-12k and fine-tuned on ImageNet-1k.",
    "ResNet-AA-101-D.",
)
def ResNetAA101D(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                 pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnetaa101d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "resnetrs50",
    "ResNet-D with SE gates (ratio 1/4) and a strided convolution in place of the stem max pool; "
    "160x160 input.",
    "ResNet-RS-50.",
)
def ResNetRS50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnetrs50", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "resnetrs101",
    "ResNet-D with SE gates (ratio 1/4) and a strided convolution in place of the stem max pool; "
    "192x192 input.",
    "ResNet-RS-101.",
)
def ResNetRS101(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnetrs101", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "resnetrs152",
    "ResNet-D with SE gates (ratio 1/4) and a strided convolution in place of the stem max pool; "
    "256x256 input.",
    "ResNet-RS-152.",
)
def ResNetRS152(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnetrs152", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "resnetrs200",
    "ResNet-D with SE gates (ratio 1/4) and a strided convolution in place of the stem max pool; "
    "256x256 input.",
    "ResNet-RS-200.",
)
def ResNetRS200(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnetrs200", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "resnetrs270",
    "ResNet-D with SE gates (ratio 1/4) and a strided convolution in place of the stem max pool; "
    "256x256 input.",
    "ResNet-RS-270.",
)
def ResNetRS270(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnetrs270", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "resnetrs350",
    "ResNet-D with SE gates (ratio 1/4) and a strided convolution in place of the stem max pool; "
    "288x288 input.",
    "ResNet-RS-350.",
)
def ResNetRS350(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnetrs350", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "resnetrs420",
    "ResNet-D with SE gates (ratio 1/4) and a strided convolution in place of the stem max pool; "
    "320x320 input.",
    "ResNet-RS-420.",
)
def ResNetRS420(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("resnetrs420", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "ecaresnet26t",
    "ResNet-26 with ECA gates, a tiered deep stem (24, 32, 64 channels) and average-pool "
    "shortcuts; 256x256 input.",
    "ECA-ResNet-26-T.",
)
def ECAResNet26T(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                 pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("ecaresnet26t", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "ecaresnet50d",
    "ResNet-50-D (deep stem, average-pool shortcuts) with ECA gates.",
    "ECA-ResNet-50-D.",
)
def ECAResNet50D(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                 pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("ecaresnet50d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "ecaresnet50t",
    "ResNet-50 with ECA gates, a tiered deep stem (24, 32, 64 channels) and average-pool "
    "shortcuts; 256x256 input.",
    "ECA-ResNet-50-T.",
)
def ECAResNet50T(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                 pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("ecaresnet50t", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "ecaresnetlight",
    "A ResNet with ECA gates, blocks (1, 1, 11, 3), the plain 7x7 stem and average-pool shortcuts.",
    "ECA-ResNet-Light.",
)
def ECAResNetLight(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                   pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("ecaresnetlight", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "ecaresnet101d",
    "ResNet-101-D (deep stem, average-pool shortcuts) with ECA gates.",
    "ECA-ResNet-101-D.",
)
def ECAResNet101D(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                  pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("ecaresnet101d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "ecaresnet269d",
    "ResNet-269-D (deep stem, average-pool shortcuts) with ECA gates; 320x320 input.",
    "ECA-ResNet-269-D.",
)
def ECAResNet269D(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                  pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("ecaresnet269d", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "cbamresnet18",
    "ResNet-18 with a CBAM module (channel then spatial attention) in every block, as timm's "
    "ResNet with attn_layer='cbam'; no published weights.",
    "CBAM-ResNet-18.",
)
def CBAMResNet18(include_top=True, weights=None, input_tensor=None, input_shape=None,
                 pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("cbamresnet18", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "cbamresnet50",
    "ResNet-50 with a CBAM module (channel then spatial attention) in every block, as timm's "
    "ResNet with attn_layer='cbam'; no published weights.",
    "CBAM-ResNet-50.",
)
def CBAMResNet50(include_top=True, weights=None, input_tensor=None, input_shape=None,
                 pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("cbamresnet50", include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name)


@_application(
    "gcresnet50",
    "ResNet-50 with a Global Context block in every bottleneck, as timm's ResNet with "
    "attn_layer='gc'; no published weights.",
    "GC-ResNet-50.",
)
def GCResNet50(include_top=True, weights=None, input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name=None):
    return _build("gcresnet50", include_top, weights, input_tensor, input_shape, pooling,
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
