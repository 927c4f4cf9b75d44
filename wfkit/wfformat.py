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
``children``. Bad files get a :class:`~wfkit.errors.WfFormatError` (a ``SpecError``) naming the
task and the field.

Runs are written as WfFormat 1.5 (:func:`run_document`, behind ``RunResult.to_wfformat()`` and
``RunStore.to_wfformat(run_id)``). WfFormat task ids may hold only letters, digits and
``-_.#``; any other character of a wfkit task id (a mapped child ``name[3]``) is written as
``#<hex code point>#`` and read back as it was in documents whose ``runtimeSystem`` is wfkit.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.agents.results import run_graph
from wfkit.errors import WfFormatError
from wfkit.graph import topological_order

if TYPE_CHECKING:
    from wfkit.agents.builder import Workflow

__all__ = [
    "load_wfformat", "wfformat_durations", "wfformat_agents", "read_wfformat", "run_document",
    "run_graph", "write_json", "example_trace",
]

EXAMPLES = Path(__file__).resolve().parent / "data" / "wfcommons"
# what WfFormat 1.5 allows in a task id, and wfkit's reversible escape for anything else
_ID_CHAR = re.compile(r"[0-9a-zA-Z\-_.]")
_ESCAPED = re.compile(r"#([0-9a-f]+)#")

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
    path: str | None = None


class _Doc:
    """One document being read: raises errors that name its file, task and field."""

    def __init__(self, source: Source) -> None:
        self.path: str | None = None
        if isinstance(source, Mapping):
            self.doc, self.label = dict(source), "the WfFormat document"
            return
        path = Path(source)
        self.path, self.label = str(path), path.name
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise self.error(f"cannot read the file: {exc}") from None
        except UnicodeDecodeError:
            raise self.error("is not UTF-8 text: a WfFormat file is a JSON document") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise self.error(
                f"is not JSON (line {exc.lineno}: {exc.msg}): a WfFormat file is a JSON document"
            ) from None
        if not isinstance(doc, dict):
            raise self.error("a WfFormat document is a JSON object")
        self.doc = doc

    def error(self, message: str, task: str | None = None, what: str | None = None) -> WfFormatError:
        if task is not None:
            message = f"task {task!r}: {message}"
        return WfFormatError(message, path=self.path, task_id=task, field=what)

    def seconds(self, value: Any, task: str | None, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self.error(f"{what} must be a number of seconds, got {value!r}", task, what)
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise self.error(
                f"{what} must be a finite number of seconds >= 0, got {v!r}", task, what
            )
        return v

    def names(self, value: Any, task: str, what: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"{what} must be a list of task ids, got {value!r}", task, what)
        return value

    def entries(self, value: Any, where: str) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(f"{where} must be a list of objects", what=where)
        return value


def _unescape(text: str) -> str:
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def _escape(task_id: str) -> str:
    return "".join(c if _ID_CHAR.fullmatch(c) else f"#{ord(c):x}#" for c in task_id)


def _group(command: Any, category: Any, name: str, tid: str) -> str | None:
    """A task's kind: its program's name; when the program is a script (Nextflow records
    the script), the task's ``category``, else its name when that is not its id (Nextflow
    names each task after its process)."""
    program = command.get("program") if isinstance(command, dict) else None
    if isinstance(program, str) and program.strip() and len(program.split()) == 1:
        return program.strip()
    if isinstance(category, str) and category:
        return category
    return name if name != tid else None


def read_wfformat(source: Source, *, capability: str | None = "default") -> Trace:
    """Parse a WfFormat document (a path or an already loaded dict) of any version."""
    d = _Doc(source)
    doc, label = d.doc, d.label
    wf = doc.get("workflow")
    if not isinstance(wf, dict):
        raise d.error(f"{label} has no 'workflow' object: is it a WfFormat file?", what="workflow")
    version = doc.get("schemaVersion")
    system = doc.get("runtimeSystem")
    ours = isinstance(system, dict) and system.get("name") == "wfkit"
    # raw rows: (id, name, parents, children, runtime, command, runtime field, category)
    rows: list[tuple[str, str, list[str], list[str], Any, Any, str, Any]] = []
    machines: list[dict[str, Any]] = []
    makespan = None
    by_name = False
    if isinstance(wf.get("specification"), dict):  # 1.5
        spec = d.entries(wf["specification"].get("tasks"), "workflow.specification.tasks")
        execution = wf.get("execution")
        if not isinstance(execution, dict):
            execution = {}
        ex_tasks = d.entries(execution.get("tasks", []), "workflow.execution.tasks")
        by_id = {}
        for i, entry in enumerate(ex_tasks):
            if not isinstance(entry.get("id"), str):
                raise d.error(f"workflow.execution.tasks[{i}] has no string 'id'", what="id")
            by_id[entry["id"]] = entry
        for i, t in enumerate(spec):
            tid = t.get("id")
            if not isinstance(tid, str) or not tid:
                raise d.error(f"workflow.specification.tasks[{i}] has no string 'id'", what="id")
            e = by_id.get(tid)
            if e is None:
                raise d.error(
                    "no entry in workflow.execution.tasks (its runtimeInSeconds)",
                    tid, "runtimeInSeconds",
                )
            parents = d.names(t.get("parents"), tid, "parents")
            children = d.names(t.get("children"), tid, "children")
            if ours:
                tid = _unescape(tid)
                parents = [_unescape(p) for p in parents]
                children = [_unescape(c) for c in children]
            rows.append((
                tid, str(t.get("name") or tid), parents, children,
                e.get("runtimeInSeconds"), e.get("command"), "runtimeInSeconds",
                e.get("category", t.get("category")),
            ))
        machines = d.entries(execution.get("machines", []), "workflow.execution.machines")
        makespan = execution.get("makespanInSeconds")
    elif isinstance(wf.get("tasks"), list):  # 1.3 - 1.4
        by_name = True
        for i, t in enumerate(d.entries(wf["tasks"], "workflow.tasks")):
            name = t.get("name")
            if not isinstance(name, str) or not name:
                raise d.error(f"workflow.tasks[{i}] has no string 'name'", what="name")
            given = t.get("id")
            tid = given if isinstance(given, str) and given else name
            field_name = "runtimeInSeconds" if "runtimeInSeconds" in t else "runtime"
            rows.append((
                tid, name, d.names(t.get("parents"), tid, "parents"),
                d.names(t.get("children"), tid, "children"),
                t.get(field_name), t.get("command"), field_name, t.get("category"),
            ))
        machines = d.entries(wf.get("machines", []), "workflow.machines")
        makespan = wf.get("makespanInSeconds", wf.get("makespan"))
    elif isinstance(wf.get("jobs"), list):  # 1.0 - 1.2
        by_name = True
        for i, t in enumerate(d.entries(wf["jobs"], "workflow.jobs")):
            name = t.get("name")
            if not isinstance(name, str) or not name:
                raise d.error(f"workflow.jobs[{i}] has no string 'name'", what="name")
            rows.append((
                name, name, d.names(t.get("parents"), name, "parents"),
                d.names(t.get("children"), name, "children"),
                t.get("runtime"), t.get("command"), "runtime", t.get("category"),
            ))
        machines = d.entries(wf.get("machines", []), "workflow.machines")
        makespan = wf.get("makespan")
    else:
        raise d.error(
            f"{label}: 'workflow' has neither 'specification' (WfFormat 1.5), 'tasks' (1.3-1.4) "
            f"nor 'jobs' (1.0-1.2)", what="workflow",
        )

    ids = {r[0] for r in rows}
    if len(ids) != len(rows):
        seen: set[str] = set()
        dup = next(r[0] for r in rows if r[0] in seen or seen.add(r[0]))  # type: ignore[func-returns-value]
        raise d.error(f"its id appears twice in {label}: task ids must be unique", dup, "id")
    name_to_id = {r[1]: r[0] for r in rows} if by_name else {}

    def resolve(ref: str, owner: str, what: str) -> str:
        if ref in ids:
            return ref
        if ref in name_to_id:
            return name_to_id[ref]
        raise d.error(f"{what} names {ref!r}, which is not a task of {label}", owner, what)

    deps: dict[str, dict[str, None]] = {r[0]: {} for r in rows}
    for tid, _name, parents, children, *_ in rows:
        for p in parents:
            deps[tid][resolve(p, tid, "parents")] = None
        for c in children:
            deps[resolve(c, tid, "children")][tid] = None
    runtimes: dict[str, float] = {}
    tasks: dict[str, WorkflowTask] = {}
    caps = [] if capability is None else [capability]
    for tid, name, _p, _c, runtime, command, field_name, category in rows:
        if runtime is None:
            raise d.error(f"no {field_name}", tid, field_name)
        runtimes[tid] = d.seconds(runtime, tid, field_name)
        group = _group(command, category, name, tid)
        tasks[tid] = WorkflowTask(
            tid, name, list(caps), 0, runtimes[tid], list(deps[tid]), group=group
        )
    ordered = {tid: tasks[tid] for tid in topological_order(tasks)}  # CycleError names a cycle
    if makespan is not None:
        makespan = d.seconds(makespan, None, "makespanInSeconds")
    given = doc.get("name")
    name = given if isinstance(given, str) and given else label
    return Trace(name, ordered, runtimes, machines, makespan, version, d.path)


def load_wfformat(source: Source, *, capability: str = "default") -> Workflow:
    """A :class:`wfkit.Workflow` of a WfFormat trace (a path or a loaded dict, WfFormat 1.0 to
    1.5): its tasks and dependencies, each task's ``estimated_duration`` its recorded runtime,
    ``group`` its program, every task requiring ``capability``. Simulate or plan it with
    :func:`wfformat_durations` and :func:`wfformat_agents`."""
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
    """The trace's machines as agents: one per machine, ``capacity`` = its cores
    (``cpu.coreCount``; ``cpu.count`` in WfFormat 1.4 and before; 1 when not recorded)."""
    trace = read_wfformat(source)
    out: dict[str, AgentProfile] = {}
    for i, m in enumerate(trace.machines):
        name = m.get("nodeName")
        if not isinstance(name, str) or not name:
            raise WfFormatError(f"machine {i}: no string 'nodeName'", path=trace.path,
                                field="nodeName")
        cpu = m.get("cpu")
        if not isinstance(cpu, dict):
            cpu = {}
        cores = cpu.get("coreCount", cpu.get("count", 1))
        if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
            raise WfFormatError(
                f"machine {name!r}: cpu.coreCount must be a whole number >= 1, got {cores!r}",
                path=trace.path, field="cpu.coreCount",
            )
        if name not in out:  # a machine listed twice is one machine
            out[name] = AgentProfile(name, f"machine {name}", [capability], capacity=cores)
    return list(out.values())


# -- writing -------------------------------------------------------------------------------


def example_trace(name: str) -> Path:
    """The path of a real trace that comes with wfkit (WfCommons' WfInstances, LGPL-3.0):
    ``"methylseq"`` (Nextflow, 36 tasks) or ``"1000genome"`` (Pegasus, 328 tasks)."""
    traces = {p.name.split("-")[0]: p for p in EXAMPLES.glob("*.json") if "schema" not in p.name}
    if name in traces:
        return traces[name]
    known = sorted(traces)
    raise WfFormatError(f"no example trace {name!r}: use one of {', '.join(map(repr, known))}")


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def run_document(
    *,
    name: str,
    graph: Mapping[str, Sequence[str]],
    attempts: Mapping[str, tuple[str | None, float | None, float | None]],
    agents: Sequence[tuple[str, int]],
    started_at: float,
    makespan: float,
    description: str | None = None,
    groups: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """A run as a WfFormat 1.5 document. ``graph`` maps each task to its dependencies;
    ``attempts`` each task to ``(agent_id, started_at, finished_at)`` of its last attempt
    (UNIX seconds; None for a task that never ran, written with runtime 0); ``agents`` are
    ``(agent_id, capacity)``, written as machines with ``cpu.coreCount`` = capacity."""
    from wfkit import __version__

    if not graph:
        raise WfFormatError(f"run of {name!r} has no tasks: WfFormat needs at least one")
    children: dict[str, list[str]] = {tid: [] for tid in graph}
    for tid, deps in graph.items():
        for dep in deps:
            if dep not in children:
                raise WfFormatError(
                    f"task {tid!r}: depends on {dep!r}, which is not a task of the run",
                    task_id=tid, field="parents",
                )
            children[dep].append(tid)
    spec, execution = [], []
    for tid, deps in graph.items():
        spec.append({
            "name": tid, "id": _escape(tid),
            "parents": [_escape(p) for p in deps],
            "children": [_escape(c) for c in children[tid]],
        })
        agent, started, finished = attempts.get(tid, (None, None, None))
        entry: dict[str, Any] = {
            "id": _escape(tid),
            "runtimeInSeconds": (
                max(0.0, finished - started) if started is not None and finished is not None
                else 0.0
            ),
        }
        if started is not None:
            entry["executedAt"] = _iso(started)
        group = groups.get(tid) if groups else None
        if group:
            entry["command"] = {"program": group}
        if agent is not None:
            entry["machines"] = [agent]
        execution.append(entry)
    ex: dict[str, Any] = {
        "makespanInSeconds": float(makespan),
        "executedAt": _iso(started_at),
        "tasks": execution,
    }
    if agents:
        ex["machines"] = [
            {"nodeName": agent_id, "cpu": {"coreCount": int(capacity)}}
            for agent_id, capacity in agents
        ]
    doc: dict[str, Any] = {"name": name}
    if description:
        doc["description"] = description
    doc.update({
        "createdAt": _iso(started_at + float(makespan)),
        "schemaVersion": "1.5",
        "runtimeSystem": {"name": "wfkit", "version": __version__},
        "workflow": {"specification": {"tasks": spec, "files": []}, "execution": ex},
    })
    return doc


def write_json(doc: Mapping[str, Any], path: str | PathLike[str]) -> None:
    """Save a WfFormat document as JSON (written whole or not at all)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    tmp.replace(target)
