"""Reading WfFormat traces (1.5 and the older shapes) into tasks, runtimes and machines."""

import json

import pytest
from optimization_checks import STG_ROOT

import wfkit
from wfkit.errors import CycleError, SpecError
from wfkit.wfformat import load_wfformat, read_wfformat, wfformat_agents, wfformat_durations

WFCOMMONS = STG_ROOT.parent / "wfcommons"


def doc_15():
    return {
        "name": "tiny", "schemaVersion": "1.5",
        "workflow": {
            "specification": {"tasks": [
                {"id": "a", "name": "a", "parents": [], "children": ["b", "c"]},
                {"id": "b", "name": "b", "parents": ["a"], "children": []},
                # the edge c -> d is listed only on d's side, a -> c only on a's side
                {"id": "c", "name": "c", "parents": [], "children": []},
                {"id": "d", "name": "d", "parents": ["c", "b"]},
            ], "files": []},
            "execution": {
                "makespanInSeconds": 9.5,
                "tasks": [
                    {"id": "a", "runtimeInSeconds": 1.25, "command": {"program": "split"}},
                    {"id": "b", "runtimeInSeconds": 2.0, "command": {"program": "align"}},
                    {"id": "c", "runtimeInSeconds": 3.5, "command": {"program": "align"}},
                    {"id": "d", "runtimeInSeconds": 0.000125},
                ],
                "machines": [{"nodeName": "n1", "cpu": {"coreCount": 8}},
                             {"nodeName": "n2", "cpu": {"coreCount": 2}}],
            },
        },
    }


def test_version_15_union_of_parents_and_children(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc_15()))
    wf = load_wfformat(path)
    assert isinstance(wf, wfkit.Workflow)
    deps = {t.task_id: sorted(t.dependencies) for t in wf.tasks}
    assert deps == {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    assert wf["c"].estimated_duration == 3.5
    assert wf["b"].group == "align" and wf["d"].group is None
    assert wf["a"].required_capabilities == ["default"]
    assert wfformat_durations(doc_15()) == {"a": 1.25, "b": 2.0, "c": 3.5, "d": 0.000125}
    agents = wfformat_agents(path)
    assert [(a.agent_id, a.capacity) for a in agents] == [("n1", 8), ("n2", 2)]
    assert read_wfformat(doc_15()).makespan == 9.5


def test_older_shapes_name_parents_by_name():
    v14 = {"workflow": {"tasks": [
        {"name": "first", "id": "ID1", "parents": [], "runtimeInSeconds": 4},
        {"name": "second", "id": "ID2", "parents": ["first"], "runtimeInSeconds": 1.5},
    ]}}
    trace = read_wfformat(v14)
    assert trace.tasks["ID2"].dependencies == ["ID1"]
    assert trace.runtimes == {"ID1": 4.0, "ID2": 1.5}
    v10 = {"workflow": {"jobs": [
        {"name": "j2", "parents": ["j1"], "runtime": 2},
        {"name": "j1", "parents": [], "runtime": 3},
    ]}}
    trace = read_wfformat(v10)
    assert list(trace.tasks) == ["j1", "j2"]  # in dependency order
    assert trace.tasks["j2"].dependencies == ["j1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["workflow"]["execution"]["tasks"][1].update(runtimeInSeconds="x"),
         "task 'b': runtimeInSeconds"),
        (lambda d: d["workflow"]["execution"]["tasks"][2].update(runtimeInSeconds=-1),
         "task 'c': runtimeInSeconds"),
        (lambda d: d["workflow"]["specification"]["tasks"][3].update(parents=["zz"]),
         "task 'd': parents names 'zz'"),
        (lambda d: d["workflow"]["execution"]["tasks"].pop(0), "task 'a': no entry"),
        (lambda d: d.pop("workflow"), "no 'workflow'"),
    ],
)
def test_bad_documents_name_the_task_and_field(change, message):
    d = doc_15()
    change(d)
    with pytest.raises(SpecError, match=message):
        read_wfformat(d)


def test_a_cycle_is_named():
    d = doc_15()
    d["workflow"]["specification"]["tasks"][0]["parents"] = ["d"]
    with pytest.raises(CycleError):
        read_wfformat(d)


@pytest.mark.skipif(not WFCOMMONS.is_dir(), reason="WfCommons traces not present")
def test_the_published_traces_read_as_documented():
    expected = {"methylseq-dirt02-001": (36, 70), "bwa-chameleon-large-001": (1004, 4000)}
    for stem, (n, edges) in expected.items():
        trace = read_wfformat(WFCOMMONS / f"{stem}.json")
        assert len(trace.tasks) == n
        assert sum(len(t.dependencies) for t in trace.tasks.values()) == edges
