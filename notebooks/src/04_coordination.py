# %% [markdown]
# # Coordination and collaboration
#
# Participants (plain Python functions) work on the Gapminder data set in sessions of each
# coordination type: **sequential** (each sees the previous result), **parallel** (all at once,
# failures reported per participant), **conditional** (a task runs only when a condition on the
# shared state holds) and **collaborative** (everyone updates one versioned shared state at
# once, with no update lost). Then a write conflict is resolved by each strategy, and
# participants contend for one shared resource, served in arrival order.

# %% tags=["parameters"]
year = 2007
gap_threshold = 20.0  # the alert task runs only when the life-expectancy gap exceeds this
fail_parallel = False  # True: one parallel analyst fails (reported per participant)
contenders = 5  # participants queueing for the shared resource
hold = 0.01  # seconds each holds it

# %%
import asyncio
import json

import plotly.express as px

from wfkit import CollaborationTask, CoordinationCollaborationManager, CoordinationType

df = px.data.gapminder()
now = df[df.year == year]
manager = CoordinationCollaborationManager()


def researcher(ctx):
    by = now.groupby("continent").lifeExp.mean().round(2)
    return {"best": by.idxmax(), "worst": by.idxmin(), "gap": round(by.max() - by.min(), 2)}


def writer(ctx):
    f = ctx.previous
    return (f"In {year} life expectancy was highest in {f['best']} and lowest in {f['worst']}, "
            f"a gap of {f['gap']} years.")


def reviewer(ctx):
    by = now.groupby("continent").lifeExp.mean().round(2)
    assert f"{round(by.max() - by.min(), 2)} years" in ctx.previous, "the gap is wrong"
    return {"approved": True, "text": ctx.previous}


for name, fn in {"researcher": researcher, "writer": writer, "reviewer": reviewer}.items():
    manager.register_participant(name, fn)

# %% [markdown]
# ## Sequential: each participant sees the previous one's result

# %%
seq = await manager.create_coordination_session(["researcher", "writer", "reviewer"],
                                                CoordinationType.SEQUENTIAL)
await manager.add_collaboration_task(seq, CollaborationTask("brief", "Write a checked brief"))
sequential = await manager.run_session(seq)
sequential.task_results["brief"]["results"]["reviewer"]

# %% [markdown]
# ## Parallel: three analysts at once, each failure reported on its own

# %%
def analyst(column):
    def analyse(ctx):
        if fail_parallel and column == "gdpPercap":
            raise RuntimeError("the GDP source is unavailable")
        return round(float(now[column].median()), 2)
    return analyse


for column in ("lifeExp", "gdpPercap", "pop"):
    manager.register_participant(f"median_{column}", analyst(column))
par = await manager.create_coordination_session(
    ["median_lifeExp", "median_gdpPercap", "median_pop"], "parallel")
await manager.add_collaboration_task(par, CollaborationTask("medians", "Medians at once"))
parallel = await manager.run_session(par)
parallel.frame()

# %% [markdown]
# ## Conditional: the alert runs only if the gap is large
#
# The condition is declarative (no code is evaluated from strings), on the shared state.

# %%
def alert(ctx):
    return f"ALERT: the gap is {ctx.shared['gap']} years (threshold {gap_threshold})"


def measure(ctx):
    result = researcher(ctx)
    ctx.shared.write(ctx.participant, {"gap": result["gap"]}, base_version=ctx.shared.version)
    return result


manager.register_participant("alerter", alert)
manager.register_participant("measurer", measure)
cond = await manager.create_coordination_session(["measurer", "alerter"], "conditional")
await manager.add_collaboration_task(cond, CollaborationTask("measure", "Measure the gap",
                                                             ["measurer"]))
await manager.add_collaboration_task(cond, CollaborationTask(
    "alert", "Alert on a large gap", ["alerter"], ["measure"],
    condition={"field": "shared.gap", "op": ">", "value": gap_threshold}))
conditional = await manager.run_session(cond)
{t: (r["status"], r.get("reason")) for t, r in conditional.task_results.items()}

# %% [markdown]
# ## Collaborative: everyone updates one shared state at once
#
# Each continent's counter adds its countries to shared totals with `shared.update`, a
# read-modify-write that retries on conflict, so no update is lost.

# %%
continents = sorted(now.continent.unique())


def counter(continent):
    async def count(ctx):
        rows = now[now.continent == continent]
        for country in rows.country:
            def add(data, country=country):
                data["countries"] = data.get("countries", 0) + 1
                data.setdefault("by_continent", {})
                data["by_continent"][continent] = data["by_continent"].get(continent, 0) + 1
            await ctx.shared.update(ctx.participant, add)
            await asyncio.sleep(0)  # interleave with the others
        return len(rows)
    return count


for c in continents:
    manager.register_participant(f"count_{c}", counter(c))
col = await manager.create_coordination_session([f"count_{c}" for c in continents],
                                                "collaborative")
await manager.add_collaboration_task(col, CollaborationTask("census", "Count countries"))
collaborative = await manager.run_session(col)
shared = manager.sessions[col].shared_state
print(shared["countries"], "countries; version", shared.version, "; expected", len(now))

# %% [markdown]
# ## One conflict, every strategy
#
# Alice and Bob both start from version 0 and edit the title; Bob also edits the body.
# `manual` holds Bob's write until `resolve_conflict` picks a side.

# %%
outcomes = {}
for strategy in ["merge", "last_writer_wins", "first_writer_wins", "manual"]:
    sid = await manager.create_coordination_session(
        ["researcher", "writer"], "collaborative", conflict_strategy=strategy,
        shared_state={"title": "draft", "body": ""})
    state = manager.sessions[sid].shared_state
    state.write("alice", {"title": "Alice's title"}, base_version=0)
    out = state.write("bob", {"title": "Bob's title", "body": "Bob's body"}, base_version=0)
    if strategy == "manual":
        await manager.resolve_conflict(out.conflict.conflict_id, "incoming")
    outcomes[strategy] = {"outcome": out.status, **dict(state)}
outcomes

# %%
manager.conflicts_frame()[[c for c in ("conflict_id", "strategy", "keys", "status",
                                       "resolution") if c in manager.conflicts_frame().columns]]

# %% [markdown]
# ## A contended resource
#
# `contenders` participants ask for one resource at once; it is granted in arrival order, one
# holder at a time (a guard inside the critical section would fail otherwise).

# %%
order, inside = [], []


async def use(name):
    async with manager.resource("printer", name, timeout=30):
        inside.append(name)
        assert len(inside) == 1, "two holders at once"
        order.append(name)
        await asyncio.sleep(hold)
        inside.remove(name)


names = [f"p{i}" for i in range(contenders)]
tasks = []
for n in names:
    tasks.append(asyncio.ensure_future(use(n)))
    await asyncio.sleep(0)  # arrive in this order
await asyncio.gather(*tasks)
stats = manager.resource_statistics("printer")
{k: stats[k] for k in ("acquisitions", "releases", "mean_wait", "max_wait", "holder")}

# %% tags=["summary"]
summary = {
    "brief": sequential.task_results["brief"]["results"]["reviewer"]["text"],
    "parallel_status": parallel["status"],
    "parallel": {p: r["status"] for p, r in
                 parallel.task_results["medians"]["participants"].items()},
    "alert": conditional.task_results["alert"]["status"],
    "countries": shared["countries"],
    "expected_countries": len(now),
    "strategies": {s: o["title"] for s, o in outcomes.items()},
    "served_in_order": order == names,
    "acquisitions": stats["acquisitions"],
}
manager.close()
print(json.dumps(summary))
