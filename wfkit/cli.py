"""``wfkit.cli`` is :mod:`wfkit.app.cli`, the ``wfkit`` command; the name stays for code that
imports it (``python -m wfkit.cli`` works too)."""

import sys

from wfkit.app.cli import build_parser, main
from wfkit.app.jsonout import to_json

__all__ = ["main", "build_parser", "to_json"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
