"""Lazy re-exports for package facades (PEP 562).

A facade names each export's module; the module is imported on first use, so ``import wfkit``
never pays for pandas, Plotly, SQLAlchemy or Dask that a session does not use.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], table: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the package whose ``globals()`` is ``namespace``.

    ``table`` maps an exported name to the module that defines it, or that is it (a name equal
    to the module's last part). A loaded value is kept in ``namespace``: later lookups are plain.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        mod = import_module(module)
        value = mod if module.endswith("." + name) else getattr(mod, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace.get("__all__", ()))

    return __getattr__, __dir__
