"""A URL key never carries a credential: userinfo, query and fragment are refused, and the
sentence names the key and what to remove without ever repeating the value (P2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import registry
from sync.cli import main
from sync.config import parse
from sync.config_check import url_keys
from sync.errors import ConfigError

CANARY = "CANARYq7W3tok"
SOURCE = '[source]\ntype = "linkedin"\n'
HUBSPOT = '[crm.hubspot]\ntype = "hubspot"\n'

#: (table header, type line, key, a host that key accepts)
PLACES = [
    pytest.param("[source]", "linkedin", "base_url", "www.linkedin.example", id="source"),
    pytest.param("[crm.hubspot]", "hubspot", "base_url", "api.hubapi.com", id="hubspot"),
    pytest.param("[crm.pipe]", "pipedrive", "base_url", "x.pipedrive.com", id="pipedrive"),
    pytest.param("[crm.pipe]", "pipedrive", "oauth_url", "oauth.pipedrive.com", id="pd-oauth"),
    pytest.param("[crm.sf]", "salesforce", "base_url", "x.my.salesforce.com", id="sf-base"),
    pytest.param("[crm.sf]", "salesforce", "login_url", "login.salesforce.com", id="sf-login"),
]

#: (how the canary is smuggled in, a word the sentence must say)
SHAPES = [
    pytest.param("https://{host}/?api_token=" + CANARY, "query string", id="query"),
    pytest.param("https://{host}?" + CANARY, "query string", id="query-no-path"),
    pytest.param("https://{host}/api?token=" + CANARY + "#x", "query string", id="query+frag"),
    pytest.param("https://{host}/#" + CANARY, "fragment", id="fragment"),
    pytest.param("https://user:" + CANARY + "@{host}", "user name or password", id="password"),
    pytest.param("https://" + CANARY + "@{host}", "user name or password", id="user"),
    pytest.param("https://" + CANARY + ":@{host}/", "user name or password", id="user-colon"),
]


def config_text(header: str, kind: str, key: str, value: str) -> str:
    """A config whose ``key`` in ``header`` holds ``value``, otherwise valid."""
    table = f'{header}\ntype = "{kind}"\n{key} = "{value}"\n'
    if header == "[source]":
        return table + "\n" + HUBSPOT
    if kind == "pipedrive" and key != "base_url":
        table += 'base_url = "https://x.pipedrive.com"\n'
    return SOURCE + "\n" + table


def dotted(header: str, key: str) -> str:
    return f"{header.strip('[]')}.{key}"


class TestRefused:
    """Each URL key refuses userinfo, a query string and a fragment, without echoing."""

    @pytest.mark.parametrize(("shape", "word"), SHAPES)
    @pytest.mark.parametrize(("header", "kind", "key", "host"), PLACES)
    def test_refused_without_echo(
        self, header: str, kind: str, key: str, host: str, shape: str, word: str, tmp_path: Path
    ) -> None:
        """One problem at that key that says what to remove; the canary is nowhere in it."""
        text = config_text(header, kind, key, shape.format(host=host))
        with pytest.raises(ConfigError) as caught:
            parse(text, tmp_path / "config.toml", env={"XDG_RUNTIME_DIR": str(tmp_path)})
        (problem,) = caught.value.problems
        assert problem.key == dotted(header, key)
        assert word in problem.message
        assert "keyring" in problem.message
        for shown in (str(caught.value), repr(caught.value), problem.message):
            assert CANARY.lower() not in shown.lower()

    @pytest.mark.parametrize(("header", "kind", "key", "host"), PLACES)
    def test_clean_url_accepted(self, header: str, kind: str, key: str, host: str) -> None:
        """The same key with a plain https URL (and a path) is accepted."""
        text = config_text(header, kind, key, f"https://{host}/api/")
        parse(text, Path("/cfg/config.toml"), env={"XDG_RUNTIME_DIR": "/run/u"})


class TestConfigCheck:
    """`syncd config check` lists the URL problem with the others and exits 2."""

    def test_reported_among_other_problems(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A query-string token and an unrelated problem are both listed; no canary shown."""
        path = tmp_path / "config.toml"
        path.write_text(
            '[daemon]\nlog_level = "loud"\n'
            + SOURCE
            + '\n[crm.pipedrive]\ntype = "pipedrive"\n'
            + f'base_url = "https://x.pipedrive.com/?api_token={CANARY}"\n',
            encoding="utf-8",
        )
        code = main(["config", "check", "--config", str(path)])
        out, err = capsys.readouterr()
        assert code == 2
        assert "crm.pipedrive.base_url: must not have a query string" in err
        assert "daemon.log_level" in err
        assert CANARY.lower() not in (out + err).lower()


class TestWhichKeysHoldUrls:
    """Every registered connector's URL options are checked, found by name or default."""

    @pytest.mark.parametrize("kind", sorted(registry.PACKAGES))
    def test_every_url_option_is_a_url_key(self, kind: str) -> None:
        """An option named *_url, or whose default is an http(s) URL, is checked as one."""
        options = registry.info(kind).options
        keys = url_keys(options)
        assert keys[0] == "base_url"
        for name, option in options.items():
            holds_url = isinstance(option.default, str) and "://" in option.default
            assert (name in keys) == (holds_url or name.endswith("_url")), name

    def test_the_known_url_options_are_found(self) -> None:
        """Salesforce's login_url and Pipedrive's oauth_url are URL keys; field names are not."""
        assert "login_url" in url_keys(registry.info("salesforce").options)
        pipedrive = url_keys(registry.info("pipedrive").options)
        assert "oauth_url" in pipedrive
        assert "profile_url_field" not in pipedrive
