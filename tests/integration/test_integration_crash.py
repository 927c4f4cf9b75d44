"""Nothing is lost when the process draining a queue is killed (SIGKILL) and the flow runs again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wfkit import IntegrationEndpoint, IntegrationFlow

pytestmark = pytest.mark.slow  # a process killed mid-stream

REPO = Path(__file__).resolve().parents[2]
TOTAL, ACKED_FIRST, CONCURRENCY = 120, 20, 8

# The child drains the queue into the table and a second target; that second target hangs for
# every message from ACKED_FIRST on, so the child is killed with rows committed that were never
# acknowledged: exactly the messages a redelivery could duplicate.
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from wfkit import IntegrationEndpoint, IntegrationFlow, IntegrationOrchestrator

    queue_url, table_url, table, dead_letters, acked_first, concurrency = sys.argv[1:7]

    async def hold(data):
        if data["n"] >= int(acked_first):
            await asyncio.sleep(3600)

    async def main():
        orch = IntegrationOrchestrator(dead_letter_store=dead_letters)
        orch.register_endpoint(IntegrationEndpoint(
            "src", "Q", "message_queue",
            {"url": queue_url, "topic": "orders", "visibility_timeout": 1.0}, []))
        orch.register_endpoint(IntegrationEndpoint(
            "db", "DB", "database", {"url": table_url, "table": table, "create_table": True}, []))
        orch.register_endpoint(IntegrationEndpoint("hold", "H", "function", {"callable": hold}, []))
        orch.create_flow(IntegrationFlow(
            "f", "F", ["src"], ["db", "hold"], [], {}, {"dead_letter": True}))
        print("running", flush=True)
        await orch.run_flow("f", concurrency=int(concurrency))

    asyncio.run(main())
    """
)


async def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "the child made no progress"
        await asyncio.sleep(0.05)


async def test_kill_mid_stream_and_run_again(orch, tmp_path, db_url, name, drop_tables, query):
    drop_tables.append(name)
    queue_url = f"sqlite:///{tmp_path / 'queue.sqlite'}"
    dead_letters = str(tmp_path / "dead-letters.sqlite")
    got = []
    orch.register_endpoint(IntegrationEndpoint(
        "src", "Q", "message_queue", {"url": queue_url, "topic": "orders", "visibility_timeout": 1.0}, []
    ))
    orch.register_endpoint(IntegrationEndpoint(
        "db", "DB", "database", {"url": db_url, "table": name, "create_table": True}, []
    ))
    orch.register_endpoint(IntegrationEndpoint("hold", "H", "function", {"callable": got.append}, []))
    orch.create_flow(IntegrationFlow("f", "F", ["src"], ["db", "hold"], [], {}, {"dead_letter": True}))
    assert await orch.publish("src", [{"n": i} for i in range(TOTAL)]) == TOTAL

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, str(script), queue_url, db_url, name, dead_letters, str(ACKED_FIRST), str(CONCURRENCY)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        async def child_is_stuck():
            assert child.poll() is None, child.stderr.read().decode()
            try:
                rows = query(db_url, f'SELECT count(*) FROM "{name}"')[0][0]
            except Exception:  # the child has not created the table yet
                return False
            left = (await orch.queue_stats("src"))["total"]
            return rows == ACKED_FIRST + CONCURRENCY and left == TOTAL - ACKED_FIRST

        await wait_for(child_is_stuck)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL

    # What the killed process left: rows for messages it never acknowledged.
    assert query(db_url, f'SELECT count(*) FROM "{name}"') == [(ACKED_FIRST + CONCURRENCY,)]
    assert (await orch.queue_stats("src"))["total"] == TOTAL - ACKED_FIRST

    # Run again: the dead process's leases run out and its messages come back.
    stats = await orch.run_flow("f", concurrency=CONCURRENCY, idle_timeout=15)

    assert stats["consumed"] == TOTAL - ACKED_FIRST
    assert stats["consumed"] == stats["delivered"] + stats["dead_lettered"]
    assert stats["dead_lettered"] == 0 and stats["failed"] == 0
    assert stats["redelivered"] >= CONCURRENCY  # at least the ones that were in flight
    rows = query(db_url, f'SELECT count(*), count(DISTINCT n), count(DISTINCT _wfkit_message_id) FROM "{name}"')
    assert rows == [(TOTAL, TOTAL, TOTAL)]  # every message once: redelivery added no duplicate
    assert sorted(d["n"] for d in got) == list(range(ACKED_FIRST, TOTAL))
    assert await orch.queue_stats("src") == {"total": 0, "visible": 0, "leased": 0}
