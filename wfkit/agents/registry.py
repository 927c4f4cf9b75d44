"""The orchestrator's agents: a dict by agent id that renders itself in notebooks."""

from __future__ import annotations

from typing import Any

from wfkit.agents.model import AgentProfile

__all__ = ["AgentRegistry"]


class AgentRegistry(dict[str, AgentProfile]):
    """``orchestrator.agents``: agent id -> :class:`AgentProfile`, a plain dict in code.

    A bare ``orch.agents`` in a cell shows a table (capabilities, capacity, running tasks,
    learned success rate and duration); IPython's plain text and logs get the same table in
    fixed-width text.
    """

    def _repr_html_(self) -> str:
        from wfkit.jupyter.reprs import agents_html

        return agents_html(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        if cycle:
            p.text("AgentRegistry(...)")
            return
        from wfkit.jupyter.reprs import agents_text

        p.text(agents_text(self))
