"""The notebooks in colab/: executed headless in quick mode, committed without outputs."""

import json
import pathlib
import re
import sys
import time

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "colab").glob("*.ipynb"))
FIGURES = ("excitation.png", "kernel_selection.png", "split_attention.png",  # notebook 3's
           "eca_excitation.png", "cbam_spatial.png", "gc_context.png")


def test_every_notebook_of_the_issue_is_there():
    assert [path.name for path in NOTEBOOKS] == [
        "1_quickstart.ipynb", "2_distributed_training.ipynb", "3_attention_maps.ipynb",
        "4_deployment.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_without_outputs_and_uses_the_public_api(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    source = "\n".join(cell.source for cell in code)
    assert "find_spec(\"keras_attn\")" in code[0].source  # opens with the install cell
    assert not re.search(r"keras_attn\.testing|\btests\b|keras_attn[\w.]*\._(?!_)", source)


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernel spec that runs this interpreter (the one with keras_attn installed), whatever
    `python` means on PATH."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "keras-attn-tests"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "keras_attn tests", "language": "python"}))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch, capsys, kernel_name):
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_name))
    monkeypatch.setenv("KERAS_ATTN_QUICK", "1")
    monkeypatch.setenv("KERAS_ATTN_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # no shared cache touched
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    # Raises CellExecutionError, with the cell and its traceback, when any cell fails.
    # startup_timeout: a kernel importing TensorFlow beside the other test worker can take
    # longer than nbclient's default minute to answer.
    NotebookClient(notebook, kernel_name="keras-attn-tests", timeout=900, startup_timeout=300,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    with capsys.disabled():
        print(f"\n{path.name}: executed in quick mode in {time.perf_counter() - start:.0f} s")
    if path.name.startswith("3_"):
        for name in FIGURES:
            assert (tmp_path / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
