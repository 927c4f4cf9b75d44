"""Abuse of the command line: report outputs that would destroy data, spec files that used to
end in tracebacks. Each bad input must exit 2 with a message naming the path (and, for specs,
the line and the fix), change no file, and print no traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from store_faults_support import digest, spec_folder, wfkit, write

from wfkit.app.cli import main


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


@pytest.mark.slow  # CLI child processes
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


# -- the spec loader -----------------------------------------------------------------------

def test_a_policy_that_is_not_a_name_exits_2_with_file_line_and_fix(tmp_path):
    spec = spec_folder(tmp_path)
    spec.write_text(spec.read_text().replace("workflow: w\n", "workflow: w\npolicy: [1, 2]\n"))
    res = wfkit("run", str(spec), "--no-progress")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr == (
        f"wfkit: error: {spec}, line 2: policy must be the name of a policy (least_loaded, "
        f"fastest, round_robin, heft) or 'module:callable', got a list\n")


BAD_VALUES = [[1, 2], {"a": [1]}, [[1]], None, 1.5, -1, 10**30, float("nan"), True, "",
              "x" * 10_000, {"<<": 1}, [None], {}]


def key_paths(value, at=()):
    """Every key path in parsed spec data."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*at, k)
            yield from key_paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield (*at, i)
            yield from key_paths(v, (*at, i))


@pytest.mark.slow  # thousands of bad specs loaded
def test_every_key_of_a_spec_given_every_kind_of_bad_value_is_a_spec_error(tmp_path):
    """Each key path of a valid spec, set to values of every wrong shape: the loader loads it
    or raises SpecError naming the file; nothing else (the tally of bad inputs tried)."""
    import copy

    import yaml

    from wfkit.app.spec import load_spec
    from wfkit.errors import SpecError

    spec = spec_folder(tmp_path)
    good = {"policy": "least_loaded", "store": "runs.db", "time_scale": 1, "fail_fast": False,
            **yaml.safe_load(spec.read_text())}
    good["agents"]["a"].update(handler="simulated", cost_per_second=1, name="A")
    good["tasks"]["load"].update(args={"n": 2}, retries=1, timeout=5, priority=1, estimate=1)
    tried = errors = 0
    for at in list(key_paths(good)):
        for bad in BAD_VALUES:
            data = copy.deepcopy(good)
            target = data
            for part in at[:-1]:
                target = target[part]
            target[at[-1]] = bad
            path = tmp_path / "bad.yaml"
            path.write_text(yaml.safe_dump(data))
            tried += 1
            try:
                load_spec(path)
            except SpecError as exc:
                errors += 1
                assert str(exc).startswith(f"{path}, line ") or str(exc).startswith(f"{path}:")
    assert tried == len(list(key_paths(good))) * len(BAD_VALUES) and errors > tried // 2


@pytest.mark.slow  # CLI child processes
def test_a_3000_deep_value_exits_2_naming_the_override_and_the_fix(tmp_path):
    from wfkit.app.spec import load_spec
    from wfkit.errors import SpecError

    spec = spec_folder(tmp_path)
    deep = "[" * 3000 + "]" * 3000
    res = wfkit("run", str(spec), "--set", f"workflow={deep}", "--no-progress")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("wfkit: error: --set workflow=[[[[")
    assert "nested too deeply (at most 64 levels): flatten it" in res.stderr
    assert len(res.stderr) < 300  # the value is not echoed whole
    # the same bound on values given as Python objects
    value: list = []
    for _ in range(3000):
        value = [value]
    with pytest.raises(SpecError, match=r"^--set workflow: the value is too large or nested "
                                        r"too deeply"):
        load_spec(spec, {"workflow": value})
    with pytest.raises(SpecError, match=r"^<spec>: the value is too large or nested"):
        load_spec({"workflow": "w", "agents": {}, "tasks": {"t": {"args": {"v": value}}}})
    # and a deep spec file
    spec.write_text(f"workflow: {deep}\nagents: {{}}\ntasks: {{}}\n")
    res = wfkit("run", str(spec), "--no-progress")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"{spec}" in res.stderr and "flatten it" in res.stderr


def test_a_merge_key_then_an_override_of_a_merged_key_is_valid_yaml(tmp_path):
    from wfkit.app.spec import load_spec
    from wfkit.errors import SpecError

    spec_folder(tmp_path)
    spec = write(tmp_path, """\
        workflow: m
        agents:
          base: &base {capabilities: [x], capacity: 2, name: Base}
          other: &other {capabilities: [y], capacity: 5}
          over:
            <<: *base
            capacity: 3
          both:
            <<: [*other, *base]
            name: Both
        tasks:
          load: {requires: [x], action: "faults_tasks:load"}
        """, "merge.yaml")
    agents = {a.agent_id: a for a in load_spec(spec).agents}
    assert (agents["over"].capacity, agents["over"].name, agents["over"].capabilities) == (
        3, "Base", ["x"])
    # of several merged mappings the first listed wins; the mapping's own keys win over all
    assert (agents["both"].capacity, agents["both"].capabilities, agents["both"].name) == (
        5, ["y"], "Both")
    assert main(["run", str(spec), "--check"]) == 0
    # a key written twice by hand is still a mistake, with both lines
    spec.write_text(spec.read_text().replace("    capacity: 3\n",
                                             "    capacity: 3\n    capacity: 4\n"))
    with pytest.raises(SpecError, match=r"line 8: key 'capacity' appears twice \(first on "
                                        r"line 7\); keep only one"):
        load_spec(spec)


SHADOW = '''
import pathlib
pathlib.Path(__file__).with_name("SHADOWED").write_text("the spec's pickle.py was imported")
raise ImportError("not the standard library's pickle")
'''


@pytest.mark.slow  # CLI child processes
def test_a_module_beside_the_spec_cannot_shadow_the_standard_library(tmp_path):
    spec = spec_folder(tmp_path)
    (tmp_path / "pickling.yaml").write_text((tmp_path / "pickling.yaml").read_text())
    (tmp_path / "pickle.py").write_text(SHADOW)
    (tmp_path / "json.py").write_text(SHADOW)
    pickling = tmp_path / "pickling.yaml"
    for args in (["run", str(pickling), "--store", str(tmp_path / "r.db"), "--no-progress"],
                 ["run", str(pickling), "--store", str(tmp_path / "r.db"), "--resume",
                  "--no-progress"],
                 ["run", str(spec), "--json", "--no-progress"]):
        res = wfkit(*args, cwd=tmp_path / "..")
        assert res.returncode == 0, res.stderr
    assert not (tmp_path / "SHADOWED").exists()
    # naming it is an error that says what to do, not a silent swap
    spec.write_text(spec.read_text().replace("faults_tasks:total", "pickle:dumps"))
    res = wfkit("run", str(spec), "--check")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"{spec}, line 5: tasks.total.action 'pickle:dumps': the module 'pickle' beside " \
           f"the spec ({tmp_path / 'pickle.py'}) has the name of another module" in res.stderr
    assert "rename the file beside the spec" in res.stderr
    assert not (tmp_path / "SHADOWED").exists()


def test_the_spec_folder_is_searched_only_while_loading_and_each_spec_gets_its_own_module(
    tmp_path,
):
    import sys

    from wfkit.app.spec import load_spec

    first, second = tmp_path / "one", tmp_path / "two"
    for folder, n in ((first, 1), (second, 2)):
        folder.mkdir()
        (folder / "own_tasks.py").write_text(
            f"from own_helper import N\n\ndef which(ctx):\n    return N + {n * 10}\n")
        (folder / "own_helper.py").write_text(f"N = {n}\n")
        write(folder, """\
            workflow: w
            agents: {a: {capabilities: [x]}}
            tasks:
              t: {requires: [x], action: "own_tasks:which"}
            """)
    before = list(sys.path)
    one = load_spec(first / "spec.yaml").tasks[0].action
    assert sys.path == before
    assert one(None) == 11
    two = load_spec(second / "spec.yaml").tasks[0].action
    assert sys.path == before
    assert two(None) // 10 == 2 and one(None) == 11  # each its own tasks module


def test_help_says_that_check_imports_the_modules():
    res = wfkit("run", "--help")
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert "--check imports them too, running their top-level code" in text
    assert "this imports the modules its actions, handlers and policy name" in text
