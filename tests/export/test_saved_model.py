"""SavedModel export: TF Serving's layout, both signatures, atomic versions, verified."""

import os
import re
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_attn import data, export
from keras_attn.applications import get_model, imagenet_utils
from keras_attn.export import saved_model_export, serving
from keras_attn.layers import grouped_conv, grouped_conv_implementation
from tests.export.conftest import SAVED_MODEL_FAMILIES, small_model
from tests.processes import wait_for_line

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _encoded(image, format):
    encode = tf.io.encode_jpeg if format == "JPEG" else tf.io.encode_png
    return encode(image).numpy()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """`exports(family)`: the family's model, base folder, labels and report, exported once
    for the module, with labels and `top_k` (of NumPy's int type: NumPy's ints are ints)."""
    done = {}

    def export_once(family):
        if family not in done:
            model = small_model(family)
            base = tmp_path_factory.mktemp(family) / "serving"
            labels = [f"digit {i}" for i in range(10)]
            report = export.saved_model(model, base, labels=labels, top_k=np.int64(3))
            done[family] = model, base, labels, report
        return done[family]

    return export_once


# The network of the tests of the signatures and of the export's other parts: one of the
# families above, whose export they read.
NETWORK = "SE-ResNeXt-AA"


@pytest.fixture(scope="module")
def exported(exports):
    model, base, labels, _ = exports(NETWORK)
    return model, base, labels, tf.saved_model.load(str(base / "1"))


@pytest.mark.parametrize("family", SAVED_MODEL_FAMILIES)
def test_every_layer_kind_reloads_in_a_fresh_process_equal_to_keras(family, exports):
    family_model, base, _, report = exports(family)
    assert report.path == str(base / "1")
    assert sorted(os.listdir(base)) == ["1"]
    # Computed in a subprocess that imports TensorFlow only (tf.saved_model.load).
    assert report.max_abs_error <= 1e-5
    assert report.top1_agreement == 1.0 and report.images == 4
    assert report.size_bytes > 4 * family_model.count_params() * 0.9


@pytest.mark.skipif(grouped_conv.grouped_conv_choice().implementation != "native",
                    reason="TensorFlow's grouped Conv2D trains on CPU only with oneDNN")
def test_native_grouped_convolutions_only_when_asked_and_why(tmp_path):
    # The default export packs them and is verified on the portable kernels (the family test
    # above); a native one runs where oneDNN does, and fails on the portable kernels.
    model = small_model("ResNeXt")
    with grouped_conv_implementation("native"):
        report = export.saved_model(model, tmp_path / "serving")
    assert report.max_abs_error <= 1e-5
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    with pytest.raises(RuntimeError, match="does not support grouped convolutions"):
        saved_model_export._reload_and_run(report.path, images, portable=True)


def test_serving_bytes_gives_keras_top_classes_on_jpeg_and_png(exported):
    model, _, labels, loaded = exported
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
    config = serving.serving_config(model, labels=labels)
    probabilities = serving.probabilities_fn(model, config)
    for format in ("JPEG", "PNG"):
        encoded = _encoded(image, format)
        decoded = tf.io.decode_image(encoded, channels=3)
        crop = data.resize_and_center_crop(decoded, config.size, config.crop_pct,
                                           config.interpolation)
        expected = probabilities(crop[None]).numpy()[0]
        result = loaded.signatures["serving_bytes"](images=tf.constant([encoded, encoded]))
        best = np.argsort(-expected)[:3]
        np.testing.assert_array_equal(result["classes"].numpy(), [best, best])
        assert [label.decode() for label in result["labels"].numpy()[0]] == [
            labels[i] for i in best]
        np.testing.assert_allclose(result["scores"].numpy()[0], expected[best], atol=1e-5)


def test_serving_default_takes_pixels_and_normalises_in_the_graph(exported):
    model, _, _, loaded = exported
    pixels = np.random.default_rng(1).uniform(0, 255, (3, 64, 64, 3)).astype("float32")
    result = loaded.signatures["serving_default"](images=tf.constant(pixels))
    normalised = data.imagenet_utils.preprocess_input(pixels, model=model.name)
    np.testing.assert_allclose(result["probabilities"].numpy(),
                               model.predict(normalised, verbose=0), atol=1e-5)


def test_bad_requests_are_errors_that_name_the_problem(exported):
    _, _, _, loaded = exported
    # What a server runs: the graph, whatever the shape of the request.
    expected = r"Shape of tensor images \[{}\] is not compatible with expected shape \[\?,64,64,3\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected.format("1,64,64,4")):
        loaded.signatures["serving_default"](images=tf.zeros((1, 64, 64, 4)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected.format("64,64,3")):
        loaded.signatures["serving_default"](images=tf.zeros((64, 64, 3)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        loaded.signatures["serving_bytes"](images=tf.constant([b"not an image"]))


def test_saved_model_cli_lists_both_signatures(exported):
    _, base, _, _ = exported
    command = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
               "--dir", str(base / "1"), "--tag_set", "serve"]
    listed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "serving_default" in listed and "serving_bytes" in listed


def test_an_interrupted_export_leaves_no_version_and_the_next_one_follows(exported, tmp_path,
                                                                         monkeypatch):
    model, exported_base = exported[:2]
    base = tmp_path / "serving"
    # A version already there: the module's export, copied (an export of its own would verify
    # in a second fresh process, and only the versions' names matter here).
    shutil.copytree(exported_base / "1", base / "3")

    def write_half_then_fail(model, path, functions):
        os.makedirs(os.path.join(path, "variables"))
        with open(os.path.join(path, "saved_model.pb"), "wb") as file:
            file.write(b"half")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(serving, "write_saved_model", write_half_then_fail)
        with pytest.raises(KeyboardInterrupt):
            export.saved_model(model, base)
    assert sorted(os.listdir(base)) == ["3"]
    assert export.saved_model(model, base).path == str(base / "4")
    # NumPy's ints are versions too: refused for the version that exists, not for its type.
    with pytest.raises(FileExistsError, match="Version 3 exists already"):
        export.saved_model(model, base, version=np.int64(3))
    assert sorted(os.listdir(base)) == ["3", "4"]


# Exports a small network as a SavedModel and stops, printing where, at one point of the
# export: "writing" while TensorFlow writes the folder (its variables are on disk, its
# saved_model.pb not yet), or "verifying" while the written folder is reloaded. The test kills
# it there with SIGKILL: no `finally` runs.
EXPORT_THAT_STOPS = """
import sys
import threading
from tensorflow.python.lib.io import file_io
from keras_attn import export
from keras_attn.applications import get_model
from keras_attn.export import saved_model_export
base, point = sys.argv[1:]
def stop(*args, **kwargs):
    print(point, flush=True)
    threading.Event().wait()
if point == "writing":
    write = file_io.atomic_write_string_to_file
    def write_or_stop(path, *args, **kwargs):
        if str(path).endswith("saved_model.pb"):
            stop()
        return write(path, *args, **kwargs)
    file_io.atomic_write_string_to_file = write_or_stop
else:
    saved_model_export._reload_and_run = stop
export.saved_model(get_model("seresnet20_cifar", classes=10), base)
"""


def test_exports_killed_outright_leave_no_version_and_the_next_one_succeeds(tmp_path):
    # Both points at once, into the same folder: two processes, each killed where it stopped,
    # and one export after both.
    base = tmp_path / "serving"
    environment = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    processes = {}
    try:
        for point in ("writing", "verifying"):
            with open(tmp_path / f"{point}.stderr", "wb") as stderr:
                processes[point] = subprocess.Popen(
                    [sys.executable, "-c", EXPORT_THAT_STOPS, str(base), point],
                    env=environment, stdout=subprocess.PIPE, stderr=stderr, bufsize=0)
        for point, process in processes.items():
            wait_for_line(process, point)
        staged = {folder: sorted(os.listdir(base / folder)) for folder in os.listdir(base)}
        for process in processes.values():
            process.kill()
            process.wait()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
    assert [process.returncode for process in processes.values()] == [-signal.SIGKILL] * 2
    # Killed half-way: the variables written, the graph not (the one stopped writing), or the
    # whole folder not yet verified (the other); under a hidden name either way.
    assert len(staged) == 2 and all(name.startswith(".incomplete-1-") for name in staged)
    assert sorted(("saved_model.pb" in contents, "variables" in contents)
                  for contents in staged.values()) == [(False, True), (True, True)]
    # TF Serving serves the folders named by an integer (its versions): there is none, and
    # the next export takes version 1 and lands whole.
    assert not [name for name in os.listdir(base) if name.isdigit()]
    assert saved_model_export.next_version(base) == 1
    model = get_model("seresnet20_cifar", classes=10)
    report = export.saved_model(model, base)
    assert report.path == str(base / "1") and report.max_abs_error <= 1e-5
    assert sorted(name for name in os.listdir(base) if not name.startswith(".")) == ["1"]
    serve = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    config = serving.serving_config(model)
    np.testing.assert_allclose(serve(images=tf.constant(images))["probabilities"].numpy(),
                               serving.probabilities_fn(model, config)(images), atol=1e-5)


def test_a_failed_verification_writes_nothing(exported, tmp_path, monkeypatch):
    model = exported[0]
    monkeypatch.setattr(saved_model_export, "_reload_and_run",
                        lambda path, images, portable: np.zeros((len(images), 10), "float32"))

    def write_stand_in(model, path, functions):  # what is written does not matter here
        os.makedirs(os.path.join(path, "variables"))
        with open(os.path.join(path, "saved_model.pb"), "wb") as file:
            file.write(b"a SavedModel")

    monkeypatch.setattr(serving, "write_saved_model", write_stand_in)
    with pytest.raises(export.ExportVerificationError, match="max abs error .* > 1e-05"):
        export.saved_model(model, tmp_path / "serving" / "model")
    assert os.listdir(tmp_path) == []  # the folders it made are gone too
    (tmp_path / "kept").mkdir()
    with pytest.raises(export.ExportVerificationError):
        export.saved_model(model, tmp_path / "kept")
    assert os.listdir(tmp_path) == ["kept"]  # an existing base folder stays


@pytest.mark.parametrize(
    "head, softmax",
    [(lambda x: keras.layers.Dense(4)(x), True),
     (lambda x: keras.layers.Dense(4, activation="sigmoid")(x), False),
     (lambda x: keras.layers.Softmax()(keras.layers.Dense(4)(x)), False),
     (lambda x: keras.layers.Activation("linear")(keras.layers.Dense(4)(x)), True),
     (lambda x: keras.Sequential([keras.layers.Dense(4, activation="softmax")])(x), False)],
    ids=["logits", "sigmoid", "softmax_layer", "linear_activation", "nested_softmax"],
)
def test_serving_applies_softmax_to_logits_only(head, softmax):
    # A multi-label (sigmoid) head, or one ending in its own Softmax, is served as it computes:
    # a second softmax would change every probability, on both sides of the verification.
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, head(keras.layers.GlobalAveragePooling2D()(inputs)))
    config = serving.serving_config(model)
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    outputs = model.predict(imagenet_utils.preprocess_input(images), verbose=0)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(outputs)) if softmax else outputs
    served = np.asarray(serving.probabilities_fn(model, config)(images))
    np.testing.assert_allclose(served, expected, atol=1e-6)


def test_a_tag_needs_a_network_it_can_name(exported):
    # Renamed (or wrapped under another name), a network's tag cannot be looked up: an error,
    # not ImageNet's defaults in its place.
    model = exported[0]
    renamed = keras.Model(model.inputs, model.outputs, name="my_classifier")
    with pytest.raises(ValueError, match=r"`weights`='a1_in1k' names a published tag, but "
                                         r"'my_classifier' is not a registry name"):
        serving.serving_config(renamed, weights="a1_in1k")
    assert serving.serving_config(renamed).crop_pct == 0.875  # no tag: the defaults
    # model_name= says which network it is.
    ours = serving.serving_config(renamed, weights="a1_in1k", model_name="resnet50")
    assert (ours.crop_pct, ours.interpolation) == (0.95, "bicubic")  # a1_in1k's, not defaults
    assert serving.serving_config(renamed, model_name=model.name) == serving.serving_config(model)
    with pytest.raises(ValueError, match="Unknown model name 'resnet51'"):
        serving.serving_config(renamed, model_name="resnet51")


@pytest.mark.parametrize("argument, message", [
    ({"version": 0}, "`version` must be a positive integer"),
    ({"top_k": 0}, "`top_k` must be a positive integer"),
    ({"labels": ["a", "b"]}, "`labels` must name each of the model's 10 classes"),
    ({"verify_images": np.zeros((2, 32, 32, 3))}, r"`verify_images` must have shape"),
])
def test_bad_arguments_are_named(exported, tmp_path, argument, message):
    with pytest.raises(ValueError, match=message):
        export.saved_model(exported[0], tmp_path / "serving", **argument)
    assert not os.path.exists(tmp_path / "serving") or os.listdir(tmp_path / "serving") == []


def test_a_base_dir_that_is_or_lies_under_a_file_is_refused_first(exported, tmp_path):
    blocker = tmp_path / "serving"
    blocker.write_text("not a folder")
    for base_dir in (blocker, blocker / "resnet"):
        with pytest.raises(ValueError, match=re.escape(
                f"`base_dir`={str(base_dir)!r} cannot be a folder: {str(blocker)!r} is a file.")):
            export.saved_model(exported[0], base_dir)
    assert blocker.read_text() == "not a folder" and os.listdir(tmp_path) == ["serving"]


def test_a_model_without_a_classifier_or_fixed_size_is_refused(tmp_path):
    from keras_attn.applications import get_model

    narrow = {"input_shape": (64, 64, 3), "widths": (8, 8, 8, 8), "depths": (1, 1, 1, 1)}
    features = get_model("seresnet18", include_top=False, **narrow)
    with pytest.raises(ValueError, match="Export needs a classifier"):
        export.saved_model(features, tmp_path)
    # A pooled feature vector is (batch, channels) too, but no classifier's output.
    pooled = get_model("seresnet18", include_top=False, pooling="avg", **narrow)
    with pytest.raises(ValueError, match="Export needs a classifier: 'seresnet18' ends in a "
                                         "GlobalAveragePooling2D"):
        export.saved_model(pooled, tmp_path)
    assert os.listdir(tmp_path) == []
    inputs = keras.Input((None, None, 3))
    any_size = keras.Model(inputs, keras.layers.Dense(10)(
        keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(ValueError, match="fixed square RGB input"):
        export.saved_model(any_size, tmp_path)
