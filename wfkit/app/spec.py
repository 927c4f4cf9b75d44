"""Declarative workflow specs: the YAML behind ``wfkit run SPEC.yaml``.

A spec names a workflow, its agents and its tasks::

    workflow: sales_report
    policy: least_loaded
    params: {year: 2007, region: EU}     # run parameters and defaults: ctx.params in tasks
    agents:
      analyst: {capabilities: [analysis], capacity: 2, handler: "mypkg.agents:analyse"}
    tasks:
      load:   {requires: [analysis], action: "mypkg.tasks:load", retries: 2}
      report: {requires: [analysis], after: [load], priority: 5, timeout: 30}

Loading happens in two stages so that every error can name the file and the line: YAML is
parsed safely into plain data plus a map from each key path to its line (from yaml's node
marks), ``--set key=value`` overrides edit that data, and validation then builds the model
objects. ``--set params.year=2010`` sets a run parameter; a name the spec's ``params`` does
not declare is refused like any unknown key. Whatever the input, the loader raises nothing but
:class:`wfkit.SpecError`.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import importlib.machinery
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wfkit.errors import CycleError, SpecError, ValidationError

__all__ = ["Spec", "load_spec", "parse_spec", "apply_overrides"]

Path_ = tuple[Any, ...]

_MAX_NODES = 100_000  # alias expansion ("billion laughs") stops here
_MAX_DEPTH = 64  # recursive aliases and absurd nesting stop here

_TOP = {
    "workflow": "the workflow id (a string)",
    "description": "a sentence about the workflow",
    "policy": "least_loaded, fastest, round_robin, heft or 'module:callable'",
    "fail_fast": "true to stop at the first failed task",
    "store": "a SQLite run store file, relative to the spec",
    "time_scale": "seconds per estimated unit for 'simulated' handlers",
    "backoff": "first retry delay in seconds",
    "max_backoff": "longest retry delay in seconds",
    "params": "run parameters and their defaults, read by tasks as ctx.params",
    "agents": "a mapping of agent id to agent",
    "tasks": "a mapping of task id to task",
}
_AGENT = {
    "name": "a display name",
    "capabilities": "a list of capability names",
    "capacity": "how many tasks it runs at once",
    "handler": "'module:function' doing the work of tasks without an action, or 'simulated'",
    "availability": "false to keep the agent out of runs",
    "cost_per_second": "its cost, for the optimiser",
}
_TASK = {
    "description": "a sentence about the task",
    "requires": "the capabilities an agent needs to run it",
    "after": "the ids of the tasks it waits for",
    "priority": "higher runs first among ready tasks",
    "estimate": "its estimated duration in seconds",
    "action": "'module:function' doing its work, called as function(ctx, **args)",
    "args": "keyword arguments for the action",
    "retries": "extra attempts after a failure",
    "timeout": "seconds each attempt may take",
    "map": "the task whose result (a list) it runs over, once per item (ctx.item)",
    "when": "a condition on inputs and params ({field, op, value}; all, any, not)",
    "trigger": "which endings of its dependencies let it run (all_success, all_done, "
               "one_success, none_failed, none_failed_min_one_success)",
}


@dataclass
class Spec:
    """A loaded, validated spec: ready-made model objects and run options."""

    path: str
    workflow_id: str
    tasks: list[Any]
    agents: list[Any]
    policy: Any = "least_loaded"
    description: str = ""
    fail_fast: bool = False
    store: str | None = None
    backoff: float = 0.1
    max_backoff: float = 30.0
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    def orchestrator(self, *, store: Any = None, **kwargs: Any) -> Any:
        """A fresh orchestrator with this spec's agents registered (``create_workflow`` is async:
        ``await orch.create_workflow(spec.workflow_id, spec.tasks)`` adds the workflow)."""
        from wfkit.agents import CollectiveAgentWorkflowOrchestrator

        orch = CollectiveAgentWorkflowOrchestrator(
            policy=self.policy,
            store=store if store is not None else self.store,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            **kwargs,
        )
        for agent in self.agents:
            orch.register_agent(agent)
        return orch

    async def run(self, *, store: Any = None, resume: str | None = None, **kwargs: Any) -> Any:
        """Run the spec on a fresh orchestrator and return the RunResult."""
        orch = self.orchestrator(store=store, progress=kwargs.pop("progress", None))
        try:
            await orch.create_workflow(self.workflow_id, self.tasks, params=self.params)
            return await orch.execute_workflow(
                self.workflow_id, fail_fast=self.fail_fast, resume=resume, **kwargs
            )
        finally:
            orch.close()


# -- stage 1: YAML to plain data with line numbers -------------------------------------------


class _Lines(dict):
    """Key path -> 1-based line of that value in the file (missing for --set values)."""

    def at(self, path: Path_) -> int | None:
        while path:
            if path in self:
                return self[path]
            path = path[:-1]
        return self.get((), None)


def parse_spec(text: str | bytes, path: str = "<spec>") -> tuple[Any, _Lines]:
    """Parse YAML safely into plain data and the line of every key path."""
    return _parse(text, path, "the spec is empty; start with 'workflow: <id>'")


def _parse(text: str | bytes, path: str, empty: str | None) -> tuple[Any, _Lines]:
    """YAML to plain data within the node and depth bounds; ``empty``: the error for a
    document with nothing in it (None: it is read as None)."""
    import yaml

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8", path=path
            ) from None
    lines = _Lines()
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # checks the characters at once
        node = loader.get_single_node()
        if node is None:
            if empty is not None:
                raise SpecError(empty, path=path, line=1)
            return None, lines
        counter = [0]
        data = _to_data(loader, node, (), lines, counter, path, 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SpecError(f"this is not valid YAML: {what}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"this is not valid YAML: {exc}", path=path) from None
    except RecursionError:
        raise SpecError(
            f"the YAML is nested too deeply (at most {_MAX_DEPTH} levels): flatten it", path=path
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


def _merge_parts(
    node: Any, path: str, counter: list[int], depth: int
) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
    """A mapping node's own (key, value) node pairs, and the pairs merged in by ``<<``
    (``<<: *base`` or ``<<: [*first, *second]``), earlier ones taking precedence."""
    import yaml

    own: list[tuple[Any, Any]] = []
    sources: list[Any] = []
    for key_node, value_node in node.value:
        if key_node.tag != "tag:yaml.org,2002:merge":
            own.append((key_node, value_node))
            continue
        items = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        if not items or not all(isinstance(item, yaml.MappingNode) for item in items):
            raise SpecError("a merge key (<<) takes a mapping or a list of mappings, such as "
                            "<<: *base", path=path, line=key_node.start_mark.line + 1)
        sources.extend(items)
    merged: list[tuple[Any, Any]] = []
    for source in sources:
        counter[0] += 1
        if counter[0] > _MAX_NODES or depth > _MAX_DEPTH:
            raise SpecError(
                "the spec is too large or nested too deeply (do merge keys (<<) merge a "
                "mapping into itself?)", path=path, line=source.start_mark.line + 1,
            )
        source_own, source_merged = _merge_parts(source, path, counter, depth + 1)
        merged.extend(source_own)
        merged.extend(source_merged)
    return own, merged


def _to_data(
    loader: Any, node: Any, at: Path_, lines: _Lines, counter: list[int], path: str, depth: int
) -> Any:
    import yaml

    line = node.start_mark.line + 1
    counter[0] += 1
    if counter[0] > _MAX_NODES or depth > _MAX_DEPTH:
        raise SpecError(
            "the spec is too large or nested too deeply (are aliases expanding recursively?)",
            path=path,
            line=line,
        )
    lines.setdefault(at, line)
    if isinstance(node, yaml.MappingNode):
        own, merged = _merge_parts(node, path, counter, depth)

        def key_of(key_node: Any) -> tuple[str, int]:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("a key must be a plain name", path=path, line=key_line)
            if key_node.tag == "tag:yaml.org,2002:value":  # a key written as '='
                key_node.tag = "tag:yaml.org,2002:str"
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key) if isinstance(key, int | float | bool) or key is None else None
                if key is None:
                    raise SpecError("a key must be a plain name", path=path, line=key_line)
            return key, key_line

        # YAML's merge rules: the mapping's own keys override merged ones, and of the merged
        # mappings the first listed wins. A key written twice in the mapping is a mistake.
        pairs: dict[str, tuple[int, Any, bool]] = {}  # key -> (line, value node, own key)
        for key_node, value_node in merged:
            key, key_line = key_of(key_node)
            pairs.setdefault(key, (key_line, value_node, False))
        for key_node, value_node in own:
            key, key_line = key_of(key_node)
            if key in pairs and pairs[key][2]:
                raise SpecError(
                    f"key {key!r} appears twice (first on line {pairs[key][0]}); "
                    f"keep only one",
                    path=path,
                    line=key_line,
                )
            pairs[key] = (key_line, value_node, True)
        out: dict[str, Any] = {}
        for key, (key_line, value_node, _) in pairs.items():
            lines[(*at, key)] = key_line
            out[key] = _to_data(
                loader, value_node, (*at, key), lines, counter, path, depth + 1
            )
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_data(loader, item, (*at, i), lines, counter, path, depth + 1)
            for i, item in enumerate(node.value)
        ]
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date like 2024-13-45
        raise SpecError(f"this value cannot be read: {exc}; quote it to keep it as text",
                        path=path, line=line) from None


# -- --set key=value ------------------------------------------------------------------------


def apply_overrides(data: Any, overrides: Iterable[str] | Mapping[str, Any]) -> Any:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to parsed spec data."""
    if isinstance(overrides, Mapping):
        items = [(str(k), v, f"--set {k}") for k, v in overrides.items()]
        for _, value, where in items:
            _check_bounds(value, where)
    else:
        items = []
        for raw in overrides:
            key, sep, text = str(raw).partition("=")
            shown = str(raw) if len(str(raw)) <= 60 else f"{str(raw)[:57]}..."
            where = f"--set {shown}"
            if not sep or not key.strip():
                raise SpecError(
                    "--set needs key=value, for example --set tasks.load.retries=3", path=where
                )
            # parsed like the file: the same bounds on size and nesting, the same errors
            value = _parse(text, where, None)[0] if text.strip() else ""
            items.append((key.strip(), value, where))
    if not isinstance(data, dict):
        raise SpecError("the spec must be a mapping before --set can change it")
    for key, value, where in items:
        parts = key.split(".")
        if any(not p for p in parts):
            raise SpecError(f"{key!r} is not a key path like tasks.load.retries", path=where)
        target = data
        for i, part in enumerate(parts[:-1]):
            nxt = target.get(part)
            if nxt is None:
                nxt = target[part] = {}
            if not isinstance(nxt, dict):
                done = ".".join(parts[: i + 1])
                raise SpecError(
                    f"{done} is a {type(nxt).__name__}, not a mapping: it has no key "
                    f"{parts[i + 1]!r}",
                    path=where,
                )
            target = nxt
        target[parts[-1]] = value
    return data


# -- stage 2: plain data to model objects ---------------------------------------------------


class _Checker:
    def __init__(self, path: str, lines: _Lines) -> None:
        self.path = path
        self.lines = lines

    def error(self, at: Path_, message: str) -> SpecError:
        return SpecError(message, path=self.path, line=self.lines.at(at))

    def name(self, at: Path_) -> str:
        return ".".join(str(p) for p in at) or "the spec"

    def mapping(self, value: Any, at: Path_, allowed: Mapping[str, str] | None) -> dict:
        if not isinstance(value, dict):
            raise self.error(at, f"{self.name(at)} must be a mapping, got {_kind(value)}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    close = difflib.get_close_matches(key, allowed, n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise self.error(
                        (*at, key),
                        f"unknown key {key!r} in {self.name(at)}: {hint}"
                        f"use one of {', '.join(allowed)}",
                    )
        return value

    def string(self, value: Any, at: Path_) -> str:
        if not isinstance(value, str) or not value.strip():
            hint = " (quote it)" if value is not None and not isinstance(value, str) else ""
            raise self.error(
                at, f"{self.name(at)} must be a non-empty string, got {_kind(value)}{hint}"
            )
        return value

    def names(self, value: Any, at: Path_) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.error(at, f"{self.name(at)} must be a list of names, got {_kind(value)}")
        for i, item in enumerate(value):
            self.string(item, (*at, i))
        return list(dict.fromkeys(value))

    def number(
        self, value: Any, at: Path_, *, minimum: float = -math.inf, integer: bool = False,
        above: bool = False,
    ) -> Any:
        kind = "a whole number" if integer else "a number"
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or (isinstance(value, float) and not
                                                  math.isfinite(value)):
            raise self.error(at, f"{self.name(at)} must be {kind}, got {_kind(value)}")
        if value < minimum or (above and value == minimum):
            sign = ">" if above else ">="
            raise self.error(at, f"{self.name(at)} must be {sign} {minimum:g}, got {value!r}")
        return value

    def boolean(self, value: Any, at: Path_) -> bool:
        if not isinstance(value, bool):
            raise self.error(at, f"{self.name(at)} must be true or false, got {_kind(value)}")
        return value

    def callable_ref(self, value: Any, at: Path_, base: Path | None) -> Callable[..., Any]:
        ref = self.string(value, at)
        module_name, sep, attr = ref.partition(":")
        if not sep or not module_name.strip() or not attr.strip():
            raise self.error(
                at, f"{self.name(at)} {ref!r} must look like 'package.module:function'"
            )
        module_name, attr = module_name.strip(), attr.strip()
        try:
            module = _import(module_name, base)
        except _ShadowError as exc:
            raise self.error(at, f"{self.name(at)} {ref!r}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - any import failure is the spec's to fix
            raise self.error(
                at,
                f"{self.name(at)} {ref!r} does not import: {type(exc).__name__}: {exc}. "
                f"Check the module name, that it is installed or next to the spec, and that "
                f"it imports cleanly",
            ) from None
        obj: Any = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except Exception:  # noqa: BLE001 - a missing or broken attribute
                raise self.error(
                    at, f"{self.name(at)} {ref!r}: module {module_name!r} has no {attr!r}"
                ) from None
        if not callable(obj):
            raise self.error(
                at, f"{self.name(at)} {ref!r} is a {type(obj).__name__}, not a function"
            )
        return obj


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, bool | int | float):
        return f"{value!r}"
    return f"a {type(value).__name__}"


_SPEC_MODULES: dict[str, Any] = {}  # top-level name -> the module loaded from a spec's folder


class _ShadowError(ImportError):
    pass


def _import(module_name: str, base: Path | None) -> Any:
    """Import a module. One beside the spec file is imported from there by its location, and
    only under a name nothing else in the process holds: a ``pickle.py`` beside a spec can
    never stand in for the standard library's, and a spec's ``tasks.py`` replaces the
    ``tasks.py`` of a spec loaded before it, not an installed ``tasks``."""
    if base is None:
        return importlib.import_module(module_name)
    top = module_name.partition(".")[0]
    local = importlib.machinery.PathFinder.find_spec(top, [os.fspath(base)])
    if local is None:  # not beside the spec: an installed module
        return importlib.import_module(module_name)
    current = sys.modules.get(top)
    if current is None or current is not _SPEC_MODULES.get(top):
        other = current.__spec__ if current is not None else importlib.util.find_spec(top)
        if other is not None and not _within(other, base):
            where = other.origin or ", ".join(other.submodule_search_locations or ()) or "built in"
            raise _ShadowError(
                f"the module {top!r} beside the spec ({local.origin or base / top}) has the "
                f"name of another module ({where}), which it must not replace; rename the file "
                f"beside the spec and the references to it"
            )
    if current is None or not _within(current.__spec__, base):
        for name in [n for n in sys.modules if n == top or n.startswith(f"{top}.")]:
            del sys.modules[name]  # the same name from an earlier spec's folder
        module = importlib.util.module_from_spec(local)
        sys.modules[top] = _SPEC_MODULES[top] = module
        assert local.loader is not None  # module_from_spec gave a namespace package one
        try:
            local.loader.exec_module(module)
        except BaseException:
            del sys.modules[top]
            _SPEC_MODULES.pop(top, None)
            raise
    return importlib.import_module(module_name)


def _within(found: Any, folder: Path) -> bool:
    """Whether a module spec's file (or a namespace package's folders) is in ``folder``."""
    if found is None:
        return False
    places = [found.origin] if found.origin else list(found.submodule_search_locations or ())
    return any(
        p not in (None, "built-in", "frozen") and Path(p).resolve().is_relative_to(folder)
        for p in places
    )


@contextlib.contextmanager
def _folder_searched(base: Path | None) -> Iterator[None]:
    """The spec's folder at the end of ``sys.path`` while the spec loads (so its modules'
    imports of each other work), and off it afterwards."""
    folder = os.fspath(base) if base is not None else None
    if folder is None or folder in sys.path:
        yield
        return
    sys.path.append(folder)
    try:
        yield
    finally:
        for i in range(len(sys.path) - 1, -1, -1):
            if sys.path[i] == folder:
                del sys.path[i]
                break


def load_spec(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Iterable[str] | Mapping[str, Any] = (),
    *,
    text: str | bytes | None = None,
) -> Spec:
    """Load and validate a spec from a YAML file (or ``text=``, or an already parsed mapping).

    Raises :class:`wfkit.SpecError` naming the file, the line and what to fix.
    """
    base: Path | None = None
    if isinstance(source, Mapping):
        _check_bounds(source, "<spec>")
        path, data, lines = "<spec>", _plain_copy(source), _Lines()
    else:
        path = os.fspath(source)
        raw: str | bytes
        if text is None:
            try:
                raw = Path(path).read_bytes()
            except FileNotFoundError:
                raise SpecError("no such file; check the path", path=path) from None
            except IsADirectoryError:
                raise SpecError("this is a folder, not a spec file", path=path) from None
            except OSError as exc:
                raise SpecError(f"cannot read it: {exc.strerror}", path=path) from None
            base = Path(path).resolve().parent
        else:
            raw = text
        data, lines = parse_spec(raw, path)
    if overrides:
        _check_param_overrides(data, overrides, path)
        data = apply_overrides(data, overrides)
    with _folder_searched(base):
        return _build(data, lines, path, base)


def _check_param_overrides(
    data: Any, overrides: Iterable[str] | Mapping[str, Any], path: str
) -> None:
    """``--set params.NAME=...`` must name a parameter the spec declares (a typo would
    otherwise add a parameter no task reads, and the run would use the default)."""
    keys = (
        [str(k) for k in overrides] if isinstance(overrides, Mapping)
        else [str(raw).partition("=")[0].strip() for raw in overrides]
    )
    declared = data.get("params") if isinstance(data, dict) else None
    names = [str(n) for n in declared] if isinstance(declared, dict) else []
    for key in keys:
        head, _, rest = key.partition(".")
        if head != "params" or not rest:
            continue
        name = rest.split(".")[0]
        if name in names:
            continue
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        known = (f"the spec declares {', '.join(map(repr, names))}" if names
                 else "the spec declares none: add them under 'params:'")
        raise SpecError(f"--set {key}: no parameter {name!r}: {hint}{known}", path=path)


def _check_bounds(value: Any, where: str) -> None:
    """Data given as Python objects (a mapping source, mapping overrides) within the bounds a
    parsed file has: later steps (JSON, the run store) must not meet a RecursionError."""
    stack = [(value, 0)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if depth > _MAX_DEPTH or seen > _MAX_NODES:
            raise SpecError(
                f"the value is too large or nested too deeply (at most {_MAX_DEPTH} levels and "
                f"{_MAX_NODES:,} values): flatten it", path=where,
            )
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)


def _plain_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_copy(v) for v in value]
    return value


def _build(data: Any, lines: _Lines, path: str, base: Path | None) -> Spec:
    from wfkit.agents import AgentProfile, WorkflowTask, simulated_handler
    from wfkit.agents.policies import POLICIES

    c = _Checker(path, lines)
    if not isinstance(data, dict):
        raise c.error((), f"a spec is a mapping with 'workflow', 'agents' and 'tasks', got "
                          f"{_kind(data)}")
    c.mapping(data, (), _TOP)
    for required in ("workflow", "agents", "tasks"):
        if required not in data:
            raise c.error((), f"the spec has no {required!r}: add {required}: "
                              f"{_TOP[required]}")
    workflow_id = c.string(data["workflow"], ("workflow",))
    description = c.string(data["description"], ("description",)) if data.get(
        "description") is not None else ""

    policy: Any = data.get("policy", "least_loaded")
    if not isinstance(policy, str) or not policy.strip():
        raise c.error(("policy",), f"policy must be the name of a policy ({', '.join(POLICIES)})"
                                   f" or 'module:callable', got {_kind(policy)}")
    if ":" in policy:
        policy = c.callable_ref(policy, ("policy",), base)
    elif policy not in POLICIES:
        c.string(policy, ("policy",))
        close = difflib.get_close_matches(policy, POLICIES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise c.error(("policy",), f"unknown policy {policy!r}: {hint}use one of "
                                   f"{', '.join(POLICIES)} or 'module:callable'")
    fail_fast = c.boolean(data.get("fail_fast", False), ("fail_fast",))
    store = data.get("store")
    if store is not None:
        store = c.string(store, ("store",))
        if base is not None and not os.path.isabs(store):
            store = os.fspath(base / store)
    params = data.get("params")
    params = {} if params is None else dict(c.mapping(params, ("params",), None))
    time_scale = c.number(data.get("time_scale", 1.0), ("time_scale",), minimum=0)
    backoff = c.number(data.get("backoff", 0.1), ("backoff",), minimum=0)
    max_backoff = c.number(data.get("max_backoff", 30.0), ("max_backoff",), minimum=0)

    agents_data = c.mapping(data["agents"], ("agents",), None)
    if not agents_data:
        raise c.error(("agents",), "agents is empty: add at least one agent")
    agents = []
    for agent_id, spec in agents_data.items():
        at = ("agents", agent_id)
        spec = {} if spec is None else spec
        c.mapping(spec, at, _AGENT)
        caps = c.names(spec.get("capabilities", []), (*at, "capabilities"))
        capacity = c.number(spec.get("capacity", 1), (*at, "capacity"), minimum=1,
                            integer=True)
        handler = None
        if spec.get("handler") is not None:
            if spec["handler"] == "simulated":
                handler = simulated_handler(time_scale)
            else:
                handler = c.callable_ref(spec["handler"], (*at, "handler"), base)
        metrics = None
        if "cost_per_second" in spec:
            cost = c.number(spec["cost_per_second"], (*at, "cost_per_second"), minimum=0)
            metrics = {"cost_per_second": cost}
        name = c.string(spec["name"], (*at, "name")) if "name" in spec else agent_id
        availability = c.boolean(spec.get("availability", True), (*at, "availability"))
        try:
            agents.append(AgentProfile(agent_id, name, caps, metrics, availability,
                                       capacity=capacity, handler=handler))
        except ValidationError as exc:
            raise c.error(at, f"agent {agent_id!r}: {exc}") from None

    tasks_data = c.mapping(data["tasks"], ("tasks",), None)
    if not tasks_data:
        raise c.error(("tasks",), "tasks is empty: add at least one task")
    tasks = []
    for task_id, spec in tasks_data.items():
        at = ("tasks", task_id)
        spec = {} if spec is None else spec
        c.mapping(spec, at, _TASK)
        requires = c.names(spec.get("requires", []), (*at, "requires"))
        after = c.names(spec.get("after", []), (*at, "after"))
        for i, dep in enumerate(after):
            if dep not in tasks_data:
                close = difflib.get_close_matches(dep, [str(t) for t in tasks_data], n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise c.error((*at, "after", i), f"task {task_id!r} waits for {dep!r}, which "
                                                 f"is not a task: {hint}fix the name or add it")
        priority = c.number(spec.get("priority", 0), (*at, "priority"))
        estimate = c.number(spec.get("estimate", 1.0), (*at, "estimate"), minimum=0)
        retries = c.number(spec.get("retries", 0), (*at, "retries"), minimum=0, integer=True)
        timeout = spec.get("timeout")
        if timeout is not None:
            timeout = c.number(timeout, (*at, "timeout"), minimum=0, above=True)
        action = None
        if spec.get("action") is not None:
            action = c.callable_ref(spec["action"], (*at, "action"), base)
        args = spec.get("args")
        if args is not None:
            c.mapping(args, (*at, "args"), None)
            if action is None:
                raise c.error((*at, "args"), f"task {task_id!r} has args but no action: "
                                             f"args are passed to the action")
            action = functools.partial(action, **args)
        description_t = (c.string(spec["description"], (*at, "description"))
                         if spec.get("description") is not None else task_id)
        dynamic = _dynamic_options(c, spec, at, task_id, tasks_data)
        try:
            tasks.append(WorkflowTask(task_id, description_t, requires, priority, estimate,
                                      after, action=action, retries=retries, timeout=timeout,
                                      **dynamic))
        except ValidationError as exc:
            raise c.error(at, f"task {task_id!r}: {exc}") from None

    _check_graph(c, tasks, agents)
    return Spec(path=path, workflow_id=workflow_id, tasks=tasks, agents=agents, policy=policy,
                description=description, fail_fast=fail_fast, store=store, backoff=backoff,
                max_backoff=max_backoff, params=params, data=data)


def _dynamic_options(
    c: _Checker, spec: Mapping[str, Any], at: Path_, task_id: str, tasks: Mapping[str, Any]
) -> dict[str, Any]:
    """A task's ``map``, ``when`` and ``trigger``, each checked at its line."""
    from wfkit.agents.model import TRIGGER_RULES
    from wfkit.conditions import validate_condition
    from wfkit.errors import ConditionError

    out: dict[str, Any] = {}
    if spec.get("map") is not None:
        source = c.string(spec["map"], (*at, "map"))
        if source not in tasks or source == task_id:
            close = difflib.get_close_matches(
                source, [str(t) for t in tasks if t != task_id], n=1
            )
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise c.error((*at, "map"), f"task {task_id!r} maps over {source!r}, which is not "
                                        f"another task: {hint}fix the name or add it")
        out["map"] = source
    if spec.get("when") is not None:
        try:
            validate_condition(spec["when"])
        except ConditionError as exc:
            raise c.error((*at, "when"), f"task {task_id!r}: {exc}") from None
        if callable(spec["when"]):  # pragma: no cover - YAML gives no callables
            raise c.error((*at, "when"), "when must be a condition mapping")
        out["when"] = spec["when"]
    if spec.get("trigger") is not None:
        trigger = c.string(spec["trigger"], (*at, "trigger"))
        if trigger not in TRIGGER_RULES:
            close = difflib.get_close_matches(trigger, TRIGGER_RULES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise c.error((*at, "trigger"), f"unknown trigger {trigger!r}: {hint}use one of "
                                            f"{', '.join(TRIGGER_RULES)}")
        out["trigger"] = trigger
    return out


def _check_graph(c: _Checker, tasks: list[Any], agents: list[Any]) -> None:
    """Cycles, capabilities nobody has, and tasks nobody can do, each at its line."""
    from wfkit.graph import capable_agents, topological_order

    by_id = {t.task_id: t for t in tasks}
    try:
        topological_order(by_id)
    except CycleError as exc:
        first, closing = exc.cycle[0], exc.cycle[-1]
        deps = by_id[first].dependencies
        at: Path_ = ("tasks", first, "after", deps.index(closing)) if closing in deps else (
            "tasks", first)
        loop = " -> ".join([*exc.cycle, exc.cycle[0]])
        raise c.error(at, f"the tasks wait for each other in a cycle: {loop}; remove one of "
                          f"these 'after' entries") from None
    capable_by_need = capable_agents(by_id, agents, strict=False)
    for task in tasks:
        need = task.capability_set
        capable = capable_by_need[need]
        at = ("tasks", task.task_id, "requires")
        if not capable:
            available = [a for a in agents if a.availability]
            have = sorted(frozenset().union(*(a.capability_set for a in available)))
            lacking = sorted(need.difference(*(a.capability_set for a in available))) or sorted(
                need)
            raise c.error(at, f"no available agent can run task {task.task_id!r} (needs "
                              f"{', '.join(lacking) or 'an agent'}; agents offer "
                              f"{', '.join(have) or 'nothing'}): add an agent with these "
                              f"capabilities or change requires")
        if task.action is None:
            idle = [a.agent_id for a in capable if a.handler is None]
            if idle:
                raise c.error(("tasks", task.task_id),
                              f"task {task.task_id!r} has no action, and agent(s) "
                              f"{', '.join(map(repr, idle))} that could run it have no handler: "
                              f"give the task an action, or the agents a handler "
                              f"('module:function' or 'simulated')")
