"""What every export checks before it is put in place: the reloaded artifact against Keras."""

import dataclasses
import os

import numpy as np

from keras_attn.export import serving


class ExportVerificationError(ValueError):
    """The reloaded export differs from the Keras model by more than the limits allow.

    A `ValueError`, raised before the export lands: no file is left at the path asked for.
    Its message says what differs, by how much, against which limit.

    Examples:
        ```python
        try:
            keras_attn.export.tflite(model, "model.tflite", quantization="int8",
                                     representative_data=calibration_images)
        except keras_attn.export.ExportVerificationError as error:
            print(error)   # the largest difference and top-1 agreement, and the limits
        ```
    """


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """How a reloaded export compares with the Keras model on the verification batch.

    Attributes:
        path: the export (a SavedModel version folder, a `.tflite`, `.onnx` or OpenVINO
            `.xml` file).
        format: "saved_model", "tflite", "onnx" or "openvino".
        quantization: None (float32), "float16", "dynamic" or "int8".
        max_abs_error: largest difference of any class probability.
        top1_agreement: fraction of images with the same top-1 class.
        size_bytes: size on disk (an OpenVINO IR's `.xml` and `.bin` together).
        images: size of the verification batch.
        notes: what a user of the runtime should know (OpenVINO: its default precision).

    Examples:
        ```python
        report = keras_attn.export.onnx(model, "model.onnx")
        print(report.max_abs_error, report.top1_agreement, report.size_bytes)
        ```
    """

    path: str
    format: str
    quantization: str | None
    max_abs_error: float
    top1_agreement: float
    size_bytes: int
    images: int
    notes: tuple = ()

    def __str__(self):
        kind = self.format + (f" ({self.quantization})" if self.quantization else "")
        return "\n".join((
            f"{kind} {self.path}: max abs error {self.max_abs_error:.2e}, top-1 agreement "
            f"{self.top1_agreement:.2%} on {self.images} images, "
            f"{self.size_bytes / 2**20:.2f} MiB",
            *self.notes,
        ))


def compare(expected, actual):
    """`(max abs error, top-1 agreement)` of two `(batch, classes)` probability arrays."""
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    if expected.shape != actual.shape:
        raise ExportVerificationError(
            f"The export returns shape {actual.shape}; the Keras model {expected.shape}."
        )
    error = float(np.max(np.abs(expected - actual))) if expected.size else 0.0
    agreement = float(np.mean(np.argmax(expected, -1) == np.argmax(actual, -1)))
    return error, agreement


def check_limits(report, max_abs_error=None, min_top1_agreement=None):
    """Raises `ExportVerificationError` when `report` exceeds a limit (None: no limit)."""
    problems = []
    if max_abs_error is not None and not report.max_abs_error <= max_abs_error:
        problems.append(f"max abs error {report.max_abs_error:.3g} > {max_abs_error:.3g}")
    if min_top1_agreement is not None and report.top1_agreement < min_top1_agreement:
        problems.append(f"top-1 agreement {report.top1_agreement:.2%} < "
                        f"{min_top1_agreement:.2%}")
    if problems:
        raise ExportVerificationError(
            f"The {report.format} export differs from the Keras model: "
            + "; ".join(problems) + f" ({report.images} images). Nothing was written."
        )


def verified_report(model, config, images, outputs, limits, **report):
    """Compares an export's `outputs` on `images` with the Keras model and returns the
    `ExportReport` (`report`: its path, format, quantization and size_bytes); raises
    `ExportVerificationError` beyond `limits` (max abs error, min top-1 agreement)."""
    expected = np.asarray(serving.probabilities_fn(model, config)(images))
    error, agreement = compare(expected, outputs)
    result = ExportReport(max_abs_error=error, top1_agreement=agreement, images=len(images),
                          **report)
    check_limits(result, *limits)
    return result


def size_on_disk(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def verification_images(config, images=None, count=4, seed=0):
    """The float32 pixel batch exports are checked on: `images`, or random pixels."""
    if images is None:
        rng = np.random.default_rng(seed)
        return rng.uniform(0, 255, (count, config.size, config.size, 3)).astype("float32")
    images = np.asarray(images, "float32")
    expected = (config.size, config.size, 3)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ValueError(
            f"`verify_images` must have shape (batch, {config.size}, {config.size}, 3); "
            f"received {images.shape}."
        )
    return images
