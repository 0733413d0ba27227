"""Export for serving: SavedModel in TF Serving's layout, and TFLite, each verified.

    keras_attn.export.saved_model(model, "serving/resnest50d")     # serving/resnest50d/1
    keras_attn.export.tflite(model, "resnest50d.tflite", quantization="float16")
    keras_attn.export.run_tflite("resnest50d.tflite", pixels)     # LiteRT, as on a phone
"""

from keras_attn.export.saved_model_export import saved_model
from keras_attn.export.tflite_export import run_tflite, tflite
from keras_attn.export.verify import ExportReport, ExportVerificationError

__all__ = ["ExportReport", "ExportVerificationError", "run_tflite", "saved_model", "tflite"]
