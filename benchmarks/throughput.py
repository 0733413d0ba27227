"""Images/s of keras_attn networks beside keras.applications.ResNet50 and timm, in one process.

    python -m benchmarks.throughput                                   # the five networks below
    python -m benchmarks.throughput resnext50_32x4d --implementations auto,native
    python -m benchmarks.throughput --update-docs                     # docs/performance.md
    KERAS_BACKEND=jax python -m benchmarks.throughput --dtype_policy mixed_bfloat16 --batch_size 64

For every registered name and grouped-convolution implementation (`GroupedConv2D`): batch-1
latency, batch-N inference images/s of the plain model and of the one
`keras_attn.optimize_for_inference` returns, and one training step's images/s of the plain model
(SGD, cross-entropy), with their ratios to `keras.applications.ResNet50` (as Keras builds it)
measured in the same run. TensorFlow's oneDNN CPU kernels are turned on
(`TF_ENABLE_ONEDNN_OPTS=1`, as docs/performance.md advises) unless the variable is set. When torch
and timm are importable the same architecture runs in timm beside it (eager; AMP under a mixed
policy on a GPU), in each of `--timm_memory_formats`, and the table gives timm's faster one.
Every model is built and warmed up (`--warmup` untimed calls) first; then `--rounds` rounds go
over all of them in turn, timing `--repeats` calls of each, so that a drift in the machine's
speed (a shared CPU) falls alike on every network and on the baseline.
Each figure is the median of its `rounds * repeats` times. The output is a markdown table.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    # Before TensorFlow: importing torch after XLA has compiled aborts the process (both
    # register LLVM's command-line options).
    import timm
    import torch
except ImportError as error:
    timm = torch = None
    _TIMM_MISSING = str(error)

# Read once, when TensorFlow is imported: oneDNN's kernels for keras.applications.ResNet50 as for
# ours (TensorFlow turns them on by itself only on some CPUs).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras_attn  # noqa: E402, I001
import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import arguments, timing  # noqa: E402
from tools import sections  # noqa: E402
from keras_attn.applications import get_model  # noqa: E402
from keras_attn.layers import GroupedConv2D, grouped_conv, grouped_conv_implementation  # noqa: E402

DEFAULT_NAMES = ("resnext50_32x4d", "seresnext50_32x4d", "skresnext50_32x4d", "resnest50d",
                 "seresnet50")
# The first row, the baseline of every ratio; "resnet50" among the names is this package's.
BASELINE = "keras.applications.ResNet50"
# PyTorch's memory formats by the names --timm_memory_formats takes. Which one runs timm faster
# depends on the network: on a 2-core AVX-512 CPU, batch 8, channels_last ran ResNeXt-50 at 26.2
# images/s and contiguous at 21.2, but SKNet-50 at 13.0 and 16.2.
TIMM_MEMORY_FORMATS = {"channels_last": "channels_last", "contiguous": "contiguous_format"}
CLASSES = 1000
# Rows that timm registers under no name: built as timm's own ResNet with the attention layer
# its `create_attn` names (as tests/fixtures/timm_models.json's "source" says).
TIMM_UNREGISTERED = {
    "cbamresnet18": ("resnet18", {"block_args": {"attn_layer": "cbam"}}),
    "cbamresnet50": ("resnet50", {"block_args": {"attn_layer": "cbam"}}),
    "gcresnet50": ("resnet50", {"block_args": {"attn_layer": "gc"}}),
}


def _warm(calls, warmup):
    for call in calls.values():
        for _ in range(warmup):
            call()


def _figure(key, seconds, batch_size):
    """A column's figure from a median time: batch-1 milliseconds or images/s."""
    return 1e3 * seconds if key.endswith("latency_ms") else batch_size / seconds


def _log(message):
    print(message, file=sys.stderr, flush=True)


class Keras:
    """Times a Keras model with predict_on_batch / train_on_batch (any backend)."""

    def __init__(self, args):
        self.args = args
        rng = np.random.default_rng(0)
        self.images = rng.uniform(0, 255, (args.batch_size, args.image_size, args.image_size, 3))
        self.images = self.images.astype("float32")
        self.labels = rng.integers(0, CLASSES, args.batch_size)

    def build(self, name):
        shape = (self.args.image_size, self.args.image_size, 3)
        if name == BASELINE:
            return keras.applications.ResNet50(weights=None, input_shape=shape, classes=CLASSES)
        return get_model(name, input_shape=shape, classes=CLASSES)

    def prepare(self, name, implementation, first):
        """The row's parameter count and timed calls, traced and warmed up under
        `implementation`; None when the model has no grouped convolution and this is not the
        first implementation (every implementation computes it alike)."""
        args, one = self.args, self.images[:1]
        with grouped_conv_implementation(implementation):
            model = self.build(name)
            grouped = any(isinstance(layer, GroupedConv2D) for layer in model._flatten_layers())
            if not (grouped or first):
                return None
            optimized = keras_attn.optimize_for_inference(model)
            calls = {"latency_ms": lambda: model.predict_on_batch(one),
                     "infer": lambda: model.predict_on_batch(self.images),
                     "optimized_latency_ms": lambda: optimized.predict_on_batch(one),
                     "optimized_infer": lambda: optimized.predict_on_batch(self.images)}
            if args.train:
                model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                              loss="sparse_categorical_crossentropy",
                              jit_compile=args.jit_compile)
                calls["train"] = lambda: model.train_on_batch(self.images, self.labels)
            # Traced here: the implementation is chosen when a layer is traced.
            _warm(calls, max(1, args.warmup))
        return model.count_params(), calls


class Timm:
    """The same architecture in timm on PyTorch (eager, AMP when mixed on GPU)."""

    def __init__(self, args):
        self.timm, self.torch, self.args = timm, torch, args
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            torch.set_num_threads(os.cpu_count())
        self.amp = args.dtype_policy.startswith("mixed") and self.device == "cuda"
        self.amp_dtype = torch.bfloat16 if "bfloat16" in args.dtype_policy else torch.float16
        generator = torch.Generator().manual_seed(0)
        size = (args.batch_size, 3, args.image_size, args.image_size)
        self.images = torch.rand(size, generator=generator).to(self.device)
        self.labels = torch.randint(0, CLASSES, (args.batch_size,), generator=generator)
        self.labels = self.labels.to(self.device)

    def has(self, name):
        return name in TIMM_UNREGISTERED or self.timm.is_model(name)

    def _sync(self, call):
        def timed():
            call()
            if self.device == "cuda":
                self.torch.cuda.synchronize()
        return timed

    def prepare(self, name, memory_format):
        """The row's parameter count and timed calls in `memory_format` (one of
        `TIMM_MEMORY_FORMATS`), warmed up."""
        torch, args = self.torch, self.args
        memory_format = getattr(torch, TIMM_MEMORY_FORMATS[memory_format])
        name, kwargs = TIMM_UNREGISTERED.get(name, (name, {}))
        model = self.timm.create_model(name, num_classes=CLASSES, **kwargs).to(self.device)
        model = model.to(memory_format=memory_format)
        images = self.images.contiguous(memory_format=memory_format)
        autocast = torch.autocast(self.device, dtype=self.amp_dtype, enabled=self.amp)

        def infer(images):
            model.eval()
            with torch.inference_mode(), autocast:
                model(images)

        calls = {"latency_ms": self._sync(lambda: infer(images[:1])),
                 "infer": self._sync(lambda: infer(images))}
        if args.train:
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            scaler = torch.amp.GradScaler(self.device, enabled=self.amp and
                                          self.amp_dtype == torch.float16)

            def step():
                model.train()
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    loss = torch.nn.functional.cross_entropy(model(images), self.labels)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()

            calls["train"] = self._sync(step)
        _warm(calls, args.warmup)
        return sum(p.numel() for p in model.parameters()), calls


def _timm_or_none(args):
    if not args.timm:
        return None
    if timm is None:
        _log(f"timm column skipped: {_TIMM_MISSING}")
        return None
    return Timm(args)


def _ratio(value, base):
    return f"{value / base:.2f}x" if value and base else "—"


def _number(value, digits=1):
    return "—" if value is None else f"{value:.{digits}f}"


def _fastest(by_format, key, digits):
    """timm's figure for `key` in its fastest memory format, named when more than one ran."""
    measured = {name: figures[key] for name, figures in by_format.items() if figures.get(key)}
    if not measured:
        return "—"
    fastest = max(measured, key=measured.get)
    named = f" ({fastest})" if len(by_format) > 1 else ""
    return f"{measured[fastest]:.{digits}f}{named}"


def markdown(rows, args):
    """The table: one line per (network, implementation), ratios to ResNet50 of the same run."""
    base = rows[0]["keras"]
    onednn = (f", TF_ENABLE_ONEDNN_OPTS={os.environ['TF_ENABLE_ONEDNN_OPTS']}"
              if keras.backend.backend() == "tensorflow" else "")
    lines = [
        f"Backend {keras.backend.backend()}{onednn}, {args.dtype_policy}, batch {args.batch_size}, "
        f"{args.image_size}x{args.image_size}; images/s (ratio to keras.applications.ResNet50's "
        "plain inference or training in the same run); grouped convolutions auto: "
        f"{grouped_conv.grouped_conv_choice(keras.config.dtype_policy().compute_dtype)}.",
        "",
        "| network | grouped conv | params | batch-1 ms plain / optimized | inference img/s "
        "| optimized inference img/s | training img/s | timm inference img/s "
        "| timm training img/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ours, timm = row["keras"], row.get("timm") or {}
        infer = f"{ours['infer']:.1f} ({_ratio(ours['infer'], base['infer'])})"
        optimized = (f"{ours['optimized_infer']:.1f} "
                     f"({_ratio(ours['optimized_infer'], base['infer'])})")
        train = (f"{_number(ours.get('train'), 2)} "
                 f"({_ratio(ours.get('train'), base.get('train'))})" if args.train else "—")
        lines.append(
            f"| {row['name']} | {row['implementation']} | {ours['params'] / 1e6:.2f}M "
            f"| {ours['latency_ms']:.0f} / {ours['optimized_latency_ms']:.0f} | {infer} "
            f"| {optimized} | {train} | {_fastest(timm, 'infer', 1)} "
            f"| {_fastest(timm, 'train', 2)} |"
        )
    return "\n".join(lines) + "\n"


def run(args):
    if args.dtype_policy != "float32":
        keras.config.set_dtype_policy(args.dtype_policy)
    ours, timm = Keras(args), _timm_or_none(args)
    rows, timed = [], []  # timed: (the figures' dict, its calls)
    started = time.perf_counter()
    for name in (BASELINE, *args.names):
        for index, implementation in enumerate(args.implementations):
            _log(f"[{time.perf_counter() - started:5.0f}s] building {name} ({implementation})")
            prepared = ours.prepare(name, implementation, first=index == 0)
            if prepared is None:
                continue
            row = {"name": name, "implementation": implementation,
                   "keras": {"params": prepared[0]}}
            timed.append((row["keras"], prepared[1]))
            if timm is not None and index == 0 and timm.has(name):
                row["timm"] = {}  # figures by memory format
                for memory_format in args.timm_memory_formats:
                    params, calls = timm.prepare(name, memory_format)
                    row["timm"][memory_format] = {"params": params}
                    timed.append((row["timm"][memory_format], calls))
            rows.append(row)
    medians = timing.interleaved_medians(
        {(index, key): call for index, (_, calls) in enumerate(timed)
         for key, call in calls.items()},
        args.rounds, args.repeats,
        log=lambda message: _log(f"[{time.perf_counter() - started:5.0f}s] {message}"))
    for (index, key), seconds in medians.items():
        timed[index][0][key] = _figure(key, seconds, args.batch_size)
    for row in rows:
        _log(f"    {row['name']} ({row['implementation']}): {row['keras']} timm: {row.get('timm')}")
    return markdown(rows, args)


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(DEFAULT_NAMES),
                        help="registered network names (keras_attn.applications.list_models()); "
                        "default: %(default)s")
    parser.add_argument("--batch_size", type=int, default=8,
                        help="images per throughput call (default %(default)s)")
    parser.add_argument("--image_size", type=int, default=224,
                        help="height and width (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed calls of each model before the rounds (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls of each model in each round (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over all the models, interleaved (default %(default)s)")
    parser.add_argument("--implementations", default="auto",
                        help="comma-separated GroupedConv2D implementations: "
                        f"{', '.join(grouped_conv.IMPLEMENTATIONS)} (default %(default)s)")
    parser.add_argument("--dtype_policy", default="float32",
                        choices=("float32", "mixed_float16", "mixed_bfloat16"),
                        help="Keras dtype policy of every model; timm runs AMP under a mixed "
                        "one on a GPU (default %(default)s)")
    parser.add_argument("--jit_compile", default="auto",
                        help="Model.compile's jit_compile for the training step: auto, true or "
                        "false (default %(default)s)")
    parser.add_argument("--no_train", dest="train", action="store_false",
                        help="skip the training steps")
    parser.add_argument("--no_timm", dest="timm", action="store_false",
                        help="skip timm even where it is importable")
    parser.add_argument("--timm_memory_formats", default="channels_last,contiguous",
                        help="comma-separated PyTorch memory formats to run timm in: "
                        f"{', '.join(TIMM_MEMORY_FORMATS)}; the table gives the faster "
                        "(default %(default)s)")
    parser.add_argument("--update-docs", action="store_true",
                        help="write the table between the markers of --docs_section "
                        "(docs/performance.md)")
    parser.add_argument("--docs_section", default="throughput",
                        choices=("throughput", "throughput-gpu"),
                        help="the CPU or the GPU table (default %(default)s)")
    args = parser.parse_args(argv)
    args.implementations = arguments.split_choices(
        parser, "--implementations", args.implementations, grouped_conv.IMPLEMENTATIONS,
        "implementation")
    args.timm_memory_formats = arguments.split_choices(
        parser, "--timm_memory_formats", args.timm_memory_formats, TIMM_MEMORY_FORMATS,
        "memory format")
    args.jit_compile = {"auto": "auto", "true": True, "false": False}.get(
        args.jit_compile.lower())
    if args.jit_compile is None:
        parser.error("--jit_compile must be auto, true or false")
    arguments.check(parser, args, minimums={"batch_size": 1, "image_size": 1, "warmup": 0,
                                            "repeats": 1, "rounds": 1})
    return args


def main(argv=None):
    args = parse(argv)
    table = run(args)
    print(table)
    if args.update_docs:
        sections.update({args.docs_section: table})


if __name__ == "__main__":
    main()
