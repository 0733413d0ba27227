"""TFLite float32 / float16 / dynamic / int8 against Keras, every family: docs/export.md's tables.

    python -m benchmarks.export_table                    # prints the tables
    python -m benchmarks.export_table --update-docs      # and writes them into docs/export.md
    python -m benchmarks.export_table --full             # full-width networks at 224 (slow)

Two measurements, side by side in one run:
1. Every family, random weights with random BatchNorm statistics: top-1 agreement of the
   logits with Keras on random pixels (the same 32 images for every file), max abs error of
   the logits, and file size. Logits, not probabilities: a random 1000-class network's
   probabilities are all near 1/1000, below int8 SOFTMAX's output step of 1/256. By default
   the networks are shrunk (widths 16-128, one block per stage,
   64x64) so the run takes minutes on two cores; --full measures the published sizes.
2. The main job's digits network (docs/training.md; `--digits-weights`, from `keras-attn train`;
   trained here for a few epochs when not given): top-1 accuracy of each file on the 359 held-out
   images, and which layers the int8 error comes from (TFLite's quantization debugger:
   RMSE of each quantized layer's output / its quantization scale).
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tools import sections  # noqa: E402
from keras_attn import testing  # noqa: E402
from keras_attn.applications import get_model  # noqa: E402
from keras_attn.export import serving, tflite_export, verify  # noqa: E402

QUANTIZATIONS = (None, "float16", "dynamic", "int8")
_SMALL = {"widths": (16, 32, 64, 128), "depths": (1, 1, 1, 1), "input_shape": (64, 64, 3)}
FAMILIES = {  # family: (registry name, shrunk overrides)
    "ResNeSt": ("resnest50d", _SMALL),
    "SE-ResNet": ("seresnet50", _SMALL),
    "SE-ResNeXt": ("seresnext50_32x4d", _SMALL),
    "SKNet": ("skresnext50_32x4d", _SMALL),
    "ResNeXt": ("resnext50_32x4d", _SMALL),
    "SE-Inception": ("se_bn_inception", {"input_shape": (96, 96, 3)}),
}


def measure(model, images, calibration, labels=None, logits=False):
    """One row per quantization: (quantization, agreement, max error, size, accuracy);
    the error is of the probabilities, or of the logits with `logits=True`."""
    config = serving.serving_config(model)
    expected = np.asarray(serving.probabilities_fn(model, config, logits)(images))
    rows = []
    for quantization in QUANTIZATIONS:
        content = tflite_export.convert(model, config, quantization, calibration, logits)
        actual = tflite_export.run_tflite(content, images)
        error, agreement = verify.compare(expected, actual)
        accuracy = None if labels is None else float(np.mean(actual.argmax(-1) == labels))
        rows.append((quantization or "float32", agreement, error, len(content), accuracy))
    keras_accuracy = None if labels is None else float(np.mean(expected.argmax(-1) == labels))
    return rows, keras_accuracy


def family_table(full):
    rng = np.random.default_rng(0)
    lines = ["| family | network | input | float32 | float16 | dynamic | int8 |",
             "|---|---|---:|---|---|---|---|"]
    for family, (name, small) in FAMILIES.items():
        overrides = {} if full else small
        model = get_model(name, classifier_activation=None, **overrides)
        testing.perturb_batch_norm_statistics(model)
        size = model.input_shape[1]
        images = rng.uniform(0, 255, (32, size, size, 3)).astype("float32")
        rows, _ = measure(model, images, images[:16], logits=True)
        cells = [f"{agreement:.0%}, {size_bytes / 2**20:.1f} MiB"
                 for _, agreement, _, size_bytes, _ in rows]
        shrunk = " (shrunk)" if "widths" in overrides else ""
        lines.append(f"| {family} | `{name}`{shrunk} | {size} | "
                     + " | ".join(cells) + " |")
        print(lines[-1], " max abs errors:",
              ", ".join(f"{q} {e:.1e}" for q, _, e, _, _ in rows), flush=True)
    return "\n".join(lines) + "\n"


def digits_model(weights, **model_args):
    """The main job's network, `(model, held-out pixels, labels, 100 training pixels)`:
    `seresnet20_cifar` with the weights file `weights`, or trained 8 epochs here when None;
    `model_args` go to `get_model` (e.g. `classifier_activation=None`)."""
    from keras_attn.training import data as training_data

    data = training_data.load_data("digits")
    val = list(data.val.dataset.as_numpy_iterator())
    images = np.stack([image for image, _ in val]).astype("float32")
    labels = np.array([label for _, label in val])
    train = np.stack([image for image, _ in data.train.dataset.take(100).as_numpy_iterator()])
    if weights is None:
        from absl import flags

        from keras_attn.training import train as training
        from keras_attn.training.flags import define_flags

        values = flags.FlagValues()
        define_flags(values)
        scratch = tempfile.mkdtemp()
        values(["train", "--dataset=digits", "--model=seresnet20_cifar", "--epochs=8",
                "--jit_compile", f"--model_dir={scratch}"])
        training.run(values)
        weights = os.path.join(scratch, "best.weights.h5")
    model = get_model("seresnet20_cifar", classes=10, weights=weights, **model_args)
    return model, images, labels, train.astype("float32")


def layer_errors(model, calibration, top=6):
    """The int8 layers whose output error is largest relative to their quantization step."""
    config = serving.serving_config(model)

    def dataset():
        for image in calibration:
            yield [image[None]]

    with tempfile.TemporaryDirectory() as scratch:
        serving.write_saved_model(model, scratch, {"serving_default": (
            serving.probabilities_fn(model, config), [serving.pixels_signature(config, 1)])})
        converter = tflite_export.configure_converter(
            tf.lite.TFLiteConverter.from_saved_model(scratch), config, "int8", calibration)
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,
                                                             debug_dataset=dataset)
        debugger.run()
        path = os.path.join(scratch, "layers.csv")
        with open(path, "w") as file:
            debugger.layer_statistics_dump(file)
        import csv

        with open(path) as file:
            rows = list(csv.DictReader(file))
    for row in rows:
        row["ratio"] = float(row["rmse/scale"]) if row.get("rmse/scale") else (
            float(row["mean_squared_error"]) ** 0.5 / float(row["scale"]))
    rows.sort(key=lambda row: -row["ratio"])
    return [(row["op_name"], row["tensor_name"], row["ratio"]) for row in rows[:top]]


def digits_table(weights):
    model, images, labels, calibration = digits_model(weights)
    rows, keras_accuracy = measure(model, images, calibration, labels)
    lines = [f"| `seresnet20_cifar`, digits | Keras | {keras_accuracy:.2%} | 100% | | "
             f"{model.count_params() * 4 / 2**20:.2f} MiB (weights) |",
             ]
    for quantization, agreement, error, size_bytes, accuracy in rows:
        lines.append(f"| | TFLite {quantization} | {accuracy:.2%} | {agreement:.2%} | "
                     f"{error:.1e} | {size_bytes / 2**20:.2f} MiB |")
    header = ["| network | runtime | held-out top-1 | agreement | max abs error | size |",
              "|---|---|---:|---:|---:|---:|"]
    table = "\n".join(header + lines) + "\n"
    print(table, flush=True)
    errors = layer_errors(model, calibration)
    print("int8 layers with the largest error (RMSE / quantization scale):")
    for op_name, tensor, ratio in errors:
        print(f"  {ratio:6.3f}  {op_name:16s} {tensor}")
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="published network sizes (slow)")
    parser.add_argument("--digits-weights", help="best.weights.h5 of the main job "
                        "(docs/training.md)")
    parser.add_argument("--update-docs", action="store_true",
                        help="write the tables between their markers (docs/export.md)")
    args = parser.parse_args(argv)
    families = family_table(args.full)
    digits = digits_table(args.digits_weights)
    if args.update_docs:
        sections.update({"export": families, "quantization": digits})

if __name__ == "__main__":
    main()
