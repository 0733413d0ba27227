"""What an int8 export keeps in float32: the `keep_float` argument of the TFLite and ONNX exports.

`keep_float` is a list whose entries are operator types of the target format (TFLite's
`"LOGISTIC"`, ONNX's `"Sigmoid"`) or shell patterns on the graph's node names, which carry the
Keras layer names as name scopes (`"*/stage1_block1_se_1/*"`), or a preset:

- `"input"`: the input normalisation, `(pixels - mean) / std`. Quantized, the pixels are
  rounded to int8 and the subtraction and the division rounded again, so the stem convolution
  reads an image rounded three times: the largest error of an int8 network (TFLite's
  quantization debugger ranks it first) and, on a trained SE-ResNet-50, the largest loss of
  top-1 agreement (docs/quantization.md). Float, it costs no weights.
- `"classifier"`: the classifier, the graph's last matrix multiplication (TFLite's
  `FULLY_CONNECTED`, ONNX's `MatMul` or `Gemm`) and every operator after it (its bias, the
  softmax). Quantized, its output is rounded to 256 levels over the calibrated range of
  logits (or probabilities): images whose logits leave that range, or whose two best classes
  differ by less than a step, tie at the top, and the first class wins. Float, it costs the
  classifier's weights in float32 (4 bytes instead of 1 per weight). What the plain and
  split-attention networks lose most (docs/quantization.md); with `"input"`, the recommended
  setting.
- `"se"`: every Squeeze-and-Excitation layer's operators (squeeze, both 1x1 convolutions, the
  gate and the rescaling multiplication), found from the model's own layers.
"""

import fnmatch

from keras_attn.export.serving import NORMALIZATION_SCOPE
from keras_attn.layers import SqueezeExcite

PRESETS = ("input", "classifier", "se")

CLASSIFIER = "classifier"
# The operator types a classifier's Dense layer becomes in each format.
_MATRIX_MULTIPLICATIONS = ("FULLY_CONNECTED", "MatMul", "Gemm")


def check(keep_float, quantization):
    """`keep_float` as a tuple of entries (empty for None); raises a `ValueError` for a value
    that is no list of strings, or that is given without int8."""
    if keep_float is None:
        return ()
    if quantization != "int8":
        raise ValueError(
            f"`keep_float` applies to quantization='int8' only; received keep_float="
            f"{keep_float!r} with quantization={quantization!r}."
        )
    if isinstance(keep_float, str) or not all(isinstance(entry, str) for entry in keep_float):
        raise ValueError(
            "`keep_float` must be a list of operator types, node name patterns or the presets "
            f"{', '.join(map(repr, PRESETS))}, e.g. ['input'] or ['*_se_1/*']; received "
            f"keep_float={keep_float!r}."
        )
    return tuple(keep_float)


def expand(keep_float, model):
    """`keep_float` with the presets "input" and "se" replaced by the node name patterns they
    stand for in `model`'s exported graph ("classifier" stays, for `select`); raises a
    `ValueError` for a preset that selects no layer."""
    expanded = []
    for entry in keep_float:
        if entry == "input":
            expanded.append(f"*{NORMALIZATION_SCOPE}/*")
            continue
        if entry != "se":
            expanded.append(entry)
            continue
        names = [layer.name for layer in model._flatten_layers()  # noqa: SLF001 (nested too)
                 if isinstance(layer, SqueezeExcite)]
        if not names:
            raise ValueError(
                f"`keep_float` entry 'se' selects the Squeeze-and-Excitation layers, and "
                f"{model.name!r} has none."
            )
        # TensorFlow's name scopes add `_1` to a layer's name when it is called in a traced
        # function; both converters keep the scopes in their node names.
        expanded.extend(f"*/{name}_1/*" for name in names)
    return tuple(dict.fromkeys(expanded))


def select(nodes, keep_float):
    """The names of the nodes `keep_float` selects among `nodes`, `(operator type, name)`
    pairs in the graph's order, and the operator types it names; raises a `ValueError` for an
    entry that selects nothing (patterns must already be expanded)."""
    selected, types = [], []
    known_types = {op_type for op_type, _ in nodes}
    for entry in keep_float:
        if entry == CLASSIFIER:
            last = max((index for index, (op_type, _) in enumerate(nodes)
                        if op_type in _MATRIX_MULTIPLICATIONS), default=None)
            if last is None:
                raise ValueError(
                    "`keep_float` entry 'classifier' selects the graph's last matrix "
                    f"multiplication ({', '.join(_MATRIX_MULTIPLICATIONS)}), and the graph has "
                    f"none; its operator types are {sorted(known_types)}."
                )
            selected.extend(name for _, name in nodes[last:] if name not in selected)
            continue
        if entry in known_types:
            types.append(entry)
            continue
        matched = [name for _, name in nodes if fnmatch.fnmatchcase(name, entry)]
        if not matched:
            raise ValueError(
                f"`keep_float` entry {entry!r} matches no operator type and no node name of "
                f"the graph; its operator types are {sorted(known_types)}."
            )
        selected.extend(name for name in matched if name not in selected)
    return selected, types
