"""The client-side rate limiter alone, on a fake clock: it paces to the limit, lets
requests under it through at once, adopts what response headers say, and stays within the
limit with many tasks at once; plus the vendor header parsers and ``send``'s use of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import httpx
import pytest

from connectors import _ratelimit
from connectors._http import send
from connectors._ratelimit import Layered, RateInfo, RateLimiter
from connectors.hubspot import ratelimit as hubspot
from connectors.pipedrive import ratelimit as pipedrive
from connectors.salesforce import ratelimit as salesforce
from sync.retry import RetryPolicy
from tests.doubles import FakeClock


def limiter(clock: FakeClock, limit: int, interval: float, **kwargs: object) -> RateLimiter:
    return RateLimiter(limit, interval, clock=clock.monotonic, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


def answer(**headers: str) -> httpx.Response:
    return httpx.Response(200, headers=headers)


def generic(response: httpx.Response) -> RateInfo | None:
    """Headers named after RateInfo's fields, for tests of the limiter alone."""
    h = response.headers
    if "limit" not in h and "remaining" not in h:
        return None
    return RateInfo(
        limit=int(h["limit"]) if "limit" in h else None,
        interval=float(h["interval"]) if "interval" in h else None,
        remaining=int(h["remaining"]) if "remaining" in h else None,
        reset=float(h["reset"]) if "reset" in h else None,
    )


async def run(limit: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    """``n`` requests one after another; when each was let through."""
    granted = []
    for _ in range(n):
        async with limit.slot():
            granted.append(clock.now)
    return granted


def most_in_any_window(granted: Sequence[float], interval: float) -> int:
    return max(sum(1 for t in granted if start <= t < start + interval) for start in granted)


class TestPacing:
    """Requests under the limit go at once; past it they wait for the window, once."""

    async def test_no_wait_under_the_limit(self) -> None:
        """As many requests as the limit allows go through without any sleep."""
        clock = FakeClock()
        granted = await run(limiter(clock, 5, 1.0), clock, 5)
        assert granted == [0.0] * 5
        assert clock.waits == []

    async def test_paces_past_the_limit(self) -> None:
        """Seven requests at three per second take two seconds, never four in a second."""
        clock = FakeClock()
        granted = await run(limiter(clock, 3, 1.0), clock, 7)
        assert granted == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0]
        assert most_in_any_window(granted, 1.0) == 3
        assert clock.waits == [1.0, 1.0]  # one computed sleep per wait, no polling

    async def test_a_request_counts_from_its_answer(self) -> None:
        """A slow request holds its place in the window until interval after it finished."""
        clock = FakeClock()
        limit = limiter(clock, 1, 1.0)
        async with limit.slot():
            await clock.sleep(0.5)  # the request takes half a second
        granted = await run(limit, clock, 1)
        assert granted == [1.5]

    async def test_max_wait_caps_one_wait(self) -> None:
        """A wait longer than max_wait is cut to it; the server's answer then decides."""
        clock = FakeClock()
        limit = limiter(clock, 1, 100.0, max_wait=5.0)
        granted = await run(limit, clock, 2)
        assert granted == [0.0, 5.0]

    async def test_layered_limits_take_a_slot_in_each(self) -> None:
        """A search request waits for the narrower search window as well as the account's."""
        clock = FakeClock()
        account, search = limiter(clock, 10, 1.0), limiter(clock, 1, 1.0)
        both = Layered([search, account])
        granted = []
        for _ in range(3):
            async with both.slot():
                granted.append(clock.now)
        assert granted == [0.0, 1.0, 2.0]
        assert account.waits == []


class TestHeaderCorrection:
    """What the server says wins over what was assumed."""

    async def test_adopts_a_smaller_limit_and_window(self) -> None:
        """After an answer saying 2 per 0.5 s, the limiter paces 2 per 0.5 s, not 100 per 10."""
        clock = FakeClock()
        limit = limiter(clock, 100, 10.0, parse=generic)
        async with limit.slot():
            limit.observe(answer(limit="2", interval="0.5", remaining="1"))
        granted = await run(limit, clock, 4)
        assert (limit.limit, limit.interval) == (2, 0.5)
        assert granted == [0.0, 0.5, 0.5, 1.0]

    async def test_spent_window_holds_until_reset(self) -> None:
        """remaining 0 with a reset in 3 s holds the next request 3 s."""
        clock = FakeClock()
        limit = limiter(clock, 10, 1.0, parse=generic)
        async with limit.slot():
            limit.observe(answer(remaining="0", reset="3"))
        granted = await run(limit, clock, 1)
        assert granted == [3.0]

    async def test_a_window_spent_by_us_alone_frees_on_our_count(self) -> None:
        """We sent all 3 of 3 (one every 0.1 s); the server's reset, in whole seconds, says
        2 while our own first request frees 1.0 s after it ended: the next goes then."""
        clock = FakeClock()
        limit = limiter(clock, 3, 1.0, parse=generic)
        for remaining in ("2", "1", "0"):
            async with limit.slot():
                limit.observe(answer(remaining=remaining, reset="2"))
            await clock.sleep(0.1)
        granted = await run(limit, clock, 2)
        assert granted == pytest.approx([1.0, 1.1], abs=0.002)

    async def test_requests_the_server_counted_but_we_did_not_send(self) -> None:
        """When the server counts 4 of 5 used after our first, only one more goes at once."""
        clock = FakeClock()
        limit = limiter(clock, 5, 1.0, parse=generic)
        async with limit.slot():
            limit.observe(answer(remaining="1"))
        granted = await run(limit, clock, 2)
        assert granted == [0.0, 1.0]

    async def test_a_larger_limit_is_adopted_too(self) -> None:
        """A Pro account's 190 replaces the assumed 100: the headers describe the window."""
        clock = FakeClock()
        limit = limiter(clock, 100, 10.0, parse=generic)
        async with limit.slot():
            limit.observe(answer(limit="190", remaining="189"))
        assert limit.limit == 190

    async def test_answers_without_headers_change_nothing(self) -> None:
        """An answer without rate-limit headers leaves the window as it was."""
        clock = FakeClock()
        limit = limiter(clock, 3, 1.0, parse=generic)
        async with limit.slot():
            limit.observe(answer())
        assert (limit.limit, limit.interval) == (3, 1.0)
        assert await run(limit, clock, 2) == [0.0, 0.0]


class TestConcurrency:
    """Many tasks of one client share one window."""

    async def test_tasks_at_once_stay_within_the_limit(self) -> None:
        """Ten tasks at three per second: never four in a second, and done in three."""
        clock = FakeClock()
        limit = limiter(clock, 3, 1.0)
        granted: list[float] = []

        async def request() -> None:
            async with limit.slot():
                granted.append(clock.now)

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(request)
        assert sorted(granted) == [0.0] * 3 + [1.0] * 3 + [2.0] * 3 + [3.0]
        assert most_in_any_window(granted, 1.0) == 3

    async def test_first_answer_is_awaited_before_others_go(self) -> None:
        """Until an answer has told the real limits, one request is in flight at a clock."""
        clock = FakeClock()
        limit = limiter(clock, 100, 10.0, parse=generic)
        order: list[str] = []
        beside_first: list[str] = []

        async def request(name: str) -> None:
            async with limit.slot():
                order.append(name)
                if name == "first":
                    for _ in range(5):  # give the others every chance to start
                        await anyio.lowlevel.checkpoint()
                    beside_first.extend(order[1:])
                    limit.observe(answer(limit="2", interval="1", remaining="1"))

        async with anyio.create_task_group() as group:
            group.start_soon(request, "first")
            await anyio.lowlevel.checkpoint()
            for n in range(3):
                group.start_soon(request, f"then{n}")
        assert order[0] == "first"
        assert beside_first == []
        assert sorted(order) == ["first", "then0", "then1", "then2"]
        assert limit.limit == 2

    async def test_waits_for_requests_in_flight(self) -> None:
        """With every slot held by a request in flight, the next waits for one to finish and
        then for the window, without sleeping in between."""
        clock = FakeClock()
        limit = limiter(clock, 1, 1.0)
        finished = anyio.Event()
        granted: list[float] = []

        async def slow() -> None:
            async with limit.slot():
                await finished.wait()

        async def next_one() -> None:
            async with limit.slot():
                granted.append(clock.now)

        async with anyio.create_task_group() as group:
            group.start_soon(slow)
            await anyio.lowlevel.checkpoint()
            group.start_soon(next_one)
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            assert granted == []
            assert clock.waits == []
            finished.set()
        assert granted == [1.0]
        assert clock.waits == [1.0]


class TestSendUsesTheLimiter:
    """send() takes a slot for every attempt, retries too, and shows it every answer."""

    async def test_every_attempt_takes_a_slot_and_is_observed(self) -> None:
        """A 503 then a 200: two slots, both answers observed."""
        answers = iter([503, 200])
        seen = Counting()

        def server(request: httpx.Request) -> httpx.Response:
            return httpx.Response(next(answers))

        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            response = await send(
                client,
                "GET",
                "http://crm.test/x",
                connector="crm",
                policy=RetryPolicy(sleep=FakeClock().sleep),
                limiter=seen,
            )
        assert response.status_code == 200
        assert (seen.slots, seen.observed) == (2, [503, 200])

    async def test_a_broken_connection_gives_its_slot_back(self) -> None:
        """A request that never got an answer frees its slot and still counts in the window."""
        clock = FakeClock()
        limit = limiter(clock, 2, 1.0)

        def server(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as client:
            with pytest.raises(Exception, match="cannot be reached"):
                await send(
                    client,
                    "GET",
                    "http://crm.test/x",
                    connector="crm",
                    policy=RetryPolicy(attempts=2, sleep=clock.sleep),
                    limiter=limit,
                )
        # Both attempts count until a second after they broke; neither is stuck in flight.
        assert await run(limit, clock, 1) == [pytest.approx(1.0, abs=0.002)]


class Counting:
    """A limiter that only counts (a fake of the Limiter protocol)."""

    def __init__(self) -> None:
        self.slots = 0
        self.observed: list[int] = []

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.slots += 1
        yield

    def observe(self, response: httpx.Response) -> None:
        self.observed.append(response.status_code)


class TestVendorParsers:
    """Each vendor's rate-limit headers as a RateInfo."""

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            pytest.param(
                {
                    "X-HubSpot-RateLimit-Max": "100",
                    "X-HubSpot-RateLimit-Remaining": "42",
                    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                    "X-HubSpot-RateLimit-Daily": "250000",
                },
                RateInfo(limit=100, interval=10.0, remaining=42),
                id="window",
            ),
            pytest.param({}, None, id="search-answers-have-none"),
            pytest.param({"X-HubSpot-RateLimit-Max": "x"}, None, id="garbage"),
        ],
    )
    def test_hubspot(self, headers: dict[str, str], expected: RateInfo | None) -> None:
        """X-HubSpot-RateLimit-Max/Remaining/Interval-Milliseconds; daily is not paced."""
        assert hubspot.parse(answer(**headers)) == expected

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            pytest.param(
                {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"},
                RateInfo(limit=40, remaining=0, reset=2.0),
                id="spent",
            ),
            pytest.param({"x-token-cost": "10"}, None, id="cost-only"),
            pytest.param({"x-ratelimit-reset": "nan"}, None, id="garbage"),
        ],
    )
    def test_pipedrive(self, headers: dict[str, str], expected: RateInfo | None) -> None:
        """x-ratelimit-limit/remaining/reset over the documented 2-second window."""
        assert pipedrive.parse(answer(**headers)) == expected

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            pytest.param("api-usage=14990/15000", RateInfo(limit=15000, remaining=10), id="near"),
            pytest.param("api-usage=15001/15000", RateInfo(limit=15000, remaining=0), id="over"),
            pytest.param("per-app-api-usage=1/10(appName=x)", None, id="app-usage-only"),
            pytest.param(
                "api-usage=25/15000; per-app-api-usage=17/250(appName=x)",
                RateInfo(limit=15000, remaining=14975),
                id="org-and-app",
            ),
        ],
    )
    def test_salesforce(self, header: str, expected: RateInfo | None) -> None:
        """Sforce-Limit-Info api-usage=N/M: M is the limit, M-N what is left."""
        assert salesforce.parse(answer(**{"Sforce-Limit-Info": header})) == expected

    async def test_salesforce_does_not_pace_far_from_the_max(self) -> None:
        """At 10 of 15,000 used, requests go at once: nothing is held until usage is near."""
        clock = FakeClock()
        limit = salesforce.limiter(clock.sleep, clock=clock.monotonic)
        for _ in range(20):
            async with limit.slot():
                limit.observe(answer(**{"Sforce-Limit-Info": "api-usage=10/15000"}))
        assert clock.waits == []

    async def test_salesforce_holds_at_the_max(self) -> None:
        """With the org's usage at its maximum, the next request is held (up to MAX_WAIT)."""
        clock = FakeClock()
        limit = salesforce.limiter(clock.sleep, clock=clock.monotonic)
        async with limit.slot():
            limit.observe(answer(**{"Sforce-Limit-Info": "api-usage=15000/15000"}))
        async with limit.slot():
            pass
        assert clock.waits == [salesforce.MAX_WAIT]


def test_module_exports() -> None:
    """The limiter's public names."""
    assert set(_ratelimit.__all__) >= {"RateLimiter", "Layered", "Unlimited", "RateInfo"}
