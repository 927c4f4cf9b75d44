"""Reading the Standard Task Graph Set (STG, Kasahara lab, Waseda University) for the planning
benchmarks (``stg.py``, ``wfcommons.py``, ``planning.py``); not part of the package.

An ``.stg`` file: the number of real tasks n, then one line per task ``id cost npreds
pred...`` for tasks 0..n+1, where 0 and n+1 are zero-cost dummy entry and exit tasks; lines
starting with ``#`` are comments. The model is P identical processors, no communication costs,
no preemption. The optimal-value tables hold rows ``<size>/<graph>.stg,<P>,<value>[,<value2>]``:
one value is a proven optimum, two are (lower bound, best known).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wfkit.agents.model import AgentProfile, WorkflowTask
from wfkit.errors import ValidationError

__all__ = ["read_stg", "parse_stg", "identical_agents", "StgReference", "read_stg_table"]


def parse_stg(text: str, *, name: str = "<stg>", dummies: bool = False,
              capability: str = "compute") -> list[WorkflowTask]:
    """Tasks from STG text; ids are the task numbers as strings ("1" .. "n").

    The dummy entry and exit tasks are dropped unless ``dummies`` (they cost nothing and only
    tie the sources and sinks together, so no schedule length changes).
    """
    numbers: list[int] = []
    lineno: list[int] = []
    for i, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].split()
        for tok in body:
            try:
                numbers.append(int(tok))
            except ValueError:
                raise ValidationError(f"{name}, line {i}: {tok!r} is not an integer") from None
            lineno.append(i)
    if not numbers:
        raise ValidationError(f"{name}: empty STG file")
    n = numbers[0]
    pos = 1
    tasks: list[WorkflowTask] = []
    for expected in range(n + 2):
        if pos + 3 > len(numbers):
            raise ValidationError(f"{name}: the file ends before task {expected} (of 0..{n + 1})")
        tid, cost, npred = numbers[pos : pos + 3]
        if tid != expected:
            raise ValidationError(
                f"{name}, line {lineno[pos]}: expected task {expected}, found {tid}"
            )
        preds = numbers[pos + 3 : pos + 3 + npred]
        if len(preds) != npred:
            raise ValidationError(f"{name}: task {tid} lists fewer than {npred} predecessors")
        pos += 3 + npred
        is_dummy = tid in (0, n + 1)
        if is_dummy and not dummies:
            continue
        deps = [str(p) for p in preds if dummies or p not in (0, n + 1)]
        tasks.append(
            WorkflowTask(str(tid), f"STG task {tid}", [capability], 0, float(cost), deps)
        )
    return tasks


def read_stg(path: str | os.PathLike[str], *, dummies: bool = False,
             capability: str = "compute") -> list[WorkflowTask]:
    """The tasks of one ``.stg`` file (see :func:`parse_stg`)."""
    p = Path(path)
    return parse_stg(p.read_text(), name=str(p.name), dummies=dummies, capability=capability)


def identical_agents(p: int, capability: str = "compute") -> list[AgentProfile]:
    """P identical single-slot agents ``p0`` .. ``p{P-1}``, the STG processor model."""
    return [AgentProfile(f"p{i}", f"processor {i}", [capability]) for i in range(p)]


@dataclass(frozen=True)
class StgReference:
    """A table row: the graph, P, and the optimum (proven) or (lower bound, best known)."""

    graph: str
    processors: int
    lower: float
    best: float

    @property
    def proven(self) -> bool:
        return self.lower == self.best


def read_stg_table(paths: Iterable[str | os.PathLike[str]]) -> dict[tuple[str, int], StgReference]:
    """Rows of the ``Case*_OPT.csv`` tables, by (graph path as written, e.g. "50/rand0000.stg", P)."""
    out: dict[tuple[str, int], StgReference] = {}
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.reader(f):
                if not row or row[0].startswith("#"):
                    continue
                graph, procs, *values = (c.strip() for c in row)
                lower = float(values[0])
                best = float(values[1]) if len(values) > 1 and values[1] else lower
                out[(graph, int(procs))] = StgReference(graph, int(procs), lower, best)
    return out
