"""The `keras-attn` command."""

import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
import weakref

import numpy as np
import pytest
import torch

from keras_attn import cli
from keras_attn.applications import get_model

from tests.conftest import FIXTURES
from tests.processes import wait_for_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_models_lists_matching_networks(capsys):
    assert cli.main(["models", "resnest14d"]) == 0
    assert capsys.readouterr().out.split() == ["resnest14d", "224", "ResNeSt", "Zhang", "et",
                                               "al.,", "2020"]


def test_models_with_params_counts_them(capsys):
    assert cli.main(["models", "resnest14d", "--params"]) == 0
    assert "10,634,024" in capsys.readouterr().out


def test_models_reports_an_unmatched_pattern(capsys):
    assert cli.main(["models", "vgg*"]) == 1
    assert "No model matches 'vgg*'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def console_script():
    script = shutil.which("keras-attn", path=os.path.dirname(sys.executable)) or shutil.which(
        "keras-attn"
    )
    if script is None:
        pytest.fail("the keras-attn console script is not installed: pip install -e .")
    return script


def test_console_script_is_installed(console_script):
    result = subprocess.run([console_script, "models", "seresnet5*"], capture_output=True,
                            text=True, timeout=300, check=True)
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["seresnet50"]


def test_train_help_shows_the_command_to_type(console_script):
    result = subprocess.run([console_script, "train", "--help"], capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.startswith(
        "Train or fine-tune a keras_attn network.\n\nUSAGE: keras-attn train --model=NAME "
        "(--dataset=NAME | --data_dir=DIR) --model_dir=DIR [flags]\n"), result.stdout[:300]
    assert "--model_dir: Where the backup" in result.stdout



@pytest.fixture(scope="module")
def seresnet18_checkpoints(tmp_path_factory):
    """A full-size SE-ResNet-18 with random weights, written as timm would (.safetensors, .pth)."""
    from safetensors.numpy import save_file

    from keras_attn import testing
    from keras_attn.convert import timm as timm_convert

    folder = tmp_path_factory.mktemp("seresnet18")
    source = get_model("seresnet18")
    testing.perturb_batch_norm_statistics(source)
    state = timm_convert.timm_state_dict(source)
    save_file(state, str(folder / "seresnet18.safetensors"))
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in state.items()}},
               folder / "seresnet18.pth")
    images = np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32)
    return folder, images, source.predict(images, verbose=0)


def _convert(checkpoint, output, *extra):
    return cli.main(["convert", "--timm-name", "seresnet18", "--checkpoint", str(checkpoint),
                     "--output", str(output), *extra])


@pytest.mark.parametrize("checkpoint", ["seresnet18.safetensors", "seresnet18.pth"])
def test_convert_writes_weights_equal_to_the_checkpoint(seresnet18_checkpoints, checkpoint,
                                                        tmp_path, capsys):
    folder, images, expected = seresnet18_checkpoints
    output = tmp_path / "seresnet18.weights.h5"
    assert _convert(folder / checkpoint, output) == 0
    assert f"-> {output}" in capsys.readouterr().out
    model = get_model("seresnet18", weights=str(output))
    np.testing.assert_array_equal(model.predict(images, verbose=0), expected)
    assert os.listdir(tmp_path) == ["seresnet18.weights.h5"]  # no temporary file left


def test_convert_takes_a_training_checkpoints_ema_weights(seresnet18_checkpoints, tmp_path,
                                                          capsys):
    import argparse

    folder, images, expected = seresnet18_checkpoints
    ema = torch.load(folder / "seresnet18.pth")["state_dict"]
    checkpoint = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 9, "state_dict": {k: torch.zeros_like(v) for k, v in ema.items()},
                "state_dict_ema": ema, "args": argparse.Namespace(model="seresnet18")},
               checkpoint)
    output = tmp_path / "ema.weights.h5"
    assert _convert(checkpoint, output, "--use-ema") == 0
    model = get_model("seresnet18", weights=str(output))
    np.testing.assert_array_equal(model.predict(images, verbose=0), expected)
    assert _convert(folder / "seresnet18.safetensors", tmp_path / "o.weights.h5",
                    "--use-ema") == 1
    assert "has no EMA weights" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["ema.weights.h5", "model_best.pth.tar"]


class _Payload:
    def __reduce__(self):
        return (open, ("pwned.txt", "w"))


def test_pth_with_arbitrary_objects_is_refused_without_running_them(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.chdir(tmp_path)
    with open("evil.pth", "wb") as file:
        pickle.dump({"conv1.weight": _Payload()}, file, protocol=2)
    assert _convert("evil.pth", "out.weights.h5") == 1
    assert "is not a plain PyTorch state dict" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["evil.pth"]  # nothing ran, nothing was written


def test_pth_without_torch_says_what_to_install(tmp_path, monkeypatch, capsys):
    torch.save({}, tmp_path / "model.pth")
    monkeypatch.setitem(sys.modules, "torch", None)
    assert _convert(tmp_path / "model.pth", tmp_path / "o.weights.h5") == 1
    assert "needs torch (pip install torch)" in capsys.readouterr().err


def test_convert_refuses_bad_outputs_and_checkpoints(seresnet18_checkpoints, tmp_path, capsys):
    folder = seresnet18_checkpoints[0]
    existing = tmp_path / "existing.weights.h5"
    existing.write_bytes(b"keep me")
    assert _convert(folder / "seresnet18.safetensors", existing) == 2
    assert existing.read_bytes() == b"keep me"
    assert "pass --overwrite" in capsys.readouterr().err
    assert _convert(folder / "seresnet18.safetensors", tmp_path / "out.h5") == 2
    assert "must end with .weights.h5" in capsys.readouterr().err
    other = os.path.join(FIXTURES, "timm", "resnet50d_narrow.safetensors")
    assert _convert(other, tmp_path / "o.weights.h5") == 1
    assert "no tensor" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["existing.weights.h5"]


def test_export_writes_verified_saved_model_and_int8_tflite(tmp_path, capsys):
    import tensorflow as tf

    from keras_attn.export import tflite_export

    model = get_model("seresnet20_cifar", classes=10)
    weights = str(tmp_path / "digits.weights.h5")
    model.save_weights(weights)
    images = tmp_path / "images" / "class"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(3):
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        (images / f"{index}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    common = ["export", "--model", "seresnet20_cifar", "--weights", weights, "--classes", "10"]

    serving = tmp_path / "serving"
    assert cli.main([*common, "--format", "saved_model", "--output", str(serving),
                     "--version", "7", "--verify-dir", str(images.parent)]) == 0
    assert os.listdir(serving) == ["7"]
    assert re.search(r"saved_model .*/serving/7: max abs error \S+, top-1 agreement 100\.00% on 3 "
                     r"images, [\d.]+ MiB", capsys.readouterr().out)

    path = tmp_path / "digits_int8.tflite"
    assert cli.main([*common, "--format", "tflite", "--quantization", "int8", "--output",
                     str(path), "--calibration-dir", str(images.parent)]) == 0
    assert "tflite (int8)" in capsys.readouterr().out
    assert "QUANTIZE" in tflite_export.operators(str(path))

    assert cli.main([*common, "--format", "saved_model", "--quantization", "int8",
                     "--output", str(serving)]) == 2
    assert ("--quantization int8 applies to --format tflite and onnx only."
            in capsys.readouterr().err)
    assert cli.main([*common, "--format", "tflite", "--quantization", "int8",
                     "--output", str(path)]) == 2
    assert "pass --overwrite to replace it" in capsys.readouterr().err
    written = path.read_bytes()
    assert cli.main([*common, "--format", "tflite", "--output", str(path), "--overwrite"]) == 0
    assert f"tflite {path}: max abs error" in capsys.readouterr().out
    assert path.read_bytes() != written
    assert cli.main([*common, "--format", "saved_model", "--output", str(serving),
                     "--version", "7"]) == 1
    assert "Version 7 exists already" in capsys.readouterr().err


@pytest.mark.slow  # four exports, about 45 s
def test_export_writes_verified_onnx_int8_onnx_and_openvino(tmp_path, tmp_path_factory, capsys,
                                                           monkeypatch):
    import onnx
    import tensorflow as tf

    from keras_attn.export import onnx_export

    # The three ONNX exports below convert the same network (the same weights file) to the
    # same float32 graph: converted once, copied for the others.
    convert, first = onnx_export.convert, tmp_path_factory.mktemp("converted") / "model.onnx"

    def convert_once(model, config, path):
        if not first.exists():
            convert(model, config, path)
            shutil.copyfile(path, first)
        shutil.copyfile(first, path)

    monkeypatch.setattr(onnx_export, "convert", convert_once)

    model = get_model("seresnet20_cifar", classes=10)
    weights = str(tmp_path / "digits.weights.h5")
    model.save_weights(weights)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        (images / f"{index}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    common = ["export", "--model", "seresnet20_cifar", "--weights", weights, "--classes", "10",
              "--verify-dir", str(images)]

    path = tmp_path / "digits.onnx"
    assert cli.main([*common, "--format", "onnx", "--output", str(path)]) == 0
    assert re.fullmatch(rf"onnx {re.escape(str(path))}: max abs error \S+, top-1 agreement "
                        r"100\.00% on 3 images, [\d.]+ MiB\n", capsys.readouterr().out)
    int8 = tmp_path / "digits_int8.onnx"
    int8_command = [*common, "--format", "onnx", "--quantization", "int8", "--output", str(int8),
                    "--calibration-dir", str(images), "--keep-float", "se"]
    assert cli.main([*int8_command, "--max-error", "1e-9"]) == 1  # the limit reaches it
    assert re.search(r"The onnx export differs from the Keras model: max abs error \S+ > 1e-09 "
                     r"\(3 images\)\. Nothing was written\.", capsys.readouterr().err)
    assert not int8.exists()
    assert cli.main(int8_command) == 0
    assert capsys.readouterr().out.startswith(f"onnx (int8) {int8}: max abs error")
    graph = onnx.load(str(int8)).graph
    assert "QuantizeLinear" in {node.op_type for node in graph.node}
    # --keep-float se: no SE gate's sigmoid output is quantized on its way to the rescaling.
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    gates = [node.output[0] for node in graph.node if node.op_type == "Sigmoid"]
    assert len(gates) == 9 and all("QuantizeLinear" not in readers[gate] for gate in gates)

    xml = tmp_path / "digits.xml"
    assert cli.main([*common, "--format", "openvino", "--output", str(xml)]) == 0
    report, note = capsys.readouterr().out.splitlines()
    assert report.startswith(f"openvino {xml}: max abs error")
    assert "bfloat16" in note and '{"INFERENCE_PRECISION_HINT": "f32"}' in note
    assert sorted(os.listdir(tmp_path)) == ["digits.bin", "digits.onnx", "digits.weights.h5",
                                            "digits.xml", "digits_int8.onnx", "images"]
    assert cli.main([*common, "--format", "openvino", "--output", str(xml)]) == 2
    assert "digits.xml' exists; pass --overwrite" in capsys.readouterr().err
    assert cli.main([*common, "--format", "openvino", "--output", str(xml), "--overwrite"]) == 0


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--format", "tflite", "--output", "{existing}"],
         "exists; pass --overwrite to replace it."),
        (["--format", "tflite", "--output", "{folder}"], "is a folder; a TFLite export's"),
        (["--format", "tflite", "--output", "{folder}/missing/x.tflite"],
         "its folder does not exist."),
        (["--format", "saved_model", "--output", "{existing}"], "is a file; a SavedModel's"),
        (["--format", "tflite", "--quantization", "int8", "--output", "{folder}/x.tflite"],
         "--quantization int8 needs --calibration-dir"),
        (["--format", "tflite", "--output", "{folder}/x.tflite", "--keep-float", "se"],
         "--keep-float applies to --quantization int8 (tflite, onnx) only."),
        (["--format", "tflite", "--output", "{folder}/x.tflite", "--version", "3"],
         "--version applies to --format saved_model only."),
        (["--format", "tflite", "--output", "{folder}/x.tflite", "--top-k", "3"],
         "--top-k applies to --format saved_model only."),
        (["--format", "tflite", "--output", "{folder}/x.tflite", "--calibration-dir",
          "{folder}"], "--calibration-dir applies to --quantization int8 (tflite, onnx) only."),
        (["--format", "onnx", "--output", "{existing}"],
         "exists; pass --overwrite to replace it."),
        (["--format", "onnx", "--output", "{folder}"], "is a folder; an ONNX export's"),
        (["--format", "onnx", "--quantization", "float16", "--output", "{folder}/x.onnx"],
         "--quantization float16 applies to --format tflite only."),
        (["--format", "onnx", "--quantization", "int8", "--output", "{folder}/x.onnx"],
         "--quantization int8 needs --calibration-dir"),
        (["--format", "onnx", "--output", "{folder}/x.onnx", "--top-k", "3"],
         "--top-k applies to --format saved_model only."),
        (["--format", "openvino", "--output", "{folder}/x.onnx"], "must end with .xml"),
        (["--format", "openvino", "--output", "{folder}/existing.xml"],
         "existing.bin' exists; pass --overwrite to replace it."),
        (["--format", "openvino", "--quantization", "int8", "--output", "{folder}/x.xml"],
         "--quantization int8 applies to --format tflite and onnx only."),
        (["--format", "saved_model", "--output", "{folder}/s", "--verify-dir", "{folder}/no"],
         "--verify-dir '{folder}/no' is not a folder."),
        (["--format", "saved_model", "--output", "{folder}/s", "--image-size", "0"],
         "--image-size must be >= 1; received 0."),
        (["--format", "tflite", "--output", "{folder}/x.tflite", "--weights", "imagenet",
          "--classes", "10"], "--classes 10 needs --weights none or a weights file"),
    ],
)
def test_export_refuses_bad_arguments_before_building_anything(tmp_path, monkeypatch, capsys,
                                                                arguments, message):
    from keras_attn import applications

    def refuse(*args, **kwargs):
        raise AssertionError("a network was built")

    monkeypatch.setattr(applications, "get_model", refuse)
    existing = tmp_path / "existing.tflite"
    existing.write_bytes(b"keep me")
    weights = tmp_path / "existing.bin"  # an OpenVINO IR's weights, without its .xml
    weights.write_bytes(b"keep me")
    arguments = [a.format(existing=existing, folder=tmp_path) for a in arguments]
    assert cli.main(["export", "--model", "seresnet20_cifar", "--weights", "none",
                     *arguments]) == 2
    assert message.format(folder=tmp_path) in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["existing.bin", "existing.tflite"]
    assert existing.read_bytes() == weights.read_bytes() == b"keep me"


def test_a_missing_weights_file_is_named_as_a_file(capsys, tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert cli.main(["predict", "--model", "resnet50", "--weights", "missing.weights.h5",
                     str(image)]) == 1
    assert "`weights` file not found: 'missing.weights.h5'" in capsys.readouterr().err


def _signal_self_then_work():
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):  # the handler runs here
        pass


class _SignalsWhenFreed:
    def __del__(self):
        _signal_self_then_work()


class _SignalsWhenFreedAndCatchesAll:
    def __del__(self):  # as TensorFlow's ConcreteFunctionGarbageCollector does
        try:
            _signal_self_then_work()
        except:  # noqa: E722
            pass


class _Referent:
    pass


def _freed_with_a_signalling_weakref_callback():
    referent = _Referent()
    weakref.finalize(referent, _signal_self_then_work)
    return referent


@pytest.mark.parametrize("make_garbage", [
    _SignalsWhenFreed, _SignalsWhenFreedAndCatchesAll, _freed_with_a_signalling_weakref_callback,
], ids=["destructor", "destructor_catching_all", "weakref_callback"])
def test_sigterm_handled_where_python_drops_exceptions_still_ends_the_program(make_garbage,
                                                                             capsys):
    # TensorFlow frees functions in `__del__`, where Python drops what is raised: a SIGTERM
    # handled there once let an export run to the end and exit 0 (the project's CI, 62d52b0).
    previous_hook = sys.unraisablehook
    with pytest.raises(SystemExit) as raised:
        with cli.terminate_as_exit():
            garbage = make_garbage()
            del garbage
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # work that the resent signal interrupts
                pass
    assert raised.value.code == 128 + signal.SIGTERM
    assert time.monotonic() < deadline
    assert sys.unraisablehook is previous_hook
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert "Exception ignored" not in capsys.readouterr().err


def test_sigterm_whose_exit_was_caught_still_sets_the_exit_status():
    with pytest.raises(SystemExit) as raised:
        with cli.terminate_as_exit():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except BaseException:  # a library's broad handler that carries on
                pass
    assert raised.value.code == 128 + signal.SIGTERM


# `keras-attn export`, which prints a line and waits once its SavedModel is written (under a
# hidden .incomplete-* folder) and about to be verified: the test signals it there.
EXPORT_THAT_WAITS_TO_BE_VERIFIED = """
import sys
import threading
from keras_attn import cli
from keras_attn.export import saved_model_export
def wait(*args, **kwargs):
    print("verifying", flush=True)
    threading.Event().wait()
saved_model_export._reload_and_run = wait
sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigterm_mid_export_leaves_nothing_behind(tmp_path):
    serving = tmp_path / "serving"
    command = [sys.executable, "-c", EXPORT_THAT_WAITS_TO_BE_VERIFIED, "export", "--model",
               "seresnet20_cifar", "--weights", "none", "--format", "saved_model", "--output",
               str(serving)]
    environment = {**os.environ, "PYTHONPATH": ROOT}
    with open(tmp_path / "stderr", "wb") as stderr:
        process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                                   stderr=stderr, bufsize=0)
    try:
        wait_for_line(process, "verifying")
        assert os.listdir(serving)[0].startswith(".incomplete-")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:  # a failed check leaves no TensorFlow process running
            process.kill()
            process.wait()
        process.stdout.close()
    assert not serving.exists()  # the base folder the export made is gone with its contents


def test_an_imagenet_12k_tag_is_refused_before_anything_is_fetched(capsys, tmp_path,
                                                                   monkeypatch):
    from keras_attn import applications

    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert cli.main(["predict", "--model", "resnetaa50d", "--weights", "sw_in12k",
                     str(image)]) == 1
    assert ("the resnetaa50d weights 'sw_in12k' classify 11821 (ImageNet-12k), which it cannot "
            "decode") in capsys.readouterr().err

    def refuse(*args, **kwargs):
        raise AssertionError("a network was built")

    monkeypatch.setattr(applications, "get_model", refuse)
    assert cli.main(["export", "--model", "resnetaa50d", "--weights", "sw_in12k", "--format",
                     "tflite", "--output", str(tmp_path / "x.tflite")]) == 2
    assert ("--classes 1000 needs --weights none or a weights file of that many classes: the "
            "published weights ('sw_in12k') classify 11821.") in capsys.readouterr().err
