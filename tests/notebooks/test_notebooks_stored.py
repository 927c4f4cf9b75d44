"""The notebooks are stored without outputs, match their sources, and have parameters."""

from __future__ import annotations

import subprocess
import sys

import nbformat
from nbrun import NOTEBOOKS

EXPECTED = ["01_quickstart", "02_collective_agents", "03_integration", "04_coordination",
            "05_optimization_experiments", "06_monitoring", "07_dynamic_workflows"]


def test_every_notebook_is_there_with_a_parameters_and_a_summary_cell():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED
    for stem in EXPECTED:
        nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
        nbformat.validate(nb)
        tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
        assert tags.count("parameters") == 1 and tags.count("summary") == 1, stem
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


def test_no_outputs_stored_and_sources_in_sync():
    out = subprocess.run([sys.executable, str(NOTEBOOKS / "src" / "build.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_the_check_fails_on_stored_outputs(tmp_path):
    sys.path.insert(0, str(NOTEBOOKS / "src"))
    try:
        import build
    finally:
        sys.path.pop(0)
    nb = nbformat.read(NOTEBOOKS / "01_quickstart.ipynb", as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and i > 1)
    nb.cells[i].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert build.stored_outputs(tmp_path / "x.ipynb") == [f"x.ipynb cell {i}"]
