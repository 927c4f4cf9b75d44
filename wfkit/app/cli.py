"""The ``wfkit`` command (also ``python -m wfkit``).

- ``wfkit run SPEC.yaml [--store runs.db] [--set key=value ...] [--json]`` runs a declarative
  spec (see :mod:`wfkit.app.spec`).
- ``wfkit run TRACE.json --simulate [--agents N]`` simulates a WfFormat trace (a recorded run
  of Pegasus, Makeflow, Nextflow, ... or of wfkit) with its recorded runtimes, plans it, and
  prints each makespan with its certified gap (``--simulate`` works on a spec too, with its
  estimates).
- ``wfkit report STORE.db -o report.html`` writes a standalone HTML report of the stored runs.
- ``wfkit demo`` runs the showcase on a real data set and writes ``build/report.html``.

Exit codes: 0 success, 1 a run that did not complete, 2 bad input (the message says what to
fix; no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import reprlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from wfkit.app.jsonout import jsonable, to_json

__all__ = ["main", "build_parser", "to_json"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_RUN_EPILOG = """\
a spec looks like:
  workflow: sales_report
  policy: least_loaded            # fastest, round_robin, heft or 'module:callable'
  params: {year: 2007}            # run parameters (ctx.params), e.g. --set params.year=2010
  agents:
    analyst: {capabilities: [analysis], capacity: 2, handler: "mypkg.agents:analyse"}
  tasks:
    load:   {requires: [analysis], action: "mypkg.tasks:load", retries: 2}
    report: {requires: [analysis], after: [load], priority: 5, timeout: 30}

Modules next to the spec file import too, by their location: one named like an
installed or standard module (a pickle.py) is an error, never a replacement. Their
folder is on the import path only while the spec loads, so they import each other at
their top. --check imports them too, running their top-level code. 'handler: simulated'
waits each task's estimate (times 'time_scale'). --set takes a key path into the spec,
e.g. --set policy=fastest --set tasks.load.retries=3 --set agents.analyst.capacity=4
(values are read as YAML).
A WfFormat trace (JSON, https://wfcommons.org) is simulated, not run:
  wfkit run trace.json --simulate --agents 16 --policy heft --method exact
replays it on 16 one-slot agents (default: the trace's machines, a slot per core) with
its recorded runtimes and prints the simulated and planned makespans, each with its
lower bound and certified gap (makespan / lower bound - 1; 0 is proven optimal).
Exit code: 0 when every task completed, 1 when the run did not, 2 for a bad spec.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wfkit",
        description="Orchestrate workflows: run declarative specs, report on stored runs, "
        "and see the showcase demo.",
    )
    from wfkit import __version__

    parser.add_argument("--version", action="version", version=f"wfkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a workflow spec (YAML)",
        description="Run the workflow described by a YAML spec and print its results.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("spec", metavar="SPEC.yaml", help="the workflow spec, or a WfFormat "
                     "trace (TRACE.json) to simulate")
    run.add_argument("--store", metavar="FILE", help="record the run in this SQLite run store "
                     "(overrides the spec's 'store')")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY=VALUE", help="override a spec value (repeatable)")
    run.add_argument("--json", action="store_true",
                     help="print the run's result as JSON on standard output")
    run.add_argument("--resume", metavar="RUN_ID", nargs="?", const="latest",
                     help="resume a stored run (default: the latest), skipping tasks that "
                     "completed in it; needs --store or the spec's store")
    run.add_argument("--json-only-results", action="store_true",
                     help="with --resume: refuse results the store holds as pickles (loading "
                     "them runs code chosen by whoever wrote the store) instead of loading them")
    run.add_argument("--fail-fast", action="store_true",
                     help="stop at the first failed task")
    run.add_argument("--check", action="store_true",
                     help="only load and validate the spec, run no task; this imports the "
                     "modules its actions, handlers and policy name (running their top-level "
                     "code), so check only specs you would run")
    run.add_argument("--simulate", action="store_true",
                     help="run no task: simulate the workflow on virtual time (a trace with its "
                     "recorded runtimes, a spec with its estimates) and plan it; prints each "
                     "makespan with its lower bound and certified gap")
    run.add_argument("--agents", type=int, metavar="N",
                     help="with --simulate: N identical one-slot agents (default: the trace's "
                     "machines or the spec's agents)")
    run.add_argument("--policy", dest="policies", action="append", metavar="NAME",
                     help="with --simulate: a dispatch policy to simulate (repeatable; default "
                     "least_loaded and heft)")
    run.add_argument("--method", dest="methods", action="append", metavar="NAME",
                     help="with --simulate: a planning method (heft, list, exact; repeatable; "
                     "default heft and list)")
    run.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                     help="with --simulate --method exact: the solver's time limit (default 10)")
    prog = run.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="always show a progress bar (on standard error)")
    prog.add_argument("--no-progress", dest="progress", action="store_false",
                      help="never show one (default: shown once a run lasts a second)")

    report = sub.add_parser(
        "report",
        help="write a standalone HTML report of the runs in a store",
        description="Write one HTML file (no server, no network needed to view it) with the "
        "runs of a RunStore: success and duration across runs, the Gantt chart and agent load "
        "of the latest runs, the runs table and the failed attempts.",
    )
    report.add_argument("store", metavar="STORE.db", help="a wfkit run store file")
    report.add_argument("-o", "--output", default="report.html", metavar="FILE",
                        help="where to write the report (default: report.html)")
    report.add_argument("--runs", type=int, default=3, metavar="N",
                        help="show the Gantt chart and load of the latest N runs (default 3)")
    report.add_argument("--title", help="the report's title")
    report.add_argument("--json", action="store_true",
                        help="print what was written as JSON on standard output")

    demo = sub.add_parser(
        "demo",
        help="run the showcase on a real data set and write an HTML report",
        description="Agents analyse the Gapminder data set (shipped with Plotly) and validate "
        "their own report; then the showcase notebook is executed and exported as a "
        "standalone HTML report.",
    )
    demo.add_argument("--year", type=int, default=2007, help="Gapminder year to report on")
    demo.add_argument("-o", "--output", default="build/report.html", metavar="FILE",
                      help="where to write the HTML report (default: build/report.html)")
    demo.add_argument("--no-report", action="store_true",
                      help="only run the workflow and print its report")
    demo.add_argument("--notebook", metavar="FILE",
                      help="the showcase notebook (default: the repository's "
                      "notebooks/02_collective_agents.ipynb)")
    demo.add_argument("--json", action="store_true",
                      help="print the run's result as JSON on standard output")
    return parser


# -- output ----------------------------------------------------------------------------------


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def _err(message: str) -> None:
    print(f"wfkit: error: {message}", file=sys.stderr)


# -- commands --------------------------------------------------------------------------------


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 80, 80, 80


def _short(value: Any) -> str:
    """A bounded one-line view of a result: never walks a deep or huge value whole."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:200]
    try:
        return _REPR.repr(value)
    except Exception as exc:  # noqa: BLE001 - a user's __repr__ may raise anything
        return f"<{type(value).__name__}: repr failed: {type(exc).__name__}>"


def _summary(result: Any) -> str:
    lines = [
        f"{result['workflow_id']} run {result['run_id']}: {result['status']}, "
        f"{result['successful_tasks']}/{result['total_tasks']} tasks completed, "
        f"{result['failed_tasks']} failed, {result['skipped_tasks']} skipped, "
        f"{result['cancelled_tasks']} cancelled in {result['makespan']:.2f} s"
    ]
    params = result.get("params") or {}
    if params:
        lines.append("  params: " + ", ".join(f"{k}={v!r}" for k, v in params.items()))
    rows = [("task", "status", "agent", "tries", "time", "result / error")]
    for tid, r in result["task_results"].items():
        shown = r["error"] if r["status"] != "completed" else r["result"]
        text = " ".join(_short(shown).split())
        rows.append((tid, r["status"], r["agent_id"] or "-", str(r["attempts"]),
                     f"{r['execution_time']:.2f}s", text[:60] + ("…" if len(text) > 60 else "")))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False))
                     + "  " + row[5])
    lines += _failures(result)
    return "\n".join(lines)


def _failures(result: Any) -> list[str]:
    """Each failed task's error and the line of the user's code where it failed (the full
    traceback is in ``--json`` output and in the store)."""
    from wfkit.jupyter.reprs import where_text

    lines = []
    for tid, r in result["task_results"].items():
        if r["status"] != "failed":
            continue
        at = where_text(r)
        lines.append(f"{tid} failed: {r['error']}")
        lines.append(f"  at {at}" if at else "  (not in your code: see the traceback in --json)")
    return lines


def _is_wfformat(path: str) -> bool:
    """A ``.json`` file whose ``workflow`` is an object (a spec's is a name) is a trace."""
    if not path.lower().endswith(".json"):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return True  # the WfFormat reader says what is wrong with it
    return isinstance(doc, dict) and isinstance(doc.get("workflow"), dict)


def _simulate(args: argparse.Namespace) -> int:
    """``wfkit run ... --simulate``: simulated and planned makespans with certified gaps."""
    from wfkit.agents.model import AgentProfile
    from wfkit.errors import WfkitError
    from wfkit.optimization.planning import plan_schedule
    from wfkit.optimization.simulator import simulate

    if args.store or args.resume is not None or args.json_only_results:
        raise WfkitError("--simulate runs nothing, so it records nothing: drop --store, "
                         "--resume and --json-only-results")
    recorded = None
    if _is_wfformat(args.spec):
        from wfkit.wfformat import read_wfformat, wfformat_agents

        trace = read_wfformat(args.spec)
        name, tasks, durations = trace.name, list(trace.tasks.values()), trace.runtimes
        agents = wfformat_agents(args.spec) if args.agents is None else []
        recorded, kind = trace.makespan, f"WfFormat {trace.version or '?'}"
    else:
        from wfkit.app.spec import load_spec

        spec = load_spec(args.spec, args.overrides)
        name, tasks, durations = spec.workflow_id, spec.tasks, None
        agents, kind = list(spec.agents), "spec, estimated durations"
    if args.agents is not None:
        if args.agents < 1:
            raise WfkitError(f"--agents must be at least 1, got {args.agents}")
        caps = sorted({c for t in tasks for c in t.capability_set})
        agents = [AgentProfile(f"p{i}", f"processor {i}", caps)
                  for i in range(1, args.agents + 1)]
    if not agents:
        raise WfkitError(f"{args.spec} records no machines: say how many agents to simulate "
                         f"with --agents N")
    rows: list[dict[str, Any]] = []
    for policy in args.policies or ["least_loaded", "heft"]:
        s = simulate(tasks, agents, policy=policy, durations=durations)
        rows.append({"kind": "simulated", "name": policy, "makespan": s.makespan,
                     "lower_bound": s.lower_bound, "gap": s.gap, "optimal": s.optimal})
    for method in args.methods or ["heft", "list"]:
        s = plan_schedule(tasks, agents, method=method, durations=durations,
                          time_limit=args.time_limit)
        rows.append({"kind": "planned", "name": method, "makespan": s.makespan,
                     "lower_bound": s.lower_bound, "gap": s.gap, "optimal": s.optimal})
    slots = sum(a.capacity for a in agents)
    edges = sum(len(t.dependencies) for t in tasks)
    if args.json:
        _print_json(jsonable({"workflow_id": name, "source": kind, "tasks": len(tasks),
                            "dependencies": edges, "agents": len(agents), "slots": slots,
                            "recorded_makespan": recorded, "schedules": rows}))
        return EXIT_OK
    print(f"{name} ({kind}): {len(tasks)} tasks, {edges} dependencies, on {len(agents)} "
          f"agent(s) with {slots} slot(s)")
    if recorded is not None:
        print(f"  recorded makespan {recorded:.6g} s (as it ran, on its own machines)")
    width = max(len(f"{r['kind']} {r['name']}") for r in rows)
    for r in rows:
        label = f"{r['kind']} {r['name']}".ljust(width)
        proven = ", optimal" if r["optimal"] else ""
        print(f"  {label}  makespan {r['makespan']:.6g} s, lower bound "
              f"{r['lower_bound']:.6g} s, certified gap {100 * r['gap']:.2f} %{proven}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from wfkit.app.spec import load_spec
    from wfkit.errors import WfkitError
    from wfkit.runsync import run_sync

    if args.simulate:
        return _simulate(args)
    if args.agents is not None or args.policies or args.methods:
        raise WfkitError("--agents, --policy and --method choose what --simulate simulates: "
                         "add --simulate")
    if _is_wfformat(args.spec):
        from wfkit.wfformat import read_wfformat

        trace = read_wfformat(args.spec)  # a bad trace says what is wrong with it first
        raise WfkitError(f"{args.spec} is a WfFormat trace ({len(trace.tasks)} tasks): it "
                         f"records a run and has no work to run; simulate it with --simulate")
    spec = load_spec(args.spec, args.overrides)
    if args.fail_fast:
        spec.fail_fast = True
    if args.check:
        if args.json:
            _print_json({"valid": True, "workflow_id": spec.workflow_id,
                         "params": jsonable(spec.params),
                         "tasks": [t.task_id for t in spec.tasks],
                         "agents": [a.agent_id for a in spec.agents]})
        else:
            print(f"{args.spec}: OK, workflow {spec.workflow_id!r} with {len(spec.tasks)} "
                  f"task(s) and {len(spec.agents)} agent(s)")
        return EXIT_OK
    store = args.store or spec.store
    if args.resume is not None and store is None:
        raise WfkitError("--resume needs a run store: pass --store FILE (the one the run was "
                         "recorded in)")
    opened = None
    if args.json_only_results:
        if store is None:
            raise WfkitError("--json-only-results applies to a run store: pass --store FILE")
        from wfkit.metrics.store import RunStore

        opened = RunStore(store, json_only_results=True)
    try:
        result = run_sync(spec.run(store=opened if opened is not None else store,
                                   resume=args.resume, progress=args.progress))
    finally:
        if opened is not None:
            opened.close()
            store = opened.path
    if args.json:
        _print_json(to_json(result))
    else:
        print(_summary(result))
        if store is not None:
            print(f"recorded in {store} (report: wfkit report {store} -o report.html)")
    return EXIT_OK if result["status"] == "completed" else EXIT_FAILED


def _cmd_report(args: argparse.Namespace) -> int:
    from wfkit.app.report import write_report

    out = write_report(args.store, args.output, runs=args.runs, title=args.title)
    if args.json:
        _print_json({"report": str(out), "bytes": out.stat().st_size})
    else:
        print(f"wrote {out}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from wfkit.app.showcase import showcase

    return showcase(year=args.year, output=None if args.no_report else args.output,
                    notebook=args.notebook, as_json=args.json)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (bad input: a message, never a traceback)."""
    from wfkit.errors import WfkitError

    args = build_parser().parse_args(argv)
    commands = {"run": _cmd_run, "report": _cmd_report, "demo": _cmd_demo}
    shown_as = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        return commands[args.command](args)
    except WfkitError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted; tasks that finished are recorded in the store, if any "
             "(resume with --resume)")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `wfkit run ... --json | head`
        return EXIT_OK
    finally:
        warnings.formatwarning = shown_as


def _one_line_warning(message: Any, category: type, *args: Any, **kwargs: Any) -> str:
    """Warnings on the command line read like its errors: one line, no source excerpt."""
    return f"wfkit: warning: {message}\n"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
