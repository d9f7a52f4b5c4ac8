"""`syncd init`'s config writing: the line-based TOML table editor, the new commented file,
editing an existing one, and the interactive question flow with injected answers."""

from __future__ import annotations

import argparse
import io
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.cli_init import Outcome, Plan, finish, plan_from_flags, read_credentials
from sync.config import parse
from sync.config_edit import EditError, TomlDocument, check_edit, header_name
from sync.errors import UsageError
from sync.init_guide import interview
from sync.init_tables import Instance, new_document, pipedrive_url, salesforce_url
from sync.secrets import MemoryTokenStore

EXAMPLE = Path(__file__).parents[2] / "config.example.toml"
HAND_EDITED = """\
# my own notes about this file
[daemon]
log_level = "debug"  # while I try it out

[source]
type = "linkedin"
base_url = "https://www.linkedin.example/api"

[crm.hubspot]
type = "hubspot"
base_url = "https://api.hubapi.com"
overwrite = ["title"]

# keep my rules
[privacy]
# no competitors
blocked_companies = ["Rival Corp"]
fields = [
  "first_name",
  "last_name",
]
"""


class TestHeaders:
    """Which lines open a table."""

    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            pytest.param("[daemon]", (("daemon",), False), id="plain"),
            pytest.param("  [crm.hubspot]  # mine", (("crm", "hubspot"), False), id="comment"),
            pytest.param('[crm."hub spot"]', (("crm", "hub spot"), False), id="quoted"),
            pytest.param("[[items]]", (("items",), True), id="array-of-tables"),
            pytest.param('  ["a", "b"],', None, id="array-line"),
            pytest.param('key = "[x]"', None, id="value"),
        ],
    )
    def test_header_name(self, line: str, expected: object) -> None:
        """A header line gives its table's name parts; anything else gives None."""
        assert header_name(line) == expected


class TestTomlDocument:
    """Editing keys and tables line by line."""

    def test_round_trip_is_exact(self) -> None:
        """A file read and written back without edits is byte for byte the same."""
        text = EXAMPLE.read_text()
        assert TomlDocument(text).text() == text

    def test_set_changes_one_line_and_keeps_its_comment(self) -> None:
        """Changing a value rewrites only that line, keeping its inline comment."""
        document = TomlDocument(HAND_EDITED)
        assert document.set(("daemon",), "log_level", "info") == "changed"
        before, after = HAND_EDITED.splitlines(), document.text().splitlines()
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert changed == [
            (
                'log_level = "debug"  # while I try it out',
                'log_level = "info"  # while I try it out',
            )
        ]

    def test_set_same_value_is_no_change(self) -> None:
        """Setting the value a key already holds reports nothing and changes nothing."""
        document = TomlDocument(HAND_EDITED)
        assert document.set(("crm", "hubspot"), "base_url", "https://api.hubapi.com") is None
        assert document.text() == HAND_EDITED

    def test_set_replaces_a_multiline_value(self) -> None:
        """A value spread over several lines is replaced whole."""
        document = TomlDocument(HAND_EDITED)
        assert document.set(("privacy",), "fields", ["email"]) == "changed"
        assert tomllib.loads(document.text())["privacy"]["fields"] == ["email"]
        assert "# no competitors" in document.text()

    def test_set_adds_a_missing_key_after_the_others(self) -> None:
        """A key the table lacks is added after its last key, with its comment."""
        document = TomlDocument(HAND_EDITED)
        assert document.set(("source",), "extra", "x", ["# why"]) == "added"
        lines = document.text().splitlines()
        at = lines.index('base_url = "https://www.linkedin.example/api"')
        assert lines[at + 1 : at + 3] == ["# why", 'extra = "x"']

    def test_get_reads_what_the_file_holds(self) -> None:
        """``get`` returns a key's value, None for a missing key or table."""
        document = TomlDocument(HAND_EDITED)
        assert document.get(("crm", "hubspot"), "overwrite") == ["title"]
        assert document.get(("crm", "hubspot"), "nope") is None
        assert document.get(("crm", "nope"), "type") is None

    def test_add_table_goes_after_its_group_with_comments(self) -> None:
        """A new CRM table lands after the last [crm.*] table, before [privacy], and the
        comment above [privacy] stays with [privacy]."""
        document = TomlDocument(HAND_EDITED)
        document.add_table(
            ("crm", "pipedrive"),
            [("type", "pipedrive", ["# the type"])],
            lead=["# a second CRM"],
            after=("crm",),
        )
        text = document.text()
        assert text.index("[crm.hubspot]") < text.index("[crm.pipedrive]")
        assert text.index("[crm.pipedrive]") < text.index("# keep my rules")
        assert '# a second CRM\n[crm.pipedrive]\n# the type\ntype = "pipedrive"\n' in text
        assert tomllib.loads(text)["privacy"] == tomllib.loads(HAND_EDITED)["privacy"]

    def test_header_inside_multiline_string_is_not_a_table(self) -> None:
        """A line that looks like a header inside a multi-line string is left alone."""
        text = '[a]\nnote = """\n[b]\n"""\n[c]\nx = 1\n'
        assert TomlDocument(text).tables() == [("a",), ("c",)]

    def test_array_of_tables_is_not_editable(self) -> None:
        """``[[x]]`` blocks are kept but never taken for a table init could edit."""
        document = TomlDocument("[[x]]\na = 1\n")
        assert not document.has_table(("x",))
        with pytest.raises(KeyError):
            document.set(("x",), "a", 2)


class TestCheckEdit:
    """The proof that an edit touched only init's tables."""

    def test_accepts_changes_inside_owned_tables(self) -> None:
        """Changing an owned table passes."""
        document = TomlDocument(HAND_EDITED)
        document.set(("crm", "hubspot"), "base_url", "https://api-eu1.hubapi.com")
        check_edit(HAND_EDITED, document.text(), [("crm", "hubspot")])

    def test_refuses_a_change_elsewhere(self) -> None:
        """A change in [privacy] when only [crm.hubspot] is owned is refused."""
        document = TomlDocument(HAND_EDITED)
        document.set(("privacy",), "blocked_companies", [])
        with pytest.raises(EditError):
            check_edit(HAND_EDITED, document.text(), [("crm", "hubspot")])

    def test_refuses_invalid_toml(self) -> None:
        """An edit that breaks the syntax is refused."""
        with pytest.raises(EditError):
            check_edit(HAND_EDITED, HAND_EDITED + "[broken\n", [])


class TestNewDocument:
    """The config init writes on a first run."""

    def test_config_check_accepts_it_and_every_key_has_a_comment(self, tmp_path: Path) -> None:
        """A new file passes the config check, and a comment sits above every key."""
        source = Instance("source", "linkedin", {"base_url": "https://www.linkedin.example/api"})
        crms = [
            Instance("hubspot", "hubspot", {"base_url": "https://api-eu1.hubapi.com"}),
            Instance("pipedrive", "pipedrive", {"base_url": "https://acme.pipedrive.com"}),
            Instance("sf", "salesforce", {"login_url": "https://test.salesforce.com"}),
        ]
        text = new_document(source, crms).text()
        config = parse(text, tmp_path / "config.toml")
        assert list(config.crms) == ["hubspot", "pipedrive", "sf"]
        assert config.crms["sf"].options["login_url"] == "https://test.salesforce.com"
        lines = text.splitlines()
        for number, line in enumerate(lines):
            if "=" in line and not line.startswith(("#", " ", '"')):
                assert lines[number - 1].startswith("#"), line

    @pytest.mark.parametrize(
        ("answer", "url"),
        [
            pytest.param("acme", "https://acme.pipedrive.com", id="company"),
            pytest.param("acme.pipedrive.com", "https://acme.pipedrive.com", id="host"),
            pytest.param("http://127.0.0.1:9/", "http://127.0.0.1:9", id="url"),
        ],
    )
    def test_pipedrive_company(self, answer: str, url: str) -> None:
        """The Pipedrive question takes a company name, a host or a URL."""
        assert pipedrive_url(answer) == url

    def test_salesforce_sandbox(self) -> None:
        """ "sandbox" means Salesforce's test login host."""
        assert salesforce_url("sandbox") == "https://test.salesforce.com"


def _args(**given: object) -> argparse.Namespace:
    defaults: dict[str, object] = {
        "crm": None,
        "base_url": None,
        "option": None,
        "credentials_from_stdin": False,
        "no_check": False,
    }
    return argparse.Namespace(**(defaults | given))


class TestFlags:
    """The non-interactive flags, before anything is written."""

    def test_missing_crm_and_pipedrive_url_in_one_sentence(self, tmp_path: Path) -> None:
        """Without any CRM, or without Pipedrive's URL, the sentence lists what is missing."""
        with pytest.raises(UsageError, match=r"missing a CRM \(--crm NAME=TYPE\)"):
            plan_from_flags(_args(), Plan(tmp_path / "c.toml"))
        with pytest.raises(UsageError, match="company URL of pd"):
            plan_from_flags(_args(crm=["pd=pipedrive"]), Plan(tmp_path / "c.toml"))

    def test_salesforce_base_url_is_its_login_url(self, tmp_path: Path) -> None:
        """--base-url for a Salesforce instance sets its login_url; options are typed."""
        plan = Plan(tmp_path / "c.toml")
        plan_from_flags(
            _args(crm=["sf=salesforce"], base_url=["sf=sandbox"], option=["sf.object=Lead"]),
            plan,
        )
        assert plan.instances["sf"].values == {
            "login_url": "https://test.salesforce.com",
            "object": "Lead",
        }

    def test_bare_type_names_the_instance(self, tmp_path: Path) -> None:
        """``--crm hubspot`` is ``--crm hubspot=hubspot``, with HubSpot's default URL kept."""
        plan = Plan(tmp_path / "c.toml")
        plan_from_flags(_args(crm=["hubspot"], base_url=["hubspot=eu1"]), plan)
        assert plan.instances["hubspot"].type == "hubspot"
        assert plan.instances["hubspot"].values == {"base_url": "https://api-eu1.hubapi.com"}

    def test_unknown_option_is_refused(self, tmp_path: Path) -> None:
        """An option the connector does not have is a usage error naming the known ones."""
        with pytest.raises(UsageError, match="known: base_url, overwrite"):
            plan_from_flags(_args(crm=["h=hubspot"], option=["h.colour=red"]), Plan(tmp_path / "c"))

    def test_credentials_lines(self) -> None:
        """NAME=VALUE lines are read (a value may hold '='); a bad line names its number."""
        text = "# mine\n\nsource=abc==\nhubspot = pat-1\n"
        assert read_credentials(io.StringIO(text)) == {"source": "abc==", "hubspot": "pat-1"}
        with pytest.raises(UsageError, match="line 2"):
            read_credentials(io.StringIO("source=a\nnot a pair\n"))


class Script:
    """A prompter that answers from a list and records everything said and asked."""

    def __init__(self, answers: list[str]) -> None:
        self._answers: Iterator[str] = iter(answers)
        self.transcript: list[str] = []

    def ask(self, question: str, default: str = "") -> str:
        self.transcript.append(f"? {question}")
        return next(self._answers) or default

    def secret(self, question: str) -> str:
        self.transcript.append(f"? {question} (hidden)")
        return next(self._answers)

    def say(self, text: str) -> None:
        self.transcript.append(text)


def _fake_check(instance: Instance, value: str) -> Outcome:
    good = {"source": "src-ok", "hubspot": "hs-ok", "eu": "eu-ok"}
    if value == good.get(instance.name):
        return Outcome("accepted")
    return Outcome("rejected", "the service answered 401")


class TestInterview:
    """The questions on a terminal, with injected answers and checks."""

    def test_rejected_credential_is_asked_again_and_only_the_good_one_kept(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A rejected credential is said, never stored, typed again; two HubSpot instances
        get distinct names; the file passes the config check."""
        plan = Plan(tmp_path / "config.toml")
        store = MemoryTokenStore()
        answers = [
            "",  # source URL: the default
            "src-ok",
            "hubspot",
            "",  # instance name: hubspot
            "",  # data centre: global
            "wrong-token",
            "hs-ok",
            "hubspot",
            "eu",
            "eu1",
            "eu-ok",
            "",  # done
        ]
        script = Script(answers)
        results = interview(plan, script, store, checker=_fake_check)
        said = "\n".join(script.transcript)
        assert "hubspot: api.hubapi.com rejected this credential" in said
        assert "wrong-token" not in said
        assert finish(plan, results, store, io.StringIO(), io.StringIO()) == 0
        assert store.get("hubspot") == "hs-ok"
        assert store.get("eu") == "eu-ok"
        data = tomllib.loads(plan.path.read_text())
        assert data["crm"]["eu"]["base_url"] == "https://api-eu1.hubapi.com"
        assert plan.path.stat().st_mode & 0o777 == 0o600
        assert "OK" in capsys.readouterr().out

    def test_rerun_keeps_the_users_tables_and_comments(self, tmp_path: Path) -> None:
        """Adding a CRM to a hand-edited file keeps [privacy], [daemon] and every comment."""
        path = tmp_path / "config.toml"
        path.write_text(HAND_EDITED)
        plan = Plan(path)
        store = MemoryTokenStore({"source": "s", "hubspot": "h"})
        answers = ["", "n", "pipedrive", "", "acme", "", ""]
        results = interview(plan, Script(answers), store, checker=_fake_check)
        assert results == {"pipedrive": ("", Outcome("skipped"))}
        out = io.StringIO()
        assert finish(plan, results, store, out, io.StringIO()) == 0
        text = path.read_text()
        for line in HAND_EDITED.splitlines():
            assert line in text
        assert tomllib.loads(text)["crm"]["pipedrive"]["base_url"] == "https://acme.pipedrive.com"
        assert "added [crm.pipedrive]" in out.getvalue()
        assert "kept [daemon], [privacy]" in out.getvalue()


class TestFinish:
    """Storing, writing and the exit code once the answers are in."""

    def test_rejected_is_not_stored_and_unreachable_is_stored_unchecked(
        self, tmp_path: Path
    ) -> None:
        """A rejected credential is left out (exit 4, a sentence naming it); one whose
        service could not be asked is stored and said; the config is written all the same."""
        plan = Plan(tmp_path / "config.toml")
        plan_from_flags(_args(crm=["hubspot", "eu=hubspot"]), plan)
        store = MemoryTokenStore()
        results = {
            "source": ("s-ok", Outcome("accepted")),
            "hubspot": ("canary-bad-1", Outcome("rejected", "HubSpot answered 401")),
            "eu": ("canary-maybe-2", Outcome("unchecked", "connection refused")),
        }
        err = io.StringIO()
        assert finish(plan, results, store, io.StringIO(), err) == 4
        assert store.get("hubspot") is None
        assert store.get("eu") == "canary-maybe-2"
        assert store.get("source") == "s-ok"
        assert "syncd: hubspot: the service rejected this credential" in err.getvalue()
        assert "`syncd auth set hubspot`" in err.getvalue()
        assert "eu: the service could not be asked" in err.getvalue()
        assert "canary-" not in err.getvalue()
        assert set(tomllib.loads(plan.path.read_text())["crm"]) == {"hubspot", "eu"}
