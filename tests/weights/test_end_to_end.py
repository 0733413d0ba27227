"""A full-size network through the published-weights path: server -> cache -> constructor, CLI."""

import hashlib
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load, save

import keras_attn
from keras_attn import cli, testing
from keras_attn import weights as published
from keras_attn.applications import get_model, imagenet_utils
from keras_attn.convert import timm as timm_convert

from tests.conftest import FIXTURES


@pytest.mark.slow
def test_resnest14_default_weights_and_predict_command(checkpoint_server, cache_files, tmp_path,
                                                       capsys, monkeypatch):
    source = get_model("resnest14d")
    testing.perturb_batch_norm_statistics(source)
    checkpoint = save(timm_convert.timm_state_dict(source))
    checkpoint_server.routes["/timm/resnest14d.gluon_in1k/resolve/main/model.safetensors"] = (
        checkpoint, "ok"
    )
    # A stand-in for the published file: the manifest's hash is that of the real one.
    monkeypatch.setitem(published.tag_info("resnest14d", "gluon_in1k"), "sha256",
                        hashlib.sha256(checkpoint).hexdigest())

    pixels = np.random.default_rng(0).integers(0, 256, (180, 240, 3), dtype=np.uint8)
    tf.io.write_file(str(tmp_path / "photo.jpg"), tf.io.encode_jpeg(pixels))
    tf.io.write_file(str(tmp_path / "photo.png"), tf.io.encode_png(pixels))
    assert cli.main(["predict", "--model", "resnest14d", str(tmp_path / "photo.jpg"),
                     str(tmp_path / "photo.png")]) == 0
    output = capsys.readouterr().out
    assert "Downloading data from http://127.0.0.1" in output  # keras.utils.get_file's progress
    lines = output[output.index(str(tmp_path / "photo.jpg")) :].splitlines()
    assert lines[0].endswith("photo.jpg") and lines[6].endswith("photo.png")
    labels = {f"{name} ({wnid})" for wnid, name in imagenet_utils.imagenet_classes()}
    for line in lines[1:6] + lines[7:12]:
        score, label = re.fullmatch(r"\s+(\d\.\d{3})\s+(.*)", line).groups()
        assert label in labels and 0 <= float(score) <= 1
    assert len(checkpoint_server.requests) == 1

    # The constructor's default, weights="imagenet", now loads from the cache.
    model = keras_attn.applications.ResNeSt14()
    images = testing.random_images((2, 224, 224, 3))
    np.testing.assert_array_equal(model.predict(images, verbose=0),
                                  source.predict(images, verbose=0))
    assert len(checkpoint_server.requests) == 1
    assert cache_files() == ["resnest14d.gluon_in1k.safetensors",
                             "resnest14d.gluon_in1k.weights.h5"]


# Published tags served from the timm fixtures (narrow rows: a changed row converts and caches
# like the published one); the fixtures' classifiers have 10 classes, so the networks are built
# without theirs and the fixture's is applied to the pooled features.
LOOPBACK = {
    "resnetrs50": ("tf_in1k", "resnetrs50_narrow", {"stem_width": 8}),
    "ecaresnet26t": ("ra2_in1k", "ecaresnet26t_narrow", {"stem_width": 8}),
}


def _fixture(case):
    folder = os.path.join(FIXTURES, "timm")
    with open(os.path.join(folder, f"{case}.json")) as file:
        timm_args = json.load(file)
    with open(os.path.join(folder, f"{case}.safetensors"), "rb") as file:
        checkpoint = file.read()
    data = np.load(os.path.join(folder, f"{case}.npz"))
    overrides = {"widths": timm_args["channels"], "depths": timm_args["layers"]}
    return checkpoint, data["input_nhwc"], data["logits"], overrides


@pytest.mark.parametrize("name", sorted(LOOPBACK))
def test_published_tag_loads_through_weights_and_gives_timms_logits(name, checkpoint_server,
                                                                   cache_files):
    tag, case, extra = LOOPBACK[name]
    checkpoint, images, logits, overrides = _fixture(case)
    route = f"/timm/{name}.{tag}/resolve/main/model.safetensors"
    checkpoint_server.routes[route] = (checkpoint, "ok")
    for _ in range(2):  # the second load reads the converted file from the cache
        model = get_model(name, weights=tag, include_top=False, pooling="avg",
                          input_shape=images.shape[1:], **overrides, **extra)
        state = load(checkpoint)
        features = model.predict(images, verbose=0)
        np.testing.assert_allclose(features @ state["fc.weight"].T + state["fc.bias"], logits,
                                   rtol=0, atol=1e-4)
    assert checkpoint_server.requests == [route]
    assert len(cache_files()) == 2


def test_imagenet_12k_tag_loads_with_its_own_classifier(checkpoint_server):
    # resnetaa50d's sw_in12k classifies ImageNet-12k's 11821 classes: get_model builds that
    # classifier unless told otherwise, and decode_predictions refuses its output by name.
    checkpoint, images, _, overrides = _fixture("resnetaa50d_narrow")
    state = load(checkpoint)
    rng = np.random.default_rng(0)
    state["fc.weight"] = rng.normal(0, 0.05, (11821, state["fc.weight"].shape[1])).astype("float32")
    state["fc.bias"] = rng.normal(0, 0.05, 11821).astype("float32")
    checkpoint_server.routes["/timm/resnetaa50d.sw_in12k/resolve/main/model.safetensors"] = (
        save(state), "ok")
    model = get_model("resnetaa50d", weights="sw_in12k", classifier_activation=None,
                      input_shape=images.shape[1:], stem_width=8, **overrides)
    assert model.output_shape == (None, 11821)
    backbone = get_model("resnetaa50d", weights="sw_in12k", include_top=False, pooling="avg",
                         input_shape=images.shape[1:], stem_width=8, **overrides)
    expected = backbone.predict(images, verbose=0) @ state["fc.weight"].T + state["fc.bias"]
    logits = model.predict(images, verbose=0)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match=re.escape("11821 classes are those of ImageNet-12k")):
        keras_attn.applications.decode_predictions(logits)
