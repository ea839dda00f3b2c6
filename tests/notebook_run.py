"""Running a notebook top to bottom: shared by the notebooks layer and the served layer."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SERVED_NOTEBOOK = NOTEBOOK_DIR / "08_served_models.ipynb"


def executed(path: Path) -> list:
    """The outputs of a notebook run top to bottom; fails on a cell's error."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return outputs
