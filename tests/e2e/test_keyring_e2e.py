"""The real keyring locked under a running daemon: the CRM shows `auth` naming the credential,
the daemon stays up, and once the keyring is back a new selection is delivered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import secretstorage

from tests.e2e.conftest import Env, Sandboxes

pytestmark = pytest.mark.e2e

#: The throwaway keyring's password, as scripts/checks.sh starts it.
PASSWORD = "throwaway-test-password"


def lock_keyring() -> None:
    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        collection.lock()
        assert collection.is_locked()
    finally:
        connection.close()


def restart_keyring() -> None:
    """A new gnome-keyring-daemon replaces ours on this D-Bus session, unlocked again (as a
    user would by unlocking it, or by starting the service that went away)."""
    done = subprocess.run(
        ["gnome-keyring-daemon", "--replace", "--unlock", "--components=secrets"],
        input=PASSWORD,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def lockable_keyring() -> Iterator[None]:
    """Only inside the throwaway keyring of scripts/checks.sh; it is unlocked again after."""
    throwaway = Path(os.environ.get("HOME", "/")).is_relative_to(tempfile.gettempdir())
    if shutil.which("gnome-keyring-daemon") is None or not throwaway:
        pytest.skip(
            "locks and restarts the keyring: only inside the throwaway HOME and keyring of "
            "scripts/checks.sh, never a user's own"
        )
    yield
    restart_keyring()


class TestLockedKeyring:
    """A keyring locked mid-run never stops the daemon."""

    def test_locked_then_back(self, env: Env, sandboxes: Sandboxes, lockable_keyring: None) -> None:
        """Locked: the selection fails with the credential's name and status says auth;
        unlocked: the next selection is delivered by the same daemon."""
        people = [str(p["publicId"]) for p in sandboxes.source.records()["people"]]
        daemon = env.start_daemon()
        lock_keyring()
        added = env.syncd("add-contact", people[0])
        assert added.returncode == 4, added.stdout + added.stderr
        assert "keyring is locked or not running" in added.stdout + added.stderr
        status = json.loads(env.syncd("status", "--json").stdout)
        assert status["state"] == "attention"
        unhealthy = {
            name: health
            for name, health in [("source", status["source"]), *status["crms"].items()]
            if health["health"] == "auth"
        }
        assert unhealthy, status
        for name, health in unhealthy.items():
            assert f"the {name} credential" in health["last_error"]
        assert daemon.poll() is None

        restart_keyring()
        added = env.syncd("add-contact", people[1])
        assert added.returncode == 0, added.stdout + added.stderr
        assert "hubspot: created" in added.stdout
        assert len(sandboxes.hubspot.records()["contacts"]) == 1
        assert daemon.poll() is None
