"""The README's commands are what CI runs, its model table is the registry's, its code runs."""

import os
import re
import shlex

import numpy as np
import pytest
import tensorflow as tf

import keras_attn

from keras_attn.applications import get_model, registry
from keras_attn.convert import timm as timm_convert
from tools import sections, tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts)) as file:
        return file.read()


def _code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", _read("README.md"), re.S)


def test_ci_runs_exactly_the_readme_install_and_test_commands():
    install, test = [block.strip() for block in _code_blocks("bash")[:2]]
    assert install == 'pip install -e ".[test]"'
    assert test == "python -m pytest"
    commands = [line.strip() for line in _read(".ci", "run").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    # The README's two commands, in order, with the checks CI adds between and after them.
    assert commands.index(install) < commands.index(test)
    assert "ruff check keras_attn tests benchmarks tools" in commands


def _section(name):
    return sections.read_section("README.md", name)


@pytest.mark.slow
def test_readme_model_table_is_generated_from_the_registry(full_size_param_counts):
    assert _section("models") == tables.models_table(full_size_param_counts), (
        "README.md's model table is stale: run `python tools/update_readme.py`"
    )


@pytest.mark.slow
def test_readme_gate_overhead_table_is_generated(full_size_param_counts):
    ungated = {name: registry.count_parameters(name, gate=None)
               for name in tables.GATE_OVERHEAD_NAMES}
    assert ungated["seresnet50"] == full_size_param_counts["resnet50"]
    assert ungated["seresnext50_32x4d"] == full_size_param_counts["resnext50_32x4d"]
    assert _section("overhead") == tables.gate_overhead_table(full_size_param_counts, ungated)


def test_readme_weights_table_is_generated_from_the_manifest():
    assert _section("weights") == tables.weights_table(), (
        "README.md's weights table is stale: run `python tools/update_readme.py`"
    )


def test_readme_attention_table_is_generated_from_the_registry():
    assert _section("attention") == tables.attention_table(), (
        "README.md's attention table is stale: run `python tools/update_readme.py`"
    )
    assert all(f"`{kind.name}`" in _section("attention") for kind in keras_attn.attention.kinds())


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path, monkeypatch, capsys, checkpoint_server):
    # The quickstart's ResNeSt50() downloads ImageNet weights: serve a stand-in locally.
    from safetensors.numpy import save

    checkpoint_server.routes["/timm/resnest50d.in1k/resolve/main/model.safetensors"] = (
        save(timm_convert.timm_state_dict(get_model("resnest50d"))), "ok"
    )
    monkeypatch.chdir(tmp_path)
    pixels = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    tf.io.write_file("cat.jpg", tf.io.encode_jpeg(pixels))
    quickstart, shrink, layers, _, attention, grouped, data_parallel = _code_blocks("python")
    namespace = {}
    exec(quickstart, namespace)  # noqa: S102 (the README's own code)
    printed = capsys.readouterr().out.strip().splitlines()[-5:]  # after predict's progress bar
    assert all(re.fullmatch(r"\S+\s+0\.\d{3}", line) for line in printed), printed
    exec(shrink, namespace)  # noqa: S102
    assert namespace["tiny"].output_shape == (None, 10)
    assert sorted(namespace["backbone"].output) == ["P2", "P3", "P4", "P5"]
    exec(layers, namespace)  # noqa: S102
    assert tuple(namespace["x"].shape) == (None, None, None, 128)
    exec(attention, namespace)  # noqa: S102
    assert set(namespace["weights"]) == set(namespace["selection"].means)  # every SK layer
    assert [open(name, "rb").read(4) for name in ("excitation.png", "kernel_selection.png")] \
        == [b"\x89PNG"] * 2
    exec(grouped, namespace)  # noqa: S102
    assert namespace["probabilities"].shape == (2, 10)
    # The DataParallel example needs KERAS_BACKEND=jax: tests/backends/test_jax.py runs the
    # same calls; here it must at least be valid Python.
    compile(data_parallel, "README.md (data parallel)", "exec")


def test_readme_train_commands_parse_with_the_programs_flags():
    from absl import flags

    from keras_attn.training.flags import define_flags

    commands = [
        shlex.split(line.replace("\\\n", " "))
        for block in _code_blocks("bash")
        for line in re.findall(r"(?:^|\s)(keras-attn train (?:.*\\\n)*.*)", block)
    ]
    assert len(commands) == 3  # the main job, fine-tuning, a multi-worker worker
    assert commands[0] == ["keras-attn", "train", "--dataset=digits", "--model=seresnet20_cifar",
                           "--epochs=20", "--jit_compile", "--model_dir=runs/digits"]
    for command in commands:
        values = flags.FlagValues()
        define_flags(values)
        values(command[1:])  # raises on a flag the program does not define
        assert values["model"].present and values["model_dir"].present


def test_readme_convert_commands_parse_with_the_command_line():
    from keras_attn import cli

    commands = [shlex.split(line) for block in _code_blocks("bash")
                for line in block.splitlines() if line.startswith("keras-attn convert ")]
    assert len(commands) == 2  # a .safetensors, a timm training checkpoint with --use-ema
    parsed = [cli.build_parser().parse_args(command[1:]) for command in commands]
    assert [args.use_ema for args in parsed] == [False, True]
    assert parsed[1].checkpoint.endswith("model_best.pth.tar")


def test_readme_export_commands_parse_and_pass_the_usage_checks(tmp_path, monkeypatch):
    from keras_attn import cli

    commands = [
        shlex.split(command.replace("\\\n", " ").split("  #")[0])
        for block in _code_blocks("bash")
        for command in re.findall(r"(?:^|\n)(keras-attn export (?:.*\\\n)*.*)", block)
    ]
    formats = [command[command.index("--format") + 1] for command in commands]
    assert formats == ["saved_model", "tflite", "onnx", "onnx", "openvino"]
    monkeypatch.chdir(tmp_path)
    for folder in ("photos", "holdout", "serving"):
        (tmp_path / folder).mkdir()
    for command in commands:
        args = cli.build_parser().parse_args(command[1:])
        assert cli._export_usage_error(args) is None, command


def test_readme_export_tables_are_generated_by_the_benchmark():
    readme = _read("README.md")
    families = re.search(r"<!-- export:begin.*?-->\n(.*?)<!-- export:end -->", readme, re.S)
    rows = [line for line in families.group(1).splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0][2:] for row in rows] == [
        "ResNeSt", "SE-ResNet", "SE-ResNeXt", "SKNet", "ResNeXt", "SE-Inception"]
    quantization = re.search(r"<!-- quantization:begin.*?-->\n(.*?)<!-- quantization:end -->",
                             readme, re.S)
    assert [f"TFLite {q}" in quantization.group(1)
            for q in ("float32", "float16", "dynamic", "int8")] == [True] * 4
    assert os.path.isfile(os.path.join(ROOT, "benchmarks", "export_table.py"))


def test_readme_throughput_tables_are_generated_by_the_benchmark():
    # benchmarks.throughput's defaults; not imported here, as it imports torch, which after XLA
    # has compiled in this process aborts it.
    cpu = ("resnext50_32x4d", "seresnext50_32x4d", "skresnext50_32x4d", "resnest50d",
           "seresnet50")
    gpu = ("seresnext50_32x4d", "resnest50d", "resnext50_32x4d")
    readme = _read("README.md")
    for section, names in (("throughput", cpu), ("throughput-gpu", gpu)):
        table = re.search(rf"<!-- {section}:begin.*?-->\n(.*?)<!-- {section}:end -->", readme,
                          re.S).group(1)
        rows = [line.split(" | ")[0][2:] for line in table.splitlines() if line.startswith("| ")]
        assert rows[1:] == ["resnet50", *names], section
    assert "python -m benchmarks.throughput --update-readme" in readme
