"""A JupyterLab server of our own for the browser tests (throw-away ``JUPYTER_*`` folders,
127.0.0.1, a token), and the flags that run Debian's Chromium here."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "e2e"  # screenshots and pages the browser tests leave behind

# Every browser test: slow, run only by `make e2e`, bounded.
BROWSER_MARKS = [
    pytest.mark.slow,  # Chromium and JupyterLab
    pytest.mark.skipif(
        not os.environ.get("WFKIT_E2E"),
        reason="browser test: run it with `make e2e` (installs chromium, sets WFKIT_E2E=1)",
    ),
    pytest.mark.timeout(600),
]

CHROMIUM = os.environ.get("WFKIT_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(root: Path, tmp: Path, windowing: str | None = None) -> Iterator[dict[str, str]]:
    """JupyterLab serving ``root``; yields its URL and token, stops it by PID.

    ``windowing`` sets the notebook's windowing mode (``"defer"``, ``"none"``): in the
    default mode a Plotly ``FigureWidget`` first drawn below the visible part of a notebook
    stays an empty chart when scrolled to (JupyterLab 4.6, Plotly 7.1)."""
    import httpx

    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError(f"no browser at {CHROMIUM}: apt-get install chromium "
                             "(make e2e does it)")
    env = dict(os.environ)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[var] = str(tmp / var.lower())
    env.pop("JUPYTER_PATH", None)
    settings = tmp / "lab-settings"
    env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp / "lab-workspaces")
    notify = settings / "@jupyterlab" / "apputils-extension"
    notify.mkdir(parents=True)
    (notify / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    if windowing is not None:
        tracker = settings / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True)
        (tracker / "tracker.jupyterlab-settings").write_text(
            json.dumps({"windowingMode": windowing}))
    port, token = _free_port(), secrets.token_hex(16)
    jupyter = Path(sys.executable).with_name("jupyter")
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
         f"--ServerApp.token={token}", "--allow-root", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {(tmp / 'server.log').read_text()}")
            try:
                if httpx.get(f"{base}/api/status", params={"token": token}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("jupyter lab did not answer within 90 s")
            time.sleep(0.5)
        yield {"base": base, "token": token, "log": str(tmp / "server.log")}
        for kernel in httpx.get(f"{base}/api/kernels", params={"token": token}).json():
            httpx.delete(f"{base}/api/kernels/{kernel['id']}", params={"token": token})
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(server.pid, signal.SIGKILL)
                server.wait()
        log.close()




def open_notebook(page: Any, url: str) -> None:
    """Open a notebook at ``url`` and wait until its kernel is idle: the toolbar says idle
    while the kernel still starts, the status bar's ``| Idle`` only once it has."""
    page.goto(url, wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_selector(
        ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
        timeout=120_000,
    )
    page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for(timeout=120_000)


def run_menu(page: Any, item: str, started: str) -> None:
    """Click Run ▸ ``item``; click again if ``started`` (a JS predicate) is not true within
    5 s: a click that came while the kernel was still starting runs nothing."""
    for _ in range(4):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text=item).first.click()
        try:
            page.wait_for_function(started, timeout=5000)
            return
        except Exception:  # playwright's TimeoutError: click again
            continue
    raise AssertionError(f"Run > {item} started nothing")


def cell_ran(text: str) -> str:
    """A JS predicate: the code cell containing ``text`` is running or has run."""
    return (
        "() => [...document.querySelectorAll('.jp-CodeCell')]"
        f".filter(c => c.textContent.includes({text!r}))"
        ".some(c => /\\[(\\*|\\d+)\\]/.test("
        "c.querySelector('.jp-InputPrompt').textContent))"
    )
