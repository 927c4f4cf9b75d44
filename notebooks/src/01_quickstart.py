# %% [markdown]
# # wfkit quickstart
#
# Build a workflow with `@wf.task`, look at its DAG, run it on agents, and read the results
# as a pandas frame. The work is real: we count words in the source code of a few modules of
# Python's standard library, one task per module, and merge the counts.

# %% tags=["parameters"]
modules = ["json", "csv", "textwrap", "difflib"]  # one counting task per module
top_n = 8  # how many words the final task keeps
analysts = 2  # tasks the analyst agent runs at once
min_length = 4  # ignore shorter words

# %%
import collections
import importlib
import inspect
import json
import re

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Workflow

wf = Workflow("word_count")


@wf.task(requires=["analysis"], estimate=0.05, priority=10)
def sources(ctx):
    """Read the source code of each module."""
    return {name: inspect.getsource(importlib.import_module(name)) for name in modules}


def count_words(ctx, module):
    words = re.findall(r"[a-z_]+", ctx.inputs["sources"][module].lower())
    return collections.Counter(w for w in words if len(w) >= min_length)


counts = []
for name in modules:
    def count(ctx, name=name):
        return count_words(ctx, name)

    counts.append(wf.task(count, task_id=f"count_{name}", requires=["analysis"],
                          after=[sources], estimate=0.1,
                          description=f"Count the words of {name}"))


@wf.task(requires=["generation"], after=counts, estimate=0.05)
def top_words(ctx):
    """Merge the counts and keep the most common words."""
    total = collections.Counter()
    for counter in ctx.inputs.values():
        total.update(counter)
    return total.most_common(top_n)


wf

# %% [markdown]
# A bare `wf` renders the DAG: tasks in layers, dependencies as lines, the critical path
# (by estimated duration) drawn thick. `wf.critical_path()` gives it as task ids.

# %%
wf.critical_path()

# %% [markdown]
# Agents have capabilities and a capacity. A task runs on an agent that has every
# capability it requires; its `action` (the decorated function) does the work.

# %%
orch = CollectiveAgentWorkflowOrchestrator(policy="least_loaded")
orch.register_agent(AgentProfile("analyst", "Analyst", ["analysis"], capacity=analysts))
orch.register_agent(AgentProfile("writer", "Writer", ["generation"]))
await orch.create_workflow(wf)
result = await orch.execute_workflow("word_count")
result

# %% [markdown]
# Cells can `await` directly: the kernel already runs an event loop. (In a plain script use
# `wfkit.run_sync(orch.execute_workflow(...))`.) The result is a dict with counts and one
# entry per task; `.frame()` turns the task results into a DataFrame.

# %%
frame = result.frame()
frame[["task_id", "agent_id", "status", "attempts", "execution_time"]]

# %%
result.results()["top_words"]

# %%
wf.figure(result)

# %% tags=["summary"]
summary = {
    "status": result["status"],
    "tasks": sorted(frame.task_id),
    "top_words": result.results()["top_words"],
    "max_concurrency_analyst": orch.agents["analyst"].capacity,
}
print(json.dumps(summary))
