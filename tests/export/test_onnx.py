"""ONNX export: Keras' own exporter behind the serving contract, verified in ONNX Runtime, put
in place whole or not at all, float32 and static int8."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import onnx as onnx_lib
import pytest
import tensorflow as tf
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

from keras_attn import export
from keras_attn.export import files, onnx_export, serving
from keras_attn.layers import GroupedConv2D, grouped_conv, grouped_conv_implementation
from tests.export.conftest import (RUNTIME_EXPORT_FAMILIES, exported_once,
                                   grouped_convolutions, small_model)


def _pixels(count, seed, size=64):
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


def _graph_groups(path):
    """The `group` of every ONNX `Conv` with more than one group, sorted."""
    groups = []
    for node in onnx_lib.load(os.fspath(path)).graph.node:
        if node.op_type == "Conv":
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            if group > 1:
                groups.append(group)
    return sorted(groups)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`exported(family)`: the family's model, file and report, exported once for the module."""
    return exported_once(tmp_path_factory, export.onnx, "model.onnx")


def _copy_of(path):
    """A stand-in for `onnx_export.convert` that writes a copy of a file converted before: for
    the tests of what happens after the conversion."""
    copy = shutil.copyfile  # as it is now: tests below replace it where the export copies
    return lambda model, config, target: copy(path, target)


@pytest.mark.parametrize("family", RUNTIME_EXPORT_FAMILIES)
def test_every_family_matches_keras_with_one_conv_per_grouped_convolution(family, exported):
    model, path, report = exported(family)
    tmp_path = path.parent
    assert report.max_abs_error <= 1e-4 and report.top1_agreement == 1.0
    assert (report.format, report.quantization, report.path) == ("onnx", None, str(path))
    assert os.listdir(tmp_path) == ["model.onnx"]
    assert report.size_bytes == os.path.getsize(path)
    # Each grouped convolution is one Conv with its `group`, not many dense ones.
    assert _graph_groups(path) == grouped_convolutions(model)
    graph = onnx_lib.load(str(path)).graph
    assert [i.name for i in graph.input] == ["images"]
    assert [o.name for o in graph.output] == ["probabilities"]
    # Any batch: one image and three.
    config = serving.serving_config(model)
    for images in (_pixels(1, seed=2, size=config.size), _pixels(3, seed=3, size=config.size)):
        expected = serving.probabilities_fn(model, config)(images)
        np.testing.assert_allclose(export.run_onnx(path, images), expected, atol=1e-4, rtol=0)


def test_grouped_convolutions_convert_where_tensorflow_has_no_grouped_kernel(tmp_path,
                                                                            monkeypatch):
    # Without oneDNN (TensorFlow's default on CPUs without AVX-512 VNNI, as this project's) the
    # network runs its grouped convolutions packed, and Keras' own grouped convolution is an XLA
    # function, which tf2onnx cannot convert (tensorflow-onnx#2099): the export traces
    # TensorFlow's grouped Conv2D op anyway.
    monkeypatch.setattr(grouped_conv, "_tensorflow_grouped_conv_trains",
                        lambda dtype: (False, "CPU", "no grouped gradient"))
    assert grouped_conv.grouped_conv_choice().implementation == "split"
    model = small_model("SE-ResNeXt")
    report = export.onnx(model, tmp_path / "model.onnx")
    assert report.max_abs_error <= 1e-4
    assert _graph_groups(tmp_path / "model.onnx") == grouped_convolutions(model) == [32] * 4

    layer = GroupedConv2D(32, 3, groups=8)
    layer.build((None, 9, 9, 32))

    def traced_ops():
        function = tf.function(layer).get_concrete_function(
            tf.TensorSpec([None, 9, 9, 32], tf.float32))
        return {op.type for op in function.graph.get_operations()}

    with grouped_conv_implementation("native"):
        ops = traced_ops()
    assert "Conv2D" in ops and "StatefulPartitionedCall" not in ops  # not Keras' XLA function


def test_bad_input_gets_onnx_runtimes_error_naming_the_input(exported):
    runner = onnx_export.session(exported("SE-ResNeXt")[1])
    images = _pixels(2, seed=4)
    with pytest.raises(InvalidArgument, match="Invalid rank for input: images Got: 3 Expected: 4"):
        runner.run(None, {"images": images[0]})
    with pytest.raises(InvalidArgument, match=r"invalid dimensions for input: images .*\n"
                                              r" index: 3 Got: 4 Expected: 3"):
        runner.run(None, {"images": np.concatenate([images, images[..., :1]], -1)})
    # The session is still usable after refusing them.
    assert runner.run(None, {"images": images})[0].shape == (2, 10)


def test_an_existing_file_is_replaced_only_when_asked(exported, tmp_path, monkeypatch):
    model, converted_once, _ = exported("SE-ResNeXt")
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous")
    converted = []
    monkeypatch.setattr(onnx_export, "convert", lambda *args: converted.append(args))
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True to replace it"):
        export.onnx(model, path)
    assert not converted  # refused before any work
    monkeypatch.setattr(onnx_export, "convert", _copy_of(converted_once))
    report = export.onnx(model, path, overwrite=True)
    assert os.listdir(tmp_path) == ["model.onnx"] and report.max_abs_error <= 1e-4
    assert export.run_onnx(path, _pixels(1, seed=5)).shape == (1, 10)

    # A file that appears while the export runs is not replaced either.
    other = tmp_path / "other.onnx"
    verified_report = onnx_export.verified_report

    def appears_meanwhile(*args, **kwargs):
        other.write_bytes(b"made meanwhile")
        return verified_report(*args, **kwargs)

    monkeypatch.setattr(onnx_export, "verified_report", appears_meanwhile)
    with pytest.raises(FileExistsError, match="appeared while the export ran"):
        export.onnx(model, other)
    assert other.read_bytes() == b"made meanwhile"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", "other.onnx"]


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, OSError])
def test_an_export_interrupted_while_writing_leaves_nothing(interruption, exported, tmp_path,
                                                            scratch, monkeypatch):
    model, converted_once, _ = exported("SE-ResNeXt")
    monkeypatch.setattr(onnx_export, "convert", _copy_of(converted_once))
    path = tmp_path / "out" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(b"previous")

    def half_copy_then_fail(source, target):
        with open(source, "rb") as read, open(target, "wb") as write:
            write.write(read.read()[: os.path.getsize(source) // 2])
        raise interruption("interrupted mid-write")

    monkeypatch.setattr(files.shutil, "copyfile", half_copy_then_fail)
    with pytest.raises(interruption, match="interrupted mid-write"):
        export.onnx(model, path, overwrite=True)
    assert os.listdir(path.parent) == ["model.onnx"] and path.read_bytes() == b"previous"
    assert os.listdir(scratch) == []


def test_a_failed_verification_writes_nothing(exported, tmp_path, scratch, monkeypatch):
    model, converted_once, _ = exported("SE-ResNeXt")
    monkeypatch.setattr(onnx_export, "convert", _copy_of(converted_once))
    monkeypatch.setattr(onnx_export, "run_onnx",
                        lambda path, images: np.zeros((len(images), 10), "float32"))
    with pytest.raises(export.ExportVerificationError, match=r"max abs error .* > 0\.0001"):
        export.onnx(model, tmp_path / "model.onnx")
    assert os.listdir(tmp_path) == ["system_tmp"] and os.listdir(scratch) == []


@pytest.mark.slow  # a fresh process that imports TensorFlow: over 20 s
def test_a_killed_export_leaves_nothing_beside_its_target(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    system_tmp = tmp_path / "system_tmp"
    system_tmp.mkdir()
    command = [sys.executable, "-m", "keras_attn.cli", "export", "--model", "seresnet20_cifar",
               "--weights", "none", "--classes", "10", "--format", "onnx",
               "--output", str(output / "model.onnx")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "TMPDIR": str(system_tmp)})
    try:
        # Killed once the converted file exists in the scratch folder, before it is verified.
        deadline = time.monotonic() + 240
        while not list(system_tmp.glob("keras_attn_onnx_*/model.onnx")):
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the export never wrote its scratch file"
            time.sleep(0.05)
        assert process.poll() is None
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    assert os.listdir(output) == []
    shutil.rmtree(system_tmp)


def test_int8_is_static_qdq_with_per_channel_weights_and_verified(tmp_path):
    model = small_model("SE-ResNeXt")
    path = tmp_path / "int8.onnx"
    calibration = _pixels(8, seed=1)
    report = export.onnx(model, path, quantization="int8", representative_data=calibration,
                         verify_images=calibration)
    assert report.quantization == "int8" and report.images == 8
    assert report.max_abs_error <= onnx_export.LIMITS["int8"][0]
    assert os.listdir(tmp_path) == ["int8.onnx"]
    graph = onnx_lib.load(str(path)).graph
    # Every kernel element is stored as one int8; only biases and scales stay float32.
    elements = {}
    for tensor in graph.initializer:
        elements[tensor.data_type] = elements.get(tensor.data_type, 0) + int(np.prod(tensor.dims))
    kernels = sum(int(np.prod(w.shape)) for w in model.weights if w.path.endswith("kernel"))
    assert elements[onnx_lib.TensorProto.INT8] >= kernels
    assert elements[onnx_lib.TensorProto.FLOAT] < 0.05 * kernels
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == [
        ("images", onnx_lib.TensorProto.FLOAT)]
    assert [(o.name, o.type.tensor_type.elem_type) for o in graph.output] == [
        ("probabilities", onnx_lib.TensorProto.FLOAT)]
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    largest = []
    for conv in convs:
        # The kernel: an int8 initializer dequantized per output channel (axis 0).
        dequantize = producers[conv.input[1]]
        kernel = initializers[dequantize.input[0]]
        axis = next(a.i for a in dequantize.attribute if a.name == "axis")
        assert dequantize.op_type == "DequantizeLinear"
        assert kernel.data_type == onnx_lib.TensorProto.INT8
        assert axis == 0 and list(initializers[dequantize.input[1]].dims) == [kernel.dims[0]]
        # reduce_range (the default): 7-bit weights, in [-64, 64].
        largest.append(np.abs(onnx_lib.numpy_helper.to_array(kernel).astype(int)).max())
        # The input: uint8 activations, as ONNX Runtime advises for x86 CPUs.
        activation = producers[conv.input[0]]
        assert activation.op_type == "DequantizeLinear"
        assert (initializers[activation.input[2]].data_type == onnx_lib.TensorProto.UINT8)
    assert max(largest) == 64
    assert _graph_groups(path) == grouped_convolutions(model)
    np.testing.assert_allclose(export.run_onnx(path, calibration[:3]),
                               serving.probabilities_fn(model, serving.serving_config(model))(
                                   calibration[:3]), atol=onnx_export.LIMITS["int8"][0])


def test_int8_keeps_the_nodes_asked_for_in_float(exported, tmp_path, monkeypatch):
    model, converted_once, _ = exported("SE-ResNeXt")
    monkeypatch.setattr(onnx_export, "convert", _copy_of(converted_once))
    path = tmp_path / "int8.onnx"
    export.onnx(model, path, quantization="int8", representative_data=_pixels(4, seed=1),
                keep_float=["Sigmoid", "*stage1_block1_se*"])
    graph = onnx_lib.load(str(path)).graph
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    sigmoids = [node for node in graph.node if node.op_type == "Sigmoid"]
    assert len(sigmoids) == 4
    for node in sigmoids:  # their outputs stay float: no QuantizeLinear reads them
        assert "QuantizeLinear" not in consumers[node.output[0]]
    producers = {output: node for node in graph.node for output in node.output}
    initializers = {tensor.name for tensor in graph.initializer}
    (matmul,) = [node for node in graph.node
                 if "stage1_block1_se" in node.name and "fc1" in node.name
                 and node.op_type == "MatMul"]
    assert matmul.input[1] in initializers  # a float weight, not a dequantized one
    assert producers[matmul.input[0]].op_type != "DequantizeLinear"


def test_int8_refuses_bad_arguments_before_writing(exported, tmp_path, scratch, monkeypatch):
    model, converted_once, _ = exported("SE-ResNeXt")
    monkeypatch.setattr(onnx_export, "convert", _copy_of(converted_once))
    path = tmp_path / "int8.onnx"
    with pytest.raises(ValueError, match="quantization='int8' needs `representative_data`"):
        export.onnx(model, path, quantization="int8")
    with pytest.raises(ValueError, match=r"received a batch of shape \(2, 32, 32, 3\)"):
        export.onnx(model, path, quantization="int8",
                    representative_data=np.zeros((2, 32, 32, 3), "float32"))
    with pytest.raises(ValueError, match=r"`representative_data` holds no image"):
        export.onnx(model, path, quantization="int8",
                    representative_data=np.zeros((0, 64, 64, 3), "float32"))
    with pytest.raises(ValueError, match=r"`quantization` must be one of \(None, 'int8'\); "
                                         r"received 'float16'"):
        export.onnx(model, path, quantization="float16")
    with pytest.raises(ValueError, match="`keep_float` applies to quantization='int8' only"):
        export.onnx(model, path, keep_float=["Sigmoid"])
    with pytest.raises(ValueError, match="`keep_float` must be a list"):
        export.onnx(model, path, quantization="int8", representative_data=_pixels(1, seed=1),
                    keep_float="Sigmoid")
    with pytest.raises(ValueError, match=re.escape(
            "`keep_float` entry 'Softplus' matches no operator type and no node name of the "
            "graph; its operator types are ['Add', ")):
        export.onnx(model, path, quantization="int8", representative_data=_pixels(1, seed=1),
                    keep_float=["Softplus"])
    assert os.listdir(tmp_path) == ["system_tmp"] and os.listdir(scratch) == []


def test_int8_default_limit_refuses_a_broken_quantization(tmp_path, monkeypatch):
    model = small_model("SE-ResNeXt")
    config = serving.serving_config(model)

    def off_by(amount):
        def run(path, images):
            expected = np.asarray(serving.probabilities_fn(model, config)(images))
            return expected + amount * np.eye(10, dtype="float32")[np.argmin(expected, -1)]
        return run

    # The verification alone is under test: the conversion and quantization write stand-ins.
    monkeypatch.setattr(onnx_export, "convert",
                        lambda model, config, path: open(path, "wb").close())
    monkeypatch.setattr(onnx_export, "quantize_int8",
                        lambda source, path, images, keep_float, reduce_range:
                        shutil.copyfile(source, path))
    calibration = _pixels(2, seed=1)
    monkeypatch.setattr(onnx_export, "run_onnx", off_by(0.2))
    with pytest.raises(export.ExportVerificationError, match=r"max abs error 0\.2 > 0\.1"):
        export.onnx(model, tmp_path / "int8.onnx", quantization="int8",
                    representative_data=calibration)
    assert os.listdir(tmp_path) == []
    # A user who knows the network loses more under int8 can loosen the limit.
    report = export.onnx(model, tmp_path / "int8.onnx", quantization="int8",
                         representative_data=calibration, max_abs_error=0.3)
    assert report.max_abs_error == pytest.approx(0.2)


def test_a_path_that_cannot_be_a_file_is_refused(tmp_path):
    model = small_model("SE-ResNeXt")
    with pytest.raises(ValueError, match="is a folder; the export writes a file"):
        export.onnx(model, tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        export.onnx(model, tmp_path / "missing" / "model.onnx")


def test_convert_with_logits_writes_the_classifiers_scores_before_softmax(tmp_path):
    from keras_attn.applications import get_model

    model = get_model("resnet50", classes=10, widths=(8, 16, 32, 64), depths=(1, 1, 1, 1),
                      input_shape=(32, 32, 3), classifier_activation=None)
    config = serving.serving_config(model)
    path = str(tmp_path / "logits.onnx")
    onnx_export.convert(model, config, path, logits=True)
    assert "Softmax" not in {node.op_type for node in onnx_lib.load(path).graph.node}
    images = _pixels(3, seed=4, size=32)
    np.testing.assert_allclose(export.run_onnx(path, images),
                               serving.probabilities_fn(model, config, logits=True)(images),
                               atol=1e-4)
