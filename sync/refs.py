"""What the user may name a person by: a profile URL or a bare publicId.

Standard library only. Error messages never repeat the reference itself: which people
were selected is the user's business data (P1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote, urlsplit

from sync.errors import UsageError

PUBLIC_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{1,99}")
_HOST = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_HINT = "give a profile URL like https://www.linkedin.com/in/<publicId>/ or a bare publicId"


def parse_ref(text: str) -> str:
    """The publicId that ``text`` names; UsageError if it names none."""
    ref = text.strip()
    if PUBLIC_ID.fullmatch(ref):
        return ref
    if not ref.isascii() or any(c.isspace() for c in ref):
        raise UsageError(f"that is not a profile reference (spaces or non-ASCII); {_HINT}")
    if not ref.lower().startswith("https://"):
        raise UsageError(f"that is not a profile reference; {_HINT}")
    parts = urlsplit(ref)
    if not parts.hostname or not _HOST.fullmatch(parts.hostname) or parts.username:
        raise UsageError(f"that profile URL has no valid host; {_HINT}")
    segments = unquote(parts.path).split("/")
    # ["", "in", "<publicId>"] or with a trailing slash ["", "in", "<publicId>", ""]
    if segments[-1] == "":
        segments.pop()
    if len(segments) != 3 or segments[0] != "" or segments[1] != "in":
        raise UsageError(f"that URL is not a person's profile (company pages are not); {_HINT}")
    if not PUBLIC_ID.fullmatch(segments[2]):
        raise UsageError(f"that profile URL has no valid publicId; {_HINT}")
    return segments[2]


class BadLine:
    """A line of a --from-file input that names no person (a frozen value; written out
    rather than a dataclass so that `add-contact` does not load ``dataclasses``)."""

    __slots__ = ("line", "reason")
    line: int
    reason: str

    def __init__(self, line: int, reason: str) -> None:
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "reason", reason)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BadLine) or other.__class__ is not self.__class__:
            return NotImplemented
        return (self.line, self.reason) == (other.line, other.reason)

    def __hash__(self) -> int:
        return hash((self.line, self.reason))

    def __repr__(self) -> str:
        return f"BadLine(line={self.line!r}, reason={self.reason!r})"

    def __reduce__(self) -> tuple[type[BadLine], tuple[int, str]]:
        return (BadLine, (self.line, self.reason))


def read_refs(lines: Iterable[str]) -> Iterator[tuple[int, str] | BadLine]:
    """The refs of a --from-file input, one per line, with their line numbers.

    Blank lines and ``#`` comments are skipped. LinkedIn's own ``Connections.csv``
    export is recognised by its header and read by its URL column.
    """
    it = iter(enumerate(lines, start=1))
    in_preamble = False
    for number, raw in it:
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        if number == 1 and line.lower() == "notes:":
            in_preamble = True  # LinkedIn's export opens with a note before its header
            continue
        if _is_connections_header(line):
            yield from _read_connections(line, it)
            return
        if in_preamble:
            continue
        try:
            yield number, _first_field(line)
        except UsageError as exc:
            yield BadLine(number, str(exc))


def _first_field(line: str) -> str:
    parse_ref(line)
    return line


def _is_connections_header(line: str) -> bool:
    cells = [c.strip().lower() for c in line.split(",")]
    return "url" in cells and "first name" in cells


def _read_connections(
    header: str, rest: Iterator[tuple[int, str]]
) -> Iterator[tuple[int, str] | BadLine]:
    import csv  # only for LinkedIn's export: plain REF lists never need it
    import io

    url_col = [c.strip().lower() for c in header.split(",")].index("url")
    for number, raw in rest:
        if not raw.strip():
            continue
        row = next(csv.reader(io.StringIO(raw)), [])
        cell = row[url_col].strip() if len(row) > url_col else ""
        if not cell:
            yield BadLine(number, "this connection has no profile URL")
            continue
        try:
            parse_ref(cell)
        except UsageError as exc:
            yield BadLine(number, str(exc))
        else:
            yield number, cell
