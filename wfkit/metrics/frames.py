"""The frame schemas shared by the in-memory recorder and the SQLite run store.

Recorders keep plain rows (lists or tuples in schema order); pandas is imported only when a
frame is asked for. Every frame has the same columns and dtypes whether it has rows or not:
strings as pandas ``string``, counts as nullable ``Int64``, timestamps as UTC datetimes and
durations as float seconds.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "WORKFLOW_COLUMNS",
    "TASK_COLUMNS",
    "INTEGRATION_COLUMNS",
    "FLOW_STEP_COLUMNS",
    "AGENT_LOAD_COLUMNS",
    "CHANGE_COLUMNS",
    "RESOURCE_COLUMNS",
    "build_frame",
    "child_of",
    "agent_load",
]

Schema = Sequence[tuple[str, str]]
_NAN = float("nan")
TIME_DTYPE = "datetime64[ns, UTC]"  # one resolution whatever pandas infers

# "time" columns hold UNIX seconds and become UTC datetimes; "object" columns are left alone.
WORKFLOW_COLUMNS: Schema = (
    ("run_id", "string"),
    ("workflow_id", "string"),
    ("status", "string"),
    ("started_at", "time"),
    ("finished_at", "time"),
    ("duration", "float64"),
    ("total_tasks", "Int64"),
    ("successful_tasks", "Int64"),
    ("failed_tasks", "Int64"),
    ("skipped_tasks", "Int64"),
    ("cancelled_tasks", "Int64"),
    ("resumed_tasks", "Int64"),
    ("participants", "Int64"),
    ("participant_ids", "object"),
    ("policy", "string"),
    ("params", "object"),  # {name: value} the run ran with
    ("parent_run_id", "string"),  # set for a sub-workflow's run (ctx.run_workflow)
    ("parent_task_id", "string"),
)

TASK_COLUMNS: Schema = (
    ("run_id", "string"),
    ("workflow_id", "string"),
    ("task_id", "string"),
    ("agent_id", "string"),
    ("status", "string"),
    ("attempt", "Int64"),
    ("started_at", "time"),
    ("finished_at", "time"),
    ("duration", "float64"),
    ("error", "string"),
    ("final", "boolean"),
    ("cached", "boolean"),  # completed from the result cache, without running
    ("parent_task_id", "string"),  # a mapped child's parent (``parse`` for ``parse[3]``)
    ("map_index", "Int64"),  # a mapped child's index
)

INTEGRATION_COLUMNS: Schema = (
    ("run_id", "string"),
    ("flow_id", "string"),
    ("message_id", "string"),
    ("status", "string"),
    ("success", "boolean"),
    ("delivered_to", "object"),
    ("endpoints", "Int64"),
    ("transformations", "Int64"),
    ("steps", "Int64"),
    ("retries", "Int64"),
    ("error", "string"),
    ("started_at", "time"),
    ("finished_at", "time"),
    ("duration", "float64"),
    ("source", "string"),
)

FLOW_STEP_COLUMNS: Schema = (
    ("run_id", "string"),
    ("flow_id", "string"),
    ("message_id", "string"),
    ("step", "string"),
    ("kind", "string"),
    ("status", "string"),
    ("attempts", "Int64"),
    ("started_at", "time"),
    ("finished_at", "time"),
    ("duration", "float64"),
    ("error", "string"),
)

CHANGE_COLUMNS: Schema = (  # one commit to a coordination session's shared state
    ("session_id", "string"),
    ("version", "Int64"),
    ("timestamp", "time"),
    ("participant", "string"),
    ("keys", "object"),  # the keys written, as a tuple
    ("changes", "object"),  # {key: value}, "<deleted>" for a deletion
    ("strategy", "string"),  # how a stale write was decided (None for a fresh one)
)

RESOURCE_COLUMNS: Schema = (  # one finished request for a shared resource
    ("resource_id", "string"),
    ("participant", "string"),
    ("requested_at", "time"),
    ("acquired_at", "time"),  # None: it never got the resource
    ("ended_at", "time"),
    ("waited", "float64"),
    ("held", "float64"),
    ("outcome", "string"),  # released, expired, cancelled or timeout
)

AGENT_LOAD_COLUMNS: Schema = (
    ("agent_id", "string"),
    ("timestamp", "time"),
    ("load", "Int64"),
    ("capacity", "Int64"),
    ("utilization", "float64"),
)


def child_of(task_id: str, static: Container[str]) -> tuple[str | None, int | None]:
    """``(parent, index)`` for a mapped child ``parent[index]`` of a run whose own tasks are
    ``static``; ``(None, None)`` for every other task."""
    if task_id.endswith("]") and task_id not in static:
        k = task_id.rfind("[")
        index = task_id[k + 1 : -1]
        if k > 0 and index.isdigit() and task_id[:k] in static:
            return task_id[:k], int(index)
    return None, None


def with_map_columns(
    rows: Iterable[Sequence[Any]], static_of: Mapping[str, Container[str]]
) -> list[tuple[Any, ...]]:
    """Task rows (run id first, task id third) with ``parent_task_id`` and ``map_index``
    appended; ``static_of[run_id]`` holds the run's own task ids."""
    out = []
    empty: frozenset[str] = frozenset()
    for row in rows:
        parent, index = child_of(row[2], static_of.get(row[0], empty))
        out.append((*row, parent, index))
    return out


def build_frame(rows: Iterable[Sequence[Any]], schema: Schema) -> pd.DataFrame:
    """A DataFrame with exactly ``schema``'s columns and dtypes from rows in schema order."""
    import pandas as pd

    names = [name for name, _ in schema]
    rows = [tuple(r) for r in rows]
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    data: dict[str, Any] = {}
    for (name, kind), values in zip(schema, columns, strict=True):
        if kind in ("time", "float64"):
            floats = pd.Series([_NAN if v is None else v for v in values], dtype="float64")
            data[name] = (
                pd.to_datetime(floats, unit="s", utc=True).astype(TIME_DTYPE)
                if kind == "time" else floats
            )
        elif kind == "object":
            data[name] = pd.Series(list(values), dtype="object")
        else:
            data[name] = pd.Series(list(values), dtype="object").astype(kind)
    return pd.DataFrame(data, columns=names)


def agent_load(tasks: Any, capacities: Mapping[str, int]) -> Any:
    """Each agent's load over time from a task frame's attempt intervals.

    One row per agent and instant at which its load changed: the number of attempts it was
    running right after that instant, its capacity and load / capacity. An attempt still
    running keeps its agent loaded until now; one cut short by a crash is left out.
    """
    import pandas as pd

    ran = tasks[tasks["agent_id"].notna() & tasks["started_at"].notna()]
    if "status" in ran.columns:  # no end and not running: cut short by a crash, leave it out
        cut_short = ran["finished_at"].isna() & ran["status"].ne("running").fillna(True)
        ran = ran[~cut_short.astype(bool)]
    if ran.empty:
        return build_frame([], AGENT_LOAD_COLUMNS)
    starts = pd.DataFrame({"agent_id": ran["agent_id"], "timestamp": ran["started_at"], "d": 1})
    ended = ran[ran["finished_at"].notna()]
    ends = pd.DataFrame({"agent_id": ended["agent_id"], "timestamp": ended["finished_at"], "d": -1})
    steps = pd.concat([starts, ends], ignore_index=True)
    steps = steps.sort_values(["agent_id", "timestamp", "d"], kind="stable", ignore_index=True)
    steps["load"] = steps.groupby("agent_id", sort=False)["d"].cumsum()
    steps = steps.drop_duplicates(["agent_id", "timestamp"], keep="last")
    out = pd.DataFrame(
        {
            "agent_id": steps["agent_id"].astype("string"),
            "timestamp": steps["timestamp"].astype(TIME_DTYPE),
            "load": steps["load"].astype("Int64"),
            "capacity": steps["agent_id"].map(dict(capacities)).astype("Int64"),
        }
    ).reset_index(drop=True)
    out["utilization"] = (out["load"] / out["capacity"]).astype("float64")
    return out
