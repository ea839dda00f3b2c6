"""Core library modules never import streamlit; only workbench/ui/ may."""

import ast
from pathlib import Path

WORKBENCH = Path(__file__).resolve().parents[1] / "workbench"


def _imports_streamlit(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "streamlit" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "streamlit":
            return True
    return False


def test_only_ui_imports_streamlit():
    modules = [p for p in WORKBENCH.rglob("*.py") if "ui" not in p.relative_to(WORKBENCH).parts]
    assert len(modules) >= 4
    offenders = [str(p.relative_to(WORKBENCH)) for p in modules if _imports_streamlit(p)]
    assert offenders == []


def test_the_check_detects_an_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from streamlit import cache_resource\n")
    assert _imports_streamlit(bad)
