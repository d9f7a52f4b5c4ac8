"""The connector instances of one config, built on first use from the keyring.

A credential is read when an instance is first needed, and again after the service
rejected it, so `syncd auth set NAME` takes effect without restarting the daemon.
Access tokens obtained by a refresh live inside the client objects, in memory only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import cast

import anyio
import httpx
import structlog

from connectors import registry
from connectors.base import CRM, ConnectorSettings, Source
from sync.config import Config
from sync.errors import AuthError, SyncdError, UsageError
from sync.retry import RetryEvent, RetryObserver, RetryPolicy
from sync.secrets import TokenStore

log = structlog.get_logger("syncd.instances")

TransportFactory = Callable[[ConnectorSettings], httpx.AsyncBaseTransport | None]
#: Builds the client of one instance from its settings and credential. The default loads the
#: connector named by the config's ``type``; tests pass one that builds memory clients.
ClientFactory = Callable[[ConnectorSettings, str], Source | CRM]


class Instances:
    """Builds, caches and closes the source and CRM clients of one config."""

    def __init__(
        self,
        config: Config,
        store: TokenStore,
        *,
        retry: RetryPolicy | None = None,
        transport: TransportFactory | None = None,
        clients: ClientFactory | None = None,
        observer: RetryObserver | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._retry = _observed(retry or RetryPolicy(), observer)
        self._transport = transport or (lambda _settings: None)
        self._build = clients or self._from_registry
        self._clients: dict[str, Source | CRM] = {}
        self._lock = anyio.Lock()

    @property
    def crm_names(self) -> list[str]:
        """The configured CRM instance names, in config order."""
        return list(self._config.crms)

    def batch_size(self, name: str) -> int:
        """The most people one write call to CRM instance ``name`` takes."""
        try:
            return registry.info(self._config.crms[name].type).batch_size
        except KeyError:  # a type outside the registry (the test rig's memory CRM)
            return 100

    @property
    def source_type(self) -> str:
        """The source's connector type (where people come from), e.g. "linkedin"."""
        return self._config.source.type

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy every client of this config shares (with its observer)."""
        return self._retry

    async def source(self) -> Source:
        """The source client."""
        return cast(Source, await self._get(self._config.source))

    async def crm(self, name: str) -> CRM:
        """The CRM client of instance ``name``."""
        try:
            settings = self._config.crms[name]
        except KeyError:
            raise UsageError(f"no CRM named {name!r} in the config") from None
        return cast(CRM, await self._get(settings))

    async def invalidate(self, name: str) -> None:
        """Drop a client whose credential was rejected; the next use reads the keyring again."""
        client = self._clients.pop(name, None)
        if client is not None:
            await _close(name, client)

    async def aclose(self) -> None:
        """Close every client."""
        clients, self._clients = self._clients, {}
        for name, client in clients.items():
            await _close(name, client)

    async def _get(self, settings: ConnectorSettings) -> Source | CRM:
        async with self._lock:
            client = self._clients.get(settings.instance)
            if client is None:
                credential = await self._credential(settings.instance)
                client = self._build(settings, credential)
                self._clients[settings.instance] = client
            return client

    async def _credential(self, name: str) -> str:
        """The credential of ``name``; an AuthError naming it when the store cannot say."""
        try:
            credential = await anyio.to_thread.run_sync(self._store.get, name)
        except SyncdError as error:
            if isinstance(error, AuthError) and name in str(error):
                raise
            raise AuthError(name, f"cannot read the credential of {name}: {error}") from error
        except Exception as error:  # a keyring backend's own errors (locked, D-Bus gone)
            log.warning("credential.unreadable", instance=name, error_type=type(error).__name__)
            raise AuthError(
                name,
                f"cannot read the credential of {name} from the keyring (it is locked or its "
                "service went away); unlock it and syncd uses it with the next selection",
            ) from None
        if not credential:
            raise AuthError(
                name, f"no credential for {name}; store one with `syncd auth set {name}`"
            )
        return credential

    def _from_registry(self, settings: ConnectorSettings, credential: str) -> Source | CRM:
        factory = registry.load(registry.info(settings.type).client)
        client: Source | CRM = factory(
            settings, credential, transport=self._transport(settings), retry=self._retry
        )
        return client


async def _close(name: str, client: Source | CRM) -> None:
    """Close ``client``; one that fails to close is dropped all the same."""
    try:
        await client.aclose()
    except Exception as error:  # a half-broken client must not stop the caller
        log.warning("client.close_failed", instance=name, error_type=type(error).__name__)


def _observed(policy: RetryPolicy, observer: RetryObserver | None) -> RetryPolicy:
    """``policy`` that also tells ``observer`` of each retry (after any observer it had)."""
    if observer is None:
        return policy
    first = policy.observer
    if first is None:
        return replace(policy, observer=observer)

    def both(event: RetryEvent) -> None:
        first(event)
        observer(event)

    return replace(policy, observer=both)
