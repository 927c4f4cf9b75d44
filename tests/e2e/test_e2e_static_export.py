"""Static export with Debian's Chromium (kaleido): every figure as a PNG under build/e2e/.

Run by ``make e2e``, which installs ``chromium`` first, so a fresh machine checks it too.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import wfkit
from wfkit.plots import agent_load_figure, dag_figure, gantt_figure, summary_figure

BUILD = Path(__file__).resolve().parents[2] / "build" / "e2e"

pytestmark = [
    pytest.mark.slow,  # Chromium
    pytest.mark.skipif(
        not os.environ.get("WFKIT_E2E"),
        reason="browser test: run it with `make e2e` (installs chromium, sets WFKIT_E2E=1)",
    ),
]


async def test_every_figure_exports_to_png(tmp_path: Path):
    wf = wfkit.Workflow("export")

    @wf.task(requires=["a"])
    async def first(ctx):
        await asyncio.sleep(0.02)

    @wf.task(requires=["a"], after=[first], retries=1)
    async def second(ctx):
        await asyncio.sleep(0.02)
        if ctx.attempt == 1:
            raise RuntimeError("retry me")

    orch = wfkit.CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.01,
                                                     store=str(tmp_path / "runs.db"))
    orch.register_agent(wfkit.AgentProfile("x", "X", ["a"], capacity=2))
    await orch.create_workflow(wf)
    result = await orch.execute_workflow("export")
    store = orch.store
    figures = {
        "dag": dag_figure(wf, result),
        "gantt": gantt_figure(store.task_frame()),
        "load": agent_load_figure(store.agent_load_frame()),
        "summary": summary_figure(store.workflow_frame()),
    }
    BUILD.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        path = BUILD / f"{name}.png"
        fig.write_image(path, width=900, height=500)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    store.close()
