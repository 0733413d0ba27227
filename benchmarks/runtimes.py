"""The CPU runtime table: batch-1 latency and batch-8 throughput of one network in every runtime.

    python -m benchmarks.runtimes                         # the five networks, prints the table
    python -m benchmarks.runtimes --models resnet50 --quick
    python -m benchmarks.runtimes --update-docs           # writes docs/cpu-runtimes.md's table

For each network the same random-weight model (`get_model(name, weights=None)`, 1000 classes,
224x224; `keras.applications.ResNet50`'s architecture for `resnet50`) is exported once, in a
process of its own, to every format: a SavedModel (`serving_default`), TFLite float32 and
int8, ONNX float32 and int8 (QDQ), OpenVINO IR. Then every runtime runs in a fresh process of
its own (nothing else imported, all cores), on the same pixels (`inputs.npy`):

- Keras: the Keras model (TensorFlow backend, `optimize_for_inference`, `predict_on_batch`);
- SavedModel: `tf.saved_model.load(...).signatures["serving_default"]`;
- TFLite XNNPACK float32 / int8: LiteRT's interpreter, XNNPACK on;
- ONNX Runtime float32 / int8: the CPU execution provider;
- OpenVINO: the CPU plugin in its default precision (float32 on a CPU without bfloat16);
- timm: the same architecture in PyTorch eager, `channels_last`, `torch.inference_mode`.

Every exported file takes float32 pixels in [0, 255] and does the model's normalisation
inside; timm is given the same pixels normalised, NCHW. Exports here are not verified (the
exports' own tests verify them) and int8 is calibrated on a few random images: this table
measures speed, `benchmarks/quantization.py` measures int8's accuracy. Each figure is the
median of `--repeats` timed calls after `--warmup` untimed ones.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's oneDNN kernels for Keras and the SavedModel, as the README advises (read when
# TensorFlow is imported, in the child processes, which inherit it).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

DEFAULT_MODELS = ("resnet50", "resnext50_32x4d", "seresnext50_32x4d", "skresnext50_32x4d",
                  "resnest50d")
RUNTIMES = ("keras", "saved_model", "tflite_f32", "tflite_int8", "onnx_f32", "onnx_int8",
            "openvino", "timm")
TITLES = {"keras": "Keras (TF)", "saved_model": "SavedModel", "tflite_f32": "TFLite f32",
          "tflite_int8": "TFLite int8", "onnx_f32": "ORT f32", "onnx_int8": "ORT int8",
          "openvino": "OpenVINO", "timm": "timm (PyTorch)"}
BATCH = 8
CALIBRATION = 4  # random images: enough for int8 kernels to run, not for accuracy
DOCS_PAGE = "docs/cpu-runtimes.md"
SECTION = "runtimes"


def _log(message):
    print(message, file=sys.stderr, flush=True)


# ---- the export process -------------------------------------------------------------------

def export_all(name, folder, size):
    """Writes `folder/inputs.npy`, the Keras weights and every runtime's file of `name`."""
    import numpy as np

    from keras_attn.export import onnx_export, openvino_export, serving, tflite_export

    model = _build(name, size)
    model.save_weights(os.path.join(folder, "model.weights.h5"))
    config = serving.serving_config(model, weights=None, model_name=name)
    rng = np.random.default_rng(0)
    np.save(os.path.join(folder, "inputs.npy"),
            rng.uniform(0, 255, (BATCH, size, size, 3)).astype("float32"))
    calibration = rng.uniform(0, 255, (CALIBRATION, size, size, 3)).astype("float32")
    steps = {
        "saved_model": lambda: _saved_model(model, config, os.path.join(folder, "saved_model")),
        "tflite_f32": lambda: _write(os.path.join(folder, "f32.tflite"),
                                     tflite_export.convert(model, config)),
        "tflite_int8": lambda: _write(os.path.join(folder, "int8.tflite"),
                                      tflite_export.convert(model, config, "int8", calibration)),
        "onnx_f32": lambda: onnx_export.convert(model, config, os.path.join(folder, "f32.onnx")),
        "onnx_int8": lambda: onnx_export.quantize_int8(
            os.path.join(folder, "f32.onnx"), os.path.join(folder, "int8.onnx"), calibration),
        "openvino": lambda: openvino_export.convert(model, config,
                                                    os.path.join(folder, "model.xml")),
    }
    for runtime, step in steps.items():
        started = time.perf_counter()
        step()
        _log(f"  {name}: {runtime} written in {time.perf_counter() - started:.0f} s")


def _build(name, size):
    from keras_attn.applications import get_model

    return get_model(name, weights=None, input_shape=(size, size, 3))


def _saved_model(model, config, path):
    from keras_attn.export import serving
    from keras_attn.layers.grouped_conv import grouped_conv_implementation

    # As `keras_attn.export.saved_model` writes it by default: grouped convolutions packed
    # (dense), which every TensorFlow runs; the other formats' converters trace them as one
    # grouped op each.
    with grouped_conv_implementation("split"):
        inference = serving.inference_model(model)
        serving.write_saved_model(inference, path, {"serving_default": (
            serving.probabilities_fn(inference, config), [serving.pixels_signature(config)])})


def _write(path, content):
    with open(path, "wb") as file:
        file.write(content)


# ---- the timing processes -----------------------------------------------------------------

def _runner(runtime, name, folder, images):
    """A function `batch -> outputs` for `runtime`, loaded from `folder`."""
    import numpy as np

    if runtime == "timm":
        import timm
        import torch

        torch.set_num_threads(os.cpu_count())
        model = timm.create_model(name, num_classes=1000).eval()
        model = model.to(memory_format=torch.channels_last)
        mean = np.array(model.pretrained_cfg["mean"], "float32")
        std = np.array(model.pretrained_cfg["std"], "float32")

        def run(batch):
            pixels = torch.from_numpy(((batch / 255.0 - mean) / std).astype("float32"))
            pixels = pixels.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                return model(pixels)

        return run
    if runtime == "keras":
        import keras_attn

        model = _build(name, images.shape[1])
        model.load_weights(os.path.join(folder, "model.weights.h5"))
        from keras_attn.export import serving

        config = serving.serving_config(model, weights=None, model_name=name)
        optimized = keras_attn.optimize_for_inference(model)
        mean = np.array(config.mean, "float32") * 255
        std = np.array(config.std, "float32") * 255
        return lambda batch: optimized.predict_on_batch((batch - mean) / std)
    if runtime == "saved_model":
        import tensorflow as tf

        function = tf.saved_model.load(os.path.join(folder, "saved_model")).signatures[
            "serving_default"]
        return lambda batch: function(images=tf.constant(batch))
    if runtime.startswith("tflite"):
        from keras_attn.export import tflite_export

        path = os.path.join(folder, "f32.tflite" if runtime == "tflite_f32" else "int8.tflite")
        interpreters = {}

        def run(batch):
            # One interpreter per batch size, allocated once: what a server holds.
            if len(batch) not in interpreters:
                runner = tflite_export.interpreter(path)
                index = runner.get_input_details()[0]["index"]
                runner.resize_tensor_input(index, batch.shape)
                runner.allocate_tensors()
                interpreters[len(batch)] = (runner, index)
            runner, index = interpreters[len(batch)]
            runner.set_tensor(index, batch)
            runner.invoke()
            return runner.get_tensor(runner.get_output_details()[0]["index"])

        return run
    if runtime.startswith("onnx"):
        from keras_attn.export import onnx_export

        session = onnx_export.session(
            os.path.join(folder, "f32.onnx" if runtime == "onnx_f32" else "int8.onnx"))
        return lambda batch: session.run(None, {onnx_export.INPUT_NAME: batch})
    if runtime == "openvino":
        import openvino

        compiled = openvino.Core().compile_model(os.path.join(folder, "model.xml"), "CPU")
        request = compiled.create_infer_request()
        return lambda batch: request.infer({0: batch})
    raise ValueError(f"unknown runtime {runtime!r}")


def time_runtime(runtime, name, folder, warmup, repeats):
    """`{"latency_ms", "images_per_s"}` of `runtime` on `folder/inputs.npy` (median times)."""
    import statistics

    import numpy as np

    from benchmarks import timing

    images = np.load(os.path.join(folder, "inputs.npy"))
    run = _runner(runtime, name, folder, images)
    figures = {}
    for key, batch in (("latency_ms", images[:1]), ("images_per_s", images)):
        for _ in range(warmup):
            run(batch)
        seconds = statistics.median(timing.seconds(lambda batch=batch: run(batch), repeats))
        figures[key] = 1e3 * seconds if key == "latency_ms" else len(batch) / seconds
    return figures


# ---- the driver ---------------------------------------------------------------------------

def _child(argv, timeout):
    result = subprocess.run([sys.executable, "-m", "benchmarks.runtimes", *argv],
                            capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "PYTHONPATH": _pythonpath()})
    if result.returncode:
        return None, result.stderr.strip().splitlines()[-1:]
    return result.stdout.strip().splitlines()[-1], result.stderr.strip().splitlines()


def _pythonpath():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))


def machine():
    """The CPU, its core count and its vector extensions, in words."""
    model = platform.processor() or platform.machine()
    flags = set()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    extensions = [flag.upper() for flag in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16",
                                            "amx_tile") if flag in flags]
    return f"{model}, {os.cpu_count()} cores, {', '.join(extensions) or 'no AVX2'}"


def markdown(results, args, load):
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; load average before the run "
        f"{load[0]:.1f}, after {load[1]:.1f} (the run's own processes keep it near 1.5 on two "
        "cores; more is other work). Random-weight "
        f"networks, {args.image_size}x{args.image_size}, 1000 classes; {args.warmup} untimed "
        f"and {args.repeats} timed calls each, medians. Each cell: batch-1 latency in ms / "
        "batch-8 throughput in images/s; the fastest of each row in bold.",
        "",
        "| network | " + " | ".join(TITLES[runtime] for runtime in args.runtimes) + " |",
        "|---|" + "---:|" * len(args.runtimes),
    ]
    for name, figures in results.items():
        fastest_latency = min((f["latency_ms"] for f in figures.values() if f), default=None)
        fastest_throughput = max((f["images_per_s"] for f in figures.values() if f),
                                 default=None)
        cells = []
        for runtime in args.runtimes:
            figure = figures.get(runtime)
            if figure is None:
                cells.append("failed")
                continue
            latency = f"{figure['latency_ms']:.0f}"
            throughput = f"{figure['images_per_s']:.1f}"
            if figure["latency_ms"] == fastest_latency:
                latency = f"**{latency}**"
            if figure["images_per_s"] == fastest_throughput:
                throughput = f"**{throughput}**"
            cells.append(f"{latency} / {throughput}")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(args):
    load_before = os.getloadavg()[0]
    results = {}
    for name in args.models:
        results[name] = {}
        with tempfile.TemporaryDirectory(prefix="keras_attn_runtimes_") as folder:
            _log(f"{name}: exporting")
            exported, messages = _child(["--_export", name, folder, str(args.image_size)],
                                        timeout=3600)
            if exported is None:
                _log(f"{name}: export failed: {messages}")
                continue
            for runtime in args.runtimes:
                output, messages = _child(
                    ["--_time", runtime, name, folder, "--warmup", str(args.warmup),
                     "--repeats", str(args.repeats)], timeout=1800)
                if output is None:
                    _log(f"  {name}: {runtime} failed: {messages}")
                    results[name][runtime] = None
                    continue
                results[name][runtime] = json.loads(output)
                _log(f"  {name}: {runtime} {results[name][runtime]}")
    return markdown(results, args, (load_before, os.getloadavg()[0]))


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated registered network names (default %(default)s)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES),
                        help="comma-separated runtimes (default %(default)s)")
    parser.add_argument("--image_size", type=int, default=224,
                        help="height and width (default %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="1 untimed and 3 timed calls per figure (default 2 and 10)")
    parser.add_argument("--warmup", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--update-docs", action="store_true",
                        help=f"write the table into {DOCS_PAGE}")
    parser.add_argument("--_export", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--_time", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._export or args._time:
        return args
    from benchmarks import arguments

    args.runtimes = arguments.split_choices(parser, "--runtimes", args.runtimes, RUNTIMES,
                                            "runtime")
    args.names = args.models = [name for name in args.models.split(",") if name]
    args.warmup = (1 if args.quick else 2) if args.warmup is None else args.warmup
    args.repeats = (3 if args.quick else 10) if args.repeats is None else args.repeats
    arguments.check(parser, args, minimums={"warmup": 0, "repeats": 1, "image_size": 32})
    return args


def main(argv=None):
    args = parse(argv)
    if args._export:
        name, folder, size = args._export
        export_all(name, folder, int(size))
        print("exported")
        return
    if args._time:
        runtime, name, folder = args._time
        print(json.dumps(time_runtime(runtime, name, folder, args.warmup or 0,
                                      args.repeats or 1)))
        return
    table = run(args)
    print(table)
    if args.update_docs:
        from tools import sections

        sections.write_sections(DOCS_PAGE, {SECTION: table})


if __name__ == "__main__":
    main()
