"""The residue scan: is any of these strings in any file under these directories?

Used by `syncd demo` and the P1/P2 tests. Hits name the file and the kind of string
(e.g. "a name"), never the string itself.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Hit:
    """One needle found in one file (or in the file's name)."""

    path: Path
    kind: str


@dataclass(frozen=True, slots=True)
class ScanReport:
    """What a scan read and what it found."""

    files: int
    bytes: int
    hits: tuple[Hit, ...]


def _encodings(needle: str) -> list[bytes]:
    # UTF-8 as written by Python and most tools; UTF-16 as some keyrings and JSON escapes
    # would store it; the JSON \\u escape form json.dumps uses for non-ASCII text.
    forms = {needle.encode("utf-8"), needle.encode("utf-16-le")}
    escaped = needle.encode("ascii", "backslashreplace").replace(b"\\x", b"\\u00")
    forms.add(escaped)
    return [f for f in forms if len(f) >= 4]


def scan(roots: Iterable[Path], needles: Mapping[str, str]) -> ScanReport:
    """Look for every needle (text → kind) in every regular file under ``roots``."""
    patterns = [(form, kind) for text, kind in needles.items() for form in _encodings(text)]
    files = size = 0
    hits: list[Hit] = []
    for root in roots:
        if not root.exists():
            continue
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                path = Path(dirpath, name)
                for text, kind in needles.items():
                    if text in name:
                        hits.append(Hit(path, f"{kind} (in the file name)"))
                try:
                    info = path.lstat()
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                files += 1
                size += len(data)
                found = {kind for form, kind in patterns if form in data}
                hits.extend(Hit(path, kind) for kind in sorted(found))
    return ScanReport(files, size, tuple(hits))
