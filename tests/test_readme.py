"""The README is the front door: CI runs exactly its install and test commands, its table of
families is the code's, its quickstart runs offline as written, and it stays short."""

import os
import re

import pytest

from tools import sections, tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts)) as file:
        return file.read()


def _code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", _read("README.md"), re.S)


def _ci_commands():
    return [line.strip() for line in _read(".ci", "run").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_exactly_the_readme_install_and_test_commands():
    install, test = [block.strip() for block in _code_blocks("bash")[:2]]
    assert install == 'pip install -e ".[test]"'
    assert test == "python -m pytest"
    commands = _ci_commands()
    # The README's two commands, in order, with the checks CI adds between and after them.
    assert commands.index(install) < commands.index(test)
    assert commands.index("ruff check keras_attn tests benchmarks tools") < commands.index(test)
    (docs,) = [command for command in commands if command.startswith("mkdocs build --strict")]
    assert commands.index(docs) < commands.index(test)
    assert commands.index(test) < commands.index(".ci/check_wheel.sh")


def test_readme_is_a_front_door():
    readme = _read("README.md")
    assert len(readme.encode()) < 12 * 1024
    # Users install the package; contributors the checkout.
    assert "pip install keras-attn" in readme
    # Every link into the repository leads to a file that exists.
    targets = re.findall(r"\]\((?!https?://)([^)#]+)(?:#[^)]*)?\)", readme)
    assert "docs/getting-started.md" in targets
    assert [target for target in targets if not os.path.exists(os.path.join(ROOT, target))] == []


@pytest.mark.slow
def test_readme_families_table_is_generated(full_size_param_counts):
    assert sections.read_section("README.md", "families") == tables.families_table(
        full_size_param_counts), "README.md is stale: run `python tools/update_readme.py`"


def test_readme_main_job_is_the_training_programs():
    from absl import flags

    from keras_attn.training.flags import define_flags

    (command,) = [block.strip() for block in _code_blocks("bash")[2:]]
    assert command.split() == ["keras-attn", "train", "--dataset=digits",
                               "--model=seresnet20_cifar", "--epochs=20", "--jit_compile",
                               "--model_dir=runs/digits"]
    values = flags.FlagValues()
    define_flags(values)
    values(command.split()[1:])  # raises on a flag the program does not define
    assert (values["model"].value, values["epochs"].value) == ("seresnet20_cifar", 20)


@pytest.mark.slow
def test_readme_quickstart_runs_offline_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # No weights are downloaded: a request anywhere but 127.0.0.1 fails the test.
    monkeypatch.setenv("KERAS_ATTN_WEIGHTS_URL", "http://127.0.0.1:9/")
    (quickstart,) = _code_blocks("python")
    namespace = {}
    exec(quickstart, namespace)  # noqa: S102 (the README's own code)
    printed = capsys.readouterr().out.strip().splitlines()
    # decode_predictions' five classes of the first image, then the export's version folder
    # (after fit's progress lines).
    scores = [line for line in printed if re.fullmatch(r".{24} 0\.\d{3}", line)]
    assert len(scores) == 5
    assert re.match(r"saved_model \S*serving/photos/1: max abs error ", printed[-1])
    assert os.path.isfile(tmp_path / "serving" / "photos" / "1" / "saved_model.pb")
    assert namespace["classifier"].output_shape == (None, 3)
    assert namespace["backbone"].trainable is False
