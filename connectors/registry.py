"""Which package serves each config ``type``. Adding a connector is one line here.

Standard library only: a package's ``__init__`` holds its :class:`ConnectorInfo` and
nothing heavy; the client and the sandbox are imported only when asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

PACKAGES: dict[str, str] = {
    "linkedin": "connectors.linkedin",
    "hubspot": "connectors.hubspot",
    "pipedrive": "connectors.pipedrive",
    "salesforce": "connectors.salesforce",
}


@dataclass(frozen=True, slots=True)
class Option:
    """One type-specific config key: its Python type and default."""

    type: type
    default: object
    help: str = ""
    #: The only values allowed, if the option is an enumeration.
    choices: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectorInfo:
    """What syncd needs to know about a connector before importing its code."""

    kind: Literal["source", "crm"]
    client: str  # "module:Class"
    sandbox: str  # "module:Class"
    default_base_url: str
    credential: str  # what `syncd auth set` expects, in a few words
    options: Mapping[str, Option] = field(default_factory=dict)
    #: The most people one write call takes (HubSpot batch 100, Salesforce collections 200).
    batch_size: int = 100


def types(kind: Literal["source", "crm"]) -> list[str]:
    """The config ``type`` values of one kind of connector."""
    return [name for name in PACKAGES if info(name).kind == kind]


def info(type_name: str) -> ConnectorInfo:
    """The :class:`ConnectorInfo` of a config ``type``; KeyError if unknown."""
    module = importlib.import_module(PACKAGES[type_name])
    result: ConnectorInfo = module.INFO
    return result


def load(dotted: str) -> Any:
    """The object named ``"package.module:Name"``."""
    module_name, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attr)
