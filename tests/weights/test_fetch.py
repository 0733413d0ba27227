"""weights="imagenet"/"<tag>": download from a server, verify, convert, cache; and every failure."""

import hashlib
import io
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
from safetensors.numpy import load_file

from keras_attn import weights as published
from keras_attn.applications import get_model
from keras_attn.convert import timm as timm_convert
from keras_attn.weights import fetch

from tests.conftest import FIXTURES
from tests.processes import wait_for_line

FIXTURE = os.path.join(FIXTURES, "timm", "resnest50d_narrow")
ROUTE = "/timm/resnest50d.in1k/resolve/main/model.safetensors"
NARROW = {"widths": (16, 32, 64, 128), "depths": (1, 1, 2, 1), "stem_width": 8}
DOWNLOAD_TIMEOUT = fetch.DOWNLOAD_TIMEOUT


def _fixture_bytes(name="resnest50d_narrow"):
    with open(os.path.join(FIXTURES, "timm", f"{name}.safetensors"), "rb") as file:
        return file.read()


def _timm_logits(model, images):
    """The fixture has 10 classes, ImageNet weights 1000: compare through timm's own head."""
    state = load_file(f"{FIXTURE}.safetensors")
    features = model.predict(images, verbose=0)
    return features @ state["fc.weight"].T + state["fc.bias"]


def _build(**kwargs):
    return get_model("resnest50d", weights="in1k", include_top=False, pooling="avg",
                     input_shape=(64, 64, 3), **NARROW, **kwargs)


def test_download_verify_convert_and_cache(checkpoint_server, cache_files, monkeypatch):
    checkpoint = _fixture_bytes()
    checkpoint_server.routes[ROUTE] = (checkpoint, "ok")
    monkeypatch.setitem(published.tag_info("resnest50d", "in1k"), "sha256",
                        hashlib.sha256(checkpoint).hexdigest())
    data = np.load(f"{FIXTURE}.npz")
    np.testing.assert_allclose(_timm_logits(_build(), data["input_nhwc"]), data["logits"],
                               atol=1e-4)
    assert checkpoint_server.requests == [ROUTE]
    cached = cache_files()
    assert len(cached) == 2 and "resnest50d.in1k.safetensors" in cached
    assert re.fullmatch(r"resnest50d\.in1k-[0-9a-f]{12}_notop\.weights\.h5", cached[0])

    # The second load neither downloads nor converts: it reads the cached .weights.h5.
    def no_conversion(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(timm_convert, "load_timm_weights", no_conversion)
    np.testing.assert_allclose(_timm_logits(_build(), data["input_nhwc"]), data["logits"],
                               atol=1e-4)
    assert checkpoint_server.requests == [ROUTE]


def _serve_wrong_hash(server, monkeypatch):
    server.routes[ROUTE] = (_fixture_bytes(), "ok")
    monkeypatch.setitem(published.tag_info("resnest50d", "in1k"), "sha256", "0" * 64)


@pytest.mark.parametrize(
    "setup, error, message",
    [
        (lambda server, _: None, OSError,
         r"Downloading the resnest50d 'in1k' checkpoint from http://127\.0\.0\.1:\d+"
         r"/timm/resnest50d\.in1k/resolve/main/model\.safetensors failed: .*404"),
        (lambda server, _: server.routes.update({ROUTE: (_fixture_bytes(), "cut")}), OSError,
         r"Downloading the resnest50d 'in1k' checkpoint from http://127.*failed"),
        (lambda server, _: server.routes.update({ROUTE: (_fixture_bytes(), "short")}),
         ValueError, r"The checkpoint from http://127.* is truncated: \d+ bytes received"),
        (_serve_wrong_hash, ValueError,
         r"downloaded from http://127.* has sha256 [0-9a-f]{64}, but the manifest expects 0{64}"),
        (lambda server, _: server.routes.update(
            {ROUTE: (_fixture_bytes("resnet50d_narrow"), "ok")}), ValueError,
         r"The resnest50d 'in1k' checkpoint from http://127.* does not fit the network "
         r"'resnest50d': The checkpoint has no tensor 'layer1\.0\.conv2\.conv\.weight'"),
        (lambda server, patch: (server.routes.update({ROUTE: (_fixture_bytes(), "stall")}),
                                patch.setattr(fetch, "DOWNLOAD_TIMEOUT", 0.5)), OSError,
         r"Downloading the resnest50d 'in1k' checkpoint from http://127.* failed: no data "
         r"received for 0\.5 s"),
    ],
    ids=["404", "closed_mid_transfer", "truncated_file", "wrong_hash", "other_architecture",
         "stalled_server"],
)
def test_failure_says_what_and_where_and_leaves_nothing_cached(
    checkpoint_server, cache_files, monkeypatch, setup, error, message
):
    setup(checkpoint_server, monkeypatch)
    with pytest.raises(error, match=message):
        _build()
    assert cache_files() == []
    # Nothing was trusted: the next attempt downloads again, and succeeds with a good file,
    # under the usual timeout (the stall case's 0.5 s could fail a loaded machine's download).
    monkeypatch.setattr(fetch, "DOWNLOAD_TIMEOUT", DOWNLOAD_TIMEOUT)
    monkeypatch.setitem(published.tag_info("resnest50d", "in1k"), "sha256", None)
    checkpoint_server.routes[ROUTE] = (_fixture_bytes(), "ok")
    _build()
    assert checkpoint_server.requests == [ROUTE, ROUTE]
    assert "resnest50d.in1k.safetensors" in cache_files()


def test_offline_error_says_where_to_put_the_file(cache_files):
    # The autouse environment points downloads at 127.0.0.1:9, where nothing listens.
    with pytest.raises(OSError) as raised:
        _build()
    message = str(raised.value)
    final = os.path.join(fetch.cache_dir(), "resnest50d.in1k.safetensors")
    assert f"Without network, download it elsewhere and save it as {final}" in message
    assert "KERAS_ATTN_WEIGHTS_URL to a mirror" in message
    assert cache_files() == []


def test_a_mirror_without_a_scheme_is_named(monkeypatch, cache_files):
    monkeypatch.setenv(published.BASE_URL_VARIABLE, "mirror.local")
    with pytest.raises(OSError, match=re.escape(
            "Downloading the resnest50d 'in1k' checkpoint from mirror.local/timm/resnest50d.in1k"
            "/resolve/main/model.safetensors failed: unknown url type")):
        _build()
    assert cache_files() == []


def test_damaged_cache_files_are_replaced_not_trusted(checkpoint_server, cache_files):
    checkpoint = _fixture_bytes()
    checkpoint_server.routes[ROUTE] = (checkpoint, "ok")
    data = np.load(f"{FIXTURE}.npz")
    _build()
    converted, raw = cache_files()
    folder = os.path.join(fetch.cache_dir())
    # A converted file cut short on disk: converted again from the cached checkpoint.
    with open(os.path.join(folder, converted), "r+b") as file:
        file.truncate(4096)
    np.testing.assert_allclose(_timm_logits(_build(), data["input_nhwc"]), data["logits"],
                               atol=1e-4)
    assert checkpoint_server.requests == [ROUTE]
    # A cut-short checkpoint with no sha256 in the manifest: failing the completeness check,
    # it is deleted and downloaded again.
    os.remove(os.path.join(folder, converted))
    with open(os.path.join(folder, raw), "wb") as file:
        file.write(checkpoint[:100_000])
    np.testing.assert_allclose(_timm_logits(_build(), data["input_nhwc"]), data["logits"],
                               atol=1e-4)
    assert checkpoint_server.requests == [ROUTE, ROUTE]
    assert cache_files() == [converted, raw]


def test_part_files_of_dead_downloads_are_removed(checkpoint_server, cache_files):
    checkpoint_server.routes[ROUTE] = (_fixture_bytes(), "ok")
    folder = fetch.cache_dir()
    dead = os.path.join(folder, "resnest50d.in1k.part-0123.safetensors")
    growing = os.path.join(folder, "resnest50d.in1k.part-4567.safetensors")
    for path in (dead, growing):
        with open(path, "wb") as file:
            file.write(b"partial")
    old = os.stat(dead).st_mtime - 2 * fetch.STALE_PART_SECONDS
    os.utime(dead, (old, old))
    _build()
    assert os.path.basename(growing) in cache_files()  # another process may be writing it
    assert os.path.basename(dead) not in cache_files()


def test_published_weights_arguments_are_checked_before_building():
    with pytest.raises(ValueError, match=r"'seresnet18' has no published weights.*resnest50d"):
        get_model("seresnet18", weights="imagenet")
    with pytest.raises(ValueError, match=re.escape("no weights tagged 'a1_in1k'; its tags are "
                                                   "['in1k']")):
        get_model("resnest50d", weights="a1_in1k")
    with pytest.raises(ValueError, match="received classes=10 with include_top=True"):
        get_model("resnest50d", weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="weights=3"):
        get_model("resnest50d", weights=3)


def test_imagenet_names_the_default_tag():
    assert published.resolve_tag("resnet50", "imagenet") == "a1_in1k"
    assert published.resolve_tag("resnet50", "tv_in1k") == "tv_in1k"
    assert published.tags("resnet50")[0] == "a1_in1k"


def test_mirror_replaces_the_base_url(monkeypatch):
    monkeypatch.delenv(published.BASE_URL_VARIABLE, raising=False)
    assert published.checkpoint_url("resnest50d", "in1k") == (
        "https://huggingface.co/timm/resnest50d.in1k/resolve/main/model.safetensors"
    )
    monkeypatch.setenv(published.BASE_URL_VARIABLE, "http://mirror.local/hf/")
    assert published.checkpoint_url("resnest50d", "in1k") == (
        "http://mirror.local/hf/timm/resnest50d.in1k/resolve/main/model.safetensors"
    )
    assert published.checkpoint_url("legacy_seresnet50", "in1k") == (
        "http://mirror.local/hf/se_resnet50-ce0d4300.pth"
    )


LEGACY_ROUTE = "/se_resnet50-ce0d4300.pth"
LEGACY = {"widths": (16, 32, 64, 128), "depths": (1, 1, 1, 1), "input_shape": (64, 64, 3)}


def _legacy_checkpoint(zip_format=True):
    """A small legacy_seresnet50 and its weights as a timm senet.py .pth: `torch.save`'s zip
    format, or (`zip_format=False`) the older pickle format of the published SENet files."""
    import torch

    source = get_model("legacy_seresnet50", include_top=False, **LEGACY)
    state = timm_convert.timm_state_dict(source)
    state["last_linear.weight"] = np.zeros((1000, 512), "float32")
    state["last_linear.bias"] = np.zeros(1000, "float32")
    buffer = io.BytesIO()
    torch.save({key: torch.from_numpy(value) for key, value in state.items()}, buffer,
               _use_new_zipfile_serialization=zip_format)
    return source, buffer.getvalue()


def _load_legacy():
    return get_model("legacy_seresnet50", weights="imagenet", include_top=False, **LEGACY)


def _assert_same_network(loaded, source):
    images = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(images, verbose=0),
                                  source.predict(images, verbose=0))


def test_legacy_pth_checkpoint_is_fetched_and_read_without_pickle(checkpoint_server,
                                                                  cache_files):
    source, buffer = _legacy_checkpoint()
    # A .pth has no size header to check before it is read: a truncated one is named as an
    # unreadable download, not as a checkpoint that does not fit, and nothing is cached.
    checkpoint_server.routes[LEGACY_ROUTE] = (buffer[: len(buffer) // 2], "ok")
    with pytest.raises(ValueError, match=r"The legacy_seresnet50 'in1k' checkpoint from "
                                         r"http://127\.\S+ cannot be read \(a truncated or "
                                         r"corrupted download\?\)"):
        _load_legacy()
    assert cache_files() == []
    checkpoint_server.routes[LEGACY_ROUTE] = (buffer, "ok")
    _assert_same_network(_load_legacy(), source)


def _truncate(data):
    return data[: len(data) // 2]


def _flip_a_byte(data):
    # The middle of the file is tensor data: torch.load would read the changed value as is.
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


@pytest.mark.parametrize("zip_format, damage", [(True, _truncate), (True, _flip_a_byte),
                                                (False, _truncate)],
                         ids=["zip_truncated", "zip_byte_changed", "pickle_truncated"])
def test_a_damaged_cached_pth_is_deleted_and_fetched_again(checkpoint_server, cache_files,
                                                           zip_format, damage):
    source, buffer = _legacy_checkpoint(zip_format)
    checkpoint_server.routes[LEGACY_ROUTE] = (buffer, "ok")
    _load_legacy()
    converted, raw = cache_files()
    assert raw == "legacy_seresnet50.in1k.pth"
    # The converted file gone (as for a variant not converted yet), the checkpoint is read
    # again from the cache: damaged, it is deleted and downloaded again, not an error.
    folder = fetch.cache_dir()
    os.remove(os.path.join(folder, converted))
    with open(os.path.join(folder, raw), "wb") as file:
        file.write(damage(buffer))
    _assert_same_network(_load_legacy(), source)
    assert checkpoint_server.requests == [LEGACY_ROUTE, LEGACY_ROUTE]
    assert cache_files() == [converted, raw]
    with open(os.path.join(folder, raw), "rb") as file:
        assert file.read() == buffer


def test_a_cached_checkpoint_whose_sha256_is_not_the_manifests_is_fetched_again(
        checkpoint_server, cache_files, monkeypatch):
    checkpoint = _fixture_bytes()
    checkpoint_server.routes[ROUTE] = (checkpoint, "ok")
    monkeypatch.setitem(published.tag_info("resnest50d", "in1k"), "sha256",
                        hashlib.sha256(checkpoint).hexdigest())
    _build()
    converted, raw = cache_files()
    # Replaced on disk by another whole checkpoint: complete, readable, and not the one the
    # manifest names.
    folder = fetch.cache_dir()
    os.remove(os.path.join(folder, converted))
    with open(os.path.join(folder, raw), "wb") as file:
        file.write(_fixture_bytes("resnet50d_narrow"))
    data = np.load(f"{FIXTURE}.npz")
    np.testing.assert_allclose(_timm_logits(_build(), data["input_nhwc"]), data["logits"],
                               atol=1e-4)
    assert checkpoint_server.requests == [ROUTE, ROUTE]
    with open(os.path.join(folder, raw), "rb") as file:
        assert file.read() == checkpoint


# A process that loads the published weights and saves the features they give. Its lock
# says when it has to wait for another process's: the test holds the download until then.
LOAD_IN_A_PROCESS = """
import sys
import filelock
import numpy as np
from keras_attn.applications import get_model
acquire = filelock.FileLock.acquire
def acquire_or_say_so(self, timeout=None, *args, **kwargs):
    try:
        return acquire(self, timeout=0)
    except filelock.Timeout:
        print("waiting for the lock", flush=True)
        return acquire(self, timeout, *args, **kwargs)
filelock.FileLock.acquire = acquire_or_say_so
model = get_model("resnest50d", weights="in1k", include_top=False, pooling="avg",
                  input_shape=(64, 64, 3), widths=(16, 32, 64, 128), depths=(1, 1, 2, 1),
                  stem_width=8)
np.save(sys.argv[1], model.predict(np.load(sys.argv[2]), verbose=0))
"""


class _GatedRoutes(dict):
    """Routes whose responses wait until `gate` is set (the request is counted at once). A
    second request opens the gate: two downloads are then under way, which the test reports."""

    def __init__(self, server, gate):
        super().__init__(server.routes)
        self.server = server
        self.gate = gate

    def __getitem__(self, key):
        if len(self.server.requests) > 1:
            self.gate.set()
        self.gate.wait()
        return super().__getitem__(key)


def test_two_processes_loading_at_once_download_once(checkpoint_server, cache_files,
                                                     tmp_path):
    data = np.load(f"{FIXTURE}.npz")
    np.save(tmp_path / "images.npy", data["input_nhwc"])
    checkpoint = _fixture_bytes()
    gate = threading.Event()
    checkpoint_server.routes[ROUTE] = (checkpoint, "ok")
    checkpoint_server.routes = _GatedRoutes(checkpoint_server, gate)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    environment = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"}
    processes = []
    try:
        for index in range(2):
            with open(tmp_path / f"stderr{index}", "wb") as stderr:
                processes.append(subprocess.Popen(
                    [sys.executable, "-c", LOAD_IN_A_PROCESS, str(tmp_path / f"{index}.npy"),
                     str(tmp_path / "images.npy")],
                    env=environment, stdout=subprocess.PIPE, stderr=stderr, bufsize=0))
        # The first to take the lock downloads, and its download is held until the other
        # waits on the lock: the two overlap, whatever the machine's load.
        try:
            wait_for_line(processes, "waiting for the lock")
        finally:
            gate.set()
        for process in processes:
            process.wait(timeout=600)
    finally:
        gate.set()
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
    for index, process in enumerate(processes):
        assert process.returncode == 0, (tmp_path / f"stderr{index}").read_text()[-3000:]
    assert checkpoint_server.requests == [ROUTE]
    first, second = (np.load(tmp_path / f"{index}.npy") for index in range(2))
    np.testing.assert_array_equal(first, second)
    state = load_file(f"{FIXTURE}.safetensors")
    np.testing.assert_allclose(first @ state["fc.weight"].T + state["fc.bias"], data["logits"],
                               atol=1e-4)
    # The cache holds the whole checkpoint and one converted file, nothing half-written.
    converted, raw = cache_files()
    assert raw == "resnest50d.in1k.safetensors" and converted.endswith("_notop.weights.h5")
    with open(os.path.join(fetch.cache_dir(), raw), "rb") as file:
        assert file.read() == checkpoint
