"""`keras-attn`: the command line.

    keras-attn models [PATTERN] [--params]
    keras-attn convert --timm-name NAME --checkpoint FILE --output OUT.weights.h5 [--use-ema]
    keras-attn predict --model NAME [--weights imagenet|TAG|FILE] IMAGE...
    keras-attn export --model NAME --format saved_model|tflite|onnx|openvino --output PATH [...]
    keras-attn train --model NAME (--dataset digits | --data_dir DIR) --model_dir DIR [...]
"""

import argparse
import contextlib
import os
import signal
import sys
import threading

import numpy as np


def _models(args):
    from keras_attn.applications import registry, specs

    names = registry.list_models(args.pattern)
    if not names:
        print(f"No model matches {args.pattern!r}.", file=sys.stderr)
        return 1
    counts = {}
    if args.params:
        from keras.utils import Progbar

        progress = Progbar(len(names), unit_name="model", verbose=1 if sys.stderr.isatty() else 2)
        for index, name in enumerate(names, start=1):
            counts[name] = registry.count_parameters(name)
            progress.update(index)
    for name in names:
        spec = specs.SPECS[name]
        params = f"{counts[name]:>13,}" if counts else ""
        print(f"{name:28s}{params}  {spec.default_size:>4d}  {spec.family:11s}  "
              f"{specs.PAPERS[spec.paper].citation}")
    return 0


def _convert(args):
    from keras_attn.convert import timm as timm_convert
    from keras_attn.weights import fetch

    output = args.output
    if not output.endswith(".weights.h5"):
        print(f"--output must end with .weights.h5; received {output!r}.", file=sys.stderr)
        return 2
    if os.path.exists(output) and not args.overwrite:
        print(f"{output!r} exists; pass --overwrite to replace it.", file=sys.stderr)
        return 2
    model = timm_convert.from_timm(args.timm_name, args.checkpoint, use_ema=args.use_ema)
    fetch.save_weights_atomically(model, output)
    print(
        f"{args.timm_name}: {len(model.weights)} weights ({model.count_params():,} values) from "
        f"{args.checkpoint} -> {output} ({os.path.getsize(output) / 2**20:.1f} MiB)"
    )
    return 0


def _predict(args):
    from keras_attn import data
    from keras_attn.applications import decode_predictions, get_model, imagenet_utils, registry

    if args.top < 1:
        print(f"--top must be >= 1; received {args.top}.", file=sys.stderr)
        return 2
    # A file's preprocessing is the network's own; a published tag's is in the manifest.
    published = registry.published_tag(args.weights)
    if published is not None:  # before downloading: an ImageNet-12k tag has no labels here
        imagenet_utils.check_decodable(args.model, published)
    transform = data.eval_transform(args.model, weights=published)
    images = [transform(data.load_image(path)) for path in args.images]
    model = get_model(args.model, weights=args.weights, input_shape=tuple(images[0].shape))
    probabilities = model.predict(np.stack(images), verbose=0)
    for path, best in zip(args.images, decode_predictions(probabilities, top=args.top)):
        print(path)
        for wnid, label, score in best:
            print(f"  {score:6.3f}  {label} ({wnid})")
    return 0


# What each --format offers: its --quantization choices, and a name for messages.
_QUANTIZATIONS = {"saved_model": (), "tflite": ("float16", "dynamic", "int8"),
                  "onnx": ("int8",), "openvino": ()}
_FILE_KINDS = {"tflite": "a TFLite export", "onnx": "an ONNX export",
               "openvino": "an OpenVINO export"}


def _export_usage_error(args):
    """What is wrong with the export's arguments, found before anything is built, or None."""
    output = args.output
    if args.quantization and args.quantization not in _QUANTIZATIONS[args.format]:
        offered = [name for name, choices in _QUANTIZATIONS.items()
                   if args.quantization in choices]
        return (f"--quantization {args.quantization} applies to --format "
                f"{' and '.join(offered)} only.")
    if args.format == "saved_model":
        if os.path.exists(output) and not os.path.isdir(output):
            return f"--output {output!r} is a file; a SavedModel's --output is a folder."
    else:
        kind = _FILE_KINDS[args.format]
        if os.path.isdir(output):
            return f"--output {output!r} is a folder; {kind}'s --output is a file."
        if not os.path.isdir(os.path.dirname(output) or "."):
            return f"--output {output!r}: its folder does not exist."
        if args.format == "openvino" and not output.endswith(".xml"):
            return (f"--output {output!r} must end with .xml: OpenVINO IR is an .xml file and "
                    "its .bin beside it.")
        written = [output]
        if args.format == "openvino":
            written.append(output[: -len(".xml")] + ".bin")
        for path in written:
            if os.path.exists(path) and not args.overwrite:
                return f"{path!r} exists; pass --overwrite to replace it."
        if args.quantization == "int8" and not args.calibration_dir:
            return "--quantization int8 needs --calibration-dir, images to calibrate on."
        for flag, value in (("--version", args.version), ("--labels", args.labels),
                            ("--top-k", args.top_k)):
            if value is not None:
                return f"{flag} applies to --format saved_model only."
    if args.calibration_dir and args.quantization != "int8":
        return "--calibration-dir applies to --quantization int8 (tflite, onnx) only."
    if args.keep_float and args.quantization != "int8":
        return "--keep-float applies to --quantization int8 (tflite, onnx) only."
    for flag, folder in (("--calibration-dir", args.calibration_dir),
                         ("--verify-dir", args.verify_dir)):
        if folder is not None and not os.path.isdir(folder):
            return f"{flag} {folder!r} is not a folder."
        if folder is not None and not _image_paths(folder):
            return f"{flag} {folder!r} holds no JPEG, PNG, GIF or BMP image."
    if args.image_size is not None and args.image_size < 1:
        return f"--image-size must be >= 1; received {args.image_size}."
    if args.labels is not None:
        if not os.path.isfile(args.labels):
            return f"--labels {args.labels!r} is not a file."
        count = len(_read_lines(args.labels))
        if count != args.classes:
            return (f"--labels {args.labels!r} names {count} classes; the model has "
                    f"--classes {args.classes}: one name per line, one line per class.")
    return None


def _export(args):
    from keras_attn import export
    from keras_attn import weights as published_weights
    from keras_attn.applications import get_model, registry

    problem = _export_usage_error(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    weights = None if args.weights == "none" else args.weights
    # As predict and train: a file's preprocessing is the network's own.
    published = registry.published_tag(weights)
    if published is not None:
        tags = published_weights.tags(args.model)
        tag = tags[0] if published == published_weights.IMAGENET and tags else published
        # A tag the network lacks is named by get_model below; ImageNet's count stands here.
        classes = (published_weights.num_classes(args.model, tag) if tag in tags else 1000)
        if args.classes != classes:
            print(f"--classes {args.classes} needs --weights none or a weights file of that "
                  f"many classes: the published weights ({published!r}) classify {classes}.",
                  file=sys.stderr)
            return 2
    shape = None if args.image_size is None else (args.image_size, args.image_size, 3)
    model = get_model(args.model, weights=weights, classes=args.classes, input_shape=shape)
    size = model.input_shape[1]
    labels = _read_lines(args.labels) if args.labels else None
    verify_images = _pixels(args.verify_dir, size, args.model, published)
    # Options left out keep the export functions' defaults.
    options = {key: value for key, value in (("max_abs_error", args.max_error),
                                               ("min_top1_agreement", args.min_agreement),
                                               ("top_k", args.top_k))
               if value is not None}
    if args.format == "saved_model":
        report = export.saved_model(model, args.output, version=args.version, weights=published,
                                    labels=labels, verify_images=verify_images, **options)
    elif args.format == "openvino":
        report = export.openvino(model, args.output, weights=published,
                                 verify_images=verify_images, overwrite=args.overwrite, **options)
    else:
        calibration = _pixels(args.calibration_dir, size, args.model, published)
        if args.format == "onnx":
            report = export.onnx(model, args.output, quantization=args.quantization,
                                 representative_data=calibration, keep_float=args.keep_float,
                                 weights=published, verify_images=verify_images,
                                 overwrite=args.overwrite, **options)
        else:
            report = export.tflite(model, args.output, quantization=args.quantization,
                                   representative_data=calibration, keep_float=args.keep_float,
                                   weights=published, verify_images=verify_images, **options)
    print(report)
    return 0


def _read_lines(path):
    with open(path, encoding="utf-8") as file:
        return [line.strip() for line in file if line.strip()]


def _pixels(folder, size, model, weights):
    """The images of `folder`, resized and center-cropped as `model` is evaluated (pixels)."""
    if folder is None:
        return None
    from keras_attn import data

    config = data.eval_config(model, weights)
    return np.stack([
        data.resize_and_center_crop(data.load_image(path), size, config["crop_pct"],
                                    config["interpolation"]).numpy()
        for path in _image_paths(folder)
    ])


def _image_paths(folder):
    from keras_attn import data

    return sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                  for name in names if name.lower().endswith(data.IMAGE_EXTENSIONS))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-attn",
        description="Channel-attention CNNs for Keras 3 (SE, SK, Split-Attention).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser("models", help="list the networks of the registry")
    models.add_argument("pattern", nargs="?", help="shell pattern, e.g. 'resnest*'")
    models.add_argument("--params", action="store_true", help="build each and count parameters")
    models.set_defaults(handler=_models)

    convert = commands.add_parser(
        "convert", help="convert a timm checkpoint into a Keras .weights.h5 file"
    )
    convert.add_argument("--timm-name", required=True, help="timm (and registry) name")
    convert.add_argument(
        "--checkpoint", required=True,
        help="timm .safetensors, or with torch installed a .pth state dict or a training "
             "checkpoint (model_best.pth.tar)",
    )
    convert.add_argument(
        "--use-ema", action="store_true",
        help="take a training checkpoint's EMA weights (state_dict_ema)",
    )
    convert.add_argument("--output", required=True, help="the .weights.h5 file to write")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output")
    convert.set_defaults(handler=_convert)

    predict = commands.add_parser("predict", help="print the top ImageNet classes of images")
    predict.add_argument("--model", required=True, help="registry name, e.g. resnest50d")
    predict.add_argument(
        "--weights", default="imagenet",
        help="'imagenet', a published tag, or a .weights.h5 / timm checkpoint file",
    )
    predict.add_argument("--top", type=int, default=5, help="classes to print per image")
    predict.add_argument("images", nargs="+", help="JPEG or PNG files")
    predict.set_defaults(handler=_predict)

    export = commands.add_parser(
        "export", help="export a network as a SavedModel (TF Serving), TFLite, ONNX or OpenVINO "
                       "IR, verified in its runtime"
    )
    export.add_argument("--model", required=True, help="registry name")
    export.add_argument("--weights", default="imagenet",
                        help="imagenet, a published tag, a .weights.h5 or timm file, or none")
    export.add_argument("--classes", type=int, default=1000, help="classes of the classifier")
    export.add_argument("--image-size", type=int, help="input size (default: the network's)")
    export.add_argument("--format", required=True, choices=tuple(_QUANTIZATIONS))
    export.add_argument("--output", required=True,
                        help="SavedModel: the model's base folder (versions go inside); "
                             "TFLite, ONNX: the .tflite or .onnx file; OpenVINO: the .xml "
                             "file (the .bin goes beside it)")
    export.add_argument("--overwrite", action="store_true",
                        help="TFLite, ONNX, OpenVINO: replace existing --output files")
    export.add_argument("--version", type=int, help="SavedModel version (default: the next)")
    export.add_argument("--quantization", choices=("float16", "dynamic", "int8"),
                        help="TFLite: float16, dynamic or int8; ONNX: int8 (default: none, "
                             "float32)")
    export.add_argument("--calibration-dir", help="images to calibrate int8 activations on")
    export.add_argument("--keep-float", action="append", metavar="ENTRY",
                        help="int8: operators left in float32, repeatable: 'input' (the "
                             "input normalisation), 'classifier' (the classifier and its "
                             "softmax), 'se' (every Squeeze-and-Excitation layer), "
                             "an operator type (TFLite 'LOGISTIC', ONNX 'Sigmoid') or a node "
                             "name pattern")
    export.add_argument("--verify-dir", help="images to verify on (default: 4 random images)")
    export.add_argument("--labels", help="text file with one class name per line")
    export.add_argument("--top-k", type=int,
                        help="SavedModel: classes serving_bytes returns (default 5)")
    export.add_argument("--max-error", type=float,
                        help="largest allowed probability difference (default per format)")
    export.add_argument("--min-agreement", type=float,
                        help="smallest allowed top-1 agreement, 0-1 (default per format)")
    export.set_defaults(handler=_export)

    commands.add_parser(
        "train", add_help=False,
        help="train or fine-tune a network (an absl program: keras-attn train --help)",
    )
    return parser


@contextlib.contextmanager
def terminate_as_exit():
    """Makes SIGTERM (`timeout`, `docker stop`, a cancelled CI job) unwind the program like
    Ctrl-C does, so that every `finally` removing a partial download, checkpoint or export
    runs; the process then exits with status 128 + SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    received = []
    resends = []

    def resend_soon(signum):
        resend = threading.Timer(0.01, os.kill, (os.getpid(), signum))
        resend.daemon = True
        resends.append(resend)
        resend.start()

    def exit_on_signal(signum, frame):
        received.append(signum)
        if _in_destructor(frame):
            # TensorFlow frees its functions and graphs in `__del__`. Python drops what a
            # destructor raises (and some of TensorFlow's catch everything): send the signal
            # again a moment later, so that it ends the program from outside the destructor.
            resend_soon(signum)
            return
        raise SystemExit(128 + signum)

    def resend_if_dropped(unraisable):
        # The same for the other places whose exceptions Python drops: weakref callbacks,
        # the garbage collector's callbacks.
        if received and isinstance(unraisable.exc_value, SystemExit):
            resend_soon(received[-1])
        else:
            previous_hook(unraisable)

    previous_handler = signal.signal(signal.SIGTERM, exit_on_signal)
    previous_hook, sys.unraisablehook = sys.unraisablehook, resend_if_dropped
    try:
        yield
        if received:  # the signal's exit was caught and dropped on the way out: exit anyway
            raise SystemExit(128 + received[-1])
    finally:
        for resend in resends:
            resend.cancel()
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGTERM, previous_handler)


def _in_destructor(frame):
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def main(argv=None):
    # TensorFlow's C++ start-up messages drown the command's output; users can still opt in.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    with terminate_as_exit():
        if argv[:1] == ["train"]:
            # The training program is an absl app with its own flags (keras-attn train --help).
            from keras_attn.training.train import entry_point

            return entry_point(["keras-attn train", *argv[1:]])
        args = build_parser().parse_args(argv)
        try:
            return args.handler(args)
        except (ValueError, OSError, ImportError) as error:
            # Bad input and unreachable files are the user's to fix: a message, not a traceback.
            print(f"keras-attn {args.command}: error: {error}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
