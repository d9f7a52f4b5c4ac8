"""Logging: structlog configured once, every line redacted before it is rendered (P1, P2).

Only keys on an allow-list keep their values; those must look like codes or ids (no
spaces, so no full name) and are still scrubbed of anything shaped like an email, a
credential, a profile path or a long token. Event names are dotted identifiers
(``relay.done``); free text from our own code is dropped, because that is where people's
data would leak. Records of other libraries' stdlib loggers (httpx, uvicorn, asyncio's
"Task exception was never retrieved") keep their logger name and level under the fixed
event :data:`FOREIGN_EVENT`: never their message, arguments or exception text, which
quote whatever the failing code held; an exception keeps its type and code frames.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import re
import sys
import time
import traceback
from collections.abc import Iterator
from io import TextIOWrapper
from pathlib import Path
from typing import TextIO

import structlog
from structlog.stdlib import ProcessorFormatter
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from sync.private_paths import open_private_file

REDACTED = "[redacted]"
#: The event name of every record from another library's stdlib logger.
FOREIGN_EVENT = "foreign.record"
ALLOWED_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger", "selection_id", "instance", "connector",
        "crm", "outcome", "status", "http_status", "request_id", "code", "count", "attempt",
        "retry_after", "duration_ms", "state", "queue", "pid", "version", "path_kind",
        "error_type", "uid", "what", "wait_s", "reason", "left_in_journal", "selections",
        "damaged_files", "set_aside", "interruptions", "segment", "file", "written",
        "failures",
    }
)  # fmt: skip
QUIET_LOGGERS = ("httpx", "httpcore", "hpack")  # they log full URLs and headers at INFO/DEBUG
_META = ("_record", "_from_structlog")  # ProcessorFormatter's bookkeeping, removed before output
_OWN = ("level", "timestamp")
_EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")
_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[^\s,;\"']+")
_NAMED = re.compile(
    r"(?i)\b(authorization|x-api-token|api[_-]?key|access_token|refresh_token|client_secret"
    r"|password|secret|token)(\"?\s*[:=]\s*\"?)(?:(?:bearer|basic)\s+)?[^\s,;&\"']+"
)
_PROFILE = re.compile(r"/in/[^\s/?#\"']+")
_LONG = re.compile(r"[A-Za-z0-9_.\-]{24,}")
_DOTTED = re.compile(r"[a-z][a-z0-9]*(?:[._][a-z0-9]+)*\.[a-z0-9]+(?:[._][a-z0-9]+)*")
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_EVENT = re.compile(r"[a-z][a-z0-9_]*(?:[.:][a-z0-9_]+)*")
_WORD = re.compile(r"\S{1,100}")  # allowed values are codes and ids: a space means prose
_NAME_KEYS = ("instance", "connector", "crm")
_FRAME = re.compile(r"[\w.-]{1,80}\.py:\d{1,6}:[\w<>]{1,80}")  # file.py:line:function
_INSTANCE = re.compile(r"[a-z][a-z0-9_-]{0,31}")

#: How many of the innermost frames an error's logged traceback keeps.
MAX_FRAMES = 30
#: The log rotates at this size, keeping this many older files.
LOG_MAX_BYTES = 10 << 20
LOG_BACKUPS = 5

_installed: list[logging.Handler] = []


def scrub(text: str) -> str:
    """``text`` without emails, credentials, profile paths and long token-like runs."""
    text = _EMAIL.sub("[email]", text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _NAMED.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _PROFILE.sub(f"/in/{REDACTED}", text)
    return _LONG.sub(lambda m: m.group(0) if _DOTTED.fullmatch(m.group(0)) else REDACTED, text)


def _value(key: str, value: object) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        shape = _INSTANCE if key in _NAME_KEYS else _WORD
        if not shape.fullmatch(value):
            return REDACTED
        return value if key == "request_id" and _UUID.fullmatch(value) else scrub(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return [_value(key, v) for v in value]
    return REDACTED


def _event(value: object, event_dict: EventDict) -> object:
    record = event_dict.get("_record")
    if event_dict.get("_from_structlog") is False and isinstance(record, logging.LogRecord):
        # Another library's record: even its "template" is often preformatted text that
        # quotes an exception, a URL or a repr holding a person's data (asyncio does).
        return FOREIGN_EVENT
    if isinstance(value, str) and len(value) <= 80 and _EVENT.fullmatch(value):
        return value
    return REDACTED


def _exception(exc_info: object) -> BaseException | None:
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        exc_info = exc_info[1]
    return exc_info if isinstance(exc_info, BaseException) else None


def frames(error: BaseException) -> list[str]:
    """The traceback of ``error`` as ``file.py:line:function`` entries, innermost last.

    Only what the code is made of: file base names, line numbers and function names. The
    exception's message, the source lines and the local variables are never read, since
    those are where a person's data would be (P1).
    """
    out: list[str] = []
    for frame, line in traceback.walk_tb(error.__traceback__):
        code = frame.f_code
        out.append(f"{Path(code.co_filename).name}:{line}:{code.co_name}")
    return out[-MAX_FRAMES:]


def redact(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Keep allow-listed keys (scrubbed), blank every other value, reduce exceptions."""
    out: EventDict = {}
    error = _exception(event_dict.get("exc_info"))
    for key, value in event_dict.items():
        if key in _META or key in _OWN:
            out[key] = value
        elif key in ("exc_info", "exception", "stack_info", "stack"):
            continue  # messages and source lines can hold data: type and frames are rebuilt
        elif key == "event":
            out[key] = _event(value, event_dict)
        elif key == "traceback" and isinstance(value, list):
            out[key] = [
                v if isinstance(v, str) and _FRAME.fullmatch(v) else REDACTED for v in value
            ]
        else:
            out[key] = _value(key, value) if key in ALLOWED_KEYS else REDACTED
    if error is not None:
        out.setdefault("error_type", type(error).__name__)
        out["traceback"] = frames(error)
    return out


class _Stderr(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (pytest swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """Rotates by size; every file it opens, the first and each one after a rotation, is
    0600 in a private directory, never reached through a symbolic link, and ours. Rotated
    files older than ``keep_days`` are deleted at start and at each rotation."""

    def __init__(self, path: Path, *, keep_days: int) -> None:
        self.keep_seconds = keep_days * 86_400.0
        super().__init__(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
        self.prune()

    def doRollover(self) -> None:
        super().doRollover()
        self.prune()

    def prune(self) -> None:
        """Delete rotated files (``syncd.log.1`` …) older than the kept days."""
        base = Path(self.baseFilename)
        cutoff = time.time() - self.keep_seconds
        for old in base.parent.glob(f"{base.name}.*"):
            with contextlib.suppress(OSError):
                if old.suffix[1:].isdigit() and old.lstat().st_mtime < cutoff:
                    old.unlink()

    def _open(self) -> TextIOWrapper:
        fd = open_private_file(Path(self.baseFilename), setting="[daemon] log_file")
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def configure(level: str, sink: Path | None, *, console: bool = False, keep_days: int = 30) -> None:
    """Send every log line, redacted, to ``sink`` as JSON (None: stderr); ``console``
    shows readable lines on stderr instead of (or besides) JSON. Safe to call again."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]

    def formatter(renderer: Processor) -> ProcessorFormatter:
        return ProcessorFormatter(
            processors=[redact, ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
            use_get_message=False,
            pass_foreign_args=False,
        )

    handlers: list[logging.Handler] = []
    if sink is not None:
        handlers.append(_PrivateRotatingFile(sink, keep_days=keep_days))
        handlers[-1].setFormatter(formatter(structlog.processors.JSONRenderer()))
    if sink is None or console:
        handlers.append(_Stderr())
        renderer: Processor = (
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
            if console
            else structlog.processors.JSONRenderer()
        )
        handlers[-1].setFormatter(formatter(renderer))
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
        old.close()
    _installed[:] = handlers
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[*shared, redact, ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )


def reset() -> None:
    """Undo :func:`configure`: remove its handlers and restore structlog's defaults."""
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
        handler.close()
    _installed.clear()
    root.setLevel(logging.WARNING)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.reset_defaults()


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger named ``name`` (e.g. "syncd.relay")."""
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger


@contextlib.contextmanager
def capture() -> Iterator[list[EventDict]]:
    """For tests: the event dicts logged inside the block, as redaction leaves them."""
    with structlog.testing.capture_logs(processors=[redact]) as entries:
        yield entries
