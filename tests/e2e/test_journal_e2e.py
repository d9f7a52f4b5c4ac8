"""The journal with real processes: `kill -9` of the daemon with selections in flight, a
SIGTERM drain, and a corrupted journal file — every accepted person arrives exactly once."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from sync.control.client import ControlClient
from sync.errors import UsageError
from tests.e2e.conftest import Env, Sandboxes

pytestmark = pytest.mark.e2e


def public_ids(sandboxes: Sandboxes, count: int) -> list[str]:
    people = sandboxes.source.records()["people"]
    return [str(p["publicId"]) for p in people][:count]


def journal_dir(env: Env) -> Path:
    return Path(env.environ["XDG_STATE_HOME"]) / "syncd" / "journal"


def segments(env: Env) -> list[Path]:
    return sorted(journal_dir(env).glob("*.sj"))


def hubspot_count(sandboxes: Sandboxes) -> int:
    return len(sandboxes.hubspot.records()["contacts"])


def submit(env: Env, refs: list[str]) -> list[str]:
    done = env.syncd("add-contact", "--no-wait", *refs)
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) == len(refs)
    return ids


def wait_all(env: Env, ids: list[str]) -> list[dict[str, Any]]:
    """The final state of every selection the running daemon replayed (long-polls; replayed
    ids keep theirs). One it does not know was finished, and journaled out, before."""
    client = ControlClient(env.socket)
    finished = []
    for selection_id in ids:
        try:
            answer = client.selection(selection_id, wait=30)
        except UsageError:  # 404: delivered by the previous daemon
            continue
        while answer["state"] != "done":
            answer = client.selection(selection_id, wait=30)
        finished.append(answer)
    return finished


@pytest.mark.slow
def test_kill_9_with_selections_in_flight_loses_nothing(env: Env, sandboxes: Sandboxes) -> None:
    """Accepted, then the daemon is killed mid-write: the restart delivers each person once."""
    refs = public_ids(sandboxes, 6)
    sandboxes.hubspot.set_latency(1500)  # every CRM request is slow: writes are in flight
    daemon = env.start_daemon()
    ids = submit(env, refs)
    assert segments(env), "accepted selections must be on disk before the 202"
    for path in segments(env):
        assert not any(ref.encode() in path.read_bytes() for ref in refs)
    daemon.send_signal(signal.SIGKILL)
    env.outputs += daemon.communicate(timeout=10)
    assert daemon.returncode == -signal.SIGKILL
    assert hubspot_count(sandboxes) < 6  # the crash really cut the work short
    sandboxes.hubspot.set_latency(0)
    env.start_daemon()
    finished = wait_all(env, ids)
    outcomes = [t["outcome"] for f in finished for t in f["targets"].values()]
    assert set(outcomes) <= {"created", "updated", "unchanged"}
    assert hubspot_count(sandboxes) == 6
    assert segments(env) == []


@pytest.mark.slow
def test_sigterm_drains_in_flight_and_keeps_the_rest(env: Env, sandboxes: Sandboxes) -> None:
    """SIGTERM: no new work, in-flight work finishes, exit 0; the rest waits in the journal."""
    refs = public_ids(sandboxes, 6)
    sandboxes.hubspot.set_latency(400)
    daemon = env.start_daemon()
    ids = submit(env, refs)
    assert env.stop_daemon(daemon) == 0
    assert not env.socket.exists()
    sandboxes.hubspot.set_latency(0)
    env.start_daemon()
    wait_all(env, ids)
    assert hubspot_count(sandboxes) == 6
    assert segments(env) == []


def test_a_corrupted_journal_file_is_reported_not_fatal(env: Env, sandboxes: Sandboxes) -> None:
    """A damaged file is set aside and shown in status; the daemon serves on."""
    journal_dir(env).mkdir(parents=True, mode=0o700, exist_ok=True)
    (journal_dir(env) / "seg-damaged.sj").write_bytes(b"gAAAAA this is not a journal segment")
    env.start_daemon()
    status = env.syncd("status", "--json")
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["state"] == "attention"
    assert body["journal"]["damaged_files"] == ["seg-damaged.sj"]
    assert (journal_dir(env) / "damaged" / "seg-damaged.sj").exists()
    added = env.syncd("add-contact", public_ids(sandboxes, 1)[0])
    assert added.returncode == 0, added.stdout + added.stderr
    assert hubspot_count(sandboxes) == 1
