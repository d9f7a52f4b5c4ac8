"""The notify protocol (READY, STATUS, WATCHDOG, STOPPING) of the real daemon, in process,
received on a datagram socket the test owns, as systemd's would for a ``Type=notify`` unit."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

import sync.daemon
from sync.asgi import serve
from sync.control.client import ControlClient
from sync.errors import SyncdError
from sync.notify import Notifier, status_line
from sync.secrets import MemoryTokenStore
from tests.inprocess import CRMS, Machine

#: How long the probe sent on READY may wait for the control API's answer.
PROBE_S = 0.5
#: How long the slow-start variant holds the control server back: longer than PROBE_S, so
#: a READY sent before the server started finds a socket that does not answer in time.
HOLD_S = 1.5
CANARY_TOKENS = {
    "source": "canary-src-notify-5c2e81",
    **{name: f"canary-{name}-notify-93af0d" for name in CRMS},
}
#: Person data of rig.memory_crm.numbered_person(1): none of it may reach a status line.
CANARY_PEOPLE = ("person-1", "First1", "Last1", "work.example", "Engines", "urn:li:member")


@dataclass
class Datagram:
    """One message the daemon sent, when it arrived, and (for READY) what the probe saw."""

    at: float
    text: str
    probe: str | None = None

    def lines(self) -> list[str]:
        return self.text.splitlines()


@dataclass
class Listener:
    """A notify socket the test owns; on READY it asks the daemon for its status at once."""

    address: str
    sock: socket.socket
    control: Path | None = None
    received: list[Datagram] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _stop: threading.Event = field(default_factory=threading.Event)

    def serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                raw = self.sock.recv(4096)
            except TimeoutError:
                continue
            datagram = Datagram(time.monotonic(), raw.decode())
            if "READY=1" in datagram.lines() and self.control is not None:
                datagram.probe = self._probe(self.control)
            with self._changed:
                self.received.append(datagram)
                self._changed.notify_all()

    @staticmethod
    def _probe(control: Path) -> str:
        """The state the control API gives right now, or why it gave none in time."""
        try:
            answer = ControlClient(control, timeout=PROBE_S).call("GET", "/v1/status")
        except (SyncdError, OSError) as error:
            return f"no answer: {type(error).__name__}: {error}"
        return f"answered: {answer['state']}"

    def wait_for(self, line: str, timeout: float = 10.0) -> Datagram:
        """The first datagram with a line starting with ``line`` (waits for it)."""

        def found() -> Datagram | None:
            return next(
                (d for d in self.received if any(x.startswith(line) for x in d.lines())), None
            )

        with self._changed:
            self._changed.wait_for(lambda: found() is not None, timeout)
            datagram = found()
        assert datagram is not None, f"no {line!r} within {timeout} s: {self.texts()}"
        return datagram

    def texts(self) -> list[str]:
        with self._changed:
            return [d.text for d in self.received]

    def lines_starting(self, prefix: str) -> list[tuple[float, str]]:
        with self._changed:
            return [(d.at, x) for d in self.received for x in d.lines() if x.startswith(prefix)]


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    """A datagram socket in a short temp dir (sun_path is short), set as NOTIFY_SOCKET."""
    directory = tempfile.mkdtemp(prefix="syncd-notify-")
    path = os.path.join(directory, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    ears = Listener(path, sock)
    thread = threading.Thread(target=ears.serve, name="notify-listener")
    thread.start()
    try:
        yield ears
    finally:
        ears._stop.set()
        thread.join()
        sock.close()
        shutil.rmtree(directory)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    made = Machine.make(tmp_path)
    made.store = MemoryTokenStore(dict(CANARY_TOKENS))
    return made


class TestReady:
    """READY=1 comes once the control socket serves, never before."""

    @pytest.mark.parametrize(
        "slow", [pytest.param(False, id="plain"), pytest.param(True, id="slow-server-start")]
    )
    async def test_ready_arrives_when_the_control_api_already_answers(
        self,
        machine: Machine,
        listener: Listener,
        monkeypatch: pytest.MonkeyPatch,
        slow: bool,
    ) -> None:
        """At the moment READY=1 is read, GET /v1/status answers at once, even when the
        control server takes a while to start after its socket is bound."""
        if slow:

            async def slow_serve(*args: object, **kwargs: object) -> None:
                await anyio.sleep(HOLD_S)  # the socket is bound and listening, not served
                await serve(*args, **kwargs)  # type: ignore[arg-type]

            monkeypatch.setattr(sync.daemon, "serve", slow_serve)
        listener.control = machine.config.daemon.socket
        async with machine.daemon():
            ready = await anyio.to_thread.run_sync(listener.wait_for, "READY=1")
        assert ready.probe == "answered: idle"
        assert "STATUS=idle" in ready.lines()

    async def test_ready_is_sent_once(self, machine: Machine, listener: Listener) -> None:
        """One READY=1 per run, whatever else is sent after it."""
        async with machine.daemon() as running:
            await running.add("person-1")
        await anyio.to_thread.run_sync(listener.wait_for, "STOPPING=1")
        assert len(listener.lines_starting("READY=")) == 1


class TestWatchdog:
    """WATCHDOG=1 at half of WATCHDOG_USEC, only for the process it is meant for."""

    async def test_pings_arrive_at_half_the_interval(
        self, machine: Machine, listener: Listener, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With WATCHDOG_USEC=200000 the pings come every 0.1 s over a one-second window."""
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        async with machine.daemon():
            await anyio.sleep(1.0)  # the window the pings are counted over
        pings = [at for at, _ in listener.lines_starting("WATCHDOG=1")]
        assert 7 <= len(pings) <= 13, pings
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert 0.07 <= statistics.median(gaps) <= 0.14, gaps

    @pytest.mark.parametrize(
        ("usec", "pid"),
        [
            pytest.param(None, None, id="no-watchdog"),
            pytest.param("200000", "1", id="meant-for-another-process"),
            pytest.param("0", None, id="zero"),
        ],
    )
    async def test_no_pings_when_the_watchdog_is_not_ours(
        self,
        machine: Machine,
        listener: Listener,
        monkeypatch: pytest.MonkeyPatch,
        usec: str | None,
        pid: str | None,
    ) -> None:
        """No WATCHDOG=1 without WATCHDOG_USEC, or when WATCHDOG_PID names another process."""
        if usec is not None:
            monkeypatch.setenv("WATCHDOG_USEC", usec)
        if pid is not None:
            monkeypatch.setenv("WATCHDOG_PID", pid)
        async with machine.daemon():
            await anyio.sleep(0.5)  # five would-be pings
        await anyio.to_thread.run_sync(listener.wait_for, "STOPPING=1")
        assert listener.lines_starting("WATCHDOG=") == []

    async def test_pings_stop_when_the_event_loop_is_stuck(
        self, machine: Machine, listener: Listener, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A loop blocked for 0.6 s sends no ping meanwhile: the pings come from the loop."""
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        async with machine.daemon():
            await anyio.sleep(0.3)
            blocked = time.monotonic()
            time.sleep(0.6)  # noqa: ASYNC251 - the point: a stuck event loop
            unblocked = time.monotonic()
            await anyio.sleep(0.3)
        pings = [at for at, _ in listener.lines_starting("WATCHDOG=1")]
        assert not [at for at in pings if blocked + 0.05 < at < unblocked - 0.05], pings
        assert any(at > unblocked for at in pings)


class TestStatusAndStopping:
    """STATUS= lines follow the state without a person's data; STOPPING=1 starts a stop."""

    async def test_stopping_is_sent_when_a_stop_begins(
        self, machine: Machine, listener: Listener
    ) -> None:
        """handle.stop() (as SIGTERM) sends STOPPING=1 before the daemon exits."""
        async with machine.daemon():
            await anyio.to_thread.run_sync(listener.wait_for, "READY=1")
            assert listener.lines_starting("STOPPING=") == []
        stopping = await anyio.to_thread.run_sync(listener.wait_for, "STOPPING=1")
        assert "STATUS=stopping" in stopping.lines()

    async def test_status_names_the_crm_that_needs_attention_and_no_one(
        self, machine: Machine, listener: Listener
    ) -> None:
        """A rejected HubSpot credential shows as "attention: hubspot auth"; no status line
        holds a token or anything of the person relayed."""
        machine.crms["hubspot"].reject(CANARY_TOKENS["hubspot"])
        async with machine.daemon() as running:
            (selection,) = await running.add("person-1")
            await running.outcome(selection)
            await anyio.to_thread.run_sync(listener.wait_for, "STATUS=attention")
        await anyio.to_thread.run_sync(listener.wait_for, "STOPPING=1")
        lines = [text for _, text in listener.lines_starting("STATUS=")]
        assert "STATUS=attention: hubspot auth" in lines
        everything = "\n".join(listener.texts())
        for canary in (*CANARY_TOKENS.values(), *CANARY_PEOPLE):
            assert canary not in everything

    @pytest.mark.parametrize(
        ("status", "line"),
        [
            pytest.param({"state": "idle", "queue": 0}, "idle", id="idle"),
            pytest.param({"state": "syncing", "queue": 3}, "3 pending", id="syncing"),
            pytest.param({"state": "paused", "queue": 2}, "paused, 2 pending", id="paused"),
            pytest.param(
                {
                    "state": "attention",
                    "queue": 1,
                    "source": {"health": "ok"},
                    "crms": {"hubspot": {"health": "auth"}, "pipedrive": {"health": "ok"}},
                    "journal": {"note": "the journal's disk refuses writes"},
                },
                "attention: hubspot auth, journal; 1 pending",
                id="attention",
            ),
        ],
    )
    def test_status_line_is_short_and_made_of_states(
        self, status: dict[str, object], line: str
    ) -> None:
        """Each daemon state gives one short line of states, counts and instance names."""
        assert status_line(status) == line


class TestNotifier:
    """The sender alone: where it sends, and that it stays silent without NOTIFY_SOCKET."""

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(None, id="unset"),
            pytest.param("", id="empty"),
            pytest.param("relative/notify.sock", id="relative"),
            pytest.param("vsock:2:1234", id="vsock"),
        ],
    )
    def test_no_notifier_without_a_usable_socket(self, value: str | None) -> None:
        """Without NOTIFY_SOCKET (or with one syncd cannot use) there is nothing to send."""
        environ = {} if value is None else {"NOTIFY_SOCKET": value}
        assert Notifier.from_environ(environ) is None

    def test_an_abstract_socket_is_reached(self) -> None:
        """NOTIFY_SOCKET=@name reaches the abstract socket of that name."""
        name = f"syncd-test-{os.getpid()}-{time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(b"\0" + name.encode())
            sock.settimeout(5)
            notifier = Notifier.from_environ({"NOTIFY_SOCKET": f"@{name}"})
            assert notifier is not None
            assert notifier.send("READY=1")
            assert sock.recv(100) == b"READY=1"

    def test_a_gone_manager_is_logged_once_and_not_raised(self, tmp_path: Path) -> None:
        """Sending to a socket nobody binds returns False and never raises."""
        from structlog.testing import capture_logs

        notifier = Notifier(str(tmp_path / "gone.sock"), None)
        with capture_logs() as logs:
            assert not notifier.send("WATCHDOG=1")
            assert not notifier.send("WATCHDOG=1")
        assert [entry["event"] for entry in logs] == ["notify.failed"]
