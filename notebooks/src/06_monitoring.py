# %% [markdown]
# # Monitoring: run history from a RunStore
#
# A `RunStore` is one SQLite file that records every run as it happens. History survives a
# kernel restart: here a few runs of the Gapminder workflow are recorded (one per year, some
# with a failing task), then the file is opened afresh, as after a restart, and the history is
# read back as pandas frames and drawn: success and duration across runs, the Gantt chart of a
# run, and each agent's load against its capacity.

# %% tags=["parameters"]
years = [1952, 1972, 1992, 2007]  # one run per year
fail_every = 3  # every n-th run has a failing validation task (0: never)
store_path = ""  # a file to keep the history in; empty: a temporary file
analyst_capacity = 2

# %%
import json
import os
import tempfile

import wfkit
from wfkit import CollectiveAgentWorkflowOrchestrator, RunStore
from wfkit.app.demo import build_demo
from wfkit.plots import agent_load_figure, gantt_figure, summary_figure

if not store_path:
    store_path = os.path.join(tempfile.mkdtemp(prefix="wfkit-monitoring-"), "runs.db")
store = RunStore(store_path)
orch = CollectiveAgentWorkflowOrchestrator(store=store, backoff=0.01)

run_ids = []
for i, year in enumerate(years, start=1):
    wf, agents = build_demo(year)
    if fail_every and i % fail_every == 0:
        def validate(ctx, year=year):
            raise ValueError(f"validation data for {year} is unavailable")
        wf["validate"].action = validate
    for agent in agents:
        agent.capacity = analyst_capacity if agent.agent_id.startswith("analyst") else 1
        if agent.agent_id not in orch.agents:
            orch.register_agent(agent)
        else:
            orch.agents[agent.agent_id].capacity = agent.capacity
    await orch.create_workflow(wf)
    result = await orch.execute_workflow(wf.workflow_id, progress=False)
    run_ids.append(result["run_id"])
    print(year, result["run_id"], result["status"], f"{result['makespan']:.2f} s")
orch.close()
store.close()

# %% [markdown]
# ## Reading the history back
#
# A new `RunStore` on the same file sees every run, as a fresh kernel would.

# %%
history = RunStore(store_path)
runs = history.workflow_frame()
runs[["run_id", "workflow_id", "status", "started_at", "duration", "total_tasks",
      "successful_tasks", "failed_tasks", "skipped_tasks"]]

# %%
summary_figure(runs)

# %% [markdown]
# ## One run in detail
#
# The latest run's attempts, one row each, and its Gantt chart (one lane per agent).

# %%
latest = history.latest_run("gapminder_report")
tasks = history.task_frame(run_id=latest)
tasks[["task_id", "agent_id", "status", "attempt", "duration", "error"]]

# %%
gantt_figure(tasks, title=f"Run {latest}")

# %%
agent_load_figure(history.agent_load_frame(run_id=latest), title=f"Agent load in run {latest}")

# %% [markdown]
# Across all runs, how did each task fare?

# %%
every = history.task_frame()
every.groupby("task_id").status.value_counts().unstack(fill_value=0)

# %% tags=["summary"]
summary = {
    "runs": len(runs),
    "statuses": runs.status.tolist(),
    "run_ids": run_ids,
    "latest": latest,
    "max_load": {a: int(g.load.max()) for a, g in
                 history.agent_load_frame(run_id=latest).groupby("agent_id")},
}
history.close()
print(json.dumps(summary))
