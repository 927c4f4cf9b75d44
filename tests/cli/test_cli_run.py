"""`wfkit run`: the real command in a child process, and main() in-process."""

from __future__ import annotations

import json
import sqlite3

import pytest
from cli_support import TASKS, wfkit, write

from wfkit.app.cli import main


def test_run_prints_a_table_and_exits_zero(spec_dir):
    out = wfkit("run", "spec.yaml", "--no-progress", cwd=spec_dir)
    assert out.returncode == 0, out.stderr
    assert "sales_report run " in out.stdout and ": completed, 3/3 tasks completed" in out.stdout
    assert "report by analyst" in out.stdout  # the agent's handler ran the action-less task
    assert out.stderr == ""


def test_run_json_has_each_task_status_and_result(spec_dir):
    out = wfkit("run", str(spec_dir / "spec.yaml"), "--json")  # any cwd: modules beside the spec
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "completed" and data["workflow_id"] == "sales_report"
    assert len(data["run_id"]) == 12
    tr = data["task_results"]
    assert tr["load"] == {**tr["load"], "status": "completed", "result": [0, 1, 2, 3],
                          "agent_id": "analyst", "attempts": 1}
    assert tr["total"]["result"] == 6 and tr["total"]["agent_id"] == "writer"
    assert "exception" not in tr["load"]


def test_set_overrides_values_and_json_reflects_them(spec_dir, capsys):
    code = main(["run", str(spec_dir / "spec.yaml"), "--json", "--no-progress",
                 "--set", "tasks.load.args.n=10", "--set", "policy=round_robin"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["task_results"]["load"]["result"] == list(range(10))
    assert data["task_results"]["total"]["result"] == 45


def test_failed_run_exits_one_with_error_and_skips(spec_dir, capsys):
    write(spec_dir, """\
        workflow: w
        agents: {a: {capabilities: [x]}}
        tasks:
          bad: {requires: [x], action: "spec_tasks:boom"}
          after_bad: {requires: [x], after: [bad], action: "spec_tasks:load"}
          fine: {requires: [x], action: "spec_tasks:load"}
        """, "fail.yaml")
    code = main(["run", str(spec_dir / "fail.yaml"), "--json", "--no-progress"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    tr = data["task_results"]
    assert tr["bad"]["status"] == "failed" and "kaput" in tr["bad"]["error"]
    assert tr["after_bad"]["status"] == "skipped"
    assert tr["fine"]["status"] == "completed"


def test_a_failed_run_shows_the_users_line_and_keeps_the_traceback(spec_dir):
    write(spec_dir, """\
        workflow: w
        agents: {a: {capabilities: [x]}}
        tasks:
          bad: {requires: [x], action: "spec_tasks:boom"}
          fine: {requires: [x], action: "spec_tasks:load"}
        """, "fail.yaml")
    out = wfkit("run", "fail.yaml", "--no-progress", cwd=spec_dir)
    assert out.returncode == 1
    boom = next(i for i, ln in enumerate(TASKS.splitlines(), 1) if "raise RuntimeError" in ln)
    assert "bad failed: RuntimeError: kaput" in out.stdout
    assert f"  at spec_tasks.py:{boom} in boom: raise RuntimeError(\"kaput\")" in out.stdout
    assert "Traceback" not in out.stdout  # the line, not the engine's frames
    data = json.loads(wfkit("run", "fail.yaml", "--json", cwd=spec_dir).stdout)
    tb = data["task_results"]["bad"]["traceback"]
    assert tb.startswith("Traceback") and "spec_tasks.py" in tb and "kaput" in tb


def test_store_records_the_run_and_resume_skips_finished_tasks(spec_dir):
    log = spec_dir / "attempts.log"
    write(spec_dir, f"""\
        workflow: resumable
        agents: {{a: {{capabilities: [x], capacity: 2}}}}
        tasks:
          first: {{requires: [x], action: "spec_tasks:flaky", args: {{fail_times: 0, log: "{log}"}}}}
          second: {{requires: [x], after: [first], action: "spec_tasks:flaky",
                   args: {{fail_times: 5, log: "{log}"}}}}
        """, "resume.yaml")
    out = wfkit("run", "resume.yaml", "--store", "runs.db", "--json", cwd=spec_dir)
    assert out.returncode == 1
    run_id = json.loads(out.stdout)["run_id"]
    with sqlite3.connect(spec_dir / "runs.db") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    # fix the failing task with --set and resume: 'first' does not run again
    out = wfkit("run", "resume.yaml", "--store", "runs.db", "--resume", "--json",
                "--set", "tasks.second.args.fail_times=0", cwd=spec_dir)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["run_id"] == run_id
    assert data["task_results"]["first"]["resumed"] is True
    assert log.read_text().splitlines() == ["first 1", "second 1", "second 1"]


def test_retries_follow_the_spec(spec_dir, capsys):
    write(spec_dir, """\
        workflow: w
        agents: {a: {capabilities: [x]}}
        tasks:
          t: {requires: [x], action: "spec_tasks:flaky", retries: 2, args: {fail_times: 2}}
        """, "retry.yaml")
    assert main(["run", str(spec_dir / "retry.yaml"), "--json", "--no-progress",
                 "--set", "backoff=0"]) == 0
    assert json.loads(capsys.readouterr().out)["task_results"]["t"]["attempts"] == 3
    assert main(["run", str(spec_dir / "retry.yaml"), "--json", "--no-progress",
                 "--set", "backoff=0", "--set", "tasks.t.retries=1"]) == 1
    assert json.loads(capsys.readouterr().out)["task_results"]["t"]["status"] == "failed"


def test_simulated_handler_and_progress_bar_on_stderr(tmp_path):
    write(tmp_path, """\
        workflow: sim
        time_scale: 0.01
        agents: {a: {capabilities: [x], handler: simulated, capacity: 4}}
        tasks:
          a: {requires: [x], estimate: 20}
          b: {requires: [x], estimate: 20}
          c: {requires: [x], after: [a, b], estimate: 20}
        """)
    out = wfkit("run", "spec.yaml", "--progress", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "completed"  # stdout stays pure JSON
    assert "3/3" in out.stderr and "task" in out.stderr  # the bar went to stderr


@pytest.mark.parametrize(("text", "line", "message"), [
    ("workflow: w\nagents: {a: {capabilities: [x]}}\ntasks:\n  t: {requirs: [x]}\n",
     4, "unknown key 'requirs' in tasks.t: did you mean 'requires'"),
    ("workflow: w\nagents:\n  a: {capabilities: [x]}\ntasks:\n  t: {requires: [x],\n"
     "      action: 'no_such_module:f'}\n", 6, "does not import: ModuleNotFoundError"),
    ("workflow: w\nagents: {a: {capabilities: [x]}}\ntasks:\n"
     "  t1: {requires: [x], after: [t2], action: 'spec_tasks:load'}\n"
     "  t2: {requires: [x], after: [t1], action: 'spec_tasks:load'}\n",
     4, "cycle: t1 -> t2 -> t1"),
])
def test_spec_errors_name_file_line_and_fix_without_traceback(spec_dir, text, line, message):
    (spec_dir / "bad.yaml").write_text(text)
    out = wfkit("run", "bad.yaml", cwd=spec_dir)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.startswith(f"wfkit: error: bad.yaml, line {line}: "), out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_check_only_validates(spec_dir, capsys):
    assert main(["run", str(spec_dir / "spec.yaml"), "--check"]) == 0
    assert "OK, workflow 'sales_report' with 3 task(s) and 2 agent(s)" in capsys.readouterr().out


def test_resume_without_a_store_is_a_clear_error(spec_dir, capsys):
    assert main(["run", str(spec_dir / "spec.yaml"), "--resume"]) == 2
    assert "--resume needs a run store" in capsys.readouterr().err


def test_help_on_each_command(capsys):
    for args in (["--help"], ["run", "--help"], ["report", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        out = capsys.readouterr().out
        assert exit_.value.code == 0 and "usage: wfkit" in out
        if args[0] == "run":
            assert "a spec looks like" in out
    out = wfkit("frobnicate")  # the real command, in a child process
    assert out.returncode == 2 and "invalid choice" in out.stderr
