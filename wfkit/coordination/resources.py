"""Shared resources: fair FIFO locks with leases and wait-for-graph deadlock detection.

The recipe is ZooKeeper's and etcd's: requests queue in arrival order, the holder's release
hands the resource *directly* to the first waiter (so a newcomer can never barge in), and a
lease bounds how long a holder may keep it (a participant that died cannot block the others
forever). A request that would wait is first checked against the wait-for graph (participant
-> holder of the resource it waits for); if the holder already waits, directly or through
others, for the requester, the request fails at once with :class:`~wfkit.DeadlockError`
naming the cycle. Deadlock detection treats a participant as one thread of control: use
distinct participant names for work that holds resources concurrently.

State, changed only by :class:`ResourceTable` methods, all on the event loop thread:

- ``_resources[rid]``: the holder (a :class:`Grant` or ``None``) and the FIFO queue of waiters;
- ``_waiting[participant]``: ``{rid: count}`` of the queues that participant is in.

Invariants: a resource whose queue is not empty has a holder; a waiter is in one queue until it
is granted, times out, is cancelled or withdraws, and ``_waiting`` counts exactly the queued
waiters; a grant ends once (``released``, ``expired`` or ``cancelled``) and only the current
grant can release a resource.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import Any

from wfkit.clock import SYSTEM, Clock, Timer
from wfkit.errors import (
    CoordinationError,
    DeadlockError,
    LeaseExpiredError,
    ResourceTimeoutError,
    ValidationError,
)
from wfkit.events import (
    EventBus,
    ResourceAcquired,
    ResourceLeaseExpired,
    ResourceReleased,
    ResourceWaitEnded,
)

__all__ = ["Grant", "ResourceScope", "ResourceTable", "check_name"]

_EARLY = 1e-3  # a loop may run a timer a little before it is due


def check_name(value: object, what: str) -> None:
    """Raise :class:`~wfkit.ValidationError` unless ``value`` is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string, got {value!r}")


def _check_seconds(value: object, what: str, *, zero_ok: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValidationError(f"{what} must be a number of seconds or None, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValidationError(f"{what} must be {bound} seconds, got {value!r}")


class Grant:
    """One holding of a resource: what ``async with manager.resource(...) as grant`` gives.

    ``state`` is ``"held"``, then ``"released"``, ``"expired"`` (the lease ran out and the
    resource went to the next waiter) or ``"cancelled"`` (granted to a waiter that was
    cancelled before it could use it). Times are UNIX seconds; ``waited`` is in seconds.
    """

    __slots__ = (
        "resource_id",
        "participant",
        "lease",
        "state",
        "waited",
        "_requested",
        "_acquired",
        "_deadline",
        "_table",
    )

    def __init__(
        self,
        table: ResourceTable,
        resource_id: str,
        participant: str,
        lease: float | None,
        requested: float,
        acquired: float,
    ) -> None:
        self._table = table
        self.resource_id = resource_id
        self.participant = participant
        self.lease = lease
        self.state = "held"
        self._requested = requested
        self._acquired = acquired
        self.waited = acquired - requested
        self._deadline: float | None = None

    @property
    def active(self) -> bool:
        return self.state == "held"

    @property
    def expired(self) -> bool:
        return self.state == "expired"

    @property
    def acquired_at(self) -> float:
        return self._acquired + self._table._offset

    def remaining(self) -> float | None:
        """Seconds left on the lease (``None`` without a lease, 0 once it has ended)."""
        if self._deadline is None:
            return None
        if not self.active:
            return 0.0
        return max(0.0, self._deadline - self._table._mono())

    def renew(self, lease: float | None = None) -> None:
        """Extend the lease to ``lease`` (default: the current lease length) from now."""
        self._table.renew(self, lease)

    def release(self) -> bool:
        """Release now (True), or False if this grant has already ended."""
        return self._table.release(self)

    def __repr__(self) -> str:
        return f"<Grant {self.resource_id!r} to {self.participant!r} {self.state}>"


class _Waiter:
    __slots__ = ("participant", "resource_id", "lease", "requested", "future", "timer", "queued")

    def __init__(
        self,
        participant: str,
        resource_id: str,
        lease: float | None,
        requested: float,
        future: asyncio.Future[Grant] | None,
    ) -> None:
        self.participant = participant
        self.resource_id = resource_id
        self.lease = lease
        self.requested = requested
        self.future = future  # None for a passive waiter (manage_shared_resource)
        self.timer: Timer | None = None
        self.queued = True


class _Resource:
    __slots__ = (
        "resource_id",
        "holder",
        "queue",
        "acquisitions",
        "releases",
        "lease_expiries",
        "timeouts",
        "cancellations",
        "deadlocks",
        "total_wait",
        "max_wait",
        "total_hold",
        "max_hold",
        "history",
        "lease_timer",
        "timer_due",
    )

    def __init__(self, resource_id: str, history_limit: int | None) -> None:
        self.resource_id = resource_id
        self.holder: Grant | None = None
        self.queue: OrderedDict[_Waiter, None] = OrderedDict()
        self.acquisitions = 0
        self.releases = 0
        self.lease_expiries = 0
        self.timeouts = 0
        self.cancellations = 0
        self.deadlocks = 0
        self.total_wait = 0.0
        self.max_wait = 0.0
        self.total_hold = 0.0
        self.max_hold = 0.0
        # (participant, requested, acquired | None, ended, how), monotonic seconds
        self.history: deque[tuple[str, float, float | None, float, str]] = deque(
            maxlen=history_limit
        )
        # One lease timer per resource, due at or before the holder's deadline. It is not
        # cancelled when a holder releases early: it re-arms for the next holder when it
        # fires, which keeps a timer per grant off the hot path.
        self.lease_timer: Timer | None = None
        self.timer_due = 0.0


class ResourceTable:
    """Every shared resource of a manager. See the module docstring for state and invariants."""

    def __init__(
        self,
        bus: EventBus | None = None,
        *,
        run_id: str = "",
        default_lease: float | None = None,
        history_limit: int | None = 10_000,
        clock: Clock = SYSTEM,
    ) -> None:
        _check_seconds(default_lease, "default_lease", zero_ok=False)
        self.clock = clock
        self._mono = clock.monotonic
        self._bus = bus if bus is not None else EventBus()
        self._listening = self._bus._subscribers  # live list: a cheap truth test
        self.run_id = run_id
        self.default_lease = default_lease
        self.history_limit = history_limit
        self._resources: dict[str, _Resource] = {}
        self._waiting: dict[str, dict[str, int]] = {}
        self._offset = clock.time() - clock.monotonic()  # monotonic -> UNIX seconds

    def __contains__(self, resource_id: object) -> bool:
        return resource_id in self._resources

    @property
    def resource_ids(self) -> list[str]:
        return list(self._resources)

    # -- requests ----------------------------------------------------------------------------

    def _resource(self, resource_id: str) -> _Resource:
        res = self._resources.get(resource_id)
        if res is None:
            check_name(resource_id, "resource_id")
            res = self._resources[resource_id] = _Resource(resource_id, self.history_limit)
        return res

    def _request(
        self, resource_id: str, participant: str, lease: float | None, passive: bool
    ) -> Grant | _Waiter:
        """Grant at once if free; else queue a waiter (after the deadlock check)."""
        res = self._resource(resource_id)
        now = self._mono()
        if lease is None:
            lease = self.default_lease
        if res.holder is None:
            return self._grant(res, participant, lease, now, now)
        self._check_deadlock(res, participant)
        future = None if passive else asyncio.get_running_loop().create_future()
        waiter = _Waiter(participant, resource_id, lease, now, future)
        res.queue[waiter] = None
        counts = self._waiting.get(participant)
        if counts is None:
            self._waiting[participant] = {resource_id: 1}
        else:
            counts[resource_id] = counts.get(resource_id, 0) + 1
        return waiter

    async def acquire(
        self,
        resource_id: str,
        participant: str,
        *,
        timeout: float | None = None,
        lease: float | None = None,
    ) -> Grant:
        """Wait in FIFO order and return the :class:`Grant`.

        ``timeout`` (seconds; 0 means "only if free now") raises
        :class:`~wfkit.ResourceTimeoutError` and leaves the queue. Cancellation leaves the queue,
        or, if the resource was handed over in the meantime, passes it on to the next waiter.
        """
        check_name(participant, "participant")
        _check_seconds(timeout, "timeout", zero_ok=True)
        _check_seconds(lease, "lease", zero_ok=False)
        return await self._acquire(resource_id, participant, timeout, lease)

    async def _acquire(
        self, resource_id: str, participant: str, timeout: float | None, lease: float | None
    ) -> Grant:
        """:meth:`acquire` without the argument checks (its callers have made them)."""
        if timeout is not None and timeout <= 0:
            res = self._resource(resource_id)
            if res.holder is not None:
                res.timeouts += 1
                raise ResourceTimeoutError(resource_id, participant, 0)
        got = self._request(resource_id, participant, lease, False)
        if type(got) is Grant:
            return got
        waiter: _Waiter = got  # type: ignore[assignment]
        fut = waiter.future
        assert fut is not None
        if timeout is not None:
            waiter.timer = self.clock.call_later(timeout, self._timed_out, waiter, timeout)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release(fut.result(), _how="cancelled")  # handed over as we were cancelled
            else:
                self._withdraw(waiter, "cancelled")
            raise

    def acquire_nowait(
        self, resource_id: str, participant: str, *, lease: float | None = None
    ) -> bool:
        """The pattern document's contract: True if ``participant`` holds the resource now;
        otherwise it is queued (once) and False is returned. When the holder releases, the
        resource passes to the queue in FIFO order without the participant having to ask
        again."""
        check_name(participant, "participant")
        _check_seconds(lease, "lease", zero_ok=False)
        res = self._resources.get(resource_id)
        if res is not None:
            if res.holder is not None and res.holder.participant == participant:
                return True
            for w in res.queue:
                if w.participant == participant and w.future is None:
                    return False
        got = self._request(resource_id, participant, lease, True)
        return type(got) is Grant

    def cancel_request(self, resource_id: str, participant: str) -> bool:
        """Withdraw a queued request made with :meth:`acquire_nowait`; True if there was one."""
        res = self._resources.get(resource_id)
        if res is None:
            return False
        for w in res.queue:
            if w.participant == participant and w.future is None:
                self._withdraw(w, "cancelled")
                return True
        return False

    # -- the transitions ---------------------------------------------------------------------

    def _grant(
        self,
        res: _Resource,
        participant: str,
        lease: float | None,
        requested: float,
        now: float,
    ) -> Grant:
        grant = Grant(self, res.resource_id, participant, lease, requested, now)
        res.holder = grant
        res.acquisitions += 1
        waited = grant.waited
        res.total_wait += waited
        if waited > res.max_wait:
            res.max_wait = waited
        if lease is not None:
            grant._deadline = due = now + lease
            if res.lease_timer is None or res.timer_due > due:
                self._arm(res, due, now)
        if self._listening:
            self._bus.emit(
                ResourceAcquired(self.run_id, now + self._offset, res.resource_id, participant, waited)
            )
        return grant

    def release(self, grant: Grant, *, _how: str = "released") -> bool:
        """End ``grant`` and hand the resource to the next waiter; False if it already ended."""
        res = self._resources.get(grant.resource_id)
        if res is None or res.holder is not grant:
            return False
        now = self._mono()
        grant.state = _how
        res.holder = None
        held = now - grant._acquired
        res.releases += 1
        res.total_hold += held
        if held > res.max_hold:
            res.max_hold = held
        if _how == "cancelled":
            res.cancellations += 1
        res.history.append((grant.participant, grant._requested, grant._acquired, now, _how))
        if self._listening:
            ts = now + self._offset
            if _how == "expired":
                self._bus.emit(
                    ResourceLeaseExpired(
                        self.run_id, ts, res.resource_id, grant.participant, grant.lease or 0.0
                    )
                )
            self._bus.emit(
                ResourceReleased(self.run_id, ts, res.resource_id, grant.participant, held, _how)
            )
        self._handover(res, now)
        if res.holder is None and res.lease_timer is not None:  # idle: leave no timer behind
            res.lease_timer.cancel()
            res.lease_timer = None
        return True

    def release_participant(self, resource_id: str, participant: str) -> bool:
        """Release ``resource_id`` if ``participant`` holds it; False otherwise."""
        res = self._resources.get(resource_id)
        if res is None or res.holder is None or res.holder.participant != participant:
            return False
        return self.release(res.holder)

    def _handover(self, res: _Resource, now: float) -> None:
        """Give the resource to the first waiter that still wants it."""
        queue = res.queue
        while queue:
            waiter, _ = queue.popitem(last=False)
            waiter.queued = False
            self._unwait(waiter)
            if waiter.timer is not None:
                waiter.timer.cancel()
            fut = waiter.future
            if fut is not None and fut.done():  # cancelled; its task has not run yet
                res.cancellations += 1
                res.history.append((waiter.participant, waiter.requested, None, now, "cancelled"))
                self._wait_ended(waiter, now, "cancelled")
                continue
            grant = self._grant(res, waiter.participant, waiter.lease, waiter.requested, now)
            if fut is not None:
                fut.set_result(grant)
            return

    def _withdraw(self, waiter: _Waiter, how: str) -> None:
        if not waiter.queued:
            return
        res = self._resources[waiter.resource_id]
        del res.queue[waiter]
        waiter.queued = False
        self._unwait(waiter)
        if waiter.timer is not None:
            waiter.timer.cancel()
        if how == "timeout":
            res.timeouts += 1
        else:
            res.cancellations += 1
        now = self._mono()
        res.history.append((waiter.participant, waiter.requested, None, now, how))
        self._wait_ended(waiter, now, how)

    def _wait_ended(self, waiter: _Waiter, now: float, how: str) -> None:
        if self._listening:
            self._bus.emit(ResourceWaitEnded(
                self.run_id, now + self._offset, waiter.resource_id, waiter.participant,
                now - waiter.requested, how,
            ))

    def _unwait(self, waiter: _Waiter) -> None:
        counts = self._waiting[waiter.participant]
        n = counts[waiter.resource_id] - 1
        if n:
            counts[waiter.resource_id] = n
        else:
            del counts[waiter.resource_id]
            if not counts:
                del self._waiting[waiter.participant]

    def _timed_out(self, waiter: _Waiter, timeout: float) -> None:
        if not waiter.queued:
            return
        self._withdraw(waiter, "timeout")
        fut = waiter.future
        if fut is not None and not fut.done():
            fut.set_exception(ResourceTimeoutError(waiter.resource_id, waiter.participant, timeout))

    def _arm(self, res: _Resource, due: float, now: float) -> None:
        if res.lease_timer is not None:
            res.lease_timer.cancel()
        res.timer_due = due
        res.lease_timer = self.clock.call_later(max(0.0, due - now), self._lease_check, res)

    def _lease_check(self, res: _Resource) -> None:
        """The resource's lease timer fired: expire the holder if its lease ran out."""
        res.lease_timer = None
        holder = res.holder
        if holder is None or holder._deadline is None:
            return
        now = self._mono()
        if now + _EARLY >= holder._deadline:
            res.lease_expiries += 1
            self.release(holder, _how="expired")
        else:  # a later holder, or a renewed lease: wait for its deadline
            self._arm(res, holder._deadline, now)

    def renew(self, grant: Grant, lease: float | None = None) -> None:
        _check_seconds(lease, "lease", zero_ok=False)
        if not grant.active:
            if grant.expired:
                raise LeaseExpiredError(grant.resource_id, grant.participant, grant.lease or 0.0)
            raise CoordinationError(
                f"{grant.participant!r} no longer holds {grant.resource_id!r} ({grant.state}); "
                f"acquire it again instead of renewing"
            )
        lease = lease if lease is not None else grant.lease
        if lease is None:
            raise ValidationError(
                f"the grant of {grant.resource_id!r} has no lease to renew; pass renew(lease=...)"
            )
        now = self._mono()
        grant.lease = lease
        grant._deadline = due = now + lease
        res = self._resources[grant.resource_id]
        if res.lease_timer is None or res.timer_due > due:
            self._arm(res, due, now)

    # -- deadlocks ---------------------------------------------------------------------------

    def _check_deadlock(self, res: _Resource, requester: str) -> None:
        """Raise if ``requester`` waiting for ``res`` would close a cycle in the wait-for graph."""
        holder = res.holder
        assert holder is not None
        first = holder.participant
        if first == requester:
            res.deadlocks += 1
            raise DeadlockError(
                [requester],
                f"deadlock: {requester!r} already holds {res.resource_id!r} and asked for it "
                f"again, so it would wait for itself; release it first, or use distinct "
                f"participant names for work that holds resources concurrently",
            )
        waiting = self._waiting
        if first not in waiting:  # the common case: the holder is not waiting for anything
            return
        # Depth-first search from the holder along "waits for a resource held by" edges.
        parent: dict[str, tuple[str, str]] = {first: (requester, res.resource_id)}
        stack = [first]
        resources = self._resources
        while stack:
            node = stack.pop()
            for rid in waiting.get(node, ()):
                h = resources[rid].holder
                if h is None:
                    continue
                nxt = h.participant
                if nxt == requester:
                    res.deadlocks += 1
                    raise self._deadlock(parent, node, rid, requester)
                if nxt not in parent:
                    parent[nxt] = (node, rid)
                    stack.append(nxt)

    @staticmethod
    def _deadlock(
        parent: dict[str, tuple[str, str]], last: str, last_rid: str, requester: str
    ) -> DeadlockError:
        edges = [(last, last_rid, requester)]
        node = last
        while node != requester:
            prev, rid = parent[node]
            edges.append((prev, rid, node))
            node = prev
        edges.reverse()  # requester -> holder -> ... -> last -> requester
        cycle = [a for a, _, _ in edges]
        chain = "; ".join(f"{a!r} waits for {r!r} held by {b!r}" for a, r, b in edges)
        err = DeadlockError(
            cycle,
            f"deadlock: {chain}. The request of {requester!r} for {edges[0][1]!r} was refused "
            f"at once: release a held resource first, or acquire resources in one global order",
        )
        err.edges = edges  # type: ignore[attr-defined]
        return err

    # -- reporting ---------------------------------------------------------------------------

    def statistics(self, resource_id: str) -> dict[str, Any]:
        res = self._resources.get(resource_id)
        if res is None:
            known = ", ".join(map(repr, list(self._resources)[:10]))
            raise CoordinationError(
                f"no resource {resource_id!r} has been used yet"
                + (f" (known: {known})" if known else "")
                + "; resources appear on their first acquire"
            )
        holder = res.holder
        done = [h for h in res.history if h[2] is not None]
        return {
            "resource_id": resource_id,
            "holder": holder.participant if holder else None,
            "held_since": holder.acquired_at if holder else None,
            "lease": holder.lease if holder else None,
            "lease_remaining": holder.remaining() if holder else None,
            "waiters": [w.participant for w in res.queue],
            "queue_length": len(res.queue),
            "acquisitions": res.acquisitions,
            "releases": res.releases,
            "lease_expiries": res.lease_expiries,
            "timeouts": res.timeouts,
            "cancellations": res.cancellations,
            "deadlocks": res.deadlocks,
            "total_wait": res.total_wait,
            "mean_wait": res.total_wait / res.acquisitions if res.acquisitions else 0.0,
            "max_wait": res.max_wait,
            "total_hold": res.total_hold,
            "mean_hold": res.total_hold / res.releases if res.releases else 0.0,
            "max_hold": res.max_hold,
            "wait_times": [acq - req for _, req, acq, _, _ in done],  # type: ignore[operator]
            "hold_times": [end - acq for _, _, acq, end, _ in done],  # type: ignore[operator]
        }

    def rows(self, resource_id: str | None = None) -> list[dict[str, Any]]:
        """One row per finished request (granted or not), oldest first per resource."""
        off = self._offset
        out: list[dict[str, Any]] = []
        for rid, res in self._resources.items():
            if resource_id is not None and rid != resource_id:
                continue
            for who, req, acq, end, how in res.history:
                out.append(
                    {
                        "resource_id": rid,
                        "participant": who,
                        "requested_at": req + off,
                        "acquired_at": None if acq is None else acq + off,
                        "ended_at": end + off,
                        "waited": (acq if acq is not None else end) - req,
                        "held": None if acq is None else end - acq,
                        "outcome": how,
                    }
                )
        return out


class ResourceScope:
    """``async with manager.resource(rid, participant, timeout=..., lease=...) as grant:``.

    Waits its turn in FIFO order on entry and releases on exit, also on error and on
    cancellation. If the lease ran out meanwhile (the resource already went to the next
    waiter), a body that finished normally raises :class:`~wfkit.LeaseExpiredError` on exit so
    the loss of exclusivity never goes unnoticed.
    """

    __slots__ = ("_table", "resource_id", "participant", "timeout", "lease", "grant")

    def __init__(
        self,
        table: ResourceTable,
        resource_id: str,
        participant: str,
        timeout: float | None,
        lease: float | None,
    ) -> None:
        if type(resource_id) is not str or not resource_id:
            check_name(resource_id, "resource_id")
        if type(participant) is not str or not participant:
            check_name(participant, "participant")
        if timeout is not None:
            _check_seconds(timeout, "timeout", zero_ok=True)
        if lease is not None:
            _check_seconds(lease, "lease", zero_ok=False)
        self._table = table
        self.resource_id = resource_id
        self.participant = participant
        self.timeout = timeout
        self.lease = lease
        self.grant: Grant | None = None

    async def __aenter__(self) -> Grant:
        if self.grant is not None:
            raise CoordinationError(
                f"this resource({self.resource_id!r}, {self.participant!r}) scope is already "
                f"entered; create one scope per `async with`"
            )
        self.grant = await self._table._acquire(
            self.resource_id, self.participant, self.timeout, self.lease
        )
        return self.grant

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        grant, self.grant = self.grant, None
        if grant is None:
            return
        if grant.state == "held":
            self._table.release(grant)
        elif grant.state == "expired" and exc_type is None:
            raise LeaseExpiredError(grant.resource_id, grant.participant, grant.lease or 0.0)
