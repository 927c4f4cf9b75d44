"""Run results as plain JSON data, for ``wfkit run --json`` and ``wfkit demo --json``."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["to_json", "jsonable"]


def jsonable(value: Any) -> Any:
    """Make ``value`` JSON-friendly: frames as records, numpy scalars as numbers, else str."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a DataFrame
        return jsonable(value.to_dict(orient="records"))
    if hasattr(value, "tolist"):  # numpy arrays and scalars, pandas Series
        return jsonable(value.tolist())
    if hasattr(value, "item"):
        return jsonable(value.item())
    return repr(value)


def to_json(result: Any) -> dict[str, Any]:
    """A run result as plain JSON data (task results without the exception objects; a result
    too deep or too large for JSON is replaced by a note saying so)."""
    from wfkit.metrics.decode import Damaged, measure

    out = {k: v for k, v in dict(result).items() if k != "task_results"}
    tasks = {}
    for tid, r in result["task_results"].items():
        entry = jsonable({k: v for k, v in r.items() if k not in ("exception", "result")})
        try:
            measure(r.get("result"), "the result", strict=False)  # bounded before walking it
            entry["result"] = jsonable(r.get("result"))
            json.dumps(entry["result"], allow_nan=False)
        except (Damaged, RecursionError, ValueError) as exc:
            entry["result"] = f"<not shown: {exc}>"
        tasks[tid] = entry
    out = jsonable(out)
    out["task_results"] = tasks
    return out
