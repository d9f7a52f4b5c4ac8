"""The connector instances of one config, built on first use from the keyring.

A credential is read when an instance is first needed, and again after the service
rejected it, so `syncd auth set NAME` takes effect without restarting the daemon.
Access tokens obtained by a refresh live inside the client objects, in memory only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx

from connectors import registry
from connectors.base import CRM, ConnectorSettings, Source
from sync.config import Config
from sync.errors import AuthError, UsageError
from sync.retry import RetryPolicy
from sync.secrets import TokenStore

TransportFactory = Callable[[ConnectorSettings], httpx.AsyncBaseTransport | None]


class Instances:
    """Builds, caches and closes the source and CRM clients of one config."""

    def __init__(
        self,
        config: Config,
        store: TokenStore,
        *,
        retry: RetryPolicy | None = None,
        transport: TransportFactory | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._retry = retry or RetryPolicy()
        self._transport = transport or (lambda _settings: None)
        self._clients: dict[str, Any] = {}
        self._lock = anyio.Lock()

    @property
    def crm_names(self) -> list[str]:
        """The configured CRM instance names, in config order."""
        return list(self._config.crms)

    async def source(self) -> Source:
        """The source client."""
        client: Source = await self._get(self._config.source)
        return client

    async def crm(self, name: str) -> CRM:
        """The CRM client of instance ``name``."""
        try:
            settings = self._config.crms[name]
        except KeyError:
            raise UsageError(f"no CRM named {name!r} in the config") from None
        client: CRM = await self._get(settings)
        return client

    async def invalidate(self, name: str) -> None:
        """Drop a client whose credential was rejected; the next use reads the keyring again."""
        client = self._clients.pop(name, None)
        if client is not None:
            await client.aclose()

    async def aclose(self) -> None:
        """Close every client."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    async def _get(self, settings: ConnectorSettings) -> Any:
        async with self._lock:
            client = self._clients.get(settings.instance)
            if client is None:
                credential = await anyio.to_thread.run_sync(self._store.get, settings.instance)
                if not credential:
                    raise AuthError(
                        settings.instance,
                        f"no credential for {settings.instance}; "
                        f"store one with `syncd auth set {settings.instance}`",
                    )
                factory = registry.load(registry.info(settings.type).client)
                client = factory(
                    settings,
                    credential,
                    transport=self._transport(settings),
                    retry=self._retry,
                )
                self._clients[settings.instance] = client
            return client
