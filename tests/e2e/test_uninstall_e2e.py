"""`syncd uninstall [--purge]` through the real CLI, the real keyring and a real daemon."""

from __future__ import annotations

import subprocess
from pathlib import Path

import keyring
import pytest

from sync.donotsync import KEY_NAME as DO_NOT_SYNC_KEY
from sync.journal import KEY_NAME
from tests.e2e.conftest import HUBSPOT_TOKEN, SOURCE_TOKEN, Env, Sandboxes
from tests.e2e.test_relay_e2e import hubspot_contacts, person, seed

pytestmark = pytest.mark.e2e

#: A credential of a CRM instance no longer in the config, stored as `syncd auth set` does.
STRAY = "old-crm"
STRAY_TOKEN = "canary-stray-token-4c6e8a"
KNOWN = ("source", "hubspot", KEY_NAME, DO_NOT_SYNC_KEY, STRAY)


def secret_tool_items() -> str:
    """What libsecret finds under service "syncd" (attributes and secrets), as text."""
    found = subprocess.run(
        ["secret-tool", "search", "--all", "--unlock", "service", "syncd"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return found.stdout + found.stderr


def syncd_dirs(env: Env) -> list[Path]:
    """syncd's own directories in this test's XDG dirs."""
    names = ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME")
    return [Path(env.environ[n]) / "syncd" for n in (*names, "XDG_RUNTIME_DIR")]


def leftovers(env: Env) -> list[Path]:
    """Every file, link or socket under the test's root (its XDG dirs, the log dir)."""
    return sorted(p for p in env.root.rglob("*") if p.is_symlink() or not p.is_dir())


def prepare(env: Env, sandboxes: Sandboxes) -> subprocess.Popen[str]:
    """A daemon that relayed one person, its journal and key, a do-not-sync list and its
    key, a rotated log and a stray credential: what a user who used syncd has."""
    seed(sandboxes, person("e2e-uninstall-1", email="leaver@e2e.example"))
    daemon = env.start_daemon()
    added = env.syncd("add-contact", "e2e-uninstall-1")
    assert added.returncode == 0, added.stdout + added.stderr
    assert len(hubspot_contacts(sandboxes)) == 1
    state = Path(env.environ["XDG_STATE_HOME"]) / "syncd"
    assert (state / "journal").is_dir()
    (state / "do-not-sync").write_text("0f" * 32 + "\n")
    (env.root / "log" / "syncd.log.1").write_text('{"event": "relay.done"}\n')
    keyring.set_password("syncd", DO_NOT_SYNC_KEY, "canary-dns-key-2b9d")
    keyring.set_password("syncd", STRAY, STRAY_TOKEN)
    assert keyring.get_password("syncd", KEY_NAME) is not None  # the daemon made it
    assert STRAY_TOKEN in secret_tool_items()  # what the check after the purge reads
    return daemon


class TestPurge:
    """`syncd uninstall --purge --yes` leaves nothing of syncd's on the machine."""

    def test_no_item_no_file_no_daemon_and_no_request(self, env: Env, sandboxes: Sandboxes) -> None:
        """The keyring holds no "syncd" item, no file is left under syncd's directories or
        the log's, the daemon is gone, and no sandbox received a request meanwhile."""
        daemon = prepare(env, sandboxes)
        assert leftovers(env) != []
        source_before = len(sandboxes.source.requests())
        crm_before = len(sandboxes.hubspot.requests())
        done = env.syncd("uninstall", "--purge", "--yes")
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert daemon.wait(timeout=5) == 0
        assert secret_tool_items().strip() == ""
        for name in KNOWN:
            assert keyring.get_password("syncd", name) is None, name
        assert [d for d in syncd_dirs(env) if d.exists()] == []
        assert leftovers(env) == []
        assert len(sandboxes.source.requests()) == source_before
        assert len(sandboxes.hubspot.requests()) == crm_before
        assert f"stopped the syncd daemon (pid {daemon.pid})" in output
        assert str(env.config) in output
        for secret in (SOURCE_TOKEN, HUBSPOT_TOKEN, STRAY_TOKEN):
            assert secret not in output


class TestUninstallOnly:
    """Without --purge the service goes and everything else stays, named."""

    def test_credentials_and_files_stay_and_are_named(self, env: Env, sandboxes: Sandboxes) -> None:
        """Exit 0; the credentials and every file are still there; the output names the
        credentials, the paths and `syncd uninstall --purge`."""
        daemon = prepare(env, sandboxes)
        assert env.stop_daemon(daemon) == 0
        before = leftovers(env)
        done = env.syncd("uninstall")
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert leftovers(env) == before
        assert keyring.get_password("syncd", "source") == SOURCE_TOKEN
        assert keyring.get_password("syncd", "hubspot") == HUBSPOT_TOKEN
        assert keyring.get_password("syncd", KEY_NAME) is not None
        assert "syncd uninstall --purge" in output
        state = Path(env.environ["XDG_STATE_HOME"]) / "syncd"
        for needle in (
            "source",
            "hubspot",
            "the journal key",
            "the do-not-sync key",
            str(env.config),
            str(state / "journal"),
            str(state / "do-not-sync"),
            str(env.root / "log" / "syncd.log"),
        ):
            assert needle in output
        for secret in (SOURCE_TOKEN, HUBSPOT_TOKEN, STRAY_TOKEN):
            assert secret not in output
        keyring.delete_password("syncd", STRAY)
