"""``wfkit.demo`` is :mod:`wfkit.app.demo`, the Gapminder workflow of ``wfkit demo``; the name
stays for notebooks that import it."""

from wfkit.app.demo import build_demo, run_demo

__all__ = ["build_demo", "run_demo"]
