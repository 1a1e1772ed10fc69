"""notebooks/example.ipynb runs top to bottom on a small world, so it never goes stale."""
from __future__ import annotations

import os

import pytest

from tests.support.paths import ROOT

NOTEBOOK = ROOT / "notebooks" / "example.ipynb"


def test_committed_without_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code"
    assert all(not c.outputs and c.execution_count is None for c in code), \
        "clear the notebook's outputs before committing (Kernel > Restart & Clear Output)"


@pytest.mark.slow
def test_notebook_executes(small_world, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    for name, value in {"NB_EXPORT": str(small_world), "NB_EPOCHS": "3", "NB_COMPONENTS": "16",
                        "NB_EVAL_GROUPS": "30", "OPENBLAS_NUM_THREADS": "1",
                        "MPLBACKEND": "module://matplotlib_inline.backend_inline"}.items():
        monkeypatch.setenv(name, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the fit plot is missing"
    text = "".join(o.get("text", "") for o in outputs)
    assert "default strategy:" in text and "per user" in text
    assert os.environ["NB_EXPORT"] in text
