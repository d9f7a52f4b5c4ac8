"""`syncd uninstall --purge` on throwaway XDG dirs with a memory token store."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sync import cli
from sync.daemon_stop import stop_daemon
from sync.donotsync import KEY_NAME as DO_NOT_SYNC_KEY
from sync.errors import KeyringUnavailable
from sync.journal import KEY_NAME
from sync.purge import Report, describe, plan, purge
from sync.secrets import MemoryTokenStore, TokenStore

CONFIG = (
    '[source]\ntype = "linkedin"\n\n[crm.hubspot]\ntype = "hubspot"\n\n'
    '[crm.pipe]\ntype = "pipedrive"\n'
)
SECRETS = {
    "source": "canary-purge-source-1b2c",
    "hubspot": "canary-purge-hubspot-3d4e",
    "pipe": "canary-purge-pipe-5f6a",
    KEY_NAME: "canary-purge-journal-key-7b8c",
    DO_NOT_SYNC_KEY: "canary-purge-dns-key-9d0e",
}


@dataclass
class Machine:
    """A user's XDG dirs under a temp root, holding everything syncd writes."""

    root: Path
    xdg: dict[str, Path]
    store: MemoryTokenStore

    @property
    def config(self) -> Path:
        return self.xdg["XDG_CONFIG_HOME"] / "syncd" / "config.toml"

    @property
    def state(self) -> Path:
        return self.xdg["XDG_STATE_HOME"] / "syncd"

    @property
    def journal(self) -> Path:
        return self.state / "journal"

    @property
    def log_dir(self) -> Path:
        return self.state / "log"

    def files(self) -> list[Path]:
        """Everything that is not a directory left under the XDG dirs (links included)."""
        return sorted(
            p
            for base in self.xdg.values()
            for p in base.rglob("*")
            if p.is_symlink() or not p.is_dir()
        )

    def dirs(self) -> list[Path]:
        """Every directory left below the XDG dirs themselves."""
        return sorted(p for base in self.xdg.values() for p in base.rglob("*") if p.is_dir())


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    """Config, journal (with damaged/), do-not-sync list, logs and rotations, runtime and
    cache dirs — what a syncd that ran for a while leaves."""
    names = ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME")
    xdg = {name: tmp_path / name.lower() for name in names}
    xdg["XDG_RUNTIME_DIR"] = tmp_path / "run"
    for name, path in xdg.items():
        path.mkdir(mode=0o700)
        monkeypatch.setenv(name, str(path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    m = Machine(tmp_path, xdg, MemoryTokenStore(SECRETS))
    write(m.config, CONFIG)
    write(m.config.parent / ".config-abc.tmp")
    for name in ("0001.sj", "run-a1b2-0.inflight", ".0002.sj.1f2e.tmp", "damaged/aside-1.sj"):
        write(m.journal / name)
    write(m.state / "do-not-sync", "hmac-line\n")
    for name in ("syncd.log", "syncd.log.1", "syncd.log.2"):
        write(m.log_dir / name, '{"event": "relay.done"}\n')
    for name in ("XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        (xdg[name] / "syncd").mkdir(mode=0o700)
    return m


def run_purge(m: Machine, store: TokenStore | None = None) -> tuple[int, str, str, Report]:
    report = Report(io.StringIO(), io.StringIO())
    chosen = m.store if store is None else store
    code = purge(plan(None), lambda: chosen, report)
    assert isinstance(report.out, io.StringIO)
    assert isinstance(report.err, io.StringIO)
    return code, report.out.getvalue(), report.err.getvalue(), report


@contextmanager
def unremovable(directory: Path) -> Iterator[None]:
    """``directory`` made read-only: no entry in it can be removed (root needs chattr +i)."""
    directory.chmod(0o500)
    frozen = False
    try:
        if os.geteuid() == 0:
            chattr = shutil.which("chattr")
            done = (
                subprocess.run([chattr, "+i", str(directory)], capture_output=True, check=False)
                if chattr
                else None
            )
            if done is None or done.returncode != 0:
                pytest.skip("running as root without a working chattr: nothing is read-only")
            frozen = True
        yield
    finally:
        if frozen:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        directory.chmod(0o700)


class TestPurge:
    """Everything syncd keeps goes; nothing else does."""

    def test_every_file_directory_and_credential_goes(self, machine: Machine) -> None:
        """Credentials, journal, do-not-sync list, logs and rotations, config and syncd's
        directories are all removed, one line each, exit 0, no credential in the output."""
        code, out, err, _ = run_purge(machine)
        assert code == 0, err
        assert machine.files() == []
        assert machine.dirs() == []
        assert all(machine.store.get(name) is None for name in SECRETS)
        for path in (
            machine.config,
            machine.state / "do-not-sync",
            machine.log_dir / "syncd.log.2",
        ):
            assert str(path) in out
        assert "the journal key (syncd:journal-key)" in out
        for value in SECRETS.values():
            assert value not in out + err
        assert out.strip().splitlines()[-1].startswith("syncd left nothing on this machine")

    def test_a_link_inside_is_removed_as_a_link_and_its_target_survives(
        self, machine: Machine
    ) -> None:
        """The journal dir, a journal file and the config as links out: the links go, what
        they point to outside syncd's directories stays untouched."""
        outside = machine.root / "outside"
        kept_segment = write(outside / "journal" / "keep.sj", "mine")
        kept_file = write(outside / "precious.txt", "mine")
        kept_config = write(outside / "config.toml", CONFIG)
        shutil.rmtree(machine.journal)
        machine.journal.symlink_to(outside / "journal", target_is_directory=True)
        (machine.log_dir / "syncd.log.3").symlink_to(kept_file)
        machine.config.unlink()
        machine.config.symlink_to(kept_config)
        code, out, err, _ = run_purge(machine)
        assert code == 0, err
        assert machine.files() == []
        assert machine.dirs() == []
        assert kept_segment.read_text() == "mine"
        assert kept_file.read_text() == "mine"
        assert kept_config.read_text() == CONFIG
        assert "(a symbolic link: only the link)" in out

    def test_a_file_that_cannot_be_removed_is_named_and_the_rest_goes(
        self, machine: Machine
    ) -> None:
        """A read-only log dir: one sentence per file left, exit 1, everything else removed."""
        with unremovable(machine.log_dir):
            code, _out, err, _ = run_purge(machine)
            left = machine.files()
        assert code == 1
        assert f"could not remove the log {machine.log_dir / 'syncd.log'}" in err
        assert set(left) == {
            machine.log_dir / n for n in ("syncd.log", "syncd.log.1", "syncd.log.2")
        }
        assert not machine.config.exists()
        assert not machine.journal.exists()
        assert all(machine.store.get(name) is None for name in SECRETS)

    def test_an_unreachable_keyring_keeps_the_config_and_exits_4(self, machine: Machine) -> None:
        """The keyring cannot be opened: exit 4, the credentials named as still there, the
        config kept so a second purge finds them, the other files removed."""

        def unreachable() -> TokenStore:
            raise KeyringUnavailable("keyring", "the OS keyring could not be opened")

        report = Report(io.StringIO(), io.StringIO())
        code = purge(plan(None), unreachable, report)
        assert code == 4
        assert isinstance(report.err, io.StringIO)
        err = report.err.getvalue()
        assert "the credential for hubspot" in err
        assert "the do-not-sync key" in err
        assert machine.files() == [machine.config]

    def test_a_config_that_does_not_load_still_names_its_crms_and_places(
        self, machine: Machine
    ) -> None:
        """An unknown key breaks the config: its CRM names and journal_dir are still found."""
        custom = machine.root / "elsewhere" / "journal"
        write(custom / "0009.sj")
        machine.config.write_text(CONFIG + f'\n[daemon]\njournal_dir = "{custom}"\nbogus = 1\n')
        places = plan(None)
        assert places.config_problem is not None
        assert {"source", "hubspot", "pipe", KEY_NAME, DO_NOT_SYNC_KEY} == set(places.credentials)
        assert places.journal_dir == custom
        code, _out, err, _ = run_purge(machine)
        assert code == 0, err
        assert not custom.exists()
        assert all(machine.store.get(name) is None for name in SECRETS)


class TestDescribe:
    """Without --purge, what stays is named with its paths."""

    def test_lists_credentials_and_paths(self, machine: Machine) -> None:
        """Credential names (never values), the journal, do-not-sync list, log and config."""
        text = "\n".join(describe(plan(None)))
        for needle in ("source", "hubspot", "pipe", "the journal key", "the do-not-sync key"):
            assert needle in text
        for path in (machine.journal, machine.state / "do-not-sync", machine.config):
            assert str(path) in text
        assert all(value not in text for value in SECRETS.values())


class TestConfirmation:
    """A purge asks on a terminal; without one it needs --yes."""

    def test_without_terminal_or_yes_exits_2_and_removes_nothing(
        self, machine: Machine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 2 and one sentence naming --yes; every file is still there."""
        before = machine.files()
        monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
        assert cli.main(["uninstall", "--purge"]) == 2
        err = capsys.readouterr().err
        assert "pass --yes" in err
        assert len(err.strip().splitlines()) == 1
        assert machine.files() == before


class TestStopDaemon:
    """A process still serving the control socket is stopped by its peer pid."""

    def test_sigterm_by_peer_pid_then_gone(self, machine: Machine) -> None:
        """The listener (another process) gets SIGTERM and stop_daemon returns once it ended."""
        sock = machine.xdg["XDG_RUNTIME_DIR"] / "syncd" / "syncd.sock"
        listener = (
            "import socket\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            f"s.bind({str(sock)!r}); s.listen(1)\n"
            "print('ready', flush=True)\n"
            "while True: s.accept()[0].close()\n"
        )
        with subprocess.Popen(
            [sys.executable, "-c", listener], stdout=subprocess.PIPE, text=True
        ) as server:
            try:
                assert server.stdout is not None
                assert server.stdout.readline() == "ready\n"
                sock.chmod(0o600)
                report = Report(io.StringIO(), io.StringIO())
                assert stop_daemon(sock, report, wait=20)
                assert server.wait(timeout=5) == -15
                assert report.removed == [
                    f"stopped the syncd daemon (pid {server.pid}) that served {sock}"
                ]
            finally:
                if server.poll() is None:
                    server.kill()

    def test_nobody_listening_is_nothing_to_stop(self, machine: Machine) -> None:
        """No socket: True, nothing said."""
        report = Report(io.StringIO(), io.StringIO())
        assert stop_daemon(machine.root / "run" / "syncd" / "none.sock", report)
        assert report.removed == []
        assert report.failures == []
