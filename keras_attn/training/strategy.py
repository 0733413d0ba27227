"""Choosing the `tf.distribute` strategy, and what depends on it."""

import json
import os
import socket

import keras
import tensorflow as tf

# Seconds to wait for a TPU worker to accept a connection. TensorFlow's own connection to an
# address where nothing answers waits forever.
TPU_CONNECT_TIMEOUT = 30.0


def make_strategy(name="auto", tpu=None):
    """The strategy `--strategy` names.

    "auto" picks a TPU when one is reachable (`--tpu` or the environment), multi-worker when
    `TF_CONFIG` describes more than one task, mirrored when there are several GPUs, and one
    device (the first GPU, else the CPU) otherwise.
    """
    if name == "auto":
        name = _auto_strategy_name(tpu)
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            _check_reachable(resolver)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, OSError, tf.errors.OpError) as error:
            raise ValueError(f"Cannot reach the TPU --tpu={tpu!r} names: {error}") from error
        return tf.distribute.TPUStrategy(resolver)
    if name == "multi_worker":
        tf_config()  # TensorFlow's own parse error does not name the variable
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise ValueError(
        f"--strategy must be auto, one_device, mirrored, multi_worker or tpu; received {name!r}."
    )


def _check_reachable(resolver):
    """Raises an `OSError` unless every worker of the resolver's cluster accepts a TCP
    connection (a local TPU has no cluster to check)."""
    for addresses in resolver.cluster_spec().as_dict().values():
        for address in addresses if isinstance(addresses, list) else addresses.values():
            host, _, port = address.rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=TPU_CONNECT_TIMEOUT).close()
            except OSError as error:
                raise OSError(f"no answer from {address} ({error})") from None


def _auto_strategy_name(tpu):
    if tpu or os.environ.get("TPU_NAME"):
        return "tpu"
    cluster = tf_config().get("cluster", {})
    if sum(len(tasks) for tasks in cluster.values()) > 1:
        return "multi_worker"
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return "mirrored"
    return "one_device"


def tf_config():
    """The cluster description in the `TF_CONFIG` environment variable ({} when unset)."""
    text = os.environ.get("TF_CONFIG", "{}")
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {text!r}.") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object; received {text!r}.")
    return config


def is_chief(strategy):
    """Whether this process writes the outputs (the chief, or worker 0 without a chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def worker_id(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return f"{resolver.task_type}_{resolver.task_id}" if resolver and resolver.task_type else "0"


def device_kind(strategy):
    """"TPU", "GPU" or "CPU": where the replicas run."""
    devices = strategy.extended.worker_devices
    for kind in ("TPU", "GPU"):
        if any(kind in device.upper() for device in devices):
            return kind
    return "CPU"


def mixed_precision_policy(strategy):
    """float16 on GPU (with loss scaling), bfloat16 on TPU and CPU."""
    return "mixed_float16" if device_kind(strategy) == "GPU" else "mixed_bfloat16"


def synchronize_batch_norm(model):
    """Makes every BatchNormalization of `model` (nested ones included) compute its batch
    statistics across all replicas, as `BatchNormalization(synchronized=True)` does.

    Returns:
        The number of BatchNormalization layers changed.
    """
    layers = [layer for layer in model._flatten_layers(include_self=False)
              if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.synchronized = True
    return len(layers)
