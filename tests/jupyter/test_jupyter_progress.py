"""The text progress bar (tqdm.auto) for runs in scripts and logs; progress=False turns it off."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Workflow
from wfkit.jupyter import progress

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import wfkit

    n, seconds, progress, fail = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
    wf = wfkit.Workflow("long")
    for i in range(n):
        async def work(ctx, i=i):
            await asyncio.sleep(seconds)
            if fail == "yes" and i == 0:
                raise RuntimeError("no")
        wf.task(work, task_id=f"t{i}", requires=["x"])
    orch = wfkit.CollectiveAgentWorkflowOrchestrator()
    orch.register_agent(wfkit.AgentProfile("a", "A", ["x"], capacity=1))
    kwargs = {} if progress == "default" else {"progress": progress == "on"}
    wfkit.run_sync(orch.create_workflow(wf))
    result = wfkit.run_sync(orch.execute_workflow("long", **kwargs))
    print("makespan", result["makespan"])
    """
)


def run_script(n: int, seconds: float, mode: str, fail: str = "no") -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(n), str(seconds), mode, fail],
        capture_output=True, text=True, timeout=120, check=True,
    )
    makespan = float(out.stdout.split()[-1])
    return out.stderr, makespan


def test_a_long_run_in_a_script_shows_a_text_bar():
    stderr, makespan = run_script(6, 0.2, "default")
    assert makespan > progress._DELAY  # recorded: long enough for the bar to appear
    assert "long:" in stderr and "6/6" in stderr and "100%" in stderr
    assert "task/s" in stderr or "s/task" in stderr


def test_progress_false_turns_it_off():
    stderr, makespan = run_script(6, 0.2, "off")
    assert makespan > progress._DELAY
    assert "6/6" not in stderr and "long:" not in stderr


def test_a_short_run_stays_quiet_unless_asked():
    quiet, makespan = run_script(2, 0.0, "default")
    assert makespan < progress._DELAY and "2/2" not in quiet
    asked, _ = run_script(2, 0.0, "on", fail="yes")
    assert "2/2" in asked and "1 failed" in asked  # the bar ends with what went wrong


def workflow(n: int = 4) -> Workflow:
    wf = Workflow("w")
    for i in range(n):
        async def work(ctx):
            await asyncio.sleep(0.01)

        wf.task(work, task_id=f"t{i}", requires=["x"])
    return wf


async def test_a_followed_orchestrator_gets_no_second_bar(monkeypatch, capsys):
    from wfkit.jupyter.dashboard import Dashboard

    monkeypatch.setattr(progress, "_DELAY", 0)  # the default bar would show at once
    orch = CollectiveAgentWorkflowOrchestrator()
    orch.register_agent(AgentProfile("a", "A", ["x"], capacity=2))
    await orch.create_workflow(workflow())
    await orch.execute_workflow("w")
    assert "4/4" in capsys.readouterr().err

    dash = Dashboard(orch)
    await orch.execute_workflow("w")
    assert "4/4" not in capsys.readouterr().err
    await orch.execute_workflow("w", progress=True)  # asked for: shown anyway
    assert "4/4" in capsys.readouterr().err
    dash.close()
    await orch.execute_workflow("w")
    assert "4/4" in capsys.readouterr().err


@pytest.mark.parametrize("explicit", [True, False])
async def test_the_bar_leaves_nothing_scheduled(explicit):
    orch = CollectiveAgentWorkflowOrchestrator(progress=explicit)
    orch.register_agent(AgentProfile("a", "A", ["x"], capacity=2))
    await orch.create_workflow(workflow())
    await orch.execute_workflow("w")
    loop = asyncio.get_running_loop()
    ticking = [h for h in loop._scheduled
               if not h.cancelled() and getattr(h._callback, "__name__", "") == "tick"]
    assert ticking == []


# -- the colour of a finished bar ------------------------------------------------------------

COLOUR_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import wfkit

    outcome = sys.argv[1]
    wf = wfkit.Workflow("coloured")
    started = asyncio.Event()

    @wf.task(requires=["x"])
    async def first(ctx):
        started.set()
        if outcome == "failed":
            raise RuntimeError("no")
        if outcome == "cancelled":
            await asyncio.sleep(60)

    @wf.task(requires=["x"])
    async def second(ctx):
        return 2

    async def main():
        orch = wfkit.CollectiveAgentWorkflowOrchestrator()
        orch.register_agent(wfkit.AgentProfile("a", "A", ["x"], capacity=2))
        await orch.create_workflow(wf)
        run = asyncio.ensure_future(orch.execute_workflow("coloured", progress=True))
        if outcome == "cancelled":
            await started.wait()
            run.cancel()
        try:
            result = await run
            print(result["status"])
        except asyncio.CancelledError:
            print("cancelled")

    asyncio.run(main())
    """
)


def _ansi(colour: str) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"\x1b[38;2;{r};{g};{b}m"


@pytest.mark.parametrize("outcome", ["completed", "failed", "cancelled"])
def test_a_finished_text_bar_is_red_on_failure_and_grey_on_cancellation(outcome):
    from wfkit.colors import RUN_BAR_COLORS

    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["FORCE_COLOR"] = "1"  # stderr is a pipe here; a terminal gets colours by itself
    out = subprocess.run([sys.executable, "-c", COLOUR_SCRIPT, outcome], capture_output=True,
                         text=True, timeout=120, check=True, env=env)
    assert out.stdout.split() == [outcome]
    final = out.stderr.rsplit("\r", 1)[-1]  # the bar's last drawing
    for status, colour in RUN_BAR_COLORS.items():
        shown = _ansi(colour) in final
        assert shown == (status == outcome != "completed"), (status, final)
    # the cancelled task never ran: the bar stops at the one that did, never at 100 %
    done = "1/2" if outcome == "cancelled" else "2/2"
    assert f"| {done} [" in final and ("100%" in final) == (outcome != "cancelled"), final
    if outcome == "cancelled":
        assert "1 cancelled" in final

    if outcome != "failed":
        return  # NO_COLOR is checked once, where the bar would be red
    env["NO_COLOR"] = "1"
    plain = subprocess.run([sys.executable, "-c", COLOUR_SCRIPT, outcome], capture_output=True,
                           text=True, timeout=120, check=True, env=env)
    assert "\x1b[38;2" not in plain.stderr


@pytest.mark.parametrize("outcome", ["completed", "failed", "cancelled"])
def test_a_notebook_bar_takes_the_run_colour(outcome):
    from tqdm.notebook import tqdm as notebook_tqdm

    from wfkit.colors import RUN_BAR_COLORS

    bar = notebook_tqdm(total=2, display=False)
    assert progress.bar_colour(bar, outcome) == RUN_BAR_COLORS[outcome]
    bar.colour = progress.bar_colour(bar, outcome)
    bar.close()
    assert bar.container.children[1].style.bar_color == RUN_BAR_COLORS[outcome]
    assert progress.bar_colour(bar, "running") is None


async def test_the_bar_total_grows_as_tasks_are_mapped(capsys):
    wf = Workflow("mapped")

    @wf.task(requires=["x"])
    def items(ctx):
        return list(range(5))

    @wf.task(requires=["x"], map=items)
    async def each(ctx):
        return ctx.item

    orch = CollectiveAgentWorkflowOrchestrator(progress=True)
    orch.register_agent(AgentProfile("a", "A", ["x"], capacity=2))
    await orch.create_workflow(wf)
    await orch.execute_workflow("mapped")
    assert "7/7" in capsys.readouterr().err  # 2 tasks and 5 children


async def test_the_bar_advances_from_events_alone(capsys):
    """No run, no orchestrator: a bus and the events of a run are all the bar sees."""
    from wfkit.events import (
        EventBus,
        RunFinished,
        RunStarted,
        TaskCompleted,
        TaskFailed,
        TaskMapped,
        TaskSkipped,
    )

    bus = EventBus()
    close = progress.attach_progress(bus, "r1", explicit=True)
    assert len(bus) == 1
    bus.emit(RunStarted("r1", 1.0, "evented", ("a", "b", "m", "z"), (("x", 1),),
                        resumed=("a", "m[1]")))
    bus.emit(RunStarted("r2", 1.0, "other", ("q",), ()))  # another run on the bus: ignored
    bus.emit(TaskCompleted("r2", 1.5, "other", "q", "x", 1, 1.0))
    bus.emit(TaskFailed("r1", 2.0, "evented", "b", "x", 1, 1.0, "boom", False))  # retried
    bus.emit(TaskCompleted("r1", 3.0, "evented", "b", "x", 2, 2.0))
    bus.emit(TaskMapped("r1", 3.0, "evented", "m", 2))  # m[0] to run, m[1] resumed
    bus.emit(TaskFailed("r1", 4.0, "evented", "m[0]", "x", 1, 3.0, "boom", True))
    bus.emit(TaskFailed("r1", 4.0, "evented", "m", None, 0, 3.0, "a child failed", True))
    bus.emit(TaskSkipped("r1", 4.0, "evented", "z", "a dependency failed"))
    bus.emit(RunFinished("r1", 4.0, "evented", "failed", 1.0, 6, 3, 2, 1, 0, ("x",)))
    close()
    assert len(bus) == 0  # closing unsubscribes
    final = capsys.readouterr().err.rsplit("\r", 1)[-1]
    assert "evented:" in final and "| 6/6 [" in final and "other" not in final
    assert "2 failed, 1 skipped" in final


async def test_a_subscriber_that_shows_progress_silences_the_default_bar(monkeypatch, capsys):
    monkeypatch.setattr(progress, "_DELAY", 0)
    orch = CollectiveAgentWorkflowOrchestrator()
    orch.register_agent(AgentProfile("a", "A", ["x"], capacity=2))
    await orch.create_workflow(workflow())

    def watcher(event):
        return None

    watcher.shows_progress = True
    unsubscribe = orch.subscribe(watcher)
    assert orch.followed
    await orch.execute_workflow("w")
    assert "4/4" not in capsys.readouterr().err
    unsubscribe()
    assert not orch.followed
    await orch.execute_workflow("w")
    assert "4/4" in capsys.readouterr().err
