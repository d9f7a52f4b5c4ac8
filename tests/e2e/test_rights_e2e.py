"""The data subject's rights end to end (issue 11, P6): `forget`, `block`, `export` and
`cancel` through the real CLI, a real `syncd run` daemon with its credentials in the real
keyring, and every sandbox (the source, HubSpot, Pipedrive, Salesforce) on loopback.

One daemon serves the whole module (starting one costs more than most of these tests);
each test works on people of its own, so the tests stand alone in any order, and the
last one scans the do-not-sync list for everyone the others put on it.
"""

from __future__ import annotations

import contextlib
import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from rig.residue import scan
from rig.sandbox_control import SandboxControl
from tests.e2e.conftest import CRMS, Env, Sandboxes, module_stack
from tests.e2e.test_relay_e2e import person, seed
from tests.unit.test_donotsync import encodings

pytestmark = pytest.mark.e2e

#: The outage a forget has to wait out: a few of the daemon's first retries, far inside
#: its budget (sync.retry.RetryPolicy: 12 attempts, 180 s).
OUTAGE_SECONDS = 1.5


@dataclass(frozen=True, slots=True)
class Canary:
    """A person seeded in the source with values found nowhere else."""

    tag: str
    index: int

    @property
    def public_id(self) -> str:
        return f"rights-{self.tag}-q7z"

    @property
    def member_id(self) -> str:
        return f"urn:li:member:{880_000 + self.index}"

    @property
    def first_name(self) -> str:
        return f"Quennel{self.tag.capitalize()}"

    @property
    def last_name(self) -> str:
        return f"Zarbuckle-{self.tag.capitalize()}"

    @property
    def email(self) -> str:
        return f"quennel.{self.tag}@zarbuckle-canary.example"

    @property
    def company(self) -> str:
        return f"Zarbuckle {self.tag.capitalize()} Canary Works"

    def source_record(self) -> dict[str, Any]:
        """The person in the source API's shape."""
        return person(
            self.public_id,
            email=self.email,
            phone=f"+33 4 72 {self.index:02d} 19 58",
            first_name=self.first_name,
            last_name=self.last_name,
            company=self.company,
            member_id=self.member_id,
        )

    def needles(self) -> dict[str, str]:
        """Every value naming this person, by kind (for the canary scans)."""
        return {
            self.public_id: "a publicId",
            self.member_id: "a member id",
            self.first_name: "a first name",
            self.last_name: "a last name",
            f"{self.first_name} {self.last_name}": "a name",
            self.email: "an email",
        }


def crm_lines(output: str) -> dict[str, list[str]]:
    """The per-CRM lines of a command's output: {CRM: [what follows "NAME: "]}."""
    lines: dict[str, list[str]] = {}
    for line in output.splitlines():
        name, sep, rest = line.partition(": ")
        if sep and name in CRMS:
            lines.setdefault(name, []).append(rest)
    return lines


def live_records(name: str, snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The person records a CRM sandbox's snapshot shows as live (not deleted, not binned)."""
    if name == "hubspot":
        return list(snapshot["contacts"])
    if name == "pipedrive":
        return [p for p in snapshot["persons"] if not p["is_deleted"]]
    rows = [*snapshot["Contact"], *snapshot["Lead"]]
    return [r for r in rows if r.get("IsDeleted") != "true"]


def is_delete_of(name: str, request: dict[str, Any], record_id: str) -> bool:
    """Whether ``request`` (a sandbox's log entry) deletes the person record ``record_id``."""
    method, path = str(request["method"]), str(request["path"])
    if name == "hubspot":  # the GDPR delete names the record in its body, never the path
        return method == "POST" and path.endswith("/contacts/gdpr-delete")
    if name == "pipedrive":
        return method == "DELETE" and path == f"/api/v2/persons/{record_id}"
    return method == "DELETE" and path.endswith(f"/sobjects/Contact/{record_id}")


def nowhere() -> dict[str, list[str]]:
    """What :meth:`Rig.holding` answers for a person no CRM holds."""
    return {name: [] for name in CRMS}


def is_any_delete(request: dict[str, Any]) -> bool:
    return bool(request["method"] == "DELETE" or request["path"].endswith("/gdpr-delete"))


@dataclass
class Rig:
    """The module's daemon, its CLI, and a control client per sandbox."""

    env: Env
    sandboxes: Sandboxes
    boxes: dict[str, SandboxControl]
    #: Everyone a test put on the do-not-sync list (forgotten or blocked).
    listed: list[Canary] = field(default_factory=list)
    _made: int = 0

    def person(self, tag: str) -> Canary:
        """A fresh canary person, seeded in the source."""
        self._made += 1
        canary = Canary(tag, self._made)
        seed(self.sandboxes, canary.source_record())
        return canary

    def add(self, who: Canary) -> dict[str, str]:
        """`add-contact`; asserts a record was created in every CRM and returns their ids."""
        done = self.env.syncd("add-contact", who.public_id)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = crm_lines(done.stdout)
        assert sorted(lines) == sorted(CRMS), done.stdout
        ids = {}
        for name, (line,) in lines.items():
            outcome, record_id = line.split()
            assert outcome == "created", done.stdout
            ids[name] = record_id
        return ids

    def requests(self) -> dict[str, list[dict[str, Any]]]:
        """Every sandbox's request log (the source's too)."""
        return {name: box.requests() for name, box in self.boxes.items()}

    def snapshots(self) -> dict[str, Any]:
        """What each CRM sandbox holds, as its own store shows it."""
        return {name: self.boxes[name].records() for name in CRMS}

    def holding(self, who: Canary) -> dict[str, list[str]]:
        """Per CRM, the ids of the live records that carry any of ``who``'s values."""
        found: dict[str, list[str]] = {}
        for name, snapshot in self.snapshots().items():
            ids = []
            for record in live_records(name, snapshot):
                text = json.dumps(record)
                if who.member_id in text or who.email in text or who.last_name in text:
                    ids.append(str(record.get("id") or record.get("Id")))
            found[name] = ids
        return found

    def status(self) -> dict[str, Any]:
        done = self.env.syncd("status", "--json")
        assert done.returncode == 0, done.stderr
        status: dict[str, Any] = json.loads(done.stdout)
        return status

    def state_dir(self) -> Path:
        return Path(self.env.environ["XDG_STATE_HOME"]) / "syncd"

    def journal_segments(self) -> list[Path]:
        return sorted((self.state_dir() / "journal").glob("*.sj"))

    def retries(self, crm: str) -> int:
        """How many retries the daemon's log file shows for ``crm`` so far."""
        log_file = self.env.root / "log" / "syncd.log"
        events = [json.loads(line) for line in log_file.read_text().splitlines() if line]
        return sum(1 for e in events if e.get("event") == "retry.scheduled" and e.get("crm") == crm)


def outage(box: SandboxControl, seconds: float) -> None:
    """Take a sandbox's network down for ``seconds`` (rig/faultnet.py). The knob is asked
    through the very proxy it stops, so the proxy cuts the knob's own answer too."""
    with contextlib.suppress(httpx.RemoteProtocolError, httpx.ReadError):
        box.outage(seconds)
    with pytest.raises(httpx.TransportError):
        box.requests()  # the network really is down


@pytest.fixture(scope="module")
def rig(sandboxes: Sandboxes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """A `syncd run` daemon on throwaway dirs, writing to all three CRM sandboxes, its
    credentials in the real keyring."""
    with module_stack(sandboxes, tmp_path_factory.mktemp("rights")) as stack:
        yield Rig(stack.env, sandboxes, stack.boxes)


class TestForget:
    """`syncd forget` erases in every CRM, blocks re-sync, and is carried out through outages."""

    def test_forget_erases_then_add_contact_is_refused_and_sends_nothing(self, rig: Rig) -> None:
        """One `erased` line per CRM (with Pipedrive's and Salesforce's retention), no live
        record left; a re-add exits 5 naming `forget --undo`, and not one
        request reaches a CRM or the source."""
        who = rig.person("forgotten")
        ids = rig.add(who)
        done = rig.env.syncd("forget", "--yes", who.public_id)
        rig.listed.append(who)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = crm_lines(done.stdout)
        assert {name: len(found) for name, found in lines.items()} == dict.fromkeys(CRMS, 1)
        for name in CRMS:
            assert lines[name][0].startswith(f"erased {ids[name]}"), done.stdout
        assert "30 days" in lines["pipedrive"][0]
        assert "Recycle Bin" in lines["salesforce"][0]
        assert rig.holding(who) == nowhere()
        before = rig.requests()
        again = rig.env.syncd("add-contact", who.public_id)
        assert again.returncode == 5, again.stdout + again.stderr
        assert f"syncd forget --undo {who.public_id}" in again.stdout + again.stderr
        assert rig.requests() == before

    def test_forget_undo_then_add_contact_creates_again(self, rig: Rig) -> None:
        """After `forget --undo` the person is relayed again: `created` in every CRM."""
        who = rig.person("undone")
        erased = rig.add(who)
        assert rig.env.syncd("forget", "--yes", who.public_id).returncode == 0
        assert rig.env.syncd("add-contact", who.public_id).returncode == 5
        undone = rig.env.syncd("forget", "--undo", who.public_id)
        assert undone.returncode == 0, undone.stdout + undone.stderr
        assert "off the do-not-sync list" in undone.stdout
        created = rig.add(who)
        assert rig.holding(who) == {name: [created[name]] for name in CRMS}
        assert created != erased

    def test_forget_of_someone_in_no_crm_is_absent_everywhere(self, rig: Rig) -> None:
        """A person no CRM holds: every line `absent`, exit 0, and no delete is sent."""
        who = rig.person("nowhere")
        before = rig.requests()
        done = rig.env.syncd("forget", "--yes", who.public_id)
        rig.listed.append(who)
        assert done.returncode == 0, done.stdout + done.stderr
        assert crm_lines(done.stdout) == {name: ["absent"] for name in CRMS}
        after = rig.requests()
        for name in CRMS:
            assert [r for r in after[name][len(before[name]) :] if is_any_delete(r)] == []

    def test_forget_waits_out_an_outage_and_deletes_exactly_once(self, rig: Rig) -> None:
        """Every CRM refuses connections when the forget starts: the daemon retries, then
        erases; each CRM received exactly one delete of the person's record."""
        who = rig.person("outage")
        ids = rig.add(who)
        retries = {name: rig.retries(name) for name in CRMS}
        before = {name: len(rig.boxes[name].requests()) for name in CRMS}
        for name in CRMS:
            outage(rig.boxes[name], OUTAGE_SECONDS)
        done = rig.env.syncd("forget", "--yes", who.public_id)
        rig.listed.append(who)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = crm_lines(done.stdout)
        for name in CRMS:
            assert len(lines[name]) == 1, done.stdout
            assert lines[name][0].startswith(f"erased {ids[name]}"), done.stdout
            assert rig.retries(name) > retries[name], f"{name} was never down for the forget"
            sent = rig.boxes[name].requests()[before[name] :]
            deletes = [r for r in sent if is_delete_of(name, r, ids[name])]
            assert len(deletes) == 1, (name, deletes)
        assert rig.holding(who) == nowhere()

    def test_without_a_terminal_and_without_yes_exits_2_and_erases_nothing(self, rig: Rig) -> None:
        """No terminal to confirm on and no --yes: exit 2, one sentence, nothing erased,
        nobody listed, no request anywhere."""
        who = rig.person("unconfirmed")
        ids = rig.add(who)
        records = rig.snapshots()
        requests = rig.requests()
        listed = rig.status()["do_not_sync"]
        done = rig.env.syncd("forget", who.public_id)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1, done.stderr
        assert "--yes" in done.stderr
        assert "Traceback" not in done.stderr
        assert rig.snapshots() == records
        assert rig.requests() == requests
        assert rig.status()["do_not_sync"] == listed
        assert rig.holding(who) == {name: [ids[name]] for name in CRMS}


class TestBlock:
    """`syncd block` restricts without erasing."""

    def test_block_then_add_contact_is_refused_and_touches_no_record(self, rig: Rig) -> None:
        """Blocked: add-contact exits 5; every CRM's records are exactly what they were, and
        neither a CRM nor the source received a request."""
        who = rig.person("blocked")
        ids = rig.add(who)
        records = json.dumps(rig.snapshots(), sort_keys=True)
        requests = rig.requests()
        blocked = rig.env.syncd("block", who.public_id)
        rig.listed.append(who)
        assert blocked.returncode == 0, blocked.stdout + blocked.stderr
        assert rig.requests() == requests  # a block asks no one
        done = rig.env.syncd("add-contact", who.public_id)
        assert done.returncode == 5, done.stdout + done.stderr
        assert json.dumps(rig.snapshots(), sort_keys=True) == records
        assert rig.requests() == requests
        assert rig.holding(who) == {name: [ids[name]] for name in CRMS}


class TestExport:
    """`syncd export --json` shows what each CRM holds, as the CRM holds it."""

    def test_export_equals_what_every_sandbox_holds(self, rig: Rig) -> None:
        """Per CRM: the record id, the mapped fields as the sandbox stores them, the
        number of activities syncd wrote, and `synced_at` as the stored syncd_synced_at."""
        who = rig.person("exported")
        ids = rig.add(who)
        done = rig.env.syncd("export", "--json", who.public_id)
        assert done.returncode == 0, done.stdout + done.stderr
        crms = json.loads(done.stdout)["crms"]
        held = stored(rig.snapshots(), ids)
        assert sorted(crms) == sorted(CRMS)
        for name in CRMS:
            answer = crms[name]
            assert answer["found"] is True, (name, answer)
            assert answer["id"] == ids[name]
            assert answer["fields"] == held[name]["fields"], name
            assert answer["synced_at"] == held[name]["synced_at"], name
            assert answer["activities"]["count"] == held[name]["activities"], name
        assert held["hubspot"]["fields"]["email"] == who.email  # the store holds our person

    def test_export_of_someone_in_no_crm_is_not_found_everywhere(self, rig: Rig) -> None:
        """A person no CRM holds: `found` is false in every CRM, exit 0."""
        who = rig.person("unexported")
        done = rig.env.syncd("export", "--json", who.public_id)
        assert done.returncode == 0, done.stdout + done.stderr
        crms = json.loads(done.stdout)["crms"]
        assert {name: crms[name]["found"] for name in crms} == dict.fromkeys(CRMS, False)


def stored(snapshots: dict[str, Any], ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What each sandbox's own store holds for the record ``ids[CRM]``, in syncd's field
    names: {CRM: {"fields", "synced_at", "activities"}}, read field by field from the
    vendor's shape (never through syncd's mapping)."""
    out: dict[str, dict[str, Any]] = {}
    hub = next(c for c in snapshots["hubspot"]["contacts"] if c["id"] == ids["hubspot"])
    props = hub["properties"]
    names = {
        "firstname": "first_name",
        "lastname": "last_name",
        "email": "email",
        "phone": "phone",
        "company": "company",
        "jobtitle": "title",
        "syncd_linkedin_url": "linkedin_url",
        "city": "location",
    }
    out["hubspot"] = {
        "fields": {names[k]: v for k, v in props.items() if k in names and v},
        "synced_at": props["syncd_synced_at"],
        "activities": 0,  # syncd writes no activities in HubSpot yet
    }
    pipe = snapshots["pipedrive"]
    p = next(x for x in pipe["persons"] if str(x["id"]) == ids["pipedrive"])
    codes = {f["field_name"]: f["field_code"] for f in pipe["person_fields"]}
    org = next(o for o in pipe["organizations"] if o["id"] == p["org_id"])
    primary = [e["value"] for e in p["emails"] if e["primary"]]
    phones = [e["value"] for e in p["phones"] if e["primary"]]
    fields = {
        "first_name": p["first_name"],
        "last_name": p["last_name"],
        "email": primary[0] if primary else "",
        "phone": phones[0] if phones else "",
        "company": org["name"],
        "title": p["job_title"],
        "linkedin_url": p["custom_fields"].get(codes["LinkedIn profile URL"]),
        "location": (p["postal_address"] or {}).get("value"),
    }
    out["pipedrive"] = {
        "fields": {k: v for k, v in fields.items() if v},
        "synced_at": p["custom_fields"][codes["syncd synced at"]],
        "activities": len(
            [n for n in pipe["notes"] if n["person_id"] == p["id"] and n["active_flag"]]
        ),
    }
    sf = snapshots["salesforce"]
    row = next(r for r in sf["Contact"] if r["Id"] == ids["salesforce"])
    account = next(a for a in sf["Account"] if a["Id"] == row["AccountId"])
    fields = {
        "first_name": row.get("FirstName"),
        "last_name": row.get("LastName"),
        "email": row.get("Email"),
        "phone": row.get("Phone"),
        "company": account["Name"],
        "title": row.get("Title"),
        "linkedin_url": row.get("LinkedIn_Profile_URL__c"),
        "location": row.get("MailingCity"),
    }
    out["salesforce"] = {
        "fields": {k: v for k, v in fields.items() if v},
        "synced_at": row["syncd_synced_at__c"],
        "activities": len([t for t in sf["Task"] if t["WhoId"] == row["Id"]]),
    }
    return out


class TestCancel:
    """`syncd cancel` removes a queued selection before any CRM sees it."""

    def test_cancel_of_a_paused_selection_leaves_no_trace(self, rig: Rig) -> None:
        """Paused, queued, cancelled: exit 0, the journal holds no segment; after resuming
        and relaying someone else, neither the source nor a CRM heard of the person."""
        who = rig.person("cancelled")
        other = rig.person("relayed")
        requests = rig.requests()
        assert rig.env.syncd("pause").returncode == 0
        try:
            queued = rig.env.syncd("add-contact", "--no-wait", who.public_id)
            assert queued.returncode == 0, queued.stdout + queued.stderr
            (selection_id,) = queued.stdout.split()
            assert rig.journal_segments(), "an accepted selection must be journaled"
            done = rig.env.syncd("cancel", selection_id)
            assert done.returncode == 0, done.stdout + done.stderr
            assert rig.journal_segments() == []
        finally:
            assert rig.env.syncd("resume").returncode == 0
        relayed = rig.env.syncd("add-contact", "--json", other.public_id)
        assert relayed.returncode == 0, relayed.stdout + relayed.stderr
        assert rig.status()["queue"] == 0
        assert rig.holding(who) == nowhere()
        sent = rig.requests()
        mentions = (who.public_id, who.member_id, who.email, who.member_id.replace(":", "%3A"))
        for name, log in sent.items():
            new = log[len(requests[name]) :]
            assert new, f"{name} got nothing: the other selection was not relayed"
            about = [r for r in new if any(m in r["path"] + "?" + r["query"] for m in mentions)]
            assert about == [], name

    def test_cancel_of_a_finished_selection_exits_2_naming_the_crms(self, rig: Rig) -> None:
        """Too late: exit 2 and one sentence naming every CRM that received the person."""
        who = rig.person("finished")
        relayed = rig.env.syncd("add-contact", "--json", who.public_id)
        assert relayed.returncode == 0, relayed.stdout + relayed.stderr
        selection_id = json.loads(relayed.stdout)["id"]
        done = rig.env.syncd("cancel", selection_id)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        for name in CRMS:
            assert name in done.stderr


class TestDoNotSyncFile:
    """The do-not-sync list on disk names no one."""

    def test_file_holds_no_canary_in_any_encoding_and_is_0600(self, rig: Rig) -> None:
        """After forgets and blocks (this test adds one of each, after the others'), the
        file holds no member id, publicId or name in any encoding, is 0600, and no file
        of the daemon's holds one either."""
        forgotten = rig.person("lastforgot")
        rig.add(forgotten)
        assert rig.env.syncd("forget", "--yes", forgotten.public_id).returncode == 0
        blocked = rig.person("lastblock")
        assert rig.env.syncd("block", blocked.public_id).returncode == 0
        rig.listed += [forgotten, blocked]
        path = rig.state_dir() / "do-not-sync"
        data = path.read_bytes()
        found = [
            (kind, form)
            for who in rig.listed
            for value, kind in who.needles().items()
            for form in encodings(value)
            if form.encode() in data
        ]
        assert found == []
        assert len(data.splitlines()) == rig.status()["do_not_sync"] >= 2
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        needles = {v: k for who in rig.listed for v, k in who.needles().items()}
        assert scan(rig.env.dirs(), needles).hits == ()
