"""int8 TFLite and ONNX, default and with the SE layers kept float, against float32 Keras.

    python -m benchmarks.quantization                          # every family, prints the table
    python -m benchmarks.quantization --models seresnet50,resnet50 --update-docs

For every family a full-size network (224x224, 1000 classes, random weights) is given
activations with realistic ranges and an output that depends on the image:

1. every BatchNorm's statistics are re-estimated on crops of the calibration photographs
   (`benchmarks.natural_images`: the photographs bundled with scikit-image and scikit-learn);
2. the classifier is re-estimated the same way (`reading_classifier`): it reads the 16
   directions along which the pooled features vary most between the calibration crops. A
   random network's pooled features are nearly the same vector for every image, so its random
   classifier gives the same few classes to every image (4 classes for 64 crops,
   SE-ResNet-50), and a merely standardised one decides top-1 by differences far below int8's
   step (docs/quantization.md).

Then the int8 files are calibrated on the first `--calibration` calibration crops and
compared with Keras' float32 logits on `--held_out` crops of the held-out photographs (which
neither step saw): top-1 agreement, max abs logit error, file size, and batch-1 latency (median
of `--repeats` calls, all cores) in LiteRT (XNNPACK) and ONNX Runtime. "default" is the int8
export as it is; "se float" is `keep_float=["se"]` (every Squeeze-and-Excitation layer in
float32), for the families that have SE layers. One TFLite calibration and one ONNX float
file serve both.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

FAMILIES = {"resnet50": "ResNet", "seresnet50": "SE-ResNet", "resnext50_32x4d": "ResNeXt",
            "seresnext50_32x4d": "SE-ResNeXt", "skresnext50_32x4d": "SKNet",
            "resnest50d": "ResNeSt", "se_bn_inception": "SE-Inception"}
HEAD_COMPONENTS = 16  # directions of largest variance the classifier reads
DOCS_PAGE = "docs/quantization.md"
SECTION = "quantization-families"


def _log(message):
    print(message, file=sys.stderr, flush=True)


def realistic_network(name, size, calibration):
    """`name` at `size`, BatchNorms and classifier re-estimated on `calibration` pixels."""
    import keras

    from benchmarks import natural_images
    from keras_attn.applications import get_model
    from keras_attn.export import serving

    keras.utils.set_random_seed(0)  # the same random network in every run
    model = get_model(name, weights=None, classifier_activation=None,
                      input_shape=(size, size, 3))
    config = serving.serving_config(model, weights=None)
    mean = np.array(config.mean, "float32") * 255.0
    std = np.array(config.std, "float32") * 255.0

    def preprocess(pixels):
        return (pixels - mean) / std

    natural_images.reestimate_batch_norm(model, calibration, preprocess)
    head = model.layers[-1]
    features = keras.Model(model.inputs, head.input)
    pooled = np.concatenate([np.asarray(features(preprocess(calibration[start:start + 16])))
                             for start in range(0, len(calibration), 16)])
    head.set_weights(reading_classifier(pooled, head.units))
    return model, config


def reading_classifier(pooled, classes, components=HEAD_COMPONENTS, seed=0):
    """A classifier `(kernel, bias)` that reads what varies between images: random mixtures
    of the `components` directions along which the pooled features `pooled` (n, channels)
    vary most, each whitened, the logits centred and of std ~1 over `pooled`.

    A trained classifier reads the directions its features vary along between images; a
    random one reads random directions, along which a random network's pooled features hardly
    vary (averaging random local features over the image leaves their expectation, nearly the
    same for every image), so its top-1 is decided by differences far below int8's step.
    """
    centred = pooled - pooled.mean(0)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    whiten = directions[:components].T * (np.sqrt(len(pooled)) / singular[:components])
    mixing = np.random.default_rng(seed).normal(size=(components, classes))
    kernel = (whiten @ mixing / np.sqrt(components)).astype("float32")
    return kernel, (-pooled.mean(0) @ kernel).astype("float32")


def _batched(run, images, batch=25):
    return np.concatenate([np.asarray(run(images[start:start + batch]))
                           for start in range(0, len(images), batch)])


def _latency(run, image, repeats):
    from benchmarks import timing

    run(image)
    return 1e3 * statistics.median(timing.seconds(lambda: run(image), repeats))


def measure(name, args, calibration, held_out):
    """`{(format, variant): (agreement, max error, MiB, ms)}` for network `name`."""
    from keras_attn.export import keep_float, onnx_export, serving, tflite_export, verify

    started = time.perf_counter()
    model, config = realistic_network(name, args.image_size, calibration)
    expected = _batched(serving.probabilities_fn(model, config, logits=True), held_out)
    distinct = len(set(expected.argmax(-1)))
    _log(f"[{time.perf_counter() - started:4.0f}s] {name}: float32 logits, {distinct} "
         f"different top-1 classes on {len(held_out)} held-out crops")
    variants = {"default": ()}
    try:
        variants["se float"] = keep_float.expand(("se",), model)
    except ValueError:
        pass  # no SE layer: the option does not apply
    results = {}
    calibration = calibration[:args.calibration]

    def record(key, run_file, size_bytes):
        actual = _batched(run_file, held_out)
        error, agreement = verify.compare(expected, actual)
        results[key] = (agreement, error, size_bytes / 2**20,
                        _latency(run_file, held_out[:1], args.repeats))
        _log(f"[{time.perf_counter() - started:4.0f}s] {name} {key}: {results[key]}")

    if "tflite" in args.formats:
        with tempfile.TemporaryDirectory(prefix="keras_attn_quantization_") as scratch:
            converter = _tflite_converter(model, config, calibration, scratch)
            calibrated = tflite_export.calibrate(converter)
        for variant, kept in variants.items():
            content = tflite_export.quantize_calibrated(calibrated, kept)
            runner = _TFLite(content)
            record(("TFLite", variant), runner, len(content))
    if "onnx" in args.formats:
        with tempfile.TemporaryDirectory(prefix="keras_attn_quantization_") as scratch:
            float_path = os.path.join(scratch, "float.onnx")
            # Logits out, as the TFLite file: int8 probabilities of 1000 near-equal classes
            # (steps of 1/256 of the largest) would tie, and top-1 would measure the ties.
            onnx_export.convert(model, config, float_path, logits=True)
            for variant, kept in variants.items():
                path = os.path.join(scratch, f"{variant}.onnx")
                onnx_export.quantize_int8(float_path, path, calibration, kept)
                session = onnx_export.session(path)
                record(("ONNX", variant),
                       lambda batch, session=session: session.run(
                           None, {onnx_export.INPUT_NAME: batch})[0],
                       os.path.getsize(path))
    return distinct, results


def _tflite_converter(model, config, calibration, scratch):
    """An int8 converter of `model`'s logits graph, through a SavedModel in `scratch`."""
    import tensorflow as tf

    from keras_attn.export import serving, tflite_export
    from keras_attn.layers.grouped_conv import grouped_conv_implementation

    with grouped_conv_implementation("native"):
        inference = serving.inference_model(model)
        serving.write_saved_model(inference, scratch, {"serving_default": (
            serving.probabilities_fn(inference, config, logits=True),
            [serving.pixels_signature(config)])})
    converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
    return tflite_export.configure_converter(converter, config, "int8", calibration)


class _TFLite:
    """A LiteRT interpreter per batch size (XNNPACK, all cores), allocated once."""

    def __init__(self, content):
        self.content, self.runners = content, {}

    def __call__(self, batch):
        from keras_attn.export import tflite_export

        if len(batch) not in self.runners:
            runner = tflite_export.interpreter(self.content)
            index = runner.get_input_details()[0]["index"]
            runner.resize_tensor_input(index, batch.shape)
            runner.allocate_tensors()
            self.runners[len(batch)] = (runner, index)
        runner, index = self.runners[len(batch)]
        runner.set_tensor(index, np.asarray(batch, "float32"))
        runner.invoke()
        return runner.get_tensor(runner.get_output_details()[0]["index"]).copy()


def markdown(rows, args, seconds, load):
    from benchmarks.runtimes import machine

    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()} (load average {load[0]:.1f} "
        f"before, {load[1]:.1f} after: a shared machine; latencies are of that load), "
        f"{seconds / 60:.0f} min. {args.image_size}x{args.image_size}, 1000 classes; BatchNorms "
        f"and classifier re-estimated on {args.calibration_crops} crops of the calibration "
        f"photographs, int8 calibrated on the first {args.calibration}, compared on "
        f"{args.held_out} crops of the held-out photographs. Each cell: top-1 agreement with "
        "float32 Keras, max abs logit error (logits have std 1 over images), file size, "
        "batch-1 latency.",
        "",
        "| family | network | distinct top-1 | format | default int8 | `keep_float=[\"se\"]` |",
        "|---|---|---:|---|---|---|",
    ]
    for name, (distinct, results) in rows.items():
        for index, fmt in enumerate(("TFLite", "ONNX")):
            if (fmt, "default") not in results:
                continue
            cells = []
            for variant in ("default", "se float"):
                if (fmt, variant) not in results:
                    cells.append("no SE layer")
                    continue
                agreement, error, mib, ms = results[(fmt, variant)]
                cells.append(f"{agreement:.1%}, {error:.2f}, {mib:.1f} MiB, {ms:.0f} ms")
            first = f"| {FAMILIES.get(name, '')} | `{name}` | {distinct} " if index == 0 or \
                ("TFLite", "default") not in results else "| | | "
            lines.append(f"{first}| {fmt} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(FAMILIES),
                        help="comma-separated registered network names (default %(default)s)")
    parser.add_argument("--formats", default="tflite,onnx",
                        help="comma-separated: tflite, onnx (default %(default)s)")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--calibration_crops", type=int, default=64,
                        help="crops of the calibration photographs for the BatchNorms and the "
                        "classifier (default %(default)s)")
    parser.add_argument("--calibration", type=int, default=32,
                        help="of those, the crops int8 is calibrated on (default %(default)s)")
    parser.add_argument("--held_out", type=int, default=200,
                        help="crops of the held-out photographs to compare on "
                        "(default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed batch-1 calls per file (default %(default)s)")
    parser.add_argument("--update-docs", action="store_true",
                        help=f"write the table into {DOCS_PAGE}")
    args = parser.parse_args(argv)
    from benchmarks import arguments

    args.names = args.models = [name for name in args.models.split(",") if name]
    args.formats = arguments.split_choices(parser, "--formats", args.formats,
                                           ("tflite", "onnx"), "format")
    arguments.check(parser, args, minimums={"image_size": 32, "calibration_crops": 2,
                                            "calibration": 1, "held_out": 1, "repeats": 1})
    if args.calibration > args.calibration_crops:
        parser.error(f"--calibration ({args.calibration}) must be at most "
                     f"--calibration_crops ({args.calibration_crops})")
    return args


def main(argv=None):
    args = parse(argv)
    from benchmarks import natural_images

    load_before, started = os.getloadavg()[0], time.perf_counter()
    calibration = natural_images.crops(natural_images.CALIBRATION, args.calibration_crops,
                                       args.image_size, seed=1)
    held_out = natural_images.crops(natural_images.HELD_OUT, args.held_out, args.image_size,
                                    seed=2)
    rows = {name: measure(name, args, calibration, held_out) for name in args.models}
    table = markdown(rows, args, time.perf_counter() - started,
                     (load_before, os.getloadavg()[0]))
    print(table)
    if args.update_docs:
        from tools import sections

        sections.write_sections(DOCS_PAGE, {SECTION: table})


if __name__ == "__main__":
    main()
