# %% [markdown]
# # Collective agents on a real data set
#
# Agents with capabilities analyse the Gapminder data set (shipped with Plotly): one analysis
# task per continent, a report written by a generation agent and checked figure by figure by a
# validation agent. Around it, things go wrong the way they do in real pipelines, and the
# notebook shows them as they are:
#
# - a **flaky** source check that fails its first attempts and is **retried**,
# - a **failing agent** (the forecaster is offline), whose task fails and whose dependent
#   branch is **skipped**, while every independent branch still completes.
#
# The live dashboard follows the run; static figures at the end keep the final state.

# %% tags=["parameters"]
year = 2007  # the Gapminder year to report on (1952 ... 2007, every 5 years)
flaky_failures = 2  # attempts of the source check that fail before one succeeds
retries = 2  # extra attempts the source check may take
forecaster_online = False  # False: the forecasting agent fails, its branch is skipped
analyst_capacity = 2  # tasks each analyst runs at once

# %%
import json

import numpy as np

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Dashboard
from wfkit.app.demo import build_demo
from wfkit.plots import agent_load_figure, gantt_figure

wf, agents = build_demo(year)
for agent in agents:
    if agent.agent_id.startswith("analyst"):
        agent.capacity = analyst_capacity


@wf.task(requires=["analysis"], after=["load"], retries=retries, estimate=0.05)
def check_sources(ctx):
    """Check the data covers every continent (a flaky upstream: fails its first attempts)."""
    if ctx.attempt <= flaky_failures:
        raise ConnectionError(f"source check timed out (attempt {ctx.attempt})")
    df = ctx.inputs["load"]
    return {"continents": int(df.continent.nunique()), "rows": len(df)}


def forecast(ctx):
    """Fit a linear trend to world life expectancy and extrapolate ten years."""
    if not forecaster_online:
        raise RuntimeError("forecasting agent is offline: no model server answered")
    df = ctx.inputs["load"]
    world = df.groupby("year").lifeExp.mean()
    slope, intercept = np.polyfit(world.index, world.values, 1)
    return {"year": year + 10, "life_expectancy": round(float(slope * (year + 10) + intercept), 2)}


wf.task(forecast, requires=["forecasting"], after=["load"], estimate=0.1)


@wf.task(requires=["generation"], after=[forecast, check_sources], estimate=0.05)
def publish_forecast(ctx):
    """Publish the forecast next to the source check."""
    f = ctx.inputs["forecast"]
    return f"World life expectancy forecast for {f['year']}: {f['life_expectancy']} years"


agents.append(AgentProfile("forecaster", "Forecaster", ["forecasting"]))
orch = CollectiveAgentWorkflowOrchestrator(policy="least_loaded", backoff=0.01)
for agent in agents:
    orch.register_agent(agent)
metrics = wfkit.AdvancedWorkflowMetrics().attach(orch)
await orch.create_workflow(wf)
wf

# %% [markdown]
# The dashboard follows every run of the orchestrator: progress, status counts, the DAG
# coloured as tasks start, finish, fail and are skipped, each agent's load, and the latest
# events. Display it, then run.

# %%
dashboard = Dashboard(orch)
dashboard

# %%
result = await orch.execute_workflow(wf.workflow_id)
result

# %% [markdown]
# ## What happened, task by task
#
# `attempts` shows the retries; `error` says why a task failed or was skipped.

# %%
frame = result.frame()
frame[["task_id", "agent_id", "status", "attempts", "execution_time", "error"]]

# %%
print(result.results().get("report", "(no report: the report task did not complete)"))
print()
print("validation:", result.results().get("validate"))

# %% [markdown]
# Every attempt is a row in the metrics' task frame (a retried task has one row per attempt):

# %%
attempts = metrics.task_frame()
attempts[attempts.task_id.isin(["check_sources", "forecast"])][
    ["task_id", "agent_id", "attempt", "status", "error"]]

# %% [markdown]
# ## The final state, as static figures
#
# The dashboard above is live; these figures are drawn from the finished run, so they show
# the same thing in an exported report (no kernel needed).

# %%
wf.figure(result)

# %%
gantt_figure(attempts, title=f"Gantt chart: Gapminder {year}")

# %%
agent_load_figure(attempts, orch.agents, title="Agent load")

# %% tags=["summary"]
summary = {
    "year": year,
    "status": result["status"],
    "statuses": {t: r["status"] for t, r in result["task_results"].items()},
    "check_sources_attempts": result["task_results"]["check_sources"]["attempts"],
    "validation": result.results().get("validate"),
    "oceania": result.results().get("analyse_oceania", {}).get("life_expectancy"),
    "forecast": result.results().get("publish_forecast"),
    "dashboard_progress": [dashboard.progress.value, dashboard.progress.max],
}
print(json.dumps(summary))
