"""int8 TFLite and ONNX of trained networks, default and with the SE layers kept float.

    python -m benchmarks.quantization                          # every family, prints the table
    python -m benchmarks.quantization --models seresnet50,resnet50 --update-docs

Measured on trained networks only: a random-weight network's pooled features are nearly the
same vector for every image, its top-1 is decided by differences below int8's step, and int8
"loses" the top-1 class of ResNet-50, which has no SE layer, more often than SE-ResNet-50's
(docs/quantization.md). Two kinds of trained network:

- `digits`: the README's main job, `seresnet20_cifar` on the digits
  (`--digits_weights`, from `keras-attn train`; trained 8 epochs here when not given),
  calibrated on 100 training images, compared on its 359 validation images;
- every other name: the full-size network (its published depth and width, 18 classes)
  trained from scratch here for `--epochs` (Adam, label smoothing 0.1) on a task of natural
  images (`benchmarks.natural_images`: name which of the 18 photographs bundled with
  scikit-image and scikit-learn a crop comes from), its BatchNorm statistics then
  re-estimated on the training crops. Crops of each photograph's left part train it and
  calibrate int8; crops of its right part, which neither saw, are the held-out images.

For each, the int8 files are calibrated on `--calibration` training images and compared with
Keras' float32 logits on the held-out images: top-1 agreement, max and root-mean-square logit
error, file size, and batch-1 latency (median of `--repeats` calls, all cores) in LiteRT
(XNNPACK) and ONNX Runtime, for the default export and each `keep_float` of `OPTIONS` ("se"
for the networks that have SE layers). A second table compares each option with the default
image by image: the held-out images whose top-1 class it fixes and breaks, and McNemar's exact
p-value of that split. One TFLite calibration and one ONNX float file serve every option.
"""

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

DIGITS = "digits"
FAMILIES = {DIGITS: "SE-ResNet (digits)", "resnet50": "ResNet", "seresnet50": "SE-ResNet",
            "resnext50_32x4d": "ResNeXt", "seresnext50_32x4d": "SE-ResNeXt",
            "skresnext50_32x4d": "SKNet", "resnest50d": "ResNeSt",
            "se_bn_inception": "SE-Inception"}
# The `keep_float` values measured against the default (an empty list).
OPTIONS = (("input",), ("classifier",), ("input", "classifier"), ("se",))
LABEL_SMOOTHING = 0.1
DOCS_PAGE = "docs/quantization.md"
SECTION = "quantization-families"


def _log(message):
    print(message, file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One int8 file against float32 Keras on the held-out images."""

    agrees: np.ndarray  # per image: the file's top-1 class is Keras'
    max_error: float  # largest absolute logit difference
    rms_error: float  # root mean square logit difference
    mib: float
    ms: float  # batch-1 latency

    @property
    def agreement(self):
        return float(np.mean(self.agrees))

    def __str__(self):
        return (f"{self.agreement:.1%}, {self.max_error:.2f} max, {self.rms_error:.3f} rms, "
                f"{self.mib:.1f} MiB, {self.ms:.0f} ms")


def paired(default, option):
    """`(fixed, broken, p)`: the held-out images whose top-1 class an option's file gets right
    and the default's wrong (fixed), and the reverse (broken), with McNemar's exact two-sided
    p-value: how likely so lopsided a split of the changed images would be if the option
    changed nothing but which images sit on a knife's edge.

        >>> paired(np.array([True, False, False, True]), np.array([True, True, True, False]))
        (2, 1, 1.0)
    """
    from scipy import stats

    default, option = np.asarray(default, bool), np.asarray(option, bool)
    fixed, broken = int(np.sum(option & ~default)), int(np.sum(default & ~option))
    changed = fixed + broken
    return fixed, broken, 1.0 if changed == 0 else float(
        stats.binomtest(fixed, changed, 0.5).pvalue)


def _normalisation(config):
    mean = np.array(config.mean, "float32") * 255.0
    std = np.array(config.std, "float32") * 255.0
    return lambda pixels: (pixels - mean) / std


def trained_network(name, args, pixels, labels):
    """`name` at full size, trained from scratch on `pixels` (float32 in [0, 255]) and
    `labels` for `args.epochs`, its BatchNorm statistics then re-estimated on `pixels`."""
    import keras

    from benchmarks import natural_images
    from keras_attn.applications import get_model
    from keras_attn.export import serving

    keras.utils.set_random_seed(0)  # the same network in every run
    model = get_model(name, weights=None, classes=int(labels.max()) + 1,
                      classifier_activation=None,
                      input_shape=(args.image_size, args.image_size, 3))
    config = serving.serving_config(model, weights=None)
    preprocess = _normalisation(config)
    cached = None if args.networks_dir is None else os.path.join(
        args.networks_dir, f"{name}_{args.image_size}px_{len(pixels)}crops_{args.epochs}epochs_"
        f"lr{args.learning_rate:g}_batch{args.batch_size}_smoothing{LABEL_SMOOTHING:g}"
        ".weights.h5")
    if cached is not None and os.path.exists(cached):
        model.load_weights(cached)
        _log(f"  {name}: trained weights from {cached}")
        return model, config
    # Label smoothing, as timm's ImageNet recipes: without it a network trained on a few
    # thousand crops pushes its logits into the hundreds, far from a published network's.
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                            label_smoothing=LABEL_SMOOTHING),
                  metrics=["categorical_accuracy"])
    classes = model.output_shape[-1]
    started = time.perf_counter()
    history = model.fit(preprocess(pixels), np.eye(classes, dtype="float32")[labels],
                        batch_size=args.batch_size,
                        epochs=args.epochs, shuffle=True, verbose=0)
    _log(f"  {name}: trained in {time.perf_counter() - started:.0f} s, accuracy by epoch "
         + ", ".join(f"{value:.0%}" for value in history.history["categorical_accuracy"]))
    # A few hundred steps leave the moving averages near their initial values.
    natural_images.reestimate_batch_norm(model, pixels, preprocess)
    if cached is not None:
        from keras_attn.weights.fetch import save_weights_atomically

        save_weights_atomically(model, cached)
    return model, config


def _batched(run, images, batch=25):
    return np.concatenate([np.asarray(run(images[start:start + batch]))
                           for start in range(0, len(images), batch)])


def _latency(run, image, repeats):
    from benchmarks import timing

    run(image)
    return 1e3 * statistics.median(timing.seconds(lambda: run(image), repeats))


def measure(model, config, calibration, held_out, labels, args):
    """`{(format, keep_float): Measurement}` and the float32 held-out top-1 of `model`, int8
    calibrated on `calibration`, compared on `held_out` (with `labels`)."""
    from keras_attn.export import keep_float, onnx_export, serving, tflite_export, verify

    started = time.perf_counter()
    expected = _batched(serving.probabilities_fn(model, config, logits=True), held_out)
    accuracy = float(np.mean(expected.argmax(-1) == labels))
    _log(f"  {model.name}: float32 top-1 {accuracy:.1%} on {len(held_out)} held-out images")
    variants = {(): ()}
    for option in OPTIONS:
        try:
            variants[option] = keep_float.expand(option, model)
        except ValueError:
            pass  # "se" on a network without SE layers
    results = {}

    def record(key, run_file, size_bytes):
        actual = _batched(run_file, held_out)
        error, _ = verify.compare(expected, actual)  # checks the shapes too
        results[key] = Measurement(
            agrees=expected.argmax(-1) == actual.argmax(-1), max_error=error,
            rms_error=float(np.sqrt(np.mean(np.square(actual - expected)))),
            mib=size_bytes / 2**20, ms=_latency(run_file, held_out[:1], args.repeats))
        _log(f"  [{time.perf_counter() - started:4.0f}s] {key}: {results[key]}")

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
                path = os.path.join(scratch, f"{'_'.join(variant) or 'default'}.onnx")
                onnx_export.quantize_int8(float_path, path, calibration, kept)
                session = onnx_export.session(path)
                record(("ONNX", variant),
                       lambda batch, session=session: session.run(
                           None, {onnx_export.INPUT_NAME: batch})[0],
                       os.path.getsize(path))
    return accuracy, results


def network(name, args):
    """`(model, config, calibration pixels, held-out pixels, held-out labels)` of `name`."""
    from keras_attn.export import serving

    if name == DIGITS:
        from benchmarks.export_table import digits_model

        weights, cached = args.digits_weights, None
        if weights is None and args.networks_dir is not None:
            cached = os.path.join(args.networks_dir, "digits_seresnet20_cifar.weights.h5")
            weights = cached if os.path.exists(cached) else None
        model, held_out, labels, calibration = digits_model(weights, classifier_activation=None)
        if cached is not None and weights is None:
            from keras_attn.weights.fetch import save_weights_atomically

            save_weights_atomically(model, cached)
        return (model, serving.serving_config(model, weights=None),
                calibration[:args.calibration], held_out, labels)
    from benchmarks import natural_images

    pixels, train_labels = natural_images.crops("train", args.train_crops, args.image_size,
                                                seed=1)
    held_out, labels = natural_images.crops("held_out", args.held_out, args.image_size, seed=2)
    model, config = trained_network(name, args, pixels, train_labels)
    return model, config, pixels[:args.calibration], held_out, labels


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


def _option(keep_float):
    return "default int8" if not keep_float else (
        "`keep_float=[" + ", ".join(f'"{entry}"' for entry in keep_float) + "]`")


def markdown(rows, args, seconds, load):
    from benchmarks.runtimes import machine

    variants = ((), *OPTIONS)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, load average {load[0]:.1f} "
        f"before and {load[1]:.1f} after, {seconds / 60:.0f} min. Full-size networks: "
        f"{args.image_size}x{args.image_size}, 18 classes, trained {args.epochs} epochs on "
        f"{args.train_crops} crops, int8 calibrated on {args.calibration} of them, compared on "
        f"{args.held_out} held-out crops; `digits`: the main job's network, calibrated on "
        f"{min(args.calibration, 100)} training images, compared on its 359 validation images. "
        "Each cell: top-1 agreement with float32 Keras, max and root-mean-square logit error, "
        "file size, batch-1 latency.",
        "",
        "| family | network | float32 top-1 | format | "
        + " | ".join(map(_option, variants)) + " |",
        "|---|---|---:|---|" + "---|" * len(variants),
    ]
    paired_lines = [
        "Each option against the default, image by image: held-out images whose top-1 class it "
        "fixes / breaks, and McNemar's exact p-value (below 0.05: a split that chance alone "
        "seldom gives).",
        "",
        "| network | format | " + " | ".join(map(_option, OPTIONS)) + " |",
        "|---|---|" + "---|" * len(OPTIONS),
    ]
    for name, (accuracy, results) in rows.items():
        first = f"| {FAMILIES.get(name, '')} | `{name}` | {accuracy:.1%} "
        paired_first = f"| `{name}` "
        for fmt in ("TFLite", "ONNX"):
            if (fmt, ()) not in results:
                continue
            cells = [str(results[(fmt, variant)]) if (fmt, variant) in results
                     else "no SE layer" for variant in variants]
            default, paired_cells = results[(fmt, ())], []
            for option in OPTIONS:
                measured = results.get((fmt, option))
                paired_cells.append("-" if measured is None else "{} / {}, p={:.2g}".format(
                    *paired(default.agrees, measured.agrees)))
            lines.append(f"{first}| {fmt} | " + " | ".join(cells) + " |")
            paired_lines.append(f"{paired_first}| {fmt} | " + " | ".join(paired_cells) + " |")
            first, paired_first = "| | | ", "| "
    return "\n".join(lines + [""] + paired_lines) + "\n"


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(FAMILIES),
                        help=f"comma-separated registered network names, or {DIGITS!r} "
                        "(default %(default)s)")
    parser.add_argument("--formats", default="tflite,onnx",
                        help="comma-separated: tflite, onnx (default %(default)s)")
    parser.add_argument("--image_size", type=int, default=64,
                        help="the full-size networks' input (default %(default)s)")
    parser.add_argument("--train_crops", type=int, default=1024,
                        help="training crops (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=4, help="(default %(default)s)")
    parser.add_argument("--batch_size", type=int, default=32, help="(default %(default)s)")
    parser.add_argument("--learning_rate", type=float, default=1e-3,
                        help="Adam's (default %(default)s)")
    parser.add_argument("--calibration", type=int, default=64,
                        help="training images int8 is calibrated on (default %(default)s)")
    parser.add_argument("--held_out", type=int, default=1800,
                        help="held-out crops to compare on (default %(default)s)")
    parser.add_argument("--networks_dir",
                        help="a folder where the trained networks are saved, and read again by "
                        "a run with the same training options (default: not saved)")
    parser.add_argument("--digits_weights",
                        help="the main job's best.weights.h5 (default: trained here)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed batch-1 calls per file (default %(default)s)")
    parser.add_argument("--update-docs", action="store_true",
                        help=f"write the table into {DOCS_PAGE}")
    args = parser.parse_args(argv)
    from benchmarks import arguments

    args.models = [name for name in args.models.split(",") if name]
    args.names = [name for name in args.models if name != DIGITS]
    args.formats = arguments.split_choices(parser, "--formats", args.formats,
                                           ("tflite", "onnx"), "format")
    arguments.check(parser, args, minimums={
        "image_size": 32, "train_crops": 1, "epochs": 1, "batch_size": 1, "calibration": 1,
        "held_out": 1, "repeats": 1})
    if args.calibration > args.train_crops:
        parser.error(f"--calibration ({args.calibration}) must be at most "
                     f"--train_crops ({args.train_crops})")
    if args.networks_dir is not None and not os.path.isdir(args.networks_dir):
        parser.error(f"--networks_dir {args.networks_dir!r} is not a folder")
    if args.digits_weights is not None and not os.path.isfile(args.digits_weights):
        parser.error(f"--digits_weights {args.digits_weights!r} is not a file")
    return args


def main(argv=None):
    args = parse(argv)
    load_before, started = os.getloadavg()[0], time.perf_counter()
    rows = {}
    for name in args.models:
        _log(f"[{(time.perf_counter() - started) / 60:5.1f} min] {name}")
        rows[name] = measure(*network(name, args), args)
    table = markdown(rows, args, time.perf_counter() - started,
                     (load_before, os.getloadavg()[0]))
    print(table)
    if args.update_docs:
        from tools import sections

        sections.write_sections(DOCS_PAGE, {SECTION: table})


if __name__ == "__main__":
    main()
