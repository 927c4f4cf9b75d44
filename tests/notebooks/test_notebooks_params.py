"""Each notebook run with papermill and non-default parameters: what they change, changes.

(The defaults are run by ``pytest --nbval-lax notebooks/`` in ``make test``.)
"""

from __future__ import annotations

import re

import pytest
from nbrun import injected, run_notebook

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # papermill


def test_01_quickstart_modules_and_top_n(tmp_path):
    s, out = run_notebook("01_quickstart.ipynb", tmp_path, modules=["string", "glob"], top_n=3,
                          analysts=3)
    assert "top_n = 3" in injected(out)
    assert s["status"] == "completed"
    assert s["tasks"] == ["count_glob", "count_string", "merge", "sources", "top_words"]
    assert s["params"] == {"top_n": 3, "min_length": 4}  # papermill's value reached params=
    assert len(s["top_words"]) == 3
    assert s["max_concurrency_analyst"] == 3
    # the loop: everything runs once; an edited task runs with what follows it; a broken one
    # fails alone; once fixed, only it runs; a new top_n runs only the task that reads it
    assert s["ran"] == {"first": ["count_glob", "count_string", "merge", "sources", "top_words"],
                        "edited": ["merge", "top_words"], "fixed": ["top_words"],
                        "more": ["top_words"]}
    assert s["broken"] == {"top_words": "failed"}
    task, at, line = s["failure"]  # raise_for_status(): the task, its error, the user's line
    assert task == "  task 'top_words' failed: KeyError: 'merged'"
    assert re.fullmatch(r"    at Cell In\[\d+\], line 5 in top_words", at), at
    assert line.strip() == 'return dict(ctx.inputs["merged"].most_common(ctx.params["top_n"]))'
    assert s["calls"] == {"sources": 1, "count_string": 1, "count_glob": 1, "merge": 2,
                          "top_words": 5}


def test_02_collective_agents_year_retries_and_forecaster(tmp_path):
    s, _ = run_notebook("02_collective_agents.ipynb", tmp_path, year=1952, flaky_failures=1,
                        forecaster_online=True)
    assert s["year"] == 1952 and s["oceania"] == 69.17  # other year, other numbers
    assert s["check_sources_attempts"] == 2  # one failure, then success
    assert s["status"] == "completed"  # the forecaster is online: nothing skipped
    assert s["statuses"]["forecast"] == "completed"
    assert s["forecast"].startswith("World life expectancy forecast for 1962:")
    assert s["validation"] == {"valid": True, "figures_checked": 5}
    assert s["dashboard_progress"] == [11, 11]
    # more failures than retries: the check fails and the branch after it is skipped
    s, _ = run_notebook("02_collective_agents.ipynb", tmp_path / "b", flaky_failures=3,
                        retries=2, forecaster_online=True)
    assert s["statuses"]["check_sources"] == "failed" and s["check_sources_attempts"] == 3
    assert s["statuses"]["publish_forecast"] == "skipped"
    assert s["statuses"]["report"] == "completed"


def test_06_monitoring_years_failures_and_a_kept_store(tmp_path):
    store = tmp_path / "history.db"
    s, _ = run_notebook("06_monitoring.ipynb", tmp_path, years=[1962, 1977], fail_every=2,
                        store_path=str(store), analyst_capacity=1)
    assert s["runs"] == 2 and s["statuses"] == ["completed", "failed"]
    assert s["max_load"]["analyst-1"] == 1
    # the file outlives the notebook: a second run adds to the same history
    s, _ = run_notebook("06_monitoring.ipynb", tmp_path / "b", years=[2002], fail_every=0,
                        store_path=str(store))
    assert s["runs"] == 3 and s["statuses"] == ["completed", "failed", "completed"]
    from wfkit import RunStore

    with_history = RunStore(store)
    try:
        assert list(with_history.workflow_frame().run_id) == _ids(store)
    finally:
        with_history.close()


def _ids(store):
    import sqlite3

    with sqlite3.connect(store) as db:
        return [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY started_at")]


def test_03_integration_recovering_service_and_threshold(tmp_path):
    s, _ = run_notebook("03_integration.ipynb", tmp_path, orders=6, big_order=300,
                        audit_down_for=1, max_attempts=3)
    assert s["sent"] == 7 and s["big"] == 2  # every third order is big
    # the audit service refuses once, then the retry gets through: only the invalid order
    # is dead-lettered, and the replay cannot fix it
    assert s["dead_lettered_before_replay"] == 1 and s["left_dead"] == 1
    assert s["audited"] == s["big"] and s["queued"] == s["big"]
    assert s["db_rows"] == s["db_distinct"] == 6
    # a service that stays down past the retries: big orders are dead-lettered, then replayed
    s, _ = run_notebook("03_integration.ipynb", tmp_path / "b", orders=6, big_order=300,
                        max_attempts=2)
    assert s["dead_lettered_before_replay"] == s["big"] + 1
    assert s["replay"]["delivered"] == s["big"] and s["audited"] == s["big"]
    assert s["db_rows"] == s["db_distinct"] == 6  # replay did not duplicate rows


def test_04_coordination_failure_threshold_and_contenders(tmp_path):
    s, _ = run_notebook("04_coordination.ipynb", tmp_path, year=1952, gap_threshold=100.0,
                        fail_parallel=True, contenders=9)
    assert "In 1952 life expectancy was highest in Oceania" in s["brief"]
    assert s["parallel"]["median_gdpPercap"] == "failed"
    assert s["parallel"]["median_lifeExp"] == "completed"
    assert s["alert"] == "skipped"  # the gap is below the raised threshold
    assert s["countries"] == s["expected_countries"] == 142
    assert s["served_in_order"] is True and s["acquisitions"] == 9
    assert s["strategies"] == {"merge": "Alice's title", "last_writer_wins": "Bob's title",
                               "first_writer_wins": "Alice's title", "manual": "Bob's title"}


def test_05_optimization_sweep_parameters(tmp_path):
    s, _ = run_notebook("05_optimization_experiments.ipynb", tmp_path, policies=["heft",
                        "round_robin"], pool_sizes=[1, 3], seeds=3, training_runs=2,
                        work_scale=0.5, trace="methylseq", trace_agents=2)
    assert s["policies"] == ["heft", "round_robin"] and s["workers"] == [1, 3]
    assert s["variants"] == ["heft / 1 workers", "heft / 3 workers", "round_robin / 1 workers",
                             "round_robin / 3 workers"]
    assert s["rows"] == 4 * 3 and s["seeds"] == [0, 1, 2]
    assert s["training_runs"] == 2
    assert s["best"].endswith("/ 3 workers")  # more workers beat one on this wide graph
    # the real trace: the one asked for, planned with a certified gap, the policies compared
    t = s["trace"]
    assert (t["name"], t["tasks"], t["agents"]) == ("methylseq", 36, 2)
    assert 0 <= t["plan_gap"] < 1 and t["plan_makespan"] > 0
    assert t["policies"] == ["heft", "round_robin"] and t["rows"] == 2
