"""The spec loader: every error names the file and line and says what to fix; fuzzed."""

from __future__ import annotations

import string

import pytest
import yaml
from cli_support import SPEC, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfkit.app.spec import load_spec
from wfkit.errors import SpecError


def test_valid_spec_builds_model_objects(spec_dir):
    spec = load_spec(spec_dir / "spec.yaml")
    assert spec.workflow_id == "sales_report" and spec.policy == "least_loaded"
    tasks = {t.task_id: t for t in spec.tasks}
    assert tasks["report"].dependencies == ["load"] and tasks["report"].priority == 5
    assert tasks["report"].timeout == 30 and tasks["load"].retries == 2
    assert tasks["load"].action.keywords == {"n": 4}
    agents = {a.agent_id: a for a in spec.agents}
    assert agents["analyst"].capacity == 2 and agents["analyst"].capability_set == {"analysis"}


@pytest.mark.parametrize(("text", "line", "match"), [
    ("", 1, "the spec is empty"),
    ("workflow: [unclosed\n", 2, "not valid YAML"),
    ("- a\n- b\n", 1, "a spec is a mapping"),
    ("workflow: w\nagents: {}\n", 1, "the spec has no 'tasks'"),
    ("workflow: w\nworkflow: v\nagents: {}\ntasks: {}\n", 2, "key 'workflow' appears twice"),
    ("workflow: w\npolicy: fastests\nagents: {a: {capabilities: [x]}}\ntasks: {t: {}}\n", 2,
     "unknown policy 'fastests': did you mean 'fastest'"),
    ("workflow: w\nagents:\n  a: {capabilities: [x], capacity: 0}\ntasks: {t: {}}\n", 3,
     "agents.a.capacity must be >= 1"),
    ("workflow: w\nagents:\n  a: {capabilities: [x], capacity: two}\ntasks: {t: {}}\n", 3,
     "capacity must be a whole number, got the text 'two'"),
    ("workflow: w\nagents: {a: {capabilities: [x], handler: simulated}}\ntasks:\n"
     "  t: {requires: [y]}\n", 4, "no available agent can run task 't' \\(needs y"),
    ("workflow: w\nagents: {a: {capabilities: [x]}}\ntasks:\n  t: {requires: [x]}\n", 4,
     "has no action, and agent\\(s\\) 'a' that could run it have no handler"),
    ("workflow: w\nagents: {a: {capabilities: [x]}}\ntasks:\n  t: {action: 'spec_tasks:nope'}\n",
     4, "module 'spec_tasks' has no 'nope'"),
    ("workflow: w\nagents: {a: {capabilities: [x]}}\ntasks:\n"
     "  t: {action: 'spec_tasks:NOT_CALLABLE'}\n", 4, "is a int, not a function"),
    ("workflow: w\nagents: {a: {capabilities: [x]}}\ntasks:\n  t: {action: 'spec_tasks'}\n",
     4, "must look like 'package.module:function'"),
    ("workflow: w\nagents: {a: {capabilities: [x], handler: simulated}}\ntasks:\n"
     "  t: {after: [t]}\n", 4, "cycle: t -> t"),
    ("workflow: w\nagents: {a: {capabilities: [x], handler: simulated}}\ntasks:\n"
     "  t: {timeout: 0}\n", 4, "tasks.t.timeout must be > 0"),
    ("workflow: w\nagents: {a: {capabilities: [x], handler: simulated}}\ntasks:\n"
     "  t: {args: {n: 1}}\n", 4, "has args but no action"),
    ("workflow: w\nagents: {a: {capabilities: [x], handler: simulated}}\ntasks:\n"
     "  t: {}\n  u: {map: tt}\n", 5, "maps over 'tt', which is not another task: did you "
     "mean 't'"),
    ("workflow: w\nagents: {a: {capabilities: [x], handler: simulated}}\ntasks:\n"
     "  t: {}\n  u:\n    after: [t]\n    when: {field: inputs.t, op: '~', value: 1}\n", 7,
     "unknown op '~'"),
    ("workflow: w\nagents: {a: {capabilities: [x], handler: simulated}}\ntasks:\n"
     "  t: {}\n  u: {after: [t], trigger: all_sucess}\n", 5,
     "unknown trigger 'all_sucess': did you mean 'all_success'"),
    ("workflow: 2024-13-45\nagents: {}\ntasks: {}\n", 1, "cannot be read"),
    ("a: &x [*x]\n", 1, "not valid YAML|too large or nested"),
    ("workflow: !!python/object:os.system x\n", 1, "not valid YAML"),
])
def test_errors_name_the_line_and_the_fix(spec_dir, text, line, match):
    path = write(spec_dir, text, "bad.yaml")
    with pytest.raises(SpecError, match=match) as info:
        load_spec(path)
    assert info.value.path == str(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}, line {line}: ")


async def test_map_when_and_trigger_in_a_spec_run(spec_dir):
    from wfkit import CollectiveAgentWorkflowOrchestrator

    path = write(spec_dir, (
        "workflow: dynamic\n"
        "agents: {a: {capabilities: [analysis], capacity: 4}}\n"
        "tasks:\n"
        "  load: {requires: [analysis], action: 'spec_tasks:load', args: {n: 3}}\n"
        "  each: {requires: [analysis], map: load, action: 'spec_tasks:analyse'}\n"
        "  big:\n"
        "    requires: [analysis]\n"
        "    after: [load]\n"
        "    action: 'spec_tasks:analyse'\n"
        "    when: {field: inputs.load.2, op: '>', value: 10}\n"
        "  join: {requires: [analysis], after: [each, big], action: 'spec_tasks:analyse',\n"
        "         trigger: none_failed}\n"
    ), "dynamic.yaml")
    spec = load_spec(path)
    tasks = {t.task_id: t for t in spec.tasks}
    assert tasks["each"].map == "load" and tasks["each"].dependencies == ["load"]
    assert tasks["join"].trigger == "none_failed" and tasks["big"].when["op"] == ">"
    orch = CollectiveAgentWorkflowOrchestrator(progress=False)
    for agent in spec.agents:
        orch.register_agent(agent)
    await orch.create_workflow(spec.workflow_id, spec.tasks)
    result = await orch.execute_workflow("dynamic")
    orch.close()
    status = {t: r["status"] for t, r in result["task_results"].items()}
    assert status["big"] == "skipped" and status["join"] == "completed"
    assert result["task_results"]["each"]["result"] == [f"each[{i}] by a" for i in range(3)]


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="a folder, not a spec file"):
        load_spec(tmp_path)
    (tmp_path / "latin1.yaml").write_bytes(b"workflow: caf\xe9\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(tmp_path / "latin1.yaml")


def test_set_errors_name_the_override(spec_dir):
    with pytest.raises(SpecError, match="^--set policy: --set needs key=value"):
        load_spec(spec_dir / "spec.yaml", ["policy"])
    with pytest.raises(SpecError, match="workflow is a str, not a mapping"):
        load_spec(spec_dir / "spec.yaml", ["workflow.x=1"])
    with pytest.raises(SpecError, match="tasks.load.retries must be >= 0"):
        load_spec(spec_dir / "spec.yaml", ["tasks.load.retries=-1"])


def test_merge_keys_and_mapping_source(spec_dir):
    text = SPEC + "  extra: {<<: *base, after: [load]}\n"
    text = text.replace("load:   {requires", "load:   &base {requires")
    spec = load_spec(write(spec_dir, text, "merge.yaml"))
    extra = {t.task_id: t for t in spec.tasks}["extra"]
    assert extra.retries == 2 and extra.dependencies == ["load"]
    spec = load_spec(yaml.safe_load(SPEC.replace("spec_tasks:", "json:").replace(
        ", handler: \"json:analyse\"", ", handler: simulated")
        .replace("json:load", "json:dumps").replace("json:total", "json:dumps")
        .replace(", args: {n: 4}", "")))
    assert spec.path == "<spec>" and len(spec.tasks) == 3


# -- fuzzing ---------------------------------------------------------------------------------

_names = st.sampled_from(["workflow", "agents", "tasks", "policy", "requires", "after",
                          "action", "handler", "capabilities", "capacity", "retries", "timeout",
                          "priority", "estimate", "args", "a", "t", "load", "x", "<<"])
_refs = st.sampled_from(["spec_tasks:load", "spec_tasks:boom", "spec_tasks:NOT_CALLABLE",
                         "nope:x", "spec_tasks", ":", "simulated", "least_loaded", "fastest"])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**20),
                     st.floats(allow_nan=True), st.text(max_size=8), _refs, _names)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_names, inner, max_size=5)), max_leaves=25)


def _loads_or_spec_error(path, overrides=()):
    try:
        load_spec(path, overrides)
    except SpecError as exc:
        assert str(exc).startswith(str(path)) or str(exc).startswith("--set")


@pytest.mark.slow  # a long fuzz
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(_names, _values, max_size=6))
def test_fuzz_structured_specs(spec_dir, data):
    path = spec_dir / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    _loads_or_spec_error(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=string.printable + "{}[]:&*!|>-?#é\u2028", max_size=200))
def test_fuzz_raw_text(spec_dir, text):
    path = spec_dir / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    _loads_or_spec_error(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(SPEC)), insert=st.text(max_size=6),
       overrides=st.lists(st.text(alphabet="abcdefgkloprstu.=[]{}0123 -", max_size=20),
                          max_size=3))
def test_fuzz_mutated_valid_spec(spec_dir, cut, insert, overrides):
    path = spec_dir / "fuzz.yaml"
    path.write_text(SPEC[:cut] + insert + SPEC[cut:])
    _loads_or_spec_error(path, overrides)
