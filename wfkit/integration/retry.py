"""Redelivery with backoff (Camel's redelivery policy), on tenacity.

Only transient errors are retried: connection errors and timeouts, HTTP 429 and 5xx, and
database errors that mean "try again" (a lost connection, a locked database). Endpoints turn
their library's exceptions into :class:`~wfkit.errors.EndpointError` with ``transient`` and,
for 429/503, ``retry_after`` set; a ``Retry-After`` from the server replaces the computed
backoff for that wait (capped by ``max_retry_after``).

The first attempt runs without tenacity (most messages succeed at once, and building a retrying
controller per message would cost more than the work); the retries run under tenacity's
:class:`~tenacity.AsyncRetrying` with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from wfkit.errors import EndpointError, IntegrationConfigError
from wfkit.integration.config import config_dict

__all__ = ["RetryPolicy", "Attempts", "is_transient", "parse_retry_after", "call_with_retry"]

Sleep = Callable[[float], Awaitable[Any]]
_DEFAULT_BACKOFF = 0.1
# tenacity 9 renamed the first wait of wait_exponential_jitter from "initial" to "multiplier"
_BASE = (
    "multiplier"
    if "multiplier" in inspect.signature(wait_exponential_jitter.__init__).parameters
    else "initial"
)


def is_transient(exc: BaseException) -> bool:
    """Whether trying again may succeed."""
    if isinstance(exc, EndpointError):
        return exc.transient
    return isinstance(exc, TimeoutError | ConnectionError)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to redeliver to one endpoint.

    Wait before retry *n* (1-based): ``min(max_backoff, backoff * 2**(n-1) + U(0, jitter))``,
    or the server's ``Retry-After`` (at most ``max_retry_after``) when it sent one.
    """

    max_attempts: int = 1
    backoff: float = _DEFAULT_BACKOFF
    max_backoff: float = 30.0
    jitter: float = 0.0
    max_retry_after: float = 60.0

    KEYS: ClassVar[tuple[str, ...]] = (
        "max_attempts", "backoff", "max_backoff", "jitter", "max_retry_after"
    )

    @classmethod
    def from_config(cls, config: Any, *, flow_id: str | None = None) -> RetryPolicy:
        """Accepts ``None``/``False`` (no retries), ``True`` (3 attempts), an int, or a dict."""
        where = f"flow {flow_id!r}: error_handling['retry']"
        if config is None or config is False:
            return cls()
        if config is True:
            return cls(max_attempts=3, jitter=0.1)
        if isinstance(config, int):
            config = {"max_attempts": config}
        config = config_dict(
            config,
            cls.KEYS,
            where=where,
            expected="a dict such as {'max_attempts': 3, 'backoff': 0.5}, an int or a bool",
            flow_id=flow_id,
            field="retry",
        )
        values: dict[str, Any] = {}
        for key in cls.KEYS:
            if key not in config:
                continue
            value = config[key]
            if key == "jitter" and isinstance(value, bool):
                value = float(config.get("backoff", _DEFAULT_BACKOFF)) if value else 0.0
            if key == "max_attempts":
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            else:
                ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            if not ok:
                need = "an int >= 1" if key == "max_attempts" else "a number >= 0 (seconds)"
                raise IntegrationConfigError(
                    f"{where}[{key!r}] must be {need}, got {value!r}", flow_id=flow_id, field="retry"
                )
            values[key] = value if key == "max_attempts" else float(value)
        return cls(**values)

    def delay(self, retry: int, exc: BaseException | None = None) -> float:
        """The wait before retry number ``retry`` (1-based) after ``exc``."""
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return min(float(after), self.max_retry_after)
        wait = wait_exponential_jitter(
            **{_BASE: self.backoff}, max=self.max_backoff, exp_base=2, jitter=self.jitter
        )
        return float(wait(SimpleNamespace(attempt_number=retry)))  # type: ignore[arg-type]


@dataclass(slots=True)
class Attempts:
    """What :func:`call_with_retry` did: ``attempts`` made and the ``delays`` waited."""

    attempts: int = 0
    delays: list[float] = field(default_factory=list)
    error: BaseException | None = None
    result: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def call_with_retry(
    fn: Callable[[], Awaitable[Any]], policy: RetryPolicy, *, sleep: Sleep = asyncio.sleep
) -> Attempts:
    """Await ``fn()`` until it succeeds, fails for good, or ``policy`` gives up.

    Never raises for ``Exception``s (they end up in ``.error``); cancellation propagates.
    """
    record = Attempts(attempts=1)
    try:
        record.result = await fn()
        return record
    except Exception as exc:
        if policy.max_attempts <= 1 or not is_transient(exc):
            record.error = exc
            return record
        first = exc

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return policy.delay(state.attempt_number + 1, exc)

    def before_sleep(state: RetryCallState) -> None:
        record.delays.append(state.next_action.sleep if state.next_action else 0.0)

    # The first retry waits on the first attempt's error, then tenacity takes over.
    first_delay = policy.delay(1, first)
    record.delays.append(first_delay)
    await sleep(first_delay)
    controller = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts - 1),
        wait=wait,
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
        sleep=sleep,
    )
    try:
        async for attempt in controller:
            with attempt:
                record.attempts = attempt.retry_state.attempt_number + 1
                record.result = await fn()
    except Exception as exc:
        record.error = exc
    return record
