"""The relay in process: a real Relay, Instances and DaemonState around memory connectors."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.typing import EventDict

from connectors.base import Contact, TargetOutcome
from rig.memory_crm import (
    MemoryCRM,
    MemorySource,
    memory_clients,
    memory_config,
    numbered_person,
)
from sync import log
from sync.batcher import Batcher, MismatchedOutcomes
from sync.errors import (
    AuthError,
    FatalConnectorError,
    KeyringUnavailable,
    RetryableError,
    SyncdError,
)
from sync.instances import Instances
from sync.relay import UPSERT_ATTEMPTS, Relay
from sync.retry import RetryEvent, RetryPolicy
from sync.secrets import MemoryTokenStore
from sync.state import DaemonState, Retrying, Selection

CRMS = ("hubspot", "pipedrive", "salesforce")
CANARY = "adalinda.canary@engines.example"


person = numbered_person


class LockableStore(MemoryTokenStore):
    """A token store whose keyring can be locked, as a desktop keyring can be mid-run."""

    def __init__(self, values: dict[str, str], error: Exception) -> None:
        super().__init__(values)
        self.locked: set[str] = set()
        self.reads: list[str] = []
        self._error = error

    def get(self, name: str) -> str | None:
        self.reads.append(name)
        if name in self.locked:
            raise self._error
        return super().get(name)


@dataclass
class World:
    """Everything one test relays through, and what it saw."""

    source: MemorySource
    crms: dict[str, MemoryCRM]
    store: LockableStore
    state: DaemonState
    instances: Instances
    relay: Relay
    #: The waits the retry policy asked for, with each CRM's `retrying` at that moment.
    sleeps: list[tuple[float, dict[str, object]]] = field(default_factory=list)

    async def add(self, n: int, targets: Sequence[str] = CRMS) -> dict[str, TargetOutcome]:
        selection = Selection(Selection.new_id(), f"person-{n}", tuple(targets))
        return await self.relay.process(selection)

    def health(self, name: str) -> dict[str, object]:
        crms = self.state.status()["crms"]
        assert isinstance(crms, dict)
        view: dict[str, object] = crms[name]
        return view


def make_world(
    people: int = 3, store_error: Exception | None = None, names: Sequence[str] = CRMS
) -> World:
    source = MemorySource(person(n) for n in range(people))
    crms = {name: MemoryCRM(name) for name in names}
    tokens = {"source": "tok-source"} | {name: f"tok-{name}" for name in names}
    store = LockableStore(tokens, store_error or RuntimeError("keyring locked"))
    state = DaemonState(list(names), "test")
    sleeps: list[tuple[float, dict[str, object]]] = []

    async def sleep(seconds: float) -> None:
        crms_view = state.status()["crms"]
        assert isinstance(crms_view, dict)
        sleeps.append((seconds, {n: crms_view[n].get("retrying") for n in names}))

    instances = Instances(
        memory_config(names),
        store,
        retry=RetryPolicy(sleep=sleep),
        clients=memory_clients(source, crms),
        observer=state.observe_retry,
    )
    relay = Relay(instances, memory_config(names).privacy, state)
    return World(source, crms, store, state, instances, relay, sleeps)


@pytest.fixture(autouse=True)
def logged() -> Iterator[list[EventDict]]:
    """Every test's log lines, as the redaction leaves them (nothing is rendered)."""
    with log.capture() as entries:
        yield entries


@asynccontextmanager
async def running(world: World) -> AsyncIterator[World]:
    """The relay's batchers run for the duration of the block."""
    async with anyio.create_task_group() as tg:
        await tg.start(world.relay.run)
        yield world
        tg.cancel_scope.cancel()
    await world.instances.aclose()


class TestFanOut:
    async def test_every_target_gets_the_person_once(self) -> None:
        """One selection reaches all three CRMs, each holding exactly one record."""
        async with running(make_world()) as world:
            outcomes = await world.add(0)
        assert {name: o.outcome for name, o in outcomes.items()} == dict.fromkeys(CRMS, "created")
        assert [crm.held("urn:li:member:0") for crm in world.crms.values()] == [1, 1, 1]

    async def test_one_failing_crm_leaves_the_others_delivered(self) -> None:
        """A CRM that refuses the call fails alone; the other CRMs get the person."""
        async with running(make_world()) as world:
            world.crms["pipedrive"].fail_next(
                FatalConnectorError("pipedrive", "pipedrive answered HTTP 418", status=418)
            )
            outcomes = await world.add(0)
        assert outcomes["pipedrive"].outcome == "failed"
        assert outcomes["pipedrive"].detail == "pipedrive answered HTTP 418 · HTTP 418"
        assert outcomes["hubspot"].outcome == outcomes["salesforce"].outcome == "created"
        assert world.crms["pipedrive"].records == {}
        assert world.health("pipedrive")["last_error"] == "pipedrive answered HTTP 418 · HTTP 418"

    async def test_a_second_add_updates_nothing_and_doubles_nothing(self) -> None:
        """Adding the same person twice leaves one record per CRM, the second time unchanged."""
        async with running(make_world()) as world:
            await world.add(1)
            again = await world.add(1)
        assert {o.outcome for o in again.values()} == {"unchanged"}
        assert all(len(crm.records) == 1 for crm in world.crms.values())


class TestLostWrites:
    async def test_a_lost_write_is_rerun_and_delivered_once(self) -> None:
        """Three lost answers mean three re-runs, each finding what the lost write made."""
        async with running(make_world()) as world:
            world.crms["hubspot"].lose_next_write(3)
            outcomes = await world.add(0)
        assert outcomes["hubspot"].outcome == "unchanged"
        assert outcomes["hubspot"].id == "1"
        assert world.crms["hubspot"].held("urn:li:member:0") == 1
        assert world.crms["hubspot"].calls.count("upsert_contacts") == 4
        waits = [wait for wait, _ in world.sleeps]  # backoff with equal jitter
        assert len(waits) == 3
        assert all(low <= w <= 2 * low for w, low in zip(waits, (0.25, 0.5, 1.0), strict=True))

    async def test_every_rerun_is_logged_with_its_attempt(self, logged: list[EventDict]) -> None:
        """Each re-run is logged before its wait, with the CRM and the attempt."""
        async with running(make_world()) as world:
            world.crms["hubspot"].lose_next_write(2)
            await world.add(0)
        retries = [e for e in logged if e["event"] == "retry.scheduled"]
        assert [(e["crm"], e["attempt"]) for e in retries] == [("hubspot", 1), ("hubspot", 2)]

    async def test_lost_answers_past_the_budget_fail_with_one_record(self) -> None:
        """When every attempt loses its answer the target fails, still holding one record."""
        async with running(make_world()) as world:
            world.crms["salesforce"].lose_next_write(UPSERT_ATTEMPTS)
            outcomes = await world.add(0)
            assert world.health("salesforce")["health"] == "unreachable"
        assert outcomes["salesforce"].outcome == "failed"
        assert outcomes["salesforce"].reason == "unavailable"
        assert world.crms["salesforce"].held("urn:li:member:0") == 1
        assert len(world.sleeps) == UPSERT_ATTEMPTS - 1

    @settings(max_examples=25, deadline=None)
    @given(
        losses=st.lists(st.integers(0, UPSERT_ATTEMPTS - 1), min_size=1, max_size=5),
        repeats=st.integers(1, 2),
    )
    def test_any_loss_pattern_delivers_each_person_exactly_once(
        self, losses: list[int], repeats: int
    ) -> None:
        """Whatever answers are lost, and however often people are re-added, each CRM
        ends with exactly one record per person."""

        async def scenario() -> World:
            async with running(make_world(people=len(losses))) as world:
                for _ in range(repeats):
                    for n, lost in enumerate(losses):
                        world.crms["hubspot"].lose_next_write(lost)
                        outcomes = await world.add(n, ("hubspot", "pipedrive"))
                        assert outcomes["hubspot"].outcome != "failed"
            return world

        world = anyio.run(scenario)
        for crm in (world.crms["hubspot"], world.crms["pipedrive"]):
            assert sorted(r.member_id or "" for r in crm.records.values()) == sorted(
                f"urn:li:member:{n}" for n in range(len(losses))
            )


class TestLastResortGuard:
    async def test_an_unexpected_crm_error_fails_only_that_target(self) -> None:
        """A bug while writing to one CRM ends it failed with a sentence; the rest deliver."""
        async with running(make_world()) as world:
            world.crms["hubspot"].raise_unexpected_next(KeyError(CANARY))
            outcomes = await world.add(0)
            assert world.health("hubspot")["last_error"] == outcomes["hubspot"].detail
        assert outcomes["hubspot"].outcome == "failed"
        assert outcomes["hubspot"].detail == (
            "internal error while writing to hubspot; details in the log"
        )
        assert outcomes["pipedrive"].outcome == outcomes["salesforce"].outcome == "created"

    async def test_the_relay_serves_the_next_selection(self) -> None:
        """After a bug in one batch the same CRM takes the next selection."""
        async with running(make_world()) as world:
            world.crms["hubspot"].raise_unexpected_next()
            await world.add(0)
            outcomes = await world.add(1)
            retried = await world.add(0)
        assert outcomes["hubspot"].outcome == "created"
        assert retried["hubspot"].outcome == "created"
        assert world.health("hubspot") == {"health": "ok", "last_error": None}

    async def test_an_unexpected_source_error_fails_every_target(self) -> None:
        """A bug while reading the person fails each target of the selection, no CRM asked."""
        async with running(make_world()) as world:
            world.source.raise_unexpected_next(ValueError(CANARY))
            outcomes = await world.add(0)
            after = await world.add(0)
            source_status = world.state.status()["source"]
        detail = "internal error while reading from the source; details in the log"
        assert {(o.outcome, o.detail) for o in outcomes.values()} == {("failed", detail)}
        assert all(crm.calls.count("upsert_contacts") == 1 for crm in world.crms.values())
        assert {o.outcome for o in after.values()} == {"created"}
        assert source_status == {"health": "ok", "last_error": None}

    async def test_check_survives_an_unexpected_error(self) -> None:
        """`syncd check` answers for every CRM when one of them hits a bug."""
        async with running(make_world()) as world:
            await world.add(0)
            world.crms["salesforce"].raise_unexpected_next(TypeError(CANARY))
            answers = await world.relay.check("person-0", CRMS)
        assert answers["hubspot"]["found"] is True
        assert answers["salesforce"] == {
            "found": False,
            "error": "internal error while asking salesforce; details in the log",
            "reason": "error",
        }

    async def test_check_survives_an_unexpected_source_error(self) -> None:
        """`syncd check` answers with the sentence when reading the source hits a bug."""
        async with running(make_world()) as world:
            world.source.raise_unexpected_next(RuntimeError(CANARY))
            answers = await world.relay.check("person-0", ("hubspot",))
        assert answers["hubspot"]["error"] == (
            "internal error while reading from the source; details in the log"
        )

    async def test_the_log_names_the_error_type_and_holds_no_data(self, tmp_path: Path) -> None:
        """The log line has the exception's type and the ids, never its message."""
        sink = tmp_path / "syncd.log"
        log.configure("debug", sink)
        try:
            async with running(make_world()) as world:
                world.crms["hubspot"].raise_unexpected_next(KeyError(CANARY))
                world.source.raise_unexpected_next(RuntimeError(f"boom {CANARY}"))
                await world.add(0)
                await world.add(0)
        finally:
            for handler in logging.getLogger().handlers:
                handler.flush()
            log.reset()
        text = sink.read_text(encoding="utf-8")
        assert "canary" not in text.lower()
        lines = [json.loads(line) for line in text.splitlines()]
        errors = [entry for entry in lines if entry["event"] == "relay.internal_error"]
        assert [(e["instance"], e["error_type"], e["level"]) for e in errors] == [
            ("source", "RuntimeError", "error"),
            ("hubspot", "KeyError", "error"),
        ]
        assert all(isinstance(e["selection_id"], str) for e in errors)


class TestBatcherSurvives:
    async def test_a_bad_batch_fails_its_waiters_and_the_next_batch_goes(self) -> None:
        """A batch call that answers the wrong number of outcomes fails its waiters only."""
        calls: list[int] = []

        async def upsert(contacts: Sequence[Contact]) -> list[TargetOutcome]:
            calls.append(len(contacts))
            if len(calls) == 1:
                return []
            return [TargetOutcome("created", id=str(len(calls))) for _ in contacts]

        batcher = Batcher(upsert)
        contact = Contact("urn:li:member:1", {"first_name": "A"})
        async with anyio.create_task_group() as tg:
            await tg.start(batcher.run)
            with pytest.raises(MismatchedOutcomes):
                await batcher.submit(contact)
            second = await batcher.submit(contact)
            tg.cancel_scope.cancel()
        assert second == TargetOutcome("created", id="2")

    async def test_an_unexpected_exception_reaches_the_waiter(self) -> None:
        """A plain exception in the batch call is raised to the waiter, not to the batcher."""

        async def upsert(contacts: Sequence[Contact]) -> list[TargetOutcome]:
            raise LookupError(len(contacts))

        batcher = Batcher(upsert)
        async with anyio.create_task_group() as tg:
            await tg.start(batcher.run)
            with pytest.raises(LookupError):
                await batcher.submit(Contact("urn:li:member:1", {}))
            with pytest.raises(LookupError):
                await batcher.submit(Contact("urn:li:member:2", {}))
            tg.cancel_scope.cancel()


HEALTH_CASES = [
    pytest.param(
        RetryableError("hubspot", "hubspot answered HTTP 429", status=429),
        "rate_limited",
        id="429-rate-limited",
    ),
    pytest.param(
        RetryableError("hubspot", "hubspot cannot be reached"), "unreachable", id="connect-error"
    ),
    pytest.param(
        RetryableError("hubspot", "hubspot answered HTTP 503", status=503),
        "unreachable",
        id="503-unreachable",
    ),
    pytest.param(AuthError("hubspot", "hubspot rejected its credential"), "auth", id="auth"),
]


class TestHealth:
    @pytest.mark.parametrize(("error", "health"), HEALTH_CASES)
    async def test_a_failure_sets_health_and_the_next_success_clears_it(
        self, error: SyncdError, health: str
    ) -> None:
        """The CRM's health names what stopped it, and an answer that succeeds clears it."""
        async with running(make_world()) as world:
            world.crms["hubspot"].fail_next(error)
            await world.add(0)
            during = world.health("hubspot")
            state = world.state.status()["state"]
            await world.add(1)
            after = world.health("hubspot")
        assert during["health"] == health
        assert state == "attention"
        assert after == {"health": "ok", "last_error": None}

    async def test_retrying_is_shown_while_waiting_then_cleared(self) -> None:
        """While a lost write waits to be re-run, `status` shows the attempt and reason."""
        async with running(make_world()) as world:
            world.crms["pipedrive"].lose_next_write(2)
            await world.add(0)
            after = world.health("pipedrive")
        shown = [retrying["pipedrive"] for _, retrying in world.sleeps]
        assert [(r["attempt"], r["reason"]) for r in shown] == [  # type: ignore[index]
            (1, "write_uncertain"),
            (2, "write_uncertain"),
        ]
        assert all(r["hubspot"] is None for _, r in world.sleeps)
        assert "retrying" not in after

    async def test_a_final_failure_clears_retrying(self) -> None:
        """A target whose retries ran out shows its failure, no longer `retrying`."""
        async with running(make_world()) as world:
            world.crms["pipedrive"].lose_next_write(UPSERT_ATTEMPTS)
            await world.add(0)
            after = world.health("pipedrive")
        assert after["health"] == "unreachable"
        assert "retrying" not in after

    async def test_a_retry_of_the_source_is_shown_and_a_read_clears_it(self) -> None:
        """A retry event of the source shows under `source`; its next answer clears it."""
        async with running(make_world()) as world:
            world.state.observe_retry(RetryEvent("source", 3, 20.0, "http_502"))
            during = world.state.status()["source"]
            await world.add(0)
            after = world.state.status()["source"]
        assert isinstance(during, dict)
        assert during["retrying"]["attempt"] == 3
        assert during["retrying"]["reason"] == "http_502"
        assert 19.0 <= during["retrying"]["next_in_s"] <= 20.0
        assert after == {"health": "ok", "last_error": None}

    def test_next_in_s_counts_down_from_the_event(self) -> None:
        """The wait shown shrinks as time passes and stops at zero."""
        retrying = Retrying(attempt=2, reason="http_500", due=100.0)
        assert retrying.as_json(now=92.5)["next_in_s"] == 7.5
        assert retrying.as_json(now=130.0)["next_in_s"] == 0.0

    def test_an_unknown_connector_is_ignored(self) -> None:
        """A retry event for a name the state does not know changes nothing."""
        state = DaemonState(["hubspot"], "test")
        state.observe_retry(RetryEvent("elsewhere", 1, 1.0, "http_500"))
        assert state.status()["crms"] == {"hubspot": {"health": "ok", "last_error": None}}

    def test_an_existing_observer_is_kept(self) -> None:
        """Instances adds its observer after the policy's own; both hear every retry."""
        heard: list[str] = []
        instances = Instances(
            memory_config(["hubspot"]),
            MemoryTokenStore(),
            retry=RetryPolicy(observer=lambda e: heard.append(f"policy {e.attempt}")),
            observer=lambda e: heard.append(f"state {e.attempt}"),
        )
        observer = instances.retry.observer
        assert observer is not None
        observer(RetryEvent("hubspot", 4, 0.0, "http_500"))
        assert heard == ["policy 4", "state 4"]


class TestCredentials:
    async def test_a_rejected_credential_is_read_again(self) -> None:
        """An AuthError drops the client; the next selection reads the store again."""
        async with running(make_world()) as world:
            hubspot = world.crms["hubspot"]
            hubspot.reject("tok-hubspot")
            failed = await world.add(0)
            during = world.health("hubspot")
            world.store.set("hubspot", "tok-hubspot-new")
            delivered = await world.add(0)
        assert failed["hubspot"].reason == "auth"
        assert during["health"] == "auth"
        assert delivered["hubspot"].outcome == "created"
        assert hubspot.credentials == ["tok-hubspot", "tok-hubspot-new"]
        assert world.store.reads.count("hubspot") == 2
        assert world.store.reads.count("pipedrive") == 1

    async def test_a_missing_credential_says_how_to_store_one(self) -> None:
        """A CRM without a credential fails auth with the command that fixes it."""
        async with running(make_world()) as world:
            world.store.delete("salesforce")
            outcomes = await world.add(0)
        assert outcomes["salesforce"].reason == "auth"
        assert "syncd auth set salesforce" in outcomes["salesforce"].detail

    @pytest.mark.parametrize(
        "error",
        [
            pytest.param(RuntimeError("org.freedesktop.Secret.Error.IsLocked"), id="locked"),
            pytest.param(OSError("the D-Bus connection went away"), id="service-gone"),
            pytest.param(
                KeyringUnavailable("keyring", "the OS keyring is locked; unlock it"),
                id="keyring-unavailable",
            ),
        ],
    )
    async def test_a_store_that_fails_leaves_auth_naming_the_credential(
        self, error: Exception
    ) -> None:
        """A locked or vanished keyring fails that CRM as `auth`, naming it; work resumes
        once the keyring answers again."""
        async with running(make_world(store_error=error)) as world:
            world.store.locked.add("hubspot")
            failed = await world.add(0)
            during = world.health("hubspot")
            world.store.locked.clear()
            resumed = await world.add(0)
            after = world.health("hubspot")
        assert failed["hubspot"].reason == "auth"
        assert "hubspot" in failed["hubspot"].detail
        assert failed["pipedrive"].outcome == "created"
        assert during["health"] == "auth"
        assert during["last_error"] == failed["hubspot"].detail
        assert resumed["hubspot"].outcome == "created"
        assert after == {"health": "ok", "last_error": None}

    async def test_a_locked_source_credential_fails_every_target(self) -> None:
        """Without the source's credential nothing is read and every target fails auth."""
        async with running(make_world()) as world:
            world.store.locked.add("source")
            outcomes = await world.add(0)
            source_status = world.state.status()["source"]
        assert {o.reason for o in outcomes.values()} == {"auth"}
        assert isinstance(source_status, dict)
        assert source_status["health"] == "auth"
        assert "source" in str(source_status["last_error"])
        assert all(crm.records == {} for crm in world.crms.values())
