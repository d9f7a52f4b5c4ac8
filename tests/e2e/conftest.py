"""End-to-end harness: `syncd sandbox` in a subprocess, a real `syncd run` daemon in another,
the real CLI in more, tokens in the real OS keyring (Secret Service over D-Bus), and a
throwaway set of XDG dirs per test.

The throwaway dirs and the CLI's command line are the same ones the in-process stack of
`syncd demo` uses (rig/stack.py), which tests open with ``throwaway_stack`` directly.

The test command (scripts/test.sh) starts a private D-Bus session with an unlocked
gnome-keyring; without one, a run that needs these fixtures stops before its first test and
says so (see tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connectors.salesforce.sandbox.app import SalesforceSandbox
from rig.runner import toml_config
from rig.sandbox_control import SandboxControl
from rig.stack import DIRS, ThrowawayDirs, run_syncd, syncd_argv

SOURCE_TOKEN = "canary-source-token-7f3a9c1e5b"
HUBSPOT_TOKEN = "canary-hubspot-token-2d8e4f6a0c"
PIPEDRIVE_TOKEN = "canary-pipedrive-token-5e1b7d3f9a"
SALESFORCE_REFRESH = "canary-salesforce-refresh-8c2a6e4b0d"
#: The CRMs a module stack writes to.
CRMS = ("hubspot", "pipedrive", "salesforce")


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
    """`syncd sandbox` for the whole session; the real keyring is checked before any test."""
    out = tmp_path_factory.mktemp("sandbox") / "sandbox.toml"
    proc = subprocess.Popen(
        syncd_argv("sandbox", "--config-out", str(out)),
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
        done = run_syncd(self.environ, *args, stdin=stdin)
        self.outputs += [done.stdout, done.stderr]
        return done

    def start_daemon(self) -> subprocess.Popen[str]:
        """`syncd run` in the background; returns once it serves the control socket."""
        proc = subprocess.Popen(
            syncd_argv("run", "--config", str(self.config)),
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
    """Throwaway dirs, a config pointing at the sandboxes, and the canary tokens in the keyring.

    The socket and the journal stay at their defaults (under the throwaway XDG dirs).
    """
    sandboxes.reset()
    dirs = ThrowawayDirs.make(tmp_path, (*DIRS, "data"))
    socket = dirs["run"] / "syncd" / "syncd.sock"
    config = dirs["config"] / "syncd" / "config.toml"
    config.parent.mkdir()
    source = sandboxes.config["source"]
    crm = sandboxes.config["crm"]
    assert isinstance(source, dict)
    assert isinstance(crm, dict)
    tables = {
        "daemon": {"log_file": str(dirs["log"] / "syncd.log")},
        "source": source,
        "crm.hubspot": crm["hubspot"],
    }
    config.write_text(toml_config(tables))
    # The keyring daemon of the session keeps its files where the session said.
    data = os.environ.get("XDG_DATA_HOME", str(dirs["data"]))
    environ = dirs.environ(XDG_DATA_HOME=data, SYNCD_CONFIG=str(config))
    e = Env(tmp_path, config, socket, environ)
    assert e.syncd("auth", "set", "source", "--stdin", stdin=SOURCE_TOKEN).returncode == 0
    assert e.syncd("auth", "set", "hubspot", "--stdin", stdin=HUBSPOT_TOKEN).returncode == 0
    yield e
    for proc in e.daemons:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


@dataclass
class ModuleStack:
    """A module's `syncd run` daemon on throwaway dirs and a control client per sandbox.

    ``daemon`` is the one :func:`module_stack` stops at the end; a module that restarts the
    daemon puts the new one here.
    """

    env: Env
    boxes: dict[str, SandboxControl]
    daemon: subprocess.Popen[str]


@contextmanager
def module_stack(
    sandboxes: Sandboxes,
    root: Path,
    *,
    follow: bool = False,
    hubspot_tokens: Sequence[str] = (),
) -> Iterator[ModuleStack]:
    """A `syncd run` daemon writing to all three CRM sandboxes, its credentials in the real
    keyring, for a module's fixture.

    ``follow`` turns follow mode on (``interval = "15m"``: no pass comes within a test);
    ``hubspot_tokens`` are more tokens the HubSpot sandbox accepts besides the daemon's.
    On the way out the daemon is stopped (it must exit 0) and the Pipedrive and Salesforce
    credentials are taken out of the keyring again.
    """
    source = sandboxes.config["source"]
    crm = sandboxes.config["crm"]
    assert isinstance(source, dict)
    assert isinstance(crm, dict)
    boxes = {
        "source": sandboxes.source,
        "hubspot": sandboxes.hubspot,
        "pipedrive": SandboxControl(crm["pipedrive"]["base_url"]),
        "salesforce": SandboxControl(crm["salesforce"]["login_url"]),
    }
    sandboxes.reset()
    for name in ("pipedrive", "salesforce"):
        boxes[name].reset()
    if hubspot_tokens:
        boxes["hubspot"].set_tokens([HUBSPOT_TOKEN, *hubspot_tokens])
    boxes["pipedrive"].set_tokens([PIPEDRIVE_TOKEN])
    boxes["salesforce"].set_tokens([SALESFORCE_REFRESH])
    dirs = ThrowawayDirs.make(root, (*DIRS, "data"))
    config = dirs["config"] / "syncd" / "config.toml"
    config.parent.mkdir()
    tables: dict[str, dict[str, object]] = {"daemon": {"log_file": str(dirs["log"] / "syncd.log")}}
    if follow:
        tables["follow"] = {"enabled": True, "interval": "15m"}
    tables |= {"source": source, **{f"crm.{name}": crm[name] for name in CRMS}}
    config.write_text(toml_config(tables))
    # The keyring daemon of the session keeps its files where the session said.
    data = os.environ.get("XDG_DATA_HOME", str(dirs["data"]))
    environ = dirs.environ(XDG_DATA_HOME=data, SYNCD_CONFIG=str(config))
    env = Env(root, config, dirs["run"] / "syncd" / "syncd.sock", environ)
    credentials = {
        "source": SOURCE_TOKEN,
        "hubspot": HUBSPOT_TOKEN,
        "pipedrive": PIPEDRIVE_TOKEN,
        "salesforce": json.dumps(
            {
                "client_id": SalesforceSandbox.CLIENT_ID,
                "client_secret": SalesforceSandbox.CLIENT_SECRET,
                "refresh_token": SALESFORCE_REFRESH,
            }
        ),
    }
    for name, credential in credentials.items():
        stored = env.syncd("auth", "set", name, "--stdin", stdin=credential)
        assert stored.returncode == 0, stored.stderr
    stack = ModuleStack(env, boxes, env.start_daemon())
    yield stack
    assert env.stop_daemon(stack.daemon) == 0
    for name in ("pipedrive", "salesforce"):  # the session's other tests know only two
        env.syncd("auth", "remove", name)
        boxes[name].close()
