"""What a run returns: a plain dict (the document's shape) with a few conveniences."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from wfkit.agents.model import WorkflowTask

__all__ = ["ResultDict", "RunResult", "run_graph"]


class ResultDict(dict):
    """A run's or session's outcome: a plain dict (the document's shape) whose ``status`` and
    ``task_results`` read as attributes too."""

    @property
    def status(self) -> str:
        return self["status"]

    @property
    def task_results(self) -> dict[str, dict[str, Any]]:
        return self["task_results"]


class RunResult(ResultDict):
    """The result of ``execute_workflow``: a dict with ``total_tasks``, ``successful_tasks``,
    ``failed_tasks``, ``skipped_tasks``, ``cancelled_tasks``, ``success_rate``, ``makespan``,
    ``run_id``, ``workflow_id``, ``status``, ``params`` (what the run ran with),
    ``task_results``, ``graph`` (each task's dependencies) and ``agents`` (``[agent_id,
    capacity]`` pairs).
    """

    @property
    def run_id(self) -> str:
        return self["run_id"]

    def raise_for_status(self) -> RunResult:
        """Return this result when the run completed; otherwise raise
        :class:`~wfkit.WorkflowFailedError`, which lists each failed task, its error and the
        line of the user's code where it failed, with the first failure as ``__cause__``."""
        if self["status"] == "completed":
            return self
        from wfkit.errors import WorkflowFailedError
        from wfkit.tracebacks import user_frame

        failed = sorted(
            (r for r in self["task_results"].values() if r["status"] == "failed"),
            key=lambda r: (r.get("finished_at") or 0.0, r["task_id"]),
        )
        failures = [
            (r["task_id"], r.get("error") or "failed",
             user_frame(r.get("exception") or r.get("traceback")))
            for r in failed
        ]
        counts = {
            what: self.get(f"{key}_tasks", 0)
            for what, key in (("failed", "failed"), ("skipped", "skipped"),
                              ("cancelled", "cancelled"))
        }
        error = WorkflowFailedError(
            workflow_id=self.get("workflow_id", ""),
            run_id=self.get("run_id", ""),
            status=self["status"],
            failures=failures,
            counts=counts,
            result=self,
        )
        cause = failed[0].get("exception") if failed else None
        raise error from cause

    def to_wfformat(self, path: str | PathLike[str] | None = None) -> dict[str, Any]:
        """This run as a WfFormat 1.5 document (https://wfcommons.org), saved as JSON to
        ``path`` when given: each task's parents and children, the runtime of its last attempt
        (0 for a task that did not run: skipped, cancelled before it started, resumed) and its agent,
        and the agents as machines with ``cpu.coreCount`` = capacity. ``wfkit.load_wfformat``
        reads it back as the same graph with these runtimes."""
        from wfkit.wfformat import run_document, write_json

        if "graph" not in self:
            from wfkit.errors import WfFormatError

            raise WfFormatError(
                "this result does not hold the run's graph (it was made before wfkit wrote "
                "WfFormat); write the run from its RunStore: RunStore(path).to_wfformat(run_id)"
            )
        results = self["task_results"]
        doc = run_document(
            name=str(self.get("workflow_id") or "workflow"),
            description=f"wfkit run {self.get('run_id')} of {self.get('workflow_id')!r}: "
            f"{self.get('status')}",
            graph=self["graph"],
            attempts={
                tid: (r.get("agent_id"), r.get("started_at"), r.get("finished_at"))
                for tid, r in results.items()
            },
            agents=[tuple(a) for a in self.get("agents", ())],
            started_at=self["started_at"],
            makespan=self["makespan"],
        )
        if path is not None:
            write_json(doc, path)
        return doc

    def results(self) -> dict[str, Any]:
        """Each completed task's return value, by task id."""
        return {
            tid: r["result"] for tid, r in self["task_results"].items() if r["status"] == "completed"
        }

    def frame(self) -> pd.DataFrame:
        """The task results as a pandas DataFrame, one row per task."""
        import pandas as pd

        rows = [
            {k: v for k, v in r.items() if k != "exception"} for r in self["task_results"].values()
        ]
        columns = [
            "task_id", "agent_id", "status", "cached", "attempts", "execution_time",
            "started_at", "finished_at", "error", "result",
        ]
        df = pd.DataFrame(rows, columns=columns)
        for col in ("started_at", "finished_at"):
            df[col] = pd.to_datetime(df[col], unit="s", utc=True)
        return df

    def _repr_html_(self) -> str:
        """A bare result in a notebook cell: summary, status counts, tasks (problems first)."""
        from wfkit.jupyter.reprs import run_result_html

        return run_result_html(self)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters the run ran with (the workflow's defaults and the overrides)."""
        return self.get("params") or {}

    def __repr__(self) -> str:
        params = self.params
        shown = (
            " params(" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")"
            if params else ""
        )
        return (
            f"<RunResult {self.get('workflow_id')!r} run {self.get('run_id')}{shown} "
            f"{self.get('status')}: {self.get('successful_tasks')}/{self.get('total_tasks')} "
            f"completed, {self.get('failed_tasks')} failed, {self.get('skipped_tasks')} skipped, "
            f"{self.get('cancelled_tasks')} cancelled, makespan {self.get('makespan', 0):.3f} s>"
        )


def run_graph(tasks: Mapping[str, WorkflowTask]) -> dict[str, list[str]]:
    """Each task's dependencies as a run ran them (a result's ``graph``): a mapped task
    (``@wf.task(map=...)``) ends when its children ``name[i]`` end, so it depends on them too.

    It lives here, not with the WfFormat writer that reads it, so that a run does not load
    that module (and json, pathlib, urllib) to return its result."""
    graph = {tid: list(t.dependencies) for tid, t in tasks.items()}
    for tid, t in tasks.items():
        parent = t.parent_task_id
        if parent is not None and parent in graph:
            graph[parent].append(tid)
    return graph
