"""Every public entry point, fed its bad inputs: the error's type, a message that names the
argument and the value, and no file left behind.

Only the public API is called, and a message is checked for the argument's name and the
offending value (not for whole sentences), so that the cases hold while the wording changes.
The run ends with the number of cases (tests/conftest.py's terminal summary).
"""

import contextlib
import dataclasses
import io
import json
import os
import shutil
import struct
from collections.abc import Callable

import keras
import numpy as np
import pytest
from absl import flags

from keras_attn import applications, cli, export, weights
from keras_attn.applications import feature_extractor, get_model
from keras_attn.convert import from_timm, load_timm_weights
from keras_attn.layers import GroupedConv2D
from keras_attn.training import train
from keras_attn.training.flags import define_flags
from keras_attn.weights import fetch

from tests.conftest import FIXTURES
from tests.training.conftest import QUICK

SMALL = {"widths": (16, 32, 64, 128), "depths": (1, 1, 1, 1), "input_shape": (64, 64, 3)}
CHECKPOINT = os.path.join(FIXTURES, "timm", "resnet50d_narrow.safetensors")
# A port where nothing listens (tests/conftest.py points downloads at it too).
CLOSED = "grpc://127.0.0.1:9"


@dataclasses.dataclass(frozen=True)
class Case:
    """`call(folder)` must fail with `error` (an exception type, or the exit status of a
    `keras-attn` command) and a message holding each of `names` (compared case-blind);
    `setup(folder, earlier_run)` makes the files the call reads first (`earlier_run`: the
    folder of a finished training run)."""

    id: str
    call: Callable
    error: type | int
    names: tuple
    setup: Callable = None


class CommandFailed(Exception):
    """A `keras-attn` command returned a non-zero status; its message is what it printed."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _command(*argv):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = cli.main(list(argv))
    if status:
        raise CommandFailed(status, stderr.getvalue())


def _training(*args, without=()):
    """Runs `keras-attn train` on QUICK's flags (less `without`) and `args`."""
    values = flags.FlagValues()
    define_flags(values)
    quick = [arg for arg in QUICK if arg[2:].split("=")[0] not in without]
    values(["train", *quick, *args])
    return train.run(values)


def _write(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as file:
        file.write(data)


def _save_resnet50d_weights(folder, _):
    get_model("resnet50d", **SMALL).save_weights(os.path.join(folder, "resnet50d.weights.h5"))


def _png(folder, name, seed):
    import tensorflow as tf

    pixels = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    _write(os.path.join(folder, name), tf.io.encode_png(pixels).numpy())


def _image_folder(folder, _=None):
    # 40 images: after the validation fifth, one global batch of QUICK's 32 for training.
    for label in ("a", "b"):
        for index in range(20):
            _png(folder, f"images/{label}/{index}.png", index)


def _earlier_run(folder, earlier_run):
    """What an earlier `keras-attn train` left in `run/`: a backup and its config.json."""
    shutil.copytree(earlier_run, os.path.join(folder, "run"))


def _twice_mapped_network():
    # A Network whose record maps two convolutions to one timm module.
    inputs = keras.Input((8, 8, 4))
    first = keras.layers.Conv2D(4, 1, use_bias=False, name="conv_a")(inputs)
    second = keras.layers.Conv2D(4, 1, use_bias=False, name="conv_b")(first)
    return applications.Network(inputs, second, name="twice", structure=applications.Structure(
        timm_modules={"conv_a": "conv1", "conv_b": "conv1"}))


def _plain_keras_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="head")],
                            name="mine")


def _safetensors_header(header):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text


def _int8_export(representative_data):
    model = get_model("seresnet20_cifar", classes=10)
    export.tflite(model, "model.tflite", "int8", representative_data=representative_data)


def _dicts():
    yield {"images": np.zeros((1, 32, 32, 3), "float32")}


EXPORT = ("export", "--model", "seresnet20_cifar", "--weights", "none", "--classes", "10")
RESUME = ("--model_dir=run", "--resume")

CASES = [
    # get_model and the constructors.
    Case("get_model: a .weights.h5 of another network",
         lambda _: get_model("seresnet50", weights="resnet50d.weights.h5", **SMALL),
         ValueError, ("weights", "'resnet50d.weights.h5'"), _save_resnet50d_weights),
    Case("get_model: a weights file that is not there",
         lambda _: get_model("resnet50", weights="missing.weights.h5"),
         ValueError, ("weights", "'missing.weights.h5'")),
    Case("get_model: weights of the wrong type", lambda _: get_model("resnest50d", weights=3),
         ValueError, ("weights=3",)),
    Case("get_model: ImageNet weights a network does not have",
         lambda _: get_model("seresnet18", weights="imagenet"),
         ValueError, ("weights='imagenet'", "'seresnet18'")),
    Case("get_model: an unknown tag", lambda _: get_model("resnest50d", weights="a1_in1k"),
         ValueError, ("tag", "'a1_in1k'")),
    Case("get_model: an unknown name", lambda _: get_model("resnet51"),
         ValueError, ("name", "'resnet51'")),
    Case("get_model: an unknown override", lambda _: get_model("resnet50", widht=3),
         ValueError, ("argument", "'widht'")),
    Case("get_model: widths for another number of stages",
         lambda _: get_model("resnet50", widths=(1, 2)), ValueError, ("widths", "(1, 2)")),
    Case("get_model: a stage of no block",
         lambda _: get_model("resnet50", depths=(0, 1, 1, 1)),
         ValueError, ("depths", "(0, 1, 1, 1)")),
    Case("get_model: cardinality 0", lambda _: get_model("resnext50_32x4d", cardinality=0),
         ValueError, ("cardinality=0",)),
    Case("constructor: classes 0",
         lambda _: applications.ResNeSt14(weights=None, classes=0), ValueError, ("classes=0",)),
    # feature_extractor.
    Case("feature_extractor: a model and get_model arguments",
         lambda _: feature_extractor(get_model("resnet50d", include_top=False, **SMALL),
                                     input_shape=(64, 64, 3)),
         ValueError, ("input_shape",)),
    Case("feature_extractor: an unknown name", lambda _: feature_extractor("resnet51"),
         ValueError, ("name", "'resnet51'")),
    Case("feature_extractor: a model this package did not build",
         lambda _: feature_extractor(_plain_keras_model()), ValueError, ("'mine'",)),
    # from_timm.
    Case("from_timm: an unknown name", lambda _: from_timm("resnet51", CHECKPOINT),
         ValueError, ("name", "'resnet51'")),
    Case("from_timm: a name with no ResNet-family row",
         lambda _: from_timm("se_bn_inception", CHECKPOINT), ValueError, ("'se_bn_inception'",)),
    Case("from_timm: a checkpoint that is not there",
         lambda _: from_timm("seresnet18", "missing.safetensors"),
         FileNotFoundError, ("checkpoint", "'missing.safetensors'")),
    # load_timm_weights.
    Case("load_timm_weights: a model not built by keras_attn",
         lambda _: load_timm_weights(_plain_keras_model(), CHECKPOINT),
         ValueError, ("'mine'",)),
    Case("load_timm_weights: a garbage .safetensors",
         lambda _: load_timm_weights(get_model("resnet50d", **SMALL), "garbage.safetensors"),
         ValueError, ("'garbage.safetensors'",),
         lambda folder, _: _write(os.path.join(folder, "garbage.safetensors"), b"junk" * 64)),
    Case("load_timm_weights: a garbage .pth",
         lambda _: load_timm_weights(get_model("resnet50d", **SMALL), "garbage.pth"),
         ValueError, ("'garbage.pth'",),
         lambda folder, _: _write(os.path.join(folder, "garbage.pth"), b"junk" * 64)),
    Case("load_timm_weights: a checkpoint tensor used twice",
         lambda _: load_timm_weights(_twice_mapped_network(),
                                     {"conv1.weight": np.zeros((4, 4, 1, 1), "float32")}),
         ValueError, ("'conv1.weight'", "twice")),
    # The manifest and the cache.
    Case("weights.tag_info: a tag the network does not have",
         lambda _: weights.tag_info("seresnet50", "imagenet"),
         ValueError, ("'seresnet50'", "'imagenet'", "a1_in1k")),
    Case("weights.checkpoint_url: a network without published weights",
         lambda _: weights.checkpoint_url("seresnet18", "a1_in1k"),
         ValueError, ("'seresnet18'", "'a1_in1k'")),
    Case("save_weights_atomically: a path Keras would refuse",
         lambda _: fetch.save_weights_atomically(_plain_keras_model(), "mine.h5"),
         ValueError, ("path", "'mine.h5'", ".weights.h5")),
    Case("check_safetensors_complete: a header without byte ranges",
         lambda _: fetch.check_safetensors_complete("odd.safetensors", "a test"),
         ValueError, ("a test", "byte range"),
         lambda folder, _: _write(os.path.join(folder, "odd.safetensors"),
                                  _safetensors_header({"w": {"dtype": "F32", "shape": [2]}}))),
    # GroupedConv2D.
    Case("GroupedConv2D: groups that do not divide the filters",
         lambda _: GroupedConv2D(30, 3, groups=4), ValueError, ("groups=4", "filters=30")),
    Case("GroupedConv2D: groups that do not divide the input channels",
         lambda _: GroupedConv2D(32, 3, groups=4)(np.zeros((1, 8, 8, 30), "float32")),
         ValueError, ("groups=4", "30")),
    # The training program's flags.
    Case("train: a negative --weight_decay",
         lambda _: _training("--model_dir=run", "--weight_decay=-1"),
         ValueError, ("--weight_decay", "-1")),
    Case("train: --backup_steps=0", lambda _: _training("--model_dir=run", "--backup_steps=0"),
         ValueError, ("--backup_steps", "0")),
    Case("train: no --model", lambda _: _training("--model_dir=run", without=("model",)),
         ValueError, ("--model",)),
    Case("train: no --model_dir", lambda _: _training(), ValueError, ("--model_dir",)),
    Case("train: a --tpu where nothing answers",
         lambda _: _training("--model_dir=run", "--strategy=tpu", f"--tpu={CLOSED}"),
         ValueError, ("--tpu", f"'{CLOSED}'")),
    Case("train: resuming with another --model",
         lambda _: _training(*RESUME, "--model=seresnet18"),
         ValueError, ("--model", "'seresnet20_cifar'", "'seresnet18'"), _earlier_run),
    Case("train: resuming on other data",
         lambda _: _training(*RESUME, "--data_dir=images", without=("dataset",)),
         ValueError, ("--data_dir", "'images'", "--dataset", "'digits'"),
         lambda folder, run: (_earlier_run(folder, run), _image_folder(folder))),
    Case("train: resuming with another --val_split",
         lambda _: _training(*RESUME, "--val_split=0.3"),
         ValueError, ("--val_split", "0.2", "0.3"), _earlier_run),
    # keras-attn predict (resnet50 has ImageNet weights: the case meets no other error first).
    Case("predict: an image that does not decode",
         lambda _: _command("predict", "--model", "resnet50", "broken.png"),
         1, ("image", "'broken.png'"),
         lambda folder, _: _write(os.path.join(folder, "broken.png"), b"not a png")),
    Case("predict: --top 0",
         lambda _: _command("predict", "--model", "resnet50", "--top", "0", "a.png"),
         2, ("--top", "0"), lambda folder, _: _png(folder, "a.png", 0)),
    # keras-attn export.
    Case("export: a --verify-dir without images",
         lambda _: _command(*EXPORT, "--format", "saved_model", "--output", "serving",
                            "--verify-dir", "empty"),
         2, ("--verify-dir", "'empty'"),
         lambda folder, _: _write(os.path.join(folder, "empty", "notes.txt"), "no image here")),
    Case("export: a --calibration-dir without images",
         lambda _: _command(*EXPORT, "--format", "tflite", "--quantization", "int8",
                            "--output", "model.tflite", "--calibration-dir", "empty"),
         2, ("--calibration-dir", "'empty'"),
         lambda folder, _: _write(os.path.join(folder, "empty", "notes.txt"), "no image here")),
    Case("export: a --labels file of the wrong length",
         lambda _: _command(*EXPORT, "--format", "saved_model", "--output", "serving",
                            "--labels", "labels.txt"),
         2, ("--labels", "'labels.txt'", "3", "10"),
         lambda folder, _: _write(os.path.join(folder, "labels.txt"), "cat\ndog\nbird\n")),
    # export.tflite's calibration data.
    Case("export.tflite: representative_data, a function returning no iterable",
         lambda _: _int8_export(lambda: 3), ValueError, ("representative_data", "3")),
    Case("export.tflite: representative_data yielding dicts",
         lambda _: _int8_export(_dicts), ValueError, ("representative_data", "dict")),
]


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory):
    """The folder of a finished QUICK training run, which the resume cases copy."""
    folder = str(tmp_path_factory.mktemp("earlier") / "run")
    _training(f"--model_dir={folder}")
    assert os.path.exists(os.path.join(folder, "backup", "latest"))
    return folder


def _files(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, folders, names in os.walk(folder) for name in names + folders)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_named_and_leaves_nothing(case, tmp_path, monkeypatch, earlier_run):
    monkeypatch.chdir(tmp_path)
    if case.setup is not None:
        case.setup(str(tmp_path), earlier_run)
    before = _files(tmp_path)
    expected = CommandFailed if isinstance(case.error, int) else case.error
    with pytest.raises(expected) as raised:
        case.call(str(tmp_path))
    if isinstance(case.error, int):
        assert raised.value.status == case.error, str(raised.value)
    message = str(raised.value)
    missing = [name for name in case.names if name.casefold() not in message.casefold()]
    assert not missing, f"the message does not name {missing}: {message}"
    assert _files(tmp_path) == before  # nothing written, nothing half-written
