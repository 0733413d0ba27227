"""timm checkpoint -> Keras weights: the name map and the kernel transposes.

timm names a module by where it sits in its PyTorch model. Three of timm's source files
wrote the checkpoints this package reads, and each names some modules its own way:

- `resnet.py` (ResNet, SE-ResNet, SE-ResNeXt, SENet-154, ResNeXt, and ResNeSt, whose
  blocks live in `resnest.py` inside the same ResNet class): `conv1`, `bn1`,
  `layer1.0.conv2`, `layer1.0.se`, `layer1.0.downsample.0`, `fc`;
- `sknet.py` blocks in that ResNet class: a block's plain conv and norm are one
  `ConvNormAct` (`layer1.0.conv3.conv`, `layer1.0.conv3.bn`);
- `senet.py` (the legacy, Caffe-converted SENets): `layer0.conv1`, `layer1.0.se_module`,
  `last_linear`.

The checkpoint's own keys tell which (`layer0.*`, or Selective Kernel `*.paths.*`). The Keras
side's names come from `keras_attn.applications.resnet_family`.
"""

import argparse
import contextlib
import os
import re

import keras
import numpy as np

from keras_attn.applications import resnet_family, specs
from keras_attn.layers import SelectiveKernel

_PARAMETER_NAMES = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
# Sublayers of keras_attn layers whose names differ from timm's (SqueezeExcite's fc1/fc2 and
# SplitAttention's conv/bn0/fc1/bn1/fc2 are named as timm names them).
_SUBLAYER_NAMES = (
    (re.compile(r"path(\d+)_(conv|bn)"), r"paths.\1.\2"),
    (re.compile(r"fc_reduce"), "attn.fc_reduce"),
    (re.compile(r"attn_bn"), "attn.bn"),
    (re.compile(r"fc_select"), "attn.fc_select"),
)
_IGNORED_SUFFIXES = (".num_batches_tracked",)
# timm's train.py writes `model_best.pth.tar`, `last.pth.tar` and `checkpoint-N.pth.tar`.
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".pth.tar")
# What wraps a model's keys when it was trained under DistributedDataParallel or torch.compile;
# stripped in this order, as timm's `clean_state_dict` does.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_MODEL_KEYS = ("state_dict", "model")
_EMA_KEYS = ("state_dict_ema", "model_ema")


def read_checkpoint(checkpoint, use_ema=False):
    """A timm state dict as `{key: numpy array}`.

    A training checkpoint (timm's `model_best.pth.tar`, or any dict that nests the weights under
    `state_dict` or `model`) gives its model's weights, or with `use_ema` its EMA weights. Keys
    lose the `module.` and `_orig_mod.` prefixes of DistributedDataParallel and torch.compile.

    Args:
        checkpoint: a mapping of arrays, a `.safetensors` path, or a PyTorch `.pth` /
            `.pth.tar` path (read with `torch.load(weights_only=True)`, so no arbitrary pickle
            runs; needs torch).
        use_ema: read the exponential moving average of the weights that timm's training
            saves beside them (`state_dict_ema`); an error if the checkpoint has none.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        path = os.fspath(checkpoint)
        if not path.endswith((".safetensors",) + TORCH_SUFFIXES):
            raise ValueError(
                "`checkpoint` must be a `.safetensors` or PyTorch `.pth` file or a dict of "
                f"arrays; received {path!r}."
            )
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Checkpoint file not found: {path!r}.")
        read = _read_torch_checkpoint if path.endswith(TORCH_SUFFIXES) else _read_safetensors
        return _model_weights(read(path), use_ema, repr(path))
    if not hasattr(checkpoint, "items"):
        raise ValueError(
            "`checkpoint` must be a `.safetensors` path or a dict of arrays; received "
            f"{type(checkpoint).__name__}."
        )
    return _model_weights(checkpoint, use_ema, "The checkpoint")


def _model_weights(state, use_ema, source):
    """The model's (or the EMA's) weights of a state dict or training checkpoint, as timm's
    `load_state_dict` picks them; the other entries of a training checkpoint (optimizer,
    epoch, arguments) are left."""
    nested = next((key for key in _MODEL_KEYS if isinstance(state.get(key), dict)), None)
    if use_ema:
        key = next((key for key in _EMA_KEYS if isinstance(state.get(key), dict)), None)
        if key is None:
            found = (f"its entries are {_describe_keys(state)}" if nested else
                     f"it is a state dict of {len(state)} tensors, not a training checkpoint")
            raise ValueError(
                f"{source} has no EMA weights (no {' or '.join(_EMA_KEYS)} entry): {found}. "
                "Pass use_ema=False for the model's own weights."
            )
        state = state[key]
    elif nested:
        state = state[nested]
    weights = {}
    for key, value in state.items():
        if not (hasattr(value, "detach") or hasattr(value, "shape")):
            continue  # a training checkpoint's epoch, metric or arguments
        key = str(key)
        for prefix in _WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        weights[key] = _as_numpy(value)
    return weights


def _describe_keys(state, limit=8):
    keys = [repr(str(key)) for key in state]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _as_numpy(value):
    """A checkpoint tensor as a NumPy array: torch tensors from any device, and torch's
    bfloat16, which NumPy lacks, as float32 (exact)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise ImportError(
            "Reading .safetensors checkpoints needs the `safetensors` package: "
            'pip install "keras-attn[convert]".'
        ) from None
    try:
        return load_file(path)
    except Exception as error:
        raise ValueError(f"{path!r} is not a readable safetensors file: {error}") from error


def _read_torch_checkpoint(path):
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"Reading the PyTorch checkpoint {path!r} needs torch (pip install torch); or "
            "convert it to .safetensors, which needs no torch."
        ) from None
    # timm's training checkpoints hold its command-line arguments as an argparse.Namespace,
    # plain data that weights_only refuses unless allowed (torch >= 2.5 can).
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    allowed = safe_globals([argparse.Namespace]) if safe_globals else contextlib.nullcontext()
    try:
        with allowed:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses anything but tensors and containers
        raise ValueError(
            f"{path!r} is not a plain PyTorch state dict: torch.load(weights_only=True) refused "
            f"it ({type(error).__name__}: {str(error).splitlines()[0]}). keras_attn never "
            "unpickles arbitrary objects."
        ) from None
    if not isinstance(state, dict):
        raise ValueError(
            f"{path!r} holds a {type(state).__name__}, not a state dict (a dict of tensors)."
        )
    return state


def checkpoint_layout(state):
    """Which timm source file named the keys: "senet", "sknet" or "resnet"."""
    if any(key.startswith("layer0.") for key in state):
        return "senet"
    if any(".paths." in key for key in state):
        return "sknet"
    return "resnet"


def _stem_module(kind, index, stem_convs, layout):
    if layout == "senet":
        return f"layer0.{kind}{index}"
    if stem_convs == 1:
        return "conv1" if kind == "conv" else "bn1"
    # resnet.py's deep stem: Sequential(conv, bn, act, conv, bn, act, conv), then bn1.
    if kind == "conv":
        return f"conv1.{3 * (index - 1)}"
    return "bn1" if index == stem_convs else f"conv1.{3 * index - 2}"


def _block_module(part, layer, layout, avg_shortcut):
    if part in ("down_conv", "down_bn"):
        position = (part == "down_bn") + avg_shortcut  # resnet.py's avg pool sits at index 0
        return f"downsample.{position}"
    if part == "se":
        return "se_module" if layout == "senet" else "se"
    match = re.fullmatch(r"(conv|bn)(\d)", part)
    if match is None:
        return None
    kind, index = match.groups()
    if layout == "sknet" and not isinstance(layer, SelectiveKernel):
        return f"conv{index}.{kind}"
    return f"{kind}{index}"


def timm_module_names(model, layout):
    """`{keras layer name: timm module path}` for every layer of `model` that has weights."""
    stem_convs = sum(bool(re.fullmatch(r"stem_conv\d", layer.name)) for layer in model.layers)
    avg_shortcut = any(layer.name.endswith("_down_pool") for layer in model.layers)
    modules = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        module = None
        stem = re.fullmatch(r"stem_(conv|bn)(\d)", layer.name)
        block = re.fullmatch(r"stage(\d+)_block(\d+)_(\w+)", layer.name)
        if stem:
            module = _stem_module(stem[1], int(stem[2]), stem_convs, layout)
        elif block:
            part = _block_module(block[3], layer, layout, avg_shortcut)
            if part is not None:
                module = f"layer{block[1]}.{int(block[2]) - 1}.{part}"
        elif layer.name == "predictions":
            module = "last_linear" if layout == "senet" else "fc"
        if module is None:
            raise ValueError(
                f"Layer {layer.name!r} of model {model.name!r} has weights but no timm "
                "counterpart; load_timm_weights expects a network built by "
                "keras_attn.applications."
            )
        modules[layer.name] = module
    return modules


def _variable_key(module, layer, variable):
    parts = variable.path.split("/")
    if layer.name in parts:
        parts = parts[parts.index(layer.name) + 1 :]
    *sublayers, parameter = parts
    names = []
    for sublayer in sublayers:
        for pattern, replacement in _SUBLAYER_NAMES:
            if pattern.fullmatch(sublayer):
                sublayer = pattern.sub(replacement, sublayer)
                break
        names.append(sublayer)
    return ".".join([module, *names, _PARAMETER_NAMES[parameter]])


def timm_variable_keys(model, layout):
    """`{variable.path: timm key}` for every weight of `model`, in `model.weights` order."""
    modules = timm_module_names(model, layout)
    return {
        variable.path: _variable_key(modules[layer.name], layer, variable)
        for layer in model.layers
        for variable in layer.weights
    }


# Convolution kernels are (out, in, kh, kw) in PyTorch and (kh, kw, in, out) in Keras; linear
# weights (out, in) and (in, out). Everything else has the same layout.
_KERAS_AXES = {4: (2, 3, 1, 0), 2: (1, 0)}
_TORCH_AXES = {4: (3, 2, 0, 1), 2: (1, 0)}


def _transpose(array, axes_by_rank):
    axes = axes_by_rank.get(array.ndim)
    return array if axes is None else array.transpose(axes)


def timm_state_dict(model, layout=None):
    """The weights of a keras_attn network as a timm `state_dict` of NumPy arrays.

    The inverse of `load_timm_weights`: the result loads into the timm network of the same
    architecture, and back into this one.

    Args:
        model: a network from `keras_attn.applications`.
        layout: the timm source file that defines the network, "resnet", "sknet" or
            "senet"; by default "sknet" for a network with Selective Kernel layers, "senet"
            for the `legacy_*` networks (timm's senet.py), else "resnet".
    """
    if layout is None:
        if any(isinstance(layer, SelectiveKernel) for layer in model._flatten_layers()):
            layout = "sknet"
        elif model.name.startswith("legacy_"):
            layout = "senet"
        else:
            layout = "resnet"
    keys = timm_variable_keys(model, layout)
    return {
        keys[variable.path]: np.ascontiguousarray(
            _transpose(keras.ops.convert_to_numpy(variable), _TORCH_AXES)
        )
        for variable in model.weights
    }


def load_timm_weights(model, checkpoint, use_ema=False):
    """Sets every weight of a keras_attn network from a timm checkpoint.

    Every tensor of the checkpoint must be used exactly once and every weight of the model
    set (`num_batches_tracked` aside); otherwise a `ValueError` names the key and both shapes.
    The model is changed only when the whole checkpoint fits.

    Args:
        model: a network from `keras_attn.applications` (any `include_top`, any input size).
            With `include_top=False`, the checkpoint's classifier is left out.
        checkpoint: a timm `state_dict` as a dict of arrays, a `.safetensors` path, or a
            PyTorch `.pth` path (a training checkpoint such as `model_best.pth.tar` too).
        use_ema: load a training checkpoint's EMA weights (`state_dict_ema`) instead of the
            model's own.

    Returns:
        The model, for chaining.

    Example:

    >>> model = keras_attn.applications.get_model("resnest50d")
    >>> load_timm_weights(model, "resnest50d.safetensors")
    """
    state = read_checkpoint(checkpoint, use_ema)
    layout = checkpoint_layout(state)
    keys = timm_variable_keys(model, layout)
    has_top = any(layer.name == "predictions" for layer in model.layers)
    assignments = []
    used = set()
    for variable in model.weights:
        key = keys[variable.path]
        if key not in state:
            raise ValueError(
                f"The checkpoint has no tensor {key!r} for weight {variable.path!r} of shape "
                f"{tuple(variable.shape)} (layout: timm {layout}.py)."
            )
        if key in used:
            raise ValueError(f"Checkpoint tensor {key!r} would be used twice.")
        source = np.asarray(state[key])
        value = _transpose(source, _KERAS_AXES)
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"Checkpoint tensor {key!r} has shape {tuple(source.shape)} "
                f"({tuple(value.shape)} in Keras layout) but weight {variable.path!r} has "
                f"shape {tuple(variable.shape)}."
            )
        try:  # cast here, not when assigning: a tensor that cannot be cast changes nothing
            value = value.astype(variable.dtype)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Checkpoint tensor {key!r} ({source.dtype}) cannot be cast to weight "
                f"{variable.path!r}'s {variable.dtype}: {error}"
            ) from error
        used.add(key)
        assignments.append((variable, value))
    head = ("last_linear." if layout == "senet" else "fc.")
    unused = sorted(
        key
        for key in set(state) - used
        if not key.endswith(_IGNORED_SUFFIXES) and (has_top or not key.startswith(head))
    )
    if unused:
        shown = ", ".join(f"{key} {tuple(np.shape(state[key]))}" for key in unused[:10])
        more = f" and {len(unused) - 10} more" if len(unused) > 10 else ""
        raise ValueError(
            f"{len(unused)} checkpoint tensor(s) have no weight in model {model.name!r}: "
            f"{shown}{more}. Is it the same architecture?"
        )
    for variable, value in assignments:
        variable.assign(value)
    return model


def classifier_classes(state):
    """Number of classes of a timm checkpoint's classifier, or None if it has none."""
    for key in ("fc.weight", "last_linear.weight"):
        if key in state:
            return int(np.shape(state[key])[0])
    return None


def from_timm(timm_name, checkpoint, use_ema=False, **kwargs):
    """Builds the keras_attn twin of a timm network and loads a timm checkpoint into it.

    Args:
        timm_name: the network's timm name, e.g. `"resnest50d"` (`list_models()`).
        checkpoint: a timm `state_dict` as a dict of arrays, a `.safetensors` path, or a
            PyTorch `.pth` path (a training checkpoint such as `model_best.pth.tar` too).
        use_ema: load a training checkpoint's EMA weights (`state_dict_ema`) instead of the
            model's own.
        **kwargs: builder arguments (`input_shape=(160, 160, 3)`, `include_top`, `pooling`,
            `classifier_activation`, `name`) and `NetworkSpec` fields for changed rows.
            `classes` defaults to the checkpoint classifier's.

    Returns:
        The loaded `keras.Model`.

    Example:

    >>> model = from_timm("seresnext50_32x4d", "model.safetensors", input_shape=(288, 288, 3))
    """
    state = read_checkpoint(checkpoint, use_ema)
    spec, kwargs = specs.resolve(timm_name, **kwargs)
    if not isinstance(spec, specs.NetworkSpec):
        raise ValueError(
            f"{timm_name!r} is not one of timm's ResNet-family networks, whose checkpoints "
            "keras_attn converts."
        )
    if kwargs.get("include_top", True) and "classes" not in kwargs:
        kwargs["classes"] = classifier_classes(state) or 1000
    model = resnet_family.build_model(spec, **kwargs)
    return load_timm_weights(model, state)
