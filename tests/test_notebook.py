"""notebooks/analysis.ipynb runs end to end on its own small sweep and computes a comparison."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "analysis.ipynb"

# Appended to the notebook: report what it computed as one JSON line.
PROBE = """
import json as _json
print("PROBE " + _json.dumps({
    "shape": list(comparison.shape),
    "columns": list(comparison.columns),
    "policies": sorted(comparison["policy"].astype(str)),
    "intervals": sorted(float(v) for v in comparison["policy_interval_s"].dropna()),
    "seeds": comparison["seeds"].astype(int).tolist(),
    "expected_ctr": comparison["expected_ctr"].astype(float).tolist(),
    "order": comparison["policy"].astype(str).tolist(),
    "pct_of_oracle": comparison["pct_of_oracle"].astype(float).tolist(),
    "runs": len(col),
    "sweep_dir": str(sweep_dir),
}))
"""


def _outputs_of(cell) -> str:
    outputs = cell.get("outputs", [])
    return "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "SWEEP_DIR = None" in first.source and "SMALL = True" in first.source
    assert "parameters" in first.metadata.get("tags", [])


def test_notebook_runs_its_own_small_sweep(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",  # jupyter_client runs it with this interpreter (the venv's)
        timeout=120,  # per cell
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start

    text = _outputs_of(nb.cells[-1])
    line = next(ln for ln in text.splitlines() if ln.startswith("PROBE "))
    probe = json.loads(line[len("PROBE ") :])
    try:
        # 6 configurations (oracle, hourly, daily, frozen, periodic 15 min and 2 h), 2 seeds
        assert probe["runs"] == 12
        assert probe["shape"][0] == 6
        assert probe["policies"] == sorted(
            ["oracle", "hourly", "daily", "frozen", "periodic", "periodic"]
        )
        assert probe["intervals"] == [900.0, 3600.0, 7200.0, 86400.0]
        assert probe["seeds"] == [2] * 6
        for col in ("expected_ctr", "regret", "staleness_mean_s", "bytes_moved_per_day"):
            assert col in probe["columns"]
        ctr = probe["expected_ctr"]
        assert all(0.0 < v < 1.0 for v in ctr)
        assert ctr == sorted(ctr, reverse=True)  # the table is sorted by CTR
        # the oracle bounds every one of the five other configurations (rows in the
        # table's order: the two periodic ones are rows of their own)
        pct = dict(enumerate(probe["pct_of_oracle"]))
        oracle = [i for i, p in enumerate(probe["order"]) if p == "oracle"]
        assert oracle == [0]
        assert pct.pop(0) == pytest.approx(100.0, abs=1.0)
        assert len(pct) == 5 and max(pct.values()) < 100.0
    finally:
        import shutil

        shutil.rmtree(probe["sweep_dir"], ignore_errors=True)  # the notebook's temp sweep

    # every figure cell drew an image
    images = sum(
        1
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    )
    assert images == 3  # (a cell that raised has already failed the test in execute())
    print(f"notebook executed in {elapsed:.1f} s")
