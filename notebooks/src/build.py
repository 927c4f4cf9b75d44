"""Build the notebooks from their sources: ``python notebooks/src/build.py [--check]``.

Each ``NN_name.py`` here is a notebook in the percent format: ``# %%`` starts a code cell,
``# %% [markdown]`` a markdown cell (its lines are ``# ``-prefixed), and
``# %% tags=["parameters"]`` tags a cell. The ``.ipynb`` files are written next to this
folder without outputs. ``--check`` fails when a notebook differs from its source or
stores outputs (``make test`` runs it).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
OUT = HERE.parent
_MARK = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def cells_of(source: str) -> list:
    cells, kind, tags, lines = [], None, [], []

    def flush() -> None:
        text = "\n".join(lines).strip("\n")
        if kind is None:
            return
        if kind == "markdown":
            text = "\n".join(re.sub(r"^# ?", "", ln) for ln in text.splitlines())
            cell = nbformat.v4.new_markdown_cell(text)
        else:
            cell = nbformat.v4.new_code_cell(text)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)

    for line in source.splitlines():
        m = _MARK.match(line)
        if m:
            flush()
            kind = "markdown" if m.group("md") else "code"
            tags = json.loads(m.group("tags")) if m.group("tags") else []
            lines = []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build(src: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells_of(src.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb.cells):  # stable ids: rebuilding changes nothing
        cell["id"] = f"{src.stem[:2]}-{i:02d}"
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


def stored_outputs(path: Path) -> list[str]:
    """Cells of a stored notebook that keep outputs or execution counts."""
    nb = nbformat.read(path, as_version=4)
    return [
        f"{path.name} cell {i}"
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    problems = []
    for src in sorted(HERE.glob("[0-9][0-9]_*.py")):
        target = OUT / f"{src.stem}.ipynb"
        text = nbformat.writes(build(src)) + "\n"
        if check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                problems.append(f"{target.name} differs from src/{src.name}: run "
                                f"python notebooks/src/build.py")
        else:
            target.write_text(text, encoding="utf-8")
    for path in sorted(OUT.glob("*.ipynb")):
        problems += [f"{p} has outputs stored: clear them (jupyter nbconvert "
                     f"--clear-output --inplace {path.name})" for p in stored_outputs(path)]
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
