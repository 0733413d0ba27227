"""Formulations of one grouped 3x3 convolution, side by side (TensorFlow, this CPU).

    python -m benchmarks.grouped_conv
    TF_ENABLE_ONEDNN_OPTS=0 python -m benchmarks.grouped_conv     # TensorFlow's portable kernels

For ResNeXt-50's four grouped shapes (32 groups, batch 8), ResNeSt's radix-2 shape and the
dilated branch of SKNet-50's (skresnext50_32x4d) first stage (its other branch is ResNeXt-50's
first shape), the median time of a forward pass and of a forward + backward pass (gradients
for the input and the kernel) of:
- keras: Keras' `Conv2D(groups=g)` on TensorFlow (an XLA-compiled grouped convolution);
- tf-onednn: TensorFlow's grouped `Conv2D` outside XLA, `GroupedConv2D`'s "native" when
  TensorFlow runs its oneDNN kernels (only then: the portable kernels have no gradient for it);
- split-N: `GroupedConv2D`'s "split", groups packed N to a dense block-diagonal convolution
  (N=1: one convolution per group; N=g: one dense convolution); the layer packs to >= 16
  input channels (`grouped_conv.groups_per_split`);
- depthwise: a depthwise convolution with multiplier `out/group` and a sum within each group;
- pytorch: PyTorch's grouped convolution (oneDNN, channels_last) on the same input and kernel,
  when torch is importable: what timm runs.
`--threads N` runs every convolution on N threads (TensorFlow's intra-op pool, PyTorch's
`set_num_threads`; by default each framework's own). Prints a markdown table of milliseconds.
"""

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    # Before TensorFlow: importing torch after XLA has compiled aborts the process (both
    # register LLVM's command-line options).
    import torch
except ImportError:
    torch = None

# Read once, when TensorFlow is imported: oneDNN's CPU kernels unless the variable says otherwise
# (TensorFlow turns them on by itself only on some CPUs).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from keras_attn.layers import grouped_conv  # noqa: E402, I001
import tensorflow as tf  # noqa: E402

from benchmarks import timing  # noqa: E402

SHAPES = [  # (size, input channels, output channels, groups, dilation)
    (56, 128, 128, 32, 1), (28, 256, 256, 32, 1), (14, 512, 512, 32, 1), (7, 1024, 1024, 32, 1),
    (56, 128, 128, 2, 1), (56, 128, 128, 32, 2),
]


@tf.function(jit_compile=True)
def _xla_conv(x, kernel, dilation):
    return tf.nn.convolution(x, kernel, 1, "SAME", dilations=dilation)


def keras_native(x, kernel, groups, dilation):
    return _xla_conv(x, kernel, dilation)


def tf_onednn(x, kernel, groups, dilation):
    return tf.nn.conv2d(x, kernel, 1, "SAME", dilations=dilation)


def split(x, kernel, groups, dilation, per_split):
    splits = groups // per_split
    parts = zip(tf.split(x, splits, axis=-1), tf.split(kernel, splits, axis=-1))
    return tf.concat([tf.nn.convolution(part, grouped_conv.block_diagonal(k, per_split), 1, "SAME",
                                        dilations=dilation)
                      for part, k in parts], axis=-1)


def depthwise(x, kernel, groups, dilation):
    kh, kw, per_group, out = kernel.shape
    out_per_group = out // groups
    weights = tf.reshape(kernel, (kh, kw, per_group, groups, out_per_group))
    weights = tf.reshape(tf.transpose(weights, (0, 1, 3, 2, 4)), (kh, kw, -1, out_per_group))
    y = tf.nn.depthwise_conv2d(x, weights, (1, 1, 1, 1), "SAME", dilations=(dilation, dilation))
    batch, height, width = y.shape[:3]
    y = tf.reshape(y, (batch, height, width, groups, per_group, out_per_group))
    return tf.reshape(tf.reduce_sum(y, axis=4), (batch, height, width, out))


def pytorch(x, kernel, groups, dilation):
    """PyTorch's output and timings (forward, forward + backward) on TensorFlow's `x` and
    Keras-layout `kernel`."""
    inputs = torch.from_numpy(x.numpy()).permute(0, 3, 1, 2)
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    weight = torch.from_numpy(kernel.numpy()).permute(3, 2, 0, 1).contiguous()

    def convolution(x, w):
        return torch.nn.functional.conv2d(x, w, padding=dilation, dilation=dilation,
                                          groups=groups)

    def forward():
        with torch.no_grad():
            return convolution(inputs, weight)

    def train():
        x, w = inputs.detach().requires_grad_(), weight.detach().requires_grad_()
        return torch.autograd.grad(convolution(x, w).square().sum(), [x, w])

    outputs = tf.constant(forward().permute(0, 2, 3, 1).numpy())
    return outputs, (_median_ms(forward), _median_ms(train))


def _median_ms(function, *args, repeats=5):
    function(*args)
    return 1e3 * statistics.median(timing.seconds(lambda: function(*args), repeats))


def _timings(formulation, x, kernel):
    forward = tf.function(lambda x, k: formulation(x, k))

    @tf.function
    def train(x, k):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            loss = tf.reduce_sum(tf.square(formulation(x, k)))
        return tape.gradient(loss, [x, k])

    return _median_ms(forward, x, kernel), _median_ms(train, x, kernel)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Set TF_ENABLE_ONEDNN_OPTS=0 to time TensorFlow's portable kernels.",
    )
    parser.add_argument("--threads", type=int,
                        help="threads per convolution, TensorFlow's and PyTorch's (default: "
                             "each framework's own)")
    parser.add_argument("--no_pytorch", dest="pytorch", action="store_false",
                        help="leave out the PyTorch row")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1; received {args.threads}")
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    with_pytorch = args.pytorch and torch is not None
    if with_pytorch:
        torch.set_num_threads(args.threads or os.cpu_count())
    elif args.pytorch:
        print("pytorch rows skipped: torch is not importable", file=sys.stderr)
    lines = ["| input (batch 8) | output | groups | dilation | formulation | forward ms "
             "| forward + backward ms |", "|---|---:|---:|---:|---|---:|---:|"]
    for size, channels, filters, groups, dilation in SHAPES:
        x = tf.random.normal((8, size, size, channels))
        kernel = tf.random.normal((3, 3, channels // groups, filters)) * 0.1
        reference = keras_native(x, kernel, groups, dilation)
        formulations = {"keras": keras_native, "depthwise": depthwise}
        if grouped_conv.grouped_conv_choice().implementation == "native":
            formulations["tf-onednn"] = tf_onednn
        for per_split in sorted({1, grouped_conv.groups_per_split(groups, channels // groups),
                                 min(8, groups), groups}):
            formulations[f"split-{per_split}"] = (
                lambda x, k, g, d, n=per_split: split(x, k, g, d, n))
        chosen = ("tf-onednn" if grouped_conv.resolve_implementation("auto") == "native" else
                  f"split-{grouped_conv.groups_per_split(groups, channels // groups)}")
        rows = {}
        for name, function in formulations.items():
            def formulation(x, k, function=function, groups=groups, dilation=dilation):
                return function(x, k, groups, dilation)

            rows[f"**{name}** (auto)" if name == chosen else name] = (
                formulation(x, kernel), _timings(formulation, x, kernel))
        if with_pytorch:
            rows["pytorch"] = pytorch(x, kernel, groups, dilation)
        for label, (outputs, (forward, train)) in rows.items():
            error = float(tf.reduce_max(tf.abs(outputs - reference)))
            assert error < 1e-3, f"{label} differs from Keras by {error}"
            lines.append(f"| {size}x{size}x{channels} | {filters} | {groups} | {dilation} "
                         f"| {label} | {forward:.1f} | {train:.1f} |")
            print(lines[-1], flush=True)
    onednn = f"TF_ENABLE_ONEDNN_OPTS={os.environ['TF_ENABLE_ONEDNN_OPTS']}"
    threads = (f"{args.threads} thread{'s' * (args.threads > 1)}" if args.threads
               else "default threads")
    pytorch_version = f", PyTorch {torch.__version__}" if with_pytorch else ""
    print(f"\nTensorFlow {tf.__version__}{pytorch_version}, {onednn}, {threads}; "
          "ms, median of 5.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
