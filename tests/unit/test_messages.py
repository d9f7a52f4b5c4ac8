"""Messages relayed once (issue 12) in process: the real daemon, relay and journal around
memory connectors; each CRM decides what is new, nothing local lists message ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from connectors.base import Message
from sync.cli_add import describe, exit_code
from sync.config import FollowConfig
from sync.messages import complete
from tests.inprocess import CRMS, Machine, Running

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def conversation(count: int, *, first: int = 0, text: str = "") -> list[Message]:
    """``count`` messages with person-1, oldest first, one a minute."""
    return [
        Message(
            f"msg-{n}",
            "conv-1",
            "me" if n % 2 else "them",
            START + timedelta(minutes=n),
            text or f"message {n} ✉️",
        )
        for n in range(first, first + count)
    ]


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine.make(tmp_path)


async def add(running: Running, ref: str = "person-1") -> dict[str, Any]:
    """add-contact --with-messages, waited for."""
    answer = await running.call(running.client.add, [ref], None, True)
    return await running.outcome(answer["selections"][0]["id"])


def keys(machine: Machine, crm: str) -> list[str]:
    """The activity keys a CRM holds on person-1's record, in the order written."""
    (record,) = [r for r in machine.crms[crm].records.values() if r.member_id.endswith(":1")]
    return [a.key for a in machine.crms[crm].activities.get(record.id, [])]


class TestOnce:
    """Each message lands once per CRM, however often the person is added."""

    async def test_two_runs_write_each_message_once(self, machine: Machine) -> None:
        """The second run writes nothing: every CRM says it holds them all."""
        machine.source.messages["person-1"] = conversation(3)
        async with machine.daemon() as running:
            first = await add(running)
            second = await add(running)
        assert {t["messages"] for t in first["targets"].values()} == {3}
        assert {t["messages"] for t in second["targets"].values()} == {0}
        for crm in CRMS:
            assert keys(machine, crm) == ["msg-0", "msg-1", "msg-2"]
        assert describe("hubspot", first["targets"]["hubspot"]).endswith("(+3 messages)")
        assert machine.source.conversations_read == ["person-1", "person-1"]

    async def test_three_new_messages_are_exactly_three_more(self, machine: Machine) -> None:
        """New messages after a first run: only they are written, oldest first."""
        machine.source.messages["person-1"] = conversation(2)
        async with machine.daemon() as running:
            await add(running)
            machine.source.messages["person-1"] += conversation(3, first=2)
            later = await add(running)
        assert {t["messages"] for t in later["targets"].values()} == {3}
        for crm in CRMS:
            assert keys(machine, crm) == [f"msg-{n}" for n in range(5)]

    async def test_a_lost_answer_after_a_batch_still_writes_once(self, machine: Machine) -> None:
        """The batch landed but its answer was lost: the CRM is asked again, and only the
        rest is written."""
        machine.source.messages["person-1"] = conversation(5)
        machine.crms["hubspot"].batch = 2
        machine.crms["hubspot"].lose_next_activity_write()
        async with machine.daemon() as running:
            done = await add(running)
        assert done["targets"]["hubspot"]["messages"] == 5
        assert keys(machine, "hubspot") == [f"msg-{n}" for n in range(5)]

    async def test_a_crash_between_batches_is_finished_by_the_next_run(
        self, machine: Machine
    ) -> None:
        """Killed after one batch of two: the journal replays the selection, the CRM says
        what it has, and the rest follows — each message once."""
        machine.source.messages["person-1"] = conversation(4)
        crm = machine.crms["pipedrive"]
        crm.batch = 2
        crm.stall_at_batch = 1
        async with machine.daemon() as running:
            answer = await running.call(running.client.add, ["person-1"], None, True)
            await crm.stalled.wait()
            running.handle.kill()
        assert keys(machine, "pipedrive") == ["msg-0", "msg-1"]
        crm.stall_at_batch = None
        async with machine.daemon() as running:
            replayed = await running.outcome(answer["selections"][0]["id"])
        assert keys(machine, "pipedrive") == [f"msg-{n}" for n in range(4)]
        assert replayed["targets"]["pipedrive"]["messages"] == 2
        assert crm.held("urn:li:member:1") == 1

    async def test_a_long_message_is_split_in_order(self, machine: Machine) -> None:
        """A message past the CRM's body limit is written in numbered parts, counted once."""
        long = conversation(1, text="é" * 450)
        machine.source.messages["person-1"] = long
        async with machine.daemon() as running:
            done = await add(running)
        hubspot = done["targets"]["hubspot"]
        assert hubspot["messages"] == 1
        assert "numbered parts" in hubspot["detail"]
        assert keys(machine, "hubspot") == ["msg-0#1/3", "msg-0#2/3", "msg-0#3/3"]
        (record,) = machine.crms["hubspot"].records
        bodies = [a.body for a in machine.crms["hubspot"].activities[record]]
        assert "".join(b.split(") ", 1)[1] for b in bodies) == "é" * 450

    async def test_no_conversation_is_plus_zero(self, machine: Machine) -> None:
        """A person never written to: no activity, `+0 messages`, exit 0."""
        async with machine.daemon() as running:
            done = await add(running)
        assert describe("hubspot", done["targets"]["hubspot"]) == "hubspot: created 1 (+0 messages)"
        assert exit_code([done]) == 0
        assert all(not crm.activities for crm in machine.crms.values())

    async def test_a_crm_refusing_activities_still_gets_the_contact(self, machine: Machine) -> None:
        """No permission for activities: the contact is written, that part fails with a
        sentence, and the exit code is 1."""
        machine.source.messages["person-1"] = conversation(2)
        machine.crms["pipedrive"].refuse_activities = True
        async with machine.daemon() as running:
            done = await add(running)
        pipedrive = done["targets"]["pipedrive"]
        assert pipedrive["outcome"] == "created"
        assert "no permission" in pipedrive["messages_error"]
        assert "messages not written" in describe("pipedrive", pipedrive)
        assert done["targets"]["hubspot"]["messages"] == 2
        assert exit_code([done]) == 1

    def test_a_half_written_split_message_is_not_held(self) -> None:
        """A split message counts as held only with every part."""
        assert complete(frozenset({"a", "b#1/2", "c#1/2", "c#2/2"})) == {"a", "c"}


class Gate:
    """The follow loop's sleep: records each wait asked for and returns only when the test
    releases it; :meth:`next_wait` returns once the loop is back asleep (its pass done)."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self._go = anyio.Event()
        self._asleep = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        self._asleep.set()
        await self._go.wait()
        self._go = anyio.Event()

    async def tick(self) -> None:
        """Let one interval pass, and return once the pass it triggers is done."""
        await self._asleep.wait()
        self._asleep = anyio.Event()
        self._go.set()
        await self._asleep.wait()


class TestFollow:
    """Follow mode relays the new messages of followed people, one interval at a time."""

    async def test_a_new_message_is_picked_up_within_one_interval(self, machine: Machine) -> None:
        """follow → a new message → the next pass writes it; unfollow → nothing more."""
        gate = Gate()
        config = replace(machine.config, follow=FollowConfig(True, 900.0))
        machine.source.messages["person-1"] = conversation(1)
        async with machine.daemon(config, follow_sleep=gate.sleep) as running:
            await add(running)
            followed = await running.call(
                running.client.call, "POST", "/v1/follow", {"ref": "person-1"}
            )
            machine.source.messages["person-1"] += conversation(1, first=1)
            await gate.tick()
            status = await running.call(running.client.status)
            await running.call(
                running.client.call, "POST", "/v1/follow", {"ref": "person-1", "undo": True}
            )
            machine.source.messages["person-1"] += conversation(1, first=2)
            await gate.tick()
            after = await running.call(running.client.status)
        assert {a["outcome"] for a in followed["crms"].values()} == {"following"}
        assert gate.asked[:2] == [900.0, 900.0]
        assert status["follow"]["last"] | {"at": 0} == {
            "at": 0,
            "people": 1,
            "messages": 2,
            "errors": 0,
        }
        assert after["follow"]["last"]["people"] == 0
        for crm in CRMS:
            assert keys(machine, crm) == ["msg-0", "msg-1"]

    async def test_a_forgotten_person_is_not_followed_any_more(self, machine: Machine) -> None:
        """The flag is not consent: a person on the do-not-sync list is skipped, their
        conversation never read."""
        gate = Gate()
        config = replace(machine.config, follow=FollowConfig(True, 900.0))
        async with machine.daemon(config, follow_sleep=gate.sleep) as running:
            await add(running)
            await running.call(running.client.call, "POST", "/v1/follow", {"ref": "person-1"})
            await running.call(running.client.block, "person-1")
            read = len(machine.source.conversations_read)
            await gate.tick()
        assert len(machine.source.conversations_read) == read

    async def test_follow_of_someone_in_no_crm_is_absent(self, machine: Machine) -> None:
        """Only a record can carry the flag: `absent`, and a hint to add them first."""
        async with machine.daemon() as running:
            answer = await running.call(
                running.client.call, "POST", "/v1/follow", {"ref": "person-2"}
            )
        assert {a["outcome"] for a in answer["crms"].values()} == {"absent"}
        assert "add-contact" in answer["crms"]["hubspot"]["detail"]
