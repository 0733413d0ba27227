"""TFLite export with TensorFlow Lite builtin ops only, verified in LiteRT's interpreter."""

import itertools
import os
import tempfile
import uuid

import numpy as np
import tensorflow as tf

from keras_attn.export import keep_float as keep_float_module
from keras_attn.export import serving
from keras_attn.export.verify import verification_images, verified_report
from keras_attn.layers.grouped_conv import grouped_conv_implementation

QUANTIZATIONS = (None, "float16", "dynamic", "int8")

# Default limits of the verification, per quantization: (max abs error of a probability,
# min top-1 agreement). float32 must be the Keras model. A quantized file may move a
# probability by a few hundredths (docs/export.md measures a trained digits network), not by a
# tenth or more: beyond that it is another model, such as an int8 file
# calibrated on the wrong data. Top-1 agreement has no default: on random pixels (the default
# verification images) a network's top classes are close, and a correct quantized file may
# swap them. Pass real images, and `max_abs_error` / `min_top1_agreement` to loosen or tighten.
LIMITS = {None: (1e-4, None), "float16": (1e-2, None), "dynamic": (0.1, None),
          "int8": (0.1, None)}

CALIBRATION_IMAGES = 100  # most images the int8 calibration reads


def tflite(model, path, quantization=None, representative_data=None, *, keep_float=None,
           weights="imagenet", model_name=None, verify_images=None, max_abs_error="default",
           min_top1_agreement="default"):
    """Converts a classifier to a `.tflite` file with builtin ops only, verified first.

    The file takes float32 RGB pixels in [0, 255], `(batch, size, size, 3)` (the model's
    mean/std normalisation is inside) and returns class probabilities, like the SavedModel's
    `serving_default`. Grouped convolutions become TFLite's builtin `CONV_2D` and the
    attention gates builtin ops: no `SELECT_TF_OPS` (Flex) delegate is needed. The file is
    written under a temporary name, run in `ai_edge_litert`'s interpreter (XNNPACK on) and
    compared with the Keras model, and only then renamed to `path`.

    Args:
        model: a Keras classifier with a fixed square RGB input.
        path: the `.tflite` file to write; an existing file is replaced only by a verified one.
        quantization: None (float32), "float16" (float16 weights), "dynamic" (int8 weights,
            float activations) or "int8" (full integer: weights and activations, int8 kernels;
            float32 input and output).
        representative_data: for "int8", float32 pixels `(n, size, size, 3)` in [0, 255]
            to calibrate the activation ranges on: an array, an iterable of such batches, or
            (TFLite's own convention) a function returning a fresh iterable of them, each
            batch alone or in a one-element list `[batch]`. The first 100 images are used.
        keep_float: for "int8", what stays float32 (dequantized before it, quantized after
            it): TFLite operator types (e.g. `"LOGISTIC"`), shell patterns on the graph's
            tensor names, which are TensorFlow's name scopes with the Keras layer names (e.g.
            `"*/stage1_block1_se_1/*"`), or the presets `"input"` (the input normalisation),
            `"classifier"` (the classifier and its softmax) and `"se"` (every
            Squeeze-and-Excitation layer); see `keras_attn.export.keep_float`, and
            docs/quantization.md for what each costs and gains (`["input", "classifier"]`
            is recommended). Each entry must match an operator.
        weights: the published tag whose mean/std the graph applies.
        model_name: the network's registry name, for a renamed or wrapped network (default
            `model.name`); see `serving.serving_config`.
        verify_images: float32 pixels `(batch, size, size, 3)` to verify on; default: 4
            random images.
        max_abs_error: the verification's limit on the largest probability difference;
            "default" takes `LIMITS[quantization]` (quantized files: within 0.1 of Keras'),
            None removes the limit.
        min_top1_agreement: its limit on the share of images whose top-1 class agrees;
            "default" takes `LIMITS[quantization]`, None removes the limit.

    Returns:
        An `ExportReport`.

    Raises:
        ExportVerificationError: the file differs from the Keras model beyond the limits.

    Examples:
        ```python
        keras_attn.export.tflite(model, "resnest50d_int8.tflite", quantization="int8",
                                 representative_data=calibration_images)
        ```
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"`quantization` must be one of {QUANTIZATIONS}; received {quantization!r}."
        )
    config = serving.serving_config(model, weights, model_name=model_name)
    keep_float = keep_float_module.expand(keep_float_module.check(keep_float, quantization),
                                          model)
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "quantization='int8' needs `representative_data`: float32 pixels (n, "
            f"{config.size}, {config.size}, 3) in [0, 255] from the data the model will see, "
            "to calibrate the activation ranges."
        )
    default_error, default_agreement = LIMITS[quantization]
    max_abs_error = default_error if max_abs_error == "default" else max_abs_error
    min_top1_agreement = (default_agreement if min_top1_agreement == "default"
                          else min_top1_agreement)
    images = verification_images(config, verify_images)

    content = convert(model, config, quantization, representative_data, keep_float=keep_float)
    path = os.fspath(path)
    part = f"{path}.part-{uuid.uuid4().hex[:8]}"
    try:
        with open(part, "wb") as file:
            file.write(content)
        report = verified_report(
            model, config, images, run_tflite(part, images), (max_abs_error, min_top1_agreement),
            path=path, format="tflite", quantization=quantization, size_bytes=len(content),
        )
        os.replace(part, path)
    finally:
        if os.path.exists(part):
            os.remove(part)
    return report


def convert(model, config, quantization=None, representative_data=None, logits=False,
            keep_float=()):
    """The TFLite flatbuffer (bytes) of `model` behind the pixels-in, probabilities-out graph
    (logits out with `logits=True`, see `serving.probabilities_fn`); with int8 and
    `keep_float` (expanded already, see `keep_float.expand`), the operators it selects stay
    float32."""
    # Through a SavedModel, as Keras' own LiteRT export does: its variables are frozen into
    # constants (BatchNorm folds into the convolutions), where a concrete function's stay
    # resource variables.
    # Grouped convolutions are traced native: TFLite runs one grouped CONV_2D (XNNPACK), and
    # the packed form's block-diagonal kernels are computed, not constant, so int8 would
    # quantize them as activations.
    with tempfile.TemporaryDirectory() as scratch, grouped_conv_implementation("native"):
        inference = serving.inference_model(model)
        serving.write_saved_model(inference, scratch, {"serving_default": (
            serving.probabilities_fn(inference, config, logits),
            [serving.pixels_signature(config)])})
        converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
        converter = configure_converter(converter, config, quantization, representative_data)
        if not (quantization == "int8" and keep_float):
            return converter.convert()
        return quantize_calibrated(calibrate(converter), keep_float)


def calibrate(converter):
    """The calibrated float model (bytes) of an int8 `converter`: every tensor's range
    recorded, nothing quantized yet. `quantize_calibrated` turns it into the int8 file; one
    calibration then serves several choices of what stays float."""
    # The two steps TFLite's own converter takes for int8 (and its QuantizationDebugger for a
    # model with some operators left float), taken one at a time: the public debugger
    # calibrates again for each denylist.
    converter._experimental_calibrate_only = True  # noqa: SLF001 (no public API)
    try:
        return converter.convert()
    finally:
        converter._experimental_calibrate_only = False  # noqa: SLF001


def quantize_calibrated(calibrated, keep_float=()):
    """The int8 TFLite file (float32 input and output) of a `calibrate`d model, the operators
    `keep_float` selects (expanded already) left float32: TFLite operator types, or shell
    patterns on their output tensors' names."""
    from tensorflow.lite.python import convert as lite_convert

    selected, types = keep_float_module.select(_nodes(calibrated), keep_float)
    # What TFLiteConverter calls after calibrating (float32 input and output, per-channel
    # weights), with TFLite's denylists of operator types and of nodes by output name.
    return lite_convert.mlir_quantize(calibrated, denylisted_ops=types,
                                      denylisted_nodes=selected)


def _nodes(content):
    """`(operator type, output tensor name)` of each operator of a TFLite model."""
    runner = interpreter(content)
    names = {tensor["index"]: tensor["name"] for tensor in runner.get_tensor_details()}
    return [(op["op_name"], names[op["outputs"][0]])
            for op in runner._get_ops_details()]  # noqa: SLF001 (no public API)


def configure_converter(converter, config, quantization=None, representative_data=None):
    """Sets `converter` up for `quantization`, builtin ops only; returns it."""
    # Builtins only: the conversion fails rather than fall back to Flex (SELECT_TF_OPS).
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = _calibration(representative_data, config)
    return converter


def _calibration(representative_data, config):
    shape = (config.size, config.size, 3)
    expected = (f"pixels (n, {config.size}, {config.size}, 3): an array, an iterable of such "
                "batches, or a function returning one")

    def batches():
        data = representative_data() if callable(representative_data) else representative_data
        if isinstance(data, np.ndarray | tf.Tensor):
            data = [data]
        try:
            iterator = iter(data)
        except TypeError:
            raise ValueError(
                f"`representative_data` must be {expected}; received "
                f"{_describe(representative_data)}"
                + (f" returning {_describe(data)}" if data is not representative_data else "")
                + "."
            ) from None
        yield from iterator

    def images():
        for item in batches():
            # TFLite's convention: a list of one array per model input.
            batch = item[0] if isinstance(item, list | tuple) and len(item) == 1 else item
            try:
                array = np.asarray(batch, "float32")
            except (TypeError, ValueError):
                array = None
            if array is None or array.ndim != 4 or array.shape[1:] != shape:
                found = f"shape {array.shape}" if array is not None else _describe(batch)
                raise ValueError(
                    f"`representative_data` must hold {expected}; received a batch of {found}."
                )
            yield from array

    def dataset():
        calibrated = 0
        for image in itertools.islice(images(), CALIBRATION_IMAGES):
            calibrated += 1
            yield [image[None]]
        if not calibrated:  # else the converter writes float32 and calls it int8
            raise ValueError(
                "`representative_data` holds no image (an empty array, or a used-up iterator); "
                f"int8 calibration needs pixels (n, {config.size}, {config.size}, 3), n >= 1."
            )

    return dataset


def _describe(value):
    return f"{type(value).__name__} {value!r:.60}"


def interpreter(path_or_content, num_threads=None):
    """LiteRT's interpreter (XNNPACK on, the default op resolver) for a file or bytes."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ImportError(
            "Running TFLite files needs LiteRT: pip install 'keras-attn[litert]' "
            "(ai-edge-litert)."
        ) from None
    source = ({"model_content": path_or_content} if isinstance(path_or_content, bytes)
              else {"model_path": os.fspath(path_or_content)})
    return Interpreter(**source, num_threads=num_threads or os.cpu_count())


def operators(path_or_content):
    """The sorted operator names of a TFLite model (e.g. `["CONV_2D", "LOGISTIC", ...]`)."""
    details = interpreter(path_or_content)._get_ops_details()  # noqa: SLF001 (no public API)
    return sorted({op["op_name"] for op in details})


def run_tflite(path_or_content, images):
    """Runs a TFLite classifier on float32 pixels with LiteRT; returns its output (numpy).

    The same calls a phone makes (`Interpreter`, resize, allocate, set, invoke, get), so a file
    checked here behaves the same there.

    Args:
        path_or_content: a `.tflite` path or the file's bytes.
        images: pixels of shape `(batch, height, width, 3)`, in what the model was exported for
            (by `keras_attn.export.tflite`: RGB in [0, 255]).

    Returns:
        The file's output as a NumPy array, `(batch, classes)` probabilities for a file
        `keras_attn.export.tflite` wrote.

    Examples:
        ```python
        probabilities = keras_attn.export.run_tflite("resnest50d.tflite", pixels)
        ```
    """
    images = np.asarray(images, "float32")
    runner = interpreter(path_or_content)
    details = runner.get_input_details()[0]
    # Only the batch may differ from the file's input; LiteRT reports anything else as a
    # delegate that "failed to prepare".
    expected = tuple(int(size) for size in details["shape_signature"][1:])
    if images.ndim != 1 + len(expected) or any(
        size not in (-1, given) for size, given in zip(expected, images.shape[1:])
    ):
        wanted = ", ".join("any" if size == -1 else str(size) for size in expected)
        raise ValueError(
            f"`images` must have shape (batch, {wanted}) for this file; received an array of "
            f"shape {images.shape}."
        )
    input_index = details["index"]
    runner.resize_tensor_input(input_index, images.shape)
    runner.allocate_tensors()
    runner.set_tensor(input_index, images)
    runner.invoke()
    return runner.get_tensor(runner.get_output_details()[0]["index"])
