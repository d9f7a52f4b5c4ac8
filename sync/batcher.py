"""Coalescing: the contacts waiting for one CRM go out in one batch call.

While a batch is in flight, the selections that arrive for the same CRM wait in line; when
it returns, everything waiting (up to the CRM's batch size) leaves in the next call. One
selection alone is sent at once: an interactive `add-contact` never waits for company. While
the daemon holds more selections than the batch has (a `--from-file` import), a batch that is
not full waits up to ``linger`` seconds for them, so a bulk run spends a fraction of a request
per person rather than a call per trickle of source reads. One call per CRM is in
flight at a time (``in_flight=1``): two overlapping calls could both decide to create the
same person, organisation or custom field, which no CRM here prevents for us. Each waiting
selection gets its own contact's outcome, or the error that stopped the whole call.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from connectors.base import Contact, TargetOutcome

Upsert = Callable[[Sequence[Contact]], Awaitable[list[TargetOutcome]]]


class MismatchedOutcomes(Exception):
    """A batch call answered a different number of outcomes than it was given contacts."""

    def __init__(self, sent: int, answered: int) -> None:
        super().__init__(f"a batch of {sent} contacts answered {answered} outcomes")


class BatchAbandoned(Exception):
    """The batch call was cancelled before it answered."""

    def __init__(self) -> None:
        super().__init__("the batch call was cancelled before it answered")


@dataclass(eq=False, slots=True)
class _Waiting:
    contact: Contact
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: TargetOutcome | None = None
    error: Exception | None = None


class Batcher:
    """Feeds one CRM: :meth:`submit` from any task, :meth:`run` in the daemon's task group."""

    def __init__(
        self,
        upsert: Upsert,
        *,
        max_batch: int = 100,
        in_flight: int = 1,
        linger: float = 0.0,
        backlog: Callable[[], int] = lambda: 0,
    ) -> None:
        self._upsert = upsert
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._linger = linger
        #: How many selections the daemon holds that are not finished (this batch's included).
        self._backlog = backlog
        send, receive = anyio.create_memory_object_stream[_Waiting](max_buffer_size=math.inf)
        self._send: MemoryObjectSendStream[_Waiting] = send
        self._receive: MemoryObjectReceiveStream[_Waiting] = receive

    async def submit(self, contact: Contact) -> TargetOutcome:
        """The outcome of ``contact`` in this CRM; raises what stopped its batch."""
        waiting = _Waiting(contact)
        await self._send.send(waiting)
        await waiting.done.wait()
        if waiting.error is not None:
            raise waiting.error
        if waiting.outcome is None:  # the batch was cancelled under it (the daemon stopping)
            raise BatchAbandoned
        return waiting.outcome

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Send batches until cancelled, at most ``in_flight`` at a time."""
        slots = anyio.Semaphore(self._in_flight)
        async with self._send, self._receive, anyio.create_task_group() as tg:
            task_status.started()
            async for first in self._receive:
                await slots.acquire()
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                if self._linger and len(batch) < self._max_batch:
                    await self._gather(batch)
                tg.start_soon(self._send_batch, batch, slots)

    async def _gather(self, batch: list[_Waiting]) -> None:
        """Wait up to ``linger`` for more of a backlog to arrive, while there is one."""
        with anyio.move_on_after(self._linger):
            while len(batch) < self._max_batch and self._backlog() > len(batch):
                batch.append(await self._receive.receive())

    async def _call(self, batch: list[_Waiting]) -> list[TargetOutcome]:
        outcomes = await self._upsert([w.contact for w in batch])
        if len(outcomes) != len(batch):
            raise MismatchedOutcomes(len(batch), len(outcomes))
        return outcomes

    async def _send_batch(self, batch: list[_Waiting], slots: anyio.Semaphore) -> None:
        # Whatever the call raises, expected or not, is handed to each waiting selection,
        # which reports it: it must never end this task group, which feeds every batch.
        try:
            outcomes = await self._call(batch)
        except Exception as error:
            for waiting in batch:
                waiting.error = error
        else:
            for waiting, outcome in zip(batch, outcomes, strict=True):
                waiting.outcome = outcome
        finally:
            slots.release()
            for waiting in batch:
                waiting.done.set()
