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

from wfkit import (  # noqa: E402
    IntegrationEndpoint,
    IntegrationFlow,
    redaction,  # noqa: E402
)
from wfkit.redaction import Redactor  # noqa: E402


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
        "from wfkit.redaction import Redactor, guard_library_logs\n"
        "guard_library_logs(r := Redactor(['lastres0rt-s3cret']))\n"
        "logging.getLogger('httpcore.http11').warning('warned %s', 'lastres0rt-s3cret')\n"
        "logging.getLogger('httpx').info('not shown')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "warned ***\n"


# -- URL placeholders cannot change the path -------------------------------------------------


def api(endpoint_id, url, **config):
    return IntegrationEndpoint(endpoint_id, endpoint_id, "api", {"url": url, **config}, [])


def flow(flow_id, targets, sources=()):
    return IntegrationFlow(flow_id, flow_id, list(sources), list(targets), [], [], {})


@pytest.mark.parametrize("value", ["..", ".", "", "%2e%2e", "../admin", "a/..", "..?x=1", "#.."])
async def test_a_placeholder_never_changes_the_path(orch, servers, value):
    server = servers()
    orch.register_endpoint(api("items", server.url("/api/items/{id}/details")))
    orch.create_flow(flow("f", ["items"]))
    result = await orch.execute_flow("f", {"id": value})
    asked = [r.path for r in server.requests]
    if value in ("..", ".", ""):  # would be a dot segment or an empty one: refused, not sent
        assert result["status"] == "failed"
        assert "must not be empty, '.' or '..'" in result["error"]
        assert "{id}" in result["error"]
        assert asked == []
    else:  # encoded inside the one segment
        assert result["status"] == "completed", result.get("error")
        (path,) = asked
        assert path.startswith("/api/items/") and path.endswith("/details")
        assert path.count("/") == 4, path


async def test_two_placeholders_cannot_make_a_dot_segment_together(orch, servers):
    server = servers()
    orch.register_endpoint(api("items", server.url("/api/{a}{b}/x?q={a}")))
    orch.create_flow(flow("f", ["items"]))
    result = await orch.execute_flow("f", {"a": ".", "b": "."})
    assert result["status"] == "failed" and "{a}, {b}" in result["error"]
    ok = await orch.execute_flow("f", {"a": ".", "b": "v1"})  # ".v1" is an ordinary name
    assert ok["status"] == "completed", ok.get("error")
    assert [(r.path, r.query) for r in server.requests] == [("/api/.v1/x", "q=.")]


# -- redirects stay with the url's origin --------------------------------------------------------


def redirect_to(url, status=307):
    return Reply(status, body="", headers={"Location": url})


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_another_origin_is_not_followed_by_default(orch, servers, status):
    """A real 3xx from one local server to another (another port: another origin) that
    records what it received."""
    home, elsewhere = servers(), servers()
    key = "redir-s3cr3t-key"
    url = home.on("/send", redirect_to(elsewhere.url("/catch"), status))
    orch.register_endpoint(api("t", url, headers={"X-Api-Key": key, "X-Trace": "t1"}))
    orch.create_flow(flow("f", ["t"]))
    result = await orch.execute_flow("f", {"card": "4111"})
    assert result["status"] == "failed"
    assert f"redirect to another origin (http://127.0.0.1:{elsewhere.port})" in result["error"]
    assert "follow_redirects" in result["error"] and key not in result["error"]
    assert elsewhere.requests == []  # nothing at all went there
    assert home.to("/send")[0].headers["X-Api-Key"] == key


async def test_an_allowed_origin_gets_the_message_but_never_the_secrets(orch, servers):
    home, cdn = servers(), servers()
    key, token, password = "redir-k3y-1", "redir-t0ken-2", "redir-pw-3"
    url = home.on("/send", redirect_to(cdn.url("/catch"), 307))
    cdn.on("/catch", then=Reply(200, body={"ok": True}))
    config = {
        "headers": {"X-Api-Key": key, "Cookie": f"session={token}", "X-Tenant": "acme",
                    "X-Trace": "t1"},
        "secret_headers": ["X-Tenant"],
        "follow_redirects": [f"http://127.0.0.1:{cdn.port}"],
    }
    orch.register_endpoint(api("t", url.replace("http://", f"http://svc:{password}@"), **config))
    orch.create_flow(flow("f", ["t"]))
    result = await orch.execute_flow("f", {"n": 1})
    assert result["status"] == "completed", result.get("error")
    (first,) = home.to("/send")
    assert first.headers["X-Api-Key"] == key and first.headers["X-Tenant"] == "acme"
    assert first.headers["Cookie"] == f"session={token}"
    assert first.headers["Authorization"].startswith("Basic ")  # the url's credentials
    (caught,) = cdn.to("/catch")
    assert caught.json() == {"n": 1}  # a 307 keeps the method and body: the user allowed it
    assert caught.headers["X-Trace"] == "t1"
    sent = {k.lower() for k in caught.headers}
    assert not sent & {"x-api-key", "x-tenant", "authorization", "cookie"}, caught.headers
    assert not any(secret in v for v in caught.headers.values() for secret in (key, token, password))


async def test_same_origin_redirects_keep_everything_and_any_origin_is_opt_in(orch, servers):
    home, other = servers(), servers()
    key = "redir-k3y-same"
    url = home.on("/old", redirect_to(home.url("/new"), 308))
    home.on("/new", then=Reply(200, body={"ok": True}))
    orch.register_endpoint(api("same", url, headers={"X-Api-Key": key}))
    other_url = home.on("/away", then=redirect_to(other.url("/x"), 302))
    orch.register_endpoint(api("any", other_url, headers={"X-Api-Key": key}, follow_redirects=True))
    orch.register_endpoint(api("none", other_url, follow_redirects=False))
    for fid, target in (("f1", "same"), ("f2", "any"), ("f3", "none")):
        orch.create_flow(flow(fid, [target]))
    assert (await orch.execute_flow("f1", {"n": 1}))["status"] == "completed"
    (moved,) = home.to("/new")
    assert moved.headers["X-Api-Key"] == key and moved.json() == {"n": 1}
    assert (await orch.execute_flow("f2", {"n": 2}))["status"] == "completed"
    (went,) = other.to("/x")
    assert went.method == "GET" and "X-Api-Key" not in went.headers  # 302: GET, no secrets
    refused = await orch.execute_flow("f3", {"n": 3})
    assert refused["status"] == "failed" and "answered 302" in refused["error"]
    assert len(other.to("/x")) == 1


async def test_redirect_loops_end_with_an_error(orch, servers):
    home = servers()
    url = home.on("/loop", then=redirect_to(home.url("/loop"), 307))
    orch.register_endpoint(api("loop", url))
    orch.create_flow(flow("f", ["loop"]))
    result = await orch.execute_flow("f", {"n": 1})
    assert result["status"] == "failed" and "redirected more than 20 times" in result["error"]
    assert len(home.to("/loop")) == 21


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sometimes", "follow_redirects must be 'same_origin'"),
        (["cdn.example.com"], "'cdn.example.com' is not an origin"),
        (["https://cdn.example.com/path"], "is not an origin"),
        ([1], "follow_redirects must be"),
    ],
)
def test_bad_redirect_settings_are_refused_at_registration(orch, value, message):
    from wfkit import IntegrationConfigError

    with pytest.raises(IntegrationConfigError, match=re.escape(message)):
        orch.register_endpoint(api("x", "http://127.0.0.1:1/x", follow_redirects=value))


# -- SQL identifiers are whole ----------------------------------------------------------------


@pytest.mark.parametrize("bad", ["x\n", "ok\n", "a b", "1a", "", "a" * 64, "é", "x;--", "x\r\n"])
async def test_identifiers_with_a_trailing_newline_or_worse_are_refused(orch, tmp_path, bad):
    """``$`` accepted ``"x\\n"``, which then went unquoted into CREATE TABLE."""
    from wfkit import IntegrationConfigError
    from wfkit.integration.durable_queue import DurableQueue

    url = f"sqlite:///{tmp_path / 'data.sqlite'}"
    db = {"url": url, "create_table": True}
    for config in ({"table": bad}, {"table": f"main.{bad}"}, {"columns": {bad: "text"}},
                   {"idempotency_column": bad}):
        with pytest.raises(IntegrationConfigError, match="is not a valid SQL identifier"):
            orch.register_endpoint(
                IntegrationEndpoint("db", "db", "database", {**db, "table": "t", **config}, [])
            )
    with pytest.raises(IntegrationConfigError, match="is not a valid SQL identifier"):
        orch.register_endpoint(
            IntegrationEndpoint("q", "q", "message_queue", {"url": url, "topic": "t", "table": bad}, [])
        )
    with pytest.raises(IntegrationConfigError, match="queue table .* is not a valid SQL identifier"):
        DurableQueue(orch.database(url), bad)
    orch.register_endpoint(IntegrationEndpoint("db", "db", "database", {**db, "table": "t"}, []))
    orch.create_flow(flow("f", ["db"]))
    result = await orch.execute_flow("f", {bad: 1})
    assert result["status"] == "failed" and "is not a valid SQL identifier" in result["error"]
    import sqlite3

    with sqlite3.connect(tmp_path / "data.sqlite") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert all(bad not in t for t in tables if bad)


HOSTILE_LOCATIONS = [
    "ftp://example.com/x", "http://[bad", "//127.0.0.2:9/x", "javascript:alert(1)",
    "h\x00x://a", "file:///etc/passwd", "http://127.0.0.1:0/x", "data:text/plain,hi",
]


@pytest.mark.parametrize("policy", ["same_origin", True])
async def test_hostile_redirect_locations_end_as_endpoint_errors(orch, servers, policy):
    """Whatever a server puts in Location, the message fails with an error that names the
    request, and the flow returns (no exception escapes, nothing is retried forever)."""
    server = servers()
    for i, location in enumerate(HOSTILE_LOCATIONS):
        url = server.on(f"/r{i}", then=Reply(307, body="", headers={"Location": location}))
        orch.register_endpoint(api(f"e{i}", url, follow_redirects=policy))
        orch.create_flow(flow(f"f{i}", [f"e{i}"]))
        result = await orch.execute_flow(f"f{i}", {"n": i})
        assert result["status"] == "failed", location
        assert f"POST {server.url(f'/r{i}')}" in result["error"], result["error"]
