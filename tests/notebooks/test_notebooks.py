"""Every notebook runs top to bottom, on the tiny model; the served-models notebook needs a
server and runs in tests/served/test_vllm.py."""

import pytest
from notebook_run import SERVED_NOTEBOOK, executed

NOTEBOOKS = sorted(p for p in SERVED_NOTEBOOK.parent.glob("*.ipynb") if p != SERVED_NOTEBOOK)


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MODEL", "tiny-llama")
    outputs = executed(path)
    assert any("tiny-llama" in str(o.get("data", {})) for o in outputs)
