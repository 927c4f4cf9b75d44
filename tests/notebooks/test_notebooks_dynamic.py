"""07_dynamic_workflows run with papermill and other parameters: map, branch, sub-workflows."""

from __future__ import annotations

import pytest
from nbrun import injected, run_notebook

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # papermill

CONTINENTS = {"Africa", "Americas", "Asia", "Europe", "Oceania"}


def test_07_the_other_branch_another_year_and_one_analyst_slot(tmp_path):
    s, out = run_notebook("07_dynamic_workflows.ipynb", tmp_path, year=1952, ranking="wealth",
                          min_population=5_000_000, analysts=1)
    assert 'ranking = "wealth"' in injected(out)
    assert s["status"] == "completed"
    # the map's width is the data's: countries of 5 million people or more in 1952
    import plotly.express as px

    data = px.data.gapminder()
    assert s["countries"] == int(((data.year == 1952) & (data["pop"] >= 5_000_000)).sum())
    assert (s["taken"], s["skipped"]) == (["by_wealth"], ["by_life"])
    assert set(s["continents"]) <= CONTINENTS and s["child_runs"] == len(s["continents"])
    assert sorted(s["child_params"]) == sorted(s["continents"])
    assert all(t.startswith("report[") for t in s["children_of_report"])
    # ranked by wealth: each continent's report names its richest country in 1952 first
    for continent, leader in s["leaders"].items():
        rows = data[(data.year == 1952) & (data.continent == continent)]
        assert leader == rows.loc[rows.gdpPercap.idxmax(), "country"]
    assert s["again"] == {"params": {"year": 1952, "min_population": 5_000_000,
                                     "ranking": "life"}, "status": "completed"}
