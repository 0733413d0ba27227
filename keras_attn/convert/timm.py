"""timm checkpoint -> Keras weights: the name map and the kernel transposes.

The builder records, for every layer with weights, the timm module it corresponds to
(`model.structure.timm_modules`, in the naming of the timm source file the network's row names:
resnet.py, sknet.py or senet.py). Inside an attention layer, the attention registry says how
the layer's sublayers map onto the timm module's (`AttentionKind.timm_names`). Nothing here
reads structure from layer names.
"""

import argparse
import contextlib
import os
import re

import keras
import numpy as np

from keras_attn import attention
from keras_attn.applications import resnet_family, specs

_PARAMETER_NAMES = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
_IGNORED_SUFFIXES = (".num_batches_tracked",)
# timm's classifier modules: resnet.py's and sknet.py's, and senet.py's.
_CLASSIFIERS = ("fc", "last_linear")
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


def _structure(model):
    structure = getattr(model, "structure", None)
    if structure is None or not structure.timm_modules:
        raise ValueError(
            f"Model {model.name!r} carries no record of its timm modules: timm checkpoints load "
            "into networks built by keras_attn.applications (get_model, a constructor, or a "
            ".keras file saved from one), whose ResNet-family rows timm has."
        )
    return structure


def _sublayer_name(kind, name):
    """The timm submodule path of sublayer `name` of an attention layer of `kind`."""
    for keras_name, timm_name in (kind.timm_names if kind else {}).items():
        pattern = re.escape(keras_name).replace(r"\{i\}", r"(?P<i>\d+)")
        match = re.fullmatch(pattern, name)
        if match:
            return timm_name.format(**match.groupdict())
    return name


def _variable_key(module, layer, variable):
    parts = variable.path.split("/")
    if layer.name in parts:
        parts = parts[parts.index(layer.name) + 1 :]
    *sublayers, parameter = parts
    kind = attention.kind_of(layer)
    if kind is not None and kind.timm_module is None:
        raise ValueError(
            f"Layer {layer.name!r} is a {type(layer).__name__}, attention kind {kind.name!r}, "
            "which has no timm counterpart (its registry entry names no timm_module): timm "
            "checkpoints cannot load into this network."
        )
    names = [_sublayer_name(kind, sublayer) for sublayer in sublayers]
    return ".".join([module, *names, _PARAMETER_NAMES.get(parameter, parameter)])


def timm_variable_keys(model):
    """`{variable.path: timm key}` for every weight of `model`, in `model.weights` order.

    Raises:
        ValueError: `model` was not built by `keras_attn.applications`, or a layer with weights
            has no timm counterpart.
    """
    modules = _structure(model).timm_modules
    keys = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in modules:
            raise ValueError(
                f"Layer {layer.name!r} of model {model.name!r} has weights but no timm "
                "counterpart; load_timm_weights expects a network built by "
                "keras_attn.applications."
            )
        for variable in layer.weights:
            keys[variable.path] = _variable_key(modules[layer.name], layer, variable)
    return keys


# Kernels are (out, in, kh, kw) / (out, in, k) in PyTorch and (kh, kw, in, out) / (k, in, out)
# in Keras; linear weights (out, in) and (in, out). Everything else has the same layout.
_KERAS_AXES = {4: (2, 3, 1, 0), 3: (2, 1, 0), 2: (1, 0)}
_TORCH_AXES = {4: (3, 2, 0, 1), 3: (2, 1, 0), 2: (1, 0)}


def _transpose(array, axes_by_rank):
    axes = axes_by_rank.get(array.ndim)
    return array if axes is None else array.transpose(axes)


def timm_state_dict(model):
    """The weights of a keras_attn network as a timm `state_dict` of NumPy arrays.

    The inverse of `load_timm_weights`: the result loads into the timm network of the same
    architecture (its keys in the naming of the timm source file the network's row names),
    and back into this one.

    Args:
        model: a network from `keras_attn.applications`.
    """
    keys = timm_variable_keys(model)
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

    Examples:
        ```python
        model = keras_attn.applications.get_model("resnest50d")
        load_timm_weights(model, "resnest50d.safetensors")
        ```
    """
    state = read_checkpoint(checkpoint, use_ema)
    keys = timm_variable_keys(model)
    has_classifier = any(module in _CLASSIFIERS
                         for module in _structure(model).timm_modules.values())
    assignments = []
    used = set()
    for variable in model.weights:
        key = keys[variable.path]
        if key not in state:
            raise ValueError(
                f"The checkpoint has no tensor {key!r} for weight {variable.path!r} of shape "
                f"{tuple(variable.shape)}."
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
    # Without its own classifier, the model leaves the checkpoint's out.
    classifiers = () if has_classifier else tuple(f"{name}." for name in _CLASSIFIERS)
    unused = sorted(
        key
        for key in set(state) - used
        if not key.endswith(_IGNORED_SUFFIXES) and not key.startswith(classifiers)
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
    for key in (f"{name}.weight" for name in _CLASSIFIERS):
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

    Examples:
        ```python
        model = from_timm("seresnext50_32x4d", "model.safetensors", input_shape=(288, 288, 3))
        ```
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
    return load_timm_weights(resnet_family.build_model(spec, **kwargs), state)
