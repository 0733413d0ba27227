"""One table describes every network: `NetworkSpec` (ResNet family) and `InceptionSpec` rows.

A row (`NetworkSpec`) is a frozen dataclass: a misspelt field fails at once, and
`spec.replace(widths=(16, 32, 64, 128))` derives a narrower network without touching the
table. Names are timm's, so the registry, the converter and users speak one language.
"""

import dataclasses
import difflib
import types
from collections.abc import Mapping

from keras_attn import attention
from keras_attn.attention import Paper
from keras_attn.layers import checks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The papers rows cite: the networks' own, and the attention kinds' (from their registry entry).
PAPERS = {
    "resnet": Paper(
        "He et al., CVPR 2016", "Deep Residual Learning for Image Recognition",
        "https://arxiv.org/abs/1512.03385",
    ),
    "bag_of_tricks": Paper(
        "He et al., CVPR 2019", "Bag of Tricks for Image Classification with CNNs",
        "https://arxiv.org/abs/1812.01187",
    ),
    "resnext": Paper(
        "Xie et al., CVPR 2017", "Aggregated Residual Transformations for Deep Neural Networks",
        "https://arxiv.org/abs/1611.05431",
    ),
    "senet": attention.SQUEEZE_EXCITE.paper,
    "sknet": attention.SELECTIVE_KERNEL.paper,
    "resnest": attention.SPLIT_ATTENTION.paper,
    "ecanet": attention.EFFICIENT_CHANNEL_ATTENTION.paper,
    "cbam": attention.CONVOLUTIONAL_BLOCK_ATTENTION.paper,
    "gcnet": attention.GLOBAL_CONTEXT.paper,
    "antialias": Paper(
        "Zhang, ICML 2019", "Making Convolutional Networks Shift-Invariant Again",
        "https://arxiv.org/abs/1904.11486",
    ),
    "resnet_rs": Paper(
        "Bello et al., NeurIPS 2021", "Revisiting ResNets: Improved Training and Scaling "
        "Strategies", "https://arxiv.org/abs/2103.07579",
    ),
    "wsl": Paper(
        "Mahajan et al., ECCV 2018", "Exploring the Limits of Weakly Supervised Pretraining",
        "https://arxiv.org/abs/1805.00932",
    ),
    "inception_v3": Paper(
        "Szegedy et al., CVPR 2016", "Rethinking the Inception Architecture for Computer Vision",
        "https://arxiv.org/abs/1512.00567",
    ),
    "inception_resnet": Paper(
        "Szegedy et al., AAAI 2017",
        "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
        "https://arxiv.org/abs/1602.07261",
    ),
    "bn_inception": Paper(
        "Ioffe & Szegedy, ICML 2015",
        "Batch Normalization: Accelerating Deep Network Training by Reducing Internal "
        "Covariate Shift",
        "https://arxiv.org/abs/1502.03167",
    ),
}

BLOCKS = ("basic", "bottleneck")
STEMS = ("plain", "deep", "deep_tiered", "cifar")
STEM_POOLS = (None, "max", "max_ceil", "conv")
# Anti-aliasing of strided layers, timm's `aa_layer`: "avg" is its `nn.AvgPool2d`.
AA_LAYERS = (None, "avg")
SHORTCUTS = ("conv", "avg")
# The timm source file whose module names a row's checkpoints use: resnet.py (ResNet, and the
# ResNeSt and SE blocks it hosts), sknet.py (Selective Kernel blocks, whose plain convolutions
# are ConvNormAct modules) or senet.py (the legacy, Caffe-converted SENets).
TIMM_LAYOUTS = ("resnet", "sknet", "senet")


def _frozen_mapping(value, field):
    if not isinstance(value, Mapping):
        raise ValueError(f"`{field}` must be a mapping of keyword arguments; received {value!r}.")
    return types.MappingProxyType(dict(value))


def _int_tuple(value, field):
    try:
        items = tuple(value)
    except TypeError:
        items = None
    if not items or not all(checks.is_integer(v) and v >= 1 for v in items):
        raise ValueError(
            f"`{field}` must be a non-empty sequence of positive integers; received {value!r}."
        )
    return tuple(int(v) for v in items)


def _check_choice(field, value, choices):
    if value not in choices:
        raise ValueError(f"`{field}` must be one of {choices}; received {field}={value!r}.")


def _check_slot(row, slot, field, plain):
    """Checks a slot field (`gate` or `conv`) and its arguments against the attention
    registry; `plain` is the slot's value without attention (None or "plain")."""
    value, arguments = getattr(row, field), getattr(row, f"{field}_args")
    if value == plain:
        allowed = ()
    else:
        names = [kind.name for kind in attention.kinds(slot)]
        if value not in names:
            raise ValueError(
                f"`{field}` must be {plain!r} or a registered {slot}-slot attention kind "
                f"{names}; received {field}={value!r}."
            )
        allowed = attention.get(value).arguments
    unknown = sorted(set(arguments) - set(allowed))
    if unknown:
        raise ValueError(
            f"`{field}_args` has arguments {unknown} that the {value!r} slot does not take; "
            f"it takes {list(allowed)}."
        )


def _set_int(row, field, minimum=1):
    """Stores `row.field` as a Python int (rows built from arrays or configs hold NumPy's);
    raises unless it is an integer >= `minimum`."""
    value = checks.check_positive_int(field, getattr(row, field), minimum)
    object.__setattr__(row, field, value)  # noqa: PLC2801 (frozen dataclass)


class _Row:
    """What every row type of the table shares: validation helpers and `replace`."""

    def replace(self, **changes):
        """A copy with `changes` applied; mapping fields (`conv_args`, `gate_args`) merge."""
        names = field_names(type(self))
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no field(s) {unknown}; fields are {sorted(names)}."
            )
        for field in names:
            current = getattr(self, field)
            if field in changes and isinstance(current, Mapping):
                changes[field] = {**current, **_frozen_mapping(changes[field], field)}
        return dataclasses.replace(self, **changes)

    def _check_gate(self):
        _check_slot(self, "gate", "gate", None)
        _check_choice("paper", self.paper, tuple(PAPERS))


@dataclasses.dataclass(frozen=True)
class NetworkSpec(_Row):
    """One ResNet-family network: a row of the table that one builder turns into a model.

    A frozen dataclass, so a misspelt field fails at once; `replace(**changes)` derives a
    changed row (mapping fields merge), and `get_model(name, **changes)` builds one.

    Attributes:
        name: registry name (timm's where timm has the network).
        family: family shown in the model table, e.g. "SE-ResNeXt".
        paper: key into `PAPERS`.
        block: "basic" (two 3x3) or "bottleneck" (1x1, 3x3, 1x1; output 4x `widths`).
        depths: blocks per stage.
        widths: planes per stage.
        stem: "plain" (7x7 stride 2), "deep" (three 3x3, ResNet-C), "deep_tiered" (three
            3x3, the first 3/4 as wide) or "cifar" (one 3x3, stride 1).
        stem_width: output channels of the plain and cifar stems; the deep stems end with
            twice this many.
        stem_pool: "max" (3x3 stride 2, padded as PyTorch's padding=1), "max_ceil" (no
            padding, ceil mode, as the released Caffe SENets), "conv" (a 3x3 stride-2
            convolution with BatchNorm and ReLU in its place, as ResNet-RS: timm's
            `replace_stem_pool`, modules `maxpool.0` and `maxpool.1`) or None.
        shortcut: "conv" (strided projection) or "avg" (average pool then 1x1, ResNet-D).
        shortcut_kernel: kernel of the strided projection (SENet-154 uses 3).
        cardinality: groups of the 3x3 convolution (ResNeXt's C).
        base_width: width of each group at the first stage (ResNeXt's d).
        reduce_first: the first convolution of a block is this many times narrower.
        stride_in_1x1: put the bottleneck's stride on its first 1x1 convolution (the layout of
            the released Caffe SE-ResNets) instead of its 3x3.
        conv: the conv slot, which replaces the 3x3 convolution and takes the stride:
            "plain" or a conv-slot kind of `keras_attn.attention` ("sk": `SelectiveKernel`,
            "splat": `SplitAttention`).
        conv_args: keyword arguments of the conv slot's layer.
        gate: the gate slot, after the last BatchNorm and before the residual add: None or a
            gate-slot kind of `keras_attn.attention` ("se": `SqueezeExcite`, "eca":
            `EfficientChannelAttention`, "cbam": `CBAM`, "gc": `GlobalContext`).
        gate_args: keyword arguments of the gate slot's layer.
        avd: in strided bottlenecks, move the stride to a 3x3 average pool (ResNeSt).
        avd_first: put that pool before the conv slot instead of after it.
        aa_layer: anti-aliasing of strided layers, timm's `aa_layer`: None, or "avg" (timm's
            `nn.AvgPool2d` as `create_aa` makes it: a 2x2 average pool of stride 2, no
            padding, floor mode). A strided block's 3x3 convolution (a basic block's first)
            then runs at stride 1 and the pool follows its ReLU; the stem's max pool is
            replaced by the pool itself; with `stem_pool="conv"` that convolution runs at
            stride 1 and the pool comes before its BatchNorm (timm's `maxpool.1`, the
            BatchNorm becoming `maxpool.2`). Shortcuts are unchanged, as in timm. Only for
            plain conv slots in timm's resnet.py layout, without `avd` or `stride_in_1x1`.
        default_size: input height and width of the published weights.
        mean: per-channel mean of the [0, 1] pixels the network expects.
        std: per-channel standard deviation of those pixels.
        timm_layout: the timm source file whose module names its checkpoints use: "resnet",
            "sknet" or "senet" (`TIMM_LAYOUTS`).

    Raises:
        ValueError: a field outside its choices or range, or a `gate` / `conv` kind (or
            argument) the attention registry does not know; the message names the field.

    Examples:
        >>> from keras_attn.applications import specs
        >>> row = specs.SPECS["seresnext50_32x4d"]
        >>> row.cardinality, row.base_width, row.gate
        (32, 4, 'se')
        >>> row.replace(widths=(16, 32, 64, 128), gate_args={"rd_ratio": 0.25}).gate_args
        mappingproxy({'rd_ratio': 0.25})
        >>> row.replace(gate="eca_typo")
        Traceback (most recent call last):
        ...
        ValueError: `gate` must be None or a registered gate-slot attention kind ...
    """

    name: str
    family: str
    paper: str
    block: str = "bottleneck"
    depths: tuple[int, ...] = (3, 4, 6, 3)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem: str = "plain"
    stem_width: int = 64
    stem_pool: str | None = "max"
    shortcut: str = "conv"
    shortcut_kernel: int = 1
    cardinality: int = 1
    base_width: int = 64
    reduce_first: int = 1
    stride_in_1x1: bool = False
    conv: str = "plain"
    conv_args: Mapping = dataclasses.field(default_factory=dict)
    gate: str | None = None
    gate_args: Mapping = dataclasses.field(default_factory=dict)
    avd: bool = False
    avd_first: bool = False
    aa_layer: str | None = None
    default_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    timm_layout: str = "resnet"

    def __post_init__(self):
        set_field = object.__setattr__.__get__(self)  # noqa: PLC2801 (frozen dataclass)
        set_field("depths", _int_tuple(self.depths, "depths"))
        set_field("widths", _int_tuple(self.widths, "widths"))
        if len(self.depths) != len(self.widths):
            raise ValueError(
                f"`depths` and `widths` need one entry per stage; received depths={self.depths} "
                f"and widths={self.widths}."
            )
        set_field("conv_args", _frozen_mapping(self.conv_args, "conv_args"))
        set_field("gate_args", _frozen_mapping(self.gate_args, "gate_args"))
        _check_choice("block", self.block, BLOCKS)
        _check_choice("stem", self.stem, STEMS)
        _check_choice("stem_pool", self.stem_pool, STEM_POOLS)
        _check_choice("shortcut", self.shortcut, SHORTCUTS)
        _check_choice("timm_layout", self.timm_layout, TIMM_LAYOUTS)
        _check_choice("aa_layer", self.aa_layer, AA_LAYERS)
        _check_slot(self, "conv", "conv", "plain")
        self._check_gate()
        for field in ("stem_width", "cardinality", "base_width", "reduce_first", "default_size",
                      "shortcut_kernel"):
            _set_int(self, field)
        if self.shortcut_kernel % 2 == 0:
            raise ValueError(
                f"`shortcut_kernel` must be odd; received shortcut_kernel={self.shortcut_kernel}."
            )
        if self.block == "basic":
            if self.cardinality != 1 or self.base_width != 64:
                raise ValueError(
                    "basic blocks have no grouped bottleneck: they need cardinality=1 and "
                    f"base_width=64; received cardinality={self.cardinality}, "
                    f"base_width={self.base_width}."
                )
            if self.avd or self.stride_in_1x1:
                raise ValueError("`avd` and `stride_in_1x1` apply to bottleneck blocks only.")
        self._check_layout()

    def _check_layout(self):
        """Raises for stem pools and anti-aliasing that timm's layouts do not have."""
        if self.stem_pool == "conv" and self.timm_layout == "senet":
            raise ValueError(
                "`stem_pool`='conv' is timm's resnet.py `replace_stem_pool`; senet.py has no "
                "such module. Received stem_pool='conv' with timm_layout='senet'."
            )
        if self.aa_layer is None:
            return
        conflicts = {
            "conv": (self.conv, "plain"),  # the conv slot's layer takes the stride itself
            "avd": (self.avd, False),  # both move the stride to a pool
            "stride_in_1x1": (self.stride_in_1x1, False),
            "stem_pool": (self.stem_pool, "max", "conv", None),
            "timm_layout": (self.timm_layout, "resnet"),
        }
        for field, (value, *allowed) in conflicts.items():
            if value not in allowed:
                raise ValueError(
                    f"`aa_layer`={self.aa_layer!r} (timm's anti-aliasing in resnet.py) needs "
                    f"{field} in {tuple(allowed)}; received {field}={value!r}."
                )

    @property
    def total_stride(self):
        """Ratio of the input size to the last feature map's size."""
        stem_stride = 1 if self.stem == "cifar" else 2
        pool_stride = 1 if self.stem_pool is None else 2
        return stem_stride * pool_stride * 2 ** (len(self.depths) - 1)

    @property
    def min_input_size(self):
        """Smallest input height and width: one pixel at the last stage."""
        return self.total_stride

    @property
    def expansion(self):
        return 4 if self.block == "bottleneck" else 1

    # timm's module names, in the layout of the source file that defines the row.

    def timm_stem(self, index, convs):
        """`(convolution, BatchNorm)` module names of stem convolution `index` of `convs`."""
        if self.timm_layout == "senet":
            return f"layer0.conv{index}", f"layer0.bn{index}"
        if convs == 1:
            return "conv1", "bn1"
        # resnet.py's deep stem: Sequential(conv, bn, act, conv, bn, act, conv), then bn1.
        bn = "bn1" if index == convs else f"conv1.{3 * index - 2}"
        return f"conv1.{3 * (index - 1)}", bn

    def timm_stem_pool(self):
        """`(convolution, BatchNorm)` module names of the convolution that replaces the stem's
        max pool (`stem_pool="conv"`): timm's `maxpool = Sequential(conv, [aa], bn, act)`."""
        return "maxpool.0", ("maxpool.2" if self.aa_layer else "maxpool.1")

    def timm_stage(self, stage):
        """The module name of a stage: `layer1` ... `layer4`."""
        return f"layer{stage}"

    def timm_block_conv(self, index):
        """`(convolution, BatchNorm)` module names of a block's plain convolution `index`."""
        if self.timm_layout == "sknet":  # ConvNormAct modules
            return f"conv{index}.conv", f"conv{index}.bn"
        return f"conv{index}", f"bn{index}"

    @property
    def timm_gate(self):
        """The module name of a block's gate slot (timm's `create_attn` output)."""
        return "se_module" if self.timm_layout == "senet" else "se"

    @property
    def timm_head(self):
        """The module name of the classifier."""
        return "last_linear" if self.timm_layout == "senet" else "fc"



def field_names(row_type=None):
    """The fields of a row type (`NetworkSpec` by default)."""
    return tuple(f.name for f in dataclasses.fields(row_type or NetworkSpec))


@dataclasses.dataclass(frozen=True)
class InceptionSpec(_Row):
    """One SE-Inception network: an Inception architecture with a gate after its modules.

    Attributes:
        name: registry name.
        family: family shown in the model table.
        paper: key into `PAPERS` (the attention's paper).
        architecture: "inception_v3", "inception_resnet_v2" or "bn_inception".
        gate: the gate slot after every Inception module (on the residual branch for
            Inception-ResNet): "se", or None for the plain network.
        gate_args: keyword arguments of the gate slot's layer.
        default_size: input height and width the network was designed for.
        min_input_size: smallest input height and width.
        mean: per-channel mean of the [0, 1] pixels the network expects.
        std: per-channel standard deviation of those pixels.

    Raises:
        ValueError: an unknown `architecture` or `gate`, or sizes that are not positive.

    Examples:
        >>> from keras_attn.applications import specs
        >>> row = specs.SPECS["se_inception_v3"]
        >>> row.architecture, row.gate, row.default_size
        ('inception_v3', 'se', 299)
    """

    name: str
    family: str
    paper: str
    architecture: str
    gate: str | None = "se"
    gate_args: Mapping = dataclasses.field(default_factory=dict)
    default_size: int = 299
    min_input_size: int = 75
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    timm_head = None  # timm has no SE-Inception

    def __post_init__(self):
        object.__setattr__(self, "gate_args", _frozen_mapping(self.gate_args, "gate_args"))
        _check_choice("architecture", self.architecture, INCEPTION_ARCHITECTURES)
        _set_int(self, "default_size")
        _set_int(self, "min_input_size")
        self._check_gate()


INCEPTION_ARCHITECTURES = ("inception_v3", "inception_resnet_v2", "bn_inception")


# Shared settings of the rows below (as timm's model_args do).
_RESNET_D = dict(stem="deep", stem_width=32, shortcut="avg")
_SE = dict(gate="se")
_ECA = dict(gate="eca")
# The released Caffe SENets: max pool in ceil mode, SE width channels // 16.
_LEGACY_SE = dict(gate="se", gate_args={"rd_divisor": 1}, stem_pool="max_ceil",
                  timm_layout="senet")
_RESNEXT_32x4d = dict(cardinality=32, base_width=4)
_RESNEXT_32x8d = dict(cardinality=32, base_width=8)
# timm's 't' variants: the tiered deep stem (24, 32, 64 channels), average-pool shortcuts.
_RESNET_T = dict(stem="deep_tiered", stem_width=32, shortcut="avg")
# timm's "aa" variants: average-pool anti-aliasing of every stride after the stem convolution.
_AA = dict(aa_layer="avg")
# ResNet-RS (Bello et al. 2021): ResNet-D, the stem's max pool replaced by a strided
# convolution, SE gates with a bottleneck of a quarter of the channels.
_RESNET_RS = dict(
    family="ResNet-RS", paper="resnet_rs", stem_pool="conv", gate="se",
    gate_args={"rd_ratio": 0.25}, **_RESNET_D,
)
_SKNET_BASIC = dict(
    block="basic",
    conv="sk",
    conv_args={"rd_ratio": 1 / 8, "rd_divisor": 16, "split_input": True},
    family="SKNet",
    paper="sknet",
    timm_layout="sknet",
)
_SKNEXT = dict(
    conv="sk",
    conv_args={"rd_ratio": 1 / 16, "rd_divisor": 32, "split_input": False},
    family="SKNet",
    paper="sknet",
    timm_layout="sknet",
    **_RESNEXT_32x4d,
)
_RESNEST = dict(conv="splat", conv_args={"radix": 2}, avd=True, family="ResNeSt", paper="resnest")
_CIFAR = dict(
    stem="cifar", stem_pool=None, widths=(64, 128, 256), depths=(3, 3, 3), default_size=32
)


def _resnest_fast(radix, cardinality, base_width):
    # The official ResNeSt ablation (resnest50_fast_*): avd before the split-attention conv.
    return NetworkSpec(
        f"resnest50_fast_{radix}s{cardinality}x{base_width}d",
        conv_args={"radix": radix},
        cardinality=cardinality,
        base_width=base_width,
        avd_first=True,
        **{k: v for k, v in _RESNEST.items() if k != "conv_args"},
        **_RESNET_D,
    )


_TABLE = (
    # Baselines.
    NetworkSpec("resnet50", family="ResNet", paper="resnet"),
    NetworkSpec("resnet50d", family="ResNet", paper="bag_of_tricks", **_RESNET_D),
    NetworkSpec(
        "resnet101d", family="ResNet", paper="bag_of_tricks", depths=(3, 4, 23, 3),
        default_size=256, **_RESNET_D,
    ),
    NetworkSpec("resnetaa50d", "ResNet", "antialias", **_RESNET_D, **_AA),
    NetworkSpec("resnetaa101d", "ResNet", "antialias", depths=(3, 4, 23, 3), **_RESNET_D, **_AA),
    # SE-ResNet: the SE gate in timm's ResNet layout (stride on the 3x3).
    NetworkSpec("seresnet18", "SE-ResNet", "senet", block="basic", depths=(2, 2, 2, 2), **_SE),
    NetworkSpec("seresnet34", "SE-ResNet", "senet", block="basic", **_SE),
    NetworkSpec("seresnet50", "SE-ResNet", "senet", **_SE),
    NetworkSpec("seresnet101", "SE-ResNet", "senet", depths=(3, 4, 23, 3), **_SE),
    NetworkSpec("seresnet152", "SE-ResNet", "senet", depths=(3, 8, 36, 3), **_SE),
    # The paper's own layout (released Caffe models): stride on the first 1x1.
    NetworkSpec("legacy_seresnet50", "SE-ResNet", "senet", stride_in_1x1=True, **_LEGACY_SE),
    NetworkSpec(
        "legacy_seresnet101", "SE-ResNet", "senet", depths=(3, 4, 23, 3), stride_in_1x1=True,
        **_LEGACY_SE,
    ),
    NetworkSpec(
        "legacy_seresnet152", "SE-ResNet", "senet", depths=(3, 8, 36, 3), stride_in_1x1=True,
        **_LEGACY_SE,
    ),
    # SE-ResNet-D, timm's deeper SE networks.
    NetworkSpec(
        "seresnet152d", "SE-ResNet", "senet", depths=(3, 8, 36, 3), default_size=256,
        **_RESNET_D, **_SE,
    ),
    NetworkSpec(
        "seresnet200d", "SE-ResNet", "senet", depths=(3, 24, 36, 3), default_size=256,
        **_RESNET_D, **_SE,
    ),
    NetworkSpec(
        "seresnet269d", "SE-ResNet", "senet", depths=(3, 30, 48, 8), default_size=256,
        **_RESNET_D, **_SE,
    ),
    NetworkSpec("seresnetaa50d", "SE-ResNet", "senet", **_RESNET_D, **_AA, **_SE),
    # SE-ResNeXt and SENet.
    NetworkSpec(
        "seresnext26d_32x4d", "SE-ResNeXt", "senet", depths=(2, 2, 2, 2),
        **_RESNEXT_32x4d, **_RESNET_D, **_SE,
    ),
    NetworkSpec("seresnext50_32x4d", "SE-ResNeXt", "senet", **_RESNEXT_32x4d, **_SE),
    NetworkSpec(
        "seresnext101_32x4d", "SE-ResNeXt", "senet", depths=(3, 4, 23, 3),
        **_RESNEXT_32x4d, **_SE,
    ),
    NetworkSpec(
        "seresnext101_32x8d", "SE-ResNeXt", "senet", depths=(3, 4, 23, 3), cardinality=32,
        base_width=8, **_SE,
    ),
    NetworkSpec(
        "seresnext101_64x4d", "SE-ResNeXt", "senet", depths=(3, 4, 23, 3), cardinality=64,
        base_width=4, **_SE,
    ),
    NetworkSpec(
        "seresnext26t_32x4d", "SE-ResNeXt", "senet", depths=(2, 2, 2, 2),
        **_RESNEXT_32x4d, **_RESNET_T, **_SE,
    ),
    NetworkSpec(
        "seresnext101d_32x8d", "SE-ResNeXt", "senet", depths=(3, 4, 23, 3),
        **_RESNEXT_32x8d, **_RESNET_D, **_SE,
    ),
    # The anti-aliased SE-ResNeXt-D, timm's most accurate SE networks.
    NetworkSpec(
        "seresnextaa101d_32x8d", "SE-ResNeXt", "senet", depths=(3, 4, 23, 3),
        default_size=288, **_RESNEXT_32x8d, **_RESNET_D, **_AA, **_SE,
    ),
    NetworkSpec(
        "seresnextaa201d_32x8d", "SE-ResNeXt", "senet", depths=(3, 24, 36, 4),
        stem="deep", stem_width=64, shortcut="avg", default_size=384,
        **_RESNEXT_32x8d, **_AA, **_SE,
    ),
    NetworkSpec("legacy_seresnext50_32x4d", "SE-ResNeXt", "senet", **_RESNEXT_32x4d, **_LEGACY_SE),
    NetworkSpec(
        "legacy_seresnext101_32x4d", "SE-ResNeXt", "senet", depths=(3, 4, 23, 3),
        **_RESNEXT_32x4d, **_LEGACY_SE,
    ),
    NetworkSpec(
        "senet154", "SENet", "senet", depths=(3, 8, 36, 3), cardinality=64, base_width=4,
        stem="deep", shortcut_kernel=3, reduce_first=2, **_SE,
    ),
    NetworkSpec(
        "legacy_senet154", "SENet", "senet", depths=(3, 8, 36, 3), cardinality=64,
        base_width=4, stem="deep", shortcut_kernel=3, reduce_first=2, **_LEGACY_SE,
    ),
    # ResNeXt.
    NetworkSpec("resnext50_32x4d", "ResNeXt", "resnext", **_RESNEXT_32x4d),
    NetworkSpec("resnext50d_32x4d", "ResNeXt", "resnext", **_RESNEXT_32x4d, **_RESNET_D),
    NetworkSpec("resnext101_32x4d", "ResNeXt", "resnext", depths=(3, 4, 23, 3), **_RESNEXT_32x4d),
    NetworkSpec(
        "resnext101_32x8d", "ResNeXt", "resnext", depths=(3, 4, 23, 3), cardinality=32,
        base_width=8,
    ),
    NetworkSpec(
        "resnext101_64x4d", "ResNeXt", "resnext", depths=(3, 4, 23, 3), cardinality=64,
        base_width=4,
    ),
    # The widest ResNeXts, introduced with weakly supervised pre-training on Instagram.
    NetworkSpec(
        "resnext101_32x16d", "ResNeXt", "wsl", depths=(3, 4, 23, 3), cardinality=32,
        base_width=16,
    ),
    NetworkSpec(
        "resnext101_32x32d", "ResNeXt", "wsl", depths=(3, 4, 23, 3), cardinality=32,
        base_width=32,
    ),
    # ECA-ResNet: the ECA gate (kernel size from the channel count) in timm's ResNet layout.
    NetworkSpec(
        "ecaresnet26t", "ECA-ResNet", "ecanet", depths=(2, 2, 2, 2), default_size=256,
        **_RESNET_T, **_ECA,
    ),
    NetworkSpec("ecaresnet50d", "ECA-ResNet", "ecanet", **_RESNET_D, **_ECA),
    NetworkSpec("ecaresnet50t", "ECA-ResNet", "ecanet", default_size=256, **_RESNET_T, **_ECA),
    # timm's plain 7x7 stem (64 channels) with average-pool shortcuts, one block in each of the
    # first two stages and eleven in the third.
    NetworkSpec(
        "ecaresnetlight", "ECA-ResNet", "ecanet", depths=(1, 1, 11, 3), shortcut="avg", **_ECA,
    ),
    NetworkSpec(
        "ecaresnet101d", "ECA-ResNet", "ecanet", depths=(3, 4, 23, 3), **_RESNET_D, **_ECA,
    ),
    NetworkSpec(
        "ecaresnet200d", "ECA-ResNet", "ecanet", depths=(3, 24, 36, 3), default_size=256,
        **_RESNET_D, **_ECA,
    ),
    NetworkSpec(
        "ecaresnet269d", "ECA-ResNet", "ecanet", depths=(3, 30, 48, 8), default_size=320,
        **_RESNET_D, **_ECA,
    ),
    NetworkSpec(
        "ecaresnext26t_32x4d", "ECA-ResNeXt", "ecanet", depths=(2, 2, 2, 2),
        **_RESNEXT_32x4d, **_RESNET_T, **_ECA,
    ),
    NetworkSpec(
        "ecaresnext50t_32x4d", "ECA-ResNeXt", "ecanet", **_RESNEXT_32x4d, **_RESNET_T, **_ECA,
    ),
    # CBAM and Global Context: timm has the modules but registers no network; these are timm's
    # ResNet with block_args=dict(attn_layer="cbam" / "gc"), the CBAM paper's ResNet-18 and
    # ResNet-50 (its MLP without biases, as timm's CbamModule: mlp_bias=True is the paper's).
    NetworkSpec(
        "cbamresnet18", "CBAM-ResNet", "cbam", block="basic", depths=(2, 2, 2, 2), gate="cbam",
    ),
    NetworkSpec("cbamresnet50", "CBAM-ResNet", "cbam", gate="cbam"),
    NetworkSpec("gcresnet50", "GC-ResNet", "gcnet", gate="gc"),
    # ResNet-RS.
    NetworkSpec("resnetrs50", depths=(3, 4, 6, 3), default_size=160, **_RESNET_RS),
    NetworkSpec("resnetrs101", depths=(3, 4, 23, 3), default_size=192, **_RESNET_RS),
    NetworkSpec("resnetrs152", depths=(3, 8, 36, 3), default_size=256, **_RESNET_RS),
    NetworkSpec("resnetrs200", depths=(3, 24, 36, 3), default_size=256, **_RESNET_RS),
    NetworkSpec("resnetrs270", depths=(4, 29, 53, 4), default_size=256, **_RESNET_RS),
    NetworkSpec("resnetrs350", depths=(4, 36, 72, 4), default_size=288, **_RESNET_RS),
    NetworkSpec("resnetrs420", depths=(4, 44, 87, 4), default_size=320, **_RESNET_RS),
    # SE-ResNet-20 for 32x32 inputs: the CIFAR ResNet-20 (He et al. 2016, Section 4.2; with
    # projection shortcuts) with SE gates. Small enough to train on a CPU in minutes.
    NetworkSpec(
        "seresnet20_cifar", "SE-ResNet", "senet", block="basic", depths=(3, 3, 3),
        widths=(16, 32, 64), stem="cifar", stem_width=16, stem_pool=None, default_size=32,
        gate="se",
    ),
    # ResNeXt-29 for 32x32 inputs (ResNeXt paper, Table 7).
    NetworkSpec("resnext29_8x64d", "ResNeXt", "resnext", cardinality=8, base_width=64, **_CIFAR),
    NetworkSpec(
        "resnext29_16x64d", "ResNeXt", "resnext", cardinality=16, base_width=64, **_CIFAR
    ),
    # SKNet.
    NetworkSpec("skresnet18", depths=(2, 2, 2, 2), **_SKNET_BASIC),
    NetworkSpec("skresnet34", **_SKNET_BASIC),
    NetworkSpec(
        "skresnet50", "SKNet", "sknet", conv="sk", conv_args={"split_input": True},
        timm_layout="sknet",
    ),
    NetworkSpec("skresnext50_32x4d", **_SKNEXT),
    NetworkSpec("sknet101", depths=(3, 4, 23, 3), **_SKNEXT),
    # ResNeSt.
    NetworkSpec("resnest14d", depths=(1, 1, 1, 1), **_RESNEST, **_RESNET_D),
    NetworkSpec("resnest26d", depths=(2, 2, 2, 2), **_RESNEST, **_RESNET_D),
    NetworkSpec("resnest50d", **_RESNEST, **_RESNET_D),
    NetworkSpec(
        "resnest101e", depths=(3, 4, 23, 3), stem="deep", stem_width=64, shortcut="avg",
        default_size=256, **_RESNEST,
    ),
    NetworkSpec(
        "resnest200e", depths=(3, 24, 36, 3), stem="deep", stem_width=64, shortcut="avg",
        default_size=320, **_RESNEST,
    ),
    NetworkSpec(
        "resnest269e", depths=(3, 30, 48, 8), stem="deep", stem_width=64, shortcut="avg",
        default_size=416, **_RESNEST,
    ),
    _resnest_fast(4, 2, 40).replace(name="resnest50d_4s2x40d"),
    _resnest_fast(1, 4, 24).replace(name="resnest50d_1s4x24d"),
    _resnest_fast(1, 1, 64),
    _resnest_fast(2, 1, 64),
    _resnest_fast(4, 1, 64),
    _resnest_fast(1, 2, 40),
    _resnest_fast(2, 2, 40),
    _resnest_fast(4, 2, 40),
    _resnest_fast(1, 4, 24),
    # SE-Inception (SENet paper): the gate after every Inception module.
    InceptionSpec("se_inception_v3", "SE-Inception", "senet", "inception_v3"),
    InceptionSpec("se_inception_resnet_v2", "SE-Inception", "senet", "inception_resnet_v2"),
    InceptionSpec(
        "se_bn_inception", "SE-Inception", "senet", "bn_inception", default_size=224,
        min_input_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    ),
)

SPECS = types.MappingProxyType({spec.name: spec for spec in _TABLE})
if len(SPECS) != len(_TABLE):
    raise RuntimeError("two rows of the network table share a name")


def get_spec(name):
    """The table's row for `name` (a `NetworkSpec` is returned as it is); a `ValueError`
    suggests close names for an unknown one."""
    if isinstance(name, NetworkSpec):
        return name
    if name in SPECS:
        return SPECS[name]
    # Names that extend what was typed ("seresnext50" -> "seresnext50_32x4d") come first.
    extensions = sorted((n for n in SPECS if n.startswith(str(name))), key=len)
    close = list(dict.fromkeys(extensions + difflib.get_close_matches(str(name), list(SPECS))))[:5]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown model name {name!r}.{hint} `keras_attn.applications.list_models()` lists "
        f"all {len(SPECS)} names."
    )


def resolve(model_name, /, **kwargs):
    """Splits `kwargs` into changes to the row `model_name` and the rest (builder arguments).

    Returns:
        `(spec, remaining_kwargs)`: the row with every keyword that names a `NetworkSpec`
        field applied (except `name`, which stays the model's name), and the others.
    """
    spec = get_spec(model_name)
    fields = set(field_names(type(spec))) - {"name"}
    changes = {key: kwargs.pop(key) for key in list(kwargs) if key in fields}
    if changes:
        spec = spec.replace(**changes)
    return spec, kwargs
