"""The documentation (docs/, and the README where it shares a check): every Python block compiles
and the cheap ones run and do what the page says, every command parses with the program's own
parser, and every generated table is what its generator writes now."""

import pathlib
import re
import shlex

import numpy as np
import pytest
import tensorflow as tf

import keras_attn
from keras_attn import attention
from keras_attn.applications import get_model
from keras_attn.convert import timm as timm_convert
from tests import param_counts
from tools import sections, tables

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = ["README.md", *sorted(str(path.relative_to(ROOT)) for path in DOCS.rglob("*.md"))]
STALE = "is stale: run `python tools/update_readme.py`"


def _blocks(page, language):
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / page).read_text(), re.S)


def _python_blocks(page):
    return _blocks(f"docs/{page}", "python")


def _commands(program):
    """Every `keras-attn PROGRAM ...` command of the README's and the pages' bash blocks, its
    continuation lines joined and a trailing comment dropped, as argv after `keras-attn`."""
    found = []
    for page in PAGES:
        for block in _blocks(page, "bash"):
            for command in re.findall(rf"(?:^|\s)(keras-attn {program} (?:.*\\\n)*.*)", block):
                found.append((page, shlex.split(command.replace("\\\n", " ").split("  #")[0])[1:]))
    return found


@pytest.fixture
def unregister_meangate():
    yield
    if "meangate" in [kind.name for kind in attention.kinds()]:
        attention.unregister("meangate")


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """Pages write files (figures, exports): into a folder of their own, offline."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("KERAS_ATTN_WEIGHTS_URL", "http://127.0.0.1:9/")
    return tmp_path


# Every Python block of every page ---------------------------------------------------------------

def test_every_python_block_compiles():
    blocks = [(page, index, code) for page in PAGES
              for index, code in enumerate(_blocks(page, "python"))]
    assert len(blocks) >= 15
    for page, index, code in blocks:
        compile(code, f"{page} (python block {index})", "exec")


def test_architecture_examples_run_and_print_what_they_say(capsys, unregister_meangate):
    choice, structure, adding = _python_blocks("architecture.md")
    exec(choice, {})  # noqa: S102 (the docs' own code)
    assert re.fullmatch(r"(native|split): TensorFlow on CPU, float32: .*",
                        capsys.readouterr().out.strip())
    exec(structure, {})  # noqa: S102
    assert capsys.readouterr().out.split("\n")[:2] == ["layer1.0.conv2", "[4, 8, 16, 32]"]
    exec(adding, {})  # noqa: S102
    assert capsys.readouterr().out.strip() == str(
        [f"stage{stage}_block1_meangate" for stage in (1, 2, 3, 4)])


def test_getting_started_shrinking_and_layers_run():
    _, shrink, layers = _python_blocks("getting-started.md")
    namespace = {"keras_attn": keras_attn}
    exec(shrink, namespace)  # noqa: S102
    assert namespace["tiny"].output_shape == (None, 10)
    outputs = namespace["backbone"].output
    strides = {name: 512 // output.shape[1] for name, output in outputs.items()}
    assert strides == {"P2": 4, "P3": 8, "P4": 16, "P5": 32}  # what the comment says
    exec(layers, namespace)  # noqa: S102
    assert tuple(namespace["x"].shape) == (None, None, None, 128)
    (own_model,) = _python_blocks("layers.md")
    exec(own_model, namespace)  # noqa: S102
    assert namespace["model"].output_shape == (None, None, None, 128)


@pytest.mark.slow
def test_getting_started_prediction_runs(scratch, monkeypatch, capsys, checkpoint_server):
    # ResNeSt50() downloads ImageNet weights: a stand-in served locally.
    from safetensors.numpy import save

    checkpoint_server.routes["/timm/resnest50d.in1k/resolve/main/model.safetensors"] = (
        save(timm_convert.timm_state_dict(get_model("resnest50d"))), "ok"
    )
    pixels = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    tf.io.write_file("cat.jpg", tf.io.encode_jpeg(pixels))
    prediction = _python_blocks("getting-started.md")[0]
    exec(prediction, {})  # noqa: S102
    printed = capsys.readouterr().out.strip().splitlines()[-5:]  # after predict's progress bar
    assert all(re.fullmatch(r".{20} 0\.\d{3}", line) for line in printed), printed


def test_models_page_example_prints_the_tables_count(capsys):
    (example,) = _python_blocks("models.md")
    exec(example, {})  # noqa: S102
    names, count = capsys.readouterr().out.strip().splitlines()
    assert names == str(keras_attn.applications.list_models("seresnext*"))
    row = next(line for line in sections.read("models").splitlines()
               if line.startswith("| `seresnext26d_32x4d` |"))
    assert f" {count} " in row


def test_attention_maps_example_runs_and_draws(scratch):
    (example,) = _python_blocks("attention-maps.md")
    namespace = {}
    exec(example, namespace)  # noqa: S102
    assert set(namespace["weights"]) == set(namespace["selection"].means)  # every SK layer
    assert {name: maps.shape for name, maps in namespace["maps"].maps.items()} == {
        f"stage{stage}_block1_cbam/spatial": (20, size, size)
        for stage, size in zip((1, 2, 3, 4), (16, 8, 4, 2))}
    assert [(scratch / name).read_bytes()[:4] for name in (
        "excitation.png", "kernel_selection.png", "cbam_spatial.png")] == [b"\x89PNG"] * 3


def test_performance_example_runs(capsys):
    (example,) = _python_blocks("performance.md")
    namespace = {}
    exec(example, namespace)  # noqa: S102
    assert "BatchNorms folded" in capsys.readouterr().out  # verbose=True says what changed
    assert namespace["probabilities"].shape == (2, 10)


# Commands ---------------------------------------------------------------------------------------

def test_train_commands_parse_with_the_programs_flags():
    from absl import flags

    from keras_attn.training.flags import define_flags

    commands = _commands("train")
    # the main job (README and Training), fine-tuning, a multi-worker worker
    assert len(commands) == 4
    for page, command in commands:
        values = flags.FlagValues()
        define_flags(values)
        values(["train", *command[1:]])  # raises on a flag the program does not define
        assert values["model"].present and values["model_dir"].present, page


def test_convert_commands_parse_with_the_command_line():
    from keras_attn import cli

    parsed = [cli.build_parser().parse_args(command) for _, command in _commands("convert")]
    assert [args.use_ema for args in parsed] == [False, True]
    assert parsed[1].checkpoint.endswith("model_best.pth.tar")


def test_export_and_predict_commands_parse_and_pass_the_usage_checks(scratch):
    from keras_attn import cli

    for folder in ("photos", "holdout", "serving"):
        (scratch / folder).mkdir()
    for folder in ("photos", "holdout"):  # the export refuses folders without images
        tf.io.write_file(str(scratch / folder / "1.png"),
                         tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)))
    commands = _commands("export")
    formats = {command[command.index("--format") + 1] for _, command in commands}
    assert formats == {"saved_model", "tflite", "onnx", "openvino"}
    for page, command in commands:
        args = cli.build_parser().parse_args(command)
        assert cli._export_usage_error(args) is None, (page, command)
    (predict,) = _commands("predict")
    assert cli.build_parser().parse_args(predict[1]).images == ["cat.jpg", "dog.png"]


# Generated tables -------------------------------------------------------------------------------

# Every generated section of the README and the pages, and what checks it here.
FROM_THE_CODE = ("families", "models", "overhead", "weights", "attention", "training-flags")
FROM_BENCHMARKS = ("export", "quantization", "throughput", "throughput-gpu", "runtimes",
                   "quantization-families")


def test_every_generated_section_is_checked_and_in_one_place():
    found = [name for page in PAGES for name in sections.section_names(page)]
    assert sorted(found) == sorted(FROM_THE_CODE + FROM_BENCHMARKS)  # each exactly once


@pytest.mark.slow
def test_models_table_is_generated_from_the_registry(full_size_param_counts):
    assert sections.read("models") == tables.models_table(full_size_param_counts), \
        f"docs/models.md {STALE}"


@pytest.mark.slow
def test_gate_overhead_table_is_generated(full_size_param_counts):
    ungated = {name: param_counts.count_parameters(name, gate=None)
               for name in tables.GATE_OVERHEAD_NAMES}
    assert ungated["seresnet50"] == full_size_param_counts["resnet50"]
    assert ungated["seresnext50_32x4d"] == full_size_param_counts["resnext50_32x4d"]
    assert sections.read("overhead") == tables.gate_overhead_table(full_size_param_counts,
                                                                   ungated)


def test_weights_table_is_generated_from_the_manifest():
    assert sections.read("weights") == tables.weights_table(), f"docs/weights.md {STALE}"


def test_attention_table_is_generated_from_the_registry():
    assert sections.read("attention") == tables.attention_table(), f"docs/models.md {STALE}"
    assert all(f"`{kind.name}`" in sections.read("attention") for kind in attention.kinds())


def test_training_flags_table_is_generated_from_the_flags():
    table = sections.read("training-flags")
    assert table == tables.training_flags_table(), f"docs/training.md {STALE}"
    assert "| `--model_dir` |" in table and "`mirrored`" in table


def test_export_tables_are_generated_by_the_benchmark():
    rows = [line for line in sections.read("export").splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0][2:] for row in rows] == [
        "ResNeSt", "SE-ResNet", "SE-ResNeXt", "SKNet", "ResNeXt", "SE-Inception"]
    assert [f"TFLite {q}" in sections.read("quantization")
            for q in ("float32", "float16", "dynamic", "int8")] == [True] * 4
    assert "python -m benchmarks.export_table --full --update-docs" in (
        DOCS / "export.md").read_text()


def test_throughput_tables_are_generated_by_the_benchmark():
    # benchmarks.throughput's defaults; not imported here, as it imports torch, which after XLA
    # has compiled in this process aborts it.
    cpu = ("resnext50_32x4d", "seresnext50_32x4d", "skresnext50_32x4d", "resnest50d",
           "seresnet50")
    gpu = ("seresnext50_32x4d", "resnest50d", "resnext50_32x4d")
    # The GPU table was written before the baseline row had its own name.
    baselines = {"throughput": "keras.applications.ResNet50", "throughput-gpu": "resnet50"}
    text = (DOCS / "performance.md").read_text()
    for section, names in (("throughput", cpu), ("throughput-gpu", gpu)):
        rows = [line.split(" | ")[0][2:] for line in sections.read(section).splitlines()
                if line.startswith("| ")]
        assert rows[1] == baselines[section] and set(names) <= set(rows[2:]), section
        # The command that wrote the table is on the page, naming every row it measured.
        commands = [line for line in text.splitlines()
                    if line.startswith("python -m benchmarks.throughput")
                    or line.startswith("KERAS_BACKEND=jax python -m benchmarks.throughput")]
        assert any(f"--docs_section {section}" in command or (
            section == "throughput" and "--docs_section" not in command)
            for command in commands if "--update-docs" in command
            and all(name in command.split() for name in rows[2:])), section


def test_sections_find_refuses_a_missing_section():
    with pytest.raises(ValueError, match="'no-such-table' must be in exactly one markdown file; "
                                         "found in no file"):
        sections.find("no-such-table")
    with pytest.raises(ValueError, match="no-such-table"):
        sections.update({"weights": tables.weights_table(), "no-such-table": ""})


def test_runtime_table_is_generated_by_its_benchmark():
    from benchmarks import runtimes

    table = sections.read("runtimes")
    assert ("| network | " + " | ".join(runtimes.TITLES[name] for name in runtimes.RUNTIMES)
            + " |") in table.splitlines()
    rows = [line.split(" | ")[0][2:] for line in table.splitlines() if line.startswith("| `")]
    assert rows == [f"`{name}`" for name in runtimes.DEFAULT_MODELS]
    assert "python -m benchmarks.runtimes --update-docs" in (DOCS / "cpu-runtimes.md").read_text()


def test_int8_table_is_generated_by_its_benchmark_and_says_what_the_page_says():
    from benchmarks import quantization

    table = sections.read("quantization-families")
    # Two tables: the measurements, then each option against the default, image by image.
    measured, paired = [
        [[cell.strip() for cell in line.strip().strip("|").split("|")]
         for line in block.splitlines() if line.startswith("|")]
        for block in table.split("\n\n") if block.startswith("|")]
    names = [f"`{name}`" for name in quantization.FAMILIES]
    assert [row[1] for row in measured[2:] if row[1]] == names
    assert [row[0] for row in paired[2:] if row[0]] == names
    # The page's claim: SE-ResNet-50 int8 with the recommended keep_float (the input
    # normalisation and the classifier float) keeps at least 99% of its top-1 classes in both
    # formats.
    column = measured[0].index('`keep_float=["input", "classifier"]`')
    at = next(index for index, row in enumerate(measured) if row[1] == "`seresnet50`")
    for row, fmt in ((measured[at], "TFLite"), (measured[at + 1], "ONNX")):
        assert row[3] == fmt and float(row[column].split("%")[0]) >= 99.0, row
    assert "python -m benchmarks.quantization --networks_dir DIR --update-docs" in (
        DOCS / "quantization.md").read_text()

