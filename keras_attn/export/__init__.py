"""Export for serving: SavedModel in TF Serving's layout, TFLite, ONNX and OpenVINO IR, each
verified in its runtime before it lands.

    keras_attn.export.saved_model(model, "serving/resnest50d")     # serving/resnest50d/1
    keras_attn.export.tflite(model, "resnest50d.tflite", quantization="float16")
    keras_attn.export.run_tflite("resnest50d.tflite", pixels)     # LiteRT, as on a phone
    keras_attn.export.onnx(model, "resnest50d.onnx")              # ONNX Runtime
    keras_attn.export.openvino(model, "resnest50d.xml")           # OpenVINO IR (.xml + .bin)
"""

from keras_attn.export.onnx_export import onnx, run_onnx
from keras_attn.export.openvino_export import openvino, run_openvino
from keras_attn.export.saved_model_export import saved_model
from keras_attn.export.tflite_export import run_tflite, tflite
from keras_attn.export.verify import ExportReport, ExportVerificationError

__all__ = ["ExportReport", "ExportVerificationError", "onnx", "openvino", "run_onnx",
           "run_openvino", "run_tflite", "saved_model", "tflite"]
