"""Owner-only places on disk: the socket's directory, the journal and the log refuse links,
other owners and open modes, and every file syncd opens there is 0600 and ours."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync import log
from sync.errors import SyncdError
from sync.journal import Journal
from sync.private_paths import (
    PathUnavailable,
    UnsafePath,
    check_socket,
    open_private_file,
    private_dir,
)
from sync.secrets import MemoryTokenStore

AS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root can give a file to another uid (os.chown to 65534)"
)
SETTING = "[daemon] log_file"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def give_away(path: Path) -> None:
    os.chown(path, 65534, 65534, follow_symlinks=False)


@pytest.fixture
def no_log() -> Iterator[None]:
    """Leaves logging as it was, whatever the test configured."""
    yield
    log.reset()


class TestPrivateDir:
    """A directory syncd keeps things in is 0700, real and ours, or refused by name."""

    def test_creates_missing_dirs_0700(self, tmp_path: Path) -> None:
        """The directory and its missing parents are made owner-only; a second call agrees."""
        target = tmp_path / "a" / "b"
        private_dir(target, setting=SETTING)
        assert mode(target) == 0o700
        assert mode(target.parent) == 0o700
        private_dir(target, setting=SETTING)

    def test_refuses_symlinked_dir(self, tmp_path: Path) -> None:
        """A symbolic link to a private directory of ours is still refused."""
        real = tmp_path / "real"
        real.mkdir(mode=0o700)
        (tmp_path / "link").symlink_to(real)
        with pytest.raises(UnsafePath, match="symbolic link") as caught:
            private_dir(tmp_path / "link", setting=SETTING)
        assert caught.value.path == tmp_path / "link"

    @AS_ROOT
    def test_refuses_dir_owned_by_another_uid(self, tmp_path: Path) -> None:
        """A 0700 directory that belongs to uid 65534 is refused, naming the uid."""
        target = tmp_path / "theirs"
        target.mkdir(mode=0o700)
        give_away(target)
        with pytest.raises(UnsafePath, match=r"another user \(uid 65534\)"):
            private_dir(target, setting=SETTING)

    @pytest.mark.parametrize(
        "loose",
        [
            pytest.param(0o750, id="group-enters"),
            pytest.param(0o705, id="others-enter"),
            pytest.param(0o770, id="group-writes"),
            pytest.param(0o777, id="everyone"),
        ],
    )
    def test_refuses_group_or_other_access(self, tmp_path: Path, loose: int) -> None:
        """A directory group or others can enter is refused with its mode and a chmod."""
        target = tmp_path / "open"
        target.mkdir()
        target.chmod(loose)
        with pytest.raises(UnsafePath) as caught:
            private_dir(target, setting=SETTING)
        assert f"mode {loose:04o}" in str(caught.value)
        assert "chmod 700" in str(caught.value)
        assert mode(target) == loose  # refused, not silently changed

    def test_refuses_a_parent_anyone_can_write(self, tmp_path: Path) -> None:
        """A parent writable by all without the sticky bit is refused, naming that parent."""
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        with pytest.raises(UnsafePath) as caught:
            private_dir(shared / "syncd", setting=SETTING)
        assert caught.value.path == shared

    def test_refusal_by_the_os_keeps_its_errno(self, tmp_path: Path) -> None:
        """A directory the OS cannot create is also an OSError with its errno, so callers
        that handle a full or read-only disk still do."""
        (tmp_path / "file").write_text("", encoding="utf-8")
        with pytest.raises(PathUnavailable, match="cannot be created") as caught:
            private_dir(tmp_path / "file" / "syncd", setting=SETTING)
        assert isinstance(caught.value, OSError)
        assert caught.value.errno == errno.ENOTDIR
        assert caught.value.exit_code == 2

    def test_error_is_one_sentence_with_exit_2(self, tmp_path: Path) -> None:
        """The refusal is a SyncdError the CLI prints on one line and exits 2 for."""
        (tmp_path / "link").symlink_to(tmp_path)
        with pytest.raises(SyncdError) as caught:
            private_dir(tmp_path / "link", setting=SETTING)
        assert caught.value.exit_code == 2
        text = str(caught.value)
        assert "\n" not in text
        assert text.startswith(str(tmp_path / "link"))
        assert SETTING in text


class TestOpenPrivateFile:
    """A file is opened without following links, created 0600, its owner checked on the fd."""

    def test_creates_0600(self, tmp_path: Path) -> None:
        """A new file is 0600, in a directory created 0700."""
        path = tmp_path / "logs" / "syncd.log"
        os.close(open_private_file(path, setting=SETTING))
        assert mode(path) == 0o600
        assert mode(path.parent) == 0o700

    def test_tightens_our_own_loose_file(self, tmp_path: Path) -> None:
        """A file of ours that others could read is made 0600."""
        path = tmp_path / "syncd.log"
        path.write_text("old\n", encoding="utf-8")
        path.chmod(0o644)
        os.close(open_private_file(path, setting=SETTING))
        assert mode(path) == 0o600

    def test_refuses_symlinked_file(self, tmp_path: Path) -> None:
        """A link at the path is refused even when it points at our own file, left as is."""
        target = tmp_path / "elsewhere"
        target.write_text("", encoding="utf-8")
        target.chmod(0o644)
        (tmp_path / "syncd.log").symlink_to(target)
        with pytest.raises(UnsafePath, match="symbolic link"):
            open_private_file(tmp_path / "syncd.log", setting=SETTING)
        assert mode(target) == 0o644

    def test_refuses_dangling_symlink_without_creating(self, tmp_path: Path) -> None:
        """A link to nowhere is refused and its target is not created."""
        (tmp_path / "syncd.log").symlink_to(tmp_path / "planted")
        with pytest.raises(UnsafePath, match="symbolic link"):
            open_private_file(tmp_path / "syncd.log", setting=SETTING)
        assert not (tmp_path / "planted").exists()

    @AS_ROOT
    def test_refuses_file_owned_by_another_user(self, tmp_path: Path) -> None:
        """A file uid 65534 owns at the path is refused, naming the uid."""
        path = tmp_path / "syncd.log"
        path.write_text("", encoding="utf-8")
        path.chmod(0o600)
        give_away(path)
        with pytest.raises(UnsafePath, match=r"another user \(uid 65534\)"):
            open_private_file(path, setting=SETTING)

    def test_refuses_a_fifo_without_hanging(self, tmp_path: Path) -> None:
        """A FIFO at the path is refused at once instead of blocking the open."""
        os.mkfifo(tmp_path / "syncd.log", 0o600)
        with pytest.raises(UnsafePath, match=r"cannot be opened|not a regular file"):
            open_private_file(tmp_path / "syncd.log", setting=SETTING)

    def test_refuses_a_file_in_an_open_dir(self, tmp_path: Path) -> None:
        """The file's directory gets the directory checks too."""
        (tmp_path / "open").mkdir(mode=0o755)
        (tmp_path / "open").chmod(0o755)
        with pytest.raises(UnsafePath, match="mode 0755"):
            open_private_file(tmp_path / "open" / "syncd.log", setting=SETTING)


@pytest.mark.usefixtures("no_log")
class TestLogFile:
    """The log file goes through the same checks, at start and at every rotation."""

    def test_symlinked_log_file_is_refused(self, tmp_path: Path) -> None:
        """Configuring a log at a symbolic link raises the one-sentence refusal."""
        (tmp_path / "syncd.log").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(UnsafePath, match="symbolic link"):
            log.configure("info", tmp_path / "syncd.log")
        assert not (tmp_path / "elsewhere").exists()

    def test_rotated_files_are_0600(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """After several rotations the current file and every older one are 0600."""
        monkeypatch.setattr(log, "LOG_MAX_BYTES", 300)
        path = tmp_path / "log" / "syncd.log"
        log.configure("info", path)
        logger = log.get_logger("syncd.test")
        for count in range(40):
            logger.info("test.rotation", count=count)
        files = sorted(path.parent.iterdir())
        assert len(files) == 1 + log.LOG_BACKUPS
        assert {f.name for f in files} >= {"syncd.log", "syncd.log.1"}
        assert {mode(f) for f in files} == {0o600}
        for handler in logging.getLogger().handlers:
            handler.flush()
        last = path.read_text(encoding="utf-8").splitlines()[-1]
        assert json.loads(last)["count"] == 39

    def test_rotation_refuses_a_link_planted_meanwhile(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A link put where the next file will be created is refused, not followed."""
        monkeypatch.setattr(log, "LOG_MAX_BYTES", 300)
        path = tmp_path / "syncd.log"
        log.configure("info", path)
        handler = logging.getLogger().handlers[-1]
        assert isinstance(handler, logging.handlers.RotatingFileHandler)
        handler.close()
        path.unlink()
        path.symlink_to(tmp_path / "planted")
        with pytest.raises(UnsafePath, match="symbolic link"):
            handler.doRollover()
        assert not (tmp_path / "planted").exists()

    def test_syncd_run_refuses_it_with_exit_2(self, tmp_path: Path) -> None:
        """`syncd run` with a symbolic link as log_file exits 2 with one sentence naming it."""
        link = tmp_path / "syncd.log"
        link.symlink_to(tmp_path / "elsewhere")
        config = tmp_path / "config.toml"
        config.write_text(
            f'[daemon]\nsocket = "{tmp_path / "run" / "syncd.sock"}"\nlog_file = "{link}"\n\n'
            '[source]\ntype = "linkedin"\n\n[crm.hubspot]\ntype = "hubspot"\n',
            encoding="utf-8",
        )
        done = subprocess.run(
            [sys.executable, "-m", "sync.cli", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1
        assert str(link) in done.stderr
        assert "symbolic link" in done.stderr


class TestJournalDir:
    """The journal's directory gets the same checks."""

    async def test_symlinked_journal_dir_is_refused(self, tmp_path: Path) -> None:
        """Opening the journal through a symbolic link is refused."""
        (tmp_path / "real").mkdir(mode=0o700)
        (tmp_path / "journal").symlink_to(tmp_path / "real")
        with pytest.raises(UnsafePath, match="journal_dir"):
            await Journal.open(tmp_path / "journal", MemoryTokenStore())

    async def test_open_journal_dir_is_refused(self, tmp_path: Path) -> None:
        """A journal directory others can enter is refused, not silently tightened."""
        (tmp_path / "journal").mkdir()
        (tmp_path / "journal").chmod(0o755)
        with pytest.raises(UnsafePath, match="mode 0755"):
            await Journal.open(tmp_path / "journal", MemoryTokenStore())
        assert mode(tmp_path / "journal") == 0o755

    @AS_ROOT
    async def test_journal_dir_of_another_user_is_refused(self, tmp_path: Path) -> None:
        """A journal directory uid 65534 owns is refused."""
        (tmp_path / "journal").mkdir(mode=0o700)
        give_away(tmp_path / "journal")
        with pytest.raises(UnsafePath, match="another user"):
            await Journal.open(tmp_path / "journal", MemoryTokenStore())


class TestCheckSocket:
    """What the thin client checks before it sends anything."""

    def test_missing_socket_passes(self, tmp_path: Path) -> None:
        """No directory or no socket is left to the connect (daemon not running)."""
        check_socket(tmp_path / "none" / "syncd.sock")
        check_socket(tmp_path / "syncd.sock")

    def test_regular_file_is_refused(self, tmp_path: Path) -> None:
        """Something other than a socket at the path is refused."""
        (tmp_path / "syncd.sock").write_text("", encoding="utf-8")
        with pytest.raises(UnsafePath, match="not a socket"):
            check_socket(tmp_path / "syncd.sock")

    def test_symlinked_socket_is_refused(self, tmp_path: Path) -> None:
        """A link at the socket's path is refused without following it."""
        (tmp_path / "syncd.sock").symlink_to(tmp_path / "real.sock")
        with pytest.raises(UnsafePath, match="symbolic link"):
            check_socket(tmp_path / "syncd.sock")
