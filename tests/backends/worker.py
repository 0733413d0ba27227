"""Runs under a chosen KERAS_BACKEND in a subprocess of tests/backends (one backend a process).

    KERAS_BACKEND=jax python -m tests.backends.worker save DIR   # writes DIR/<family>.keras + .npz
    KERAS_BACKEND=jax python -m tests.backends.worker load DIR   # DIR/<family>.<backend>.npz
    KERAS_BACKEND=jax python -m tests.backends.worker load DIR1 save DIR2   # both, in order
    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        python -m tests.backends.worker data_parallel DIR        # DIR/data_parallel.npz
"""

import os
import sys

import keras
import numpy as np

from keras_attn import testing
from keras_attn.applications import get_model

_SMALL = {"widths": (16, 32, 64, 128), "depths": (1, 1, 1, 1), "input_shape": (64, 64, 3)}
# Small networks that between them hold every layer this package saves in a `.keras` file:
# GroupedConv2D, FusedBatchNormalization, PointwiseConv2D (in the gates), SqueezeExcite,
# SelectiveKernel, SplitAttention, and, in the gate slot of three of them, ECA, CBAM and Global
# Context. The other networks (SENet, ResNeXt, SE-BN-Inception, ...) are Keras' own layers
# arranged around these.
FAMILIES = {
    "resnest_eca": ("resnest50d", dict(_SMALL, stem_width=8, gate="eca")),
    "seresnextaa": ("seresnextaa101d_32x8d", dict(_SMALL, cardinality=4, stem_width=8)),
    "sknet_cbam": ("skresnext50_32x4d", dict(_SMALL, cardinality=4, gate="cbam")),
    "resnext_gc": ("resnext29_8x64d", {"widths": (8, 16, 32), "depths": (1, 1, 1),
                                       "cardinality": 2, "gate": "gc",
                                       "input_shape": (32, 32, 3)}),
}
# The data-parallel step's network: grouped convolutions, SE gates and BatchNorm statistics.
_DATA_PARALLEL = ("seresnext26d_32x4d", dict(_SMALL, cardinality=4, stem_width=8))


def _outputs(model, images):
    # predict compiles the whole network once; an eager call under JAX compiles op by op.
    return model.predict(images, batch_size=len(images), verbose=0)


def save(folder):
    """Saves each family's network with random weights and BatchNorm statistics, its input
    batch and its outputs on this backend."""
    keras.utils.set_random_seed(0)
    for family, (name, overrides) in FAMILIES.items():
        model = get_model(name, classes=5, **overrides)
        testing.perturb_batch_norm_statistics(model)
        images = testing.random_images((2, *model.input_shape[1:]))
        model.save(os.path.join(folder, f"{family}.keras"))
        np.savez(os.path.join(folder, f"{family}.npz"), images=images,
                 outputs=_outputs(model, images))


def load(folder):
    """Loads every `.keras` in `folder` and writes its outputs on this backend."""
    backend = keras.backend.backend()
    for family in FAMILIES:
        model = keras.saving.load_model(os.path.join(folder, f"{family}.keras"))
        images = np.load(os.path.join(folder, f"{family}.npz"))["images"]
        np.savez(os.path.join(folder, f"{family}.{backend}.npz"), outputs=_outputs(model, images))


def data_parallel(folder):
    """One SGD step on a global batch under `keras.distribution.DataParallel` over every
    device, and the same step on one device; writes both sets of weights."""
    import jax

    devices = jax.devices()
    name, overrides = _DATA_PARALLEL
    images = testing.random_images((8, 64, 64, 3))
    labels = np.arange(8) % 5

    def one_step():
        keras.utils.set_random_seed(0)
        model = get_model(name, classes=5, **overrides)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        before = [keras.ops.convert_to_numpy(w) for w in model.weights]
        model.train_on_batch(images, labels)
        return before, [keras.ops.convert_to_numpy(w) for w in model.weights]

    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    _, parallel = one_step()
    sharding = str(keras.distribution.distribution().get_data_layout(images.shape).axes)
    keras.distribution.set_distribution(None)
    with jax.default_device(devices[0]):
        initial, single = one_step()
    arrays = {}
    for prefix, weights in (("initial", initial), ("parallel", parallel), ("single", single)):
        arrays.update({f"{prefix}_{i}": w for i, w in enumerate(weights)})
    np.savez(os.path.join(folder, "data_parallel.npz"), devices=len(devices), sharding=sharding,
             **arrays)

if __name__ == "__main__":
    # COMMAND DIR pairs, run in order in this one process (each process start imports the
    # backend and Keras again).
    arguments = sys.argv[1:]
    for command, folder in zip(arguments[::2], arguments[1::2], strict=True):
        {"save": save, "load": load, "data_parallel": data_parallel}[command](folder)
