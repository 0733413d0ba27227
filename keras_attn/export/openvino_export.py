"""OpenVINO IR export (`.xml` + `.bin`) through Keras' own exporter, verified in OpenVINO's CPU
runtime in float32."""

import os
import tempfile

import numpy as np

from keras_attn.export import files, serving
from keras_attn.export.verify import compare, verification_images, verified_report
from keras_attn.layers.grouped_conv import grouped_conv_implementation

# Default limits of the verification: (max abs error of a probability, min top-1 agreement).
LIMITS = (1e-4, None)

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
FLOAT32 = "f32"
PRECISION_HINT = "INFERENCE_PRECISION_HINT"


def openvino(model, path, *, weights="imagenet", model_name=None, verify_images=None,
             max_abs_error="default", min_top1_agreement="default", overwrite=False):
    """Exports a classifier as OpenVINO IR (`path` `.xml` and its `.bin`), verified first.

    The model has the contract of the SavedModel's `serving_default`: input `images`, float32
    RGB pixels in [0, 255] of shape `(batch, size, size, 3)` with any batch (the model's
    mean/std normalisation is inside), output `probabilities`, `(batch, classes)`; weights
    are stored in float32. It is converted by Keras' own exporter
    (`model.export(format="openvino")`, OpenVINO's converter of the TensorFlow graph), each
    grouped convolution as one `GroupConvolution`. Both files are written in a scratch
    folder, compiled for OpenVINO's CPU plugin in float32 (`INFERENCE_PRECISION_HINT` "f32"),
    run and compared with the Keras model, and only then copied beside `path` and renamed:
    the `.bin` first, the `.xml` (the file OpenVINO opens) last, so that an export that fails
    or is interrupted leaves no model there.

    Precision: OpenVINO's CPU plugin computes in bfloat16 by default on CPUs that have it
    (AVX512_BF16 or AMX), which changes the outputs by about 1e-3. The report says which
    precision this machine's OpenVINO chooses by default and, where that is not float32, how
    far its outputs are from the Keras model's. Compile with
    `{"INFERENCE_PRECISION_HINT": "f32"}` (as `run_openvino` does by default) for float32.

    Args:
        model: a Keras classifier with a fixed square RGB input.
        path: the `.xml` file to write; the `.bin` goes beside it with the same name.
        weights: the published tag whose mean/std the graph applies.
        model_name: the network's registry name, for a renamed or wrapped network (default
            `model.name`); see `serving.serving_config`.
        verify_images: float32 pixels `(batch, size, size, 3)` to verify on; default: 4
            random images.
        max_abs_error: the float32 verification's limit on the largest probability
            difference; "default" takes `LIMITS`, None removes the limit.
        min_top1_agreement: its limit on the share of images whose top-1 class agrees;
            "default" takes `LIMITS`, None removes the limit.
        overwrite: replace existing `.xml` and `.bin` files (with the verified export only).

    Returns:
        An `ExportReport` whose `notes` say OpenVINO's default precision on this CPU.

    Raises:
        FileExistsError: the `.xml` or the `.bin` exists and `overwrite` is False.
        ExportVerificationError: the model differs from the Keras model beyond the limits.
        ImportError: openvino is missing (`pip install keras-attn[openvino]`).

    Examples:
        ```python
        keras_attn.export.openvino(model, "resnest50d.xml")  # resnest50d.xml, resnest50d.bin
        ```
    """
    config = serving.serving_config(model, weights, model_name=model_name)
    path = os.fspath(path)
    if not path.endswith(".xml"):
        raise ValueError(
            f"`path` must name the OpenVINO IR's .xml file (its .bin goes beside it); "
            f"received path={path!r}."
        )
    weights_path = weights_file(path)
    files.check_target(path, overwrite)
    files.check_target(weights_path, overwrite, name="its weights file")
    _openvino()
    max_abs_error = LIMITS[0] if max_abs_error == "default" else max_abs_error
    min_top1_agreement = LIMITS[1] if min_top1_agreement == "default" else min_top1_agreement
    images = verification_images(config, verify_images)

    with tempfile.TemporaryDirectory(prefix="keras_attn_openvino_") as scratch:
        written = os.path.join(scratch, "model.xml")
        convert(model, config, written)
        report = verified_report(
            model, config, images, run_openvino(written, images),
            (max_abs_error, min_top1_agreement), path=path, format="openvino",
            quantization=None,
            size_bytes=os.path.getsize(written) + os.path.getsize(weights_file(written)),
            notes=(_precision_note(model, config, written, images),),
        )
        files.put_in_place([(weights_file(written), weights_path), (written, path)], overwrite)
    return report


def weights_file(path):
    """The `.bin` OpenVINO reads beside an `.xml`."""
    return path[: -len(".xml")] + ".bin"


def convert(model, config, path):
    """Writes `model` behind the pixels-in, probabilities-out function as OpenVINO IR at
    `path` (`.xml`, and its `.bin`; not verified), with Keras' own exporter."""
    ov = _openvino()
    with tempfile.TemporaryDirectory(prefix="keras_attn_openvino_") as scratch:
        exported = os.path.join(scratch, "keras.xml")
        # As the ONNX export: one grouped convolution op per grouped convolution, never
        # Keras' XLA-compiled fallback.
        with grouped_conv_implementation("native"):
            serving.serving_model(model, config).export(
                exported, format="openvino",
                input_signature=[serving.pixels_signature(config)], verbose=False,
            )
        # Keras names the input after the signature; the output keeps TensorFlow's names.
        # Written to another file: OpenVINO maps the `.bin` it read into memory.
        converted = ov.Core().read_model(exported)
        converted.outputs[0].get_tensor().set_names({OUTPUT_NAME})
        # `serialize` keeps float32 weights (`save_model` would compress them to float16).
        ov.serialize(converted, os.fspath(path))
        del converted


def default_precision():
    """The precision OpenVINO's CPU plugin computes in by default on this machine: "f32", or
    "bf16" on CPUs with bfloat16."""
    ov = _openvino()
    return ov.Core().get_property("CPU", PRECISION_HINT).to_string()


def run_openvino(path, images, precision=FLOAT32):
    """Runs an exported OpenVINO classifier on float32 pixels on the CPU; returns the
    probabilities (numpy).

    Args:
        path: an `.xml` file written by `keras_attn.export.openvino`.
        images: pixels of shape `(batch, size, size, 3)`, RGB in [0, 255].
        precision: the CPU plugin's `INFERENCE_PRECISION_HINT`: "f32" (float32, default),
            "bf16", or None for OpenVINO's own choice (bfloat16 on CPUs that have it).

    Returns:
        The probabilities, a float32 NumPy array `(batch, classes)`.

    Examples:
        ```python
        probabilities = keras_attn.export.run_openvino("resnest50d.xml", pixels)
        ```
    """
    ov = _openvino()
    core = ov.Core()
    model = core.read_model(os.fspath(path))
    images = np.asarray(images, "float32")
    # OpenVINO names a mismatched input by its index only.
    expected = model.input(INPUT_NAME).get_partial_shape()
    if not expected.compatible(ov.PartialShape(list(images.shape))):
        raise ValueError(
            f"`images` must have shape {expected} (batch, height, width, channels) for this "
            f"model; received an array of shape {images.shape}."
        )
    properties = {} if precision is None else {PRECISION_HINT: precision}
    compiled = core.compile_model(model, "CPU", properties)
    return compiled({INPUT_NAME: images})[OUTPUT_NAME]


def _precision_note(model, config, path, images):
    default = default_precision()
    if default == FLOAT32:
        return ("OpenVINO computes in float32 by default on this CPU; on CPUs with bfloat16 "
                "(AVX512_BF16, AMX) its default is bfloat16: compile with "
                '{"INFERENCE_PRECISION_HINT": "f32"} to keep float32.')
    expected = np.asarray(serving.probabilities_fn(model, config)(images))
    error, agreement = compare(expected, run_openvino(path, images, precision=None))
    return (f"OpenVINO's default precision on this CPU is {default}: max abs error "
            f"{error:.2e}, top-1 agreement {agreement:.2%} against Keras on these images "
            '(verified in f32). Compile with {"INFERENCE_PRECISION_HINT": "f32"} for float32, '
            f"or keep {default} for speed.")


def _openvino():
    try:
        import openvino
    except ImportError:
        raise ImportError(
            "The OpenVINO export needs openvino: pip install 'keras-attn[openvino]'."
        ) from None
    return openvino
