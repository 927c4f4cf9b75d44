"""Run parameters in specs: `params:` declares them, `--set params.NAME=...` overrides one."""

from __future__ import annotations

import json

import pytest
from cli_support import wfkit, write

from wfkit import SpecError
from wfkit.app.cli import main
from wfkit.app.spec import load_spec

PARAM_TASKS = '''
def pick(ctx):
    return f"{ctx.params['region']}-{ctx.params['year']}"
'''

SPEC = """\
workflow: sales
params:
  year: 2007
  region: EU
agents: {a: {capabilities: [x]}}
tasks:
  pick: {requires: [x], action: "param_tasks:pick"}
"""


@pytest.fixture
def params_dir(tmp_path):
    (tmp_path / "param_tasks.py").write_text(PARAM_TASKS)
    write(tmp_path, SPEC, "params.yaml")
    return tmp_path


def test_spec_params_reach_tasks_and_set_overrides_one(params_dir, capsys):
    code = main(["run", str(params_dir / "params.yaml"), "--json", "--no-progress",
                 "--set", "params.year=2010"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["task_results"]["pick"]["result"] == "EU-2010"
    assert data["params"] == {"year": 2010, "region": "EU"}


def test_the_real_command_prints_and_stores_the_params(params_dir):
    out = wfkit("run", "params.yaml", "--no-progress", "--store", "runs.db",
                "--set", "params.region=US", cwd=params_dir)
    assert out.returncode == 0, out.stderr
    assert "params: year=2007, region='US'" in out.stdout
    from wfkit import RunStore

    with RunStore(params_dir / "runs.db") as store:
        assert store.workflow_frame()["params"].tolist() == [{"year": 2007, "region": "US"}]


def test_an_undeclared_param_in_set_is_refused_with_a_did_you_mean(params_dir, capsys):
    code = main(["run", str(params_dir / "params.yaml"), "--set", "params.yeer=2010"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--set params.yeer: no parameter 'yeer': did you mean 'year'?" in err
    with pytest.raises(SpecError, match="the spec declares none: add them under 'params:'"):
        load_spec({"workflow": "w", "agents": {"a": {}}, "tasks": {"t": {}}},
                  ["params.year=1"])


def test_params_must_be_a_mapping_named_at_its_line(params_dir):
    path = write(params_dir, "workflow: w\nparams: [year]\nagents: {a: {}}\ntasks: {t: {}}\n",
                 "bad.yaml")
    with pytest.raises(SpecError, match=r"bad.yaml, line 2: params must be a mapping"):
        load_spec(path)
    assert load_spec(params_dir / "params.yaml").params == {"year": 2007, "region": "EU"}
