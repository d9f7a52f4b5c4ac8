"""Only the socket's owner may talk to the daemon: the peer's uid is read from the kernel on
the socket asyncio hands the protocol, and any other uid is hung up on and logged."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from asyncio.trsock import TransportSocket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from sync import log
from sync.asgi import serve
from sync.control.server import build_app
from sync.control.sockets import OwnerOnlyProtocol, bind_control_socket, peer_uid
from sync.state import DaemonState, Selection

STATUS_REQUEST = b"GET /v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
OTHER_UID = 65534


async def _no_check(public_id: str, targets: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {}


class _ExpectsAnotherOwner(OwnerOnlyProtocol):
    """The protocol as a daemon run by someone else would see us."""

    def owner(self) -> int:
        return os.getuid() + 1


@asynccontextmanager
async def control_server(
    path: Path, protocol: type[OwnerOnlyProtocol] = OwnerOnlyProtocol
) -> AsyncIterator[None]:
    """The real control API served on a freshly bound control socket at ``path``."""
    control = bind_control_socket(path)
    send, receive = anyio.create_memory_object_stream[Selection](10)
    app = build_app(DaemonState(["hubspot"], "test"), send, {"hubspot": object()}, _no_check)
    try:
        async with send, receive, anyio.create_task_group() as tg:
            server = await tg.start(partial(serve, app, control.sock, http_protocol=protocol))
            yield
            server.should_exit = True
    finally:
        control.remove()


async def ask_status(path: Path) -> bytes:
    """Whatever the server sends back to one status request before it closes."""
    answer = b""
    async with await anyio.connect_unix(str(path)) as stream:
        try:
            await stream.send(STATUS_REQUEST)
            while True:
                answer += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return answer


class TestPeerUid:
    """The uid extraction works on the socket types the daemon meets."""

    def test_reads_own_uid_on_a_socketpair(self) -> None:
        """Both ends of a real Unix socketpair report this process's uid."""
        left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with left, right:
            assert peer_uid(left) == os.getuid()
            assert peer_uid(right) == os.getuid()

    def test_reads_it_through_asyncio_transport_socket(self) -> None:
        """The TransportSocket wrapper asyncio gives protocols answers the same."""
        left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with left, right:
            assert peer_uid(TransportSocket(left)) == os.getuid()

    def test_a_closed_socket_raises(self) -> None:
        """A socket the OS cannot answer for raises OSError (the protocol then refuses)."""
        left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        right.close()
        left.close()
        with pytest.raises(OSError):  # noqa: PT011 - EBADF, whichever errno the OS picks
            peer_uid(left)


class TestOwnerOnlyProtocol:
    """The protocol wired into the real control server decides by the peer's uid."""

    async def test_owner_gets_an_answer(self, tmp_path: Path) -> None:
        """The socket's owner gets 200 from /v1/status."""
        path = tmp_path / "run" / "syncd.sock"
        async with control_server(path):
            answer = await ask_status(path)
        assert answer.startswith(b"HTTP/1.1 200")

    async def test_another_uid_is_hung_up_on_and_logged(self, tmp_path: Path) -> None:
        """A peer whose uid is not the owner's gets no answer, and its uid is logged."""
        path = tmp_path / "run" / "syncd.sock"
        with log.capture() as entries:
            async with control_server(path, _ExpectsAnotherOwner):
                answer = await ask_status(path)
        assert answer == b""
        assert {"event": "control.peer_refused", "uid": os.getuid(), "log_level": "warning"} in [
            {k: e.get(k) for k in ("event", "uid", "log_level")} for e in entries
        ]


@pytest.mark.skipif(os.geteuid() != 0, reason="connecting as another uid needs root")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is missing")
class TestAnotherUid:
    """With every mode loosened, a client running as another uid is still refused."""

    async def test_uid_65534_is_refused_and_owner_is_not(self) -> None:
        """uid 65534 reaches the socket but gets no answer; root, the owner, gets 200."""
        base = Path(tempfile.mkdtemp(dir="/tmp"))  # not under pytest's 0700 basetemp
        path = base / "run" / "syncd.sock"
        curl = ["curl", "-sS", "--max-time", "20", "--unix-socket", str(path)]
        curl += ["-o", "/dev/null", "-w", "%{http_code}", "http://localhost/v1/status"]
        as_other = ["setpriv", "--reuid", str(OTHER_UID), "--regid", str(OTHER_UID)]
        as_other += ["--clear-groups"]
        try:
            with log.capture() as entries:
                async with control_server(path):
                    for loosened in (base, path.parent, path):
                        loosened.chmod(0o777)
                    other = await anyio.run_process([*as_other, *curl], check=False)
                    owner = await anyio.run_process(curl, check=False)
        finally:
            shutil.rmtree(base)
        # The server hangs up at once: curl says 52 (empty reply) or 56 (reset), or 7 when the
        # hang-up beats its connect check. The logged uid proves the connection reached the
        # server, so the loosened modes let it through and the uid check refused it.
        assert other.returncode in (7, 52, 56), other.stderr
        assert other.stdout == b"000"
        assert owner.returncode == 0, owner.stderr
        assert owner.stdout == b"200"
        refused = [e for e in entries if e.get("event") == "control.peer_refused"]
        assert [e["uid"] for e in refused] == [OTHER_UID]
