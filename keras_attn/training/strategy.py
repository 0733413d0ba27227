"""Choosing the `tf.distribute` strategy, and what depends on it."""

import json
import os
import socket

import keras
import tensorflow as tf

__all__ = [
    "device_kind", "is_chief", "make_strategy", "mixed_precision_policy",
    "synchronize_batch_norm", "tf_config", "worker_id",
]

# Seconds to wait for a TPU worker to accept a connection. TensorFlow's own connection to an
# address where nothing answers waits forever.
TPU_CONNECT_TIMEOUT = 30.0


def make_strategy(name="auto", tpu=None):
    """The strategy `--strategy` names.

    "auto" picks a TPU when one is named (`--tpu` or the `TPU_NAME` environment variable),
    multi-worker when `TF_CONFIG` describes more than one task, mirrored when there are
    several GPUs, and one device (the first GPU, else the CPU) otherwise.

    Args:
        name: "auto", "one_device", "mirrored", "multi_worker" or "tpu".
        tpu: the TPU's name or address (`--tpu`), for "tpu" and "auto".

    Returns:
        A `tf.distribute.Strategy`: `TPUStrategy`, `MultiWorkerMirroredStrategy`,
        `MirroredStrategy` or `OneDeviceStrategy`.

    Raises:
        ValueError: an unknown `name`; a TPU that cannot be reached (every worker of its
            cluster must accept a connection within `TPU_CONNECT_TIMEOUT` seconds); or a
            `TF_CONFIG` that is no JSON object (for "auto" and "multi_worker").

    Examples:
        >>> strategy = make_strategy("one_device")
        >>> type(strategy).__name__, strategy.num_replicas_in_sync
        ('OneDeviceStrategy', 1)
        >>> make_strategy("gpu")
        Traceback (most recent call last):
        ...
        ValueError: --strategy must be auto, one_device, mirrored, ...; received 'gpu'.
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
    """The cluster description in the `TF_CONFIG` environment variable ({} when unset).

    Read here, rather than left to TensorFlow, so that a malformed value gets a message
    that names the variable.

    Returns:
        The parsed JSON object, a dict (`{"cluster": {...}, "task": {...}}` on a cluster);
        `{}` when the variable is unset.

    Raises:
        ValueError: the variable is not valid JSON, or not a JSON object.

    Examples:
        >>> import json, os
        >>> os.environ["TF_CONFIG"] = json.dumps(
        ...     {"cluster": {"worker": ["host1:2222", "host2:2222"]},
        ...      "task": {"type": "worker", "index": 1}})
        >>> tf_config()["task"]
        {'type': 'worker', 'index': 1}
        >>> os.environ["TF_CONFIG"] = "worker=1"
        >>> tf_config()
        Traceback (most recent call last):
        ...
        ValueError: TF_CONFIG is not valid JSON (...): 'worker=1'.
        >>> del os.environ["TF_CONFIG"]
        >>> tf_config()
        {}
    """
    text = os.environ.get("TF_CONFIG", "{}")
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {text!r}.") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object; received {text!r}.")
    return config


def is_chief(strategy):
    """Whether this process writes the outputs (the chief, or worker 0 without a chief).

    The other workers of a multi-worker run compute the same steps but write only to
    scratch folders, so that the outputs in `--model_dir` have one writer.

    Args:
        strategy: the run's `tf.distribute.Strategy`.

    Returns:
        True for a strategy without a cluster (one machine), for the chief, and for worker
        0 of a cluster without a chief; False for every other task.

    Examples:
        >>> import types
        >>> import tensorflow as tf
        >>> is_chief(tf.distribute.OneDeviceStrategy("/cpu:0"))
        True
        >>> cluster = tf.train.ClusterSpec({"worker": ["host1:2222", "host2:2222"]})
        >>> for task_id in (0, 1):     # what a MultiWorkerMirroredStrategy's resolver holds
        ...     resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        ...         cluster, task_type="worker", task_id=task_id)
        ...     print(is_chief(types.SimpleNamespace(cluster_resolver=resolver)))
        True
        False
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def worker_id(strategy):
    """This worker's name in the cluster, e.g. `"worker_1"`; `"0"` without a cluster.

    It names a non-chief worker's scratch folders (`.worker-worker_1`).

    Args:
        strategy: the run's `tf.distribute.Strategy`.

    Returns:
        `"<task type>_<task id>"`, or `"0"` when the strategy has no cluster.

    Examples:
        >>> import tensorflow as tf
        >>> worker_id(tf.distribute.OneDeviceStrategy("/cpu:0"))
        '0'
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    return f"{resolver.task_type}_{resolver.task_id}" if resolver and resolver.task_type else "0"


def device_kind(strategy):
    """"TPU", "GPU" or "CPU": where the replicas run.

    Args:
        strategy: a `tf.distribute.Strategy`, TensorFlow's default one
            (`tf.distribute.get_strategy()` outside any scope) included.

    Returns:
        "TPU" or "GPU" when a replica runs on one, else "CPU". The default strategy runs
        where TensorFlow places ops by default: the first GPU when there is one.

    Examples:
        >>> import tensorflow as tf
        >>> device_kind(tf.distribute.OneDeviceStrategy("/cpu:0"))
        'CPU'
        >>> device_kind(tf.distribute.get_strategy()) == (
        ...     "GPU" if tf.config.list_logical_devices("GPU") else "CPU")
        True
    """
    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        # The default strategy lists no worker devices (TensorFlow raises RuntimeError).
        return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    devices = strategy.extended.worker_devices
    for kind in ("TPU", "GPU"):
        if any(kind in device.upper() for device in devices):
            return kind
    return "CPU"


def mixed_precision_policy(strategy):
    """float16 on GPU (with loss scaling), bfloat16 on TPU and CPU.

    The Keras dtype policy of `--mixed_precision` (Micikevicius et al., "Mixed Precision
    Training", ICLR 2018, https://arxiv.org/abs/1710.03740): float16 needs loss scaling,
    which Keras' optimizers apply under "mixed_float16"; bfloat16 has float32's range and
    needs none.

    Args:
        strategy: the run's `tf.distribute.Strategy` (see `device_kind`).

    Returns:
        "mixed_float16" on GPU, "mixed_bfloat16" otherwise.

    Examples:
        >>> import tensorflow as tf
        >>> mixed_precision_policy(tf.distribute.OneDeviceStrategy("/cpu:0"))
        'mixed_bfloat16'
    """
    return "mixed_float16" if device_kind(strategy) == "GPU" else "mixed_bfloat16"


def synchronize_batch_norm(model):
    """Makes every BatchNormalization of `model` (nested ones included) compute its batch
    statistics across all replicas, as `BatchNormalization(synchronized=True)` does.

    Batch normalisation (Ioffe and Szegedy, ICML 2015, https://arxiv.org/abs/1502.03167)
    normalises by the statistics of the batch a replica sees; with small per-replica
    batches those are noisy, and synchronised BatchNorm (cross-GPU BatchNorm of Peng et al.,
    "MegDet: A Large Mini-Batch Object Detector", CVPR 2018,
    https://arxiv.org/abs/1711.07240) computes them over the global batch (`--sync_bn`).
    `TrainingRun` calls it right after building the model, in the strategy's scope.

    Args:
        model: a Keras model.

    Returns:
        The number of BatchNormalization layers changed.

    Examples:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(),
        ...                           keras.layers.Dense(2), keras.layers.BatchNormalization()])
        >>> synchronize_batch_norm(model)
        2
        >>> model.layers[0].synchronized
        True
    """
    layers = [layer for layer in model._flatten_layers(include_self=False)
              if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.synchronized = True
    return len(layers)
