"""The one builder: a `NetworkSpec` row becomes a `Network` (a functional `keras.Model`).

Every block is assembled from the same parts; attention enters through two slots only (see
`keras_attn.attention`): the conv slot replaces the 3x3 convolution (and takes its stride),
the gate slot runs after the block's last BatchNorm, before the residual add.

Layer names are deterministic (`stem_conv1`, `stage2_block1_conv2`, `stage2_block1_se`,
`stage2_block1_down_conv`, `predictions`, ...). As it makes each layer, the builder records
the timm module it corresponds to, in the naming of the timm source file the row names
(`NetworkSpec.timm_layout`), and the network's stage outputs: the timm converter and
`feature_extractor` read that record. Padding and pooling reproduce PyTorch's exactly (explicit
symmetric `ZeroPadding2D` before strided convolutions), so timm checkpoints give timm's logits.
"""

import keras

from keras_attn import attention
from keras_attn.applications.application import build_application
from keras_attn.layers import common
from keras_attn.layers.grouped_conv import conv2d
from keras_attn.layers.pytorch import TorchConvGeometry


def build_model(spec, **kwargs):
    """Builds the network a `NetworkSpec` describes.

    Args:
        spec: a `keras_attn.applications.specs.NetworkSpec`.
        **kwargs: the `keras.applications` arguments of
            `keras_attn.applications.application.build_application`.

    Returns:
        A `keras_attn.applications.Network`.
    """
    return build_application(spec, _body, **kwargs)


def _body(inputs, spec, record):
    x = _stem(inputs, spec, record)
    stride = spec.total_stride // 2 ** (len(spec.depths) - 1)
    for stage, (depth, planes) in enumerate(zip(spec.depths, spec.widths), start=1):
        for index in range(1, depth + 1):
            strides = 2 if stage > 1 and index == 1 else 1
            name = f"stage{stage}_block{index}"
            with record.block(name, timm_prefix=f"{spec.timm_stage(stage)}.{index - 1}"):
                x = _block(x, spec, planes, strides, record, name=name)
        stride *= 2 if stage > 1 else 1
        record.feature(f"{name}_out", stride, f"output of stage {stage}")
    return x


def _conv_bn(x, filters, kernel_size, record, strides=1, groups=1, activation=True, *, name,
             index, timm=None, pool_before_bn=None):
    """Convolution + BatchNorm (+ ReLU), padded as PyTorch pads it. `timm` is the pair of timm
    modules of the convolution and the BatchNorm; `pool_before_bn`, a layer, runs between the
    convolution and the BatchNorm (the anti-aliased stem pool of timm's ResNet)."""
    geometry = TorchConvGeometry(kernel_size, strides)
    if geometry.padding:
        x = record(keras.layers.ZeroPadding2D(geometry.padding, name=f"{name}_pad{index}"))(x)
    conv_module, bn_module = timm or (None, None)
    x = record(conv2d(
        filters,
        kernel_size,
        groups=groups,
        use_bias=False,
        name=f"{name}_conv{index}",
        **geometry.conv_kwargs,
    ), timm=conv_module)(x)
    if pool_before_bn is not None:
        x = record(pool_before_bn)(x)
    x = record(common.batch_norm(f"{name}_bn{index}"), timm=bn_module)(x)
    if activation:
        x = record(keras.layers.ReLU(name=f"{name}_relu{index}"))(x)
    return x


def _stem(x, spec, record):
    if spec.stem in ("plain", "cifar"):
        kernel_size, strides = (7, 2) if spec.stem == "plain" else (3, 1)
        x = _conv_bn(x, spec.stem_width, kernel_size, record, strides, name="stem", index=1,
                     timm=spec.timm_stem(1, 1))
    else:
        first = 3 * (spec.stem_width // 4) if spec.stem == "deep_tiered" else spec.stem_width
        widths = (first, spec.stem_width, 2 * spec.stem_width)
        for index, (width, strides) in enumerate(zip(widths, (2, 1, 1)), start=1):
            x = _conv_bn(x, width, 3, record, strides, name="stem", index=index,
                         timm=spec.timm_stem(index, 3))
    if spec.stem_pool == "conv":
        # timm's replace_stem_pool (ResNet-RS): Sequential(conv, [aa], bn, act).
        aa = spec.aa_layer is not None
        return _conv_bn(x, x.shape[-1], 3, record, 1 if aa else 2, name="stem_pool", index="",
                        timm=spec.timm_stem_pool(),
                        pool_before_bn=_aa_pool(2, "stem_pool_aa") if aa else None)
    if spec.stem_pool is not None and spec.aa_layer is not None:
        # timm replaces the stem's max pool by the anti-aliasing pool itself.
        return record(_aa_pool(2, "stem_pool"))(x)
    # Zero padding equals PyTorch's -inf padding here: the pool follows a ReLU.
    if spec.stem_pool == "max":
        x = record(keras.layers.ZeroPadding2D(1, name="stem_pool_pad"))(x)
    elif spec.stem_pool == "max_ceil":
        x = record(keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="stem_pool_pad"))(x)
    if spec.stem_pool is not None:
        x = record(keras.layers.MaxPooling2D(3, 2, name="stem_pool"))(x)
    return x


def _conv_slot(x, spec, filters, strides, record, *, name, index):
    """The 3x3 convolution with BatchNorm and ReLU, or the attention layer that replaces it."""
    if spec.conv == "plain":
        return _conv_bn(x, filters, 3, record, strides, groups=spec.cardinality, name=name,
                        index=index, timm=spec.timm_block_conv(index))
    layer = attention.get(spec.conv).layer(
        filters,
        strides=strides,
        cardinality=spec.cardinality,
        name=f"{name}_conv{index}",
        **spec.conv_args,
    )
    return record(layer, timm=f"conv{index}")(x)


def _gate_slot(x, spec, record, *, name):
    if spec.gate is None:
        return x
    layer = attention.get(spec.gate).layer(name=f"{name}_{spec.gate}", **spec.gate_args)
    return record(layer, timm=spec.timm_gate)(x)


def _shortcut(x, spec, filters, strides, record, *, name):
    if strides == 1 and x.shape[-1] == filters:
        return x
    if spec.shortcut == "avg":
        if strides > 1:
            # PyTorch's AvgPool2d(2, ceil_mode=True, count_include_pad=False): "same" padding
            # adds the odd row at the end and leaves it out of the average.
            x = record(keras.layers.AveragePooling2D(
                2, strides, padding="same", name=f"{name}_down_pool"))(x)
        # timm's downsample is Sequential(pool, conv, bn), the pool an Identity at stride 1.
        return _conv_bn(x, filters, 1, record, activation=False, name=f"{name}_down", index="",
                        timm=("downsample.1", "downsample.2"))
    kernel_size = spec.shortcut_kernel if strides > 1 else 1
    return _conv_bn(x, filters, kernel_size, record, strides, activation=False,
                    name=f"{name}_down", index="", timm=("downsample.0", "downsample.1"))


def _aa_pool(strides, name):
    """timm's anti-aliasing pool (`create_aa(nn.AvgPool2d, stride=s)` is `AvgPool2d(s)`): a
    stride x stride average pool, no padding, floor mode, as "valid" pools."""
    return keras.layers.AveragePooling2D(strides, strides, name=name)


def _avd_pool(x, strides, record, *, name):
    # PyTorch's AvgPool2d(3, stride, padding=1), which counts the zero padding.
    x = record(keras.layers.ZeroPadding2D(1, name=f"{name}_avd_pad"))(x)
    return record(keras.layers.AveragePooling2D(3, strides, name=f"{name}_avd_pool"))(x)


def _check_even(x, spec, name):
    """Anti-aliased strides need even maps: the pool floors an odd size, the average-pool
    shortcut rounds it up (timm's networks fail there too)."""
    height, width = x.shape[1:3]
    if any(size is not None and size % 2 for size in (height, width)):
        raise ValueError(
            f"{name} halves a {height}x{width} map: with aa_layer={spec.aa_layer!r} every map "
            "a block halves must have an even height and width (its anti-aliasing pool rounds "
            "down, its shortcut up). Use an input whose height and width are multiples of "
            f"{spec.total_stride}."
        )


def _block(x, spec, planes, strides, record, *, name):
    shortcut = _shortcut(x, spec, planes * spec.expansion, strides, record, name=name)
    # Anti-aliasing moves the stride of the 3x3 convolution to a pool after its ReLU.
    aa_strides = strides if spec.aa_layer is not None and strides > 1 else 1
    if aa_strides > 1:
        strides = 1
        _check_even(x, spec, name)
    if spec.block == "basic":
        y = _conv_slot(x, spec, planes // spec.reduce_first, strides, record, name=name,
                       index=1)
        if aa_strides > 1:
            y = record(_aa_pool(aa_strides, f"{name}_aa"))(y)
        y = _conv_bn(y, planes, 3, record, activation=False, name=name, index=2,
                     timm=spec.timm_block_conv(2))
    else:
        width = planes * spec.base_width // 64 * spec.cardinality
        if width == 0:
            raise ValueError(
                f"{name}'s grouped 3x3 convolution gets no channels: planes={planes} * "
                f"base_width={spec.base_width} // 64 is 0 channels per group. Widen `widths` "
                "or raise `base_width`."
            )
        if (width // spec.reduce_first) % spec.cardinality:
            raise ValueError(
                f"`cardinality`={spec.cardinality} does not divide the "
                f"{width // spec.reduce_first} input channels of {name}'s grouped 3x3 "
                f"convolution (planes={planes}, base_width={spec.base_width}, "
                f"reduce_first={spec.reduce_first})."
            )
        first_strides, slot_strides = (strides, 1) if spec.stride_in_1x1 else (1, strides)
        y = _conv_bn(x, width // spec.reduce_first, 1, record, first_strides, name=name,
                     index=1, timm=spec.timm_block_conv(1))
        avd_strides = 1
        if spec.avd and slot_strides > 1:
            avd_strides, slot_strides = slot_strides, 1
        if avd_strides > 1 and spec.avd_first:
            y = _avd_pool(y, avd_strides, record, name=name)
        y = _conv_slot(y, spec, width, slot_strides, record, name=name, index=2)
        if avd_strides > 1 and not spec.avd_first:
            y = _avd_pool(y, avd_strides, record, name=name)
        if aa_strides > 1:
            y = record(_aa_pool(aa_strides, f"{name}_aa"))(y)
        y = _conv_bn(y, planes * spec.expansion, 1, record, activation=False, name=name,
                     index=3, timm=spec.timm_block_conv(3))
    y = _gate_slot(y, spec, record, name=name)
    y = record(keras.layers.Add(name=f"{name}_add"))([y, shortcut])
    return record(keras.layers.ReLU(name=f"{name}_out"))(y)
