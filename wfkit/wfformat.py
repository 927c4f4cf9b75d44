"""Reading WfCommons' WfFormat: real workflow executions as wfkit workflows.

Scientific workflow systems (Pegasus, Makeflow, Nextflow) publish executions in WfFormat
(https://wfcommons.org). Three shapes exist:

- 1.5: ``workflow.specification.tasks[]`` (``id``, ``name``, ``parents``, ``children``) and
  ``workflow.execution.tasks[]`` (``id``, ``runtimeInSeconds``, ``command.program``,
  ``machines``), machines in ``workflow.execution.machines[]`` (``nodeName``,
  ``cpu.coreCount``);
- 1.3-1.4: ``workflow.tasks[]`` with ``name``, ``id``, ``parents`` (by *name*) and
  ``runtimeInSeconds``, machines in ``workflow.machines[]``;
- 1.0-1.2: ``workflow.jobs[]`` with ``name``, ``parents`` (by name) and ``runtime``.

An edge may be listed on either side: dependencies are the union of ``parents`` and reversed
``children``. Bad files get a :class:`~wfkit.errors.SpecError` naming the task and the field.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.errors import SpecError
from wfkit.graph import topological_order

__all__ = ["load_wfformat", "wfformat_durations", "wfformat_agents", "read_wfformat"]

Source = str | PathLike[str] | Mapping[str, Any]


@dataclass
class Trace:
    """A WfFormat document, read: tasks in file order, recorded runtimes, machines."""

    name: str
    tasks: dict[str, WorkflowTask]
    runtimes: dict[str, float]
    machines: list[dict[str, Any]] = field(default_factory=list)
    makespan: float | None = None
    version: str | None = None


def _load(source: Source) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        return dict(source), "the WfFormat document"
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read WfFormat file {str(path)!r}: {exc}", path=str(path)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{path.name} is not JSON (line {exc.lineno}: {exc.msg}): a WfFormat file is a "
            f"JSON document", path=str(path), line=exc.lineno,
        ) from None
    if not isinstance(doc, dict):
        raise SpecError(f"{path.name}: a WfFormat document is a JSON object", path=str(path))
    return doc, path.name


def _seconds(value: Any, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecError(f"{where}: {what} must be a number of seconds, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise SpecError(f"{where}: {what} must be a finite number of seconds >= 0, got {v!r}")
    return v


def _names(value: Any, where: str, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: {what} must be a list of task ids, got {value!r}")
    return value


def _entries(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise SpecError(f"{where} must be a list of objects")
    return value


def read_wfformat(source: Source, *, capability: str | None = "default") -> Trace:
    """Parse a WfFormat document (a path or an already loaded dict) of any version."""
    doc, label = _load(source)
    wf = doc.get("workflow")
    if not isinstance(wf, dict):
        raise SpecError(f"{label} has no 'workflow' object: is it a WfFormat file?")
    version = doc.get("schemaVersion")
    # raw rows: (id, name, parents, children, runtime, program)
    rows: list[tuple[str, str, list[str], list[str], Any, Any, str]] = []
    machines: list[dict[str, Any]] = []
    makespan = None
    by_name = False
    if isinstance(wf.get("specification"), dict):  # 1.5
        spec = _entries(wf["specification"].get("tasks"), "workflow.specification.tasks")
        execution = wf.get("execution") if isinstance(wf.get("execution"), dict) else {}
        ex_tasks = _entries(execution.get("tasks", []), "workflow.execution.tasks")
        by_id = {}
        for e in ex_tasks:
            if not isinstance(e.get("id"), str):
                raise SpecError(f"workflow.execution.tasks has an entry without an id: {e!r}")
            by_id[e["id"]] = e
        for i, t in enumerate(spec):
            tid = t.get("id")
            if not isinstance(tid, str) or not tid:
                raise SpecError(f"workflow.specification.tasks[{i}] has no string 'id'")
            e = by_id.get(tid)
            if e is None:
                raise SpecError(
                    f"task {tid!r}: no entry in workflow.execution.tasks (its runtimeInSeconds)"
                )
            where = f"task {tid!r}"
            rows.append((
                tid, str(t.get("name") or tid),
                _names(t.get("parents"), where, "parents"),
                _names(t.get("children"), where, "children"),
                e.get("runtimeInSeconds"), e.get("command"), "runtimeInSeconds",
            ))
        machines = _entries(execution.get("machines", []), "workflow.execution.machines")
        makespan = execution.get("makespanInSeconds")
    elif isinstance(wf.get("tasks"), list):  # 1.3 - 1.4
        by_name = True
        for i, t in enumerate(_entries(wf["tasks"], "workflow.tasks")):
            name = t.get("name")
            if not isinstance(name, str) or not name:
                raise SpecError(f"workflow.tasks[{i}] has no string 'name'")
            tid = t.get("id") if isinstance(t.get("id"), str) and t.get("id") else name
            where = f"task {tid!r}"
            rows.append((
                tid, name, _names(t.get("parents"), where, "parents"),
                _names(t.get("children"), where, "children"),
                t.get("runtimeInSeconds", t.get("runtime")), t.get("command"),
                "runtimeInSeconds",
            ))
        machines = _entries(wf.get("machines", []), "workflow.machines")
        makespan = wf.get("makespanInSeconds", wf.get("makespan"))
    elif isinstance(wf.get("jobs"), list):  # 1.0 - 1.2
        by_name = True
        for i, t in enumerate(_entries(wf["jobs"], "workflow.jobs")):
            name = t.get("name")
            if not isinstance(name, str) or not name:
                raise SpecError(f"workflow.jobs[{i}] has no string 'name'")
            where = f"task {name!r}"
            rows.append((
                name, name, _names(t.get("parents"), where, "parents"),
                _names(t.get("children"), where, "children"),
                t.get("runtime"), t.get("command"), "runtime",
            ))
        machines = _entries(wf.get("machines", []), "workflow.machines")
        makespan = wf.get("makespan")
    else:
        raise SpecError(
            f"{label}: 'workflow' has neither 'specification' (WfFormat 1.5), 'tasks' (1.3-1.4) "
            f"nor 'jobs' (1.0-1.2)"
        )

    ids = {r[0] for r in rows}
    if len(ids) != len(rows):
        seen: set[str] = set()
        dup = next(r[0] for r in rows if r[0] in seen or seen.add(r[0]))  # type: ignore[func-returns-value]
        raise SpecError(f"task {dup!r} appears twice in {label}")
    name_to_id = {r[1]: r[0] for r in rows} if by_name else {}

    def resolve(ref: str, owner: str, what: str) -> str:
        if ref in ids:
            return ref
        if ref in name_to_id:
            return name_to_id[ref]
        raise SpecError(f"task {owner!r}: {what} names {ref!r}, which is not a task of {label}")

    deps: dict[str, dict[str, None]] = {r[0]: {} for r in rows}
    for tid, _name, parents, children, *_ in rows:
        for p in parents:
            deps[tid][resolve(p, tid, "parents")] = None
        for c in children:
            deps[resolve(c, tid, "children")][tid] = None
    runtimes: dict[str, float] = {}
    tasks: dict[str, WorkflowTask] = {}
    caps = [] if capability is None else [capability]
    for tid, name, _p, _c, runtime, command, field_name in rows:
        if runtime is None:
            raise SpecError(f"task {tid!r}: no {field_name}")
        runtimes[tid] = _seconds(runtime, f"task {tid!r}", field_name)
        program = command.get("program") if isinstance(command, dict) else None
        group = program if isinstance(program, str) and program else None
        if group is not None and "\n" in group:  # a script, not a program name
            group = group.split()[0] if group.split() else None
        tasks[tid] = WorkflowTask(
            tid, name, list(caps), 0, runtimes[tid], list(deps[tid]), group=group
        )
    ordered = {tid: tasks[tid] for tid in topological_order(tasks)}  # CycleError names a cycle
    if makespan is not None:
        makespan = _seconds(makespan, label, "makespanInSeconds")
    name = doc.get("name") if isinstance(doc.get("name"), str) else label
    return Trace(name, ordered, runtimes, machines, makespan, version)


def load_wfformat(source: Source, *, capability: str = "default") -> Any:
    """A :class:`wfkit.Workflow` of a WfFormat trace: its tasks and dependencies, each task's
    ``estimated_duration`` its recorded runtime, ``group`` its program, every task requiring
    ``capability``."""
    from wfkit.agents.builder import Workflow

    trace = read_wfformat(source, capability=capability)
    wf = Workflow(trace.name)
    for task in trace.tasks.values():
        wf.add(task)
    return wf


def wfformat_durations(source: Source) -> dict[str, float]:
    """The recorded runtimes, ``{task_id: seconds}`` (the ``durations`` of ``simulate``)."""
    return read_wfformat(source).runtimes


def wfformat_agents(source: Source, *, capability: str = "default") -> list[AgentProfile]:
    """The trace's machines as agents: one per machine, ``capacity`` = its cores."""
    out = []
    for i, m in enumerate(read_wfformat(source).machines):
        name = m.get("nodeName")
        if not isinstance(name, str) or not name:
            raise SpecError(f"machine {i}: no string 'nodeName'")
        cpu = m.get("cpu") if isinstance(m.get("cpu"), dict) else {}
        cores = cpu.get("coreCount", 1)
        if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
            raise SpecError(f"machine {name!r}: cpu.coreCount must be a whole number >= 1")
        out.append(AgentProfile(name, f"machine {name}", [capability], capacity=cores))
    return out
