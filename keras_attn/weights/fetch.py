"""Download, verify, convert and cache published checkpoints.

A checkpoint is downloaded into `$KERAS_HOME/keras_attn/`, verified (sha256 when the manifest
has one, and always that the file is complete), converted, and the converted `.weights.h5` is
cached so that the next load converts nothing. A file enters the cache only when everything
before succeeded: a failed or stalled download, a wrong hash, a truncated file or a checkpoint
that does not fit the network leaves nothing behind that a later call would trust. A cached
file is verified again before it is used (its sha256, and that it reads whole, whatever its
format), and one that fails is deleted and fetched again. Processes that load the same tag at
once take turns under a file lock, so the checkpoint is downloaded once.
"""

import contextlib
import dataclasses
import hashlib
import http.client
import json
import os
import struct
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Mapping

import filelock
import keras

from keras_attn.applications import specs
from keras_attn.convert import timm as timm_convert
from keras_attn.weights import BASE_URL_VARIABLE, checkpoint_url, resolve_tag, tag_info

__all__ = [
    "cache_dir", "cache_root", "check_safetensors_complete", "check_torch_zip_complete",
    "download", "load_pretrained", "save_weights_atomically", "sha256_of",
]

CACHE_SUBDIR = "keras_attn"
# Lock files live apart from the checkpoints: an empty lock file is nothing a load trusts.
LOCK_SUBDIR = ".locks"
# Seconds a download may go without receiving a byte (or without connecting) before it fails.
DOWNLOAD_TIMEOUT = 60.0
# A partial download untouched for this long belongs to a process that died: it is removed.
STALE_PART_SECONDS = 3600.0


def cache_root():
    """Keras' cache folder, where downloaded checkpoints go: `$KERAS_HOME`, else `~/.keras`.

    The variable is read at call time, so a process (or a test) can move the cache.

    Returns:
        The folder's path, a string (not made if missing).

    Examples:
        >>> import os
        >>> os.environ["KERAS_HOME"] = "keras_home"
        >>> cache_root()
        'keras_home'
    """
    root = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return root


def cache_dir():
    """The folder of downloaded and converted checkpoints, `<cache_root()>/keras_attn`.

    Returns:
        The folder's path, a string; the folder is made if missing.

    Examples:
        >>> import os
        >>> os.environ["KERAS_HOME"] = "keras_home"
        >>> cache_dir(), os.path.isdir("keras_home/keras_attn")
        ('keras_home/keras_attn', True)
    """
    path = os.path.join(cache_root(), CACHE_SUBDIR)
    os.makedirs(path, exist_ok=True)
    return path


def load_pretrained(model, spec, weights, include_top):
    """Sets `model`'s weights to the checkpoint `weights` names, from the cache when it can.

    `get_model(name, weights="imagenet")` calls this. The first call downloads the timm
    checkpoint (`checkpoint_url`), verifies it, converts it into `model` and caches the
    converted `.weights.h5`; later calls load that file. A damaged cached file is deleted
    and made again. Processes loading the same tag at once take turns under a file lock.

    Args:
        model: the network built from `spec`.
        spec: its `NetworkSpec` (possibly a changed row: the cache keeps one file per row).
        weights: "imagenet" or a tag of `spec.name`.
        include_top: whether `model` has the classifier (the cache keeps one file for each).

    Returns:
        `model`, its weights set.

    Raises:
        ValueError: `spec.name` has no published weights or none tagged `weights`; the
            checkpoint does not fit `model`; or the download fails its sha256 or does not
            read whole (it is deleted).
        OSError: the download failed (nothing is kept; the message says how to work
            offline).

    Examples:
        ```python
        from keras_attn.applications import specs
        model = keras_attn.applications.get_model("seresnet50")   # random weights
        load_pretrained(model, specs.get_spec("seresnet50"), "imagenet", include_top=True)
        # what get_model("seresnet50", weights="imagenet") does
        ```
    """
    tag = resolve_tag(spec.name, weights)
    converted = os.path.join(cache_dir(), _converted_file_name(spec, tag, include_top))
    # One process at a time per checkpoint: the others wait, then find it (and usually the
    # converted file) in the cache instead of downloading it again.
    with _checkpoint_lock(spec.name, tag):
        if os.path.exists(converted):
            try:
                model.load_weights(converted)
                return model
            except (OSError, ValueError):
                os.remove(converted)  # damaged on disk: convert again from the checkpoint
        with _verified_checkpoint(spec.name, tag) as state:
            try:
                timm_convert.load_timm_weights(model, state)
            except ValueError as error:
                raise ValueError(
                    f"The {spec.name} {tag!r} checkpoint from {checkpoint_url(spec.name, tag)} "
                    f"does not fit the network {model.name!r}: {error}"
                ) from error
            save_weights_atomically(model, converted)
    return model


def _checkpoint_lock(name, tag):
    folder = os.path.join(cache_dir(), LOCK_SUBDIR)
    os.makedirs(folder, exist_ok=True)
    # An OS lock (flock): released by the kernel when its holder dies, even by SIGKILL.
    return filelock.FileLock(os.path.join(folder, f"{name}.{tag}.lock"))


def _converted_file_name(spec, tag, include_top):
    name = f"{spec.name}.{tag}"
    if spec != specs.SPECS[spec.name]:
        # A changed row (narrower, other slots) gets its own file, named by its contents.
        fields = {
            field.name: dict(value) if isinstance(value, Mapping) else value
            for field in dataclasses.fields(spec)
            for value in [getattr(spec, field.name)]
        }
        canonical = json.dumps(fields, sort_keys=True)
        name += f"-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"
    return name + ("" if include_top else "_notop") + ".weights.h5"


def save_weights_atomically(model, path):
    """`model.save_weights(path)` that never leaves a half-written file at `path`.

    The weights go to a temporary file beside `path`, renamed to `path` once whole; the
    temporary file is removed whatever happens. A process killed while saving leaves
    the previous file (or none), never a truncated one that a later load would trust.

    Args:
        model: a built Keras model (or layer).
        path: the file to write, ending in `.weights.h5` as Keras requires.

    Raises:
        ValueError: `path` does not end in `.weights.h5` (nothing is written).

    Examples:
        >>> import os, keras
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> save_weights_atomically(model, "dense.weights.h5")
        >>> [name for name in os.listdir(".") if name.startswith("dense")]   # no scratch file
        ['dense.weights.h5']
    """
    path = os.fspath(path)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"save_weights_atomically: path={path!r} must end in '.weights.h5' "
                         "(the suffix Keras' save_weights requires).")
    part = f"{path[: -len('.weights.h5')]}.part-{uuid.uuid4().hex}.weights.h5"
    try:
        model.save_weights(part)
        os.replace(part, path)
    finally:
        if os.path.exists(part):
            os.remove(part)


def sha256_of(path):
    """The SHA-256 of the file at `path`, in hex, read in 1 MiB blocks.

    The manifest's `sha256` of a checkpoint is compared with this.

    Args:
        path: a file.

    Returns:
        The digest, 64 lowercase hexadecimal digits.

    Raises:
        OSError: the file cannot be read (`FileNotFoundError` when missing).

    Examples:
        >>> with open("abc.txt", "wb") as file:
        ...     _ = file.write(b"abc")
        >>> sha256_of("abc.txt")
        'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _verified_checkpoint(name, tag):
    """Yields the state dict of a verified local copy of the checkpoint; the copy joins the
    cache only if the block that uses it succeeds, and is deleted otherwise."""
    directory = cache_dir()
    extension = tag_info(name, tag)["format"]
    final = os.path.join(directory, f"{name}.{tag}.{extension}")
    url = checkpoint_url(name, tag)
    if os.path.exists(final):
        try:
            state = _read_verified(final, name, tag)
        except ValueError:
            os.remove(final)  # damaged, or no longer what the manifest names: not trusted
        else:
            yield state
            return
    _remove_stale_parts(directory, f"{name}.{tag}.part-")
    part = os.path.join(directory, f"{name}.{tag}.part-{uuid.uuid4().hex}.{extension}")
    try:
        try:
            download(url, part)
        except (OSError, ValueError) as error:  # ValueError: a URL urllib cannot open
            raise OSError(
                f"Downloading the {name} {tag!r} checkpoint from {url} failed: {error}. "
                f"Nothing was kept in {directory}. Without network, download it elsewhere and "
                f"save it as {final}, pass a local file (weights='model.safetensors'), or set "
                f"{BASE_URL_VARIABLE} to a mirror."
            ) from error
        try:
            state = _read_verified(part, name, tag)
        except ValueError as error:
            raise ValueError(f"{error} The download was deleted; the next call fetches it "
                             "again.") from error
        yield state
        os.replace(part, final)
    finally:
        if os.path.exists(part):
            os.remove(part)


def download(url, path, timeout=None):
    """Writes the body at `url` to `path`, with a progress bar.

    Args:
        url: an http(s) or file URL.
        path: the file to write (overwritten). On failure it may hold part of the body:
            `load_pretrained` downloads into a temporary name and deletes it.
        timeout: seconds without a byte (or without connecting) before giving up; default
            `DOWNLOAD_TIMEOUT` (60).

    Raises:
        OSError: the server cannot be reached, answers with an error (an `HTTPError`),
            sends no byte for `timeout` seconds, or closes the connection before the length
            it announced.
        ValueError: `url` is no URL that urllib opens.

    Examples:
        ```python
        from keras_attn.weights import checkpoint_url
        download(checkpoint_url("seresnet50", "a1_in1k"), "seresnet50.safetensors")
        ```
    """
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    print(f"Downloading data from {url}", flush=True)  # as keras.utils.get_file
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as file:
            total = response.length
            progress = keras.utils.Progbar(total, unit_name="B")
            received = 0
            while chunk := response.read(1 << 20):
                file.write(chunk)
                received += len(chunk)
                progress.update(received)
    except TimeoutError:
        raise OSError(f"no data received for {timeout:g} s") from None
    except http.client.HTTPException as error:  # a malformed or cut-off response
        raise OSError(f"{type(error).__name__}: {error}") from error
    if total is not None and received < total:
        raise OSError(f"the connection closed after {received} of {total} bytes")


def _remove_stale_parts(directory, prefix):
    # A download killed outright (SIGKILL, a crash) leaves its part file; one still growing
    # belongs to another process downloading now.
    for entry in os.scandir(directory):
        if entry.name.startswith(prefix) and (
                time.time() - entry.stat().st_mtime > STALE_PART_SECONDS):
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path)


def _read_verified(path, name, tag):
    """The state dict of the checkpoint of `name` and `tag` at `path`; a `ValueError` when its
    sha256 is not the manifest's or it does not read whole."""
    info, url = tag_info(name, tag), checkpoint_url(name, tag)
    if info["sha256"] is not None:
        actual = sha256_of(path)
        if actual != info["sha256"]:
            raise ValueError(
                f"The checkpoint downloaded from {url} has sha256 {actual}, but the manifest "
                f"expects {info['sha256']}: the file is corrupted or was replaced."
            )
    if info["format"] == "safetensors":
        check_safetensors_complete(path, url)
    else:
        check_torch_zip_complete(path, url)
    try:
        # A .pth has no size header: reading it whole is its completeness check.
        return timm_convert.read_checkpoint(path)
    except ValueError as error:
        raise ValueError(
            f"The {name} {tag!r} checkpoint from {url} cannot be read (a truncated or "
            f"corrupted download?): {error}."
        ) from error


def check_torch_zip_complete(path, source):
    """Raises when `path` is a zip-format PyTorch file (what torch >= 1.6 writes) with a member
    that fails its CRC-32: damage that torch.load reads without noticing.

    A truncated file is no zip archive; it and the older pickle-format files pass here and
    are left to the read (`keras_attn.convert.timm.read_checkpoint`), which fails on them.

    Args:
        path: the downloaded file.
        source: where it came from (its URL), for the message.

    Raises:
        ValueError: a member of the archive fails its CRC-32 check, or the archive cannot
            be read. (`load_pretrained` deletes such a file and says so.)

    Examples:
        >>> import zipfile
        >>> with zipfile.ZipFile("model.pth", "w") as archive:
        ...     archive.writestr("archive/data/0", bytes(range(256)))
        >>> check_torch_zip_complete("model.pth", "https://example.org/model.pth")  # whole
        >>> data = bytearray(open("model.pth", "rb").read())
        >>> data[100] ^= 0xFF                        # a byte of the member flipped
        >>> _ = open("model.pth", "wb").write(data)
        >>> check_torch_zip_complete("model.pth", "https://example.org/model.pth")
        Traceback (most recent call last):
        ...
        ValueError: ... member archive/data/0 fails its CRC-32 check.
    """
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError) as error:
        damaged = f"? ({error})"
    if damaged is not None:
        raise ValueError(
            f"The checkpoint from {source} is damaged: the zip archive's member {damaged} "
            "fails its CRC-32 check."
        )


def check_safetensors_complete(path, source):
    """Raises unless `path` is a whole safetensors file (its header accounts for every byte).

    A safetensors file is an 8-byte header length, a JSON header giving each tensor's byte
    range, then the data: a download cut short is caught here, before it is read.

    Args:
        path: the downloaded file.
        source: where it came from (its URL), for the message.

    Raises:
        ValueError: the file has no valid header (truncated inside it, or not safetensors),
            or its size is not the one its header describes. (`load_pretrained` deletes
            such a file and says so.)

    Examples:
        >>> import json, struct
        >>> header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
        >>> whole = struct.pack("<Q", len(header)) + header.encode() + bytes(8)
        >>> _ = open("w.safetensors", "wb").write(whole)
        >>> check_safetensors_complete("w.safetensors", "https://example.org/w.safetensors")
        >>> _ = open("w.safetensors", "wb").write(whole[:-4])
        >>> check_safetensors_complete("w.safetensors", "https://example.org/w.safetensors")
        Traceback (most recent call last):
        ...
        ValueError: The checkpoint from https://example.org/w.safetensors is truncated: ...
    """
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        prefix = file.read(8)
        header_size = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else None
        header = None
        if header_size is not None and 8 + header_size <= size:
            try:
                header = json.loads(file.read(header_size))
            except ValueError:
                header = None
    if not isinstance(header, dict):
        raise ValueError(
            f"The file from {source} is not a safetensors checkpoint ({size} bytes, no valid "
            "header): truncated or not a checkpoint."
        )
    try:
        data_size = max(
            (int(entry["data_offsets"][1]) for key, entry in header.items()
             if key != "__metadata__"),
            default=0,
        )
    except (KeyError, TypeError, IndexError, ValueError) as error:  # a header of another shape
        raise ValueError(
            f"The file from {source} is not a safetensors checkpoint: its header has no "
            f"byte range for every tensor ({type(error).__name__}: {error})."
        ) from error
    expected = 8 + header_size + data_size
    if size != expected:
        raise ValueError(
            f"The checkpoint from {source} is truncated: {size} bytes received, its header "
            f"describes {expected}."
        )
