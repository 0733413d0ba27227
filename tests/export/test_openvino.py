"""OpenVINO IR export: Keras' own exporter behind the serving contract, verified in OpenVINO's
CPU runtime in float32, the `.xml` and `.bin` put in place together or not at all."""

import os
import re
import shutil

import numpy as np
import openvino as ov
import pytest

from keras_attn import export
from keras_attn.export import files, openvino_export, serving
from tests.export.conftest import (RUNTIME_EXPORT_FAMILIES, exported_once,
                                   grouped_convolutions)


def _pixels(count, seed, size=64):
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


def _graph_groups(path):
    """The groups of every OpenVINO `GroupConvolution` (weights `(groups, out, in, h, w)`)."""
    model = ov.Core().read_model(str(path))
    return sorted(op.input_value(1).get_partial_shape()[0].get_length()
                  for op in model.get_ops() if op.get_type_name() == "GroupConvolution")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`exported(family)`: the family's model, IR and report, exported once for the module."""
    return exported_once(tmp_path_factory, export.openvino, "model.xml")


# The network of the tests of the export's other parts, and what their conversion returns:
# a copy of its IR, converted once.
NETWORK = "SE-ResNeXt-AA"


def _copy_of(xml):
    # shutil's copyfile as it is now: the tests below replace it where the export copies.
    copy = shutil.copyfile

    def convert(model, config, path):
        copy(xml, path)
        copy(openvino_export.weights_file(str(xml)), openvino_export.weights_file(path))
    return convert


@pytest.mark.parametrize("family", RUNTIME_EXPORT_FAMILIES)
def test_every_layer_kind_matches_keras_in_float32(family, exported):
    model, path, report = exported(family)
    tmp_path = path.parent
    assert report.max_abs_error <= 1e-4 and report.top1_agreement == 1.0
    assert (report.format, report.quantization, report.path) == ("openvino", None, str(path))
    assert sorted(os.listdir(tmp_path)) == ["model.bin", "model.xml"]
    assert report.size_bytes == os.path.getsize(path) + os.path.getsize(tmp_path / "model.bin")
    # One GroupConvolution per grouped convolution, with its groups.
    assert _graph_groups(path) == grouped_convolutions(model)
    # Weights stored in float32 (OpenVINO's `save_model` would halve them to float16).
    assert 'element_type="f16"' not in path.read_text()
    converted = ov.Core().read_model(str(path))
    assert [port.get_names() for port in converted.inputs] == [{"images"}]
    assert [port.get_names() for port in converted.outputs] == [{"probabilities"}]
    # Any batch: one image and three.
    config = serving.serving_config(model)
    for images in (_pixels(1, seed=2, size=config.size), _pixels(3, seed=3, size=config.size)):
        expected = serving.probabilities_fn(model, config)(images)
        np.testing.assert_allclose(export.run_openvino(path, images), expected, atol=1e-4,
                                   rtol=0)


def test_the_report_says_which_precision_openvino_chooses(exported, tmp_path, monkeypatch):
    model, xml, report = exported(NETWORK)
    default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").to_string()
    assert default == openvino_export.default_precision()
    (note,) = report.notes
    assert note in str(report).splitlines()
    assert '{"INFERENCE_PRECISION_HINT": "f32"}' in note
    if default == "f32":
        assert note.startswith("OpenVINO computes in float32 by default on this CPU; on CPUs "
                               "with bfloat16 (AVX512_BF16, AMX) its default is bfloat16")
    # Where the default is bfloat16, the report measures it against Keras (seen here by
    # making this CPU's OpenVINO report bf16; it then computes as it does by default).
    monkeypatch.setattr(openvino_export, "default_precision", lambda: "bf16")
    monkeypatch.setattr(openvino_export, "convert", _copy_of(xml))
    report = export.openvino(model, tmp_path / "model.xml")
    assert re.fullmatch(r"OpenVINO's default precision on this CPU is bf16: max abs error "
                        r"\S+, top-1 agreement \S+% against Keras on these images \(verified "
                        r'in f32\)\. Compile with \{"INFERENCE_PRECISION_HINT": "f32"\} for '
                        r"float32, or keep bf16 for speed\.", report.notes[0])


def test_bad_input_gets_openvinos_error_and_run_openvino_names_it(exported):
    path = exported(NETWORK)[1]
    compiled = ov.Core().compile_model(str(path), "CPU")
    images = _pixels(2, seed=4)
    for wrong in (images[0], np.concatenate([images, images[..., :1]], -1)):
        # OpenVINO names the input by its index, with both shapes.
        with pytest.raises(RuntimeError, match=re.escape(
                "Can't set the input tensor with index: 0, because the model input "
                f"(shape=[?,64,64,3]) and the tensor (shape=({'.'.join(map(str, wrong.shape))}"
                ")) are incompatible")):
            compiled({"images": wrong})
        with pytest.raises(ValueError, match=re.escape(
                "`images` must have shape [?,64,64,3] (batch, height, width, channels) for "
                f"this model; received an array of shape {wrong.shape}.")):
            export.run_openvino(path, wrong)
    assert compiled({"images": images})["probabilities"].shape == (2, 10)


def test_existing_files_are_replaced_only_when_asked(exported, tmp_path, monkeypatch):
    model, converted_once, _ = exported(NETWORK)
    xml, weights = tmp_path / "model.xml", tmp_path / "model.bin"
    converted = []
    monkeypatch.setattr(openvino_export, "convert", lambda *args: converted.append(args))
    for existing in (xml, weights):  # either file of the pair
        existing.write_bytes(b"previous")
        with pytest.raises(FileExistsError, match=re.escape(
                f"{str(existing)!r} exists; pass overwrite=True")):
            export.openvino(model, xml)
        assert not converted and existing.read_bytes() == b"previous"
        existing.unlink()
    xml.write_bytes(b"previous")
    weights.write_bytes(b"previous")
    monkeypatch.setattr(openvino_export, "convert", _copy_of(converted_once))
    export.openvino(model, xml, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["model.bin", "model.xml"]
    assert export.run_openvino(xml, _pixels(1, seed=5)).shape == (1, 10)
    with pytest.raises(ValueError, match=r"`path` must name the OpenVINO IR's \.xml file"):
        export.openvino(model, tmp_path / "model.bin", overwrite=True)


@pytest.mark.parametrize("overwrite", [False, True])
def test_the_pair_lands_together_or_not_at_all(overwrite, exported, tmp_path, scratch,
                                               monkeypatch):
    model, converted_once, _ = exported(NETWORK)
    monkeypatch.setattr(openvino_export, "convert", _copy_of(converted_once))
    folder = tmp_path / "out"
    folder.mkdir()
    xml = folder / "model.xml"
    if overwrite:
        xml.write_bytes(b"old xml")
        (folder / "model.bin").write_bytes(b"old bin")
    copy, renames = files.shutil.copyfile, []

    def copy_then_count(source, target):
        copy(source, target)
        renames.append(target)

    # Interrupted after the .bin landed, before the .xml did.
    replace, link = files.os.replace, files.os.link

    def fail_on_xml(move):
        def move_unless_xml(source, target):
            if str(target).endswith(".xml"):
                raise KeyboardInterrupt("interrupted between the two files")
            return move(source, target)
        return move_unless_xml

    monkeypatch.setattr(files.shutil, "copyfile", copy_then_count)
    monkeypatch.setattr(files.os, "replace", fail_on_xml(replace))
    monkeypatch.setattr(files.os, "link", fail_on_xml(link))
    with pytest.raises(KeyboardInterrupt, match="between the two files"):
        export.openvino(model, xml, overwrite=overwrite)
    assert len(renames) == 2  # both were copied beside their targets
    # No .bin without its .xml, no hidden part, nothing in the scratch folder; an old pair is
    # back as it was.
    assert os.listdir(scratch) == []
    if overwrite:
        assert sorted(os.listdir(folder)) == ["model.bin", "model.xml"]
        assert xml.read_bytes() == b"old xml"
        assert (folder / "model.bin").read_bytes() == b"old bin"
    else:
        assert os.listdir(folder) == []
