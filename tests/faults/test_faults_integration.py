"""Integration under hostile input: redaction that stays linear, URL placeholders that cannot
change a path, redirects that do not carry secrets to another origin, SQL identifiers that
must be whole, and logs of the HTTP libraries masked down to their child loggers.

Everything runs against real parts: HTTP servers on 127.0.0.1, SQLite files, the logging
module as configured by pytest.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from re import _constants as sre  # noqa: E402  (the regular-expression parser's own terms)
from re import _parser as sre_parse  # noqa: E402

from scripted_http import Reply, ScriptedServer  # noqa: E402

from wfkit import IntegrationEndpoint, IntegrationFlow  # noqa: E402
from wfkit.integration import redaction  # noqa: E402
from wfkit.integration.orchestrator import IntegrationOrchestrator  # noqa: E402
from wfkit.integration.redaction import Redactor  # noqa: E402


@pytest.fixture
async def orch(tmp_path):
    orchestrator = IntegrationOrchestrator(dead_letter_store=tmp_path / "dead-letters.sqlite")
    try:
        yield orchestrator
    finally:
        await orchestrator.aclose()


@pytest.fixture
def servers():
    """``servers()`` starts one more HTTP server on 127.0.0.1 (another port: another origin)."""
    started: list[ScriptedServer] = []

    def start() -> ScriptedServer:
        started.append(ScriptedServer().start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT}
_ALL_REPEATS = _REPEATS | {sre.POSSESSIVE_REPEAT}


def backtracking_constructs(pattern: re.Pattern[str]) -> list[str]:
    """What in ``pattern`` can make matching super-linear: an unbounded repeat that may give
    back what it took (greedy or lazy, not possessive), or a repeat nested in a repeat."""
    found: list[str] = []

    def walk(items, depth: int) -> None:
        for op, arg in items:
            if op in _ALL_REPEATS:
                low, high, sub = arg
                if depth:
                    found.append(f"nested repeat {op}")
                if op in _REPEATS and high == sre.MAXREPEAT:
                    found.append(f"unbounded backtracking repeat {op} {{{low},}}")
                walk(sub, depth + 1)
            elif op is sre.SUBPATTERN:
                walk(arg[-1], depth)
            elif op is sre.BRANCH:
                for alternative in arg[1]:
                    walk(alternative, depth)
            elif op in (sre.ASSERT, sre.ASSERT_NOT):
                walk(arg[1], depth)
            elif op is sre.ATOMIC_GROUP:
                walk(arg, depth)

    walk(sre_parse.parse(pattern.pattern, pattern.flags), 0)
    return found


def first_ops(pattern: re.Pattern[str], n: int) -> list[tuple[object, object]]:
    return list(sre_parse.parse(pattern.pattern, pattern.flags))[:n]


# -- redaction: linear whatever the text ------------------------------------------------------


def test_every_redaction_pattern_is_free_of_backtracking():
    tricky = ["a+b*", "(x|y)?", r"back\slash", "x" * 40, "Bearer abc.def"]
    redactor = Redactor(tricky)
    patterns = {
        name: value
        for name, value in vars(redaction).items()
        if isinstance(value, re.Pattern)
    }
    patterns["Redactor secrets"] = redactor._pattern
    assert {"_URL_USERINFO", "_SENSITIVE"} <= set(patterns)
    for name, pattern in patterns.items():
        assert backtracking_constructs(pattern) == [], name
    # The engine tries the URL-credential pattern only where its literal prefix "://" occurs
    # (a pattern that starts with a repeat is tried, and scans, from every position).
    assert first_ops(redaction._URL_USERINFO, 3) == [(sre.LITERAL, ord(c)) for c in "://"]


def test_the_check_flags_the_kind_of_pattern_that_froze_the_loop():
    old = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)@")
    assert backtracking_constructs(old)
    assert backtracking_constructs(re.compile(r"(a+)+b")) == [
        "unbounded backtracking repeat MAX_REPEAT {1,}",
        "nested repeat MAX_REPEAT",
        "unbounded backtracking repeat MAX_REPEAT {1,}",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see https://bob:pw0rd@h.example/x", "see https://bob:***@h.example/x"),
        ("postgresql+psycopg://u:p@db:5432/x", "postgresql+psycopg://u:***@db:5432/x"),
        ("https://:tok3n@h/x", "https://:***@h/x"),
        ("a://b:c@a://d:e@", "a://b:***@a://d:***@"),
        ("not a url ://x:y@z", "not a url ://x:y@z"),  # no scheme before ://
        ("https://host/path:with@sign", "https://host/path:with@sign"),  # no userinfo
        ("https://u:" + "p" * 5000, "https://u:" + "p" * 5000),  # no @: nothing to mask
        ("x" * 20000 + "://u:p@h", "x" * 20000 + "://u:***@h"),
    ],
)
def test_url_passwords_are_masked_in_any_text(text, expected):
    assert Redactor()(text) == expected


def test_known_secrets_are_masked_whole_and_longest_first():
    redactor = Redactor(["abc123", "Bearer abc123", "a+b*"])
    text = "Authorization: Bearer abc123; again abc123 and a+b* and a+bb"
    assert redactor(text) == "Authorization: ***; again *** and *** and a+bb"
    body = "q" * 1_000_000 + "abc123"
    assert redactor(body).endswith("q***") and len(redactor(body)) == 1_000_003


async def test_a_long_placeholder_value_and_a_megabyte_error_body(orch, servers):
    """The two inputs that froze the loop (1.8 s and > 20 s) now go through; their secrets are
    masked and the error is shortened."""
    server = servers()
    secret = "s3cr3t-" + "k" * 10
    body = ("A1" * 500_000) + f" token={secret} https://svc:{secret}@x.example/"
    url = server.on("/items/big", Reply(500, body=body))
    ok_url = server.url("/items/{name}")
    server.on("/items/" + "n" * 20_000, Reply(200, body={"ok": 1}))
    orch.register_endpoint(
        IntegrationEndpoint("big", "big", "api", {"url": url, "headers": {"X-Api-Key": secret}}, [])
    )
    orch.register_endpoint(IntegrationEndpoint("long", "long", "api", {"url": ok_url}, []))
    orch.create_flow(IntegrationFlow("f1", "f1", [], ["big"], [], [], {}))
    orch.create_flow(IntegrationFlow("f2", "f2", [], ["long"], [], [], {}))
    failed = await orch.execute_flow("f1", {"n": 1})
    assert failed["status"] == "failed"
    assert "answered 500" in failed["error"] and secret not in failed["error"]
    assert len(failed["error"]) < 600
    done = await orch.execute_flow("f2", {"name": "n" * 20_000})
    assert done["status"] == "completed", done.get("error")
    assert len(server.to("/items/" + "n" * 20_000)) == 1


# -- logs of the HTTP libraries ---------------------------------------------------------------


async def test_child_loggers_of_httpx_and_httpcore_are_masked(orch, servers, caplog):
    """httpcore logs response headers on ``httpcore.http11``, a child logger: its records pass
    the parent's filters by, so masking happens on the parents' first handler."""
    server = servers()
    secret = "hdr-s3cr3t-9f8e7d"
    url = server.on("/h", then=Reply(200, body={"ok": True}, headers={"X-Echo": secret}))
    orch.register_endpoint(
        IntegrationEndpoint("h", "h", "api", {"url": url, "headers": {"X-Api-Key": secret}}, [])
    )
    orch.create_flow(IntegrationFlow("f", "f", [], ["h"], [], [], {}))
    caplog.set_level(logging.DEBUG)
    result = await orch.execute_flow("f", {"n": 1})
    assert result["status"] == "completed"
    assert server.to("/h")[0].headers["X-Api-Key"] == secret  # really sent, really echoed
    children = [r for r in caplog.records if r.name.startswith("httpcore.")]
    assert {r.name for r in children} >= {"httpcore.http11", "httpcore.connection"}
    echoed = [r for r in children if "X-Echo" in r.getMessage()]
    assert echoed, "httpcore logged the response headers"
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert "***" in echoed[0].getMessage()


def test_a_child_logger_record_is_masked_for_every_handler_above_it():
    secret = "child-s3cr3t-123"
    redactor = Redactor([secret])
    redaction.guard_library_logs(redactor)
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(self.format(record))

    keep = Keep()
    parent = logging.getLogger("httpcore")
    parent.addHandler(keep)  # after wfkit's mask: sees the masked record
    child = logging.getLogger("httpcore.fault_probe.deeper")
    child.setLevel(logging.INFO)
    try:
        child.info("sent %s", secret)
        try:
            raise RuntimeError(f"failed with {secret}")
        except RuntimeError:
            child.exception("boom")
    finally:
        parent.removeHandler(keep)
        child.setLevel(logging.NOTSET)
    assert seen[0] == "sent ***"
    assert "failed with ***" in seen[1] and secret not in seen[1]


def test_an_unconfigured_program_still_sees_library_warnings_masked():
    """With no logging set up, a warning goes to logging's last resort (stderr): the mask
    handler must not swallow it."""
    code = (
        "import logging\n"
        "from wfkit.integration.redaction import Redactor, guard_library_logs\n"
        "guard_library_logs(r := Redactor(['lastres0rt-s3cret']))\n"
        "logging.getLogger('httpcore.http11').warning('warned %s', 'lastres0rt-s3cret')\n"
        "logging.getLogger('httpx').info('not shown')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "warned ***\n"
