"""`syncd init` end to end: the real CLI against the sandboxes, credentials in the real
OS keyring (read back with secret-tool), on a terminal through a pseudo-terminal too."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connectors.salesforce.sandbox.app import SalesforceSandbox
from rig.sandbox_control import SandboxControl
from rig.stack import DIRS, ThrowawayDirs, run_syncd, syncd_argv
from tests.e2e.conftest import HUBSPOT_TOKEN, SOURCE_TOKEN, Sandboxes

pytestmark = pytest.mark.e2e

PIPEDRIVE_TOKEN = "canary-pipedrive-token-61b0e9d4a7"
SALESFORCE_REFRESH = "canary-salesforce-refresh-93c5f2a8e1"
NAMES = ("source", "hubspot", "pipedrive", "salesforce", "eu")


def lookup(name: str) -> str | None:
    """What the real keyring holds for ``name`` under service syncd (secret-tool)."""
    done = subprocess.run(
        ["secret-tool", "lookup", "service", "syncd", "username", name],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return done.stdout if done.returncode == 0 and done.stdout else None


def clear(name: str) -> None:
    """Remove ``name``'s credential from the real keyring, if any."""
    subprocess.run(
        ["secret-tool", "clear", "service", "syncd", "username", name],
        capture_output=True,
        check=False,
        timeout=30,
    )


@dataclass
class Init:
    """One test's throwaway dirs, the sandboxes' URLs and every output init produced."""

    config: Path
    environ: dict[str, str]
    urls: dict[str, str]
    salesforce_credential: str
    outputs: list[str] = field(default_factory=list)

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """`syncd init --non-interactive --config … ARGS` with ``stdin``; argv is watched
        while it runs, so a credential on any command line fails the test."""
        argv = syncd_argv("init", "--non-interactive", "--config", str(self.config), *args)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environ,
        )
        seen = _cmdlines(proc.pid)
        out, err = proc.communicate(stdin, timeout=120)
        self.outputs += [out, err, *seen]
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def syncd(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Any other `syncd` command, output kept."""
        done = run_syncd(self.environ, *args)
        self.outputs += [done.stdout, done.stderr]
        return done

    def assert_no_credential_leaked(self) -> None:
        """No credential in the config, any output or any command line seen (P2)."""
        seen = [self.config.read_text() if self.config.exists() else "", *self.outputs]
        for secret in (SOURCE_TOKEN, HUBSPOT_TOKEN, PIPEDRIVE_TOKEN, SALESFORCE_REFRESH):
            assert not any(secret in text for text in seen), "a credential leaked"


def _cmdlines(pid: int) -> list[str]:
    """The command lines of ``pid`` and its children, sampled until it exits."""
    seen: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pids = [pid]
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            pids += [int(c) for c in children]
            for one in pids:
                seen.append(Path(f"/proc/{one}/cmdline").read_bytes().decode(errors="replace"))
        except (FileNotFoundError, ProcessLookupError):
            break
        if seen and "init" in seen[0]:
            break
        time.sleep(0.01)
    return seen


@pytest.fixture
def init(sandboxes: Sandboxes, tmp_path: Path) -> Iterator[Init]:
    """Throwaway dirs, sandboxes that accept the canary credentials, an empty keyring."""
    sandboxes.reset()
    crm = sandboxes.config["crm"]
    source = sandboxes.config["source"]
    assert isinstance(crm, dict)
    assert isinstance(source, dict)
    urls = {
        "source": str(source["base_url"]),
        "hubspot": str(crm["hubspot"]["base_url"]),
        "pipedrive": str(crm["pipedrive"]["base_url"]),
        "salesforce": str(crm["salesforce"]["login_url"]),
    }
    with SandboxControl(urls["pipedrive"]) as pipedrive:
        pipedrive.set_tokens([PIPEDRIVE_TOKEN])
    with SandboxControl(urls["salesforce"]) as salesforce:
        salesforce.set_tokens([SALESFORCE_REFRESH])
    credential = json.dumps(
        {
            "client_id": SalesforceSandbox.CLIENT_ID,
            "client_secret": SalesforceSandbox.CLIENT_SECRET,
            "refresh_token": SALESFORCE_REFRESH,
        }
    )
    dirs = ThrowawayDirs.make(tmp_path, (*DIRS, "data"))
    data = os.environ.get("XDG_DATA_HOME", str(dirs["data"]))
    environ = dirs.environ(XDG_DATA_HOME=data)
    environ.pop("SYNCD_CONFIG", None)
    for name in NAMES:
        clear(name)
    yield Init(dirs["config"] / "syncd" / "config.toml", environ, urls, credential)
    for name in NAMES:
        clear(name)


def _all_crms(init: Init) -> list[str]:
    args = ["--crm", "hubspot=hubspot", "--crm", "pipedrive=pipedrive"]
    args += ["--crm", "salesforce=salesforce"]
    for name, url in init.urls.items():
        args += ["--base-url", f"{name}={url}"]
    return args


def _lines(**credentials: str) -> str:
    return "".join(f"{name}={value}\n" for name, value in credentials.items())


class TestNonInteractive:
    """`syncd init --non-interactive` with flags and credentials on stdin."""

    def test_writes_a_checked_config_and_stores_every_credential(self, init: Init) -> None:
        """Against the sandboxes: exit 0, a 0600 config that `config check` accepts, and
        every credential in the real keyring, none of them anywhere else."""
        stdin = _lines(
            source=SOURCE_TOKEN,
            hubspot=HUBSPOT_TOKEN,
            pipedrive=PIPEDRIVE_TOKEN,
            salesforce=init.salesforce_credential,
        )
        done = init.run(*_all_crms(init), "--credentials-from-stdin", stdin=stdin)
        assert done.returncode == 0, done.stderr
        assert init.config.stat().st_mode & 0o777 == 0o600
        check = init.syncd("config", "check", "--config", str(init.config))
        assert check.returncode == 0, check.stderr
        assert "hubspot (hubspot), pipedrive (pipedrive), salesforce (salesforce)" in check.stdout
        assert lookup("source") == SOURCE_TOKEN
        assert lookup("hubspot") == HUBSPOT_TOKEN
        assert lookup("pipedrive") == PIPEDRIVE_TOKEN
        assert lookup("salesforce") == init.salesforce_credential
        assert done.stdout.count("accepted by the service") == 4
        data = tomllib.loads(init.config.read_text())
        assert data["crm"]["salesforce"]["login_url"] == init.urls["salesforce"]
        init.assert_no_credential_leaked()

    def test_rejected_credential_is_reported_and_not_stored(self, init: Init) -> None:
        """A token HubSpot refuses: exit 4, a sentence naming hubspot, nothing in the keyring
        for it; the source's credential and the config are still written."""
        stdin = _lines(source=SOURCE_TOKEN, hubspot="canary-wrong-hubspot-token-0000")
        urls = ["--base-url", f"source={init.urls['source']}"]
        urls += ["--base-url", f"hubspot={init.urls['hubspot']}"]
        done = init.run("--crm", "hubspot=hubspot", *urls, "--credentials-from-stdin", stdin=stdin)
        assert done.returncode == 4, done.stderr
        assert "hubspot: the service rejected this credential" in done.stderr
        assert "syncd auth set hubspot" in done.stderr
        assert "canary-wrong-hubspot-token-0000" not in done.stdout + done.stderr
        assert lookup("hubspot") is None
        assert lookup("source") == SOURCE_TOKEN
        assert init.syncd("config", "check", "--config", str(init.config)).returncode == 0
        init.assert_no_credential_leaked()

    def test_missing_information_is_exit_2_and_writes_nothing(self, init: Init) -> None:
        """No CRM and no Pipedrive URL: exit 2, one sentence naming both, no file, no
        credential stored."""
        done = init.run("--credentials-from-stdin", stdin=_lines(source=SOURCE_TOKEN))
        assert done.returncode == 2
        assert "missing a CRM (--crm NAME=TYPE)" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert not init.config.exists()
        assert lookup("source") is None
        done = init.run("--crm", "pd=pipedrive", "--credentials-from-stdin", stdin="")
        assert done.returncode == 2
        assert "the company URL of pd (--base-url pd=URL)" in done.stderr

    def test_rerun_adds_a_crm_and_keeps_the_users_edits(self, init: Init) -> None:
        """Re-running with another CRM keeps a hand-edited [privacy] table and a comment the
        user added, and says what changed."""
        first = ["--crm", "hubspot=hubspot", "--base-url", f"source={init.urls['source']}"]
        first += ["--base-url", f"hubspot={init.urls['hubspot']}", "--credentials-from-stdin"]
        done = init.run(*first, stdin=_lines(source=SOURCE_TOKEN, hubspot=HUBSPOT_TOKEN))
        assert done.returncode == 0, done.stderr
        text = init.config.read_text()
        text = text.replace("blocked_companies = []", 'blocked_companies = ["Rival Corp"]')
        text = text.replace("[privacy]\n", "[privacy]\n# my rule: no competitors\n")
        init.config.write_text(text)
        again = [
            "--crm",
            "pipedrive=pipedrive",
            "--base-url",
            f"pipedrive={init.urls['pipedrive']}",
        ]
        done = init.run(*again, "--credentials-from-stdin", stdin=_lines(pipedrive=PIPEDRIVE_TOKEN))
        assert done.returncode == 0, done.stderr
        assert "added [crm.pipedrive]" in done.stdout
        assert "kept [daemon], [match], [privacy]" in done.stdout
        new = init.config.read_text()
        assert "# my rule: no competitors" in new
        data = tomllib.loads(new)
        assert data["privacy"]["blocked_companies"] == ["Rival Corp"]
        assert set(data["crm"]) == {"hubspot", "pipedrive"}
        assert lookup("pipedrive") == PIPEDRIVE_TOKEN
        assert lookup("hubspot") == HUBSPOT_TOKEN
        init.assert_no_credential_leaked()

    def test_no_check_stores_without_asking(self, init: Init) -> None:
        """With --no-check a credential the service would refuse is stored, and said so."""
        stdin = _lines(source=SOURCE_TOKEN, hubspot="canary-unchecked-token-1111")
        args = ["--crm", "hubspot=hubspot", "--base-url", f"hubspot={init.urls['hubspot']}"]
        done = init.run(*args, "--no-check", "--credentials-from-stdin", stdin=stdin)
        assert done.returncode == 0, done.stderr
        assert "not checked (--no-check)" in done.stdout
        assert lookup("hubspot") == "canary-unchecked-token-1111"

    def test_help_ends_with_an_example(self, init: Init) -> None:
        """`syncd init --help` ends with a runnable example that pipes the credentials."""
        done = init.syncd("init", "--help")
        last = done.stdout.strip().splitlines()[-1]
        assert "syncd init --non-interactive" in last
        assert "--credentials-from-stdin" in last


class Terminal:
    """`syncd init` on a pseudo-terminal: wait for a prompt, type an answer."""

    def __init__(self, argv: list[str], environ: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its controlling terminal
            os.execvpe(argv[0], argv, environ)  # noqa: S606 - our own CLI, argv from the test
        self.screen = ""
        #: Where the next expect starts looking: a prompt asked twice is waited for twice.
        self._seen = 0

    def expect(self, text: str, timeout: float = 60) -> None:
        """Wait for ``text`` after what the last expect matched (a hidden prompt turns
        echo off before it shows, so typing after it never reaches the screen)."""
        deadline = time.monotonic() + timeout
        while text not in self.screen[self._seen :]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} on the terminal; it shows:\n{self.screen}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"init ended before {text!r}:\n{self.screen}")
                self.screen += chunk.decode(errors="replace")
        self._seen = self.screen.index(text, self._seen) + len(text)

    def type(self, answer: str) -> None:
        os.write(self.fd, answer.encode() + b"\r")

    def wait(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if ready:
                    self.screen += os.read(self.fd, 4096).decode(errors="replace")
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"init did not end:\n{self.screen}")


class TestInteractive:
    """The questions on a real (pseudo-)terminal."""

    def test_guided_run_retries_a_rejected_token_and_never_echoes(self, init: Init) -> None:
        """Typed answers make a working config; a rejected token is said and typed again;
        no credential is echoed on the terminal."""
        argv = syncd_argv("init", "--config", str(init.config))
        term = Terminal(argv, init.environ)
        term.expect("The source's API URL")
        term.type(init.urls["source"])
        term.expect("Credential for source")
        term.type(SOURCE_TOKEN)
        term.expect("accepted the credential")
        term.expect("Add a CRM")
        term.type("hubspot")
        term.expect("instance name")
        term.type("")
        term.expect("HubSpot data centre")
        term.type(init.urls["hubspot"])
        term.expect("Credential for hubspot")
        term.type("canary-typo-hubspot-token-2222")
        term.expect("rejected this credential")
        term.expect("Credential for hubspot")
        term.type(HUBSPOT_TOKEN)
        term.expect("hubspot: 127.0.0.1 accepted the credential")
        term.expect("Add a CRM")
        term.type("")
        code = term.wait()
        assert code == 0, term.screen
        assert "OK" in term.screen
        assert "canary-typo-hubspot-token-2222" not in term.screen
        init.outputs.append(term.screen)
        init.assert_no_credential_leaked()
        assert lookup("hubspot") == HUBSPOT_TOKEN
        assert lookup("source") == SOURCE_TOKEN
        assert init.config.stat().st_mode & 0o777 == 0o600
