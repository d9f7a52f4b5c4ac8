"""Logs hold no one's data and no credential, whatever the code passes them (P1, P2)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from sync import log

EMAIL = "ada.canary@engines.example"
TOKEN = "tok_CANARY9f8e7d6c5b4a39281716"
NAME = "Adalinda Canaryperson"
PUBLIC_ID = "adalinda-canary-77"
URL = f"https://www.linkedin.example/in/{PUBLIC_ID}/?trk=x"
CANARIES = (EMAIL, TOKEN, NAME, PUBLIC_ID, "Canaryperson", "CANARY9f8e")


def fail_with(error: BaseException) -> None:
    raise error


def assert_clean(text: str) -> None:
    for canary in CANARIES:
        assert canary.lower() not in text.lower(), canary


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Path]:
    """A configured JSON log file at debug level, in a directory that does not exist yet."""
    path = tmp_path / "state" / "log" / "syncd.log"
    log.configure("debug", path)
    yield path
    log.reset()


def lines(path: Path) -> list[dict[str, Any]]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


PLACES = [
    pytest.param({"person": NAME}, id="arbitrary-key-name"),
    pytest.param({"email": EMAIL}, id="arbitrary-key-email"),
    pytest.param({"headers": {"Authorization": f"Bearer {TOKEN}"}}, id="arbitrary-key-dict"),
    pytest.param({"crm": NAME}, id="allowed-key-name"),
    pytest.param({"status": NAME}, id="allowed-status-name"),
    pytest.param({"code": EMAIL}, id="allowed-key-email"),
    pytest.param({"error_type": TOKEN}, id="allowed-key-token"),
    pytest.param({"request_id": f"Bearer {TOKEN}"}, id="allowed-key-bearer"),
    pytest.param({"path_kind": URL}, id="allowed-key-profile-url"),
    pytest.param({"outcome": f"authorization={TOKEN}"}, id="allowed-key-header"),
    pytest.param({"state": [EMAIL, TOKEN]}, id="allowed-key-list"),
    pytest.param({"count": object()}, id="allowed-key-object"),
]


class TestRedaction:
    """Canary data passed anywhere never reaches the JSON file."""

    @pytest.mark.parametrize("fields", PLACES)
    def test_canary_in_fields(self, fields: dict[str, object], sink: Path) -> None:
        """Under any key, allowed or not, the canary is replaced."""
        log.get_logger("syncd.test").info("relay.done", **fields)
        assert_clean(sink.read_text(encoding="utf-8"))
        (line,) = lines(sink)
        assert line["event"] == "relay.done"

    @pytest.mark.parametrize(
        "event",
        [NAME, f"relayed {EMAIL}", f"GET {URL}", TOKEN, f"relay.{PUBLIC_ID}.done x"],
    )
    def test_canary_in_event(self, event: str, sink: Path) -> None:
        """An event that is not a dotted name is dropped: free text is where data leaks."""
        log.get_logger("syncd.test").warning(event)
        assert_clean(sink.read_text(encoding="utf-8"))
        assert lines(sink)[0]["event"] == log.REDACTED

    def test_allowed_values_pass(self, sink: Path) -> None:
        """Ids, codes and counts under allowed keys are kept as they are."""
        log.get_logger("syncd.relay").info(
            "target.done",
            selection_id="sel_0123456789abcdef",
            crm="hubspot",
            outcome="created",
            http_status=201,
            request_id="4b2c9a8e-1f3d-4e5a-9b7c-0d1e2f3a4b5c",
            duration_ms=12.5,
            code="INVALID_SESSION_ID",
        )
        (line,) = lines(sink)
        assert line["selection_id"] == "sel_0123456789abcdef"
        assert line["crm"] == "hubspot"
        assert line["outcome"] == "created"
        assert line["http_status"] == 201
        assert line["request_id"] == "4b2c9a8e-1f3d-4e5a-9b7c-0d1e2f3a4b5c"
        assert line["duration_ms"] == 12.5
        assert line["code"] == "INVALID_SESSION_ID"
        assert line["level"] == "info"
        assert line["logger"] == "syncd.relay"
        assert "timestamp" in line

    def test_contextvars(self, sink: Path) -> None:
        """Values bound with structlog.contextvars are redacted the same way."""
        structlog.contextvars.bind_contextvars(selection_id="sel_1", person=NAME)
        try:
            log.get_logger("syncd.test").info("relay.started")
        finally:
            structlog.contextvars.clear_contextvars()
        (line,) = lines(sink)
        assert line["selection_id"] == "sel_1"
        assert line["person"] == log.REDACTED

    def test_level_filter(self, tmp_path: Path) -> None:
        """Below the configured level nothing is written."""
        path = tmp_path / "syncd.log"
        log.configure("warning", path)
        try:
            log.get_logger("syncd.test").info("relay.done")
            log.get_logger("syncd.test").warning("relay.slow")
            assert [line["event"] for line in lines(path)] == ["relay.slow"]
        finally:
            log.reset()


class TestExceptions:
    """A traceback is reduced to the exception's type name and its code frames."""

    def test_structlog_exception(self, sink: Path) -> None:
        """log.exception() keeps error_type and drops the message and traceback."""
        try:
            fail_with(ValueError(f"could not relay {EMAIL} ({NAME})"))
        except ValueError:
            log.get_logger("syncd.test").exception("relay.crashed")
        text = sink.read_text(encoding="utf-8")
        assert_clean(text)
        assert "Traceback" not in text
        (line,) = lines(sink)
        assert line["error_type"] == "ValueError"
        outer, inner = line["traceback"][-2:]
        assert outer.startswith("test_log.py:")
        assert outer.endswith(":test_structlog_exception")
        assert inner == f"test_log.py:{fail_with.__code__.co_firstlineno + 1}:fail_with"

    def test_stdlib_exception(self, sink: Path) -> None:
        """A stdlib record with exc_info is reduced the same way."""
        try:
            fail_with(KeyError(TOKEN))
        except KeyError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        text = sink.read_text(encoding="utf-8")
        assert_clean(text)
        assert "Traceback" not in text
        assert lines(sink)[0]["error_type"] == "KeyError"
        frame = f"test_log.py:{fail_with.__code__.co_firstlineno + 1}:fail_with"
        assert lines(sink)[0]["traceback"][-1] == frame

    def test_a_forged_traceback_value_is_redacted(self, sink: Path) -> None:
        """A `traceback` key passed by hand keeps only frame-shaped entries."""
        log.get_logger("syncd.test").info("x.y", traceback=["a.py:1:f", f"{NAME} {EMAIL}"])
        assert lines(sink)[0]["traceback"] == ["a.py:1:f", log.REDACTED]

    def test_frames_of_a_deep_error_are_capped(self) -> None:
        """A runaway recursion logs its innermost frames only, never thousands of lines."""

        def down(n: int) -> None:
            if n == 0:
                raise RuntimeError(NAME)
            down(n - 1)

        try:
            down(200)
        except RuntimeError as error:
            shown = log.frames(error)
        assert len(shown) == log.MAX_FRAMES
        assert shown[-1].endswith(":down")


class TestRetryLines:
    """A retry's log line keeps what it is for: the CRM, attempt, wait and reason."""

    def test_retry_line_survives_redaction(self, sink: Path) -> None:
        """tenacity's before_sleep hook logs codes that the redaction lets through."""
        from tenacity import RetryAction, RetryCallState, Retrying

        from sync.errors import RetryableError
        from sync.retry import RetryPolicy

        policy = RetryPolicy()
        state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
        error = RetryableError("hubspot", "hubspot answered HTTP 503", status=503)
        state.set_exception((RetryableError, error, None))
        state.next_action = RetryAction(1.5)
        policy.before_sleep("hubspot", "POST")(state)
        (line,) = lines(sink)
        assert {k: line[k] for k in ("event", "crm", "what", "attempt", "wait_s", "reason")} == {
            "event": "retry.scheduled",
            "crm": "hubspot",
            "what": "POST",
            "attempt": 1,
            "wait_s": 1.5,
            "reason": "http_503",
        }


class TestForeignRecords:
    """Records of stdlib loggers (httpx, uvicorn, asyncio) keep their logger and level only
    (tests/unit/test_foreign_logs.py has asyncio's unretrieved task exception)."""

    def test_httpx_style_args_dropped(self, sink: Path) -> None:
        """Neither the URL passed as an argument nor the template reaches the file."""
        logging.getLogger("uvicorn.error").warning(
            'HTTP Request: %s %s "%s %d %s"', "GET", URL, "HTTP/1.1", 200, "OK"
        )
        assert_clean(sink.read_text(encoding="utf-8"))
        assert "HTTP Request" not in sink.read_text(encoding="utf-8")
        (line,) = lines(sink)
        assert line["event"] == log.FOREIGN_EVENT
        assert line["logger"] == "uvicorn.error"
        assert line["level"] == "warning"

    def test_httpx_is_quiet(self, sink: Path) -> None:
        """httpx and httpcore log only warnings, even at debug level."""
        logging.getLogger("httpx").info("HTTP Request: %s %s", "GET", URL)
        logging.getLogger("httpcore.http11").debug("send_request_headers.started %s", TOKEN)
        assert sink.read_text(encoding="utf-8") == ""

    def test_preformatted_message_dropped(self, sink: Path) -> None:
        """A message formatted before logging, or not a string at all, is not kept."""
        logging.getLogger("asyncio").error(f"failed {URL} for {EMAIL} with Bearer {TOKEN}")
        logging.getLogger("asyncio").error(ValueError(NAME))  # a non-string message
        logging.getLogger("uvicorn.error").error("Adalinda Canaryperson went wrong")
        assert_clean(sink.read_text(encoding="utf-8"))
        assert "failed" not in sink.read_text(encoding="utf-8")
        assert [line["event"] for line in lines(sink)] == [log.FOREIGN_EVENT] * 3


class TestSinks:
    """The log file is private; stderr gets the same redaction."""

    def test_old_rotated_files_are_deleted(self, tmp_path: Path) -> None:
        """Rotated files older than log_keep_days go at start; newer ones and others stay."""
        import os
        import time

        folder = tmp_path / "log"
        folder.mkdir(mode=0o700)
        old, recent, other = folder / "syncd.log.3", folder / "syncd.log.1", folder / "notes.1"
        for path in (old, recent, other):
            path.write_text("{}\n")
        month_ago = time.time() - 31 * 86_400
        for path in (old, other):
            os.utime(path, (month_ago, month_ago))
        log.configure("info", folder / "syncd.log", keep_days=30)
        log.reset()
        assert sorted(p.name for p in folder.iterdir()) == ["notes.1", "syncd.log", "syncd.log.1"]

    def test_file_modes(self, sink: Path) -> None:
        """The file is created 0600 and its new directories 0700."""
        log.get_logger("syncd.test").info("daemon.started")
        assert sink.stat().st_mode & 0o777 == 0o600
        assert sink.parent.stat().st_mode & 0o777 == 0o700
        assert sink.parent.parent.stat().st_mode & 0o777 == 0o700

    def test_existing_file_tightened(self, tmp_path: Path) -> None:
        """A log file left readable by others is made 0600 again."""
        path = tmp_path / "syncd.log"
        path.write_text("", encoding="utf-8")
        path.chmod(0o644)
        log.configure("info", path)
        try:
            assert path.stat().st_mode & 0o777 == 0o600
        finally:
            log.reset()

    @pytest.mark.parametrize("console", [False, True], ids=["json", "console"])
    def test_stderr(self, console: bool, capsys: pytest.CaptureFixture[str]) -> None:
        """Logging to stderr, as JSON or for a human, is redacted too."""
        log.configure("info", None, console=console)
        try:
            log.get_logger("syncd.test").info("relay.done", crm="hubspot", person=NAME, e=EMAIL)
            logging.getLogger("uvicorn.error").warning("GET %s", URL)
        finally:
            log.reset()
        err = capsys.readouterr().err
        assert "relay.done" in err
        assert "hubspot" in err
        assert_clean(err)
        if not console:
            assert json.loads(err.splitlines()[0])["person"] == log.REDACTED

    def test_file_and_console(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """console=True with a file writes JSON to the file and readable lines to stderr."""
        path = tmp_path / "syncd.log"
        log.configure("info", path, console=True)
        try:
            log.get_logger("syncd.test").info("daemon.started", pid=42)
        finally:
            log.reset()
        assert json.loads(path.read_text(encoding="utf-8"))["pid"] == 42
        assert "daemon.started" in capsys.readouterr().err


class TestScrubAndCapture:
    """The pieces others use directly."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param(f"to {EMAIL}", "to [email]", id="email"),
            pytest.param(f"Authorization: Bearer {TOKEN}", "Authorization: [redacted]", id="auth"),
            pytest.param(f"x-api-token={TOKEN[:10]}", "x-api-token=[redacted]", id="api-token"),
            pytest.param(
                f"GET {URL}", "GET https://www.linkedin.example/in/[redacted]/?trk=x", id="in"
            ),
            pytest.param(f"id {TOKEN}", "id [redacted]", id="long-token"),
            pytest.param(
                "connector.hubspot.request_retrying",
                "connector.hubspot.request_retrying",
                id="dotted",
            ),
            pytest.param("short-id-123", "short-id-123", id="short"),
        ],
    )
    def test_scrub(self, text: str, expected: str) -> None:
        """Each shape is replaced; dotted event names and short ids are kept."""
        assert log.scrub(text) == expected

    def test_capture(self) -> None:
        """capture() yields event dicts as the redaction leaves them."""
        with log.capture() as entries:
            log.get_logger("syncd.test").info("relay.done", crm="hubspot", email=EMAIL)
        assert entries == [
            {"event": "relay.done", "crm": "hubspot", "email": log.REDACTED, "log_level": "info"}
        ]


class TestLogCallsUseAllowedKeys:
    """Every key a log call in syncd's code passes survives the redaction (else the line is
    silently useless: its value comes out ``[redacted]``)."""

    def test_every_log_key_is_allowed(self) -> None:
        """No `log.<level>(...)` call in sync/, connectors/ or rig/ uses a key off the list."""
        import ast

        root = Path(__file__).resolve().parents[1]
        levels = {"debug", "info", "warning", "error", "exception", "critical"}
        unknown: list[str] = []
        for package in ("sync", "connectors", "rig"):
            for path in sorted((root / package).rglob("*.py")):
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                    if not (
                        isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute)
                        and node.func.attr in levels
                        and isinstance(node.func.value, ast.Name)
                        and node.func.value.id == "log"
                    ):
                        continue
                    unknown += [
                        f"{path.relative_to(root)}:{node.lineno}: {k.arg}"
                        for k in node.keywords
                        if k.arg and k.arg != "exc_info" and k.arg not in log.ALLOWED_KEYS
                    ]
        assert unknown == []
