"""Another library's log record keeps its logger and level, never its text (P1, P2).

asyncio's "Task exception was never retrieved" is the case in point: its message holds the
task's repr, with the exception's text and the task's name, where a person's name or a
profile path would be.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync import log

NAME = "Adalinda Canaryperson"
PROFILE_PATH = "/in/adalinda-canary-77"
EMAIL = "ada.canary@engines.example"
CANARIES = ("Canaryperson", "adalinda-canary-77", "ada.canary", "CanaryTaskName")


class ProfileFetchFailed(Exception):
    """An error whose text quotes what the failing code held, as real ones do."""


async def fetch_profile() -> None:
    raise ProfileFetchFailed(f"could not read {NAME} at {PROFILE_PATH} <{EMAIL}>")


def leave_a_task_exception_unretrieved() -> None:
    """Make asyncio log "Task exception was never retrieved" for a task whose exception
    and name carry the canaries."""
    loop = asyncio.new_event_loop()
    try:

        async def main() -> None:
            task = loop.create_task(fetch_profile(), name=f"CanaryTaskName {NAME}")
            await asyncio.wait([task])  # done, its exception never asked for

        loop.run_until_complete(main())
        gc.collect()  # the dropped task is collected here and logs through the loop
    finally:
        loop.close()


def assert_clean(text: str) -> None:
    for canary in CANARIES:
        assert canary.lower() not in text.lower(), canary
    assert "never retrieved" not in text
    assert "could not read" not in text


def flush() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Path]:
    """A JSON log file plus console lines on stderr, as `syncd run` in a terminal has."""
    path = tmp_path / "log" / "syncd.log"
    log.configure("debug", path, console=True)
    yield path
    log.reset()


class TestAsyncioTaskException:
    """An unretrieved task exception logs its logger, level, type and frames only."""

    def test_no_canary_in_file_or_console(
        self, sink: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Neither the log file nor the console holds the name, profile path or message."""
        leave_a_task_exception_unretrieved()
        flush()
        text = sink.read_text(encoding="utf-8")
        console = capsys.readouterr()
        assert_clean(text)
        assert_clean(console.err + console.out)
        assert log.FOREIGN_EVENT in console.err

    def test_logger_level_type_and_frames_are_kept(self, sink: Path) -> None:
        """The line says asyncio logged an error of type ProfileFetchFailed, and where."""
        leave_a_task_exception_unretrieved()
        flush()
        lines = [json.loads(line) for line in sink.read_text(encoding="utf-8").splitlines()]
        (line,) = [line for line in lines if line["level"] == "error"]
        assert line["logger"] == "asyncio"
        assert line["event"] == log.FOREIGN_EVENT
        assert line["level"] == "error"
        assert line["error_type"] == "ProfileFetchFailed"
        assert line["traceback"][-1].endswith(":fetch_profile")
        assert set(line) <= {*log.ALLOWED_KEYS, "traceback"}


class TestOtherLibraries:
    """uvicorn and httpx records, with text and arguments, keep neither."""

    @pytest.mark.parametrize(
        ("logger", "level"),
        [
            pytest.param("uvicorn.error", logging.ERROR, id="uvicorn"),
            pytest.param("httpx", logging.WARNING, id="httpx"),
            pytest.param("anyio.something", logging.INFO, id="any-other"),
        ],
    )
    def test_message_and_args_are_dropped(self, logger: str, level: int, sink: Path) -> None:
        """A preformatted message and %-arguments alike are gone; logger and level stay."""
        logging.getLogger(logger).log(level, f"failed for {NAME}: %s", PROFILE_PATH)
        flush()
        text = sink.read_text(encoding="utf-8")
        assert_clean(text)
        (line,) = [json.loads(raw) for raw in text.splitlines()]
        assert line["logger"] == logger
        assert line["level"] == logging.getLevelName(level).lower()
        assert line["event"] == log.FOREIGN_EVENT

    def test_an_exception_keeps_type_not_text(self, sink: Path) -> None:
        """logger.exception() keeps the exception's type and frames, never its text."""
        try:
            asyncio.run(fetch_profile())
        except ProfileFetchFailed:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        flush()
        text = sink.read_text(encoding="utf-8")
        assert_clean(text)
        assert "ASGI" not in text
        (line,) = [json.loads(raw) for raw in text.splitlines() if "uvicorn" in raw]
        assert line["error_type"] == "ProfileFetchFailed"
