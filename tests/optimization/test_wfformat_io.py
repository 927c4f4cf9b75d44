"""WfFormat in and out: the public loaders on real traces and every schema shape, bad files
named by task and field, and runs written as WfFormat 1.5 that validate and load back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, RunStore, Workflow
from wfkit.errors import SpecError, WfFormatError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "wfkit" / "data" / "wfcommons"
SCHEMA = json.loads((DATA / "wfformat-1.5.schema.json").read_text())
# the five published traces the benchmarks use (next to the repository, or where told)
SHARED = Path(os.environ.get("WFKIT_WFCOMMONS", ROOT.parent / "shared" / "benchmarks"
                             / "wfcommons"))

# (tasks, edges, groups) of each trace: groups are programs (Pegasus, Makeflow) or, where
# the program is a script, process names (Nextflow)
TRACES = {
    "methylseq-dirt02-001": (36, 70, 16),
    "rnaseq-dirt02-001": (197, 451, 62),
    "1000genome-chameleon-8ch-250k-001": (328, 424, 5),
    "cycles-chameleon-2l-3c-9p-001": (399, 582, 7),
    "bwa-chameleon-large-001": (1004, 4000, 5),
}


def counts(wf: Workflow) -> tuple[int, int, int]:
    tasks = wf.tasks
    return (len(tasks), sum(len(t.dependencies) for t in tasks),
            len({t.group for t in tasks if t.group}))


def validate(doc):
    # the schema names no draft ("schema#"): its keywords mean the same in draft 7
    jsonschema.Draft7Validator(SCHEMA).validate(doc)


def test_public_names_and_the_bundled_traces():
    assert {"load_wfformat", "wfformat_durations", "wfformat_agents"} <= set(wfkit.__all__)
    path = DATA / "methylseq-dirt02-001.json"
    wf = wfkit.load_wfformat(path, capability="compute")
    assert isinstance(wf, Workflow) and wf.workflow_id == "methylseq"
    assert counts(wf) == TRACES["methylseq-dirt02-001"]
    assert all(t.required_capabilities == ["compute"] for t in wf.tasks)
    durations = wfkit.wfformat_durations(path)
    assert {t.task_id: t.estimated_duration for t in wf.tasks} == durations
    assert sum(durations.values()) == pytest.approx(446.4, abs=0.05)
    [agent] = wfkit.wfformat_agents(path, capability="compute")
    assert (agent.agent_id, agent.capacity, agent.capabilities) == ("dirt02", 1, ["compute"])
    genome = DATA / "1000genome-chameleon-8ch-250k-001.json"
    assert counts(wfkit.load_wfformat(genome)) == TRACES["1000genome-chameleon-8ch-250k-001"]
    machines = wfkit.wfformat_agents(genome)
    assert len(machines) >= 2 and {a.capacity for a in machines} == {48}
    # the recorded graph as published passes the schema the writer is checked against
    validate(json.loads(path.read_text()))


def test_example_traces_are_found_by_name():
    from wfkit.wfformat import example_trace

    assert example_trace("methylseq") == DATA / "methylseq-dirt02-001.json"
    assert example_trace("1000genome").is_file()
    with pytest.raises(WfFormatError, match="'1000genome', 'methylseq'"):
        example_trace("montage")
    with pytest.raises(WfFormatError):
        example_trace("wfformat")  # the schema is not a trace


@pytest.mark.skipif(not SHARED.is_dir(), reason="the published WfCommons traces are not here")
@pytest.mark.parametrize("stem", sorted(TRACES))
def test_each_published_trace_loads_with_its_counts(stem):
    wf = wfkit.load_wfformat(SHARED / f"{stem}.json")
    assert counts(wf) == TRACES[stem]
    graph = wf.to_networkx()
    assert graph.number_of_edges() == TRACES[stem][1]
    durations = wfkit.wfformat_durations(SHARED / f"{stem}.json")
    assert set(durations) == {t.task_id for t in wf.tasks}


def test_version_14_and_10_shapes_and_machines():
    v14 = {"name": "old", "schemaVersion": "1.4", "workflow": {
        "makespan": 7,
        "machines": [{"nodeName": "n1", "cpu": {"count": 4, "speed": 2400}}],
        "tasks": [
            {"name": "split_1", "id": "ID01", "parents": [], "children": ["merge_1"],
             "runtimeInSeconds": 2, "command": {"program": "split"}, "category": "split"},
            {"name": "align_1", "id": "ID02", "parents": ["split_1"], "runtimeInSeconds": 3.5,
             "category": "align"},
            {"name": "merge_1", "id": "ID03", "parents": ["align_1"], "runtime": 1},
        ]}}
    wf = wfkit.load_wfformat(v14)
    deps = {t.task_id: sorted(t.dependencies) for t in wf.tasks}
    assert deps == {"ID01": [], "ID02": ["ID01"], "ID03": ["ID01", "ID02"]}
    # a program, else the category, else the name when it is not the id
    assert [t.group for t in wf.tasks] == ["split", "align", "merge_1"]
    assert wfkit.wfformat_durations(v14) == {"ID01": 2.0, "ID02": 3.5, "ID03": 1.0}
    assert [(a.agent_id, a.capacity) for a in wfkit.wfformat_agents(v14)] == [("n1", 4)]
    v10 = {"workflow": {"jobs": [
        {"name": "b", "parents": ["a"], "runtime": 2.5, "command": {"program": "step"}},
        {"name": "a", "children": ["c"], "runtime": 1},
        {"name": "c", "runtime": 0},
    ]}}
    wf = wfkit.load_wfformat(v10)
    assert [t.task_id for t in wf.tasks] == ["a", "b", "c"]
    assert wf["c"].dependencies == ["a"] and wf["b"].group == "step"


def doc_15():
    return {"name": "tiny", "schemaVersion": "1.5", "workflow": {
        "specification": {"tasks": [
            {"id": "a", "name": "a", "parents": [], "children": ["b"]},
            {"id": "b", "name": "b", "parents": ["a"], "children": []},
        ]},
        "execution": {"makespanInSeconds": 3, "executedAt": "x", "tasks": [
            {"id": "a", "runtimeInSeconds": 1}, {"id": "b", "runtimeInSeconds": 2},
        ], "machines": [{"nodeName": "n1", "cpu": {"coreCount": 2}}]},
    }}


@pytest.mark.parametrize(
    ("change", "task", "field"),
    [
        (lambda d: d["workflow"]["execution"]["tasks"][1].update(runtimeInSeconds=None),
         "b", "runtimeInSeconds"),
        (lambda d: d["workflow"]["execution"]["tasks"][0].update(runtimeInSeconds=float("nan")),
         "a", "runtimeInSeconds"),
        (lambda d: d["workflow"]["specification"]["tasks"][1].update(children="a"),
         "b", "children"),
        (lambda d: d["workflow"]["specification"]["tasks"][0].update(children=["zz"]),
         "a", "children"),
        (lambda d: d["workflow"]["specification"]["tasks"][1].update(id="a"), "a", "id"),
        (lambda d: d["workflow"]["execution"]["tasks"].pop(), "b", "runtimeInSeconds"),
    ],
)
def test_a_bad_file_names_its_task_and_field(tmp_path, change, task, field):
    d = doc_15()
    change(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(WfFormatError) as info:
        wfkit.load_wfformat(path)
    err = info.value
    assert isinstance(err, SpecError) and isinstance(err, wfkit.WfkitError)
    assert (err.task_id, err.field, err.path) == (task, field, str(path))
    assert f"task {task!r}" in str(err) and field in str(err) and str(path) in str(err)


def test_bad_files_and_machines(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{not json")
    with pytest.raises(WfFormatError, match="is not JSON"):
        wfkit.load_wfformat(path)
    with pytest.raises(WfFormatError, match="cannot read"):
        wfkit.load_wfformat(tmp_path / "missing.json")
    d = doc_15()
    d["workflow"]["execution"]["machines"][0]["cpu"]["coreCount"] = 0
    with pytest.raises(WfFormatError, match="machine 'n1': cpu.coreCount") as info:
        wfkit.wfformat_agents(d)
    assert info.value.field == "cpu.coreCount"


async def run_example(store=None):
    """A real run: a fan-out with a task whose id WfFormat cannot spell, on two agents."""
    wf = Workflow("fan")

    @wf.task(requires=["compute"], estimate=0.01)
    def split(ctx):
        return [1, 2, 3]

    @wf.task(requires=["compute"], after=[split], task_id="align [x]")
    def align(ctx):
        return sum(ctx.inputs["split"])

    @wf.task(requires=["compute"], after=[split])
    def count(ctx):
        return len(ctx.inputs["split"])

    @wf.task(requires=["compute"], after=[align, count])
    def join(ctx):
        return ctx.inputs["align [x]"] + ctx.inputs["count"]

    orch = CollectiveAgentWorkflowOrchestrator(store=store)
    orch.register_agent(AgentProfile("n1", "Node 1", ["compute"], capacity=2))
    orch.register_agent(AgentProfile("n2", "Node 2", ["compute"]))
    await orch.create_workflow(wf)
    return wf, await orch.execute_workflow("fan", progress=False)


async def test_a_run_round_trips_through_wfformat(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    wf, result = await run_example(store)
    assert result["status"] == "completed"
    doc = result.to_wfformat(tmp_path / "run.json")
    validate(doc)
    assert json.loads((tmp_path / "run.json").read_text()) == doc
    assert doc["schemaVersion"] == "1.5" and doc["name"] == "fan"
    ids = [t["id"] for t in doc["workflow"]["specification"]["tasks"]]
    assert "align#20##5b#x#5d#" in ids  # only letters, digits and -_.# are allowed
    back = wfkit.load_wfformat(tmp_path / "run.json")
    assert {t.task_id: sorted(t.dependencies) for t in back.tasks} == {
        t.task_id: sorted(t.dependencies) for t in wf.tasks}
    runtimes = {tid: r["finished_at"] - r["started_at"]
                for tid, r in result["task_results"].items()}
    assert wfkit.wfformat_durations(doc) == pytest.approx(runtimes, abs=1e-9)
    assert all(v > 0 for v in runtimes.values())
    agents = wfkit.wfformat_agents(doc)
    assert [(a.agent_id, a.capacity) for a in agents] == [("n1", 2), ("n2", 1)]
    by_id = {t["id"]: t for t in doc["workflow"]["execution"]["tasks"]}
    assert by_id["join"]["machines"] == [result["task_results"]["join"]["agent_id"]]
    assert doc["workflow"]["execution"]["makespanInSeconds"] == result["makespan"]

    # the store writes the same run the same way
    stored = store.to_wfformat(result.run_id)
    validate(stored)
    assert stored["workflow"]["specification"] == doc["workflow"]["specification"]
    assert wfkit.wfformat_durations(stored) == pytest.approx(runtimes, abs=1e-6)
    assert [(a.agent_id, a.capacity) for a in wfkit.wfformat_agents(stored)] == [
        ("n1", 2), ("n2", 1)]
    store.close()


async def test_a_mapped_task_waits_for_its_children_in_the_written_graph(tmp_path):
    wf = Workflow("mapped")

    @wf.task(requires=["compute"])
    def items(ctx):
        return [1, 2, 3]

    @wf.task(requires=["compute"], map=items)
    def square(ctx):
        return ctx.item ** 2

    @wf.task(requires=["compute"], after=[square])
    def total(ctx):
        return sum(ctx.inputs["square"])

    store = RunStore(tmp_path / "runs.db")
    orch = CollectiveAgentWorkflowOrchestrator(store=store)
    orch.register_agent(AgentProfile("n1", "Node 1", ["compute"], capacity=2))
    await orch.create_workflow(wf)
    result = await orch.execute_workflow("mapped", progress=False)
    assert result["status"] == "completed"
    for doc in (result.to_wfformat(), store.to_wfformat(result.run_id)):
        validate(doc)
        back = {t.task_id: set(t.dependencies) for t in wfkit.load_wfformat(doc).tasks}
        assert back["square"] >= {"square[0]", "square[1]", "square[2]"}
        assert back["square[1]"] == {"items"} and back["total"] == {"square"}
    store.close()


def test_a_published_trace_written_again_keeps_graph_and_runtimes(tmp_path):
    """load -> run_document -> load: WfFormat written by wfkit reads as the original did."""
    from wfkit.wfformat import read_wfformat, run_document

    trace = read_wfformat(DATA / "1000genome-chameleon-8ch-250k-001.json")
    t0, clock, attempts = 1_700_000_000.0, {}, {}
    for tid, task in trace.tasks.items():  # a schedule with unlimited machines
        start = max((clock[d] for d in task.dependencies), default=t0)
        clock[tid] = start + trace.runtimes[tid]
        attempts[tid] = ("pegasus-2", start, clock[tid])
    doc = run_document(
        name=trace.name, graph={tid: t.dependencies for tid, t in trace.tasks.items()},
        attempts=attempts, agents=[("pegasus-2", 48)], started_at=t0,
        makespan=max(clock.values()) - t0,
        groups={tid: t.group for tid, t in trace.tasks.items()},
    )
    validate(doc)
    again = read_wfformat(doc)
    assert {k: sorted(t.dependencies) for k, t in again.tasks.items()} == {
        k: sorted(t.dependencies) for k, t in trace.tasks.items()}
    assert again.runtimes == pytest.approx(trace.runtimes, abs=1e-6)
    assert {k: t.group for k, t in again.tasks.items()} == {
        k: t.group for k, t in trace.tasks.items()}


def test_a_result_without_its_graph_says_where_to_write_from():
    result = wfkit.RunResult(workflow_id="w", run_id="r", status="completed",
                             task_results={}, started_at=0.0, makespan=0.0)
    with pytest.raises(WfFormatError, match="RunStore"):
        result.to_wfformat()


async def test_a_failed_run_is_written_too_with_zero_runtimes_for_what_never_ran(tmp_path):
    wf = Workflow("broken")

    @wf.task(requires=["compute"])
    def load(ctx):
        raise ValueError("no data")

    @wf.task(requires=["compute"], after=[load])
    def report(ctx):
        return "never"

    store = RunStore(tmp_path / "runs.db")
    orch = CollectiveAgentWorkflowOrchestrator(store=store)
    orch.register_agent(AgentProfile("n1", "Node 1", ["compute"]))
    await orch.create_workflow(wf)
    result = await orch.execute_workflow("broken", progress=False)
    assert result["task_results"]["report"]["status"] == "skipped"
    for doc in (result.to_wfformat(), store.to_wfformat(result.run_id)):
        validate(doc)
        tasks = {t["id"]: t for t in doc["workflow"]["execution"]["tasks"]}
        assert tasks["report"]["runtimeInSeconds"] == 0.0 and "executedAt" not in tasks["report"]
        assert tasks["load"]["machines"] == ["n1"] and "executedAt" in tasks["load"]
        assert {t.task_id: t.dependencies for t in wfkit.load_wfformat(doc).tasks} == {
            "load": [], "report": ["load"]}
    with pytest.raises(wfkit.StoreError, match="no run 'nope'"):
        store.to_wfformat("nope")
    store.close()
