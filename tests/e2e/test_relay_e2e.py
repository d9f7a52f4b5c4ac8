"""The relay end to end: real CLI processes, a real daemon, loopback sandboxes, real keyring."""

from __future__ import annotations

import os
import stat
import subprocess
from typing import Any

import pytest

from rig.residue import scan
from tests.e2e.conftest import HUBSPOT_TOKEN, SOURCE_TOKEN, Env, Sandboxes

pytestmark = pytest.mark.e2e

CANARY = {
    "first_name": "Quillonette",
    "last_name": "Zbrzezinska-Canary",
    "email": "quillonette.canary@zz-canary-corp.example",
    "phone": "+1 555 0199 4242",
    "company": "Zzyzx Canary Holdings",
    "title": "Chief Canary Officer",
    "public_id": "quillonette-canary-9q7",
    "member_id": "urn:li:member:987654321",
}


def person(
    public_id: str, *, phone: str | None = None, email: str | None = None, **over: str
) -> dict[str, Any]:
    """A person in the source API's own shape, for POST /_sandbox/people."""
    profile = {
        "id": over.get("member_id", f"urn:li:member:{abs(hash(public_id)) % 10**9}"),
        "publicId": public_id,
        "firstName": over.get("first_name", "Test"),
        "lastName": over.get("last_name", "Person"),
        "headline": None,
        "location": "Lyon, France",
        "industry": None,
        "profileUrl": f"https://www.linkedin.example/in/{public_id}",
        "positions": [
            {
                "title": over.get("title", "Buyer"),
                "companyName": over.get("company", "Example Industries"),
                "companyDomain": None,
                "current": True,
                "startedOn": None,
            }
        ],
    }
    contact: dict[str, Any] = {}
    if email:
        contact["emailAddress"] = email
    if phone:
        contact["phoneNumbers"] = [{"number": phone, "type": "WORK"}]
    return {"profile": profile, "contactInfo": contact, "messages": []}


def seed(sandboxes: Sandboxes, *people: dict[str, Any]) -> None:
    sandboxes.source.post("/people", {"people": list(people)})


def hubspot_contacts(sandboxes: Sandboxes) -> list[dict[str, Any]]:
    contacts: list[dict[str, Any]] = sandboxes.hubspot.records()["contacts"]
    return contacts


class TestAddContact:
    """`syncd add-contact` through a real daemon into the HubSpot sandbox."""

    def test_create_then_unchanged_then_updated_one_record(
        self, env: Env, sandboxes: Sandboxes
    ) -> None:
        """A person is created once; a re-add is unchanged, a new value an update, never a copy."""
        seed(sandboxes, person("e2e-alice-1", email="alice@e2e.example"))
        env.start_daemon()
        url = "https://www.linkedin.com/in/e2e-alice-1/?trk=profile#top"
        first = env.syncd("add-contact", url)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("hubspot: created ")
        record_id = first.stdout.split()[-1]
        again = env.syncd("add-contact", "e2e-alice-1")
        assert (again.returncode, again.stdout.strip()) == (0, f"hubspot: unchanged {record_id}")
        seed(sandboxes, person("e2e-alice-1", email="alice@e2e.example", phone="+33 4 00 00 00"))
        changed = env.syncd("add-contact", "e2e-alice-1")
        assert (changed.returncode, changed.stdout.strip()) == (0, f"hubspot: updated {record_id}")
        assert len(hubspot_contacts(sandboxes)) == 1

    @pytest.mark.parametrize(
        "ref",
        [
            pytest.param("https://www.linkedin.com/company/acme/", id="company-page"),
            pytest.param("https://www.linkedin.com/in/../etc/passwd", id="dot-dot"),
            pytest.param("has space", id="space"),
            pytest.param("zoë", id="non-ascii"),
            pytest.param("x", id="one-char"),
            pytest.param("a" * 101, id="too-long"),
        ],
    )
    def test_malformed_ref_exits_2_and_sends_nothing(
        self, env: Env, sandboxes: Sandboxes, ref: str
    ) -> None:
        """A malformed REF is a usage error: exit 2, one sentence, no request anywhere."""
        env.start_daemon()
        done = env.syncd("add-contact", ref)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr
        assert sandboxes.source.requests() == []
        assert sandboxes.hubspot.requests() == []

    def test_daemon_down_exits_3(self, env: Env) -> None:
        """With no daemon running, add-contact says how to start one and exits 3."""
        done = env.syncd("add-contact", "e2e-nobody-1")
        assert done.returncode == 3
        assert "syncd run" in done.stderr

    def test_missing_token_exits_4(self, env: Env, sandboxes: Sandboxes) -> None:
        """A CRM credential missing from the keyring fails that CRM with exit 4."""
        seed(sandboxes, person("e2e-bob-1"))
        assert env.syncd("auth", "remove", "hubspot").returncode == 0
        env.start_daemon()
        done = env.syncd("add-contact", "e2e-bob-1")
        assert done.returncode == 4
        assert "syncd auth set hubspot" in done.stdout
        assert hubspot_contacts(sandboxes) == []

    def test_rejected_token_exits_4(self, env: Env, sandboxes: Sandboxes) -> None:
        """A CRM credential the service rejects fails with exit 4 and shows in status."""
        seed(sandboxes, person("e2e-carol-1"))
        sandboxes.hubspot.set_tokens(["some-other-token"])
        env.start_daemon()
        done = env.syncd("add-contact", "e2e-carol-1")
        assert done.returncode == 4
        assert done.stdout.startswith("hubspot: failed: ")
        status = env.syncd("status", "--json")
        assert '"health": "auth"' in status.stdout

    def test_privacy_refusal_exits_5_and_sends_nothing_to_crm(
        self, env: Env, sandboxes: Sandboxes
    ) -> None:
        """A person whose email domain is blocked is refused (exit 5); HubSpot sees nothing."""
        env.config.write_text(
            env.config.read_text() + '\n[privacy]\nblocked_email_domains = ["private.example"]\n'
        )
        seed(sandboxes, person("e2e-dave-1", email="dave@private.example"))
        env.start_daemon()
        done = env.syncd("add-contact", "e2e-dave-1")
        assert done.returncode == 5
        assert sandboxes.hubspot.requests() == []

    def test_check_of_a_refused_person_exits_5_and_asks_no_crm(
        self, env: Env, sandboxes: Sandboxes
    ) -> None:
        """`check` applies the privacy rules too: a blocked person is not looked up (P3)."""
        env.config.write_text(
            env.config.read_text() + '\n[privacy]\nblocked_email_domains = ["private.example"]\n'
        )
        seed(sandboxes, person("e2e-erin-1", email="erin@private.example"))
        env.start_daemon()
        done = env.syncd("check", "e2e-erin-1")
        assert done.returncode == 5, done.stdout + done.stderr
        assert done.stdout.startswith("hubspot: refused: ")
        assert sandboxes.hubspot.requests() == []


class TestDaemon:
    """The daemon's socket, signals and promises."""

    def test_socket_is_owner_only(self, env: Env) -> None:
        """The control socket is 0600 inside a 0700 directory."""
        env.start_daemon()
        assert stat.S_IMODE(os.stat(env.socket).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(env.socket.parent).st_mode) == 0o700

    def test_sigterm_exits_0_and_removes_socket(self, env: Env) -> None:
        """SIGTERM stops the daemon cleanly: exit 0 and no socket left."""
        proc = env.start_daemon()
        assert env.stop_daemon(proc) == 0
        assert not env.socket.exists()

    def test_second_daemon_says_already_running(self, env: Env) -> None:
        """A second `syncd run` on the same socket refuses to start and says why."""
        env.start_daemon()
        second = env.syncd("run", "--config", str(env.config))
        assert second.returncode != 0
        assert "already running" in second.stderr

    def test_status_json_has_the_documented_keys(self, env: Env) -> None:
        """`status --json` carries state, version, uptime, queue, crms and recent."""
        env.start_daemon()
        done = env.syncd("status", "--json")
        assert done.returncode == 0
        for key in ('"state"', '"version"', '"uptime_s"', '"queue"', '"crms"', '"recent"'):
            assert key in done.stdout

    def test_only_get_reaches_the_source(self, env: Env, sandboxes: Sandboxes) -> None:
        """P4: after relaying, the source saw GET requests only and recorded no violation."""
        seed(sandboxes, person("e2e-erin-1", email="erin@e2e.example"))
        env.start_daemon()
        assert env.syncd("add-contact", "--with-messages", "e2e-erin-1").returncode == 0
        methods = {r["method"] for r in sandboxes.source.requests()}
        assert methods == {"GET"}
        assert sandboxes.source.violations() == []

    def test_tokens_live_in_the_real_keyring(self, env: Env) -> None:
        """`auth set` stores credentials in the OS keyring, where libsecret reads them."""
        found = subprocess.run(
            ["secret-tool", "lookup", "service", "syncd", "username", "hubspot"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert found.stdout.strip() == HUBSPOT_TOKEN


class TestResidue:
    """P1 and P2: nothing about people and no credential is left on disk or printed."""

    def test_canaries_leave_no_residue(self, env: Env, sandboxes: Sandboxes) -> None:
        """After relaying a canary person and stopping the daemon, no file or output holds one."""
        seed(
            sandboxes,
            person(
                CANARY["public_id"],
                email=CANARY["email"],
                phone=CANARY["phone"],
                **{k: CANARY[k] for k in ("first_name", "last_name", "company", "title")},
                member_id=CANARY["member_id"],
            ),
        )
        proc = env.start_daemon()
        added = env.syncd("add-contact", "--with-messages", CANARY["public_id"])
        assert added.returncode == 0, added.stdout + added.stderr
        assert env.syncd("status").returncode == 0
        assert env.syncd("status", "--json").returncode == 0
        assert env.syncd("auth", "status").returncode == 0
        assert env.syncd("config", "check").returncode == 0
        assert env.stop_daemon(proc) == 0
        contacts = hubspot_contacts(sandboxes)
        assert [c["properties"]["lastname"] for c in contacts] == [CANARY["last_name"]]
        needles = {v: k for k, v in CANARY.items()}
        needles |= {SOURCE_TOKEN: "source token", HUBSPOT_TOKEN: "hubspot token"}
        report = scan(env.dirs(), needles)
        assert report.files > 0  # the log file at least
        assert report.hits == ()
        outputs = "\n".join(env.outputs)
        leaked = [kind for text, kind in needles.items() if text in outputs]
        assert leaked == []
