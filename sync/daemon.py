"""`syncd run`: one task group that owns the control server, the workers and the signals."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from functools import partial
from importlib.metadata import PackageNotFoundError, version

import anyio
import structlog
from anyio import CancelScope
from anyio.abc import ObjectReceiveStream, TaskStatus

from connectors._http import RetryPolicy
from sync.asgi import serve
from sync.config import Config
from sync.control.server import build_app
from sync.control.sockets import OwnerOnlyProtocol, bind_control_socket
from sync.instances import Instances, TransportFactory
from sync.relay import Relay
from sync.secrets import TokenStore
from sync.state import DaemonState, Selection

log = structlog.get_logger("syncd.daemon")

#: Selections accepted but not yet taken by a worker; beyond it, POST waits (backpressure).
QUEUE_LIMIT = 1000
WORKERS = 8

try:
    VERSION = version("syncd")
except PackageNotFoundError:  # running from a checkout that was never installed
    VERSION = "0.0.0+checkout"


@dataclass(frozen=True, slots=True)
class DaemonHandle:
    """What the owner of a running daemon may use: its state and a way to stop it."""

    state: DaemonState
    scope: CancelScope

    def stop(self) -> None:
        """Stop the daemon as SIGTERM would."""
        self.scope.cancel()


async def _worker(
    receive: ObjectReceiveStream[Selection], relay: Relay, state: DaemonState
) -> None:
    async with receive:
        async for selection in receive:
            await state.wait_resumed()
            state.busy += 1
            try:
                outcomes = await relay.process(selection)
            finally:
                state.busy -= 1
            state.finish(selection.id, outcomes)


async def _watch_signals(scope: CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for received in signals:
            log.info("daemon.stopping", code=signal.Signals(received).name)
            scope.cancel()
            return


async def run_daemon(
    config: Config,
    store: TokenStore,
    *,
    retry: RetryPolicy | None = None,
    transport: TransportFactory | None = None,
    handle_signals: bool = True,
    task_status: TaskStatus[DaemonHandle] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control API and relay selections until a signal or ``handle.stop()``."""
    control = bind_control_socket(config.daemon.socket)
    state = DaemonState(list(config.crms), VERSION)
    instances = Instances(config, store, retry=retry, transport=transport)
    relay = Relay(instances, config.privacy, state)
    send, receive = anyio.create_memory_object_stream[Selection](max_buffer_size=QUEUE_LIMIT)
    app = build_app(state, send, config.crms, relay.check)
    try:
        async with send, receive, anyio.create_task_group() as tg:
            await tg.start(relay.run)
            await tg.start(partial(serve, app, control.sock, http_protocol=OwnerOnlyProtocol))
            for _ in range(WORKERS):
                tg.start_soon(_worker, receive.clone(), relay, state)
            if handle_signals:
                tg.start_soon(_watch_signals, tg.cancel_scope)
            log.info("daemon.started", pid=os.getpid(), version=VERSION)
            task_status.started(DaemonHandle(state, tg.cancel_scope))
    finally:
        with anyio.CancelScope(shield=True):
            await instances.aclose()
        control.remove()
        log.info("daemon.stopped", pid=os.getpid())
