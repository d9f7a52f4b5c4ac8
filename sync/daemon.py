"""`syncd run`: one task group that owns the control server, the workers and the signals."""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from importlib.metadata import PackageNotFoundError, version

import anyio
import structlog
from anyio import CancelScope
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskStatus

from sync.asgi import serve
from sync.config import Config
from sync.control.server import build_app
from sync.control.sockets import (
    ControlSocketLost,
    OwnerOnlyProtocol,
    bind_control_socket,
    keep_control_socket,
)
from sync.donotsync import DoNotSync
from sync.follow import Follower
from sync.instances import ClientFactory, Instances, TransportFactory
from sync.journal import Journal
from sync.notify import Notifier
from sync.relay import Relay
from sync.retry import RetryPolicy
from sync.rights import Rights
from sync.secrets import TokenStore
from sync.state import DaemonState, Selection

log = structlog.get_logger("syncd.daemon")

#: Selections accepted but not yet taken by a worker; beyond it, POST waits (backpressure).
QUEUE_LIMIT = 1000
#: Selections relayed at once. A selection holds its worker until every CRM answered, so
#: this bounds how full a batch can get: enough for the largest batch (Salesforce's 200)
#: while the next ones are read from the source (those reads are capped apart, by
#: ``sync.relay.SOURCE_READS``). A crash counts against each of them (sync/journal.py).
WORKERS = 256
#: How long SIGTERM lets in-flight selections finish before the rest is left to the journal.
DRAIN_SECONDS = 10.0

try:
    VERSION = version("syncd")
except PackageNotFoundError:  # running from a checkout that was never installed
    VERSION = "0.0.0+checkout"


@dataclass(frozen=True, slots=True)
class DaemonHandle:
    """What the owner of a running daemon may use: its state and ways to stop it."""

    state: DaemonState
    scope: CancelScope
    stopping: anyio.Event

    def stop(self) -> None:
        """Stop the daemon as SIGTERM would: drain what is in flight, keep the rest."""
        self.stopping.set()

    def kill(self) -> None:
        """Stop at once, as a crash would (what was accepted stays in the journal)."""
        self.scope.cancel()


class _Workers:
    """The relay workers: take selections from the queue until told to stop taking."""

    def __init__(self, relay: Relay, rights: Rights, state: DaemonState, journal: Journal) -> None:
        self._relay = relay
        self._rights = rights
        self._state = state
        self._journal = journal
        self._intake: set[CancelScope] = set()
        self._stopped = False
        self._idle = anyio.Event()

    async def run(self, receive: ObjectReceiveStream[Selection]) -> None:
        async with receive:
            while not self._stopped:
                with CancelScope() as intake:
                    self._intake.add(intake)
                    try:
                        selection = await receive.receive()
                        await self._state.wait_resumed()
                    except anyio.EndOfStream:
                        return
                    finally:
                        self._intake.discard(intake)
                if intake.cancel_called:
                    return  # draining: what was not taken stays in the journal
                if not self._state.take(selection.id):
                    continue  # the user cancelled it while it waited
                self._state.busy += 1
                self._journal.started(selection.id)  # from here, a crash counts against it
                try:
                    if selection.action == "forget":
                        outcomes = await self._rights.forget(selection)
                    else:
                        outcomes = await self._relay.process(selection)
                    await self._journal.done(selection.id)  # before anyone is told "done"
                    self._state.finish(selection.id, outcomes)
                finally:
                    self._state.busy -= 1
                    if self._stopped and not self._state.busy:
                        self._idle.set()

    def stop_taking(self) -> None:
        """Take nothing more from the queue; what is in flight goes on."""
        self._stopped = True
        for intake in list(self._intake):
            intake.cancel()
        if not self._state.busy:
            self._idle.set()

    async def idle(self) -> None:
        """Return once nothing is in flight (after :meth:`stop_taking`)."""
        await self._idle.wait()


async def _replay(
    selections: list[Selection],
    queue: ObjectSendStream[Selection],
    state: DaemonState,
    journal: Journal,
    configured: Mapping[str, object],
) -> None:
    """Queue what an earlier run accepted and did not finish (blocking as the queue fills)."""
    async with queue:
        for selection in selections:
            targets = tuple(t for t in selection.targets if t in configured)
            if not targets:  # its CRMs were removed from the config since
                log.warning("journal.dropped", selection_id=selection.id)
                await journal.done(selection.id)
                continue
            selection = replace(selection, targets=targets)
            state.track(selection)
            await queue.send(selection)


async def _feed_backlog(queue: ObjectSendStream[Selection], state: DaemonState) -> None:
    """Move what the API could not queue at once into the queue, in order, as room frees."""
    async with queue:
        while True:
            await state.backlog_ready.wait()
            while state.backlog:
                await queue.send(state.backlog[0])
                state.backlog.popleft()
            state.backlog_ready = anyio.Event()


async def _watch_signals(stopping: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for received in signals:
            log.info("daemon.stopping", code=signal.Signals(received).name)
            stopping.set()
            return


async def run_daemon(
    config: Config,
    store: TokenStore,
    *,
    retry: RetryPolicy | None = None,
    transport: TransportFactory | None = None,
    clients: ClientFactory | None = None,
    handle_signals: bool = True,
    drain_seconds: float = DRAIN_SECONDS,
    follow_sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    task_status: TaskStatus[DaemonHandle] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control API and relay selections until a signal or ``handle.stop()``.

    Stopping is graceful: the control socket closes first (nothing new is accepted), the
    workers stop taking from the queue, what is in flight gets ``drain_seconds`` to finish,
    and whatever is left is in the journal for the next start.
    """
    notify = Notifier.from_environ()  # None unless a service manager asked (Type=notify)
    control = bind_control_socket(config.daemon.socket)
    try:
        journal = await Journal.open(config.daemon.journal_path(), store)
        blocked = await DoNotSync.open(config.daemon.do_not_sync_path(), store)
    except BaseException:
        control.remove()
        raise
    state = DaemonState(list(config.crms), VERSION)
    instances = Instances(
        config,
        store,
        retry=retry,
        transport=transport,
        clients=clients,
        observer=state.observe_retry,
    )
    state.do_not_sync_count = blocked.__len__
    relay = Relay(instances, config.privacy, state, blocked)
    rights = Rights(relay, instances, blocked)
    follower = Follower(relay, instances, blocked, config.follow, sleep=follow_sleep)
    state.follow_status = follower.status
    workers = _Workers(relay, rights, state, journal)
    send, receive = anyio.create_memory_object_stream[Selection](max_buffer_size=QUEUE_LIMIT)
    app = build_app(
        state, send, config.crms, relay.check, journal=journal, rights=rights, follower=follower
    )
    stopping = anyio.Event()
    lost: list[ControlSocketLost] = []
    try:
        async with send, receive, anyio.create_task_group() as tg:
            await tg.start(relay.run)
            server = await tg.start(
                partial(serve, app, control.sock, http_protocol=OwnerOnlyProtocol)
            )
            serve_on = partial(serve, app, http_protocol=OwnerOnlyProtocol)
            tg.start_soon(
                partial(keep_control_socket, control, serve_on, stopping, lost=lost.append)
            )
            for _ in range(WORKERS):
                tg.start_soon(workers.run, receive.clone())
            replayed = await journal.replay()
            state.journal_damaged = [p.name for p in replayed.damaged]
            state.journal_set_aside = len(replayed.set_aside)
            state.journal_dir = str(journal.directory)
            state.journal_problem = journal.problem
            tg.start_soon(journal.retry_saves)
            tg.start_soon(_replay, replayed.selections, send.clone(), state, journal, config.crms)
            tg.start_soon(_feed_backlog, send.clone(), state)
            await tg.start(follower.run)
            if handle_signals:
                tg.start_soon(_watch_signals, stopping)
            log.info("daemon.started", pid=os.getpid(), version=VERSION)
            if notify is not None:  # READY=1 only now: the control server started above
                await tg.start(notify.run, state.status)
            task_status.started(DaemonHandle(state, tg.cancel_scope, stopping))
            await stopping.wait()
            if notify is not None:
                notify.stopping()
            server.should_exit = True  # no new requests; the socket goes now
            control.remove()
            workers.stop_taking()
            with anyio.move_on_after(drain_seconds):
                await workers.idle()
            log.info("daemon.drained", left_in_journal=journal.pending())
            journal.close()  # a clean stop: what was cut short counts as no interruption
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await instances.aclose()
        control.remove()
        log.info("daemon.stopped", pid=os.getpid())
    if lost:
        raise lost[0]  # after a clean drain: exit 1, so a service manager starts it again
