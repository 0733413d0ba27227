"""The code in docs/ runs as written and prints what the comments say."""

import pathlib
import re

import pytest

from keras_attn import attention

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def _python_blocks(page):
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


@pytest.fixture
def unregister_meangate():
    yield
    if "meangate" in [kind.name for kind in attention.kinds()]:
        attention.unregister("meangate")


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
