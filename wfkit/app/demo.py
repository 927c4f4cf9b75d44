"""The demo behind ``make demo`` / ``wfkit demo``: agents analyse a real data set.

Gapminder (shipped with Plotly) is loaded by an analysis agent; one analysis task per continent
runs concurrently; a generation agent writes a short report from those numbers; a validation
agent recomputes every figure quoted in the report from the raw data and checks it. Nothing
here is simulated: each task does the work it names.
"""

from __future__ import annotations

import re
from typing import Any

from wfkit.agents import (
    AgentCapability,
    AgentProfile,
    CollectiveAgentWorkflowOrchestrator,
    RunResult,
    TaskContext,
    Workflow,
)

__all__ = ["build_demo", "run_demo"]


def build_demo(year: int = 2007) -> tuple[Workflow, list[AgentProfile]]:
    """The demo's workflow and agents, for notebooks and the command line alike."""
    wf = Workflow("gapminder_report")

    @wf.task(requires=[AgentCapability.ANALYSIS], estimate=0.2, priority=10)
    def load(ctx: TaskContext) -> Any:
        """Load the Gapminder data set."""
        import plotly.express as px

        return px.data.gapminder()

    continent_tasks = []
    for continent in ("Africa", "Americas", "Asia", "Europe", "Oceania"):

        def analyse(ctx: TaskContext, continent: str = continent) -> dict[str, Any]:
            df = ctx.inputs["load"]
            rows = df[df.continent == continent]
            now, then = rows[rows.year == year], rows[rows.year == rows.year.min()]
            weights = now["pop"] / now["pop"].sum()
            return {
                "continent": continent,
                "countries": int(now.country.nunique()),
                "population": int(now["pop"].sum()),
                "life_expectancy": round(float((now.lifeExp * weights).sum()), 2),
                "life_expectancy_gain": round(
                    float(now.lifeExp.mean() - then.lifeExp.mean()), 2
                ),
                "richest": str(now.loc[now.gdpPercap.idxmax(), "country"]),
            }

        continent_tasks.append(
            wf.task(
                analyse,
                task_id=f"analyse_{continent.lower()}",
                description=f"Analyse {continent} in {year}",
                requires=[AgentCapability.ANALYSIS],
                after=[load],
                estimate=0.1,
            )
        )

    @wf.task(requires=[AgentCapability.GENERATION], after=continent_tasks, estimate=0.1)
    def report(ctx: TaskContext) -> str:
        """Write the report from the continent figures."""
        stats = sorted(ctx.inputs.values(), key=lambda s: -s["life_expectancy"])
        lines = [f"Gapminder {year}: population-weighted life expectancy by continent"]
        for s in stats:
            lines.append(
                f"- {s['continent']}: {s['life_expectancy']:.2f} years over {s['countries']} "
                f"countries (population {s['population']:,}), up {s['life_expectancy_gain']:.2f} "
                f"years on average since 1952; richest per head: {s['richest']}"
            )
        gap = stats[0]["life_expectancy"] - stats[-1]["life_expectancy"]
        lines.append(
            f"The gap between {stats[0]['continent']} and {stats[-1]['continent']} is "
            f"{gap:.2f} years."
        )
        return "\n".join(lines)

    @wf.task(requires=[AgentCapability.VALIDATION], after=[report, load], estimate=0.1)
    def validate(ctx: TaskContext) -> dict[str, Any]:
        """Recompute every figure in the report from the raw data."""
        df, text = ctx.inputs["load"], ctx.inputs["report"]
        now = df[df.year == year]
        checked = 0
        for continent, value, countries in re.findall(
            r"- (\w+): ([\d.]+) years over (\d+) countries", text
        ):
            rows = now[now.continent == continent]
            expected = (rows.lifeExp * rows["pop"] / rows["pop"].sum()).sum()
            if abs(expected - float(value)) > 0.01 or len(rows) != int(countries):
                raise ValueError(f"report says {value} for {continent}, data says {expected:.2f}")
            checked += 1
        if checked != now.continent.nunique():
            raise ValueError(f"report covers {checked} continents, data has {now.continent.nunique()}")
        return {"valid": True, "figures_checked": checked}

    agents = [
        AgentProfile("analyst-1", "Analyst One", [AgentCapability.ANALYSIS], capacity=2),
        AgentProfile("analyst-2", "Analyst Two", [AgentCapability.ANALYSIS], capacity=2),
        AgentProfile("writer", "Report Writer", [AgentCapability.GENERATION]),
        AgentProfile("checker", "Fact Checker", [AgentCapability.VALIDATION]),
    ]
    return wf, agents


async def run_demo(year: int = 2007, *, store: Any = None, **execute_kwargs: Any) -> RunResult:
    """Run the demo on a fresh orchestrator (recording it in ``store``, a RunStore or a path,
    when given) and return the RunResult."""
    wf, agents = build_demo(year)
    orch = CollectiveAgentWorkflowOrchestrator(store=store)
    try:
        for agent in agents:
            orch.register_agent(agent)
        await orch.create_workflow(wf)
        return await orch.execute_workflow(wf.workflow_id, **execute_kwargs)
    finally:
        orch.close()

