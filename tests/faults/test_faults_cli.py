"""Abuse of the command line: report outputs that would destroy data, spec files that used to
end in tracebacks. Each bad input must exit 2 with a message naming the path (and, for specs,
the line and the fix), change no file, and print no traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from store_faults_support import digest, spec_folder, wfkit, write

from wfkit.cli import main


@pytest.fixture
def store(tmp_path: Path) -> Path:
    spec = spec_folder(tmp_path)
    db = tmp_path / "runs.db"
    assert main(["run", str(spec), "--store", str(db), "--no-progress"]) == 0
    return db


def test_report_refuses_to_write_over_its_own_store(store, capsys):
    before = digest(store)
    link = store.with_name("link.db")
    link.symlink_to(store)
    hard = store.with_name("hard.db")
    os.link(store, hard)
    relative = Path(os.path.relpath(store.parent / "." / store.name))
    for output in (store, link, hard, relative, store.with_name("runs.db-wal")):
        assert main(["report", str(store), "-o", str(output)]) == 2, output
        err = capsys.readouterr().err
        assert f"{output}: is the run store being reported on" in err and "nothing was " in err
        assert digest(store) == before
    # the store given through the link, the output the real file
    assert main(["report", str(link), "-o", str(store)]) == 2
    assert "is the run store being reported on" in capsys.readouterr().err
    assert digest(store) == before and link.is_symlink()


def test_report_refuses_to_overwrite_a_file_that_is_not_a_report(store, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    other_db = tmp_path / "other.db"
    other_db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    for output in (notes, other_db):
        before = digest(output)
        assert main(["report", str(store), "-o", str(output)]) == 2
        err = capsys.readouterr().err
        assert f"{output}: exists and is not an HTML report" in err
        assert digest(output) == before
    # an earlier report, or an empty file, is replaced
    old = tmp_path / "old.html"
    old.write_text("<!DOCTYPE html><html><body>an old report</body></html>")
    empty = tmp_path / "empty.html"
    empty.touch()
    for output in (old, empty):
        assert main(["report", str(store), "-o", str(output)]) == 0
        assert "plotly-graph-div" in output.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_report_through_a_symlink_replaces_the_target_and_keeps_the_link(store, tmp_path):
    real = tmp_path / "reports" / "latest.html"
    real.parent.mkdir()
    real.write_text("<html>old</html>")
    link = tmp_path / "latest.html"
    link.symlink_to(real)
    assert main(["report", str(store), "-o", str(link)]) == 0
    assert link.is_symlink() and "plotly-graph-div" in real.read_text()


def test_report_to_a_folder_or_an_unwritable_path_exits_2_with_the_path_and_reason(
    store, tmp_path
):
    folder = tmp_path / "out"
    folder.mkdir()
    afile = tmp_path / "plain.txt"
    afile.write_text("x")
    cases = [
        (folder, "is a folder; give a file name such as"),
        (afile / "report.html", f"({afile} is a file, not a folder)"),
        (tmp_path / ("x" * 300 + ".html"), "File name too long"),
    ]
    for output, reason in cases:
        res = wfkit("report", str(store), "-o", str(output))
        assert res.returncode == 2, res.stderr
        assert str(output) in res.stderr and reason in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    assert sorted(p.name for p in folder.iterdir()) == []
    assert afile.read_text() == "x"


def test_results_too_deep_or_large_for_json_are_noted_not_a_traceback_or_a_hang(tmp_path):
    (tmp_path / "odd_results.py").write_text(
        "def deep(ctx):\n"
        "    v = []\n"
        "    for _ in range(5000):\n"
        "        v = [v]\n"
        "    return v\n\n"
        "def shared(ctx):\n"
        "    v = [1]\n"
        "    for _ in range(40):\n"
        "        v = [v, v]\n"
        "    return v\n")
    spec = write(tmp_path, """\
        workflow: odd
        agents: {a: {capabilities: [x], capacity: 2}}
        tasks:
          deep: {requires: [x], action: "odd_results:deep"}
          shared: {requires: [x], action: "odd_results:shared"}
        """)
    res = wfkit("run", str(spec), "--json", "--no-progress")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    results = {tid: r["result"] for tid, r in json.loads(res.stdout)["task_results"].items()}
    assert results["deep"].startswith("<not shown: the result is nested more than")
    assert results["shared"].startswith("<not shown: the result would expand to more than")
    res = wfkit("run", str(spec), "--no-progress")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert "deep    completed" in res.stdout and "[[[...]]]" in res.stdout
