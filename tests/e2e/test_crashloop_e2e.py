"""No crash loop, with real processes: a selection that is in flight each time the daemon is
killed (`kill -9`) is set aside after the third time, and the daemon serves the rest."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Env, Sandboxes

pytestmark = pytest.mark.e2e

#: Long enough that a CRM write is always in flight when the test kills the daemon.
SLOW_MS = 20_000


def journal_dir(env: Env) -> Path:
    return Path(env.environ["XDG_STATE_HOME"]) / "syncd" / "journal"


def hubspot_count(sandboxes: Sandboxes) -> int:
    return len(sandboxes.hubspot.records()["contacts"])


def wait_in_flight(env: Env, daemon: subprocess.Popen[str]) -> None:
    """Return once a worker of ``daemon`` has started a selection (its in-flight log has a
    line). Another process's file: there is nothing to await, so this polls."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert daemon.poll() is None, "the daemon died on its own"
        if any(p.stat().st_size for p in journal_dir(env).glob("*.inflight")):
            return
        time.sleep(0.05)
    pytest.fail("no selection was started within 30 s")


def kill_9(env: Env, daemon: subprocess.Popen[str]) -> None:
    daemon.send_signal(signal.SIGKILL)
    env.outputs += daemon.communicate(timeout=10)
    assert daemon.returncode == -signal.SIGKILL


def status(env: Env) -> dict[str, object]:
    done = env.syncd("status", "--json")
    assert done.returncode == 0, done.stderr
    body: dict[str, object] = json.loads(done.stdout)
    return body


class TestCrashLoop:
    """A selection that keeps dying with the daemon is set aside; the queue goes on."""

    def test_set_aside_after_three_interruptions(self, env: Env, sandboxes: Sandboxes) -> None:
        """Three kills with it in flight, then the fourth start sets it aside, says so in
        status, and delivers new selections; the set-aside file stays encrypted."""
        people = [str(p["publicId"]) for p in sandboxes.source.records()["people"]]
        first, doomed, later = people[:3]
        daemon = env.start_daemon()
        added = env.syncd("add-contact", first)
        assert added.returncode == 0, added.stdout + added.stderr
        assert hubspot_count(sandboxes) == 1
        sandboxes.hubspot.set_latency(SLOW_MS)
        submitted = env.syncd("add-contact", "--no-wait", doomed)
        assert submitted.returncode == 0, submitted.stderr
        (selection_id,) = submitted.stdout.split()
        for _ in range(3):  # the run that accepted it, then two restarts that replay it
            wait_in_flight(env, daemon)
            kill_9(env, daemon)
            daemon = env.start_daemon()
        sandboxes.hubspot.set_latency(0)

        body = status(env)
        assert body["state"] == "attention"
        journal = body["journal"]
        assert isinstance(journal, dict)
        assert journal["set_aside"] == 1
        assert f"were set aside, encrypted, in {journal_dir(env)}/damaged" in journal["note"]
        assert "add those people again" in journal["note"]
        assert body["queue"] == 0
        human = env.syncd("status")
        assert "attention" in human.stdout
        assert "kept failing to finish" in human.stdout
        (aside,) = (journal_dir(env) / "damaged").glob("aside-*.sj")
        assert doomed.encode() not in aside.read_bytes()
        assert selection_id.encode() not in aside.read_bytes()
        assert list(journal_dir(env).glob("*.sj")) == []

        added = env.syncd("add-contact", later)
        assert added.returncode == 0, added.stdout + added.stderr
        assert "hubspot: created" in added.stdout
        assert hubspot_count(sandboxes) == 2  # first and later: the doomed one never landed
        assert daemon.poll() is None
        log = (env.root / "log" / "syncd.log").read_text()
        assert "journal.set_aside" in log
        assert selection_id in log
        assert doomed not in log
