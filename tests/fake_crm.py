"""A connector package that exists only for the config tests: a CRM with typed options."""

from __future__ import annotations

from connectors.registry import ConnectorInfo, Option

INFO = ConnectorInfo(
    kind="crm",
    client="tests.fake_crm:Nothing",
    sandbox="tests.fake_crm:Nothing",
    default_base_url="https://api.fake-crm.example",
    credential="a test token",
    options={
        "login_url": Option(str, "https://login.fake-crm.example", "where OAuth refreshes"),
        "api_version": Option(str, "v1", "the API version"),
        "batch_size": Option(int, 100, "records per call"),
        "ratio": Option(float, 0.5, "a number"),
        "sandbox_mode": Option(bool, False, "a flag"),
        "labels": Option(list, (), "an array"),
    },
)
