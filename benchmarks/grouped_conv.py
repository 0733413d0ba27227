"""Formulations of one grouped 3x3 convolution, side by side (TensorFlow, this CPU).

    python -m benchmarks.grouped_conv

For ResNeXt-50's four grouped shapes (32 groups, batch 8) and ResNeSt's radix-2 shape, the
median time of a forward pass and of a forward + backward pass (gradients for the input and
the kernel) of:
- keras: Keras' `Conv2D(groups=g)` on TensorFlow (an XLA-compiled grouped convolution);
- split-N: `GroupedConv2D`'s "split", groups packed N to a dense block-diagonal convolution
  (N=1: one convolution per group; N=g: one dense convolution); the layer packs to >= 16
  input channels (`grouped_conv.groups_per_split`);
- depthwise: a depthwise convolution with multiplier `out/group` and a sum within each group.
Prints a markdown table of milliseconds.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from keras_attn.layers import grouped_conv  # noqa: E402

SHAPES = [  # (size, channels, groups)
    (56, 128, 32), (28, 256, 32), (14, 512, 32), (7, 1024, 32), (56, 128, 2),
]


@tf.function(jit_compile=True)
def _xla_conv(x, kernel):
    return tf.nn.conv2d(x, kernel, 1, "SAME")


def keras_native(x, kernel, groups):
    return _xla_conv(x, kernel)


def split(x, kernel, groups, per_split):
    splits = groups // per_split
    parts = zip(tf.split(x, splits, axis=-1), tf.split(kernel, splits, axis=-1))
    return tf.concat([tf.nn.conv2d(part, grouped_conv.block_diagonal(k, per_split), 1, "SAME")
                      for part, k in parts], axis=-1)


def depthwise(x, kernel, groups):
    kh, kw, per_group, out = kernel.shape
    out_per_group = out // groups
    weights = tf.reshape(kernel, (kh, kw, per_group, groups, out_per_group))
    weights = tf.reshape(tf.transpose(weights, (0, 1, 3, 2, 4)), (kh, kw, -1, out_per_group))
    y = tf.nn.depthwise_conv2d(x, weights, (1, 1, 1, 1), "SAME")
    batch, height, width = y.shape[:3]
    y = tf.reshape(y, (batch, height, width, groups, per_group, out_per_group))
    return tf.reshape(tf.reduce_sum(y, axis=4), (batch, height, width, out))


def _median_ms(function, *args, repeats=5):
    function(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _timings(formulation, x, kernel):
    forward = tf.function(lambda x, k: formulation(x, k))

    @tf.function
    def train(x, k):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            loss = tf.reduce_sum(tf.square(formulation(x, k)))
        return tape.gradient(loss, [x, k])

    return _median_ms(forward, x, kernel), _median_ms(train, x, kernel)


def main():
    lines = ["| input (batch 8) | groups | formulation | forward ms | forward + backward ms |",
             "|---|---:|---|---:|---:|"]
    for size, channels, groups in SHAPES:
        x = tf.random.normal((8, size, size, channels))
        kernel = tf.random.normal((3, 3, channels // groups, channels)) * 0.1
        reference = keras_native(x, kernel, groups)
        formulations = {"keras": keras_native, "depthwise": depthwise}
        for per_split in sorted({1, grouped_conv.groups_per_split(groups, channels // groups),
                                 min(8, groups), groups}):
            formulations[f"split-{per_split}"] = (
                lambda x, k, g, n=per_split: split(x, k, g, n))
        chosen = f"split-{grouped_conv.groups_per_split(groups, channels // groups)}"
        for name, function in formulations.items():
            def formulation(x, k, function=function, groups=groups):
                return function(x, k, groups)

            error = float(tf.reduce_max(tf.abs(formulation(x, kernel) - reference)))
            assert error < 1e-3, f"{name} differs from Keras by {error}"
            forward, train = _timings(formulation, x, kernel)
            label = f"**{name}** (auto)" if name == chosen else name
            lines.append(f"| {size}x{size}x{channels} | {groups} | {label} | {forward:.1f} "
                         f"| {train:.1f} |")
            print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
