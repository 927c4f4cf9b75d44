"""Binder: a fresh venv built only from binder/'s files executes every notebook.

No Docker engine is available to run repo2docker, so this does the next best thing: a venv
from ``binder/requirements.txt`` and ``binder/postBuild`` (run from the repository root, as
repo2docker does), then each notebook is executed with that venv's papermill and kernel. The
venv lives in ``build/binder-venv`` and is rebuilt when binder/'s files change; pip's cache
keeps a rebuild fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbrun import NOTEBOOKS, jupyter_env

pytestmark = pytest.mark.slow  # builds the Binder venv and runs every notebook in it

ROOT = NOTEBOOKS.parent
BINDER = ROOT / "binder"
VENV = ROOT / "build" / "binder-venv"


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("requirements.txt", "postBuild"):
        h.update((BINDER / name).read_bytes())
    return h.hexdigest()


def _build_venv(tmp: Path) -> Path:
    stamp = VENV / ".binder-stamp"
    python = VENV / "bin" / "python"
    env = {**os.environ, "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "VIRTUAL_ENV": str(VENV), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    if not (stamp.exists() and stamp.read_text() == _fingerprint()):
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r",
                        str(BINDER / "requirements.txt")], check=True, env=env, timeout=900)
    # postBuild installs wfkit itself: always rerun, so the venv has today's code
    subprocess.run(["bash", str(BINDER / "postBuild")], check=True, cwd=ROOT, env=env,
                   timeout=900)
    stamp.write_text(_fingerprint())
    return python


@pytest.mark.timeout(1800)
def test_a_venv_from_binder_files_executes_every_notebook(tmp_path):
    if not (BINDER / "requirements.txt").is_file() or not (BINDER / "postBuild").is_file():
        pytest.fail("binder/requirements.txt and binder/postBuild are needed by repo2docker")
    python = _build_venv(tmp_path)
    # the venv's own wfkit, not this checkout's source tree
    where = subprocess.run([str(python), "-c", "import wfkit, sys; print(wfkit.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True)
    assert str(VENV) in where.stdout, where.stdout
    # JupyterLab renders every cell ("defer"), so a dashboard below the fold still draws
    overrides = VENV / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert json.loads(overrides.read_text()) == {
        "@jupyterlab/notebook-extension:tracker": {"windowingMode": "defer"}}
    env = {**os.environ, **jupyter_env(tmp_path),
           "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        out = subprocess.run(
            [str(VENV / "bin" / "papermill"), str(nb), str(tmp_path / nb.name), "-k", "python3",
             "--cwd", str(tmp_path), "--no-progress-bar"],
            capture_output=True, text=True, env=env, timeout=600,
        )
        assert out.returncode == 0, f"{nb.name} failed in the binder venv:\n{out.stderr[-3000:]}"
