"""How the exports' runtimes run a grouped convolution: native against packed, side by side.

    python -m benchmarks.export_grouped                          # ResNeXt-50 at 224
    python -m benchmarks.export_grouped skresnext50_32x4d resnest50d --image_size 160

`keras_attn.export` traces `GroupedConv2D` native: TFLite gets one grouped `CONV_2D` per layer,
a SavedModel one grouped `Conv2D`. This measures that choice against the packed form
(`"split"`: dense block-diagonal convolutions) in each runtime: the network is written as a
SavedModel and converted to float32 TFLite under each formulation, then the TFLite files run in
LiteRT (XNNPACK, every core) and the SavedModels' serving function in TensorFlow (this
process's kernels, oneDNN or not, as the header says), at batch 1 and batch 8. Calls of every
variant are interleaved in `--rounds` rounds of `--repeats`; each figure is the median in ms.
The outputs of the two formulations are compared too (max abs difference of probabilities).
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Read once, when TensorFlow is imported: oneDNN's CPU kernels unless the variable says otherwise
# (TensorFlow turns them on by itself only on some CPUs).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras_attn  # noqa: E402, F401, I001
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import arguments, timing  # noqa: E402
from keras_attn.applications import get_model  # noqa: E402
from keras_attn.export import serving, tflite_export  # noqa: E402
from keras_attn.layers import grouped_conv_implementation  # noqa: E402

FORMULATIONS = ("native", "split")
BATCHES = (1, 8)


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _exports(model, directory, implementation):
    """The SavedModel's serving function and the float32 TFLite bytes, traced `implementation`."""
    config = serving.serving_config(model, weights=None)
    path = os.path.join(directory, implementation)
    with grouped_conv_implementation(implementation):
        serving.write_saved_model(model, path, {"serving_default": (
            serving.probabilities_fn(model, config), [serving.pixels_signature(config)])})
    converter = tf.lite.TFLiteConverter.from_saved_model(path)
    content = tflite_export.configure_converter(converter, config).convert()
    return tf.saved_model.load(path).signatures["serving_default"], content


def _tflite_call(content, images):
    runner = tflite_export.interpreter(content)
    index = runner.get_input_details()[0]["index"]
    runner.resize_tensor_input(index, images.shape)
    runner.allocate_tensors()
    output = runner.get_output_details()[0]["index"]

    def call():
        runner.set_tensor(index, images)
        runner.invoke()
        return runner.get_tensor(output)

    return call


def _saved_model_call(signature, images):
    tensor = tf.constant(images)
    return lambda: next(iter(signature(images=tensor).values())).numpy()


def measure(name, args):
    """`{(runtime, formulation, batch): median ms}` and the formulations' largest difference."""
    model = get_model(name, input_shape=(args.image_size, args.image_size, 3))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (max(BATCHES), args.image_size, args.image_size, 3))
    images = images.astype("float32")
    calls = {}
    with tempfile.TemporaryDirectory() as directory:
        for implementation in FORMULATIONS:
            _log(f"{name}: exporting ({implementation})")
            signature, content = _exports(model, directory, implementation)
            for batch in BATCHES:
                calls[("TFLite (XNNPACK)", implementation, batch)] = _tflite_call(
                    content, images[:batch])
                calls[("SavedModel (TensorFlow)", implementation, batch)] = _saved_model_call(
                    signature, images[:batch])
        outputs, failed = {}, []  # also the warm-up
        for key, call in list(calls.items()):
            try:
                outputs[key] = call()
            except tf.errors.OpError as error:  # e.g. no grouped Conv2D without oneDNN
                _log(f"{name} {key}: fails: {error.message.splitlines()[-1]}")
                del calls[key]
                failed.append(key)
        difference = max(
            (float(np.abs(outputs[(runtime, "native", batch)]
                          - outputs[(runtime, "split", batch)]).max())
             for runtime, _, batch in calls
             if (runtime, "native", batch) in outputs and (runtime, "split", batch) in outputs),
            default=float("nan"))
        medians = timing.interleaved_medians(calls, args.rounds, args.repeats,
                                             log=lambda message: _log(f"{name}: {message}"))
    figures = dict.fromkeys(failed)  # None: "fails"
    figures.update({key: 1e3 * seconds for key, seconds in medians.items()})
    return figures, difference


def _ms(value):
    return "fails" if value is None else f"{value:.1f}"


def markdown(results, args):
    onednn = f"TF_ENABLE_ONEDNN_OPTS={os.environ['TF_ENABLE_ONEDNN_OPTS']}"
    lines = [
        f"float32, {args.image_size}x{args.image_size}, {os.cpu_count()} cores, "
        f"{onednn}; ms per call (native / packed, and packed's time over "
        "native's).",
        "",
        "| network | runtime | batch | native ms | packed ms | packed / native | max abs diff |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, (figures, difference) in results.items():
        rows = sorted({(runtime, batch) for runtime, _, batch in figures},
                      key=lambda row: (row[1], row[0]))
        for runtime, batch in rows:
            native, packed = (figures.get((runtime, f, batch)) for f in FORMULATIONS)
            ratio = f"{packed / native:.2f}x" if native and packed else "—"
            lines.append(f"| {name} | {runtime} | {batch} | {_ms(native)} | {_ms(packed)} "
                         f"| {ratio} | {difference:.1e} |")
    return "\n".join(lines) + "\n"


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["resnext50_32x4d"],
                        help="registered network names with grouped convolutions "
                        "(default %(default)s)")
    parser.add_argument("--image_size", type=int, default=224,
                        help="height and width (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over all the variants, interleaved (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls of each variant in each round (default %(default)s)")
    args = parser.parse_args(argv)
    arguments.check(parser, args, minimums={"image_size": 1, "rounds": 1, "repeats": 1})
    return args


def main(argv=None):
    args = parse(argv)
    print(markdown({name: measure(name, args) for name in args.names}, args))


if __name__ == "__main__":
    main()
