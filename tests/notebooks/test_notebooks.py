"""Every notebook runs top to bottom, on the tiny model; the served-models notebook needs a
server and runs in tests/served/test_vllm.py."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

SERVED_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "08_served_models.ipynb"
NOTEBOOKS = sorted(p for p in SERVED_NOTEBOOK.parent.glob("*.ipynb") if p != SERVED_NOTEBOOK)


def executed(path: Path) -> list:
    """The outputs of a notebook run top to bottom; fails on a cell's error."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return outputs


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MODEL", "tiny-llama")
    outputs = executed(path)
    assert any("tiny-llama" in str(o.get("data", {})) for o in outputs)
