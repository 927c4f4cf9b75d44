"""Run parameters: declared on the workflow, overridden per run, read-only in tasks, recorded."""

import pickle

import pytest

from wfkit import (
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    ResumeError,
    RunStore,
    UnknownParameterError,
    ValidationError,
    WfkitError,
    Workflow,
)
from wfkit.agents.params import RunParams
from wfkit.events import RunStarted
from wfkit.executors.shipping import light_context


def orchestrator(**kw):
    orch = CollectiveAgentWorkflowOrchestrator(progress=False, backoff=0.001, **kw)
    orch.register_agent(AgentProfile("a", "A", ["work"], capacity=2))
    return orch


def sales():
    wf = Workflow("sales", params={"year": 2007, "region": "EU"})

    @wf.task(requires=["work"])
    def pick(ctx):
        return f"{ctx.params['region']}-{ctx.params['year']}"

    @wf.task(requires=["work"], after=[pick])
    def echo(ctx):
        return ctx.inputs["pick"]

    return wf


async def test_defaults_and_overrides_reach_tasks_and_the_result():
    orch = orchestrator()
    await orch.create_workflow(sales())
    first = await orch.execute_workflow("sales")
    assert first.results()["pick"] == "EU-2007"
    assert first.params == {"year": 2007, "region": "EU"}
    second = await orch.execute_workflow("sales", params={"year": 2010})
    assert second.results()["echo"] == "EU-2010"
    assert second["params"] == {"year": 2010, "region": "EU"}
    assert "params(year=2010, region='EU')" in repr(second)
    assert "year=2010" in second._repr_html_()
    # the declared defaults are untouched by an override
    assert orch.workflows["sales"]["params"] == {"year": 2007, "region": "EU"}


async def test_an_unknown_name_is_refused_with_a_did_you_mean_before_anything_runs():
    orch = orchestrator()
    wf = sales()
    await orch.create_workflow(wf)
    with pytest.raises(UnknownParameterError, match=r"no parameter 'yeer': did you mean 'year'") as e:
        await orch.execute_workflow("sales", params={"yeer": 2010})
    assert isinstance(e.value, ValidationError) and isinstance(e.value, WfkitError)
    assert (e.value.workflow_id, e.value.name, e.value.known) == ("sales", "yeer", ["region", "year"])
    assert orch.workflows["sales"]["runs"] == []  # nothing started
    bare = Workflow("bare")
    bare.task(lambda ctx: 1, requires=["work"], task_id="one")
    await orch.create_workflow(bare)
    with pytest.raises(UnknownParameterError, match=r"declare parameters with Workflow"):
        await orch.execute_workflow("bare", params={"year": 1})
    with pytest.raises(ValidationError, match="params= takes a dict"):
        await orch.execute_workflow("sales", params=[("year", 1)])


def test_declaring_bad_params_fails_at_once():
    with pytest.raises(ValidationError, match="params must be a dict"):
        Workflow("w", params=["year"])
    with pytest.raises(ValidationError, match="parameter names must be non-empty strings"):
        Workflow("w", params={1: 2})
    assert "params {'year': 2007" in repr(sales())


async def test_ctx_params_is_read_only_and_names_what_it_lacks():
    seen = {}

    wf = Workflow("ro", params={"year": 2007})

    @wf.task(requires=["work"])
    def poke(ctx):
        seen["get"] = ctx.params.get("nope", "default")
        with pytest.raises(TypeError):
            ctx.params["year"] = 1  # type: ignore[index]
        with pytest.raises(UnknownParameterError, match=r"did you mean 'year'"):
            ctx.params["yaer"]
        with pytest.raises(KeyError):  # a Mapping's KeyError, for code that expects it
            ctx.params["yaer"]
        return dict(ctx.params)

    orch = orchestrator()
    await orch.create_workflow(wf)
    result = await orch.execute_workflow("ro")
    assert result.status == "completed", result.task_results["poke"]["error"]
    assert result.results()["poke"] == {"year": 2007}
    assert seen["get"] == "default"


async def test_the_engine_records_which_params_each_task_read(monkeypatch):
    wf = Workflow("reads", params={"year": 2007, "region": "EU", "unused": 0})

    @wf.task(requires=["work"])
    def by_year(ctx):
        return ctx.params["year"]

    @wf.task(requires=["work"])
    def maybe(ctx):
        return "region" in ctx.params

    @wf.task(requires=["work"])
    def none(ctx):
        return 1

    @wf.task(requires=["work"])
    def everything(ctx):
        return sorted(ctx.params.items())

    orch = orchestrator()
    runs = []
    orch.subscribe(lambda e: runs.append(e) if isinstance(e, RunStarted) else None)
    await orch.create_workflow(wf)
    from wfkit.agents.engine import WorkflowRun

    captured = {}
    original = WorkflowRun.result

    def keep(self):
        captured.update(self.params_read)
        return original(self)

    monkeypatch.setattr(WorkflowRun, "result", keep)
    await orch.execute_workflow("reads", params={"region": "US"})
    assert captured == {
        "by_year": {"year"},
        "maybe": {"region"},
        "everything": {"year", "region", "unused"},
    }
    assert runs[0].params == {"year": 2007, "region": "US", "unused": 0}


def test_a_shipped_context_counts_every_param_as_read_and_pickles_plainly():
    from wfkit import TaskContext, WorkflowTask

    params = RunParams({"year": 2007, "region": "EU"})
    ctx = TaskContext(WorkflowTask("t", "t", [], 0, 1.0), AgentProfile("a", "A", []), {}, 1,
                      "r", "w", params)
    light = light_context(ctx)
    assert params.read == {"year", "region"}
    back = pickle.loads(pickle.dumps(light))
    assert isinstance(back.params, RunParams) and back.params.read == set()
    assert dict(back.params) == {"year": 2007, "region": "EU"}


async def test_params_are_stored_with_the_run_and_resume_keeps_them(tmp_path):
    calls = []
    wf = Workflow("resumable", params={"year": 2007, "region": "EU"})

    @wf.task(requires=["work"])
    def first(ctx):
        calls.append(("first", ctx.params["year"]))
        return ctx.params["year"]

    @wf.task(requires=["work"], after=[first])
    def second(ctx):
        calls.append(("second", ctx.params["year"]))
        if len(calls) < 3:
            raise RuntimeError("flaky")
        return ctx.inputs["first"] + 1

    path = tmp_path / "runs.db"
    orch = orchestrator(store=path)
    await orch.create_workflow(wf)
    failed = await orch.execute_workflow("resumable", params={"year": 2010})
    assert failed.status == "failed"
    frame = orch.store.workflow_frame()
    assert frame["params"].tolist() == [{"year": 2010, "region": "EU"}]
    assert orch.store.run_params(failed.run_id) == {"year": 2010, "region": "EU"}
    with pytest.raises(ResumeError, match=r"ran with params .*'year': 2010.*\(year\)"):
        await orch.execute_workflow("resumable", resume="latest", params={"year": 2011})
    # no params=: the resumed run goes on with what its finished task saw
    resumed = await orch.execute_workflow("resumable", resume="latest")
    assert resumed.status == "completed"
    assert resumed.params == {"year": 2010, "region": "EU"}
    assert resumed.results() == {"first": 2010, "second": 2011}
    assert calls == [("first", 2010), ("second", 2010), ("second", 2010)]
    orch.close()
    with RunStore(path) as store:  # from another reader, after the orchestrator closed
        row = store.workflow_frame().iloc[0]
        assert row["params"] == {"year": 2010, "region": "EU"}
        assert row["parent_run_id"] is None or str(row["parent_run_id"]) == "<NA>"


async def test_a_default_edited_on_the_workflow_applies_to_its_next_run():
    orch = orchestrator()
    wf = sales()
    first = await orch.execute_workflow(wf)
    wf.params["year"] = 2010  # a notebook cell changes a default
    second = await orch.execute_workflow(wf)
    by_id = await orch.execute_workflow("sales")
    assert (first.results()["pick"], second.results()["pick"]) == ("EU-2007", "EU-2010")
    assert by_id.params == {"year": 2010, "region": "EU"}
