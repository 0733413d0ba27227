"""ONNX export through Keras' own exporter, float32 or static int8, verified in ONNX Runtime."""

import itertools
import os
import tempfile
import warnings

import numpy as np

from keras_attn.export import files, serving
from keras_attn.export import keep_float as keep_float_module
from keras_attn.export.verify import verification_images, verified_report
from keras_attn.layers.grouped_conv import grouped_conv_implementation

QUANTIZATIONS = (None, "int8")

# Default limits of the verification, per quantization: (max abs error of a probability, min
# top-1 agreement). float32 must be the Keras model. int8 must stay within 0.1 of each
# probability, several times what the small networks of every family lost on random pixels
# (at most 8e-3, docs/export-onnx-openvino.md); no top-1 floor, since random pixels agree on
# little: pass real images and a floor for a real check, or a looser limit for a network known
# to lose more under int8.
LIMITS = {None: (1e-4, None), "int8": (0.1, None)}

CALIBRATION_IMAGES = 100  # most images the int8 calibration reads, as the TFLite export
CALIBRATION_CHUNK = 8  # images whose activations calibration holds at once

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
BATCH = "batch"


def onnx(model, path, *, quantization=None, representative_data=None, keep_float=None,
         reduce_range=True, weights="imagenet", model_name=None, verify_images=None,
         max_abs_error="default", min_top1_agreement="default", overwrite=False):
    """Exports a classifier as an ONNX file, verified in ONNX Runtime before it lands.

    The file has the contract of the SavedModel's `serving_default`: input `images`, float32
    RGB pixels in [0, 255] of shape `(batch, size, size, 3)` with any batch (the model's
    mean/std normalisation is inside), output `probabilities`, `(batch, classes)`. It is
    converted by Keras' own exporter (`model.export(format="onnx")`, tf2onnx on the
    TensorFlow backend), each grouped convolution as one ONNX `Conv` with its `group`, the
    attention gates as standard ONNX operators. It is written in a scratch folder, run in
    ONNX Runtime (CPU) and compared with the Keras model, and only then copied beside `path`
    and renamed to it: an export that fails or is interrupted leaves nothing there.

    With `quantization="int8"` the verified float32 graph is quantized by ONNX Runtime's
    static quantization: QDQ format (QuantizeLinear / DequantizeLinear around each
    quantized operator), int8 weights per output channel, uint8 activations whose ranges are
    calibrated on `representative_data` (min/max), as ONNX Runtime advises for x86 CPUs.
    Input and output stay float32.

    Args:
        model: a Keras classifier with a fixed square RGB input.
        path: the `.onnx` file to write.
        quantization: None (float32) or "int8".
        representative_data: for "int8", float32 pixels `(n, size, size, 3)` in [0, 255] (or
            an iterable of such batches) to calibrate the activation ranges on; the first 100
            images are used.
        keep_float: for "int8", what stays float32: a sequence of ONNX operator types (e.g.
            `"Sigmoid"`), shell patterns on ONNX node names, which are TensorFlow's name
            scopes with the Keras layer names (e.g. `"*/stage1_block1_se_1/*"`), or the
            presets `"input"` (the input normalisation), `"classifier"` (the classifier and
            its softmax) and `"se"` (every Squeeze-and-Excitation layer); see
            `keras_attn.export.keep_float`, and docs/quantization.md for what each costs and
            gains (`["input", "classifier"]` is recommended). Each entry must match a node of
            the graph.
        reduce_range: for "int8", weights quantized to 7 bits instead of 8, so that ONNX
            Runtime's uint8 x int8 kernels on x86 CPUs without VNNI (AVX2, AVX-512 without
            VNNI) cannot saturate their 16-bit sums (measured on a trained ResNet-50 on an
            AVX2 CPU: top-1 agreement with float32 93.6% with 8 bits, 96.4% with 7; see
            docs/quantization.md). Pass False for files that run on CPUs with VNNI.
        weights: the published tag whose mean/std the graph applies.
        model_name: the network's registry name, for a renamed or wrapped network (default
            `model.name`); see `serving.serving_config`.
        verify_images: float32 pixels `(batch, size, size, 3)` to verify on; default: 4
            random images.
        max_abs_error: the verification's limit on the largest probability difference;
            "default" takes `LIMITS[quantization]`, None removes the limit.
        min_top1_agreement: its limit on the share of images whose top-1 class agrees;
            "default" takes `LIMITS[quantization]`, None removes the limit.
        overwrite: replace an existing file at `path` (with the verified export only).

    Returns:
        An `ExportReport`.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
        ExportVerificationError: the file differs from the Keras model beyond the limits.
        ImportError: onnx, onnxruntime or tf2onnx is missing (`pip install keras-attn[onnx]`).

    Examples:
        ```python
        keras_attn.export.onnx(model, "resnest50d.onnx")
        keras_attn.export.onnx(model, "resnest50d_int8.onnx", quantization="int8",
                               representative_data=calibration_images)
        ```
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"`quantization` must be one of {QUANTIZATIONS}; received {quantization!r}."
        )
    config = serving.serving_config(model, weights, model_name=model_name)
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "quantization='int8' needs `representative_data`: float32 pixels (n, "
            f"{config.size}, {config.size}, 3) in [0, 255] from the data the model will see, "
            "to calibrate the activation ranges."
        )
    keep_float = keep_float_module.expand(
        keep_float_module.check(keep_float, quantization), model)
    path = os.fspath(path)
    files.check_target(path, overwrite)
    _modules()  # a missing package is reported before the conversion
    default_error, default_agreement = LIMITS[quantization]
    max_abs_error = default_error if max_abs_error == "default" else max_abs_error
    min_top1_agreement = (default_agreement if min_top1_agreement == "default"
                          else min_top1_agreement)
    images = verification_images(config, verify_images)
    calibration = (calibration_images(representative_data, config) if quantization == "int8"
                   else None)

    with tempfile.TemporaryDirectory(prefix="keras_attn_onnx_") as scratch:
        written = os.path.join(scratch, "model.onnx")
        convert(model, config, written)
        if quantization == "int8":
            float_path, written = written, os.path.join(scratch, "model_int8.onnx")
            quantize_int8(float_path, written, calibration, keep_float, reduce_range)
        report = verified_report(
            model, config, images, run_onnx(written, images),
            (max_abs_error, min_top1_agreement), path=path, format="onnx",
            quantization=quantization, size_bytes=os.path.getsize(written),
        )
        files.put_in_place([(written, path)], overwrite)
    return report


def convert(model, config, path, logits=False):
    """Writes `model` behind the pixels-in, probabilities-out function as an ONNX file (not
    verified), with Keras' own exporter; logits out with `logits=True` (see
    `serving.probabilities_fn`: what int8 is measured on)."""
    _modules()
    # Grouped convolutions traced native, TensorFlow's grouped Conv2D op, which tf2onnx turns
    # into one ONNX Conv with `group`; the packed form would be several dense Convs with zeros,
    # and Keras' own XLA-compiled one does not convert at all (tensorflow-onnx#2099).
    with grouped_conv_implementation("native"), warnings.catch_warnings():
        # Keras' tf2onnx patch for NumPy 2 probes `np.object`, which warns.
        warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
        serving.serving_model(model, config, logits).export(
            path, format="onnx", input_signature=[serving.pixels_signature(config)],
            verbose=False,
        )
    _name_inputs_and_outputs(path)


def _name_inputs_and_outputs(path):
    """Names the graph's output `probabilities` (tf2onnx keeps TensorFlow's `Identity:0`) and
    the batch dimension `batch` (its `unk__N`)."""
    onnx_lib = _modules()[0]
    model = onnx_lib.load(path)
    graph = model.graph
    (output,) = graph.output
    renamed = {output.name: OUTPUT_NAME}
    for node in graph.node:
        node.output[:] = [renamed.get(name, name) for name in node.output]
        node.input[:] = [renamed.get(name, name) for name in node.input]
    output.name = OUTPUT_NAME
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH
    onnx_lib.checker.check_model(model)
    onnx_lib.save(model, path)


def session(path):
    """An ONNX Runtime inference session on the CPU for an `.onnx` file."""
    ort = _modules()[1]
    return ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])


def run_onnx(path, images):
    """Runs an exported ONNX classifier on float32 pixels in ONNX Runtime (CPU); returns the
    probabilities (numpy).

    Args:
        path: an `.onnx` file written by `keras_attn.export.onnx`.
        images: pixels of shape `(batch, size, size, 3)`, RGB in [0, 255].

    Returns:
        The probabilities, a float32 NumPy array `(batch, classes)`.

    Examples:
        ```python
        probabilities = keras_attn.export.run_onnx("resnest50d.onnx", pixels)
        ```
    """
    runner = session(path)
    (output,) = runner.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(images, "float32")})
    return output


def quantize_int8(float_path, path, images, keep_float=(), reduce_range=True):
    """Writes the static int8 (QDQ, per-channel int8 weights, uint8 activations) form of the
    float32 ONNX file `float_path` to `path`, its activation ranges calibrated on `images`
    (float32 pixels, as `calibration_images` returns); the nodes `keep_float` selects (see
    `onnx`) stay float32; `reduce_range`: 7-bit weights (see `onnx`)."""
    onnx_lib, _, quantization = _modules(quantization=True)
    with tempfile.TemporaryDirectory(prefix="keras_attn_onnx_") as scratch:
        # Shape inference and ONNX Runtime's graph optimizations first, as ONNX Runtime
        # advises: the quantizer then sees the graph that runs (transposes folded away).
        prepared = os.path.join(scratch, "prepared.onnx")
        quantization.shape_inference.quant_pre_process(float_path, prepared)
        excluded = _excluded_nodes(onnx_lib.load(prepared), keep_float)
        quantization.quantize_static(
            prepared, path, _CalibrationReader(images),
            quant_format=quantization.QuantFormat.QDQ, per_channel=True,
            # ONNX Runtime's advice for x86 CPUs (quantize_static's docstring): uint8
            # activations, int8 weights, and 7-bit weights on CPUs without VNNI.
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8, reduce_range=reduce_range,
            calibrate_method=quantization.CalibrationMethod.MinMax,
            nodes_to_exclude=excluded,
            # Ranges computed every few images and merged (min of mins, max of maxes: the
            # same ranges), instead of every activation of every image held at once.
            extra_options={"CalibStridedMinMax": _chunk(len(images))},
        )


def _excluded_nodes(model, keep_float):
    """The names of the nodes `keep_float` selects; raises for an entry that selects none."""
    nodes = [(node.op_type, node.name) for node in model.graph.node]
    selected, types = keep_float_module.select(nodes, keep_float)
    return selected + [name for op_type, name in nodes
                       if op_type in types and name not in selected]


def calibration_images(representative_data, config):
    """The first `CALIBRATION_IMAGES` images of `representative_data` as one float32 array,
    checked: pixels `(n, size, size, 3)` with n >= 1."""
    if isinstance(representative_data, np.ndarray) or hasattr(representative_data, "numpy"):
        representative_data = [representative_data]
    shape = (config.size, config.size, 3)

    def images():
        for batch in representative_data:
            batch = np.asarray(batch, "float32")
            if batch.ndim != 4 or batch.shape[1:] != shape:
                raise ValueError(
                    f"`representative_data` must hold pixels (n, {config.size}, {config.size}, "
                    f"3); received a batch of shape {batch.shape}."
                )
            yield from batch

    chosen = list(itertools.islice(images(), CALIBRATION_IMAGES))
    if not chosen:  # else the quantizer would calibrate on nothing
        raise ValueError(
            "`representative_data` holds no image (an empty array, or a used-up iterator); "
            f"int8 calibration needs pixels (n, {config.size}, {config.size}, 3), n >= 1."
        )
    return np.stack(chosen)


def _chunk(count, most=CALIBRATION_CHUNK):
    """The largest divisor of `count` that is at most `most` (ONNX Runtime's strided
    calibration needs one)."""
    return max(size for size in range(1, min(count, most) + 1) if count % size == 0)


class _CalibrationReader:
    """ONNX Runtime's `CalibrationDataReader` protocol, one image at a time, with the
    `__len__` and `set_range` that its strided calibration reads."""

    def __init__(self, images):
        self._images = images
        self.set_range(0, len(images))

    def __len__(self):
        return len(self._images)

    def set_range(self, start_index, end_index):
        self._next, self._end = start_index, min(end_index, len(self._images))

    def get_next(self):
        if self._next >= self._end:
            return None
        self._next += 1
        return {INPUT_NAME: self._images[self._next - 1][None]}

    def __iter__(self):
        return iter(self.get_next, None)


def _modules(quantization=False):
    try:
        import onnx as onnx_lib
        import onnxruntime
        import tf2onnx  # noqa: F401  (what Keras' exporter converts with)

        modules = [onnx_lib, onnxruntime]
        if quantization:
            from onnxruntime import quantization as ort_quantization
            from onnxruntime.quantization import shape_inference  # noqa: F401

            modules.append(ort_quantization)
    except ImportError as error:
        raise ImportError(
            f"The ONNX export needs onnx, onnxruntime and tf2onnx ({error}): pip install "
            "'keras-attn[onnx]'."
        ) from None
    return modules

