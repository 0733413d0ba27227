"""int8 exports with parts kept float (`keep_float`: the presets "input", "classifier" and "se",
operator types, node name patterns): what stays float32, what stays int8, and that the file
still agrees with Keras."""

import numpy as np
import pytest

from keras_attn import export, testing
from keras_attn.applications import get_model
from keras_attn.export import keep_float, serving, tflite_export
from tests.export.conftest import small_model


def _pixels(count, seed, size=64):
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


def _narrow_se_resnet():
    """SE-ResNet-50's blocks at their narrowest: two int8 conversions in seconds."""
    model = get_model("seresnet50", classes=10, widths=(8, 16, 32, 64), depths=(1, 1, 1, 1),
                      input_shape=(32, 32, 3))
    testing.perturb_batch_norm_statistics(model)
    return model


def _tflite_outputs(path):
    """`{(operator, output tensor name): dtype name}` of a TFLite file."""
    runner = tflite_export.interpreter(str(path))
    tensors = {tensor["index"]: tensor for tensor in runner.get_tensor_details()}
    return [(op["op_name"], tensors[op["outputs"][0]]["name"],
             tensors[op["outputs"][0]]["dtype"].__name__)
            for op in runner._get_ops_details()]  # noqa: SLF001 (no public API)


def _se_layers(model):
    return [layer.name for layer in model.layers if layer.name.endswith("_se")]


def test_se_preset_names_every_se_layer_of_the_model():
    model = small_model("SE-ResNet")
    names = _se_layers(model)
    assert len(names) == 4  # one block per stage
    assert keep_float.expand(("se", "LOGISTIC"), model) == (
        *(f"*/{name}_1/*" for name in names), "LOGISTIC")


def test_se_preset_refuses_a_network_without_se():
    with pytest.raises(ValueError, match="`keep_float` entry 'se' selects the "
                                         "Squeeze-and-Excitation layers, and 'resnest26d' has"):
        keep_float.expand(("se",), small_model("ResNeSt"))


def test_tflite_int8_keeps_the_se_layers_float_and_the_convolutions_int8(tmp_path):
    model = _narrow_se_resnet()
    calibration, held_out = _pixels(8, seed=1, size=32), _pixels(16, seed=2, size=32)
    default, kept = tmp_path / "default.tflite", tmp_path / "se.tflite"
    export.tflite(model, default, "int8", calibration)
    report = export.tflite(model, kept, "int8", calibration, keep_float=["se"],
                           verify_images=held_out)
    se_layers = _se_layers(model)

    def in_se(name):
        return any(f"/{layer}_1/" in name for layer in se_layers)

    for path, se_dtype in ((default, "int8"), (kept, "float32")):
        outputs = _tflite_outputs(path)
        se_ops = {(op, dtype) for op, name, dtype in outputs
                  if in_se(name) and op in ("AVERAGE_POOL_2D", "MEAN", "FULLY_CONNECTED",
                                            "CONV_2D", "LOGISTIC", "MUL")}
        # The squeeze, both 1x1 convolutions, the gate and the rescaling: 4 layers each.
        assert {op for op, _ in se_ops} >= {"FULLY_CONNECTED", "LOGISTIC", "MUL"}, se_ops
        assert {dtype for _, dtype in se_ops} == {se_dtype}, (path.name, se_ops)
        convolutions = {dtype for op, name, dtype in outputs
                        if op == "CONV_2D" and not in_se(name)}
        assert convolutions == {"int8"}
    # Still the model: as close to Keras as the default limits of int8 ask.
    assert report.max_abs_error <= tflite_export.LIMITS["int8"][0]
    config = serving.serving_config(model)
    expected = np.asarray(serving.probabilities_fn(model, config)(held_out))
    np.testing.assert_allclose(export.run_tflite(str(kept), held_out), expected,
                               atol=tflite_export.LIMITS["int8"][0])


def test_tflite_keep_float_refuses_bad_arguments_before_writing(tmp_path):
    model = _narrow_se_resnet()
    path = tmp_path / "model.tflite"
    with pytest.raises(ValueError, match="`keep_float` applies to quantization='int8' only"):
        export.tflite(model, path, "dynamic", keep_float=["se"])
    with pytest.raises(ValueError, match="`keep_float` must be a list"):
        export.tflite(model, path, "int8", _pixels(2, seed=1, size=32), keep_float="se")
    with pytest.raises(ValueError, match="`keep_float` entry 'SOFTPLUS' matches no operator "
                                         r"type and no node name of the graph; its operator "
                                         r"types are \['ADD', "):
        export.tflite(model, path, "int8", _pixels(2, seed=1, size=32), keep_float=["SOFTPLUS"])
    assert list(tmp_path.iterdir()) == []


def test_onnx_int8_keeps_every_se_layer_float_and_the_convolutions_int8(tmp_path):
    onnx_lib = pytest.importorskip("onnx")
    model = _narrow_se_resnet()
    path = tmp_path / "se.onnx"
    calibration, held_out = _pixels(8, seed=1, size=32), _pixels(16, seed=2, size=32)
    report = export.onnx(model, path, quantization="int8", representative_data=calibration,
                         keep_float=["se"], verify_images=held_out)
    graph = onnx_lib.load(str(path)).graph
    producers = {output: node for node in graph.node for output in node.output}
    se_layers = _se_layers(model)
    se_nodes = [node for node in graph.node
                if any(f"/{layer}_1/" in node.name for layer in se_layers)]
    initializers = {tensor.name for tensor in graph.initializer}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    # Every SE layer computes in float: its two 1x1 convolutions with float weights, its gate
    # read by the rescaling as it is (never quantized on the way); only the layer's input and
    # output are int8 tensors of the network around it.
    matmuls = [node for node in se_nodes if node.op_type == "MatMul"]
    sigmoids = [node for node in se_nodes if node.op_type == "Sigmoid"]
    assert len(matmuls) == 8 and len(sigmoids) == 4
    assert all(node.input[1] in initializers for node in matmuls)
    assert all("QuantizeLinear" not in consumers[node.output[0]] for node in sigmoids)
    # The network's convolutions stay int8: each reads a dequantized int8 activation.
    convolutions = [node for node in graph.node if node.op_type == "Conv"]
    assert convolutions and all(producers[conv.input[0]].op_type == "DequantizeLinear"
                                for conv in convolutions)
    assert report.max_abs_error <= 0.1


def test_classifier_preset_selects_the_last_matrix_multiplication_and_what_follows():
    nodes = [("CONV_2D", "stem"), ("FULLY_CONNECTED", "se_reduce"), ("LOGISTIC", "se_gate"),
             ("MEAN", "pool"), ("FULLY_CONNECTED", "predictions"), ("SOFTMAX", "output")]
    assert keep_float.select(nodes, ("classifier",)) == (["predictions", "output"], [])
    onnx_nodes = [("Conv", "stem"), ("MatMul", "fc"), ("Add", "bias"), ("Softmax", "output")]
    assert keep_float.select(onnx_nodes, ("classifier", "Conv")) == (
        ["fc", "bias", "output"], ["Conv"])
    with pytest.raises(ValueError, match=r"`keep_float` entry 'classifier' selects the graph's "
                                         r"last matrix multiplication \(FULLY_CONNECTED, MatMul, "
                                         r"Gemm\), and the graph has none; its operator types "
                                         r"are \['CONV_2D', 'MEAN'\]"):
        keep_float.select([("CONV_2D", "stem"), ("MEAN", "pool")], ("classifier",))


def test_input_and_classifier_presets_keep_their_operators_float_in_both_formats(tmp_path):
    onnx_lib = pytest.importorskip("onnx")
    model = _narrow_se_resnet()
    calibration, held_out = _pixels(8, seed=1, size=32), _pixels(16, seed=2, size=32)
    assert keep_float.expand(("input", "classifier"), model) == (
        "*keras_attn_normalize/*", "classifier")
    default, kept = tmp_path / "default.tflite", tmp_path / "kept.tflite"
    export.tflite(model, default, "int8", calibration)
    export.tflite(model, kept, "int8", calibration, keep_float=["input", "classifier"],
                  verify_images=held_out)
    for path, dtype in ((default, "int8"), (kept, "float32")):
        outputs = _tflite_outputs(path)
        normalisation = [(op, out_dtype) for op, name, out_dtype in outputs
                         if "keras_attn_normalize/" in name]
        # (pixels - mean) * (1 / std): a subtraction and a multiplication.
        assert normalisation == [("SUB", dtype), ("MUL", dtype)], (path.name, normalisation)
        # The classifier and its softmax, the file's last operators but the conversions
        # between int8 and float32.
        computing = [(op, d) for op, _, d in outputs if op not in ("QUANTIZE", "DEQUANTIZE")]
        assert computing[-2:] == [("FULLY_CONNECTED", dtype), ("SOFTMAX", dtype)], (
            path.name, outputs[-4:])
        assert {d for op, d in computing if op == "CONV_2D"} == {"int8"}
        # The SE layers' fully connected layers stay int8 either way.
        assert {d for op, d in computing[:-2] if op == "FULLY_CONNECTED"} == {"int8"}

    path = tmp_path / "kept.onnx"
    export.onnx(model, path, quantization="int8", representative_data=calibration,
                keep_float=["input", "classifier"], verify_images=held_out)
    graph = onnx_lib.load(str(path)).graph
    producers = {output: node for node in graph.node for output in node.output}
    initializers = {tensor.name for tensor in graph.initializer}
    normalisation = [node for node in graph.node if "keras_attn_normalize/" in node.name]
    assert sorted(node.op_type for node in normalisation) == ["Mul", "Sub"]
    # Each reads the float pixels or the other's float output, never a dequantized tensor.
    for node in normalisation:
        assert all(producers[name].op_type != "DequantizeLinear"
                   for name in node.input if name in producers), node.name
    # The classifier multiplies by its float32 weights and its softmax is the output as it
    # is; the SE layers' matrix multiplications read int8 weights.
    matmuls = [node for node in graph.node if node.op_type == "MatMul"]
    assert matmuls[-1].input[1] in initializers
    assert all(producers[node.input[1]].op_type == "DequantizeLinear" for node in matmuls[:-1])
    assert graph.node[-1].op_type == "Softmax" and graph.node[-1].output[0] == (
        graph.output[0].name)
