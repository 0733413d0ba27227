"""A grouped convolution that runs near dense speed wherever the network runs, and the one place
that chooses how.

Keras' `Conv2D(groups=g)` is exact everywhere but fast only where the backend has a grouped
kernel with a gradient. TensorFlow's portable CPU kernels have none (they compute the forward
pass but raise on the gradient), so Keras compiles each grouped convolution with XLA, whose CPU
code ran ResNeXt-50's 32-group convolutions several times slower than dense ones
(`python -m benchmarks.grouped_conv`). `GroupedConv2D` therefore keeps `Conv2D`'s weights (same
kernel shape, same variable names) and computes them in one of two ways:

- `"native"`: the backend's grouped convolution, on TensorFlow its own grouped `Conv2D` op
  (called directly, not through Keras' XLA wrapper): what cuDNN, PyTorch's oneDNN and
  TensorFlow's oneDNN CPU kernels run, and what TFLite, ONNX and OpenVINO write as one grouped
  `CONV_2D` / `Conv`. TensorFlow's portable CPU kernels compute it forward but have no gradient
  for it, so there it serves exports, not training.
- `"split"` (packed): the groups are packed into a few dense convolutions of at least
  `SPLIT_MIN_CHANNELS` input channels each, with a block-diagonal kernel (zeros between the
  groups it packs), and the results concatenated. Dense convolutions run at full speed on every
  backend and device; packing narrow groups trades a little wasted arithmetic for far fewer,
  better-shaped convolutions.

`"auto"` (the default) is chosen here, from public facts only, by `grouped_conv_choice`:

- TensorFlow: `"native"` where TensorFlow's own grouped `Conv2D` and its gradient run on the
  default device in the layer's dtype, which is tried once per process and dtype with a
  4x4-pixel convolution (it runs with TensorFlow's oneDNN CPU kernels and on GPUs; TensorFlow
  turns oneDNN on by itself on recent x86 CPUs, `TF_ENABLE_ONEDNN_OPTS=1` turns it on
  elsewhere), else `"split"`;
- JAX: `"native"` on a GPU or TPU, `"split"` on the CPU (XLA's CPU grouped convolution);
- PyTorch: `"native"` (oneDNN on the CPU, cuDNN on GPUs).

The choice is made when the layer is called (traced), never stored in the weights or the
config, so a saved network loads under any choice. `grouped_conv_implementation(...)` overrides
it for a block of code (exports use it to trace what their runtime runs best).
"""

import contextlib
import contextvars
import dataclasses
import functools
import math

import keras
from keras import ops

IMPLEMENTATIONS = ("auto", "native", "split")

# Narrower dense convolutions leave vector lanes idle; at 16 input channels a packed
# convolution of 4-channel groups ran fastest in `python -m benchmarks.grouped_conv`.
SPLIT_MIN_CHANNELS = 16

# A context variable, so that an override in one thread or asyncio task is invisible to others.
_override = contextvars.ContextVar("keras_attn_grouped_conv_implementation", default=None)


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

    The override wins over each layer's own `implementation`. It holds for the current thread
    or asyncio task only, and switches grouped convolutions only.

    Args:
        implementation: `"native"`, `"split"` or `"auto"`.

    Examples:
        >>> model = keras.Sequential([keras.Input((16, 16, 32)), GroupedConv2D(32, 3, groups=8)])
        >>> images = keras.random.normal((2, 16, 16, 32))
        >>> with grouped_conv_implementation("split"):
        ...     outputs = model(images)
    """
    token = _override.set(_check_implementation(implementation))
    try:
        yield
    finally:
        _override.reset(token)


def implementation_override():
    """The implementation the innermost `grouped_conv_implementation` block sets, or None."""
    return _override.get()


@dataclasses.dataclass(frozen=True)
class GroupedConvChoice:
    """What `"auto"` stands for here, and why.

    Attributes:
        implementation: `"native"` or `"split"`.
        reason: the facts it was chosen from, in a sentence.

    Examples:
        >>> with grouped_conv_implementation("split"):
        ...     print(grouped_conv_choice())
        split: set by a grouped_conv_implementation block
    """

    implementation: str
    reason: str

    def __str__(self):
        return f"{self.implementation}: {self.reason}"


@functools.cache
def _tensorflow_grouped_conv_trains(dtype):
    """`(trains, device, error)`: whether TensorFlow's grouped `Conv2D` and its gradient run on
    the default device in `dtype`, that device's type, and the error where they do not. Tried
    eagerly, outside any graph being traced, on a 4x4-pixel input."""
    import tensorflow as tf

    with tf.init_scope():  # eager, whatever is being traced (and no gradient tape: the
        # gradient's ops are called directly)
        inputs = tf.zeros((1, 4, 4, 4), dtype)
        kernel = tf.zeros((3, 3, 2, 4), dtype)  # 2 groups
        device = tf.DeviceSpec.from_string(inputs.device).device_type or "CPU"
        strides = [1, 1, 1, 1]
        try:
            outputs = tf.nn.conv2d(inputs, kernel, strides, "SAME")
            tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(inputs), filter=kernel,
                                           out_backprop=outputs, strides=strides,
                                           padding="SAME")
            tf.raw_ops.Conv2DBackpropFilter(input=inputs, filter_sizes=tf.shape(kernel),
                                            out_backprop=outputs, strides=strides,
                                            padding="SAME")
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
                tf.errors.NotFoundError) as error:
            # "{{function_node ...}} Gradients for grouped convolutions are not supported on
            # CPU. Please file ...": its first sentence.
            message = error.message.split("}}")[-1].strip()
            return False, device, message.split(". ")[0]
    return True, device, ""


def grouped_conv_choice(dtype="float32"):
    """The implementation `GroupedConv2D(implementation="auto")` uses here, and why.

    Made from public facts: the Keras backend, the device and the dtype (on TensorFlow, whether
    its grouped `Conv2D` and gradient run, tried once per process and dtype). A
    `grouped_conv_implementation` block overrides it.

    Args:
        dtype: the dtype the convolution computes in (its layer's `compute_dtype`).

    Returns:
        A `GroupedConvChoice`.

    Examples:
        >>> choice = grouped_conv_choice()
        >>> choice.implementation in ("native", "split")
        True
    """
    dtype = keras.backend.standardize_dtype(dtype)
    override = implementation_override()
    if override not in (None, "auto"):
        return GroupedConvChoice(override, "set by a grouped_conv_implementation block")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        trains, device, error = _tensorflow_grouped_conv_trains(dtype)
        where = f"TensorFlow on {device}, {dtype}"
        if trains:
            return GroupedConvChoice(
                "native", f"{where}: its grouped Conv2D and its gradient run (oneDNN or GPU)")
        return GroupedConvChoice(
            "split", f"{where}: its grouped Conv2D has no gradient here ({error}), and Keras "
            "would compile it with XLA; dense convolutions run at full speed")
    if backend == "jax":
        import jax

        platform = jax.default_backend()
        if platform != "cpu":
            return GroupedConvChoice("native", f"JAX on {platform}: XLA's grouped convolution")
        return GroupedConvChoice(
            "split", "JAX on cpu: XLA's CPU grouped convolution is slower than dense ones")
    return GroupedConvChoice("native", f"{backend}: the backend's grouped convolution")


def resolve_implementation(implementation, dtype="float32"):
    """The formulation a layer's `implementation` (or an override) stands for here."""
    override = implementation_override()
    implementation = override or implementation
    if implementation != "auto":
        return implementation
    return grouped_conv_choice(dtype).implementation


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

    See the module docstring for the formulations and how `"auto"` chooses. Every formulation
    computes the same function as `keras.layers.Conv2D` with the same kernel (to float
    rounding), gradients included. The variables are `Conv2D`'s (shapes and names), so
    `get_weights` / `set_weights` move them either way and timm checkpoints map onto them; the
    implementation is not stored, so a saved network loads whichever one is chosen.

    Introduced for ResNeXt's aggregated transformations (Xie et al., 2017, "Aggregated Residual
    Transformations for Deep Neural Networks", https://arxiv.org/abs/1611.05431), used by
    every block with cardinality or radix.

    Args:
        filters: output channels.
        kernel_size: as `Conv2D`.
        *args: `Conv2D`'s further positional arguments, in its order (`strides`, `padding`,
            ...), so that `GroupedConv2D(64, 3, 2, groups=4)` strides as `Conv2D` does.
        groups: number of groups; must divide the input and output channels.
        implementation: `"auto"` (default), `"native"` or `"split"`.
        **kwargs: any other `Conv2D` argument.

    Examples:
        >>> conv = GroupedConv2D(128, 3, groups=32, padding="same", use_bias=False)
        >>> tuple(conv(keras.random.normal((8, 56, 56, 128))).shape)
        (8, 56, 56, 128)
    """

    def __init__(self, filters, kernel_size, *args, groups=1, implementation="auto", **kwargs):
        super().__init__(filters, kernel_size, *args, groups=groups, **kwargs)
        self.implementation = _check_implementation(implementation)

    def build(self, input_shape):
        channel_axis = -1 if self.data_format == "channels_last" else 1
        channels = input_shape[channel_axis]
        if channels is not None and channels % self.groups:
            raise ValueError(
                f"`groups` must divide the input channels; received groups={self.groups} for "
                f"an input of {channels} channels (input_shape={tuple(input_shape)})."
            )
        super().build(input_shape)

    def convolution_op(self, inputs, kernel):
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        if resolve_implementation(self.implementation, self.compute_dtype) == "native":
            return self._native_convolution(inputs, kernel)
        return self._split_convolution(inputs, kernel)

    def _native_convolution(self, inputs, kernel):
        if keras.backend.backend() != "tensorflow":
            return super().convolution_op(inputs, kernel)
        # TensorFlow's own grouped Conv2D op, which TFLite, ONNX and OpenVINO converters read as
        # one grouped convolution. Keras instead wraps every grouped convolution in an XLA
        # function on TensorFlow (which converters cannot read: tensorflow-onnx#2099) and runs
        # dilated ones between space-to-batch reshapes; this op takes both. Its gradient needs
        # oneDNN or a GPU, which is why "auto" chooses it only where that runs.
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


def conv2d(filters, kernel_size, groups=1, **kwargs):
    """`GroupedConv2D` when `groups > 1`, else `keras.layers.Conv2D`: one choice for every
    block of the networks."""
    if groups > 1:
        return GroupedConv2D(filters, kernel_size, groups=groups, **kwargs)
    return keras.layers.Conv2D(filters, kernel_size, **kwargs)
