# %% [markdown]
# # Optimisation experiments
#
# A workflow of real CPU work (hash chains of different lengths) runs a few times with
# metrics attached; the durations it records are *learned*. The optimiser then suggests
# changes, each with an `expected_improvement` simulated on those learned durations, and
# `wfkit.experiment` sweeps policies and agent pools on the discrete-event simulator, one tidy
# frame row per (variant, seed), plotted with Plotly. Last, a real workflow trace (WfCommons'
# WfFormat) is planned with its certified gap and the policies are compared on it.
#
# The parameters are meant for papermill sweeps, e.g.
# `papermill 05_optimization_experiments.ipynb out.ipynb -y "pool_sizes: [1, 3]" -p seeds 20`.

# %% tags=["parameters"]
policies = ["least_loaded", "fastest", "round_robin", "heft"]  # compared in the sweep
pool_sizes = [1, 2, 4]  # number of workers in each agent pool of the sweep
seeds = 5  # simulations per variant (noise differs per seed)
noise = 0.2  # coefficient of variation of simulated durations around the learned ones
training_runs = 3  # real runs whose durations are learned
work_scale = 1.0  # scales the real work of every task
goals = ["reduce_execution_time", "reduce_resource_usage"]
trace = "1000genome"  # a WfCommons trace that comes with wfkit ("1000genome" or "methylseq")
trace_agents = 16  # identical one-slot agents the trace is planned and simulated on

# %%
import hashlib
import json

import pandas as pd
import plotly.express as px

import wfkit
from wfkit import AgentProfile, CollectiveAgentWorkflowOrchestrator, Workflow

SIZES = {"parse": 4, "clean": 6, "features_a": 10, "features_b": 3, "features_c": 7,
         "features_d": 8, "features_e": 5, "features_f": 6, "train": 12, "evaluate": 4,
         "report": 2}
FEATURES = [name for name in SIZES if name.startswith("features_")]


def chain(seed, rounds):
    """Real CPU work: a SHA-256 chain of ``rounds`` steps."""
    digest = seed.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:16]


def make_workflow():
    wf = Workflow("pipeline")

    def step(name, after=(), requires="compute"):
        def work(ctx):
            seed = name + "".join(sorted(map(str, ctx.inputs.values())))
            return chain(seed, int(SIZES[name] * 20_000 * work_scale))

        return wf.task(work, task_id=name, requires=[requires], after=list(after),
                       estimate=SIZES[name] * 0.01, description=f"{name} ({SIZES[name]} units)")

    step("parse")
    step("clean", ["parse"])
    for name in FEATURES:
        step(name, ["clean"])
    step("train", FEATURES)
    step("evaluate", ["train"])
    step("report", ["evaluate", "features_b"], requires="reporting")
    return wf


def workers(n):
    return [AgentProfile(f"worker-{i}", f"Worker {i}", ["compute"]) for i in range(1, n + 1)] + [
        AgentProfile("reporter", "Reporter", ["reporting"])]


wf = make_workflow()
orch = CollectiveAgentWorkflowOrchestrator(policy="least_loaded")
for agent in workers(2):
    orch.register_agent(agent)
metrics = wfkit.AdvancedWorkflowMetrics().attach(orch)
await orch.create_workflow(wf)
for _ in range(training_runs):
    result = await orch.execute_workflow("pipeline", progress=False)
metrics.workflow_frame()[["run_id", "status", "duration", "participants"]]

# %% [markdown]
# ## Learned durations
#
# Mean observed duration of each task on each agent, from the metrics' task frame:

# %%
attempts = metrics.task_frame()
learned = attempts[attempts.status == "completed"].groupby(["task_id", "agent_id"]).duration.mean()
learned.unstack().round(4)

# %% [markdown]
# ## The optimiser's suggestions
#
# Each says what to change, why, and what a simulation on the learned durations expects.

# %%
optimizer = wfkit.WorkflowOptimizer(orch, metrics)
optimizer.add_optimization_metric(wfkit.OptimizationMetric("execution_time", weight=2.0))
optimizer.add_optimization_metric(wfkit.OptimizationMetric("resource_usage", weight=1.0))
plan = await optimizer.optimize_workflow("pipeline", goals)
print("current:", {k: round(v, 4) if isinstance(v, float) else v
                   for k, v in plan["current_metrics"].items() if not isinstance(v, dict)})
suggestions = pd.DataFrame(plan["optimization_suggestions"])
suggestions[[c for c in ("goal", "type", "description", "expected_improvement")
             if c in suggestions.columns]]

# %% [markdown]
# ## A sweep over policies and agent pools
#
# Durations come from what was learned (falling back to estimates); every variant runs on
# the simulator for each seed.

# %%
durations = {tid: {aid: float(d) for aid, d in row.dropna().items()}
             for tid, row in learned.unstack().iterrows()}
mean_of = {tid: sum(d.values()) / len(d) for tid, d in durations.items()}


def learned_duration(task, agent):
    return durations.get(task.task_id, {}).get(agent.agent_id,
                                                mean_of.get(task.task_id,
                                                            task.estimated_duration))


variants = {f"{policy} / {n} workers": {"policy": policy, "agents": workers(n),
                                        "durations": learned_duration, "noise": noise}
            for policy in policies for n in pool_sizes}
frame = wfkit.experiment(wf.tasks, workers(2), variants=variants, seeds=range(seeds))
frame["workers"] = frame["variant"].str.extract(r"/ (\d+) workers").astype(int)
frame.groupby("variant")[["makespan", "utilization", "gap"]].mean().sort_values("makespan")

# %%
px.box(frame, x="variant", y="makespan", color="policy", points="all",
       title=f"Simulated makespan, {seeds} seeds per variant (noise {noise})")

# %%
means = frame.groupby(["policy", "workers"], as_index=False)[["makespan", "utilization"]].mean()
px.line(means, x="workers", y="makespan", color="policy", markers=True,
        title="Mean makespan by pool size")

# %% [markdown]
# ## A real workflow trace
#
# Scientific workflow systems (Pegasus, Makeflow, Nextflow) publish their executions in
# WfCommons' WfFormat. `wfkit.load_wfformat` reads one as a `Workflow` whose estimates are the
# recorded runtimes and whose groups are the programs; `wfformat_durations` gives the runtimes
# themselves. (A run of yours goes the other way with `result.to_wfformat("run.json")`.)

# %%
from wfkit.wfformat import example_trace

trace_path = example_trace(trace)
real = wfkit.load_wfformat(trace_path, capability="compute")
runtimes = wfkit.wfformat_durations(trace_path)
nodes = [AgentProfile(f"node-{i}", f"Node {i}", ["compute"]) for i in range(1, trace_agents + 1)]
programs = pd.DataFrame({"program": [t.group for t in real.tasks],
                         "runtime": [runtimes[t.task_id] for t in real.tasks]})
programs.groupby("program").runtime.agg(["count", "sum", "max"]).round(1)

# %% [markdown]
# HEFT plans it on the agents; the lower bound counts the work that must come before and after
# each task, so the **certified gap** (makespan / lower bound − 1) says how far the plan can
# at most be from the best schedule there is.

# %%
planned = wfkit.plan_schedule(real.tasks, nodes, method="heft", durations=runtimes)
print(f"{real.workflow_id}: {len(real.tasks)} tasks on {trace_agents} agents: HEFT makespan "
      f"{planned.makespan:.1f} s, lower bound {planned.lower_bound:.1f} s, certified gap "
      f"{planned.gap:.2%}")

# %% [markdown]
# The dispatch policies replay the same trace on the simulator with the recorded runtimes
# (no noise: the runtimes are what happened, so each gap is certified too):

# %%
on_trace = wfkit.experiment(
    real.tasks, nodes,
    variants={policy: {"policy": policy, "durations": runtimes} for policy in policies},
)
by_policy = on_trace.set_index("policy")[["makespan", "lower_bound", "gap", "utilization"]]
by_policy.sort_values("makespan").round(4)

# %%
fig = px.bar(on_trace, x="policy", y="makespan", color="policy",
             title=f"{real.workflow_id} on {trace_agents} agents: makespan by policy")
fig.add_hline(y=planned.lower_bound, line_dash="dash",
              annotation_text=f"lower bound {planned.lower_bound:.0f} s")
fig.update_yaxes(range=[0.9 * planned.lower_bound, 1.02 * on_trace.makespan.max()])

# %% tags=["summary"]
best = frame.groupby("variant").makespan.mean().idxmin()
summary = {
    "variants": sorted(frame.variant.unique()),
    "rows": len(frame),
    "seeds": sorted(frame.seed.unique().tolist()),
    "policies": sorted(frame.policy.unique()),
    "workers": sorted(frame.workers.unique().tolist()),
    "best": best,
    "training_runs": len(metrics.workflow_frame()),
    "suggestion_goals": sorted(set(suggestions.get("goal", pd.Series(dtype=str)))),
    "trace": {"name": real.workflow_id, "tasks": len(real.tasks), "agents": len(nodes),
              "plan_makespan": planned.makespan, "plan_gap": planned.gap,
              "policies": sorted(on_trace.policy.unique()), "rows": len(on_trace),
              "best_policy": by_policy.makespan.idxmin()},
}
print(json.dumps(summary))
