"""End-to-end harness: `syncd sandbox` in a subprocess, a real `syncd run` daemon in another,
the real CLI in more, tokens in the real OS keyring (Secret Service over D-Bus), and a
throwaway set of XDG dirs per test.

The test command (scripts/test.sh) starts a private D-Bus session with an unlocked
gnome-keyring; without one these tests fail in CI and are skipped elsewhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rig.sandbox import SandboxControl

SOURCE_TOKEN = "canary-source-token-7f3a9c1e5b"
HUBSPOT_TOKEN = "canary-hubspot-token-2d8e4f6a0c"


def _keyring_usable() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "from sync.secrets import KeyringTokenStore; KeyringTokenStore()"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@dataclass
class Sandboxes:
    """The `syncd sandbox` process and a control client per sandbox."""

    config: dict[str, object]
    source: SandboxControl
    hubspot: SandboxControl

    def reset(self) -> None:
        for control in (self.source, self.hubspot):
            control.reset()
        self.source.set_tokens([SOURCE_TOKEN])
        self.hubspot.set_tokens([HUBSPOT_TOKEN])


@pytest.fixture(scope="session")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    if not _keyring_usable():
        if os.environ.get("CI"):
            pytest.fail("no usable keyring: run the tests through scripts/test.sh")
        pytest.skip("no usable keyring (run through scripts/test.sh for the real one)")
    out = tmp_path_factory.mktemp("sandbox") / "sandbox.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync.cli", "sandbox", "--config-out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # blocks until the sandboxes listen
        if line.startswith("ready"):
            break
    else:
        pytest.fail(f"syncd sandbox did not start: {proc.stderr.read() if proc.stderr else ''}")
    config = tomllib.loads(out.read_text())
    crm = config["crm"]
    assert isinstance(crm, dict)
    source = config["source"]
    assert isinstance(source, dict)
    boxes = Sandboxes(
        config, SandboxControl(str(source["base_url"])), SandboxControl(crm["hubspot"]["base_url"])
    )
    yield boxes
    boxes.source.close()
    boxes.hubspot.close()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)


@dataclass
class Env:
    """One test's throwaway dirs, config and every CLI output it produced."""

    root: Path
    config: Path
    socket: Path
    environ: dict[str, str]
    outputs: list[str] = field(default_factory=list)
    daemons: list[subprocess.Popen[str]] = field(default_factory=list)

    def dirs(self) -> list[Path]:
        """Every dir where syncd may write: config, state, cache, log, runtime, temp."""
        return [p for p in self.root.iterdir() if p.is_dir()]

    def syncd(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the real CLI and keep its output for the P2 scan."""
        done = subprocess.run(
            [sys.executable, "-m", "sync.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.environ,
            timeout=120,
            check=False,
        )
        self.outputs += [done.stdout, done.stderr]
        return done

    def start_daemon(self) -> subprocess.Popen[str]:
        """`syncd run` in the background; returns once it serves the control socket."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "sync.cli", "run", "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environ,
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            self.outputs.append(line)
            if line.startswith("syncd is running"):
                break
        else:
            out, err = proc.communicate(timeout=10)
            self.outputs += [out, err]
            pytest.fail(f"syncd run did not start: {err}")
        self.daemons.append(proc)
        return proc

    def stop_daemon(self, proc: subprocess.Popen[str]) -> int:
        """SIGTERM the daemon and wait; its exit code."""
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        self.outputs += [out, err]
        return proc.returncode


@pytest.fixture
def env(sandboxes: Sandboxes, tmp_path: Path) -> Iterator[Env]:
    sandboxes.reset()
    dirs = {n: tmp_path / n for n in ("config", "state", "cache", "log", "run", "tmp", "data")}
    for path in dirs.values():
        path.mkdir(mode=0o700)
    socket = dirs["run"] / "syncd" / "syncd.sock"
    config = dirs["config"] / "syncd" / "config.toml"
    config.parent.mkdir()
    source = sandboxes.config["source"]
    crm = sandboxes.config["crm"]
    assert isinstance(source, dict)
    assert isinstance(crm, dict)
    config.write_text(
        "[daemon]\n"
        f'log_file = "{dirs["log"] / "syncd.log"}"\n\n'
        f'[source]\ntype = "linkedin"\nbase_url = "{source["base_url"]}"\n\n'
        f'[crm.hubspot]\ntype = "hubspot"\nbase_url = "{crm["hubspot"]["base_url"]}"\n'
    )
    environ = {
        **os.environ,
        "XDG_CONFIG_HOME": str(dirs["config"]),
        "XDG_STATE_HOME": str(dirs["state"]),
        "XDG_CACHE_HOME": str(dirs["cache"]),
        "XDG_DATA_HOME": os.environ.get("XDG_DATA_HOME", str(dirs["data"])),
        "XDG_RUNTIME_DIR": str(dirs["run"]),
        "TMPDIR": str(dirs["tmp"]),
        "SYNCD_CONFIG": str(config),
    }
    e = Env(tmp_path, config, socket, environ)
    assert e.syncd("auth", "set", "source", "--stdin", stdin=SOURCE_TOKEN).returncode == 0
    assert e.syncd("auth", "set", "hubspot", "--stdin", stdin=HUBSPOT_TOKEN).returncode == 0
    yield e
    for proc in e.daemons:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
