"""A small line-based editor of TOML tables, so `syncd init` can edit a config in place.

The file is cut into blocks, one per table header (with the comment lines right above the
header), plus the preamble before the first header. Editing a key rewrites only its own
line(s); adding a table inserts a block; every other line, comment and table is left as it
was. :func:`check_edit` proves it by parsing both versions: any difference outside the
tables being edited is refused. Standard library only.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

TableName = tuple[str, ...]
_HEADER = re.compile(r"""^\s*\[\[?\s*[A-Za-z0-9_\-."' ]+?\s*\]\]?\s*(#.*)?$""")
_BLANK_OR_COMMENT = re.compile(r"^\s*(#.*)?$")


class EditError(Exception):
    """The file cannot be edited without risking what the user wrote."""


def literal(value: object) -> str:
    """``value`` (a string, bool, int or list of strings) as a TOML literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    raise TypeError(f"no TOML literal for {type(value).__name__}")


def header_name(line: str) -> tuple[TableName, bool] | None:
    """The table a header line opens and whether it is an array of tables, or None."""
    if not _HEADER.match(line):
        return None
    try:
        data: object = tomllib.loads(line.strip())
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(data, dict) and len(data) == 1:
        key, data = next(iter(data.items()))
        path.append(key)
        if isinstance(data, list):
            return tuple(path), True
        if data == {}:
            return tuple(path), False
    return None


@dataclass
class Block:
    """One table's lines (lead comments, header, body), or the preamble when unnamed."""

    name: TableName | None
    lines: list[str] = field(default_factory=list)
    array: bool = False


def _split(text: str) -> list[Block]:
    blocks = [Block(None)]
    in_string = False
    for line in text.splitlines():
        found = None if in_string else header_name(line)
        if found is not None:
            previous = blocks[-1].lines
            lead: list[str] = []
            while previous and previous[-1].strip().startswith("#"):
                lead.insert(0, previous.pop())
            blocks.append(Block(found[0], [*lead, line], found[1]))
        else:
            blocks[-1].lines.append(line)
        if (line.count('"""') + line.count("'''")) % 2:
            in_string = not in_string
    return blocks


def _value_extent(lines: Sequence[str], start: int) -> int:
    """How many lines from ``start`` hold one key's value (arrays may span lines)."""
    for end in range(start + 1, len(lines) + 1):
        try:
            tomllib.loads("\n".join(lines[start:end]))
        except tomllib.TOMLDecodeError:
            continue
        return end - start
    return 1


def _inline_comment(line: str) -> str:
    """The ``# …`` comment ending a one-line ``key = value``, or ""."""
    for index in (i for i, c in enumerate(line) if c == "#"):
        try:
            tomllib.loads(line[:index])
        except tomllib.TOMLDecodeError:
            continue
        return "  " + line[index:].strip()
    return ""


class TomlDocument:
    """A TOML file as editable blocks; :meth:`text` gives it back."""

    def __init__(self, text: str = "") -> None:
        self._blocks = _split(text)

    def text(self) -> str:
        """The whole file."""
        lines = [line for block in self._blocks for line in block.lines]
        while lines and not lines[-1].strip():
            lines.pop()
        return "\n".join(lines) + "\n" if lines else ""

    def tables(self) -> list[TableName]:
        """The table headers of the file, in order."""
        return [b.name for b in self._blocks if b.name is not None and not b.array]

    def _block(self, table: TableName) -> Block | None:
        return next((b for b in self._blocks if b.name == table and not b.array), None)

    def has_table(self, table: TableName) -> bool:
        """Whether ``[table]`` has a header in the file."""
        return self._block(table) is not None

    def set_preamble(self, comment_lines: Iterable[str]) -> None:
        """Replace the lines before the first table (only used on a new file)."""
        self._blocks[0].lines = [*comment_lines, ""]

    def add_table(
        self,
        table: TableName,
        entries: Sequence[tuple[str, object, Sequence[str]]],
        *,
        lead: Sequence[str] = (),
        tail: Sequence[str] = (),
        after: Sequence[str] = (),
    ) -> None:
        """Add ``[table]`` with its ``(key, value, comment lines)`` and ``tail`` comment lines;
        it goes after the last table whose first name part is in ``after`` (earlier parts
        preferred), else last."""
        lines = [*lead, f"[{'.'.join(_key(part) for part in table)}]"]
        for key, value, comments in entries:
            lines += [*comments, f"{_key(key)} = {literal(value)}"]
        lines += tail
        position = len(self._blocks)
        for first in after:
            found = [i for i, b in enumerate(self._blocks) if b.name and b.name[0] == first]
            if found:
                position = found[-1] + 1
                break
        before = self._blocks[position - 1].lines
        if before and before[-1].strip():
            before.append("")
        if position < len(self._blocks):
            lines.append("")
        self._blocks.insert(position, Block(table, lines))

    def get(self, table: TableName, key: str) -> object | None:
        """The value of ``key`` in ``[table]`` as written in the file, or None."""
        block = self._block(table)
        if block is None:
            return None
        found = self._find_key(block, key)
        if found is None:
            return None
        index, length = found
        parsed = tomllib.loads("\n".join(block.lines[index : index + length]))
        return next(iter(parsed.values()), None)

    def set(
        self, table: TableName, key: str, value: object, comments: Sequence[str] = ()
    ) -> str | None:
        """Set ``key`` in the existing ``[table]``: "added", "changed", or None when it
        already held ``value``. The key's other lines and comments are kept."""
        block = self._block(table)
        if block is None:
            raise KeyError(table)
        new = f"{_key(key)} = {literal(value)}"
        found = self._find_key(block, key)
        if found is None:
            at = max(i for i, line in enumerate(block.lines) if not _BLANK_OR_COMMENT.match(line))
            block.lines[at + 1 : at + 1] = [*comments, new]
            return "added"
        index, length = found
        old = block.lines[index : index + length]
        if tomllib.loads("\n".join(old)) == tomllib.loads(new):
            return None
        indent = old[0][: len(old[0]) - len(old[0].lstrip())]
        tail = _inline_comment(old[0]) if length == 1 else ""
        block.lines[index : index + length] = [indent + new + tail]
        return "changed"

    @staticmethod
    def _find_key(block: Block, key: str) -> tuple[int, int] | None:
        pattern = re.compile(rf"""^\s*({re.escape(key)}|"{re.escape(key)}")\s*=""")
        index = 0
        header_seen = block.name is None
        while index < len(block.lines):
            line = block.lines[index]
            if not header_seen:
                header_seen = header_name(line) is not None
                index += 1
                continue
            if _BLANK_OR_COMMENT.match(line):
                index += 1
                continue
            length = _value_extent(block.lines, index)
            if pattern.match(line):
                return index, length
            index += length
        return None


def _key(part: str) -> str:
    return part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)


def _without(data: dict[str, object], owned: Iterable[TableName]) -> dict[str, object]:
    """``data`` with the ``owned`` tables taken out (a shallow copy along their paths)."""
    result = dict(data)
    for path in owned:
        parent: dict[str, object] = result
        for part in path[:-1]:
            child = parent.get(part)
            if not isinstance(child, dict):
                break
            parent[part] = child = dict(child)
            parent = child
        else:
            parent.pop(path[-1], None)
    return result


def check_edit(before: str, after: str, owned: Iterable[TableName]) -> None:
    """EditError unless ``after`` is valid TOML and equals ``before`` outside ``owned``."""
    owned = list(owned)
    try:
        new = tomllib.loads(after)
    except tomllib.TOMLDecodeError:
        raise EditError("the edited file would not be valid TOML") from None
    try:
        old = tomllib.loads(before)
    except tomllib.TOMLDecodeError:
        raise EditError("the existing file is not valid TOML") from None
    if _without(old, owned) != _without(new, owned):
        raise EditError("the edit would change tables syncd init does not own")
