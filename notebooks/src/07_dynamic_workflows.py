# %% [markdown]
# # Dynamic workflows
#
# The shape of these workflows is only known when they run. On the Gapminder data set:
#
# - **run parameters** (`Workflow(..., params=...)`, read as `ctx.params`) carry this
#   notebook's papermill parameters into the run;
# - a **map** (`@wf.task(map=...)`) scores every country, one child task per country of a
#   list computed at run time;
# - a **branch** (`when=`) picks one of two ways to rank them from a parameter, and a join
#   (`trigger=`) runs after whichever branch was taken;
# - a **sub-workflow** (`await ctx.run_workflow(...)`) reports on each continent, one child
#   run per continent, on the same agents.

# %% tags=["parameters"]
year = 2007  # the Gapminder year
min_population = 1_000_000  # countries with fewer people are left out
ranking = "life"  # "life": rank by life expectancy; "wealth": by GDP per capita (a branch)
top = 3  # countries each continent's report names
analysts = 2  # tasks the analyst agent runs at once

# %%
import json

import plotly.express as px

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Workflow

data = px.data.gapminder()  # shipped with Plotly: no network needed

# %% [markdown]
# ## A sub-workflow: one continent's report
#
# Its own parameters say which continent, year and measure. It is an ordinary workflow, so it
# can be run on its own; below, a task of the main workflow runs it once per continent.

# %%
continent_report = Workflow(
    "continent_report", params={"continent": "Europe", "year": year, "measure": "lifeExp"}
)


@continent_report.task(requires=["analysis"], estimate=0.05)
def rows(ctx):
    """The continent's countries in that year."""
    p = ctx.params
    return data[(data.continent == p["continent"]) & (data.year == p["year"])]


@continent_report.task(requires=["generation"], after=[rows], estimate=0.05)
def brief(ctx):
    """A line on the continent: its countries, mean and leaders by the measure."""
    df, measure = ctx.inputs["rows"], ctx.params["measure"]
    leaders = df.nlargest(top, measure)
    return {
        "continent": ctx.params["continent"],
        "countries": len(df),
        "mean": round(float(df[measure].mean()), 2),
        "leaders": leaders.country.tolist(),
    }


continent_report

# %% [markdown]
# ## The main workflow
#
# `countries` returns a list only known at run time; `score` maps over it (children
# `score[0]`, `score[1]`, ... each see `ctx.item`). The two ranking tasks have opposite
# `when=` conditions on the `ranking` parameter: one runs, the other is skipped with the
# reason. `rank` joins them with the trigger rule `none_failed_min_one_success` (run when no
# branch failed and at least one succeeded). `report` maps over the continents and runs the
# sub-workflow for each.

# %%
wf = Workflow(
    "world", params={"year": year, "min_population": min_population, "ranking": ranking}
)


@wf.task(requires=["analysis"], estimate=0.05)
def countries(ctx):
    """The countries big enough to count, that year."""
    now = data[(data.year == ctx.params["year"]) & (data["pop"] >= ctx.params["min_population"])]
    return sorted(now.country)


@wf.task(requires=["analysis"], map=countries, estimate=0.01)
def score(ctx):
    """One country's numbers that year."""
    row = data[(data.country == ctx.item) & (data.year == ctx.params["year"])].iloc[0]
    return {
        "country": ctx.item,
        "continent": row.continent,
        "lifeExp": float(row.lifeExp),
        "gdpPercap": float(row.gdpPercap),
    }


@wf.task(requires=["analysis"], after=[score], estimate=0.02,
         when={"field": "params.ranking", "op": "==", "value": "life"})
def by_life(ctx):
    """Rank by life expectancy."""
    return {"measure": "lifeExp", "order": sorted(ctx.inputs["score"], key=lambda s: -s["lifeExp"])}


@wf.task(requires=["analysis"], after=[score], estimate=0.02,
         when={"field": "params.ranking", "op": "==", "value": "wealth"})
def by_wealth(ctx):
    """Rank by GDP per capita."""
    return {"measure": "gdpPercap",
            "order": sorted(ctx.inputs["score"], key=lambda s: -s["gdpPercap"])}


@wf.task(requires=["analysis"], after=[by_life, by_wealth], estimate=0.01,
         trigger="none_failed_min_one_success")
def rank(ctx):
    """Whichever ranking ran (the other was skipped)."""
    return next(r for r in ctx.inputs.values() if r is not None)


@wf.task(requires=["analysis"], after=[rank], estimate=0.01)
def continents(ctx):
    """The continents, best ranked first."""
    return list(dict.fromkeys(s["continent"] for s in ctx.inputs["rank"]["order"]))


@wf.task(requires=["analysis"], map=continents, after=[rank], estimate=0.1)
async def report(ctx):
    """Run the continent's report as a sub-workflow and return its brief."""
    child = await ctx.run_workflow(
        continent_report,
        params={"continent": ctx.item, "year": ctx.params["year"],
                "measure": ctx.inputs["rank"]["measure"]},
    )
    return child.results()["brief"]


wf

# %% [markdown]
# One agent analyses, another writes. The analyst runs `analysts` tasks at once: a `report`
# child gives its slot back while its sub-workflow runs, so the sub-workflow's tasks can use
# it (with `analysts = 1` too).

# %%
orch = CollectiveAgentWorkflowOrchestrator()
orch.register_agent(AgentProfile("analyst", "Analyst", ["analysis"], capacity=analysts))
orch.register_agent(AgentProfile("writer", "Writer", ["generation"]))
metrics = wfkit.AdvancedWorkflowMetrics().attach(orch)

result = await orch.execute_workflow(wf)
result

# %% [markdown]
# The map made one task per country, and one per continent; the branch not taken says why it
# was skipped:

# %%
tasks = result.frame()
print(len([t for t in tasks.task_id if t.startswith("score[")]), "countries scored")
tasks[~tasks.task_id.str.startswith("score[")][["task_id", "status", "agent_id", "error"]]

# %%
for brief in result.results()["report"]:
    print(f"{brief['continent']:<9} {brief['countries']:>3} countries, mean {brief['mean']:>9}:",
          "; ".join(brief["leaders"]))

# %% [markdown]
# ## Every run, with its parameters and its parent
#
# Each sub-workflow run is a run of its own: it records the parameters it ran with and the
# run and task that started it (`parent_run_id`, `parent_task_id`), here and in a `RunStore`.

# %%
runs = metrics.workflow_frame()
runs[["run_id", "workflow_id", "status", "total_tasks", "params", "parent_run_id",
      "parent_task_id"]]

# %% [markdown]
# A run overrides the declared parameters for itself; a name the workflow does not declare is
# refused before anything runs.

# %%
other = "wealth" if ranking == "life" else "life"
again = await orch.execute_workflow(wf, params={"ranking": other}, progress=False)
print(again.params)
print({t: again.task_results[t]["status"] for t in ("by_life", "by_wealth", "rank")})
try:
    await orch.execute_workflow(wf, params={"rankin": other})
except wfkit.UnknownParameterError as exc:
    print(exc)

# %% tags=["summary"]
children = runs[runs.parent_run_id.notna()]
summary = {
    "status": result["status"],
    "countries": len(result.results()["score"]),
    "continents": [b["continent"] for b in result.results()["report"]],
    "taken": [t for t in ("by_life", "by_wealth")
              if result.task_results[t]["status"] == "completed"],
    "skipped": [t for t in ("by_life", "by_wealth")
                if result.task_results[t]["status"] == "skipped"],
    "leaders": {b["continent"]: b["leaders"][0] for b in result.results()["report"]},
    "child_runs": len(children),
    "children_of_report": sorted(set(children.parent_task_id.astype(str))),
    "child_params": sorted(p["continent"] for p in children.params),
    "again": {"params": again.params, "status": again["status"]},
}
orch.close()
print(json.dumps(summary))
