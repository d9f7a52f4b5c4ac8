"""The conversation relayed once, end to end (issue 12): `syncd add-contact --with-messages`
through the real CLI and a real `syncd run` daemon (credentials in the real keyring), the
source and all three CRM sandboxes on loopback behind the fault proxy.

Each CRM's activities are counted in the sandbox's own store: Pipedrive's notes and
Salesforce's Tasks from their snapshots; HubSpot's snapshot shows no communications, so they
are read the way HubSpot serves them (a contact's v4 association list, then a batch read),
with a token of the test's own so the daemon's rate window is not touched.

One daemon serves the module (the kill -9 test restarts it); each test works on people of
its own. The module's daemon runs with ``[follow] enabled = true, interval = "15m"``: a pass
never comes within a test, and the shortest interval the config allows (1 minute) is still
too slow to wait for without sleeping, so here `syncd follow`/`unfollow` are shown to set
and clear the flag in every CRM's store and `status` to show follow mode; the pass itself
(a new message picked up within one interval, `unfollow` stopping it) is tested in process
with a gated clock in tests/unit/test_messages.py (TestFollow).

The last class checks P4 and the source's conversation reads over everything the module
did, and scans the daemon's dirs for every message text (P1).
"""

from __future__ import annotations

import html
import json
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from connectors.hubspot.client import HubSpotCRM
from connectors.pipedrive.client import PipedriveCRM
from connectors.salesforce.client import SalesforceCRM
from rig.residue import scan
from rig.sandbox_control import SandboxControl
from sync.control.client import ControlClient
from tests.e2e.conftest import CRMS, Env, Sandboxes, module_stack
from tests.e2e.test_relay_e2e import person, seed
from tests.e2e.test_rights_e2e import crm_lines

pytestmark = pytest.mark.e2e

#: A second token the HubSpot sandbox accepts: the test's own reads of communications.
READER_TOKEN = "canary-hubspot-reader-token-6b3d9f1a7e"
CLASSES: dict[str, type] = {
    "hubspot": HubSpotCRM,
    "pipedrive": PipedriveCRM,
    "salesforce": SalesforceCRM,
}
#: The request that writes a batch of activities, per CRM ({version}: Salesforce's API).
ACTIVITY_WRITE = {
    "hubspot": "/crm/v3/objects/communications/batch/create",
    "pipedrive": "/api/v1/notes",
    "salesforce": "/services/data/{version}/composite/sobjects",
}
#: HubSpot's most communications in one batch create (its documented batch size).
HUBSPOT_BATCH = 100
#: How long each HubSpot request takes while the kill -9 test waits for its first batch:
#: the second batch is held this long before HubSpot applies it.
SLOW_MS = 700
START = datetime(2025, 3, 3, 8, 30, tzinfo=UTC)
_LINE = re.compile(
    r"^(?P<outcome>created|updated|unchanged) (?P<id>\S+)"
    r"(?: \(\+(?P<messages>\d+) messages?\))?(?:; (?P<detail>.*))?$"
)
_NOTE = re.compile(r"^<p>(?P<body>.*?)</p><p>LinkedIn message .*<p>(?P<marker>[^<]*)</p>$", re.S)
_MARKER = re.compile(r"^relayed by syncd · message (\S+)$")
_HUBSPOT_DIRECTION = ("Sent: ", "Received: ")


CANARY = re.compile(r"zq-msg-canary-[a-z]+-\d+-x7")


def canary(tag: str, n: int) -> str:
    """The string no one else writes, in message ``n`` of ``tag``'s conversation."""
    return f"zq-msg-canary-{tag}-{n}-x7"


@dataclass
class Person:
    """A person seeded in the source, with their conversation (newest last here)."""

    tag: str
    index: int
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def public_id(self) -> str:
        return f"msgs-{self.tag}-k4w"

    def record(self) -> dict[str, Any]:
        """The person and their conversation in the source API's shape."""
        data = person(
            self.public_id,
            email=f"ottoline.{self.tag}@quarrendale-canary.example",
            first_name=f"Ottoline{self.tag.capitalize()}",
            last_name=f"Quarrendale-{self.tag.capitalize()}",
            member_id=f"urn:li:member:{770_000 + self.index}",
        )
        data["messages"] = self.messages
        return data

    def say(self, count: int, *, text: Callable[[int], str] | None = None) -> list[str]:
        """Add ``count`` messages, each later than the ones before; their ids."""
        ids = []
        for _ in range(count):
            n = len(self.messages)
            body = text(n) if text else f"{canary(self.tag, n)} Bonjour 👋 — à lundi ☕"
            self.messages.append(
                {
                    "id": f"m-{self.tag}-{n:04d}",
                    "conversationId": f"c-{self.tag}",
                    "sender": "me" if n % 2 == 0 else "them",
                    "sentAt": (START + timedelta(minutes=n)).isoformat(),
                    "text": body,
                }
            )
            ids.append(f"m-{self.tag}-{n:04d}")
        return ids

    def ids(self) -> list[str]:
        return [str(m["id"]) for m in self.messages]


@dataclass(frozen=True, slots=True)
class Line:
    """One CRM's outcome line of `add-contact`."""

    outcome: str
    id: str
    messages: int | None
    detail: str
    text: str


@dataclass(frozen=True, slots=True)
class Stored:
    """One activity syncd wrote, as the CRM's own store holds it."""

    #: The CRM's own id of the activity (creation order).
    id: str
    #: syncd's message-id key: the message id, or ``<id>#k/n`` for part k of n.
    key: str
    #: The activity's text, without what the CRM wraps it in (direction, HTML, marker).
    body: str

    @property
    def order(self) -> tuple[int, str]:
        return (len(self.id), self.id)


@dataclass
class Rig:
    """The module's daemon, its CLI, a control client per sandbox, and a reader of HubSpot."""

    env: Env
    sandboxes: Sandboxes
    boxes: dict[str, SandboxControl]
    daemon: Any
    hubspot: httpx.Client
    people: list[Person] = field(default_factory=list)
    #: Everyone whose conversation the module asked for.
    with_messages: set[str] = field(default_factory=set)

    def person(self, tag: str, messages: int = 0) -> Person:
        """A fresh person with ``messages`` messages, seeded in the source."""
        who = Person(tag, len(self.people) + 1)
        who.say(messages)
        self.people.append(who)
        self.seed(who)
        return who

    def seed(self, who: Person) -> None:
        """(Re)seed ``who`` in the source, with the conversation as it is now."""
        seed(self.sandboxes, who.record())

    def add(self, who: Person, *, with_messages: bool = True, code: int = 0) -> dict[str, Line]:
        """`add-contact` (exit ``code``); one parsed line per CRM."""
        args = ["add-contact", *(["--with-messages"] if with_messages else []), who.public_id]
        if with_messages:
            self.with_messages.add(who.public_id)
        done = self.env.syncd(*args)
        assert done.returncode == code, done.stdout + done.stderr
        lines = crm_lines(done.stdout)
        assert sorted(lines) == sorted(CRMS), done.stdout
        parsed = {}
        for name, (text,) in lines.items():
            found = _LINE.match(text)
            assert found is not None, f"{name}: {text}"
            count = found["messages"]
            parsed[name] = Line(
                found["outcome"],
                found["id"],
                None if count is None else int(count),
                found["detail"] or "",
                text,
            )
        return parsed

    def stored(self, name: str, record_id: str) -> list[Stored]:
        """The activities syncd wrote on ``record_id`` in ``name``, from the CRM's store, in
        the order the CRM created them."""
        if name == "hubspot":
            found = self._hubspot(record_id)
        elif name == "pipedrive":
            found = self._pipedrive(record_id)
        else:
            found = self._salesforce(record_id)
        return sorted(found, key=lambda s: s.order)

    def _hubspot(self, record_id: str) -> list[Stored]:
        ids: list[str] = []
        params = {"limit": "500"}
        while True:
            path = f"/crm/v4/objects/contact/{record_id}/associations/communication"
            page = self.hubspot.get(path, params=params).raise_for_status().json()
            ids += [str(r["toObjectId"]) for r in page["results"]]
            after = (page.get("paging") or {}).get("next", {}).get("after")
            if not after:
                break
            params["after"] = str(after)
        out = []
        for start in range(0, len(ids), HUBSPOT_BATCH):
            body = {
                "inputs": [{"id": i} for i in ids[start : start + HUBSPOT_BATCH]],
                "properties": [
                    "syncd_message_id",
                    "hs_communication_body",
                    "hs_communication_channel_type",
                ],
                "propertiesWithHistory": [],
            }
            answer = self.hubspot.post("/crm/v3/objects/communications/batch/read", json=body)
            for item in answer.raise_for_status().json()["results"]:
                props = item["properties"]
                if not props.get("syncd_message_id"):
                    continue
                assert props["hs_communication_channel_type"] == "LINKEDIN_MESSAGE"
                text = str(props["hs_communication_body"])
                prefix = next(p for p in _HUBSPOT_DIRECTION if text.startswith(p))
                out.append(Stored(str(item["id"]), props["syncd_message_id"], text[len(prefix) :]))
        return out

    def _pipedrive(self, record_id: str) -> list[Stored]:
        notes = self.boxes["pipedrive"].records()["notes"]
        out = []
        for note in notes:
            if str(note["person_id"]) != record_id or not note["active_flag"]:
                continue
            found = _NOTE.match(note["content"])
            assert found is not None, "a note on the person is not one syncd writes"
            marker = _MARKER.match(html.unescape(found["marker"]))
            assert marker is not None
            body = html.unescape(found["body"].replace("<br>", "\n"))
            out.append(Stored(str(note["id"]), marker[1], body))
        return out

    def _salesforce(self, record_id: str) -> list[Stored]:
        tasks = self.boxes["salesforce"].records()["Task"]
        return [
            Stored(str(t["Id"]), str(t["syncd_message_id__c"]), str(t["Description"]))
            for t in tasks
            if t["WhoId"] == record_id and str(t.get("IsDeleted")).lower() != "true"
        ]

    def keys(self, ids: dict[str, Line]) -> dict[str, list[str]]:
        """Per CRM, the message-id keys its store holds on the person's record, sorted."""
        return {name: sorted(s.key for s in self.stored(name, ids[name].id)) for name in CRMS}

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The daemon's log events named ``event`` so far."""
        log_file = self.env.root / "log" / "syncd.log"
        lines = log_file.read_text().splitlines()
        return [e for e in map(json.loads, filter(None, lines)) if e.get("event") == event]

    def uncertain_message_writes(self) -> Counter[str]:
        """Per CRM, how many message writes whose answer was lost the daemon retried."""
        events = self.log_events("retry.scheduled")
        return Counter(
            str(e["crm"])
            for e in events
            if e.get("what") == "messages" and e.get("reason") == "write_uncertain"
        )

    def salesforce_data(self) -> str:
        """The Salesforce API version syncd speaks (``v62.0``), from the sandbox's log."""
        for request in self.boxes["salesforce"].requests():
            found = re.match(r"^/services/data/(v\d+\.\d+)/", request["path"])
            if found:
                return found[1]
        raise AssertionError("syncd has not spoken to Salesforce's data API yet")

    def kill_9(self) -> None:
        self.daemon.send_signal(signal.SIGKILL)
        self.env.outputs += self.daemon.communicate(timeout=10)
        assert self.daemon.returncode == -signal.SIGKILL

    def status(self) -> dict[str, Any]:
        done = self.env.syncd("status", "--json")
        assert done.returncode == 0, done.stderr
        status: dict[str, Any] = json.loads(done.stdout)
        return status


def wait_until(what: str, holds: Callable[[], bool], seconds: float = 60) -> None:
    """Return once ``holds()``. Another process's state has nothing to await, so this asks
    again at once; each question is a loopback round trip."""
    deadline = time.monotonic() + seconds
    while not holds():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds} s")


@pytest.fixture(scope="module")
def rig(sandboxes: Sandboxes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """A `syncd run` daemon with follow mode on, writing to all three CRM sandboxes, its
    credentials in the real keyring."""
    root = tmp_path_factory.mktemp("messages")
    crm = sandboxes.config["crm"]
    assert isinstance(crm, dict)
    with module_stack(sandboxes, root, follow=True, hubspot_tokens=[READER_TOKEN]) as stack:
        reader = httpx.Client(
            base_url=str(crm["hubspot"]["base_url"]),
            headers={"Authorization": f"Bearer {READER_TOKEN}"},
            timeout=30,
        )
        rig = Rig(stack.env, sandboxes, stack.boxes, stack.daemon, reader)
        yield rig
        reader.close()
        stack.boxes["hubspot"].set_latency(0)
        stack.daemon = rig.daemon  # the kill -9 test restarts it


def assert_once(rig: Rig, ids: dict[str, Line], who: Person) -> None:
    """Every message of ``who`` is on their record exactly once in every CRM, nothing else."""
    assert rig.keys(ids) == {name: sorted(who.ids()) for name in CRMS}


class TestOnce:
    """Each message becomes one activity per CRM, however often the person is added."""

    def test_two_runs_write_each_message_once(self, rig: Rig) -> None:
        """N messages, `add-contact --with-messages` twice: `(+N messages)`, then
        `(+0 messages)` on the same record, and each message once in each CRM's store."""
        who = rig.person("twice", messages=5)
        first = rig.add(who)
        for line in first.values():
            assert (line.outcome, line.messages) == ("created", 5), line.text
            assert line.text == f"created {line.id} (+5 messages)"
        assert_once(rig, first, who)
        second = rig.add(who)
        for name, line in second.items():
            assert line.text == f"unchanged {first[name].id} (+0 messages)", name
        assert_once(rig, first, who)

    def test_three_new_messages_are_exactly_three_more(self, rig: Rig) -> None:
        """After a first run, three new messages: `(+3 messages)` and exactly three more
        activities per CRM; the first ones are the same activities as before."""
        who = rig.person("three", messages=4)
        first = rig.add(who)
        before = {name: rig.stored(name, first[name].id) for name in CRMS}
        assert {name: len(held) for name, held in before.items()} == dict.fromkeys(CRMS, 4)
        new = who.say(3)
        rig.seed(who)
        again = rig.add(who)
        for name, line in again.items():
            assert line.text == f"unchanged {first[name].id} (+3 messages)", name
            after = rig.stored(name, first[name].id)
            assert len(after) == len(before[name]) + 3, name
            assert [s for s in after if s in before[name]] == before[name], name
            assert sorted(s.key for s in after if s not in before[name]) == new, name
        assert_once(rig, first, who)

    def test_a_person_with_no_conversation_gets_no_activity(self, rig: Rig) -> None:
        """No conversation: `(+0 messages)`, exit 0, and no activity on the record."""
        who = rig.person("silent")
        added = rig.add(who)
        for line in added.values():
            assert line.text == f"created {line.id} (+0 messages)"
        assert rig.keys(added) == {name: [] for name in CRMS}


class TestFaults:
    """A lost answer or a killed daemon never writes a message twice."""

    def test_a_lost_answer_after_an_activity_batch_still_writes_once(self, rig: Rig) -> None:
        """Every CRM applies the first activity write and its answer is lost (a TCP reset):
        the daemon retries each (the log shows a lost message write per CRM), lists what
        landed, and writes only the rest; `(+4 messages)`, each message once."""
        who = rig.person("lost", messages=4)
        ids = rig.add(who, with_messages=False)
        version = rig.salesforce_data()
        before = rig.uncertain_message_writes()
        for name in CRMS:
            prefix = ACTIVITY_WRITE[name].format(version=version)
            rig.boxes[name].break_next("lose_response", path_prefix=prefix, method="POST")
        added = rig.add(who)
        for name, line in added.items():
            assert line.text == f"unchanged {ids[name].id} (+4 messages)", name
        after = rig.uncertain_message_writes()
        for name in CRMS:
            assert after[name] > before[name], f"{name}: no message write was cut"
        assert_once(rig, ids, who)

    def test_kill_9_between_two_batches_then_the_journal_replay_writes_each_once(
        self, rig: Rig
    ) -> None:
        """A conversation longer than one HubSpot batch; the daemon is killed once HubSpot
        holds the first batch and before the second lands; the restarted daemon replays
        the selection and every CRM holds each message once."""
        who = rig.person("killed", messages=HUBSPOT_BATCH + 30)
        ids = rig.add(who, with_messages=False)
        hubspot = rig.boxes["hubspot"]
        seen = len(hubspot.requests())
        hubspot.set_latency(SLOW_MS)  # the second batch is held this long before it lands
        try:
            queued = rig.env.syncd("add-contact", "--no-wait", "--with-messages", who.public_id)
            rig.with_messages.add(who.public_id)
            assert queued.returncode == 0, queued.stdout + queued.stderr
            (selection_id,) = queued.stdout.split()

            def first_batch_answered() -> bool:
                assert rig.daemon.poll() is None, "the daemon died on its own"
                new = hubspot.requests()[seen:]
                return any(
                    r["method"] == "POST" and r["path"] == ACTIVITY_WRITE["hubspot"] for r in new
                )

            wait_until("HubSpot's first batch of communications", first_batch_answered)
            rig.kill_9()
        finally:
            hubspot.set_latency(0)
        held = rig.stored("hubspot", ids["hubspot"].id)
        assert len(held) == HUBSPOT_BATCH, "the kill did not fall between two batches"
        rig.daemon = rig.env.start_daemon()
        client = ControlClient(rig.env.socket)
        answer = client.selection(selection_id, wait=60)
        while answer["state"] != "done":
            answer = client.selection(selection_id, wait=60)
        for name, target in answer["targets"].items():
            assert target["outcome"] == "unchanged", (name, target)
            assert not target.get("messages_error"), (name, target)
        assert answer["targets"]["hubspot"]["messages"] == len(who.messages) - HUBSPOT_BATCH
        assert_once(rig, ids, who)


class TestLongMessages:
    """A message longer than a CRM takes is written in numbered parts, whole."""

    def test_a_long_message_is_split_in_order_and_reassembles_byte_for_byte(self, rig: Rig) -> None:
        """Longer than every CRM's `body_limit`: each CRM holds parts `(k/n) …` in order,
        none longer than its limit, whose texts join to the message exactly (emoji, ZWJ
        sequences, combining accents, CJK, line breaks); a short one beside it stays whole;
        each line says parts were written."""
        limits = {name: getattr(CLASSES[name], "body_limit", None) for name in CRMS}
        missing = [name for name, limit in limits.items() if not isinstance(limit, int)]
        assert missing == [], f"no body_limit class attribute on {missing}"
        longest = max(int(limit or 0) for limit in limits.values())
        unit = (
            "Zéphyrine 🦜 {canary} — 日本語のテキスト ✉️ 👩🏽‍💻 café\u0301 & «ça» 🇫🇷\n"
            "ligne deux: ñandú 🧪 ok. "
        )
        long_text = ""
        while len(long_text) <= longest + 5_000:
            long_text += unit.format(canary=canary("long", len(long_text)))
        who = rig.person("long", messages=1)
        (long_id,) = who.say(1, text=lambda _: long_text)
        short_id = who.messages[0]["id"]
        rig.seed(who)
        added = rig.add(who)
        for name, line in added.items():
            assert (line.outcome, line.messages) == ("created", 2), line.text
            assert "1 long message(s) written in numbered parts" in line.detail, line.text
            held = rig.stored(name, line.id)
            whole = [s for s in held if s.key == short_id]
            assert [s.body for s in whole] == [who.messages[0]["text"]], name
            parts = [s for s in held if s.key.startswith(f"{long_id}#")]
            assert len(parts) + 1 == len(held), name
            count = len(parts)
            assert count >= 2, name
            assert [s.key for s in parts] == [f"{long_id}#{k}/{count}" for k in range(1, count + 1)]
            texts = []
            for k, part in enumerate(parts, start=1):
                prefix = f"({k}/{count}) "
                assert part.body.startswith(prefix), (name, k)
                assert len(part.body) <= int(limits[name] or 0), (name, k)
                texts.append(part.body[len(prefix) :])
            assert "".join(texts).encode() == long_text.encode(), name


class TestFollow:
    """`syncd follow`/`unfollow` set and clear the flag on the record in every CRM."""

    def test_follow_sets_the_flag_in_every_crm_and_unfollow_clears_it(self, rig: Rig) -> None:
        """`follow`: `following ID` per CRM and the flag set in each store; `unfollow`:
        `not-following ID` and the flag cleared; `status` shows follow mode's interval."""
        who = rig.person("followed", messages=2)
        ids = rig.add(who)
        assert all(flags == (False,) for flags in follow_flags(rig, ids).values())
        done = rig.env.syncd("follow", who.public_id)
        assert done.returncode == 0, done.stdout + done.stderr
        assert crm_lines(done.stdout) == {n: [f"following {ids[n].id}"] for n in CRMS}
        assert follow_flags(rig, ids) == dict.fromkeys(CRMS, (True,))
        done = rig.env.syncd("unfollow", who.public_id)
        assert done.returncode == 0, done.stdout + done.stderr
        assert crm_lines(done.stdout) == {n: [f"not-following {ids[n].id}"] for n in CRMS}
        assert follow_flags(rig, ids) == dict.fromkeys(CRMS, (False,))
        assert rig.status()["follow"] == {"interval_s": 900.0, "last": None}


def follow_flags(rig: Rig, ids: dict[str, Line]) -> dict[str, tuple[bool, ...]]:
    """Per CRM, whether the person's record carries the follow flag, from each store (one
    entry per record with that id, so a copy would show)."""
    hubspot = rig.boxes["hubspot"].records()["contacts"]
    pipedrive = rig.boxes["pipedrive"].records()
    salesforce = rig.boxes["salesforce"].records()["Contact"]
    codes = {f["field_name"]: f["field_code"] for f in pipedrive["person_fields"]}
    code = codes.get("syncd follow")
    return {
        "hubspot": tuple(
            c["properties"].get("syncd_follow") == "true"
            for c in hubspot
            if c["id"] == ids["hubspot"].id
        ),
        "pipedrive": tuple(
            bool(code and p["custom_fields"].get(code) == "following")
            for p in pipedrive["persons"]
            if str(p["id"]) == ids["pipedrive"].id
        ),
        "salesforce": tuple(
            str(r.get("syncd_follow__c")).lower() == "true"
            for r in salesforce
            if r["Id"] == ids["salesforce"].id
        ),
    }


class TestPromises:
    """P4, the source's reads and P1, over everything the module did (these run last)."""

    def test_only_the_chosen_conversations_are_read_and_only_get(self, rig: Rig) -> None:
        """A bystander with a conversation, added without `--with-messages`: the source saw
        no conversation request for them; every conversation request of the module was
        `with=` someone whose messages were asked for; only GET reached the source (P4)."""
        bystander = rig.person("bystander", messages=3)
        chosen = rig.person("chosen", messages=2)
        seen = len(rig.boxes["source"].requests())
        rig.add(bystander, with_messages=False)
        added = rig.add(chosen)
        assert all(line.messages == 2 for line in added.values())
        sent = rig.boxes["source"].requests()
        asked = [
            parse_qs(r["query"]).get("with", [""])
            for r in sent
            if r["path"].endswith("/v1/conversations")
        ]
        new = [
            parse_qs(r["query"]).get("with", [])
            for r in sent[seen:]
            if r["path"].endswith("/v1/conversations")
        ]
        assert new, "the chosen person's conversation was not read"
        assert all(w == [chosen.public_id] for w in new), new
        assert all(len(w) == 1 and w[0] in rig.with_messages for w in asked), asked
        assert bystander.public_id not in {w[0] for w in asked}
        assert {r["method"] for r in sent} == {"GET"}
        assert rig.boxes["source"].violations() == []

    def test_no_message_text_is_left_in_the_daemons_files_or_outputs(self, rig: Rig) -> None:
        """P1: after all of the above (faults and the kill included), no file under the
        daemon's dirs (journal, log, state, config) and no CLI output holds a message's
        text or any of its canary strings."""
        needles: dict[str, str] = {}
        for who in rig.people:
            for message in who.messages:
                needles[message["text"]] = "a message text"
                for found in CANARY.findall(message["text"]):
                    needles[found] = "a message's canary"
        assert len(needles) > 100
        report = scan(rig.env.dirs(), needles)
        assert report.files > 0  # the log and the config at least
        assert (rig.env.root / "log" / "syncd.log").stat().st_size > 0
        assert report.hits == ()
        outputs = "\n".join(rig.env.outputs)
        assert sorted({kind for text, kind in needles.items() if text in outputs}) == []
