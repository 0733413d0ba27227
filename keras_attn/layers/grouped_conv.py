"""A grouped convolution that runs near dense speed wherever the network runs.

Keras' `Conv2D(groups=g)` is exact but slow on TensorFlow's CPU unless oneDNN is on: TensorFlow's
own (Eigen) CPU kernels have no gradient for grouped convolutions, so Keras compiles each one
with XLA, whose CPU code ran ResNeXt-50's 32-group 3x3 convolutions 1.2-8.8x slower than the
packed form below, and whose gradient 33-190x slower (`python -m benchmarks.grouped_conv`,
2-core AVX2 CPU). Dense convolutions, in contrast, run at full speed once each sees enough
channels. `GroupedConv2D` therefore keeps `Conv2D`'s weights (same kernel shape, same
variable names) and chooses how to compute them:

- `"native"`: the backend's grouped convolution. Fastest where the backend has a real kernel
  for it: cuDNN on GPU, oneDNN under PyTorch on CPU, and oneDNN under TensorFlow when
  TensorFlow runs its oneDNN kernels (`TF_ENABLE_ONEDNN_OPTS=1`, TensorFlow's default on CPUs
  with AVX-512 VNNI or newer), where the layer calls TensorFlow's grouped `Conv2D` directly
  instead of through Keras' XLA wrapper. What TFLite runs as one `CONV_2D`.
- `"split"`: the groups are packed into a few dense convolutions of at least
  `SPLIT_MIN_CHANNELS` input channels each, with a block-diagonal kernel (zeros between the
  groups it packs), and the results concatenated. One group per convolution when a group is
  that wide already. Every dense convolution runs at full speed; packing narrow groups trades a
  little wasted arithmetic for far fewer, better-shaped convolutions.
- `"auto"` (default): `"native"` wherever the backend has a real grouped kernel (a GPU, PyTorch,
  TensorFlow with oneDNN in float32), else `"split"` (JAX and TensorFlow without oneDNN on
  CPU, and TensorFlow in float16 or bfloat16 on CPUs without AVX-512, where oneDNN falls back
  to the portable kernels).

The choice is made when the layer is called (traced), never stored in the weights, so it can
change after loading: pass `implementation=` or use `grouped_conv_implementation(...)`.
"""

import contextlib
import math

import keras
from keras import ops

from keras_attn.layers.kernels import tensorflow_onednn_enabled

IMPLEMENTATIONS = ("auto", "native", "split")

# Narrower dense convolutions leave AVX2 lanes idle in oneDNN; at 16 input channels a packed
# convolution of 4-channel groups ran fastest in benchmarks/grouped_conv.py (2-core AVX2 CPU).
SPLIT_MIN_CHANNELS = 16

_override = None
_graph_op = False


def _check_implementation(value):
    if value not in IMPLEMENTATIONS:
        raise ValueError(
            f"`implementation` must be one of {IMPLEMENTATIONS}; received "
            f"implementation={value!r}."
        )
    return value


@contextlib.contextmanager
def grouped_conv_implementation(implementation):
    """Overrides how every `GroupedConv2D` traced inside the block computes.

    The override wins over each layer's own `implementation`; exports use it to trace what
    their runtime runs best.

    Args:
        implementation: `"native"`, `"split"` or `"auto"`.

    Example:

    >>> model = keras.Sequential([keras.Input((16, 16, 32)), GroupedConv2D(32, 3, groups=8)])
    >>> images = keras.random.normal((2, 16, 16, 32))
    >>> with grouped_conv_implementation("split"):
    ...     outputs = model(images)
    """
    global _override
    _check_implementation(implementation)
    previous, _override = _override, implementation
    try:
        yield
    finally:
        _override = previous


@contextlib.contextmanager
def native_as_graph_op():
    """Traces `"native"` grouped convolutions as TensorFlow's grouped `Conv2D` op itself.

    Where TensorFlow runs without oneDNN on a CPU, its portable kernels have no grouped
    convolution, so Keras wraps each one in an XLA-compiled function, and converters to other
    runtimes (tf2onnx, OpenVINO) cannot convert that function (tensorflow-onnx#2099). Exports
    to those runtimes trace inside this block (and `grouped_conv_implementation("native")`): the
    graph then holds the one grouped `Conv2D` op that converters turn into their runtime's
    grouped convolution, whatever this process's kernels. Such a graph is for converting only:
    TensorFlow without oneDNN cannot run it on a CPU.
    """
    global _graph_op
    previous, _graph_op = _graph_op, True
    try:
        yield
    finally:
        _graph_op = previous


def implementation_override():
    """The implementation the innermost `grouped_conv_implementation` block sets, or None."""
    return _override


def _tensorflow_onednn_computes(dtype):
    # oneDNN computes float16 and bfloat16 only on AVX-512 CPUs; elsewhere TensorFlow falls
    # back to its portable kernels, which have no gradient for grouped convolutions.
    return tensorflow_onednn_enabled() and dtype == "float32"


def _native_is_fast(dtype):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return _tensorflow_onednn_computes(dtype) or bool(tf.config.list_logical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    return True  # torch: native everywhere (oneDNN on CPU, cuDNN on GPU).


def resolve_implementation(implementation, dtype="float32"):
    """The formulation `"auto"` (or a global override) stands for on this backend and device,
    for a convolution computing in `dtype`."""
    implementation = _override or implementation
    if implementation != "auto":
        return implementation
    return "native" if _native_is_fast(dtype) else "split"


def block_diagonal(kernel, groups):
    """A dense kernel computing the grouped kernel `kernel` (Keras layout) of `groups` groups.

    `kernel` has shape (kh, kw, in_per_group, out_channels); the result has shape
    (kh, kw, groups * in_per_group, out_channels) with zeros where group f's inputs meet
    group g's outputs (f != g).
    """
    if groups == 1:
        return kernel
    kh, kw, in_per_group, out_channels = kernel.shape
    grouped = ops.reshape(kernel, (kh, kw, in_per_group, groups, out_channels // groups))
    eye = ops.eye(groups, dtype=kernel.dtype)
    dense = ops.einsum("hwigo,fg->hwfigo", grouped, eye)
    return ops.reshape(dense, (kh, kw, groups * in_per_group, out_channels))


def groups_per_split(groups, channels_per_group, min_channels=SPLIT_MIN_CHANNELS):
    """How many groups one dense convolution of the `"split"` formulation packs.

    The smallest divisor of `groups` that gives at least `min_channels` input channels (all
    groups when even they give fewer).
    """
    wanted = min(groups, math.ceil(min_channels / channels_per_group))
    return next(n for n in range(1, groups + 1) if groups % n == 0 and n >= wanted)


@keras.saving.register_keras_serializable(package="keras_attn")
class GroupedConv2D(keras.layers.Conv2D):
    """`Conv2D(groups=g)` with the same weights, computed the fastest way for the device.

    See the module docstring for the formulations. Every formulation computes the same
    function as `keras.layers.Conv2D` with the same kernel (to float rounding), gradients
    included. The variables are `Conv2D`'s (shapes and names), so `get_weights` /
    `set_weights` move them either way and timm checkpoints map onto them; the implementation
    is not stored, so a saved network loads whichever one is chosen. (A Keras 3 `.weights.h5`
    or `.keras` file keys each layer by its class, so such a file saved from a model built with
    `Conv2D` loads into a model built with `Conv2D`, not into this layer.)

    Introduced for ResNeXt's aggregated transformations (Xie et al., 2017, "Aggregated Residual
    Transformations for Deep Neural Networks"), used by every block with cardinality or radix.

    Args:
        filters: output channels.
        kernel_size: as `Conv2D`.
        *args: `Conv2D`'s further positional arguments, in its order (`strides`, `padding`,
            ...), so that `GroupedConv2D(64, 3, 2, groups=4)` strides as `Conv2D` does.
        groups: number of groups; must divide the input and output channels.
        implementation: `"auto"` (default), `"native"` or `"split"`.
        **kwargs: any other `Conv2D` argument.

    Example:

    >>> conv = GroupedConv2D(128, 3, groups=32, padding="same", use_bias=False)
    >>> tuple(conv(keras.random.normal((8, 56, 56, 128))).shape)
    (8, 56, 56, 128)
    """

    def __init__(self, filters, kernel_size, *args, groups=1, implementation="auto", **kwargs):
        super().__init__(filters, kernel_size, *args, groups=groups, **kwargs)
        self.implementation = _check_implementation(implementation)

    def convolution_op(self, inputs, kernel):
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        if resolve_implementation(self.implementation, self.compute_dtype) == "native":
            return self._native_convolution(inputs, kernel)
        return self._split_convolution(inputs, kernel)

    def _native_convolution(self, inputs, kernel):
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if not (_graph_op and keras.backend.backend() == "tensorflow"
                or _tensorflow_onednn_computes(dtype)):
            return super().convolution_op(inputs, kernel)
        # Keras wraps every grouped convolution in its own XLA function on TensorFlow, because
        # the portable CPU kernels lack a gradient for it, and runs dilated ones between
        # space-to-batch reshapes; oneDNN's kernels have a gradient and take dilations.
        import tensorflow as tf

        return tf.nn.conv2d(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.padding.upper(),
            data_format="NHWC" if self.data_format == "channels_last" else "NCHW",
            dilations=self.dilation_rate,
        )

    def _split_convolution(self, inputs, kernel):
        channel_axis = -1 if self.data_format == "channels_last" else 1
        per_split = groups_per_split(self.groups, kernel.shape[2])
        splits = self.groups // per_split
        input_parts = ops.split(inputs, splits, axis=channel_axis)
        kernel_parts = ops.split(kernel, splits, axis=-1)
        outputs = [
            super(GroupedConv2D, self).convolution_op(part, block_diagonal(weights, per_split))
            for part, weights in zip(input_parts, kernel_parts)
        ]
        return outputs[0] if splits == 1 else ops.concatenate(outputs, axis=channel_axis)

    def get_config(self):
        config = super().get_config()
        config["implementation"] = self.implementation
        return config

