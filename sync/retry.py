"""How hard syncd tries before a request is a final failure, and how every retry is seen.

One mechanism (tenacity) for every retry: the HTTP edge's per-request retries and the relay's
re-runs of an upsert whose answer was lost. Each retry is logged before its wait (the
connector, the attempt, the wait, the HTTP status or error kind — never a person's data) and
reported to an optional observer, which is how `syncd status` shows a CRM that is retrying.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from sync.errors import ConnectorError, RetryableError, WriteUncertain

log = structlog.get_logger("syncd.retry")

#: How many times a whole operation whose write was not confirmed is run again.
RERUNS = 8


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """One retry about to wait: which connector, after which attempt, how long, and why."""

    connector: str
    attempt: int
    wait: float
    reason: str


RetryObserver = Callable[[RetryEvent], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try before a request is a final failure."""

    attempts: int = 12
    initial_delay: float = 0.5
    max_delay: float = 30.0
    #: The whole budget: past it, a request that still fails is a final failure. With
    #: equal jitter the 12 attempts alone take at least ~90 s, so a CRM that is down
    #: for half a minute is waited out, while a dead one is reported within minutes.
    deadline: float = 180.0
    #: How to wait; tests pass a recorder that returns at once, so nothing really sleeps
    #: and the waits asked for can be checked.
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    #: Told of every retry before its wait (the daemon feeds `status` from it).
    observer: RetryObserver | None = None

    def delay(self, state: RetryCallState) -> float:
        """Exponential backoff with equal jitter (half fixed, half random, so the budget
        has a known floor), never shorter than the server asked."""
        backoff = min(self.max_delay, self.initial_delay * 2 ** (state.attempt_number - 1))
        delay: float = backoff / 2 + random.uniform(0, backoff / 2)  # noqa: S311 - jitter
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableError) and error.retry_after == 0:
            return 0.0
        if isinstance(error, RetryableError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.max_delay))
        return delay

    def rerun_lost_answers(self, connector: str, what: str) -> AsyncRetrying:
        """Runs a whole operation (lookup, then write) again when a write's answer was lost
        (WriteUncertain): never the write alone, so the lookup finds what it made. Used by
        the upsert, the erase and the message writes."""
        return AsyncRetrying(
            stop=stop_after_attempt(RERUNS),
            wait=self.delay,
            retry=retry_if_exception_type(WriteUncertain),
            sleep=self.sleep,
            before_sleep=self.before_sleep(connector, what),
            reraise=True,
        )

    def before_sleep(
        self, connector: str, what: str = "request"
    ) -> Callable[[RetryCallState], None]:
        """A tenacity ``before_sleep`` hook that logs the retry and tells the observer."""

        def hook(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            event = RetryEvent(connector, state.attempt_number, round(wait, 3), reason_of(error))
            log.info(
                "retry.scheduled",
                crm=connector,
                what=what,
                attempt=event.attempt,
                wait_s=event.wait,
                reason=event.reason,
            )
            if self.observer is not None:
                self.observer(event)

        return hook


def reason_of(error: BaseException | None) -> str:
    """Why a retry happens, as a code that never carries a person's data: ``http_429`` for an
    answer, else the kind of failure (``write_uncertain``, or the transport error's class,
    such as ``ConnectError`` or ``ReadTimeout``)."""
    if error is None:
        return "unknown"
    if isinstance(error, ConnectorError) and error.status is not None:
        return f"http_{error.status}"
    if isinstance(error, WriteUncertain):
        return "write_uncertain"
    cause = error.__cause__
    return type(cause if cause is not None else error).__name__
