import os

# Keep TensorFlow's start-up chatter out of test logs; must be set before it is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's oneDNN CPU kernels, as docs/performance.md advises for CPUs where TensorFlow leaves
# them off (they train grouped convolutions natively and faster);
# tests/layers/test_grouped_conv_kernels.py runs the grouped convolutions with the other choice.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import pytest  # noqa: E402

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    # Two logical CPU devices for the multi-replica tests (MirroredStrategy on one machine).
    # This must happen before TensorFlow creates its devices, so before any test runs; every
    # other test keeps using the first device, as TensorFlow does by default.
    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path_factory):
    """Tests never leave 127.0.0.1: published weights resolve to a closed local port (the
    `checkpoint_server` fixture points them at a live one), and the Keras cache is private."""
    monkeypatch.setenv("KERAS_ATTN_WEIGHTS_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home")))


@pytest.fixture(autouse=True)
def _seed():
    """Initial weights (and with them every numerical outcome) are the same on every run."""
    keras.utils.set_random_seed(0)


@pytest.fixture(autouse=True)
def _restore_global_keras_state():
    """Tests may change the dtype policy or image data format; put them back afterwards."""
    policy = keras.config.dtype_policy()
    data_format = keras.config.image_data_format()
    yield
    keras.config.set_dtype_policy(policy)
    keras.config.set_image_data_format(data_format)


FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="session")
def mirrored_strategy():
    """MirroredStrategy over the two logical CPUs: one per session, as a second instance in
    the same process can mismatch the first one's collective-op keys."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def full_size_param_counts(tmp_path_factory, worker_id):
    """`count_params()` of every registry network at full size, 1000 classes (three blocks per
    stage built: tests/param_counts.py): counted once per run. Under pytest-xdist the first
    worker to ask counts them and the others read its file (the pattern of pytest-xdist's docs:
    a file lock in the run's shared temporary folder)."""
    import json

    from filelock import FileLock

    from keras_attn.applications import list_models
    from tests import param_counts

    def count():
        return {name: param_counts.count_parameters(name) for name in list_models()}

    if worker_id == "master":  # not under xdist
        return count()
    shared = tmp_path_factory.getbasetemp().parent / "full_size_param_counts.json"
    with FileLock(f"{shared}.lock"):
        if shared.is_file():
            return json.loads(shared.read_text())
        counts = count()
        shared.write_text(json.dumps(counts))
        return counts


@pytest.fixture
def checkpoint_server(monkeypatch, tmp_path):
    """A checkpoint server on 127.0.0.1 that `weights="imagenet"` downloads from, and a private
    Keras cache (KERAS_HOME) for the test."""
    from keras_attn import weights as published
    from keras_attn.testing.checkpoint_server import start_checkpoint_server

    server = start_checkpoint_server()
    monkeypatch.setenv(published.BASE_URL_VARIABLE, server.url)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def cache_files(tmp_path):
    """Lists the files in the private keras_attn cache of `checkpoint_server` (without the
    folder of empty lock files that loads take turns under)."""
    from keras_attn.weights import fetch

    def listing():
        folder = tmp_path / "keras_home" / "keras_attn"
        return sorted(p.name for p in folder.iterdir()
                      if p.name != fetch.LOCK_SUBDIR) if folder.exists() else []

    return listing


BAD_INPUTS = "tests/test_bad_inputs.py"


def pytest_terminal_summary(terminalreporter):
    """Ends the run with the number of bad-input cases that ran (tests/test_bad_inputs.py),
    read from the reports, so that it is right under pytest-xdist's workers too."""
    outcomes = {}
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if report.when == "call" and report.nodeid.startswith(BAD_INPUTS):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if outcomes:
        terminalreporter.write_line(
            f"{BAD_INPUTS}: {sum(outcomes.values())} bad-input cases ran ("
            + ", ".join(f"{count} {outcome}" for outcome, count in outcomes.items()) + ")")
