# %% [markdown]
# # Integration flows with real endpoints
#
# This notebook starts a real HTTP service on 127.0.0.1 (the standard library's server, in a
# thread), creates a SQLite database and a durable SQLite-backed queue, and moves orders
# between them with an `IntegrationFlow`: a transformation checked by JSON Schema, routing
# rules (content-based, multicast), retries with backoff, and a dead-letter channel. The audit
# service is down at first: its messages are dead-lettered, shown as a frame, and replayed once
# it is back.

# %% tags=["parameters"]
orders = 12  # orders to send through the flow
big_order = 1000  # orders above this amount also go to the audit service and the queue
audit_down_for = 10**6  # requests the audit service refuses with 503 (then it recovers)
max_attempts = 3  # delivery attempts per target before dead-lettering
vat_rate = 0.2

# %%
import json
import os
import random
import sqlite3
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import wfkit
from wfkit import DataTransformation, IntegrationEndpoint, IntegrationFlow, IntegrationOrchestrator


class AuditService(BaseHTTPRequestHandler):
    """POST /audit stores an order; answers 503 while it is 'down'."""

    received = []
    refused = 0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        if cls.refused < audit_down_for:
            cls.refused += 1
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        cls.received.append(body)
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"stored": body["order_id"]}).encode())

    def log_message(self, *args):  # keep the notebook quiet
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), AuditService)
threading.Thread(target=server.serve_forever, daemon=True).start()
audit_url = f"http://127.0.0.1:{server.server_address[1]}/audit"
workdir = tempfile.mkdtemp(prefix="wfkit-integration-")
db_url = f"sqlite:///{os.path.join(workdir, 'shop.db')}"
queue_url = f"sqlite:///{os.path.join(workdir, 'queue.db')}"
audit_url

# %% [markdown]
# ## Endpoints, a transformation and a flow

# %%
orch = IntegrationOrchestrator(dead_letter_store=os.path.join(workdir, "dead.db"),
                               metrics=wfkit.AdvancedWorkflowMetrics())
orch.register_endpoint(IntegrationEndpoint(
    "orders_db", "Orders table", "database", {"url": db_url, "table": "orders",
                                              "create_table": True}, ["write"]))
orch.register_endpoint(IntegrationEndpoint(
    "big_orders", "Big orders queue", "message_queue", {"url": queue_url, "topic": "big"},
    ["publish"]))
orch.register_endpoint(IntegrationEndpoint(
    "audit", "Audit service", "api", {"url": audit_url, "method": "POST", "timeout": 5},
    ["http"]))

ORDER = {"type": "object", "required": ["order_id", "amount", "country"],
         "properties": {"order_id": {"type": "string"},
                        "amount": {"type": "number", "minimum": 0},
                        "country": {"type": "string", "minLength": 2, "maxLength": 2}}}
PRICED = {"type": "object", "required": ["order_id", "amount", "vat", "total"],
          "properties": {"vat": {"type": "number"}, "total": {"type": "number"}}}


def price(order):
    vat = round(order["amount"] * vat_rate, 2)
    return {**order, "vat": vat, "total": round(order["amount"] + vat, 2)}


orch.register_transformation(DataTransformation("price", "Add VAT", ORDER, PRICED, price))
orch.create_flow(IntegrationFlow(
    "orders", "Orders", [], ["orders_db", "big_orders", "audit"], ["price"],
    {"rules": [{"when": {"field": "amount", "op": ">", "value": big_order},
                "to": ["orders_db", "big_orders", "audit"]}],
     "default": ["orders_db"]},
    {"retry": {"max_attempts": max_attempts, "backoff": 0.01, "max_backoff": 0.05},
     "dead_letter": True},
))

# %% [markdown]
# ## Sending orders
#
# Small orders go to the database only; big ones are multicast to the database, the queue and
# the audit service. One order is invalid (a negative amount): the schema rejects it with the
# path and the value, and it is dead-lettered too.

# %%
rng = random.Random(7)
messages = [{"order_id": f"o{i:03d}",  # every third order is a big one
             "amount": round(big_order * (rng.uniform(1.1, 2) if i % 3 == 2
                                          else rng.uniform(0.05, 0.9)), 2),
             "country": rng.choice(["DE", "FR", "NL"])} for i in range(orders)]
messages.append({"order_id": "bad", "amount": -5, "country": "DE"})
results = [await orch.execute_flow("orders", m, message_id=m["order_id"]) for m in messages]
import pandas as pd

outcomes = pd.DataFrame([{"order": m["order_id"], "amount": m["amount"], "status": r["status"],
                          "delivered_to": ", ".join(r["delivered_to"]),
                          "dead_lettered": r["dead_lettered"], "error": r["error"]}
                         for m, r in zip(messages, results)])
outcomes

# %% [markdown]
# Each result carries a per-step trace (transformation, then each target, with attempts):

# %%
big = next((r for m, r in zip(messages, results) if m["amount"] > big_order), results[0])
pd.DataFrame(big["trace"])

# %% [markdown]
# ## The dead-letter frame

# %%
dead = orch.dead_letters_frame("orders")
dead[[c for c in ("message_id", "reason", "error", "targets", "created_at") if c in dead.columns]]

# %% [markdown]
# ## The audit service comes back: replay
#
# Replaying sends each letter only to the targets that missed it (the database rows are not
# duplicated). The invalid order is still invalid, so it stays dead-lettered.

# %%
AuditService.refused = audit_down_for  # the service is up again
replay = await orch.replay_dead_letters("orders")
{k: v for k, v in replay.items() if k != "results"}

# %%
with sqlite3.connect(db_url.removeprefix("sqlite:///")) as db:
    rows = db.execute("SELECT count(*), count(DISTINCT order_id) FROM orders").fetchone()
queue = await orch.queue_stats("big_orders")
print(f"database rows: {rows[0]} ({rows[1]} distinct orders); queued big orders: {queue}; "
      f"audited: {len(AuditService.received)}")
orch.dead_letters_frame("orders")

# %% tags=["summary"]
summary = {
    "sent": len(messages),
    "big": sum(m["amount"] > big_order for m in messages),
    "statuses": outcomes.status.value_counts().to_dict(),
    "dead_lettered_before_replay": int(len(dead)),
    "replay": {k: v for k, v in replay.items() if k != "results"},
    "db_rows": rows[0],
    "db_distinct": rows[1],
    "queued": queue["total"],
    "audited": len(AuditService.received),
    "left_dead": int(len(orch.dead_letters_frame("orders"))),
}
await orch.aclose()
server.shutdown()
print(json.dumps(summary))
