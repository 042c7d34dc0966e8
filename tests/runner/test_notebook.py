"""The quickstart notebook executes headless on CPU (a tiny step override) and plots the metrics."""

import nbclient
import nbformat

from .helpers import REPO


def test_quickstart_notebook_runs_headless():
    nb = nbformat.read(REPO / "experiments" / "notebooks" / "quickstart.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "OVERRIDES = " in c.source)
    cell.source = cell.source.replace('OVERRIDES = ["train.steps=600"]',
                                      'OVERRIDES = ["train.steps=40", "train.eval_every=20", "train.steps_per_call=10"]')
    assert "train.steps=40" in cell.source
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("CpuDevice" in o.get("text", "") or "CpuDevice" in str(o.get("data", {})) for o in outputs)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the metrics plot
    assert any("accuracy" in str(o.get("data", {})) for o in outputs)  # the final metrics
