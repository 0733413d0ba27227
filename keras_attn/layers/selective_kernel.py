"""Selective Kernel convolution: branches of different receptive fields, mixed by attention."""

import keras
from keras import ops

from keras_attn.layers import checks, common
from keras_attn.layers.grouped_conv import conv2d
from keras_attn.layers.pointwise_conv import PointwiseConv2D
from keras_attn.layers.precision import gate_dtype_policy
from keras_attn.layers.pytorch import TorchConvGeometry, make_divisible


@keras.saving.register_keras_serializable(package="keras_attn")
class SelectiveKernel(keras.layers.Layer):
    """Selective Kernel convolution (Li et al., "Selective Kernel Networks", CVPR 2019,
    https://arxiv.org/abs/1903.06586).

    Split: M branches convolve the input with different receptive fields, each a grouped
    convolution (G = `cardinality`) followed by BatchNorm and ReLU. With `keep_3x3` (the
    paper's and timm's choice) a k x k branch is a 3x3 convolution dilated by (k - 1) / 2, so
    the default `kernel_size=(3, 5)` gives a 3x3 and a dilated 3x3 (5x5 receptive field).
    Fuse: the branches are summed and pooled globally; a reduced fully connected layer
    (width d = max(C * rd_ratio, rd_divisor) rounded as timm does) with BatchNorm and ReLU
    follows. Select: one fully connected layer per branch, a softmax across branches per
    channel, and the branches summed with those weights. The attention runs in float32 under
    mixed precision.

    Sublayers are named after timm's `SelectiveKernel` (`path{i}_conv`, `path{i}_bn`,
    `fc_reduce`, `attn_bn`, `fc_select`) so timm checkpoints map onto them.

    Args:
        filters: output channels C.
        kernel_size: receptive field of each branch, an odd int >= 3 per branch.
        strides: stride of every branch.
        dilation_rate: base dilation of every branch.
        cardinality: groups G of each branch's convolution.
        rd_ratio: attention width relative to `filters` (the paper's 1/r).
        rd_channels: attention width; overrides `rd_ratio` when given.
        rd_divisor: the attention width is rounded to a multiple of this and is at least this
            (the paper's L).
        keep_3x3: make every branch a 3x3 convolution, dilated to its receptive field.
        split_input: feed each branch its own equal slice of the input channels (timm's
            `split_input`) instead of the whole input.
        activation: activation after each branch and in the attention.
        batch_norm: whether each branch's convolution and the attention's reducing layer are
            followed by a BatchNorm (the paper's and timm's layer). `False` gives them a bias
            instead: the inference form `keras_attn.optimize_for_inference` folds the
            BatchNorms into.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape: `(batch, height, width, channels)`; output shape:
    `(batch, new_height, new_width, filters)`, the spatial size that of a PyTorch convolution
    with symmetric padding.

    Examples:
        >>> features = keras.Input((None, None, 128))
        >>> selected = SelectiveKernel(128, strides=2, cardinality=32)(features)
    """

    def __init__(
        self,
        filters,
        kernel_size=(3, 5),
        strides=1,
        dilation_rate=1,
        cardinality=1,
        rd_ratio=1.0 / 16,
        rd_channels=None,
        rd_divisor=8,
        keep_3x3=True,
        split_input=True,
        activation="relu",
        batch_norm=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = checks.check_positive_int("filters", filters)
        if checks.is_integer(kernel_size):
            kernel_sizes = (kernel_size, kernel_size)
        else:
            try:
                kernel_sizes = tuple(kernel_size)
            except TypeError:  # None, a float
                kernel_sizes = ()
        if len(kernel_sizes) < 2 or any(
            not checks.is_integer(k) or k < 3 or k % 2 == 0 for k in kernel_sizes
        ):
            raise ValueError(
                "`kernel_size` must list at least two odd kernel sizes >= 3, one per branch; "
                f"received kernel_size={kernel_size!r}."
            )
        self.kernel_size = tuple(int(k) for k in kernel_sizes)
        self.strides = checks.check_positive_int("strides", strides)
        self.dilation_rate = checks.check_positive_int("dilation_rate", dilation_rate)
        self.cardinality = checks.check_cardinality(cardinality, self.filters)
        self.rd_ratio, self.rd_channels, self.rd_divisor = checks.check_reduction(
            rd_ratio, rd_channels, rd_divisor
        )
        self.keep_3x3 = bool(keep_3x3)
        self.split_input = bool(split_input)
        self.activation = keras.activations.get(activation)
        self.batch_norm = bool(batch_norm)

        if self.keep_3x3:
            branches = [(3, self.dilation_rate * (k - 1) // 2) for k in self.kernel_size]
        else:
            branches = [(k, self.dilation_rate) for k in self.kernel_size]
        self._geometries = [
            TorchConvGeometry(k, self.strides, d) for k, d in branches
        ]
        self.path_convs = [
            conv2d(
                self.filters,
                k,
                groups=self.cardinality,
                use_bias=not self.batch_norm,
                name=f"path{i}_conv",
                dtype=self.dtype_policy,
                **geometry.conv_kwargs,
            )
            for i, ((k, _), geometry) in enumerate(zip(branches, self._geometries))
        ]
        self.path_bns = [
            common.batch_norm(f"path{i}_bn", dtype=self.dtype_policy) if self.batch_norm
            else None
            for i in range(len(branches))
        ]
        gate_policy = gate_dtype_policy(self.dtype_policy)
        self.fc_reduce = PointwiseConv2D(
            self.attention_channels, use_bias=not self.batch_norm, name="fc_reduce",
            dtype=gate_policy,
        )
        self.attn_bn = common.batch_norm("attn_bn", dtype=gate_policy) if self.batch_norm else None
        self.fc_select = PointwiseConv2D(
            self.filters * len(branches), use_bias=False, name="fc_select", dtype=gate_policy
        )

    @property
    def num_paths(self):
        return len(self.kernel_size)

    @property
    def attention_channels(self):
        """Width d of the fused descriptor."""
        if self.rd_channels is not None:
            return self.rd_channels
        return make_divisible(self.filters * self.rd_ratio, self.rd_divisor)

    def build(self, input_shape):
        channels = checks.check_channels_last("SelectiveKernel", input_shape)
        if self.split_input and channels % self.num_paths:
            raise ValueError(
                f"SelectiveKernel with split_input=True needs input channels divisible by the "
                f"{self.num_paths} branches; received input_shape={tuple(input_shape)}."
            )
        path_channels = channels // self.num_paths if self.split_input else channels
        if path_channels % self.cardinality:
            raise ValueError(
                f"`cardinality` must divide each branch's input channels; received "
                f"cardinality={self.cardinality} with {path_channels} input channels per branch."
            )
        path_shape = tuple(input_shape[:-1]) + (path_channels,)
        for geometry, conv, bn in zip(self._geometries, self.path_convs, self.path_bns):
            conv.build(geometry.conv_input_shape(path_shape))
            if bn is not None:
                bn.build(conv.compute_output_shape(geometry.conv_input_shape(path_shape)))
        self.fc_reduce.build((None, 1, 1, self.filters))
        if self.attn_bn is not None:
            self.attn_bn.build((None, 1, 1, self.attention_channels))
        self.fc_select.build((None, 1, 1, self.attention_channels))
        common.finish_build(self, channels)

    def _paths(self, inputs, training=None):
        if self.split_input:
            slices = ops.split(inputs, self.num_paths, axis=-1)
        else:
            slices = [inputs] * self.num_paths
        return [
            common.conv_bn_activation(conv, bn, self.activation, geometry, x, training)
            for x, geometry, conv, bn in zip(
                slices, self._geometries, self.path_convs, self.path_bns
            )
        ]

    def _selection(self, paths, training=None):
        # The mean of the paths' sum, as the sum of their means: no full-size sum.
        dtype = self.fc_reduce.compute_dtype
        fused = self.fc_reduce(sum(common.spatial_mean(path, dtype) for path in paths))
        if self.attn_bn is not None:
            fused = self.attn_bn(fused, training=training)
        descriptor = self.activation(fused)
        logits = self.fc_select(descriptor)
        # timm orders fc_select's outputs branch-major: (branch, channel).
        logits = ops.reshape(logits, (-1, 1, 1, self.num_paths, self.filters))
        return common.softmax(logits, axis=3)

    def conv_batch_norm_pairs(self):
        """`[(convolution, BatchNorm or None)]`: every convolution a BatchNorm follows."""
        return list(zip(self.path_convs, self.path_bns)) + [(self.fc_reduce, self.attn_bn)]

    def attention_weights(self, inputs, training=None):
        """Branch weights, shape `(batch, 1, 1, num_paths, filters)`, summing to 1 per channel."""
        common.ensure_built(self, inputs)
        return self._selection(self._paths(inputs, training), training)

    def call(self, inputs, training=None):
        paths = self._paths(inputs, training)
        weights = ops.cast(self._selection(paths, training), paths[0].dtype)
        return common.weighted_sum(paths, weights)

    def compute_output_shape(self, input_shape):
        geometry = self._geometries[0]
        return (
            input_shape[0],
            geometry.output_size(input_shape[1]),
            geometry.output_size(input_shape[2]),
            self.filters,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": list(self.kernel_size),
                "strides": self.strides,
                "dilation_rate": self.dilation_rate,
                "cardinality": self.cardinality,
                "rd_ratio": self.rd_ratio,
                "rd_channels": self.rd_channels,
                "rd_divisor": self.rd_divisor,
                "keep_3x3": self.keep_3x3,
                "split_input": self.split_input,
                "activation": keras.activations.serialize(self.activation),
                "batch_norm": self.batch_norm,
            }
        )
        return config
