"""The STG reader, and plans checked against the set's proven optimal schedule lengths."""

import pytest
from optimization_checks import STG_ROOT, check_schedule
from stg_format import identical_agents, parse_stg, read_stg, read_stg_table

import wfkit
from wfkit import ValidationError

SAMPLE = """\
# a tiny graph: 0 and 5 are the dummy entry and exit
4
0 0 0
1 3 1 0
2 2 1 1
3 4 1 1
4 1 2 2 3
5 0 1 4
"""


def test_parse_stg_drops_the_dummies_by_default():
    tasks = parse_stg(SAMPLE)
    assert [t.task_id for t in tasks] == ["1", "2", "3", "4"]
    assert [t.estimated_duration for t in tasks] == [3.0, 2.0, 4.0, 1.0]
    assert [t.dependencies for t in tasks] == [[], ["1"], ["1"], ["2", "3"]]
    with_dummies = parse_stg(SAMPLE, dummies=True)
    assert len(with_dummies) == 6 and with_dummies[1].dependencies == ["0"]
    s = wfkit.plan_schedule(tasks, identical_agents(2), method="exact")
    assert s.makespan == 8.0 and s.optimal  # 3 + max(2, 4) + 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty STG file"),
        ("2\n0 0 0\n1 5 1 0\n", "ends before task 2"),
        ("1\n0 0 0\n2 5 1 0\n3 0 1 2\n", "expected task 1, found 2"),
        ("1\n0 0 0\n1 five 1 0\n", "'five' is not an integer"),
    ],
)
def test_malformed_stg_files(text, message):
    with pytest.raises(ValidationError, match=message):
        parse_stg(text, name="bad.stg")


def test_reference_table_rows(tmp_path):
    table = tmp_path / "Case50_4_OPT.csv"
    table.write_text("50/rand0000.stg,4,66\n50/rand0009.stg,4,132,134\n")
    refs = read_stg_table([table])
    assert refs[("50/rand0000.stg", 4)].proven and refs[("50/rand0000.stg", 4)].best == 66
    ref = refs[("50/rand0009.stg", 4)]
    assert not ref.proven and (ref.lower, ref.best) == (132, 134)


needs_stg = pytest.mark.skipif(
    not (STG_ROOT / "optimal_values").is_dir(),
    reason="the STG sample (../shared/benchmarks/stg next to the repository) is not present",
)

# small instances where the heuristics miss the optimum, so the solver has to work
CASES = [("50/rand0001.stg", 2), ("50/rand0004.stg", 2), ("50/rand0006.stg", 4),
         ("50/rand0000.stg", 8), ("50/rand0009.stg", 4), ("100/rand0003.stg", 4)]


@needs_stg
@pytest.mark.parametrize(("graph", "processors"), CASES)
def test_plans_against_the_table(graph, processors):
    refs = read_stg_table(sorted((STG_ROOT / "optimal_values").glob("*.csv")))
    ref = refs[(graph, processors)]
    tasks = read_stg(STG_ROOT / graph)
    agents = identical_agents(processors)
    assert wfkit.graph.lower_bound(tasks, agents) <= ref.lower
    for method in ("list", "heft"):
        s = wfkit.plan_schedule(tasks, agents, method=method)
        check_schedule(tasks, agents, s)
        assert ref.best <= s.makespan <= ref.best * 1.05
    exact = wfkit.plan_schedule(tasks, agents, method="exact", time_limit=10.0)
    check_schedule(tasks, agents, exact)
    assert exact.makespan == ref.best  # the optimum, or the best known value
    assert exact.lower_bound >= ref.lower or not exact.optimal
    if ref.proven:
        assert exact.lower_bound <= ref.lower
