"""Run notebooks as users do (papermill, in a fresh kernel) and read what they report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def jupyter_env(tmp: Path) -> dict[str, str]:
    """Keep Jupyter's and IPython's state out of the home folder."""
    env = {name: str(tmp / name.lower()) for name in
           ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")}
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def run_notebook(name: str, tmp: Path, **parameters: Any) -> tuple[dict[str, Any], Path]:
    """Execute ``notebooks/<name>`` with papermill; return its summary and the executed copy."""
    import papermill as pm

    old = {k: os.environ.get(k) for k in jupyter_env(tmp)}
    os.environ.update(jupyter_env(tmp))
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / name
    try:
        pm.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters,
                            kernel_name="python3", progress_bar=False, cwd=str(tmp),
                            execution_timeout=240)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return summary_of(out), out


def summary_of(path: Path) -> dict[str, Any]:
    """The JSON printed by the cell tagged ``summary``."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "summary" in cell.metadata.get("tags", []):
            text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            return json.loads(text.strip().splitlines()[-1])
    raise AssertionError(f"{path.name} has no cell tagged 'summary'")


def injected(path: Path) -> str:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return "".join(c.source for c in nb.cells
                   if "injected-parameters" in c.metadata.get("tags", []))
