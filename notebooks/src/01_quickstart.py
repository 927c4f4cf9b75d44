# %% [markdown]
# # wfkit quickstart: the notebook loop
#
# Define a workflow, run it, edit one task and run again: only that task and what depends on
# it run, the rest comes from the result cache. Break a task, see where it failed, fix it and
# carry on from where the run stopped. The work is real: we count the words in the source
# code of a few modules of Python's standard library, one task per module, and merge the
# counts.

# %% tags=["parameters"]
modules = ["json", "csv", "textwrap", "difflib"]  # one counting task per module
top_n = 8  # how many words the final task keeps (a run parameter: ctx.params["top_n"])
analysts = 2  # tasks the analyst agent runs at once
min_length = 4  # ignore shorter words (a run parameter too)

# %% [markdown]
# ## 1. Define
#
# `@wf.task` turns a function `fn(ctx)` into a task; `after=` draws the dependencies.
# `params=` declares the run's parameters: the papermill parameters above flow in here, and
# tasks read them as `ctx.params`. `cache=True` keeps each task's result under a key made of
# its code, its inputs and the parameters it reads. `calls` counts what really runs.

# %%
import collections
import importlib
import inspect
import json
import re

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Workflow

calls = collections.Counter()  # task id -> times its code ran
wf = Workflow("word_count", params={"top_n": top_n, "min_length": min_length}, cache=True)


@wf.task(requires=["analysis"], estimate=0.05, priority=10)
def sources(ctx):
    """Read the source code of each module."""
    calls["sources"] += 1
    return {name: inspect.getsource(importlib.import_module(name)) for name in modules}


def count_words(ctx, module):
    calls[f"count_{module}"] += 1
    words = re.findall(r"[a-z_]+", ctx.inputs["sources"][module].lower())
    return collections.Counter(w for w in words if len(w) >= ctx.params["min_length"])


counts = []
for name in modules:
    def count(ctx, name=name):
        return count_words(ctx, name)

    counts.append(wf.task(count, task_id=f"count_{name}", requires=["analysis"],
                          after=[sources], estimate=0.1,
                          description=f"Count the words of {name}"))


@wf.task(requires=["analysis"], after=counts, estimate=0.05)
def merge(ctx):
    """Add the counts of every module."""
    calls["merge"] += 1
    total = collections.Counter()
    for counter in ctx.inputs.values():
        total.update(counter)
    return total


@wf.task(requires=["generation"], after=[merge], estimate=0.05)
def top_words(ctx):
    """The most common words."""
    calls["top_words"] += 1
    return ctx.inputs["merge"].most_common(ctx.params["top_n"])


wf

# %% [markdown]
# A bare `wf` renders the DAG: tasks in layers, dependencies as lines, the critical path
# (by estimated duration) drawn thick.
#
# ## 2. Run
#
# Agents have capabilities and a capacity; a task runs on an agent that has every capability
# it requires. Cells can `await` directly (the kernel already runs an event loop; in a script,
# `wfkit.run_sync(...)`).

# %%
orch = CollectiveAgentWorkflowOrchestrator(policy="least_loaded")
orch.register_agent(AgentProfile("analyst", "Analyst", ["analysis"], capacity=analysts))
orch.register_agent(AgentProfile("writer", "Writer", ["generation"]))
await orch.create_workflow(wf)


def ran(result):
    """The tasks whose code ran in this run (the others came from the cache)."""
    return sorted(t for t, r in result.task_results.items()
                  if r["status"] == "completed" and not r["cached"])


first = await orch.execute_workflow(wf)
print("ran:", ran(first))
first.results()["top_words"]

# %% [markdown]
# ## 3. Edit one task, run again
#
# Re-running a cell with `@wf.task` replaces that task. Here `merge` learns to drop Python's
# keywords. Run again: only `merge` and the task after it run; the sources and the counts
# come from the cache, and the DAG draws them as *cached*.

# %%
import keyword


@wf.task(requires=["analysis"], after=counts, estimate=0.05)
def merge(ctx):
    """Add the counts of every module, without Python's keywords."""
    calls["merge"] += 1
    total = collections.Counter()
    for counter in ctx.inputs.values():
        total.update(counter)
    for word in keyword.kwlist:
        total.pop(word, None)
    return total


edited = await orch.execute_workflow(wf)
print("ran:", ran(edited))
wf.figure(edited)

# %% [markdown]
# ## 4. Fail
#
# `top_words` should return a dict; the edit has a typo (`"merged"` for `"merge"`). The run
# does not raise: independent work goes on and the result says what failed, with the line of
# *your* code where it failed (the full traceback is folded under it).

# %%
@wf.task(requires=["generation"], after=[merge], estimate=0.05)
def top_words(ctx):
    """The most common words and their counts."""
    calls["top_words"] += 1
    return dict(ctx.inputs["merged"].most_common(ctx.params["top_n"]))


broken = await orch.execute_workflow(wf)
broken

# %% [markdown]
# `raise_for_status()` turns a run that did not complete into an exception (what a script or
# a scheduled papermill run wants): `WorkflowFailedError` lists each failed task, its error
# and your line; the task's own exception is its `__cause__`. Here we print it.

# %%
try:
    broken.raise_for_status()
except wfkit.WorkflowFailedError as err:
    failure = str(err)
    print(failure)
    print("cause:", repr(err.__cause__))

# %% [markdown]
# ## 5. Fix, and carry on
#
# Fix the task and run again: everything that completed before comes from the cache, so only
# the fixed task runs and the run picks up where it failed. `raise_for_status()` now returns
# the result. (Across kernel restarts, give the orchestrator a run store,
# `CollectiveAgentWorkflowOrchestrator(store="runs.db")`: the cache lives in it too.)

# %%
@wf.task(requires=["generation"], after=[merge], estimate=0.05)
def top_words(ctx):
    """The most common words and their counts."""
    calls["top_words"] += 1
    return dict(ctx.inputs["merge"].most_common(ctx.params["top_n"]))


fixed = (await orch.execute_workflow(wf)).raise_for_status()
print("ran:", ran(fixed))
fixed.results()["top_words"]

# %% [markdown]
# ## 6. Parameters
#
# A run can override the declared parameters. Only the tasks that read `top_n` run again.

# %%
more = await orch.execute_workflow(wf, params={"top_n": 2 * top_n})
print("ran:", ran(more))
more.results()["top_words"]

# %% [markdown]
# Every task's result, as a DataFrame (`cached` says which ones did not run), and the cache
# itself:

# %%
frame = fixed.frame()
frame[["task_id", "agent_id", "status", "cached", "attempts", "execution_time"]]

# %%
orch.cache.frame()

# %% tags=["summary"]
summary = {
    "status": fixed["status"],
    "tasks": sorted(frame.task_id),
    "top_words": fixed.results()["top_words"],
    "params": {"top_n": top_n, "min_length": min_length},
    "ran": {"first": ran(first), "edited": ran(edited), "fixed": ran(fixed),
            "more": ran(more)},
    "broken": {t: r["status"] for t, r in broken.task_results.items()
               if r["status"] != "completed"},
    "failure": failure.splitlines()[1:4],
    "calls": dict(calls),
    "max_concurrency_analyst": orch.agents["analyst"].capacity,
}
print(json.dumps(summary))
