"""The config file: every problem at once, with key and path, never a value (P2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import registry
from connectors.base import FIELDS
from sync.config import (
    Config,
    ensure_private_dir,
    load,
    parse,
    resolve_path,
    runtime_dir,
    socket_path,
)
from sync.errors import ConfigError, Problem

ROOT = Path(__file__).resolve().parents[1]
CANARY = "CANARY-7Hq2-not-for-messages"
SOURCE = '[source]\ntype = "linkedin"\n'
HUBSPOT = '[crm.hubspot]\ntype = "hubspot"\n'
GOOD = SOURCE + "\n" + HUBSPOT


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    return {"XDG_RUNTIME_DIR": str(run), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


@pytest.fixture
def fake_crm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registers tests/fake_crm.py as the config type "fakecrm"."""
    monkeypatch.setitem(registry.PACKAGES, "fakecrm", "tests.fake_crm")


def problems(text: str, env: dict[str, str], path: Path = Path("/cfg/syncd.toml")) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse(text, path, env=env)
    return list(caught.value.problems)


def ok(text: str, env: dict[str, str], path: Path = Path("/cfg/syncd.toml")) -> Config:
    return parse(text, path, env=env)


BAD = [
    pytest.param(
        '[daemon]\nlog_keep_days = 0\n[source]\ntype = "linkedin"\n',
        "daemon.log_keep_days",
        "at least 1",
        id="keep-days-zero",
    ),
    pytest.param(
        '[daemon]\nlog_keep_days = "a month"\n[source]\ntype = "linkedin"\n',
        "daemon.log_keep_days",
        "whole number",
        id="keep-days-text",
    ),
    pytest.param("x = ", "", "TOML syntax error at line 1", id="syntax"),
    pytest.param('colour = "blue"\n' + GOOD, "colour", "unknown key", id="unknown-top"),
    pytest.param(
        '[daemon]\nsockett = ""\n' + GOOD, "daemon.sockett", "unknown key", id="daemon-key"
    ),
    pytest.param('[daemon]\nlog_level = "loud"\n' + GOOD, "daemon.log_level", "one of", id="level"),
    pytest.param(
        "[daemon]\nlog_level = 3\n" + GOOD, "daemon.log_level", "not an integer", id="lvl-type"
    ),
    pytest.param("daemon = 1\n" + GOOD, "daemon", "must be a table", id="daemon-not-table"),
    pytest.param(HUBSPOT, "source", "missing", id="no-source"),
    pytest.param(SOURCE, "crm", "no CRM", id="no-crm"),
    pytest.param("crm = 3\n" + SOURCE, "crm", "must be a table", id="crm-not-table"),
    pytest.param(
        SOURCE + '[crm]\nhubspot = "x"\n', "crm.hubspot", "must be a table", id="crm-value"
    ),
    pytest.param(SOURCE + "[crm.hubspot]\n", "crm.hubspot.type", "missing", id="no-type"),
    pytest.param(SOURCE + "[crm.hubspot]\ntype = 1\n", "crm.hubspot.type", "string", id="type-int"),
    pytest.param(
        SOURCE + '[crm.hubspot]\ntype = "hubspott"\n',
        "crm.hubspot.type",
        "unknown CRM type; use one of: hubspot",
        id="unknown-crm-type",
    ),
    pytest.param(
        '[source]\ntype = "nope"\n' + HUBSPOT,
        "source.type",
        "unknown source type; use one of: linkedin",
        id="unknown-source-type",
    ),
    pytest.param(
        SOURCE + '[crm.li]\ntype = "linkedin"\n',
        "crm.li.type",
        "is a source type; this table needs a CRM type",
        id="crm-of-source-type",
    ),
    pytest.param(
        '[source]\ntype = "hubspot"\n' + HUBSPOT,
        "source.type",
        "is a CRM type; this table needs a source type",
        id="source-of-crm-type",
    ),
    pytest.param(SOURCE + '[crm.Big]\ntype = "hubspot"\n', "crm.Big", "lowercase", id="name-case"),
    pytest.param(
        SOURCE + '[crm.source]\ntype = "hubspot"\n', "crm.source", "reserved", id="reserved"
    ),
    pytest.param(
        GOOD + 'base_url = "http://api.hubapi.com"\n',
        "crm.hubspot.base_url",
        "must use https://",
        id="http-remote",
    ),
    pytest.param(
        GOOD + 'base_url = "ftp://api.hubapi.com"\n', "crm.hubspot.base_url", "https", id="ftp"
    ),
    pytest.param(
        GOOD + 'base_url = "api.hubapi.com"\n', "crm.hubspot.base_url", "absolute", id="rel"
    ),
    pytest.param(
        GOOD + 'base_url = "https://u:p@api.hubapi.com"\n',
        "crm.hubspot.base_url",
        "`syncd auth set hubspot`",
        id="url-userinfo",
    ),
    pytest.param(
        GOOD + 'base_url = "https://h:99999"\n', "crm.hubspot.base_url", "valid", id="bad-port"
    ),
    pytest.param(
        GOOD + 'overwrite = "never"\n', "crm.hubspot.overwrite", "empty-only", id="ow-str"
    ),
    pytest.param(
        GOOD + 'overwrite = ["nick"]\n', "crm.hubspot.overwrite", "entry 1", id="ow-field"
    ),
    pytest.param(GOOD + "overwrite = 1\n", "crm.hubspot.overwrite", "always", id="ow-type"),
    pytest.param(
        SOURCE + 'overwrite = "always"\n' + HUBSPOT, "source.overwrite", "unknown", id="ow-source"
    ),
    pytest.param(GOOD + 'colour = "x"\n', "crm.hubspot.colour", "allowed here: type", id="crm-key"),
    pytest.param(GOOD + '[match]\nstrict = "yes"\n', "match.strict", "true or false", id="strict"),
    pytest.param(GOOD + "[match]\nloose = true\n", "match.loose", "unknown key", id="match-key"),
    pytest.param(
        GOOD + '[privacy]\nfields = ["email", "nickname"]\n',
        "privacy.fields",
        "entry 2 is not a field",
        id="privacy-field",
    ),
    pytest.param(
        GOOD + '[privacy]\nblocked_email_domains = ["@gmail.com"]\n',
        "privacy.blocked_email_domains",
        "not a domain",
        id="domain-at",
    ),
    pytest.param(
        GOOD + '[privacy]\nblocked_companies = "Acme"\n',
        "privacy.blocked_companies",
        "array of strings",
        id="companies-type",
    ),
    pytest.param(
        GOOD + "[privacy]\nfields = [1]\n", "privacy.fields", "array of strings", id="fields-int"
    ),
    pytest.param(
        '[daemon]\nsocket = "/' + "s" * 120 + '.sock"\n' + GOOD,
        "daemon.socket",
        "too long",
        id="socket-length",
    ),
]


CREDENTIAL_KEYS = [
    pytest.param(SOURCE + 'token = "t"\n' + HUBSPOT, "source.token", "source", id="source-token"),
    pytest.param(GOOD + 'api_key = "t"\n', "crm.hubspot.api_key", "hubspot", id="api-key"),
    pytest.param(GOOD + 'client_secret = "t"\n', "crm.hubspot.client_secret", "hubspot", id="cs"),
    pytest.param(GOOD + 'refresh_token = "t"\n', "crm.hubspot.refresh_token", "hubspot", id="rt"),
    pytest.param('[daemon]\npassword = "t"\n' + GOOD, "daemon.password", "NAME", id="daemon-pw"),
    pytest.param('secret = "t"\n' + GOOD, "secret", "NAME", id="top-secret"),
    pytest.param(
        SOURCE + '[crm.hubspot]\ntype = "nope"\ntoken = "t"\n',
        "crm.hubspot.token",
        "hubspot",
        id="unknown-type-still-flags-token",
    ),
]


class TestProblems:
    """Each kind of mistake is reported with its key, the file's path and a sentence."""

    @pytest.mark.parametrize(("text", "key", "fragment"), BAD)
    def test_bad_config(self, text: str, key: str, fragment: str, env: dict[str, str]) -> None:
        """The mistake yields a problem at its key whose message says what is wrong."""
        found = problems(text, env)
        assert any(p.key == key and fragment in p.message for p in found), found
        assert all(p.path == "/cfg/syncd.toml" for p in found)

    @pytest.mark.parametrize(("text", "key", "instance"), CREDENTIAL_KEYS)
    def test_credential_key(self, text: str, key: str, instance: str, env: dict[str, str]) -> None:
        """A credential in the file is sent to the keyring, with the instance's name."""
        (problem,) = [p for p in problems(text, env) if p.key == key]
        assert problem.message == (
            "credentials belong in the keyring: remove this key and run "
            f"`syncd auth set {instance}`"
        )

    def test_every_problem_at_once(self, env: dict[str, str]) -> None:
        """A file with many mistakes lists all of them in one ConfigError."""
        text = (
            'colour = "blue"\n'
            '[daemon]\nlog_level = "loud"\n'
            '[source]\ntype = "hubspot"\n'
            '[crm.hubspot]\ntype = "hubspot"\nbase_url = "http://api.hubapi.com"\n'
            'api_key = "k"\noverwrite = ["nick"]\n'
            '[crm.li]\ntype = "linkedin"\n'
            "[match]\nstrict = 1\n"
            '[privacy]\nfields = ["nickname"]\n'
        )
        found = problems(text, env, Path("/home/u/.config/syncd/config.toml"))
        assert {p.key for p in found} == {
            "colour",
            "daemon.log_level",
            "source.type",
            "crm.hubspot.base_url",
            "crm.hubspot.api_key",
            "crm.hubspot.overwrite",
            "crm.li.type",
            "match.strict",
            "privacy.fields",
        }
        assert {p.path for p in found} == {"/home/u/.config/syncd/config.toml"}
        with pytest.raises(ConfigError) as caught:
            parse(text, Path("/x.toml"), env=env)
        assert "9 problems" in str(caught.value)
        assert str(caught.value).count("/x.toml: ") == 9

    def test_syntax_error_names_line(self, env: dict[str, str]) -> None:
        """A TOML syntax error is one problem with its line and column."""
        (problem,) = problems(GOOD + "\nbroken = = 1\n", env)
        assert problem.key == ""
        assert problem.message.startswith("TOML syntax error at line 7, column 10")


CANARY_PLACES = [
    pytest.param(f'[daemon]\nlog_level = "{CANARY}"\n' + GOOD, id="log-level"),
    pytest.param(f"[daemon]\nsocket = {len(CANARY)}\n" + GOOD, id="socket-type"),
    pytest.param(f'[source]\ntype = "{CANARY}"\n' + HUBSPOT, id="type"),
    pytest.param(GOOD + f'base_url = "http://{CANARY}.example"\n', id="base-url"),
    pytest.param(GOOD + f'base_url = "https://u:{CANARY}@h.example"\n', id="url-password"),
    pytest.param(GOOD + f'token = "{CANARY}"\n', id="token"),
    pytest.param(GOOD + f'"{CANARY}" = 1\n', id="as-a-key"),
    pytest.param(SOURCE + f'[crm."{CANARY}"]\ntype = "hubspot"\n', id="as-a-crm-name"),
    pytest.param(GOOD + f'overwrite = "{CANARY}"\n', id="overwrite"),
    pytest.param(GOOD + f'[privacy]\nfields = ["{CANARY}"]\n', id="field"),
    pytest.param(GOOD + f'[privacy]\nblocked_email_domains = ["{CANARY}@x"]\n', id="domain"),
    pytest.param(GOOD + f'\n"{CANARY}\n', id="syntax-error"),
    pytest.param(GOOD + f'\n[crm.hubspot]\nx = "{CANARY}"\n', id="declared-twice"),
]


class TestNoValueEchoed:
    """No problem message repeats a value from the file: it could be a pasted token."""

    @pytest.mark.parametrize("text", CANARY_PLACES)
    def test_canary_not_in_error(self, text: str, env: dict[str, str]) -> None:
        """The canary value appears nowhere in the error's text."""
        with pytest.raises(ConfigError) as caught:
            parse(text, Path("/cfg/syncd.toml"), env=env)
        assert CANARY not in str(caught.value)
        assert CANARY.lower() not in str(caught.value).lower()

    @settings(max_examples=150, deadline=None)
    @given(
        tables=st.dictionaries(
            st.sampled_from(["daemon", "source", "crm.hubspot", "crm.x", "match", "privacy"]),
            st.dictionaries(
                st.sampled_from(
                    ["type", "base_url", "login_url", "overwrite", "token", "socket", "log_level",
                     "log_file", "strict", "fields", "blocked_email_domains", "other"]
                ),
                st.one_of(
                    st.just(CANARY),
                    st.just("hubspot"),
                    st.just("linkedin"),
                    st.integers(),
                    st.booleans(),
                    st.lists(st.sampled_from([CANARY, "email", "gmail.com"]), max_size=3),
                ),
                max_size=4,
            ),
            max_size=6,
        )
    )  # fmt: skip
    def test_any_config_fails_cleanly(self, tables: dict[str, dict[str, object]]) -> None:
        """Any mix of keys and values gives a Config or a ConfigError without the canary."""
        text = "\n".join(
            f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
            for name, table in tables.items()
        )
        try:
            parse(text, Path("/cfg/syncd.toml"), env={"XDG_RUNTIME_DIR": "/run/user/1"})
        except ConfigError as error:
            message = str(error)
        else:
            message = ""
        assert CANARY not in message


class TestValues:
    """A valid file becomes frozen values with defaults filled in."""

    def test_minimal_defaults(self, env: dict[str, str]) -> None:
        """Only the types given: every default comes from config.example.toml and the registry."""
        config = ok(GOOD, env)
        assert config.path == Path("/cfg/syncd.toml")
        assert config.daemon.socket == Path(env["XDG_RUNTIME_DIR"]) / "syncd" / "syncd.sock"
        assert config.daemon.log_level == "info"
        assert config.daemon.log_file == ""
        assert config.daemon.log_keep_days == 30
        assert config.source.instance == "source"
        assert config.source.base_url == registry.info("linkedin").default_base_url
        hubspot = config.crms["hubspot"]
        assert (hubspot.instance, hubspot.type, hubspot.overwrite) == (
            "hubspot",
            "hubspot",
            "empty-only",
        )
        assert hubspot.base_url == "https://api.hubapi.com"
        assert config.match.strict is False
        assert config.privacy.blocked_email_domains == ()
        assert config.privacy.fields == FIELDS

    def test_crms_keep_file_order(self, env: dict[str, str]) -> None:
        """CRMs are listed in the order the file declares them."""
        text = SOURCE + '[crm.zeta]\ntype = "hubspot"\n[crm.alpha]\ntype = "hubspot"\n'
        assert list(ok(text, env).crms) == ["zeta", "alpha"]

    def test_values_are_normalised(self, env: dict[str, str]) -> None:
        """Lists are lowercased, overwrite lists become sets, paths resolve next to the file."""
        text = (
            '[daemon]\nsocket = "run/s.sock"\nlog_level = "DEBUG"\nlog_file = "logs/syncd.log"\n'
            + GOOD
            + 'overwrite = ["title", "company"]\nbase_url = "https://api.hubapi.com/"\n'
            + '[privacy]\nblocked_email_domains = ["GMail.com "]\n'
            + 'blocked_companies = ["ACME Corp", ""]\nfields = ["email", "email", "title"]\n'
        )
        config = ok(text, env, Path("/etc/syncd/config.toml"))
        assert config.daemon.socket == Path("/etc/syncd/run/s.sock")
        assert config.daemon.log_level == "debug"
        assert config.daemon.log_path() == Path("/etc/syncd/logs/syncd.log")
        assert config.crms["hubspot"].overwrite == frozenset({"title", "company"})
        assert config.crms["hubspot"].base_url == "https://api.hubapi.com"
        assert config.privacy.blocked_email_domains == ("gmail.com",)
        assert config.privacy.blocked_companies == ("acme corp",)
        assert config.privacy.fields == ("email", "title")

    def test_log_file_dash_is_stderr(self, env: dict[str, str]) -> None:
        """log_file = "-" means stderr."""
        assert ok('[daemon]\nlog_file = "-"\n' + GOOD, env).daemon.log_path() is None

    def test_values_are_frozen(self, env: dict[str, str]) -> None:
        """Config values cannot be changed after loading."""
        config = ok(GOOD, env)
        with pytest.raises(AttributeError):
            config.daemon = config.daemon  # type: ignore[misc]
        with pytest.raises(TypeError):
            config.crms["x"] = config.source  # type: ignore[index]


class TestConnectorOptions:
    """Type-specific options come from the registry: validated, with defaults filled."""

    def test_defaults_filled(self, env: dict[str, str], fake_crm: None) -> None:
        """Options left out take the connector's defaults."""
        config = ok(SOURCE + '[crm.fake]\ntype = "fakecrm"\n', env)
        assert dict(config.crms["fake"].options) == {
            "login_url": "https://login.fake-crm.example",
            "api_version": "v1",
            "batch_size": 100,
            "ratio": 0.5,
            "sandbox_mode": False,
            "labels": (),
        }
        assert config.crms["fake"].base_url == "https://api.fake-crm.example"

    def test_values_taken(self, env: dict[str, str], fake_crm: None) -> None:
        """Given options are kept; an integer is a fine float; arrays become tuples."""
        text = SOURCE + (
            '[crm.fake]\ntype = "fakecrm"\napi_version = "v62.0"\nbatch_size = 7\n'
            'ratio = 1\nsandbox_mode = true\nlabels = ["a"]\nlogin_url = "http://127.0.0.1:9"\n'
        )
        options = ok(text, env).crms["fake"].options
        assert options["api_version"] == "v62.0"
        assert options["batch_size"] == 7
        assert options["ratio"] == 1.0
        assert options["sandbox_mode"] is True
        assert options["labels"] == ("a",)

    @pytest.mark.parametrize(
        ("line", "key", "fragment"),
        [
            pytest.param("batch_size = true", "batch_size", "an integer, not a boolean", id="int"),
            pytest.param(
                'batch_size = "7"', "batch_size", "an integer, not a string", id="int-str"
            ),
            pytest.param("api_version = 62", "api_version", "a string, not an integer", id="str"),
            pytest.param("sandbox_mode = 1", "sandbox_mode", "true or false", id="bool"),
            pytest.param('ratio = "half"', "ratio", "a number", id="float"),
            pytest.param('labels = "a"', "labels", "an array", id="list"),
            pytest.param('login_url = "http://login.example"', "login_url", "https", id="url"),
            pytest.param('colour = "x"', "colour", "login_url", id="unknown-lists-options"),
        ],
    )
    def test_bad_option(
        self, line: str, key: str, fragment: str, env: dict[str, str], fake_crm: None
    ) -> None:
        """A wrong option type names the expected type and the one found."""
        found = problems(SOURCE + f'[crm.fake]\ntype = "fakecrm"\n{line}\n', env)
        assert [p.key for p in found] == [f"crm.fake.{key}"]
        assert fragment in found[0].message

    def test_broken_package(self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
        """A registered type whose package is missing is a problem, not a crash."""
        monkeypatch.setitem(registry.PACKAGES, "ghost", "tests.no_such_package")
        (problem,) = problems(SOURCE + '[crm.g]\ntype = "ghost"\n', env)
        assert problem.key == "crm.g.type"
        assert "cannot be loaded" in problem.message


class TestUrls:
    """http:// is allowed only for loopback hosts, for the sandboxes."""

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080",
            "http://127.8.9.10/api",
            "http://[::1]:9000",
            "http://localhost:1",
            "http://LOCALHOST/",
            "https://api.hubapi.com",
        ],
    )
    def test_allowed(self, url: str, env: dict[str, str]) -> None:
        """Loopback over http, anything over https."""
        assert ok(GOOD + f'base_url = "{url}"\n', env).crms["hubspot"].base_url == url.rstrip("/")

    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.1",
            "http://128.0.0.1",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "http://[::2]",
            "http://0.0.0.0",
        ],
    )
    def test_refused(self, url: str, env: dict[str, str]) -> None:
        """Any other host over http is refused."""
        (problem,) = problems(GOOD + f'base_url = "{url}"\n', env)
        assert problem.key == "crm.hubspot.base_url"
        assert "https://" in problem.message


class TestExample:
    """config.example.toml stays valid."""

    def test_example_parses(self, env: dict[str, str]) -> None:
        """The shipped example is accepted and matches the README's Configuration section."""
        path = ROOT / "config.example.toml"
        config = parse(path.read_text(encoding="utf-8"), path, env=env)
        assert config.source.type == "linkedin"
        assert list(config.crms) == ["hubspot", "pipedrive", "salesforce"]
        assert config.crms["salesforce"].options["object"] == "Contact"
        assert config.privacy.blocked_email_domains == ("gmail.com",)
        assert config.privacy.fields == FIELDS


class TestFinding:
    """Which file is read, and the thin clients' socket lookup."""

    def test_precedence(self, tmp_path: Path) -> None:
        """--config beats $SYNCD_CONFIG, which beats the user config dir."""
        env = {"SYNCD_CONFIG": str(tmp_path / "env.toml"), "XDG_CONFIG_HOME": str(tmp_path)}
        assert resolve_path(tmp_path / "flag.toml", env) == tmp_path / "flag.toml"
        assert resolve_path(None, env) == tmp_path / "env.toml"
        if sys.platform.startswith("linux"):
            assert resolve_path(None, {"XDG_CONFIG_HOME": str(tmp_path)}) == (
                tmp_path / "syncd" / "config.toml"
            )

    def test_missing_file(self, tmp_path: Path, env: dict[str, str]) -> None:
        """A missing file is one problem that says how to create one."""
        with pytest.raises(ConfigError) as caught:
            load(tmp_path / "none.toml", env=env)
        (problem,) = caught.value.problems
        assert problem.path == str(tmp_path / "none.toml")
        assert "config.example.toml" in problem.message
        assert "syncd sandbox --config-out PATH" in problem.message

    def test_load_reads_env(self, tmp_path: Path, env: dict[str, str]) -> None:
        """load() with no path reads $SYNCD_CONFIG."""
        (tmp_path / "c.toml").write_text(GOOD, encoding="utf-8")
        config = load(env={**env, "SYNCD_CONFIG": str(tmp_path / "c.toml")})
        assert config.path == tmp_path / "c.toml"

    def test_socket_path(self, tmp_path: Path, env: dict[str, str]) -> None:
        """Missing or broken file: the default; otherwise [daemon] socket."""
        default = Path(env["XDG_RUNTIME_DIR"]) / "syncd" / "syncd.sock"
        assert socket_path(str(tmp_path / "none.toml"), env) == default
        broken = tmp_path / "broken.toml"
        broken.write_text("[daemon\n", encoding="utf-8")
        assert socket_path(str(broken), env) == default
        good = tmp_path / "good.toml"
        good.write_text('[daemon]\nsocket = "s/x.sock"\n', encoding="utf-8")
        assert socket_path(str(good), env) == tmp_path / "s" / "x.sock"
        assert runtime_dir(env) == default.parent

    def test_import_is_stdlib_only(self, tmp_path: Path) -> None:
        """Importing sync.config and finding the socket loads no third-party package."""
        code = (
            "import sys, json\nfrom sync.config import socket_path\n"
            "socket_path('/nonexistent/syncd.toml')\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
        )
        loaded = set(json.loads(done.stdout))
        assert not loaded & {"platformdirs", "structlog", "httpx", "keyring", "anyio", "tomli"}


class TestPrivateDir:
    """The socket's directory is 0700 and ours, or syncd refuses it."""

    def test_creates_0700(self, tmp_path: Path) -> None:
        """A missing directory, and any missing parent, is created owner-only."""
        target = tmp_path / "a" / "syncd"
        ensure_private_dir(target)
        assert target.stat().st_mode & 0o777 == 0o700
        assert target.parent.stat().st_mode & 0o777 == 0o700
        ensure_private_dir(target)  # again: accepted

    def test_sticky_parent_accepted(self, tmp_path: Path) -> None:
        """A world-writable parent with the sticky bit (like /tmp) is fine."""
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared").chmod(0o1777)
        ensure_private_dir(tmp_path / "shared" / "syncd")

    def test_refuses_world_writable_parent(self, tmp_path: Path) -> None:
        """A parent anyone can write to without the sticky bit is refused."""
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared").chmod(0o777)
        with pytest.raises(ConfigError) as caught:
            ensure_private_dir(tmp_path / "shared" / "syncd")
        assert caught.value.problems[0].path == str(tmp_path / "shared")

    def test_default_without_xdg(self) -> None:
        """Without $XDG_RUNTIME_DIR the platformdirs fallback is used, without a warning."""
        assert runtime_dir({}).name == "syncd"

    @pytest.mark.parametrize("mode", [0o755, 0o750, 0o701, 0o710, 0o777])
    def test_refuses_open_dir(self, tmp_path: Path, mode: int) -> None:
        """A directory that group or others can enter or read is refused."""
        target = tmp_path / "open"
        target.mkdir()
        target.chmod(mode)
        with pytest.raises(ConfigError) as caught:
            ensure_private_dir(target)
        (problem,) = caught.value.problems
        assert f"mode {mode:04o}" in problem.message

    def test_refuses_a_file(self, tmp_path: Path) -> None:
        """A file where the directory should be is refused."""
        (tmp_path / "f").write_text("", encoding="utf-8")
        with pytest.raises(ConfigError):
            ensure_private_dir(tmp_path / "f")

    @pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory away")
    def test_refuses_other_owner(self, tmp_path: Path) -> None:
        """A directory another user owns is refused even when it is 0700."""
        target = tmp_path / "theirs"
        target.mkdir(mode=0o700)
        os.chown(target, 65534, 65534)
        with pytest.raises(ConfigError) as caught:
            ensure_private_dir(target)
        assert "another user" in caught.value.problems[0].message

    @pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory away")
    def test_refuses_parent_of_other_owner(self, tmp_path: Path) -> None:
        """A parent another user owns (say a planted /tmp/runtime-UID) is refused."""
        parent = tmp_path / "planted"
        parent.mkdir(mode=0o755)
        os.chown(parent, 65534, 65534)
        with pytest.raises(ConfigError) as caught:
            ensure_private_dir(parent / "syncd")
        assert caught.value.problems[0].path == str(parent)
