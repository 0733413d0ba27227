"""SavedModel export in TF Serving's layout: `base_dir/<version>/`, put in place only when whole."""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import numpy as np

from keras_attn.export import serving
from keras_attn.export.verify import size_on_disk, verification_images, verified_report
from keras_attn.layers import checks, grouped_conv

# Run in a fresh interpreter that imports TensorFlow only: what TF Serving has.
_RELOAD = """
import sys
import numpy as np
import tensorflow as tf
path, inputs, outputs = sys.argv[1:]
serve = tf.saved_model.load(path).signatures["serving_default"]
np.save(outputs, serve(images=tf.constant(np.load(inputs)))["probabilities"].numpy())
"""


def saved_model(model, base_dir, version=None, *, weights="imagenet", model_name=None,
                labels=None, top_k=5, verify_images=None, max_abs_error=1e-5,
                min_top1_agreement=None):
    """Exports a classifier for TF Serving as `base_dir/<version>/`, verified before it lands.

    The SavedModel is written to a hidden folder beside the versions (a name TF Serving
    ignores), reloaded in a fresh Python process with `tf.saved_model.load`, compared with the
    Keras model, and only then renamed to `<version>`: a server never sees a half-written
    version, and a failed or interrupted export leaves nothing. An existing version is never
    overwritten.

    Grouped convolutions are written packed (`GroupedConv2D`'s `"split"`: dense convolutions),
    which every TensorFlow runs: TensorFlow's own grouped `Conv2D` runs only with its oneDNN
    kernels or on a GPU, and a TF Serving without them fails on it ("Fused conv implementation
    does not support grouped convolutions"). The reload that verifies the export therefore
    runs on TensorFlow's portable CPU kernels (`TF_ENABLE_ONEDNN_OPTS=0`). Inside a
    `grouped_conv_implementation("native")` block the grouped `Conv2D` is written instead, for
    servers known to have oneDNN or a GPU, and verified with this process's kernels.

    Signatures:
        serving_default: `images`, float32 `(batch, size, size, 3)` RGB pixels in [0, 255]
            -> `probabilities` `(batch, classes)`. The model's mean/std normalisation is in
            the graph.
        serving_bytes: `images`, a `(batch,)` string tensor of encoded JPEG/PNG/GIF/BMP files
            -> `classes` (int32), `labels` (string), `scores` (float32), each
            `(batch, top_k)`. Decoding, timm's resize and center crop are in the graph.

    Args:
        model: a Keras classifier with a fixed square RGB input.
        base_dir: the model's folder in TF Serving's model base path.
        version: a positive integer; default: one more than the highest version present (1
            for an empty folder).
        weights: the published tag whose preprocessing (mean/std, crop, interpolation) the
            graph applies; networks without published weights use ImageNet's.
        model_name: the network's registry name, for a renamed or wrapped network (default
            `model.name`); see `serving.serving_config`.
        labels: class names for `serving_bytes`; default ImageNet's (1000 classes) or "0"...
        top_k: classes returned per image by `serving_bytes`.
        verify_images: float32 pixels `(batch, size, size, 3)` to verify on; default: 4
            random images.
        max_abs_error: largest allowed difference of a probability.
        min_top1_agreement: smallest allowed fraction of equal top-1 classes (None: no limit).

    Returns:
        An `ExportReport` (path, max abs error, top-1 agreement, size).

    Raises:
        FileExistsError: `version` exists already.
        ValueError: `base_dir` (or a parent) is a file.
        ExportVerificationError: the reloaded SavedModel differs by more than the limits.

    Examples:
        ```python
        model = keras_attn.applications.ResNeSt50()
        print(keras_attn.export.saved_model(model, "serving/resnest50"))  # serving/resnest50/1
        ```
    """
    config = serving.serving_config(model, weights, labels, model_name)
    top_k = _check_top_k(top_k)
    base_dir = os.fspath(base_dir)
    check_base_dir(base_dir)
    version = next_version(base_dir) if version is None else _check_version(version)
    final = os.path.join(base_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(
            f"Version {version} exists already in {base_dir!r}; exports never overwrite one. "
            "Pass another `version`, or none for the next one."
        )
    images = verification_images(config, verify_images)
    created = _missing_folders(base_dir)
    os.makedirs(base_dir, exist_ok=True)
    staging = os.path.join(base_dir, f".incomplete-{version}-{uuid.uuid4().hex[:8]}")
    chosen = grouped_conv.implementation_override()
    exported = False
    try:
        with grouped_conv.grouped_conv_implementation(chosen or "split"):
            inference = serving.inference_model(model)
            serving.write_saved_model(inference, staging,
                                      serving.endpoints(inference, config, top_k))
        report = verified_report(
            model, config, images, _reload_and_run(staging, images, portable=chosen is None),
            (max_abs_error, min_top1_agreement), path=final, format="saved_model",
            quantization=None, size_bytes=size_on_disk(staging),
        )
        os.rename(staging, final)  # fails rather than replace a version made meanwhile
        exported = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not exported:
            _remove_if_empty(created)
    return report


def check_base_dir(base_dir, name="`base_dir`"):
    """Raises a `ValueError` naming `name` unless `base_dir` is a folder or can be made one
    (neither it nor a parent is a file), before any export work is done."""
    missing = _missing_folders(base_dir)
    existing = os.path.dirname(missing[-1]) if missing else os.path.abspath(base_dir)
    if not os.path.isdir(existing):
        raise ValueError(f"{name}={base_dir!r} cannot be a folder: {existing!r} is a file.")


def _missing_folders(path):
    """`path` and those of its parents that do not exist yet, deepest first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def _remove_if_empty(folders):
    """Removes `folders` (deepest first) as long as each is empty: what a failed export made."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:  # not empty (something else wrote there meanwhile), or gone
            return


def _check_top_k(top_k):
    if not checks.is_integer(top_k) or top_k < 1:
        raise ValueError(f"`top_k` must be a positive integer; received top_k={top_k!r}.")
    return int(top_k)


def next_version(base_dir):
    """One more than the highest integer-named folder in `base_dir` (1 when there is none)."""
    if not os.path.isdir(base_dir):
        return 1
    versions = [int(name) for name in os.listdir(base_dir)
                if name.isdigit() and os.path.isdir(os.path.join(base_dir, name))]
    return max(versions, default=0) + 1


def _check_version(version):
    if not checks.is_integer(version) or version < 1:
        raise ValueError(
            f"`version` must be a positive integer (TF Serving's version folders); received "
            f"version={version!r}."
        )
    return int(version)


def _reload_and_run(path, images, portable=True):
    with tempfile.TemporaryDirectory() as scratch:
        inputs = os.path.join(scratch, "inputs.npy")
        outputs = os.path.join(scratch, "outputs.npy")
        np.save(inputs, images)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        if portable:  # the kernels every TensorFlow has, whatever the server's CPU
            env["TF_ENABLE_ONEDNN_OPTS"] = "0"
        result = subprocess.run([sys.executable, "-c", _RELOAD, path, inputs, outputs],
                                capture_output=True, text=True, env=env)
        if result.returncode:
            raise RuntimeError(
                f"The SavedModel in {path!r} did not reload in a fresh process:\n"
                f"{result.stderr[-3000:]}"
            )
        return np.load(outputs)
