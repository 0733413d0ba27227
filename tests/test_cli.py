"""The `keras-attn` command."""

import os
import shutil
import subprocess
import sys

import pytest

from keras_attn import cli


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
    assert cli.main(["models", "resnet*", "--markdown"]) == 2


def test_console_script_is_installed():
    script = shutil.which("keras-attn", path=os.path.dirname(sys.executable)) or shutil.which(
        "keras-attn"
    )
    if script is None:
        pytest.fail("the keras-attn console script is not installed: pip install -e .")
    result = subprocess.run([script, "models", "seresnet5*"], capture_output=True, text=True,
                            timeout=300, check=True)
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["seresnet50"]
