"""What every builder shares: the `keras.applications` arguments, inputs, head and checks, and
the record of what was built.

`build_application(spec, body, ...)` validates the arguments, makes the input, calls
`body(inputs, spec, record)` for the network's features, adds the classifier or the pooling,
and returns a `Network`: a functional `keras.Model` that carries the `Structure` the body
recorded while it built (its feature maps, its blocks, the timm module of each layer).
"""

import contextlib
import dataclasses
import math
import sys
import types
from collections.abc import Mapping

import keras

from keras_attn.layers import checks
from keras_attn.layers.precision import gate_dtype_policy

POOLINGS = (None, "avg", "max")
# Keras maps a functional graph recursively, one Python frame per layer along the longest
# path (`keras.src.ops.function._build_map_helper`). The deepest rows of the table
# (seresnet269d: 1,000 layers in a row; resnetrs420: 1,550) pass Python's default limit of
# 1,000 frames; this leaves room for 20 times that.
GRAPH_RECURSION_LIMIT = 20_000


@contextlib.contextmanager
def deep_graph():
    """Inside, Keras can map functional graphs deeper than Python's default recursion limit
    allows (`keras.Model(inputs, outputs)`, `clone_model`, loading a `.keras` file); the
    limit is restored on the way out.

    Examples:
        >>> import sys
        >>> with deep_graph():
        ...     sys.getrecursionlimit() >= GRAPH_RECURSION_LIMIT
        True
    """
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, GRAPH_RECURSION_LIMIT))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


@dataclasses.dataclass(frozen=True)
class Feature:
    """One feature map a network offers to detection and segmentation heads.

    Attributes:
        layer: the name of the layer whose output it is.
        stride: how many times smaller than the input it is (nominally: valid convolutions
            shave a pixel or two off, as in Inception).
        description: what it is, e.g. "output of stage 2".

    Examples:
        >>> Feature("stage2_block4_out", 8, "output of stage 2").level
        3
    """

    layer: str
    stride: int
    description: str

    @property
    def level(self):
        """The pyramid level: `log2(stride)` (P2 is stride 4)."""
        return round(math.log2(self.stride))


@dataclasses.dataclass(frozen=True)
class Structure:
    """What a builder built, recorded while it built it; read by the timm converter and
    `feature_extractor` instead of anything parsed from layer names.

    Attributes:
        features: the feature maps, shallow to deep.
        blocks: `{block name: names of its layers, in the order they were made}`.
        timm_modules: `{layer name: the timm module it corresponds to}` for every layer with
            weights (`"layer1.0.conv1"`), empty for networks timm does not have.

    Examples:
        >>> import keras_attn
        >>> model = keras_attn.applications.get_model("seresnext26d_32x4d", depths=(1, 1, 1, 1),
        ...                                           input_shape=(64, 64, 3))
        >>> model.structure.timm_modules["stage1_block1_conv2"]
        'layer1.0.conv2'
        >>> model.structure.block_of("stage1_block1_se")
        'stage1_block1'
        >>> [feature.stride for feature in model.structure.features]
        [4, 8, 16, 32]
    """

    features: tuple = ()
    blocks: Mapping = dataclasses.field(default_factory=dict)
    timm_modules: Mapping = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(
            f if isinstance(f, Feature) else Feature(**f) for f in self.features))
        object.__setattr__(self, "blocks", types.MappingProxyType(
            {name: tuple(layers) for name, layers in self.blocks.items()}))
        object.__setattr__(self, "timm_modules", types.MappingProxyType(dict(self.timm_modules)))

    def block_of(self, layer_name):
        """The name of the block `layer_name` belongs to, or None (stem, head)."""
        return next((block for block, layers in self.blocks.items() if layer_name in layers),
                    None)

    def get_config(self):
        return {
            "features": [dataclasses.asdict(feature) for feature in self.features],
            "blocks": {name: list(layers) for name, layers in self.blocks.items()},
            "timm_modules": dict(self.timm_modules),
        }


class Recorder:
    """What a builder's body calls as it makes layers: `record(layer, timm="conv1")` notes the
    layer (in the current block) and its timm module, and returns it; `with record.block(name)`
    opens a block; `record.feature(layer_name, stride, description)` marks a feature map."""

    def __init__(self):
        self._features = []
        self._blocks = {}
        self._timm_modules = {}
        self._prefix = None
        self._block = None

    def __call__(self, layer, timm=None):
        if self._block is not None:
            self._blocks[self._block].append(layer.name)
        if timm is not None:
            self._timm_modules[layer.name] = f"{self._prefix}.{timm}" if self._prefix else timm
        return layer

    @contextlib.contextmanager
    def block(self, name, timm_prefix=None):
        """Layers made inside belong to block `name`; their timm modules start with
        `timm_prefix` (`"layer1.0"`)."""
        self._blocks[name] = []
        self._block, self._prefix = name, timm_prefix
        try:
            yield
        finally:
            self._block = self._prefix = None

    def feature(self, layer, stride, description):
        self._features.append(Feature(layer, stride, description))

    def structure(self):
        return Structure(self._features, self._blocks, self._timm_modules)


@keras.saving.register_keras_serializable(package="keras_attn")
class Network(keras.Model):
    """A functional `keras.Model` built by `keras_attn.applications`, with its `structure`.

    It is a functional model in every way (`layers`, `get_layer`, `fit`, `save`, `export`,
    `clone_model`); its `.keras` file stores the `Structure` beside the layer graph, so a
    reloaded network converts timm checkpoints and offers its feature maps as a built one does.

    Args:
        structure: the `Structure` its builder recorded (None for a clone).
        *args: `keras.Model`'s functional arguments (`inputs`, `outputs`).
        **kwargs: `keras.Model`'s keyword arguments (`name`, ...).

    Examples:
        >>> import keras_attn
        >>> model = keras_attn.applications.get_model("resnet50", depths=(1, 1, 1, 1),
        ...                                           input_shape=(64, 64, 3), classes=10)
        >>> [feature.layer for feature in model.structure.features]
        ['stage1_block1_out', 'stage2_block1_out', 'stage3_block1_out', 'stage4_block1_out']
    """

    def __init__(self, *args, structure=None, **kwargs):
        with deep_graph():  # here too when a .keras file or clone_model makes one
            super().__init__(*args, **kwargs)
        if isinstance(structure, Mapping):
            structure = Structure(**structure)
        self.structure = structure

    def get_config(self):
        config = super().get_config()
        if self.structure is not None:
            config["structure"] = self.structure.get_config()
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        structure = config.pop("structure", None)
        model = super().from_config(config, custom_objects=custom_objects)
        model.structure = None if structure is None else Structure(**structure)
        return model


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
        body: `body(inputs, spec, record)` returns the last feature map; it makes its layers
            through `record` (a `Recorder`).
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
        A `Network`.
    """
    inputs = _inputs(spec, include_top, input_tensor, input_shape, pooling, classes,
                     classifier_activation)
    record = Recorder()
    x = body(inputs, spec, record)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        # Under mixed precision the classifier (and its softmax) computes in float32, as the
        # Keras mixed-precision guide advises for a model's output.
        x = record(keras.layers.Dense(
            classes,
            activation=classifier_activation,
            name="predictions",
            dtype=gate_dtype_policy(keras.config.dtype_policy()),
        ), timm=spec.timm_head)(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    return Network(inputs, x, name=name or spec.name, structure=record.structure())


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
    checks.check_positive_int("classes", classes)
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
    if not checks.is_integer(channels) or channels < 1:
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
