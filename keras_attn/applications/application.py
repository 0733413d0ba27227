"""What every builder shares: the `keras.applications` arguments, inputs, head and checks.

`build_application(spec, body, ...)` validates the arguments, makes the input, calls
`body(inputs, spec)` for the network's features, and adds the classifier or the pooling.
"""

import keras

from keras_attn.layers import common

POOLINGS = (None, "avg", "max")


def build_application(
    spec,
    body,
    include_top=True,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
):
    """Builds a network with the `keras.applications` arguments.

    Args:
        spec: the network's row of the table (`NetworkSpec` or `InceptionSpec`).
        body: `body(inputs, spec)` returns the last feature map.
        include_top: whether to end with global average pooling and a `classes`-way
            `Dense` layer named `predictions`.
        input_tensor: optional Keras tensor (the output of `keras.Input()`) to use as input.
        input_shape: `(height, width, channels)`; defaults to the spec's `default_size` square
            RGB with `include_top`, else `(None, None, 3)`. Height and width must be at least
            `spec.min_input_size`.
        pooling: with `include_top=False`, None (4D feature map), "avg" or "max".
        classes: number of classes of the top layer.
        classifier_activation: activation of the top layer, or None for logits.
        name: model name; defaults to `spec.name`.

    Returns:
        A `keras.Model`.
    """
    inputs = _inputs(spec, include_top, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    x = body(inputs, spec)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        # Under mixed precision the classifier (and its softmax) computes in float32, as the
        # Keras mixed-precision guide advises for a model's output.
        x = keras.layers.Dense(
            classes,
            activation=classifier_activation,
            name="predictions",
            dtype=common.gate_dtype_policy(keras.config.dtype_policy()),
        )(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    return keras.Model(inputs, x, name=name or spec.name)


def _inputs(spec, include_top, input_tensor, input_shape, pooling, classes,
            classifier_activation):
    """Validates the `keras.applications` arguments and returns the model's input tensor.

    `input_shape` defaults to the spec's `default_size` square RGB with `include_top`, else
    `(None, None, 3)`; height and width must be at least `spec.min_input_size`.
    """
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras_attn networks are channels-last (NHWC), like their weights; received "
            f"keras.config.image_data_format()={keras.config.image_data_format()!r}. Call "
            "keras.config.set_image_data_format('channels_last') before building."
        )
    if pooling not in POOLINGS:
        raise ValueError(f"`pooling` must be one of {POOLINGS}; received pooling={pooling!r}.")
    common.check_positive_int("classes", classes)
    if include_top:
        try:
            keras.activations.get(classifier_activation)
        except ValueError:
            raise ValueError(
                "`classifier_activation` must be None, an activation name such as 'softmax', "
                f"or a callable; received classifier_activation={classifier_activation!r}."
            ) from None

    # Errors name the argument the shape came from.
    source = "input_shape"
    if input_shape is None:
        if input_tensor is not None:
            input_shape, source = tuple(input_tensor.shape[1:]), "input_tensor"
        elif include_top:
            input_shape = (spec.default_size, spec.default_size, 3)
        else:
            input_shape = (None, None, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"`{source}` must be (height, width, channels); received {source} shape "
            f"{input_shape}."
        )
    channels = input_shape[2]
    if not common.is_integer(channels) or channels < 1:
        raise ValueError(
            f"`{source}` needs a known number of channels >= 1 (3 for RGB); received {source} "
            f"shape {input_shape}."
        )
    minimum = spec.min_input_size
    if any(size is not None and size < minimum for size in input_shape[:2]):
        raise ValueError(
            f"`{source}` shape {input_shape} is too small for {spec.name}: height and width "
            f"must be at least {minimum}."
        )
    if input_tensor is None:
        return keras.Input(shape=input_shape, name="images")
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=input_shape)
    return input_tensor
