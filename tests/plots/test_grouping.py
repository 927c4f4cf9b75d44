"""Grouped DAGs: large workflows drawn as groups of tasks, with counts that add up."""

from __future__ import annotations

import itertools
import string
from collections import Counter
from pathlib import Path

import pytest

import wfkit
from wfkit import WorkflowTask
from wfkit.errors import ValidationError
from wfkit.graph import validate_tasks
from wfkit.grouping import group_tasks, name_stem
from wfkit.plots import DAG_NODE_TRACE, dag_figure, group_stats

# The shared WfCommons traces sit next to the repository (see benchmarks/wfcommons.py).
TRACES = next((p / "shared" / "benchmarks" / "wfcommons" for p in Path(__file__).parents
               if (p / "shared" / "benchmarks" / "wfcommons").is_dir()), Path("missing"))


def task(tid: str, deps: list[str] = (), group: str | None = None, est: float = 1.0):
    return WorkflowTask(tid, tid, [], 0, est, list(deps), group=group)


def montage_like(images: int = 40) -> dict[str, WorkflowTask]:
    """Montage's shape, named as its traces name tasks (no explicit groups)."""
    out: list[WorkflowTask] = []
    proj = [f"mProject_ID{i:07d}" for i in range(images)]
    out += [task(p) for p in proj]
    diffs = []
    for i in range(images):
        for j in (i + 1, i + 2, i + 3, i + 5):
            if j < images:
                diffs.append(f"mDiffFit_ID{len(diffs) + images:07d}")
                out.append(task(diffs[-1], [proj[i], proj[j]]))
    out.append(task("mConcatFit_ID9000000", diffs))
    out.append(task("mBgModel_ID9000001", ["mConcatFit_ID9000000"]))
    bgs = [f"mBackground_ID{8000000 + i:07d}" for i in range(images)]
    out += [task(b, [p, "mBgModel_ID9000001"]) for b, p in zip(bgs, proj, strict=True)]
    out.append(task("mImgtbl_ID9000002", bgs))
    out.append(task("mAdd_ID9000003", ["mImgtbl_ID9000002", *bgs]))
    out.append(task("mViewer_ID9000004", ["mAdd_ID9000003"]))
    return validate_tasks(out)


def nodes(fig):
    return fig.data[DAG_NODE_TRACE]


def test_name_stems():
    assert name_stem("mDiffFit_ID0000007") == "mDiffFit"
    assert name_stem("align-12") == "align"
    assert name_stem("fetch[3]") == "fetch"
    assert name_stem("step_2_3") == "step"
    assert name_stem("42") == "42" and name_stem("clean") == "clean"


def test_montage_shape_draws_its_kinds_with_counts_that_add_up():
    tasks = montage_like()
    assert len(tasks) > 150
    g = group_tasks(tasks)
    assert g.level == "stems"
    sizes = {k: len(v) for k, v in g.members.items()}
    assert sizes == {"mProject": 40, "mDiffFit": len(tasks) - 85, "mConcatFit": 1,
                     "mBgModel": 1, "mBackground": 40, "mImgtbl": 1, "mAdd": 1, "mViewer": 1}
    assert sum(sizes.values()) == len(tasks)  # no task lost
    assert g.edges[("mProject", "mDiffFit")] == 2 * sizes["mDiffFit"]
    assert g.edges[("mBackground", "mAdd")] == 40
    fig = dag_figure(tasks)
    node = nodes(fig)
    assert len(node.x) == 8 <= 150
    assert fig.layout.meta["groups"] == sizes
    assert "mDiffFit ×" in " ".join(node.text)
    multiplicities = [t for t in fig.data if t.name == "multiplicity"][0]
    assert f"×{2 * sizes['mDiffFit']:,}" in list(multiplicities.text)
    # the critical path crosses the groups on its way, drawn through them
    path = fig.layout.meta["critical_path"]
    crossed = list(dict.fromkeys(name_stem(t) for t in path))
    critical = fig.data[1]
    assert len([v for v in critical.x if v == v]) == 2 * (len(crossed) - 1)


def test_status_counts_per_group_and_per_status():
    tasks = montage_like()
    diffs = [t for t in tasks if t.startswith("mDiffFit")]
    results = {t: "completed" for t in tasks if t.startswith("mProject")}
    results.update({t: "completed" for t in diffs[:100]})
    results.update({t: "failed" for t in diffs[100:103]})
    results.update({t: "running" for t in diffs[103:110]})
    fig = dag_figure(tasks, results)
    node = nodes(fig)
    hover = dict(zip(node.customdata, node.hovertext, strict=True))
    rest = len(diffs) - 110
    assert f"{len(diffs)} tasks ({rest} pending 7 running 100 completed 3 failed)" \
        in hover["mDiffFit"].replace(",", "")
    assert "40 tasks (40 completed)" in hover["mProject"]
    bars = {t.name: t for t in fig.data if t.mode == "lines" and t.name in
            ("completed", "failed", "running", "pending")}
    assert set(bars) == {"completed", "failed", "running", "pending"}
    assert len([v for v in bars["failed"].x if v == v]) == 2  # one group has failures
    colour = dict(zip(node.customdata, node.marker.color, strict=True))
    statuses = fig.layout.meta["statuses"]
    assert statuses[colour["mDiffFit"]] == "failed"  # the most urgent status shows
    assert statuses[colour["mProject"]] == "completed"


def test_grouping_is_deterministic():
    a, b = dag_figure(montage_like()), dag_figure(montage_like())
    assert a.to_json() == b.to_json()


@pytest.mark.skipif(not (TRACES / "bwa-chameleon-large-001.json").is_file(),
                    reason="the shared WfCommons traces are not here")
def test_bwa_trace_groups_by_program():
    wf = wfkit.load_wfformat(TRACES / "bwa-chameleon-large-001.json")
    fig = dag_figure(wf, max_nodes=150)
    assert len(nodes(fig).x) <= 150
    assert fig.layout.meta["grouped_by"] == "groups"
    assert fig.layout.meta["groups"] == dict(Counter(t.group for t in wf.tasks))
    assert sum(fig.layout.meta["groups"].values()) == len(wf.tasks) == 1004


def test_bwa_shape_with_explicit_groups_and_statuses():
    """BWA's shape: split the reads, align each chunk, gather; groups named explicitly."""
    chunks = [f"c{i}" for i in range(1000)]
    tasks = validate_tasks([
        task("index", group="bwa_index"), task("split", group="fastq_reduce"),
        *(task(c, ["index", "split"], group="bwa") for c in chunks),
        task("cat", chunks, group="cat"), task("final", ["cat"], group="cat_final"),
    ])
    results = {c: ("completed" if i % 10 else "failed") for i, c in enumerate(chunks)}
    results |= {"index": "completed", "split": "completed"}
    fig = dag_figure(tasks, results)
    assert fig.layout.meta["groups"] == {"bwa_index": 1, "fastq_reduce": 1, "bwa": 1000,
                                         "cat": 1, "cat_final": 1}
    hover = dict(zip(nodes(fig).customdata, nodes(fig).hovertext, strict=True))
    assert "1,000 tasks (900 completed, 100 failed)" in hover["bwa"]
    assert "1 task (1 pending)" in hover["cat"]


def names(n: int) -> list[str]:
    """Names with no number to strip, so stems do not group them."""
    return ["".join(p) for p in itertools.islice(
        itertools.product(string.ascii_lowercase, repeat=3), n)]


def test_structural_equivalence_collapses_a_fan_when_names_do_not():
    mid = names(300)
    tasks = validate_tasks([task("root"), *(task(f"x{m}", ["root"]) for m in mid),
                            task("sink", [f"x{m}" for m in mid])])
    g = group_tasks(tasks, max_nodes=50)
    assert g.level == "structure" and len(g) == 3
    assert sorted(len(v) for v in g.members.values()) == [1, 1, 300]
    fig = dag_figure(tasks, max_nodes=50)
    assert len(nodes(fig).x) == 3


def test_a_long_chain_falls_back_to_bands_of_layers():
    chain = names(400)
    tasks = validate_tasks([task(c, [chain[i - 1]] if i else []) for i, c in enumerate(chain)])
    g = group_tasks(tasks, max_nodes=150)
    assert g.level == "layers" and len(g) <= 150
    assert sum(len(v) for v in g.members.values()) == 400
    assert len(nodes(dag_figure(tasks)).x) <= 150


def test_groups_that_would_make_a_cycle_split_by_layer():
    tasks = validate_tasks([task("a", group="X"), task("b", ["a"], group="Y"),
                            task("c", ["b"], group="X")])
    g = group_tasks(tasks, lambda t: t.group)
    assert set(g.members) == {"X · layer 1", "Y · layer 2", "X · layer 3"}
    assert g.base["X · layer 1"] == "X"
    fig = dag_figure(tasks, group=lambda t: t.group)
    assert len(nodes(fig).x) == 3


def test_expand_draws_a_groups_members_and_none_draws_every_task():
    tasks = montage_like()
    fig = dag_figure(tasks, expand=["mBackground"])
    shown = list(nodes(fig).customdata)
    assert len(shown) == 7 + 40 and "mBackground_ID8000003" in shown
    assert len(nodes(dag_figure(tasks, group="none")).x) == len(tasks)
    with pytest.raises(ValidationError, match="expand names no group.*'nope'"):
        dag_figure(tasks, expand=["nope"])
    with pytest.raises(ValidationError, match="group must be 'auto', 'none' or a callable"):
        dag_figure(tasks, group="kinds")
    with pytest.raises(ValidationError, match="max_nodes must be a positive int"):
        dag_figure(tasks, max_nodes=0)
    with pytest.raises(ValidationError, match=r"group\('mProject_ID0000000'\) returned int"):
        dag_figure(tasks, group=lambda t: 3)


def test_mapped_children_count_in_their_parents_group():
    tasks = validate_tasks([task("src"), WorkflowTask("each", "each", [], 0, 1.0, ["src"],
                                                      map="src", group="work")])
    from wfkit.grouping import Grouping

    g = group_tasks(tasks, lambda t: t.group)
    assert isinstance(g, Grouping)
    outcomes = {"src": {"status": "completed", "duration": 2.0}, "each": {"status": "failed"}}
    outcomes.update({f"each[{i}]": {"status": "completed" if i % 4 else "failed",
                                    "duration": 1.0} for i in range(100)})
    stats = group_stats(tasks, g, outcomes)
    assert stats["work"]["size"] == 100
    assert stats["work"]["counts"] == {"completed": 75, "failed": 25}
    assert stats["work"]["total"] == 100.0 and stats["work"]["mean"] == 1.0
    assert stats["src"]["size"] == 1


def test_workflow_figure_and_repr_use_the_same_grouping():
    from wfkit import Workflow

    wf = Workflow("montage")
    for t in montage_like().values():
        wf.add(t)
    fig = wf.figure()
    assert fig.layout.meta["groups"] == dag_figure(montage_like()).layout.meta["groups"]
    assert len(nodes(wf.figure(expand=["mProject"])).x) == 7 + 40
    bundle = wf._repr_mimebundle_()
    plotly = bundle.get("application/vnd.plotly.v1+json")
    assert plotly is not None and plotly["layout"]["meta"]["grouped_by"] == "stems"



def test_stems_remembered_by_their_head_are_the_stems():
    from wfkit.grouping import _stems

    ids = ["mDiffFit_ID0000007", "mDiffFit_ID0000008", "align-12", "align-7", "fetch[3]",
           "step_2_3", "step_2", "42", "7", "clean", "a1_2", "a1", "ID5", "id_7", "x.3",
           "x:4", "run 5", "ab12cd34", "ab12cd3", "_9", "-1", "[2]", "t10000", "t9"]
    stem = _stems()
    for tid in ids + ids:  # the second time from memory
        assert stem(tid) == name_stem(tid), tid


def test_a_task_graph_groups_as_its_tasks_do_and_codes_number_the_groups():
    from wfkit.graph import TaskGraph

    for tasks in (montage_like(), {t.task_id: t for t in [task("a"), task("b", ["a"])]}):
        for max_nodes in (150, 5, 1):
            by_id = group_tasks(tasks, max_nodes=max_nodes)
            numbered = group_tasks(TaskGraph(tasks), max_nodes=max_nodes)
            for field in ("of", "members", "deps", "edges", "level", "base"):
                assert getattr(numbered, field) == getattr(by_id, field), field
            assert list(numbered.edges) == list(by_id.edges)  # in the same order
            if numbered.codes is not None:  # each task's group, by its number in members
                names = list(numbered.members)
                assert [names[k] for k in numbered.codes] == [numbered.of[t] for t in tasks]
