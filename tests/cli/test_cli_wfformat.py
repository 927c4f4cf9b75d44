"""``wfkit run TRACE.json --simulate``: a WfFormat trace simulated and planned from the command
line, each makespan with its certified gap; a trace is never run, and a bad one is named."""

from __future__ import annotations

import json

import pytest
from cli_support import wfkit, write

from wfkit import AgentProfile, load_wfformat, plan_schedule, simulate, wfformat_durations
from wfkit.app.cli import main
from wfkit.wfformat import example_trace

TRACE = example_trace("1000genome")


@pytest.mark.slow  # CP-SAT
def test_a_trace_simulated_on_16_agents_prints_makespans_and_certified_gaps():
    done = wfkit("run", str(TRACE), "--simulate", "--agents", "16")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "328 tasks, 424 dependencies, on 16 agent(s) with 16 slot(s)" in lines[0]
    assert "recorded makespan 5138 s" in lines[1]
    shown = [ln.split()[:2] for ln in lines[2:]]
    assert shown == [["simulated", "least_loaded"], ["simulated", "heft"],
                     ["planned", "heft"], ["planned", "list"]]
    assert all("certified gap" in ln and "lower bound" in ln for ln in lines[2:])


def test_the_figures_are_those_of_simulate_and_plan_schedule(capsys):
    code = main(["run", str(TRACE), "--simulate", "--agents", "4", "--policy", "round_robin",
                 "--method", "heft", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["tasks"], out["dependencies"], out["agents"], out["slots"]) == (328, 424, 4, 4)
    assert out["recorded_makespan"] == 5138
    wf, durations = load_wfformat(TRACE), wfformat_durations(TRACE)
    agents = [AgentProfile(f"p{i}", f"p{i}", ["default"]) for i in range(1, 5)]
    sim = simulate(wf.tasks, agents, policy="round_robin", durations=durations)
    plan = plan_schedule(wf.tasks, agents, method="heft", durations=durations)
    [s, p] = out["schedules"]
    assert (s["kind"], s["name"], p["kind"], p["name"]) == ("simulated", "round_robin",
                                                            "planned", "heft")
    assert s["makespan"] == pytest.approx(sim.makespan)
    assert p["makespan"] == pytest.approx(plan.makespan)
    for row, sched in ((s, sim), (p, plan)):
        assert row["lower_bound"] == pytest.approx(sched.lower_bound)
        assert row["gap"] == pytest.approx(row["makespan"] / row["lower_bound"] - 1)
        assert row["lower_bound"] >= sum(durations.values()) / 4 - 1e-6  # at least work / P


def test_the_traces_machines_are_the_default_agents(capsys):
    assert main(["run", str(TRACE), "--simulate", "--json", "--method", "list"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["slots"] == 48 * out["agents"] and out["agents"] >= 2


def test_a_trace_is_not_run_and_a_bad_one_is_named(tmp_path, capsys):
    assert main(["run", str(TRACE)]) == 2
    assert "is a WfFormat trace (328 tasks)" in capsys.readouterr().err
    doc = json.loads(TRACE.read_text())
    doc["workflow"]["execution"]["tasks"][3]["runtimeInSeconds"] = "slow"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["run", str(bad), "--simulate", "--agents", "2"]) == 2
    err = capsys.readouterr().err
    tid = doc["workflow"]["execution"]["tasks"][3]["id"]
    assert str(bad) in err and f"task {tid!r}" in err and "runtimeInSeconds" in err
    assert main(["run", str(TRACE), "--agents", "2"]) == 2
    assert "add --simulate" in capsys.readouterr().err


def test_a_spec_simulates_with_its_estimates(tmp_path, capsys):
    spec = write(tmp_path, """
        workflow: tiny
        agents:
          worker: {capabilities: [compute], capacity: 2, handler: simulated}
        tasks:
          a: {requires: [compute], estimate: 2}
          b: {requires: [compute], after: [a], estimate: 3}
          c: {requires: [compute], after: [a], estimate: 1}
        """)
    assert main(["run", str(spec), "--simulate", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recorded_makespan"] is None and out["slots"] == 2
    assert {r["makespan"] for r in out["schedules"]} == {5.0}
    assert all(r["gap"] == 0 and r["lower_bound"] == 5.0 for r in out["schedules"])
