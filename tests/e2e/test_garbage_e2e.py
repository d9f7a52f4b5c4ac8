"""Garbage answers through the real daemon: a sandbox answering ``200`` with corrupt gzip,
cut JSON, a captive portal's page or a body past any sane size never stops `syncd run`. The
selection is retried and delivered once, or ends ``failed`` with a sentence; a restart does
not replay it; no body text reaches the CLI's output or the log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.hubspot.sandbox.app import HubSpotSandbox
from rig.garbage import GARBAGE_CANARY
from tests.e2e.conftest import HUBSPOT_TOKEN, Env, Sandboxes

pytestmark = pytest.mark.e2e

WRITE_METHOD, WRITE_PATH = HubSpotSandbox.WRITE_REQUEST
#: Just past the 16 MiB the HTTP edge reads: big enough to be refused, quick to send.
HUGE = 17 * 1024 * 1024


def person(public_id: str) -> dict[str, Any]:
    """A person in the source API's shape, for ``POST /_sandbox/people``."""
    return {
        "profile": {
            "id": f"urn:li:member:{sum(map(ord, public_id)) * 7919 % 10**9}",
            "publicId": public_id,
            "firstName": "Garbage",
            "lastName": "Tester",
            "headline": None,
            "location": "Lyon, France",
            "industry": None,
            "profileUrl": f"https://www.linkedin.example/in/{public_id}",
            "positions": [],
        },
        "contactInfo": {"emailAddress": f"{public_id}@garbage-e2e.example"},
        "messages": [],
    }


def seed(sandboxes: Sandboxes, *public_ids: str) -> None:
    sandboxes.source.post("/people", {"people": [person(p) for p in public_ids]})


def hubspot_emails(sandboxes: Sandboxes) -> list[str]:
    """The email of every contact the HubSpot sandbox holds, one entry per record."""
    contacts: list[dict[str, Any]] = sandboxes.hubspot.records()["contacts"]
    return [str(c["properties"].get("email")) for c in contacts]


def profile_reads(sandboxes: Sandboxes, public_id: str) -> int:
    """How many times the source was asked for this person's profile."""
    return sum(r["path"].endswith(f"/profiles/{public_id}") for r in sandboxes.source.requests())


def person_reads(sandboxes: Sandboxes, public_id: str) -> int:
    """How many times the source was asked for this person's profile or contact info."""
    paths = (f"/profiles/{public_id}", f"/profiles/{public_id}/contact-info")
    return sum(r["path"].endswith(paths) for r in sandboxes.source.requests())


def alive(env: Env) -> dict[str, Any]:
    """`syncd status --json` answers: the daemon is still serving."""
    done = env.syncd("status", "--json")
    assert done.returncode == 0, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def assert_no_body_text(env: Env) -> None:
    """No garbage body text in any CLI output or any file syncd wrote."""
    assert not any(GARBAGE_CANARY in out for out in env.outputs)
    for path in Path(env.root).rglob("*"):
        if path.is_file():
            assert GARBAGE_CANARY.encode() not in path.read_bytes(), path


def assert_restart_does_not_replay(env: Env, sandboxes: Sandboxes, public_id: str) -> None:
    """Stop the daemon, start another, relay a fresh person through it: the earlier
    selection is not read again (it left the journal when it ended)."""
    assert env.stop_daemon(env.daemons[-1]) == 0
    reads = profile_reads(sandboxes, public_id)
    env.start_daemon()
    seed(sandboxes, f"{public_id}-next")
    # The journal is replayed before new work; once this one is done, a replay would show.
    after = env.syncd("add-contact", f"{public_id}-next")
    assert after.returncode == 0, after.stdout + after.stderr
    assert profile_reads(sandboxes, public_id) == reads
    assert alive(env)["queue"] == 0


class TestGarbageFromTheCRM:
    """HubSpot answers garbage: retried and delivered once, or failed with a sentence."""

    @pytest.mark.parametrize(
        "kind",
        [
            pytest.param("truncated_json", id="truncated-json"),
            pytest.param("html", id="captive-portal-html"),
            pytest.param("huge", id="huge"),
        ],
    )
    def test_an_answer_syncd_cannot_use_fails_the_selection_not_the_daemon(
        self, env: Env, sandboxes: Sandboxes, kind: str
    ) -> None:
        """The selection ends failed with a sentence naming the status; the daemon serves on."""
        ref = f"garbage-{kind.replace('_', '-')}-1"
        seed(sandboxes, ref)
        env.start_daemon()
        sandboxes.hubspot.garbage_next(kind, size=HUGE)
        done = env.syncd("add-contact", ref)
        assert done.returncode == 1, done.stdout + done.stderr
        line = done.stdout.strip().splitlines()[-1]
        assert line.startswith("hubspot: failed:"), line
        assert "HTTP 200" in line
        assert "Traceback" not in done.stdout + done.stderr
        assert alive(env)["queue"] == 0
        assert f"{ref}@garbage-e2e.example" not in hubspot_emails(sandboxes)
        assert_no_body_text(env)

    def test_a_restart_after_a_failed_selection_does_not_replay_it(
        self, env: Env, sandboxes: Sandboxes
    ) -> None:
        """A selection failed by garbage left the journal: the next daemon does not retry it."""
        ref = "garbage-restart-1"
        seed(sandboxes, ref)
        env.start_daemon()
        sandboxes.hubspot.garbage_next("html", count=1000)  # as long as this daemon lives
        done = env.syncd("add-contact", ref)
        assert done.returncode == 1, done.stdout + done.stderr
        sandboxes.hubspot.reset()  # the CRM is healthy again
        sandboxes.hubspot.set_tokens([HUBSPOT_TOKEN])
        assert_restart_does_not_replay(env, sandboxes, ref)
        assert f"{ref}@garbage-e2e.example" not in hubspot_emails(sandboxes)
        assert_no_body_text(env)

    @pytest.mark.parametrize(
        ("count", "where"),
        [
            pytest.param(2, {}, id="twice-on-any-request"),
            pytest.param(
                1000,
                {"path_prefix": WRITE_PATH, "method": WRITE_METHOD, "applied": True},
                id="on-every-write-after-it-was-made",
            ),
        ],
    )
    def test_corrupt_gzip_is_retried_and_delivered_once(
        self, env: Env, sandboxes: Sandboxes, count: int, where: dict[str, Any]
    ) -> None:
        """Corrupt gzip answers are retried (a write's by finding what it made): one record."""
        ref = "garbage-gzip-" + ("write" if where else "any")
        seed(sandboxes, ref)
        env.start_daemon()
        sandboxes.hubspot.garbage_next("corrupt_gzip", count=count, **where)
        done = env.syncd("add-contact", ref)
        assert done.returncode == 0, done.stdout + done.stderr
        assert hubspot_emails(sandboxes).count(f"{ref}@garbage-e2e.example") == 1
        assert alive(env)["queue"] == 0
        assert_no_body_text(env)


class TestGarbageFromTheSource:
    """The source answers garbage: retried when it may pass, failed when it cannot."""

    def test_corrupt_gzip_from_the_source_is_retried(self, env: Env, sandboxes: Sandboxes) -> None:
        """Two corrupt gzip answers from the source are retried; the person arrives once."""
        ref = "garbage-source-gzip"
        seed(sandboxes, ref)
        env.start_daemon()
        sandboxes.source.garbage_next("corrupt_gzip", count=2, path_prefix="/api/v1/profiles")
        done = env.syncd("add-contact", ref)
        assert done.returncode == 0, done.stdout + done.stderr
        assert hubspot_emails(sandboxes).count(f"{ref}@garbage-e2e.example") == 1
        # Two garbled answers and two good ones (profile and contact info, read side by side).
        assert person_reads(sandboxes, ref) >= 4
        assert_no_body_text(env)

    def test_a_captive_portal_instead_of_the_source_fails_the_selection(
        self, env: Env, sandboxes: Sandboxes
    ) -> None:
        """An HTML page for the profile fails the selection; nothing reaches HubSpot."""
        ref = "garbage-source-html"
        seed(sandboxes, ref)
        env.start_daemon()
        sandboxes.source.garbage_next("html", path_prefix="/api/v1/profiles")
        done = env.syncd("add-contact", ref)
        assert done.returncode == 1, done.stdout + done.stderr
        line = done.stdout.strip().splitlines()[-1]
        assert line.startswith("hubspot: failed:"), line
        assert "source" in line
        assert "HTTP 200" in line
        assert f"{ref}@garbage-e2e.example" not in hubspot_emails(sandboxes)
        assert alive(env)["queue"] == 0
        assert_no_body_text(env)
