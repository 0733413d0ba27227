"""The attention registry: every attention kind, declared once.

A network plugs attention into one of two slots of a residual block (Hu et al.'s SE block and
the papers that followed, and timm's `create_attn`, place it the same way):

- the **gate** slot, after the block's last BatchNorm and before the residual add: a layer
  that takes the block's features and returns features of the same shape (SE);
- the **conv** slot, which replaces the block's 3x3 convolution (with its BatchNorm and ReLU)
  and takes its stride: a layer called as `layer(filters, strides=..., cardinality=...,
  **conv_args)` (Selective Kernel, Split-Attention).

Each kind is one `AttentionKind`: its slot, its Keras layer, the arguments a network row may
pass it (timm's names), its paper, the timm module it corresponds to and how that module's
tensors map onto the layer's weights, and what `keras_attn.inspect` reads from it. The spec
table's validation, the builder, the timm converter, `keras_attn.inspect` and the generated
tables read this registry; nothing else lists the kinds. An application registers its own
kind with `register` (see `docs/architecture.md`, "Adding an attention kind").

Examples:
    >>> import keras_attn
    >>> [kind.name for kind in keras_attn.attention.kinds()]
    ['se', 'sk', 'splat', 'eca', 'cbam', 'gc']
    >>> keras_attn.attention.get("se").layer.__name__
    'SqueezeExcite'
"""

import dataclasses
import types
from collections.abc import Callable, Mapping

from keras import ops

from keras_attn.layers import (
    CBAM,
    EfficientChannelAttention,
    GlobalContext,
    SelectiveKernel,
    SplitAttention,
    SqueezeExcite,
)

__all__ = [
    "SELECTIVE_KERNEL", "SLOTS", "SPLIT_ATTENTION", "SQUEEZE_EXCITE", "AttentionKind", "Paper",
    "drop_spatial_axes", "get", "kind_of", "kinds", "register", "unregister",
]

SLOTS = ("gate", "conv")
"""Where a kind plugs into a block: `"gate"` after the last BatchNorm, before the residual add;
`"conv"` in place of the 3x3 convolution, taking its stride."""


@dataclasses.dataclass(frozen=True)
class Paper:
    """A publication: its short citation, title and URL, as the generated tables cite it.

    Attributes:
        citation: authors and venue, e.g. `"Hu et al., CVPR 2018"`.
        title: the paper's title.
        url: where to read it (arXiv where there is one).

    Examples:
        >>> paper = Paper("Hu et al., CVPR 2018", "Squeeze-and-Excitation Networks",
        ...               "https://arxiv.org/abs/1709.01507")
        >>> str(paper)
        'Hu et al., CVPR 2018, Squeeze-and-Excitation Networks'
    """

    citation: str
    title: str
    url: str

    def __str__(self):
        return f"{self.citation}, {self.title}"


def drop_spatial_axes(weights):
    """`(batch, 1, 1, ...)` attention weights as `(batch, ...)`: how `keras_attn.inspect`
    reads a kind whose weights are one value per channel (and branch) for the whole map, the
    default `AttentionKind.read`.

    Args:
        weights: a tensor of shape `(batch, 1, 1, ...)`.

    Returns:
        The same values, shape `(batch, ...)`.

    Examples:
        >>> from keras import ops
        >>> tuple(drop_spatial_axes(ops.zeros((4, 1, 1, 2, 64))).shape)
        (4, 2, 64)
    """
    return ops.reshape(weights, (-1, *weights.shape[3:]))


def drop_channel_axis(weights):
    """`(batch, height, width, 1)` attention weights as `(batch, height, width)`: how
    `keras_attn.inspect` reads a kind whose weights are one value per position (a map)."""
    return ops.squeeze(weights, axis=-1)


def read_channel_and_spatial(weights):
    """`{"channel": (batch, 1, 1, channels), "spatial": (batch, height, width, 1)}` as
    `{"channel": (batch, channels), "spatial": (batch, height, width)}`: how
    `keras_attn.inspect` reads a kind with both (CBAM)."""
    return {"channel": drop_spatial_axes(weights["channel"]),
            "spatial": drop_channel_axis(weights["spatial"])}


@dataclasses.dataclass(frozen=True)
class AttentionKind:
    """One kind of attention, as the registry declares it.

    Attributes:
        name: what a network row's `gate` or `conv` field says, e.g. `"se"`; also the suffix of
            a gate layer's name (`stage2_block1_se`).
        slot: `"gate"` or `"conv"` (module docstring).
        layer: the Keras layer class.
        arguments: keyword arguments a row may pass the layer (`gate_args` / `conv_args`),
            timm's names.
        paper: the paper that introduced it.
        description: one line: what it computes.
        timm_module: the timm module it corresponds to (`"timm.layers.SEModule"`), or None when
            it has no timm counterpart (such a kind's networks cannot load timm checkpoints).
        timm_names: how the layer's weights map onto the timm module's tensors: `{Keras
            sublayer name: timm submodule path}`, where `{i}` stands for a number that both
            share (`{"path{i}_conv": "paths.{i}.conv"}`). Sublayers not listed keep their name
            (SE's `fc1` is timm's `fc1`). Parameters map as everywhere (`kernel` -> `weight`,
            `gamma` -> `weight`, `moving_mean` -> `running_mean`, ...).
        reads: what `keras_attn.inspect.attention_model` returns for such a layer, in words.
        read: `read(weights)`: turns the layer's `attention_weights(inputs)` into that: one
            tensor, or a dict of them (`{"channel": ..., "spatial": ...}`), which
            `attention_model` returns as `"<layer name>/channel"`, `"<layer name>/spatial"`.
        spatial_map: which of `read`'s outputs is a map over positions, `(batch, height,
            width)`, rather than weights per channel (and branch): `True` when `read`'s one
            tensor is such a map (GC's attention over positions), the part's name when `read`
            returns a dict and that part is one (CBAM: `"spatial"`), `False` when there is
            none (SE's gate, SK's `(batch, branches, channels)` weights). Declared, never
            inferred from ranks: `keras_attn.inspect.spatial_attention` reads these maps,
            `excitation_profile` leaves them out.

    Raises:
        ValueError: a `slot` other than `SLOTS`, a `name` that is not a lowercase identifier
            (or is "plain"), a `layer` that is not a class with `attention_weights`, or a
            `spatial_map` that is neither a bool nor a part's name (a non-empty string).

    Examples:
        >>> kind = get("sk")
        >>> kind.slot, kind.layer.__name__, kind.timm_module
        ('conv', 'SelectiveKernel', 'timm.layers.SelectiveKernel')
        >>> kind.arguments
        ('kernel_size', 'rd_ratio', 'rd_channels', 'rd_divisor', 'keep_3x3', 'split_input')
    """

    name: str
    slot: str
    layer: type
    arguments: tuple[str, ...]
    paper: Paper
    description: str
    timm_module: str | None = None
    timm_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    reads: str = "(batch, channels)"
    read: Callable = drop_spatial_axes
    spatial_map: bool | str = False

    def __post_init__(self):
        if self.slot not in SLOTS:
            raise ValueError(f"`slot` must be one of {SLOTS}; received slot={self.slot!r}.")
        if not (isinstance(self.name, str) and self.name.isidentifier()
                and self.name == self.name.lower()):
            raise ValueError(
                "`name` must be a lowercase identifier (it ends layer names); received "
                f"name={self.name!r}."
            )
        if self.name == "plain":
            raise ValueError("`name` 'plain' is the conv slot's plain convolution; pick another.")
        if not isinstance(self.layer, type):
            raise ValueError(f"`layer` must be a Keras layer class; received {self.layer!r}.")
        missing = [name for name in ("attention_weights",) if not hasattr(self.layer, name)]
        if missing:
            raise ValueError(
                f"`layer` {self.layer.__name__} has no {missing[0]}(inputs) method, which "
                "keras_attn.inspect reads."
            )
        if not (isinstance(self.spatial_map, bool)
                or (isinstance(self.spatial_map, str) and self.spatial_map)):
            raise ValueError(
                "`spatial_map` must be True (read's one output is a map over positions), False "
                "(it is none) or the name of the part of read's dict that is one; received "
                f"spatial_map={self.spatial_map!r}."
            )
        object.__setattr__(self, "arguments", tuple(self.arguments))
        object.__setattr__(self, "timm_names", types.MappingProxyType(dict(self.timm_names)))


_KINDS = {}


def register(kind, *, replace=False):
    """Adds an attention kind to the registry, for network rows to use by its name.

    Args:
        kind: an `AttentionKind`.
        replace: replace a kind of the same name (else that is an error).

    Returns:
        `kind`.

    Raises:
        ValueError: a kind of that name exists and `replace` is False.

    Examples:
        >>> import keras
        >>> import keras_attn
        >>> @keras.saving.register_keras_serializable(package="my_app")
        ... class ScaledGate(keras.layers.Layer):
        ...     def build(self, input_shape):
        ...         self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")
        ...     def attention_weights(self, inputs):
        ...         return keras.ops.sigmoid(keras.ops.reshape(self.scale, (1, 1, 1, -1)))
        ...     def call(self, inputs):
        ...         return inputs * self.attention_weights(inputs)
        >>> _ = register(AttentionKind(
        ...     name="scaled", slot="gate", layer=ScaledGate, arguments=(),
        ...     paper=Paper("Me, 2026", "A gate", "https://example.org"),
        ...     description="a learned sigmoid scale per channel"))
        >>> net = keras_attn.applications.get_model("resnet50", gate="scaled", depths=(1, 1, 1, 1),
        ...                                         input_shape=(64, 64, 3), classes=10)
        >>> net.get_layer("stage1_block1_scaled").__class__.__name__
        'ScaledGate'
        >>> unregister("scaled")
    """
    if not isinstance(kind, AttentionKind):
        raise ValueError(f"`kind` must be an AttentionKind; received {kind!r}.")
    if kind.name in _KINDS and not replace:
        raise ValueError(
            f"An attention kind named {kind.name!r} exists already ({_KINDS[kind.name].layer}); "
            "pass replace=True to replace it."
        )
    _KINDS[kind.name] = kind
    return kind


def unregister(name):
    """Removes the kind `name` from the registry (tests, notebooks that redefine a kind).

    Args:
        name: a registered kind's name.

    Raises:
        ValueError: no kind has that name.

    Examples:
        >>> unregister("no_such_kind")
        Traceback (most recent call last):
        ...
        ValueError: Unknown attention kind 'no_such_kind'; registered kinds are ...
    """
    get(name)
    del _KINDS[name]


def get(name):
    """The registered kind `name`.

    Args:
        name: what a network row's `gate` or `conv` field says, e.g. `"se"`.

    Returns:
        Its `AttentionKind`.

    Raises:
        ValueError: no kind has that name; the message lists the registered ones.

    Examples:
        >>> get("se").paper.url
        'https://arxiv.org/abs/1709.01507'
    """
    if name not in _KINDS:
        raise ValueError(
            f"Unknown attention kind {name!r}; registered kinds are {sorted(_KINDS)} "
            "(keras_attn.attention.register adds one)."
        )
    return _KINDS[name]


def kinds(slot=None):
    """The registered kinds, in the order they were registered.

    Args:
        slot: `"gate"` or `"conv"` for that slot's kinds only; None for all.

    Returns:
        A tuple of `AttentionKind`.

    Raises:
        ValueError: `slot` is not None or one of `SLOTS`.

    Examples:
        >>> [kind.name for kind in kinds("conv")]
        ['sk', 'splat']
    """
    if slot is not None and slot not in SLOTS:
        raise ValueError(f"`slot` must be one of {SLOTS} or None; received slot={slot!r}.")
    return tuple(kind for kind in _KINDS.values() if slot is None or kind.slot == slot)


def kind_of(layer):
    """The registered kind whose layer class `layer` is an instance of (its exact class first,
    then a subclass's), or None: how the converter and `inspect` recognise attention layers.

    Args:
        layer: a Keras layer.

    Returns:
        An `AttentionKind`, or None.

    Examples:
        >>> import keras
        >>> from keras_attn.layers import SqueezeExcite
        >>> kind_of(SqueezeExcite()).name
        'se'
        >>> kind_of(keras.layers.Dense(4)) is None
        True
    """
    for kind in _KINDS.values():
        if type(layer) is kind.layer:
            return kind
    for kind in _KINDS.values():
        if isinstance(layer, kind.layer):
            return kind
    return None


SQUEEZE_EXCITE = register(AttentionKind(
    name="se",
    slot="gate",
    layer=SqueezeExcite,
    arguments=("rd_ratio", "rd_channels", "rd_divisor", "activation", "gate_activation"),
    paper=Paper("Hu et al., CVPR 2018", "Squeeze-and-Excitation Networks",
                "https://arxiv.org/abs/1709.01507"),
    description="a per-channel gate from the pooled features through a two-layer bottleneck",
    timm_module="timm.layers.SEModule",
    reads="(batch, channels): the gate, in (0, 1)",
))
"""`"se"`: Squeeze-and-Excitation (`keras_attn.layers.SqueezeExcite`), the gate slot."""

SELECTIVE_KERNEL = register(AttentionKind(
    name="sk",
    slot="conv",
    layer=SelectiveKernel,
    arguments=("kernel_size", "rd_ratio", "rd_channels", "rd_divisor", "keep_3x3", "split_input"),
    paper=Paper("Li et al., CVPR 2019", "Selective Kernel Networks",
                "https://arxiv.org/abs/1903.06586"),
    description="branches of different receptive fields, mixed per channel by a softmax",
    timm_module="timm.layers.SelectiveKernel",
    timm_names={"path{i}_conv": "paths.{i}.conv", "path{i}_bn": "paths.{i}.bn",
                "fc_reduce": "attn.fc_reduce", "attn_bn": "attn.bn",
                "fc_select": "attn.fc_select"},
    reads="(batch, branches, channels): the branch weights, summing to 1 across branches",
))
"""`"sk"`: Selective Kernel (`keras_attn.layers.SelectiveKernel`), the conv slot."""

SPLIT_ATTENTION = register(AttentionKind(
    name="splat",
    slot="conv",
    layer=SplitAttention,
    arguments=("radix", "rd_ratio", "rd_channels", "rd_divisor"),
    paper=Paper("Zhang et al., 2020", "ResNeSt: Split-Attention Networks",
                "https://arxiv.org/abs/2004.08955"),
    description="radix splits of a grouped convolution, mixed per channel by an r-softmax",
    timm_module="timm.layers.SplitAttn",
    reads="(batch, radix, channels): the split weights, summing to 1 across the radix "
          "(sigmoid gates when radix is 1)",
))
"""`"splat"`: Split-Attention (`keras_attn.layers.SplitAttention`), the conv slot."""

EFFICIENT_CHANNEL_ATTENTION = register(AttentionKind(
    name="eca",
    slot="gate",
    layer=EfficientChannelAttention,
    arguments=("kernel_size", "gamma", "beta", "gate_activation"),
    paper=Paper("Wang et al., CVPR 2020",
                "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks",
                "https://arxiv.org/abs/1910.03151"),
    description="a per-channel gate from the pooled features through a 1-D convolution "
                "across channels",
    timm_module="timm.layers.EcaModule",
    reads="(batch, channels): the gate, in (0, 1)",
))

CONVOLUTIONAL_BLOCK_ATTENTION = register(AttentionKind(
    name="cbam",
    slot="gate",
    layer=CBAM,
    arguments=("rd_ratio", "rd_channels", "rd_divisor", "spatial_kernel_size", "activation",
               "gate_activation", "mlp_bias"),
    paper=Paper("Woo et al., ECCV 2018", "CBAM: Convolutional Block Attention Module",
                "https://arxiv.org/abs/1807.06521"),
    description="a per-channel gate from the mean- and max-pooled features, then a spatial "
                "map from a convolution over the channel-wise mean and max",
    timm_module="timm.layers.cbam.CbamModule",
    timm_names={"channel_fc1": "channel.fc1", "channel_fc2": "channel.fc2",
                "spatial_conv": "spatial.conv.conv", "spatial_bn": "spatial.conv.bn"},
    reads="{'channel': (batch, channels), the channel gate in (0, 1); 'spatial': (batch, "
          "height, width), the spatial map in (0, 1)}, as '<layer>/channel' and "
          "'<layer>/spatial'",
    read=read_channel_and_spatial,
    spatial_map="spatial",
))

GLOBAL_CONTEXT = register(AttentionKind(
    name="gc",
    slot="gate",
    layer=GlobalContext,
    arguments=("use_attn", "fuse_add", "fuse_scale", "rd_ratio", "rd_channels", "rd_divisor",
               "activation", "gate_activation"),
    paper=Paper("Cao et al., 2019",
                "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond",
                "https://arxiv.org/abs/1904.11492"),
    description="a context vector pooled by a softmax over positions, through a bottleneck "
                "with LayerNorm, rescaling (or added to) the features",
    timm_module="timm.layers.GlobalContext",
    timm_names={f"mlp_{fusion}_{part}": f"mlp_{fusion}.{part}"
                for fusion in ("scale", "add") for part in ("fc1", "norm", "fc2")},
    reads="(batch, height, width): the attention over positions that pools the context, "
          "summing to 1 over the map",
    read=drop_channel_axis,
    spatial_map=True,
))
