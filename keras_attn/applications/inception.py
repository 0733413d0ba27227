"""SE-Inception: Inception-v3, Inception-ResNet-v2 and BN-Inception with the SE gate slot.

Each network is written as named Inception-module functions, each followed by the gate slot
(SENet paper, Figure 2): after every module's concatenation, and for Inception-ResNet on the
residual branch before the scaled add. With `gate=None`, Inception-v3 and Inception-ResNet-v2
are exactly `keras.applications.InceptionV3` and `InceptionResNetV2`: the same layers created
in the same order (so `set_weights(keras_model.get_weights())` transfers their weights), with
deterministic names. BN-Inception follows the released Caffe model (BatchNorm with scale,
ceil-mode pooling) that the official SE-BN-Inception builds on.
"""

import keras

from keras_attn import attention
from keras_attn.applications.application import build_application
from keras_attn.layers import common
from keras_attn.layers.batch_norm import FusedBatchNormalization
from keras_attn.layers.grouped_conv import conv2d
from keras_attn.layers.pytorch import TorchConvGeometry


def build_model(spec, **kwargs):
    """Builds the network an `InceptionSpec` describes.

    Args:
        spec: a `keras_attn.applications.specs.InceptionSpec`.
        **kwargs: the `keras.applications` arguments of
            `keras_attn.applications.application.build_application`; `input_shape` defaults
            to the spec's `default_size` (299 for v3 and Inception-ResNet-v2, 224 for
            BN-Inception) and must be at least `spec.min_input_size` (75, as in
            keras.applications; 32).

    Returns:
        A `keras.Model`.
    """
    body = {
        "inception_v3": _inception_v3,
        "inception_resnet_v2": _inception_resnet_v2,
        "bn_inception": _bn_inception,
    }[spec.architecture]
    return build_application(spec, body, **kwargs)


def _gate(x, spec, name):
    """The gate slot: an attention layer named `{name}_{gate}`, or nothing."""
    if spec.gate is None:
        return x
    return attention.get(spec.gate).layer(name=_gated_name(spec, name), **spec.gate_args)(x)


def _gated_name(spec, name):
    """The name of the layer whose output is module `name`'s, gate included."""
    return name if spec.gate is None else f"{name}_{spec.gate}"


def _conv_bn(x, filters, kernel_size, strides=1, padding="same", activation="relu",
             use_bias=False, *, name):
    """keras.applications' conv2d_bn: Conv2D, BatchNorm without scale (Keras defaults), ReLU."""
    x = conv2d(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
               name=f"{name}_conv")(x)
    if not use_bias:
        x = FusedBatchNormalization(scale=False, name=f"{name}_bn")(x)
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{name}_ac")(x)
    return x


def _concatenate(branches, name):
    return keras.layers.Concatenate(axis=-1, name=name)(branches)


def _average_pool_same(x, name):
    return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)


# --- Inception-v3 (Szegedy et al., 2016), as keras.applications.InceptionV3 -------------------


def _stem(x):
    """The stem Inception-v3 and Inception-ResNet-v2 share (299 -> 35x35x192)."""
    x = _conv_bn(x, 32, 3, strides=2, padding="valid", name="stem1")
    x = _conv_bn(x, 32, 3, padding="valid", name="stem2")
    x = _conv_bn(x, 64, 3, name="stem3")
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool1")(x)
    x = _conv_bn(x, 80, 1, padding="valid", name="stem4")
    x = _conv_bn(x, 192, 3, padding="valid", name="stem5")
    return keras.layers.MaxPooling2D(3, strides=2, name="stem_pool2")(x)


def _inception_a(x, pool_features, name, filters_1x1=64):
    """35x35: 1x1, 5x5, double 3x3 and pooled branches (also Inception-ResNet's mixed_5b)."""
    branch1x1 = _conv_bn(x, filters_1x1, 1, name=f"{name}_1x1")
    branch5x5 = _conv_bn(x, 48, 1, name=f"{name}_5x5_reduce")
    branch5x5 = _conv_bn(branch5x5, 64, 5, name=f"{name}_5x5")
    branch3x3dbl = _conv_bn(x, 64, 1, name=f"{name}_3x3dbl_reduce")
    branch3x3dbl = _conv_bn(branch3x3dbl, 96, 3, name=f"{name}_3x3dbl_1")
    branch3x3dbl = _conv_bn(branch3x3dbl, 96, 3, name=f"{name}_3x3dbl_2")
    branch_pool = _average_pool_same(x, f"{name}_pool")
    branch_pool = _conv_bn(branch_pool, pool_features, 1, name=f"{name}_pool_proj")
    return _concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], name)


def _reduction_a(x, name, reduce=64, middle=96, out=96):
    """35x35 -> 17x17: a strided 3x3, a strided double 3x3 and a max pool (Inception-v3's
    mixed3; Inception-ResNet's mixed_6a is wider)."""
    branch3x3 = _conv_bn(x, 384, 3, strides=2, padding="valid", name=f"{name}_3x3")
    branch3x3dbl = _conv_bn(x, reduce, 1, name=f"{name}_3x3dbl_reduce")
    branch3x3dbl = _conv_bn(branch3x3dbl, middle, 3, name=f"{name}_3x3dbl_1")
    branch3x3dbl = _conv_bn(branch3x3dbl, out, 3, strides=2, padding="valid",
                            name=f"{name}_3x3dbl_2")
    branch_pool = keras.layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
    return _concatenate([branch3x3, branch3x3dbl, branch_pool], name)


def _v3_inception_b(x, channels_7x7, name):
    """17x17: factorised 7x7 convolutions (1x7 and 7x1)."""
    c = channels_7x7
    branch1x1 = _conv_bn(x, 192, 1, name=f"{name}_1x1")
    branch7x7 = _conv_bn(x, c, 1, name=f"{name}_7x7_reduce")
    branch7x7 = _conv_bn(branch7x7, c, (1, 7), name=f"{name}_7x7_1")
    branch7x7 = _conv_bn(branch7x7, 192, (7, 1), name=f"{name}_7x7_2")
    branch7x7dbl = _conv_bn(x, c, 1, name=f"{name}_7x7dbl_reduce")
    branch7x7dbl = _conv_bn(branch7x7dbl, c, (7, 1), name=f"{name}_7x7dbl_1")
    branch7x7dbl = _conv_bn(branch7x7dbl, c, (1, 7), name=f"{name}_7x7dbl_2")
    branch7x7dbl = _conv_bn(branch7x7dbl, c, (7, 1), name=f"{name}_7x7dbl_3")
    branch7x7dbl = _conv_bn(branch7x7dbl, 192, (1, 7), name=f"{name}_7x7dbl_4")
    branch_pool = _average_pool_same(x, f"{name}_pool")
    branch_pool = _conv_bn(branch_pool, 192, 1, name=f"{name}_pool_proj")
    return _concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], name)


def _v3_reduction_b(x, name):
    """17x17 -> 8x8."""
    branch3x3 = _conv_bn(x, 192, 1, name=f"{name}_3x3_reduce")
    branch3x3 = _conv_bn(branch3x3, 320, 3, strides=2, padding="valid", name=f"{name}_3x3")
    branch7x7x3 = _conv_bn(x, 192, 1, name=f"{name}_7x7x3_reduce")
    branch7x7x3 = _conv_bn(branch7x7x3, 192, (1, 7), name=f"{name}_7x7x3_1")
    branch7x7x3 = _conv_bn(branch7x7x3, 192, (7, 1), name=f"{name}_7x7x3_2")
    branch7x7x3 = _conv_bn(branch7x7x3, 192, 3, strides=2, padding="valid",
                           name=f"{name}_7x7x3_3")
    branch_pool = keras.layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)
    return _concatenate([branch3x3, branch7x7x3, branch_pool], name)


def _v3_inception_c(x, name):
    """8x8: expanded filter banks (1x3 and 3x1 side by side)."""
    branch1x1 = _conv_bn(x, 320, 1, name=f"{name}_1x1")
    branch3x3 = _conv_bn(x, 384, 1, name=f"{name}_3x3_reduce")
    branch3x3_1 = _conv_bn(branch3x3, 384, (1, 3), name=f"{name}_3x3_1")
    branch3x3_2 = _conv_bn(branch3x3, 384, (3, 1), name=f"{name}_3x3_2")
    branch3x3 = _concatenate([branch3x3_1, branch3x3_2], f"{name}_3x3")
    branch3x3dbl = _conv_bn(x, 448, 1, name=f"{name}_3x3dbl_reduce")
    branch3x3dbl = _conv_bn(branch3x3dbl, 384, 3, name=f"{name}_3x3dbl")
    branch3x3dbl_1 = _conv_bn(branch3x3dbl, 384, (1, 3), name=f"{name}_3x3dbl_1")
    branch3x3dbl_2 = _conv_bn(branch3x3dbl, 384, (3, 1), name=f"{name}_3x3dbl_2")
    branch3x3dbl = _concatenate([branch3x3dbl_1, branch3x3dbl_2], f"{name}_3x3dbl_cat")
    branch_pool = _average_pool_same(x, f"{name}_pool")
    branch_pool = _conv_bn(branch_pool, 192, 1, name=f"{name}_pool_proj")
    return _concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], name)


def _inception_v3(x, spec, record):
    x = _stem(x)
    modules = (
        ("mixed0", lambda x, name: _inception_a(x, 32, name)),
        ("mixed1", lambda x, name: _inception_a(x, 64, name)),
        ("mixed2", lambda x, name: _inception_a(x, 64, name)),
        ("mixed3", _reduction_a),
        ("mixed4", lambda x, name: _v3_inception_b(x, 128, name)),
        ("mixed5", lambda x, name: _v3_inception_b(x, 160, name)),
        ("mixed6", lambda x, name: _v3_inception_b(x, 160, name)),
        ("mixed7", lambda x, name: _v3_inception_b(x, 192, name)),
        ("mixed8", _v3_reduction_b),
        ("mixed9", _v3_inception_c),
        ("mixed10", _v3_inception_c),
    )
    for name, module in modules:
        x = _gate(module(x, name), spec, name)
    for name, stride, size in (("mixed2", 8, 35), ("mixed7", 16, 17), ("mixed10", 32, 8)):
        record.feature(_gated_name(spec, name), stride,
                       f"output of {name}, the last {size}x{size} module at 299x299")
    return x


# --- Inception-ResNet-v2 (Szegedy et al., 2017), as keras.applications.InceptionResNetV2 -----


# Residual branches of the Inception-ResNet blocks: (filters, kernel) per conv, per branch.
_IRV2_BRANCHES = {
    "block35": (((32, 1),), ((32, 1), (32, 3)), ((32, 1), (48, 3), (64, 3))),
    "block17": (((192, 1),), ((128, 1), (160, (1, 7)), (192, (7, 1)))),
    "block8": (((192, 1),), ((192, 1), (224, (1, 3)), (256, (3, 1)))),
}


def _irv2_residual_block(x, block_type, scale, spec, name, activation="relu"):
    """x + scale * gate(residual(x)): the gate on the residual branch, before the scaled add."""
    branches = []
    for index, convs in enumerate(_IRV2_BRANCHES[block_type]):
        branch = x
        for depth, (filters, kernel_size) in enumerate(convs):
            branch = _conv_bn(branch, filters, kernel_size, name=f"{name}_b{index}_{depth}")
        branches.append(branch)
    mixed = _concatenate(branches, f"{name}_mixed")
    up = _conv_bn(mixed, x.shape[-1], 1, activation=None, use_bias=True, name=f"{name}_up")
    up = _gate(up, spec, name)
    up = keras.layers.Rescaling(scale, name=f"{name}_scale")(up)
    x = keras.layers.Add(name=f"{name}_add")([x, up])
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{name}_ac")(x)
    return x


def _irv2_reduction_b(x, name):
    """Mixed 7a: 17x17 -> 8x8x2080."""
    branch_0 = _conv_bn(x, 256, 1, name=f"{name}_b0_reduce")
    branch_0 = _conv_bn(branch_0, 384, 3, strides=2, padding="valid", name=f"{name}_b0")
    branch_1 = _conv_bn(x, 256, 1, name=f"{name}_b1_reduce")
    branch_1 = _conv_bn(branch_1, 288, 3, strides=2, padding="valid", name=f"{name}_b1")
    branch_2 = _conv_bn(x, 256, 1, name=f"{name}_b2_reduce")
    branch_2 = _conv_bn(branch_2, 288, 3, name=f"{name}_b2_1")
    branch_2 = _conv_bn(branch_2, 320, 3, strides=2, padding="valid", name=f"{name}_b2_2")
    branch_pool = keras.layers.MaxPooling2D(3, strides=2, padding="valid",
                                            name=f"{name}_pool")(x)
    return _concatenate([branch_0, branch_1, branch_2, branch_pool], name)


def _inception_resnet_v2(x, spec, record):
    x = _stem(x)
    x = _inception_a(x, 64, "mixed_5b", filters_1x1=96)
    for index in range(1, 11):
        x = _irv2_residual_block(x, "block35", 0.17, spec, f"block35_{index}")
    record.feature("block35_10_ac", 8, "output of block35_10, the last 35x35 block at 299x299")
    x = _reduction_a(x, "mixed_6a", reduce=256, middle=256, out=384)
    for index in range(1, 21):
        x = _irv2_residual_block(x, "block17", 0.1, spec, f"block17_{index}")
    record.feature("block17_20_ac", 16, "output of block17_20, the last 17x17 block at 299x299")
    x = _irv2_reduction_b(x, "mixed_7a")
    for index in range(1, 10):
        x = _irv2_residual_block(x, "block8", 0.2, spec, f"block8_{index}")
    x = _irv2_residual_block(x, "block8", 1.0, spec, "block8_10", activation=None)
    x = _conv_bn(x, 1536, 1, name="conv_7b")
    record.feature("conv_7b_ac", 32, "output of conv_7b, the 8x8 map at 299x299")
    return x


# --- BN-Inception (Ioffe & Szegedy, 2015), as the released Caffe model -----------------------

# Table 1 of the paper: #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool,
# pool projection (0: pass-through), stride. Strided modules have no 1x1 branch.
_BN_INCEPTION_MODULES = (
    ("inception_3a", 64, 64, 64, 64, 96, "avg", 32, 1),
    ("inception_3b", 64, 64, 96, 64, 96, "avg", 64, 1),
    ("inception_3c", 0, 128, 160, 64, 96, "max", 0, 2),
    ("inception_4a", 224, 64, 96, 96, 128, "avg", 128, 1),
    ("inception_4b", 192, 96, 128, 96, 128, "avg", 128, 1),
    ("inception_4c", 160, 128, 160, 128, 160, "avg", 128, 1),
    ("inception_4d", 96, 128, 192, 160, 192, "avg", 128, 1),
    ("inception_4e", 0, 128, 192, 192, 256, "max", 0, 2),
    ("inception_5a", 352, 192, 320, 160, 224, "avg", 128, 1),
    ("inception_5b", 352, 192, 320, 192, 224, "max", 128, 1),
)


def _bn_inception_grid(size):
    """Side of the feature map that inception_3c sees (Caffe's conv and ceil-mode pools)."""
    size = -(-size // 2)  # conv1_7x7_s2, padded by 3
    for _ in range(2):  # the two ceil-mode 3x3/2 max pools
        size = -(-(size - 1) // 2)
    return size


def _check_bn_inception_size(spec, size):
    # A strided module concatenates a padded 3x3/2 convolution with a ceil-mode 3x3/2 pool;
    # they agree only on even maps, so inception_3c and inception_4e need even inputs.
    if size is None or _bn_inception_grid(size) % 4 == 0:
        return
    works = [n for n in range(size - 32, size + 33) if _bn_inception_grid(n) % 4 == 0]
    below = [n for n in works if spec.min_input_size <= n < size]
    above = [n for n in works if n > size]
    nearest = " and ".join(str(n) for n in (below[-1:] + above[:1]))
    raise ValueError(
        f"{spec.name} (Caffe's BN-Inception) cannot take inputs of size {size}: its strided "
        f"modules need even feature maps ({size} gives {_bn_inception_grid(size)} at "
        f"inception_3c, which must be a multiple of 4). The nearest sizes that work are "
        f"{nearest}; multiples of 32, such as 224, always do."
    )


def _bn_conv(x, filters, kernel_size, strides=1, *, name):
    """Caffe's conv + BatchNorm (with scale) + ReLU, padded symmetrically as Caffe pads."""
    geometry = TorchConvGeometry(kernel_size, strides)
    if geometry.padding:
        x = keras.layers.ZeroPadding2D(geometry.padding, name=f"{name}_pad")(x)
    x = conv2d(filters, kernel_size, name=name, **geometry.conv_kwargs)(x)
    x = common.batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _caffe_pool(x, kind, strides, name):
    """Caffe's 3x3 pooling: ceil mode when strided; padded by 1 (average counting the
    padding) when not. Zero padding equals Caffe's for max pooling: inputs follow a ReLU."""
    if strides == 1:
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    else:
        x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
    pool = keras.layers.AveragePooling2D if kind == "avg" else keras.layers.MaxPooling2D
    return pool(3, strides=strides, name=name)(x)


def _bn_inception_module(x, row):
    (name, n1x1, n3x3_reduce, n3x3, dbl_reduce, dbl, pool, proj, strides) = row
    branches = []
    if n1x1:
        branches.append(_bn_conv(x, n1x1, 1, name=f"{name}_1x1"))
    branch = _bn_conv(x, n3x3_reduce, 1, name=f"{name}_3x3_reduce")
    branches.append(_bn_conv(branch, n3x3, 3, strides, name=f"{name}_3x3"))
    branch = _bn_conv(x, dbl_reduce, 1, name=f"{name}_double_3x3_reduce")
    branch = _bn_conv(branch, dbl, 3, name=f"{name}_double_3x3_1")
    branches.append(_bn_conv(branch, dbl, 3, strides, name=f"{name}_double_3x3_2"))
    branch = _caffe_pool(x, pool, strides, f"{name}_pool")
    branches.append(_bn_conv(branch, proj, 1, name=f"{name}_pool_proj") if proj else branch)
    return _concatenate(branches, f"{name}_output")


# The last module of each size, the network's feature maps: (module, stride, side at 224x224).
_BN_INCEPTION_FEATURES = (("inception_3b", 8, 28), ("inception_4d", 16, 14),
                          ("inception_5b", 32, 7))


def _bn_inception(x, spec, record):
    for size in x.shape[1:3]:
        _check_bn_inception_size(spec, size)
    x = _bn_conv(x, 64, 7, 2, name="conv1_7x7_s2")
    x = _caffe_pool(x, "max", 2, "pool1_3x3_s2")
    x = _bn_conv(x, 64, 1, name="conv2_3x3_reduce")
    x = _bn_conv(x, 192, 3, name="conv2_3x3")
    x = _caffe_pool(x, "max", 2, "pool2_3x3_s2")
    for row in _BN_INCEPTION_MODULES:
        x = _gate(_bn_inception_module(x, row), spec, row[0])
    for name, stride, size in _BN_INCEPTION_FEATURES:
        output = _gated_name(spec, name) if spec.gate else f"{name}_output"
        record.feature(output, stride, f"output of {name}, the last {size}x{size} module at "
                       "224x224")
    return x
