"""Speed as an explicit transform: `optimize_for_inference(model)` returns an equal model that
infers faster. The exports and the benchmarks use it; training uses the model itself.

What it does to a functional model (and to the functional models nested in it):

- **BatchNorm folding.** Each `BatchNormalization` whose input is a convolution's output, and
  that convolution's only use, is folded once into that convolution's kernel and bias
  (`kernel * gamma / sqrt(var + eps)`, `(bias - mean) * gamma / sqrt(var + eps) + beta`) and
  leaves the graph; attention layers that hold convolutions followed by BatchNorms (those that
  take `batch_norm` and have `conv_batch_norm_pairs()`, as `SelectiveKernel` and
  `SplitAttention` do) are rebuilt with `batch_norm=False` and their BatchNorms folded the same
  way. Backends then fuse the convolution, its bias, the residual addition and the ReLU into
  one call where they can (TensorFlow's Grappler does, with oneDNN and on GPUs).
- **1x1 convolutions on small maps as matrix products.** Where the output map has at most
  `pointwise_matmul_max_pixels` pixels, a 1x1 `Conv2D` becomes a `PointwiseConv2D` (the same
  weights, computed as a matrix product): a convolution call prepares its whole kernel, which
  on the last stage of a ResNet (7x7 maps, kernels of megabytes) costs more than the product.

Layers that change nothing are copied with their weights, so the original model is untouched.
Outputs equal the original's to float rounding (`tests/test_optimize.py` holds every family to
1e-5). The result is for inference: it has no BatchNorm left to train.
"""

import dataclasses

import keras
import numpy as np

from keras_attn.layers import PointwiseConv2D

__all__ = [
    "Optimization", "optimize_for_inference",
]

# The output maps (height x width) up to which 1x1 convolutions become matrix products, by
# backend: where it was measured to pay (`docs/performance.md`); elsewhere not at all.
POINTWISE_MATMUL_MAX_PIXELS = {"tensorflow": 49}


@dataclasses.dataclass(frozen=True)
class Optimization:
    """What `optimize_for_inference` changed, per layer name: the `optimization` attribute of
    the model it returns.

    Attributes:
        folded_batch_norms: the BatchNorms folded into the convolution before them.
        matrix_products: the 1x1 convolutions computed as matrix products.
        rebuilt_attention: the attention layers rebuilt in their folded form.
        pointwise_matmul_max_pixels: the largest map (height x width) whose 1x1 convolutions
            became matrix products; 0 for none.

    Examples:
        >>> import keras_attn
        >>> model = keras_attn.applications.get_model("seresnet18", depths=(1, 1, 1, 1),
        ...                                           input_shape=(64, 64, 3), classes=10)
        >>> optimization = keras_attn.optimize_for_inference(model).optimization
        >>> len(optimization.folded_batch_norms)   # stem 1, blocks 4 x 2, projections 3
        12
    """

    folded_batch_norms: tuple = ()
    matrix_products: tuple = ()
    rebuilt_attention: tuple = ()
    pointwise_matmul_max_pixels: int = 0

    def __str__(self):
        return (f"{len(self.folded_batch_norms)} BatchNorms folded into the convolutions before "
                f"them ({len(self.rebuilt_attention)} inside attention layers), "
                f"{len(self.matrix_products)} 1x1 convolutions on maps of at most "
                f"{self.pointwise_matmul_max_pixels} pixels as matrix products")


def optimize_for_inference(model, *, pointwise_matmul_max_pixels=None, verbose=False):
    """A model that computes what `model` computes, faster: BatchNorms folded into the
    convolutions before them, 1x1 convolutions on small maps as matrix products.

    See the module docstring. The model returned has the same inputs, outputs and layer names
    (but for the BatchNorms folded away) and new weights of its own; it is for inference
    (predict, export), not for training.

    Args:
        model: a functional `keras.Model` (any network of `keras_attn.applications`, or a
            model built on one).
        pointwise_matmul_max_pixels: largest output map (height x width) on which a 1x1
            convolution becomes a matrix product; None chooses by backend
            (`POINTWISE_MATMUL_MAX_PIXELS`, 0 where not measured to pay), 0 turns it off.
        verbose: print what was changed.

    Returns:
        A functional `keras.Model`. Its `optimization` attribute (an `Optimization`) says what
        was changed.

    Raises:
        ValueError: `model` is not a functional model.

    Examples:
        >>> import keras_attn
        >>> model = keras_attn.applications.get_model("resnest50d", depths=(1, 1, 1, 1),
        ...                                           input_shape=(64, 64, 3), classes=10)
        >>> fast = keras_attn.optimize_for_inference(model)
        >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
        >>> bool(np.allclose(fast(images), model(images), atol=1e-5))
        True
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise ValueError(
            "`model` must be a functional keras.Model (keras_attn's networks are); received "
            f"{type(model).__name__}."
        )
    if pointwise_matmul_max_pixels is None:
        pointwise_matmul_max_pixels = POINTWISE_MATMUL_MAX_PIXELS.get(keras.backend.backend(), 0)
    elif (isinstance(pointwise_matmul_max_pixels, bool)
          or not isinstance(pointwise_matmul_max_pixels, int) or pointwise_matmul_max_pixels < 0):
        raise ValueError(
            "`pointwise_matmul_max_pixels` must be None or an integer >= 0; received "
            f"pointwise_matmul_max_pixels={pointwise_matmul_max_pixels!r}."
        )
    optimized, optimization = _optimize(model, pointwise_matmul_max_pixels)
    optimized.optimization = optimization
    if verbose:
        print(f"optimize_for_inference({model.name!r}): {optimization}")
    return optimized


def _optimize(model, max_pixels):
    producers, consumers = _graph(model)
    folds = {}  # convolution -> the BatchNorm folded into it
    for bn in model.layers:
        if not isinstance(bn, keras.layers.BatchNormalization) or len(bn._inbound_nodes) != 1:
            continue
        inputs = bn._inbound_nodes[0].input_tensors
        conv = producers.get(id(inputs[0])) if len(inputs) == 1 else None
        if (isinstance(conv, keras.layers.Conv2D) and conv.data_format == "channels_last"
                and bn.axis in (-1, 3, [-1], [3]) and consumers.get(id(inputs[0])) == 1
                and len(conv._inbound_nodes) == 1):
            folds[conv] = bn
    folded_bns = set(folds.values())
    plans = {}  # new layer name -> how to compute its weights from the old model's
    changed = {"folded_batch_norms": [bn.name for bn in folded_bns], "matrix_products": [],
               "rebuilt_attention": []}

    def clone(layer):
        if layer in folded_bns:
            return layer  # skipped by `call` below
        if isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth"):
            inner, optimization = _optimize(layer, max_pixels)
            for key in changed:
                changed[key] += [f"{layer.name}/{name}" for name in getattr(optimization, key)]
            plans[inner.name] = None  # built with its weights
            return inner
        config = layer.get_config()
        if isinstance(layer, keras.layers.Conv2D):
            bn = folds.get(layer)
            new_class = type(layer)
            if _computes_as_matrix_product(layer, max_pixels):
                new_class = PointwiseConv2D
                changed["matrix_products"].append(layer.name)
            if bn is not None:
                config["use_bias"] = True
            new = new_class.from_config(_conv_config(config) if new_class is PointwiseConv2D
                                        else config)
            plans[new.name] = lambda new, old=layer, bn=bn: _fold(old, bn) if bn else \
                old.get_weights()
            return new
        if hasattr(layer, "conv_batch_norm_pairs") and config.get("batch_norm"):
            changed["rebuilt_attention"].append(layer.name)
            changed["folded_batch_norms"] += [
                f"{layer.name}/{bn.name}" for _, bn in layer.conv_batch_norm_pairs()]
            new = type(layer).from_config({**config, "batch_norm": False})
            plans[new.name] = lambda new, old=layer: _fold_attention_layer(old, new)
            return new
        new = type(layer).from_config(config)
        plans[new.name] = lambda new, old=layer: old.get_weights()
        return new

    def call(layer, *args, **kwargs):
        if layer in folded_bns:
            return args[0]
        return layer(*args, **kwargs)

    optimized = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in optimized.layers:
        plan = plans.get(layer.name)
        if plan is not None:
            layer.set_weights(plan(layer))
    optimization = Optimization(
        folded_batch_norms=tuple(changed["folded_batch_norms"]),
        matrix_products=tuple(changed["matrix_products"]),
        rebuilt_attention=tuple(changed["rebuilt_attention"]),
        pointwise_matmul_max_pixels=max_pixels,
    )
    return optimized, optimization


def _graph(model):
    """`({id(tensor): the layer that makes it}, {id(tensor): how many times it is used})` over
    `model`'s own nodes; a model output counts as a use."""
    producers, consumers = {}, {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            for tensor in node.outputs:
                producers[id(tensor)] = node.operation
            for tensor in node.input_tensors:
                consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    for tensor in keras.tree.flatten(model.outputs):
        consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    return producers, consumers


def _computes_as_matrix_product(conv, max_pixels):
    if (type(conv) is not keras.layers.Conv2D or conv.kernel_size != (1, 1) or conv.groups != 1
            or conv.dilation_rate != (1, 1) or conv.data_format != "channels_last"
            or len(conv._inbound_nodes) != 1):
        return False
    height, width = conv.output.shape[1:3]
    return height is not None and width is not None and height * width <= max_pixels


def _conv_config(config):
    """A `Conv2D` config as `PointwiseConv2D` takes it."""
    return {key: value for key, value in config.items() if key not in ("kernel_size",)}


def _batch_norm_scale_and_offset(bn):
    """`(scale, offset)` per channel, float64, with `bn(x) = x * scale + offset` in inference."""
    moving_mean = keras.ops.convert_to_numpy(bn.moving_mean).astype("float64")
    moving_variance = keras.ops.convert_to_numpy(bn.moving_variance).astype("float64")
    channels = moving_mean.shape[0]
    gamma = (keras.ops.convert_to_numpy(bn.gamma).astype("float64") if bn.scale
             else np.ones(channels))
    beta = (keras.ops.convert_to_numpy(bn.beta).astype("float64") if bn.center
            else np.zeros(channels))
    scale = gamma / np.sqrt(moving_variance + bn.epsilon)
    return scale, beta - moving_mean * scale


def _fold(conv, bn):
    """`[kernel, bias]` of `conv` with `bn` (the BatchNorm after it, or None) folded in."""
    kernel = keras.ops.convert_to_numpy(conv.kernel).astype("float64")
    bias = (keras.ops.convert_to_numpy(conv.bias).astype("float64") if conv.use_bias
            else np.zeros(kernel.shape[-1]))
    if bn is None:
        return [kernel, bias]
    scale, offset = _batch_norm_scale_and_offset(bn)
    return [kernel * scale, bias * scale + offset]  # the output channel is the last axis


def _fold_attention_layer(old, new):
    """The weights of `new` (`old` rebuilt with `batch_norm=False`): every convolution with the
    BatchNorm after it folded in, every other weight copied."""
    values = {_relative_path(old, v): keras.ops.convert_to_numpy(v) for v in old.weights}
    for (old_conv, bn), (new_conv, _) in zip(old.conv_batch_norm_pairs(),
                                             new.conv_batch_norm_pairs()):
        kernel, bias = _fold(old_conv, bn)
        values[_relative_path(new, new_conv.kernel)] = kernel
        values[_relative_path(new, new_conv.bias)] = bias
    return [values[_relative_path(new, variable)] for variable in new.weights]


def _relative_path(layer, variable):
    parts = variable.path.split("/")
    return "/".join(parts[parts.index(layer.name) + 1:] if layer.name in parts else parts)
