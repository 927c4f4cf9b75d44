"""STG benchmark: list, HEFT and exact plans against the Standard Task Graph Set's optima.

Runs every ``.stg`` graph under the STG directory (default: ``../shared/benchmarks/stg`` next to
the repository) on P = 2, 4, 8, 16 identical agents and prints, per method, the mean and
maximum gap to the table's value (the proven optimum, or the best known schedule length when
the optimum is not proven) and how many instances it matched. Targets: ``exact`` matches every
proven optimum and reaches every best-known value within 10 s per instance; ``list`` and
``heft`` stay within 0.5 % on average.

    python benchmarks/stg.py
    python benchmarks/stg.py --methods list heft --processors 2 4
    python benchmarks/stg.py --graphs '50/*' --time-limit 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from stg_format import identical_agents, read_stg, read_stg_table

import wfkit

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks" / "stg"
MEAN_GAP_TARGET = 0.005


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--methods", nargs="+", default=["list", "heft", "exact"])
    parser.add_argument("--processors", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--graphs", default="*/*.stg", help="glob under the root")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--quiet", action="store_true", help="no line per missed instance")
    args = parser.parse_args(argv)

    root = args.root.resolve()
    tables = sorted((root / "optimal_values").glob("*.csv"))
    if not tables:
        print(f"no STG data under {root}: expected optimal_values/*.csv and */*.stg")
        return 2
    refs = read_stg_table(tables)
    graphs = sorted(p for p in root.glob(args.graphs) if p.suffix == ".stg")
    rows: dict[str, list[dict[str, float | str | bool]]] = {m: [] for m in args.methods}
    for path in graphs:
        name = path.relative_to(root).as_posix()
        tasks = read_stg(path)
        for p in args.processors:
            ref = refs.get((name, p))
            if ref is None:
                continue
            agents = identical_agents(p)
            for method in args.methods:
                began = time.perf_counter()
                s = wfkit.plan_schedule(tasks, agents, method=method, time_limit=args.time_limit)
                took = time.perf_counter() - began
                row = {
                    "instance": f"{name} P={p}",
                    "makespan": s.makespan,
                    "reference": ref.best,
                    "proven": ref.proven,
                    "gap": s.makespan / ref.best - 1,
                    "optimal": s.optimal,
                    "seconds": took,
                }
                rows[method].append(row)
                if not args.quiet and s.makespan != ref.best:
                    kind = "optimum" if ref.proven else "best known"
                    print(f"  {method:<6} {row['instance']:<22} {s.makespan:g} vs {kind} "
                          f"{ref.best:g} ({row['gap']:+.2%}), {took:.1f} s", flush=True)

    n = len(next(iter(rows.values()), []))
    print(f"\n{len(graphs)} graphs x P in {args.processors}: {n} instances "
          f"(time limit {args.time_limit:g} s for exact)")
    print(f"{'method':<8}{'mean gap':>10}{'max gap':>10}{'matched':>10}{'proven opt':>12}"
          f"{'mean s':>9}{'max s':>8}")
    ok = True
    for method, rs in rows.items():
        if not rs:
            continue
        gaps = [float(r["gap"]) for r in rs]
        matched = sum(1 for r in rs if r["makespan"] == r["reference"])
        beaten = sum(1 for r in rs if float(r["makespan"]) < float(r["reference"]))
        proven = sum(1 for r in rs if r["optimal"])
        secs = [float(r["seconds"]) for r in rs]
        print(f"{method:<8}{statistics.mean(gaps):>10.3%}{max(gaps):>10.3%}"
              f"{f'{matched}/{len(rs)}':>10}{proven:>12}{statistics.mean(secs):>9.2f}"
              f"{max(secs):>8.2f}" + (f"  ({beaten} below the best known)" if beaten else ""))
        if method == "exact":
            ok = ok and all(float(r["makespan"]) <= float(r["reference"]) for r in rs)
        else:
            ok = ok and statistics.mean(gaps) <= MEAN_GAP_TARGET
    unproven = [r for r in rows.get("exact", []) if not r["proven"]]
    if unproven:
        print("instances without a proven optimum in the table: " + ", ".join(
            f"{r['instance']} -> {r['makespan']:g}{' (proven here)' if r['optimal'] else ''}"
            for r in unproven))
    print("targets " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
