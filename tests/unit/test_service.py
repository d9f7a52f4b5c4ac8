"""`syncd service`: the systemd user unit and the launchd agent it writes, checked by
systemd's own verifier and plistlib, and the real CLI run with a throwaway HOME."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sync.daemon import DRAIN_SECONDS
from sync.errors import UsageError
from sync.service import (
    LAUNCHD_LABEL,
    UNIT_NAME,
    UnsupportedPlatform,
    daemon_argv,
    service_file,
    systemd_unit,
)

ROOT = Path(__file__).resolve().parents[2]
CANARIES = {
    "HUBSPOT_TOKEN": "canary-hubspot-unit-6b1f0e",
    "SYNCD_SOURCE_TOKEN": "canary-source-unit-d47a2c",
    "PIPEDRIVE_API_TOKEN": "canary-pipedrive-unit-0e93b5",
}
#: A config path a unit must carry through quoting and systemd's % and $ expansion.
AWKWARD = "my syncd/100% $HOME's config.toml"


def settings(unit: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit, by key (a key may repeat)."""
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


@dataclass
class Home:
    """A throwaway HOME, XDG_CONFIG_HOME and XDG_RUNTIME_DIR, and the real CLI run in it."""

    root: Path
    home: Path
    config_home: Path
    runtime: Path
    config: Path

    @property
    def unit(self) -> Path:
        return self.config_home / "systemd" / "user" / UNIT_NAME

    def environ(self, *, systemctl: bool) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DBUS_SESSION_BUS_ADDRESS", "SYNCD_CONFIG", "NOTIFY_SOCKET")
        }
        env |= CANARIES | {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.config_home),
            "XDG_RUNTIME_DIR": str(self.runtime),  # empty: no user bus, no user manager
        }
        if not systemctl:
            empty = self.root / "empty-bin"
            empty.mkdir(exist_ok=True)
            env["PATH"] = str(empty)
        return env

    def syncd(self, *args: str, systemctl: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sync.cli", *args],
            capture_output=True,
            text=True,
            env=self.environ(systemctl=systemctl),
            cwd=ROOT,
            timeout=60,
            check=False,
        )

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Every path under the root with its size and mtime."""
        return {
            str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in sorted(self.root.rglob("*"))
        }


@pytest.fixture
def home(tmp_path: Path) -> Home:
    dirs = {name: tmp_path / name for name in ("home", "config", "run")}
    for path in dirs.values():
        path.mkdir(mode=0o700)
    config = tmp_path / AWKWARD
    config.parent.mkdir()
    config.write_text("# a config the unit points at\n")
    return Home(tmp_path, dirs["home"], dirs["config"], dirs["run"], config)


def verify(unit_dir: Path, home: Home) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify --user` on the unit in ``unit_dir`` (skipped without it)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (scripts/test.sh installs it)")
    return subprocess.run(
        [tool, "verify", "--user", str(unit_dir / UNIT_NAME)],
        capture_output=True,
        text=True,
        env=home.environ(systemctl=True),
        timeout=60,
        check=False,
    )


class TestSystemdUnit:
    """The unit is one systemd accepts, with the settings the daemon relies on."""

    def test_the_unit_passes_systemd_analyze_verify(self, home: Home, tmp_path: Path) -> None:
        """systemd's verifier accepts the unit, awkward config path included, saying nothing."""
        file = service_file(home.config, platform="linux", environ=home.environ(systemctl=True))
        out = tmp_path / "verify"
        out.mkdir()
        (out / UNIT_NAME).write_bytes(file.content)
        done = verify(out, home)
        assert (done.returncode, done.stderr) == (0, "")

    def test_the_verifier_can_say_no(self, home: Home, tmp_path: Path) -> None:
        """A unit with a wrong setting makes the verifier speak (so the test above can fail)."""
        out = tmp_path / "verify"
        out.mkdir()
        unit = systemd_unit(daemon_argv(None)).replace("Type=notify", "Type=notifyy")
        (out / UNIT_NAME).write_text(unit)
        done = verify(out, home)
        assert done.stderr != ""

    def test_the_unit_says_what_the_daemon_needs(self, home: Home) -> None:
        """Type=notify with the watchdog, restart on failure, no core, and a stop timeout
        longer than the daemon's drain."""
        unit = settings(systemd_unit(daemon_argv(home.config)))
        assert unit["Type"] == ["notify"]
        assert unit["NotifyAccess"] == ["main"]
        assert unit["Restart"] == ["on-failure"]
        assert unit["LimitCORE"] == ["0"]
        assert unit["NoNewPrivileges"] == ["yes"]
        assert seconds(unit["WatchdogSec"][0]) > 0
        assert seconds(unit["TimeoutStopSec"][0]) > DRAIN_SECONDS
        assert unit["WantedBy"] == ["default.target"]
        assert "PrivateTmp" not in unit  # needs user namespaces in a user unit

    def test_exec_start_runs_this_interpreter_with_the_config(self, home: Home) -> None:
        """ExecStart is this Python's absolute path, `-m sync.cli run`, and the config."""
        (exec_start,) = settings(systemd_unit(daemon_argv(home.config)))["ExecStart"]
        assert exec_start.startswith(f"{os.path.abspath(sys.executable)} -m sync.cli run --config ")
        assert exec_start.endswith("100%% $$HOME's config.toml\"")

    def test_no_config_flag_without_a_config(self) -> None:
        """Without --config or $SYNCD_CONFIG the daemon finds its config by itself."""
        assert daemon_argv(None)[-1] == "run"


class TestNoSecret:
    """Neither file nor the command's output carries a credential (P2)."""

    def test_credentials_in_the_environment_stay_out_of_the_unit(self, home: Home) -> None:
        """With canary tokens in the environment, the unit and the output hold none of them,
        and the unit has no Environment= at all."""
        done = home.syncd("service", "install", "--config", str(home.config))
        assert done.returncode == 0, done.stderr
        text = home.unit.read_text()
        for canary in CANARIES.values():
            assert canary not in text + done.stdout + done.stderr
        assert not [k for k in settings(text) if k.startswith("Environment")]

    def test_the_launchd_agent_has_no_environment(self, home: Home) -> None:
        """The launchd agent carries no EnvironmentVariables and no canary."""
        file = service_file(home.config, platform="darwin", environ=home.environ(systemctl=True))
        agent = plistlib.loads(file.content)
        assert "EnvironmentVariables" not in agent
        for canary in CANARIES.values():
            assert canary.encode() not in file.content


class TestInstallCommand:
    """The real `syncd service` in a subprocess, with no user service manager to talk to."""

    def test_dry_run_writes_nothing(self, home: Home) -> None:
        """`install --dry-run` prints the unit and leaves every file under HOME as it was."""
        before = home.snapshot()
        done = home.syncd("service", "install", "--dry-run")
        assert done.returncode == 0, done.stderr
        assert "Type=notify" in done.stdout
        assert str(home.unit) in done.stderr
        assert home.snapshot() == before

    @pytest.mark.parametrize(
        "systemctl",
        [pytest.param(False, id="no-systemctl"), pytest.param(True, id="systemctl-no-user-bus")],
    )
    def test_install_then_uninstall(self, home: Home, systemctl: bool) -> None:
        """install writes the unit 0644 under XDG_CONFIG_HOME and says how to start it;
        uninstall removes it; neither fails for want of a service manager."""
        if systemctl and shutil.which("systemctl") is None:
            pytest.skip("systemctl is not installed here")
        done = home.syncd("service", "install", "--config", str(home.config), systemctl=systemctl)
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(home.unit.stat().st_mode) == 0o644
        assert f"wrote {home.unit}" in done.stdout
        assert "systemctl --user enable --now syncd.service" in done.stdout
        status = home.syncd("service", "status", systemctl=systemctl)
        assert status.returncode == 0, status.stderr
        assert "installed" in status.stdout
        assert "state unknown: no user service manager here" in status.stdout
        gone = home.syncd("service", "uninstall", systemctl=systemctl)
        assert gone.returncode == 0, gone.stderr
        assert f"removed {home.unit}" in gone.stdout
        assert not home.unit.exists()
        assert not list(home.unit.parent.rglob("*syncd*"))

    def test_uninstall_removes_an_enablement_link_left_behind(self, home: Home) -> None:
        """A default.target.wants link to the unit goes with it, even without systemctl."""
        assert home.syncd("service", "install", systemctl=False).returncode == 0
        wants = home.unit.parent / "default.target.wants"
        wants.mkdir()
        (wants / UNIT_NAME).symlink_to(home.unit)
        done = home.syncd("service", "uninstall", systemctl=False)
        assert done.returncode == 0, done.stderr
        assert not (wants / UNIT_NAME).is_symlink()
        assert not home.unit.exists()

    def test_status_and_uninstall_when_not_installed(self, home: Home) -> None:
        """Nothing installed: status and uninstall say so and exit 0."""
        status = home.syncd("service", "status", systemctl=False)
        assert (status.returncode, status.stdout.strip()) == (
            0,
            f"{UNIT_NAME}: not installed; install it with `syncd service install`",
        )
        gone = home.syncd("service", "uninstall", systemctl=False)
        assert gone.returncode == 0
        assert "nothing to remove" in gone.stdout

    def test_a_missing_config_is_a_usage_error(self, home: Home) -> None:
        """An explicit --config that does not exist exits 2 with a sentence and writes nothing."""
        before = home.snapshot()
        done = home.syncd("service", "install", "--config", str(home.root / "nope.toml"))
        assert done.returncode == 2
        assert done.stderr.startswith("syncd: there is no config file at ")
        assert "Traceback" not in done.stderr
        assert home.snapshot() == before

    def test_status_says_when_the_interpreter_is_gone(self, home: Home) -> None:
        """A unit whose Python no longer exists is pointed out, with what to run."""
        assert home.syncd("service", "install", systemctl=False).returncode == 0
        text = home.unit.read_text()
        home.unit.write_text(text.replace(os.path.abspath(sys.executable), "/nonexistent/python3"))
        status = home.syncd("service", "status", systemctl=False)
        assert "/nonexistent/python3, which no longer exists" in status.stdout


class TestLaunchdAgent:
    """The macOS agent: a plist launchd reads, keeping syncd alive only after a failure."""

    def test_the_plist_parses_and_has_the_keys(self, home: Home) -> None:
        """plistlib reads it back with the label, the command, KeepAlive and Background."""
        file = service_file(home.config, platform="darwin", environ=home.environ(systemctl=True))
        assert file.path == home.home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        agent = plistlib.loads(file.content)
        assert agent["Label"] == LAUNCHD_LABEL
        assert agent["ProgramArguments"] == [
            os.path.abspath(sys.executable),
            "-m",
            "sync.cli",
            "run",
            "--config",
            str(home.config),
        ]
        assert agent["KeepAlive"] == {"SuccessfulExit": False}
        assert agent["ProcessType"] == "Background"
        assert agent["RunAtLoad"] is True
        assert agent["StandardOutPath"] == agent["StandardErrorPath"] == "/dev/null"
        assert file.start.startswith(f"launchctl bootstrap gui/{os.getuid()} ")

    def test_plutil_accepts_the_plist(self, home: Home, tmp_path: Path) -> None:
        """Where plutil exists (macOS), it lints the agent clean."""
        tool = shutil.which("plutil")
        if tool is None:
            pytest.skip("plutil exists on macOS only; plistlib checked the file above")
        file = service_file(home.config, platform="darwin", environ=home.environ(systemctl=True))
        path = tmp_path / "agent.plist"
        path.write_bytes(file.content)
        done = subprocess.run([tool, "-lint", str(path)], capture_output=True, check=False)
        assert done.returncode == 0, done.stdout


class TestPlatforms:
    """Only Linux and macOS have a service file; elsewhere a sentence and exit 2."""

    @pytest.mark.parametrize("platform", ["win32", "freebsd14", "cygwin"])
    def test_other_platforms_are_a_usage_error(self, platform: str) -> None:
        """Windows, the BSDs and Cygwin get one sentence naming what to do instead."""
        with pytest.raises(UnsupportedPlatform) as raised:
            service_file(None, platform=platform, environ={})
        assert isinstance(raised.value, UsageError)
        assert raised.value.exit_code == 2
        assert platform in str(raised.value)

    def test_xdg_config_home_is_honoured_and_a_relative_one_ignored(self, tmp_path: Path) -> None:
        """The unit goes under an absolute $XDG_CONFIG_HOME, else under ~/.config."""
        absolute = service_file(
            None, platform="linux", environ={"XDG_CONFIG_HOME": str(tmp_path), "HOME": "/h"}
        )
        relative = service_file(
            None, platform="linux", environ={"XDG_CONFIG_HOME": "cfg", "HOME": "/h"}
        )
        assert absolute.path == tmp_path / "systemd" / "user" / UNIT_NAME
        assert relative.path == Path("/h/.config/systemd/user") / UNIT_NAME
