"""Requests that do not wait for each other, sent side by side: one round trip, not several.

A connector's own errors (``SyncdError`` and the rest) come out as themselves, not wrapped in
an ``ExceptionGroup``, so callers keep catching what they caught when the calls were made one
after the other: the first call to fail cancels the others and its error is raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")


async def gather(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Every call's result, in order; the first error raised as itself."""
    results: dict[int, T] = {}
    errors: list[Exception] = []

    async def run(index: int, call: Callable[[], Awaitable[T]], scope: anyio.CancelScope) -> None:
        try:
            results[index] = await call()
        except Exception as error:  # handed to the caller below, unwrapped
            errors.append(error)
            scope.cancel()

    async with anyio.create_task_group() as tg:
        for index, call in enumerate(calls):
            tg.start_soon(run, index, call, tg.cancel_scope)
    if errors:
        raise errors[0]
    return [results[index] for index in range(len(calls))]


async def both(
    first: Callable[[], Awaitable[A]], second: Callable[[], Awaitable[B]]
) -> tuple[A, B]:
    """Two calls of different result types side by side (see :func:`gather`)."""
    out_a: list[A] = []
    out_b: list[B] = []

    async def run_a() -> None:
        out_a.append(await first())

    async def run_b() -> None:
        out_b.append(await second())

    await gather([run_a, run_b])
    return out_a[0], out_b[0]
