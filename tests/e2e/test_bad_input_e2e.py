"""Bad input end to end: the real CLI in a subprocess and the control API over the real
socket, against an in-process daemon and loopback sandboxes (the throwaway stack).

Every row checks what the user sees (the README's exit code or the OpenAPI document's HTTP
status, one sentence, no traceback, no token), that the daemon still serves afterwards, and that
nothing is lost: good people in the same run, or the next one, reach the CRM exactly once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from rig.stack import Stack, throwaway_stack
from sync.control.client import _UnixConnection

pytestmark = pytest.mark.e2e

ADA = "ada-quill"
ZOE = "https://www.linkedin.example/in/zoe-angstrom/"
JOSE = "https://www.linkedin.example/in/jose-nunez/?trk=people#about"
COMPANY = "https://www.linkedin.example/company/acme/"
MiB = 1 << 20


# The stacks are opened inside each test, not in fixtures: a task group must be left by the
# task that entered it, and pytest-asyncio sets fixtures up and tears them down in two.


def hubspot_only(root: Path) -> AbstractAsyncContextManager[Stack]:
    """One CRM is enough to count records; the source is the network's sandbox."""
    return throwaway_stack(root, crms=["hubspot"])


def control_socket(stack: Stack) -> Path:
    """Where the stack's daemon listens."""
    return stack.root / "run" / "syncd.sock"


@dataclass(frozen=True, slots=True)
class Run:
    """One finished CLI process."""

    stdout: str
    stderr: str
    code: int


async def syncd(stack: Stack, *argv: str, config: Path | None = None) -> Run:
    """`syncd ARGV --config <stack's, or config>`, with stdout and stderr kept apart."""
    done = await anyio.run_process(
        [sys.executable, "-m", "sync.cli", *argv, "--config", str(config or stack.config_path)],
        check=False,
        env=stack.env,
    )
    return Run(done.stdout.decode(), done.stderr.decode(), done.returncode)


def secrets_of(stack: Stack) -> Iterator[str]:
    """Every token and stored credential of the stack."""
    for sandbox in stack.running.values():
        yield sandbox.token
        yield sandbox.credential


def assert_clean(stack: Stack, *texts: str) -> None:
    """No traceback and no credential in anything the user was shown."""
    for text in texts:
        assert "Traceback" not in text, text
        for secret in secrets_of(stack):
            assert secret not in text


def one_sentence(stderr: str) -> str:
    """The single stderr line, which must start with `syncd: `."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("syncd: "), stderr
    return lines[0]


def records(stack: Stack) -> int:
    """How many people the CRM sandbox holds."""
    count: int = stack.crms["hubspot"].as_crm.contact_count()
    return count


def nothing_sent(stack: Stack) -> None:
    """Neither the source nor the CRM was asked anything."""
    assert stack.source.sandbox.core.requests == []
    assert stack.crms["hubspot"].sandbox.core.requests == []


async def still_serving(stack: Stack, *, records_before: int) -> None:
    """`syncd status` answers, and one good add reaches the CRM once."""
    status = await syncd(stack, "status")
    assert status.code == 0, status
    added = await syncd(stack, "add-contact", ADA)
    assert added.code == 0, added
    assert added.stdout.startswith("hubspot: "), added
    assert records(stack) == records_before + (1 if "created" in added.stdout else 0)


class TestRefsOnTheCommandLine:
    """A bad REF, --to or --from-file is exit 2, one sentence, and nothing is sent."""

    @pytest.mark.parametrize(
        ("argv", "words"),
        [
            pytest.param(("add-contact", COMPANY), "company pages", id="company-page"),
            pytest.param(
                ("add-contact", "https://www.linkedin.example/in/../company/acme"),
                "not a person's profile",
                id="dot-dot-in-url",
            ),
            pytest.param(
                ("add-contact", "https://www.linkedin.example/in/%2e%2e/"),
                "no valid publicId",
                id="encoded-dot-dot",
            ),
            pytest.param(("add-contact", "../ada-quill"), "not a profile", id="dot-dot-bare"),
            pytest.param(("add-contact", "ada quill"), "spaces", id="space"),
            pytest.param(("add-contact", "zoë-ångström"), "non-ASCII", id="non-ascii"),
            pytest.param(("add-contact", "a"), "not a profile", id="one-char"),
            pytest.param(("add-contact", "a" * 101), "not a profile", id="101-chars"),
            pytest.param(
                ("add-contact", "http://www.linkedin.example/in/ada-quill/"),
                "not a profile",
                id="http-url",
            ),
            pytest.param(("add-contact", ADA, "ada quill"), "argument 2", id="good-then-bad"),
            pytest.param(("add-contact", ADA, "--to", "nowhere"), "nowhere", id="unknown-to"),
            pytest.param(
                ("add-contact", ADA, "--to", "hubspot,nowhere"), "nowhere", id="one-unknown-to"
            ),
            pytest.param(("add-contact",), "no person to add", id="no-ref"),
            pytest.param(
                ("add-contact", "--from-file", "/nonexistent/refs.txt"),
                "does not exist",
                id="missing-file",
            ),
            pytest.param(("check", COMPANY), "company pages", id="check-company-page"),
            pytest.param(("check", "a" * 101), "not a profile", id="check-101-chars"),
            pytest.param(("check", ADA, "--to", "nowhere"), "nowhere", id="check-unknown-to"),
        ],
    )
    async def test_refused(self, tmp_path: Path, argv: tuple[str, ...], words: str) -> None:
        """Exit 2 with one sentence that names the problem; the daemon carries on."""
        async with hubspot_only(tmp_path) as stack:
            run = await syncd(stack, *argv)
            assert run.code == 2, run
            assert words in one_sentence(run.stderr)
            assert run.stdout == ""
            assert_clean(stack, run.stdout, run.stderr)
            nothing_sent(stack)
            await still_serving(stack, records_before=0)

    async def test_from_file_not_utf8(self, tmp_path: Path) -> None:
        """A --from-file that is not text is exit 2 and one sentence."""
        async with hubspot_only(tmp_path) as stack:
            refs = tmp_path / "refs.txt"
            refs.write_bytes(b"ada-quill\n\xff\xfe\x00bad\n")
            run = await syncd(stack, "add-contact", "--from-file", str(refs))
            assert run.code == 2, run
            assert "not UTF-8" in one_sentence(run.stderr)
            assert_clean(stack, run.stdout, run.stderr)
            nothing_sent(stack)
            await still_serving(stack, records_before=0)

    async def test_from_file_bad_lines_are_reported_and_good_ones_go(self, tmp_path: Path) -> None:
        """Each bad line is one sentence with its number; the good lines reach the CRM once."""
        async with hubspot_only(tmp_path) as stack:
            refs = tmp_path / "refs.txt"
            refs.write_text(
                "# people from the fair\n"
                f"{ADA}\n"
                "\n"
                f"{COMPANY}\n"
                f"{ZOE}\n"
                "ada quill\n"
                f"{JOSE}\n"
                "a\n"
                "élodie-brun\n",
                encoding="utf-8",
            )
            run = await syncd(stack, "add-contact", "--from-file", str(refs))
            assert run.code == 2, run
            *bad, count = run.stderr.splitlines()
            assert [line.split(":")[1] for line in bad] == [
                " line 4",
                " line 6",
                " line 8",
                " line 9",
            ]
            assert all(line.startswith("syncd: line ") for line in bad)
            assert count == "syncd: 4 line(s) named no person and were skipped"
            outcomes = [line for line in run.stdout.splitlines() if ": hubspot: " in line]
            assert len(outcomes) == 3, run
            assert all(": hubspot: created " in line for line in outcomes), run
            assert_clean(stack, run.stdout, run.stderr)
            assert records(stack) == 3
            again = await syncd(stack, "add-contact", "--from-file", str(refs))
            assert again.code == 2
            repeated = [line for line in again.stdout.splitlines() if ": hubspot: " in line]
            assert len(repeated) == 3, again
            assert all(": hubspot: unchanged " in line for line in repeated), again
            assert records(stack) == 3
            await still_serving(stack, records_before=3)

    @pytest.mark.slow
    async def test_from_file_over_a_mebibyte_goes_in_several_calls(self, tmp_path: Path) -> None:
        """Long (valid) URLs adding up to more than one request body may hold are all accepted,
        and each person reaches the CRM once."""
        async with hubspot_only(tmp_path) as stack:
            refs = tmp_path / "refs.txt"
            long_urls = [f"{ZOE}?utm_campaign={'x' * 110_000}&n={n}" for n in range(10)]
            refs.write_text("\n".join([ADA, *long_urls]) + "\n", encoding="utf-8")
            assert refs.stat().st_size > MiB
            assert (await syncd(stack, "pause")).code == 0
            run = await syncd(stack, "add-contact", "--from-file", str(refs))
            assert (run.code, run.stdout, run.stderr) == (0, "queued: syncd is paused\n", "")
            assert stack.daemon.state.pending() == 11
            assert (await syncd(stack, "resume")).code == 0
            with anyio.fail_after(30):
                for tracked in list(stack.daemon.state.tracked.values()):
                    await tracked.finished.wait()
            assert records(stack) == 2
            await still_serving(stack, records_before=2)


def _call(
    socket_path: Path, method: str, path: str, body: bytes | None, *, chunked: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One raw request over the control socket: (status, headers, body)."""
    conn = _UnixConnection(socket_path, 30.0)
    try:
        if chunked and body is not None:
            pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
            conn.request(method, path, body=iter(pieces), encode_chunked=True)
        else:
            conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


class TestControlApi:
    """Bad requests over the real socket get their status and `{"error": <sentence>}`."""

    @pytest.mark.parametrize(
        ("method", "path", "body", "status", "words"),
        [
            pytest.param(
                "POST",
                "/v1/selections",
                _json({"refs": [ADA] * (MiB // 10)}),
                413,
                "larger than",
                id="huge-body",
            ),
            pytest.param(
                "POST",
                "/v1/selections",
                _json({"refs": [ADA] * 10_001}),
                413,
                "at most 10000",
                id="too-many-refs",
            ),
            pytest.param("POST", "/v1/selections", b"refs=ada-quill", 400, "JSON", id="form"),
            pytest.param("POST", "/v1/selections", b"", 400, "JSON", id="empty-body"),
            pytest.param(
                "POST", "/v1/selections", b'{"refs": ["\xff\xfe"]}', 400, "UTF-8", id="bad-utf8"
            ),
            pytest.param("POST", "/v1/selections", b"<html>hi</html>", 400, "JSON", id="html-body"),
            pytest.param("POST", "/v1/selections", _json([ADA]), 422, "JSON object", id="array"),
            pytest.param(
                "POST", "/v1/selections", _json({"refs": ADA}), 422, "list", id="refs-string"
            ),
            pytest.param(
                "POST", "/v1/selections", _json({"refs": [1]}), 422, "list", id="refs-int"
            ),
            pytest.param(
                "POST", "/v1/selections", _json({"refs": []}), 422, "non-empty", id="refs-empty"
            ),
            pytest.param(
                "POST",
                "/v1/selections",
                _json({"refs": [ADA], "to": "hubspot"}),
                422,
                "list of CRM",
                id="to-string",
            ),
            pytest.param(
                "POST",
                "/v1/selections",
                _json({"refs": [ADA], "to": [1]}),
                422,
                "list of CRM",
                id="to-int",
            ),
            pytest.param(
                "POST",
                "/v1/selections",
                _json({"refs": [ADA], "with_messages": "yes"}),
                422,
                "true or false",
                id="with-messages-string",
            ),
            pytest.param(
                "POST",
                "/v1/selections",
                _json({"refs": [ADA], "priority": 1}),
                422,
                "unknown field",
                id="unknown-field",
            ),
            pytest.param(
                "POST",
                "/v1/selections",
                _json({"refs": [ADA], "to": ["hubspot", "nowhere"]}),
                422,
                "nowhere",
                id="unknown-to",
            ),
            pytest.param(
                "POST",
                "/v1/selections",
                _json({"refs": [ADA, COMPANY]}),
                422,
                "refs[1]",
                id="good-and-company-page",
            ),
            pytest.param(
                "POST",
                "/v1/selections",
                _json({"refs": ["a" * 101]}),
                422,
                "refs[0]",
                id="101-chars",
            ),
            pytest.param(
                "POST",
                "/v1/selections",
                _json({"refs": ["zoë"]}),
                422,
                "non-ASCII",
                id="non-ascii",
            ),
            pytest.param("POST", "/v1/check", _json({"ref": 7}), 422, "ref", id="check-ref-int"),
            pytest.param(
                "POST", "/v1/check", _json({"ref": COMPANY}), 422, "company", id="check-company"
            ),
            pytest.param(
                "POST",
                "/v1/check",
                _json({"ref": ADA, "to": ["nowhere"]}),
                422,
                "nowhere",
                id="check-unknown-to",
            ),
            pytest.param("POST", "/v1/check", b"{", 400, "JSON", id="check-not-json"),
            pytest.param(
                "GET", "/v1/selections/sel_0000000000000000", None, 404, "no selection", id="404"
            ),
            pytest.param("GET", "/v2/status", None, 404, "Not Found", id="unknown-path"),
            pytest.param("DELETE", "/v1/status", None, 405, "Not Allowed", id="wrong-method"),
        ],
    )
    async def test_refused(
        self,
        tmp_path: Path,
        method: str,
        path: str,
        body: bytes | None,
        status: int,
        words: str,
    ) -> None:
        """The status and one sentence; nothing queued; the daemon carries on."""
        async with hubspot_only(tmp_path) as stack:
            got, headers, raw = await anyio.to_thread.run_sync(
                _call, control_socket(stack), method, path, body
            )
            assert got == status, raw
            answer = json.loads(raw)
            assert list(answer) == ["error"]
            sentence = answer["error"]
            assert words in sentence
            assert "\n" not in sentence
            assert_clean(stack, sentence)
            if status == 405:
                assert set(headers.get("allow", "").split(", ")) == {"GET", "HEAD"}
            nothing_sent(stack)
            await still_serving(stack, records_before=0)

    async def test_huge_chunked_body(self, tmp_path: Path) -> None:
        """A body over 1 MiB without a Content-Length is cut off at 1 MiB with a 413."""
        async with hubspot_only(tmp_path) as stack:
            body = _json({"refs": [ADA] * (MiB // 10)})
            got, _, raw = await anyio.to_thread.run_sync(
                lambda: _call(control_socket(stack), "POST", "/v1/selections", body, chunked=True)
            )
            assert got == 413
            assert "larger than" in json.loads(raw)["error"]
            nothing_sent(stack)
            await still_serving(stack, records_before=0)


class TestSourceAnswersGarbage:
    """A source that answers something syncd cannot read fails that person, exit 1, with a
    sentence on their CRM line; the others in the same run go, and a retry later works."""

    @pytest.mark.parametrize(
        ("status", "body", "content_type", "words"),
        [
            pytest.param(200, b'{"id": "x", "firstName": ', "application/json", "JSON", id="json"),
            pytest.param(200, b"[1, 2, 3]", "application/json", "JSON", id="json-array"),
            pytest.param(
                200,
                b"<!DOCTYPE html><html><body>Sign in to continue</body></html>",
                "text/html; charset=utf-8",
                "JSON",
                id="html-login-wall",
            ),
            pytest.param(999, b"", None, "999", id="status-999-raw"),
        ],
    )
    async def test_one_person_fails_others_go(
        self, tmp_path: Path, status: int, body: bytes, content_type: str | None, words: str
    ) -> None:
        """Only Ada's profile answers garbage: Ada fails (exit 1), Zoë is created once."""
        async with hubspot_only(tmp_path) as stack:
            stack.source.sandbox.core.fail_next(
                status,
                body=body,
                content_type=content_type,
                path_prefix=f"/api/v1/profiles/{ADA}",
            )
            run = await syncd(stack, "add-contact", ADA, ZOE)
            assert run.code == 1, run
            assert run.stderr == ""
            lines = dict(line.split(": hubspot: ", 1) for line in run.stdout.splitlines())
            assert lines[ZOE].startswith("created "), run
            assert lines[ADA].startswith("failed: "), run
            assert words in lines[ADA]
            assert_clean(stack, run.stdout, run.stderr)
            assert records(stack) == 1
            await still_serving(stack, records_before=1)

    async def test_bot_defence(self, tmp_path: Path) -> None:
        """The network's bot defence (999) fails the person with a sentence saying to wait;
        nothing is retried, and a later add goes through."""
        async with hubspot_only(tmp_path) as stack:
            stack.source.sandbox.bot_defence(1)
            run = await syncd(stack, "add-contact", ADA)
            assert run.code == 1, run
            assert run.stderr == ""
            assert run.stdout.startswith("hubspot: failed: "), run
            assert "999" in run.stdout
            assert "wait" in run.stdout
            assert_clean(stack, run.stdout, run.stderr)
            # The profile and its contact info are read side by side; neither is retried.
            asked = stack.source.sandbox.core.requests
            assert 999 in [r.status for r in asked]
            assert len(asked) == len({r.path for r in asked}) <= 2
            assert records(stack) == 0
            await still_serving(stack, records_before=0)


BAD_CONFIG = """\
colour = "blue"

[daemon]
log_level = "loud"
log_file = 3
listen = "0.0.0.0:80"

[source]
base_url = "http://www.linkedin.example/api"

[crm.hubspot]
type = "hubspot"
base_url = "http://api.hubapi.example"
api_token = "canary-config-token-5e1d"
overwrite = ["first_name", "shoe_size"]

[crm.Sales]
type = "hubspot"

[crm.notes]
type = "evernote"

[match]
strict = "yes"

[privacy]
blocked_email_domains = ["@gmail.com"]
fields = ["email", "ssn"]
blocked_companies = "Acme"
"""

BAD_CONFIG_KEYS = [
    "colour",
    "daemon.log_level",
    "daemon.log_file",
    "daemon.listen",
    "source.type",
    "source.base_url",
    "crm.hubspot.base_url",
    "crm.hubspot.api_token",
    "crm.hubspot.overwrite",
    "crm.Sales",
    "crm.notes.type",
    "match.strict",
    "privacy.blocked_email_domains",
    "privacy.fields",
    "privacy.blocked_companies",
]


class TestConfigCheck:
    """`syncd config check` lists every problem at once, each with its key and file."""

    async def test_every_kind_of_mistake(self, tmp_path: Path) -> None:
        """Exit 2; a first sentence, then one line per problem naming its key and the file;
        the value that looks like a token is never repeated; the running daemon is unmoved."""
        async with hubspot_only(tmp_path) as stack:
            bad = tmp_path / "bad.toml"
            bad.write_text(BAD_CONFIG, encoding="utf-8")
            run = await syncd(stack, "config", "check", config=bad)
            assert run.code == 2, run
            assert run.stdout == ""
            first, *problems = run.stderr.splitlines()
            assert first.startswith(f"syncd: the config has {len(problems)} problems"), first
            assert all(line.startswith(f"  {bad}: ") for line in problems), run.stderr
            keys = [line.removeprefix(f"  {bad}: ").split(": ")[0] for line in problems]
            assert sorted(keys) == sorted(BAD_CONFIG_KEYS), keys
            assert "canary-config-token-5e1d" not in run.stderr
            assert_clean(stack, run.stdout, run.stderr)
            good = await syncd(stack, "config", "check")
            assert good.code == 0, good
            await still_serving(stack, records_before=0)

    async def test_syntax_error(self, tmp_path: Path) -> None:
        """A file TOML cannot parse is one problem with its line; nothing is quoted."""
        async with hubspot_only(tmp_path) as stack:
            bad = tmp_path / "bad.toml"
            bad.write_text('[source]\ntype = "linkedin\n', encoding="utf-8")
            run = await syncd(stack, "config", "check", config=bad)
            assert run.code == 2, run
            first, problem = run.stderr.splitlines()
            assert first.startswith("syncd: the config has 1 problem;")
            assert problem.startswith(f"  {bad}: TOML syntax error at line 2")
            await still_serving(stack, records_before=0)
