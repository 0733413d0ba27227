"""A full-size network through the published-weights path: server -> cache -> constructor, CLI."""

import hashlib
import re

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import save

import keras_attn
from keras_attn import cli, testing
from keras_attn import weights as published
from keras_attn.applications import get_model, imagenet_utils
from keras_attn.convert import timm as timm_convert


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
