"""Every third-party import is declared: product and rig in [project].dependencies, tests and
benchmarks in the `dev` extra too — so a fresh install runs everything it ships."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = frozenset({"sync", "connectors", "rig", "bench", "tests"})
#: Folders whose imports must be in [project].dependencies: they ship and run without extras.
SHIPPED = ("sync", "connectors", "rig")
#: Folders that may also use the `dev` extra.
DEVELOPMENT = ("tests", "bench")
#: Shipped folders that run only with an extra installed (and say so when it is missing).
EXTRAS = {"sync/tray": "tray"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def normalized(distribution: str) -> str:
    """A distribution name as the package index compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def requirement_name(requirement: str) -> str:
    """The distribution a requirement string names (``"PyYAML>=6"`` → ``"pyyaml"``)."""
    match = _NAME.match(requirement.strip())
    assert match is not None, requirement
    return normalized(match.group())


def top_level_imports(source: str) -> set[str]:
    """The top-level names of every absolute import in ``source`` (relative ones skipped)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    return found


def third_party(names: Iterable[str]) -> set[str]:
    """``names`` less the standard library, ``__future__`` and this project's packages."""
    return {
        name
        for name in names
        if name not in sys.stdlib_module_names and name not in FIRST_PARTY | {"__future__"}
    }


def undeclared(
    imports: Mapping[str, Iterable[str]],
    declared: Iterable[str],
    distributions: Mapping[str, list[str]],
) -> dict[str, list[str]]:
    """For each module whose import no declared distribution provides: the files importing it.

    ``imports`` maps a file to its top-level imports; ``distributions`` is
    :func:`importlib.metadata.packages_distributions` (module → distributions providing it).
    A module no installed distribution provides is undeclared too: it cannot be installed.
    """
    allowed = {normalized(d) for d in declared}
    missing: dict[str, list[str]] = {}
    for path, names in sorted(imports.items()):
        for name in sorted(third_party(names)):
            providers = {normalized(d) for d in distributions.get(name, [])}
            if not providers & allowed:
                missing.setdefault(name, []).append(path)
    return missing


def declared_groups() -> tuple[set[str], set[str]]:
    """(runtime dependencies, runtime and `dev` dependencies) from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {requirement_name(r) for r in project["dependencies"]}
    dev = {requirement_name(r) for r in project["optional-dependencies"]["dev"]}
    return runtime, runtime | dev


def extra(name: str) -> set[str]:
    """The distributions of the extra ``name`` in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {requirement_name(r) for r in project["optional-dependencies"][name]}


def imports_under(*folders: str, skip: Iterable[str] = ()) -> dict[str, set[str]]:
    """Top-level imports of every module under ``folders`` (relative to the repository),
    leaving out the folders in ``skip``."""
    skipped = tuple(ROOT / s for s in skip)
    return {
        str(path.relative_to(ROOT)): top_level_imports(path.read_text(encoding="utf-8"))
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
        if not any(path.is_relative_to(s) for s in skipped)
    }


def report(missing: Mapping[str, list[str]], group: str) -> str:
    lines = [f"imported but not declared in {group} (add the distribution to pyproject.toml):"]
    lines += [f"  {module}: {', '.join(files)}" for module, files in missing.items()]
    return "\n".join(lines)


class TestDeclaredDependencies:
    """The imports of this repository against what pyproject.toml declares."""

    def test_shipped_code_imports_only_runtime_dependencies(self) -> None:
        """sync/, connectors/ and rig/ import only what [project].dependencies installs
        (a folder that needs an extra is checked against that extra, below)."""
        runtime, _ = declared_groups()
        shipped = imports_under(*SHIPPED, skip=EXTRAS)
        missing = undeclared(shipped, runtime, packages_distributions())
        assert not missing, report(missing, "[project].dependencies")

    @pytest.mark.parametrize(("folder", "name"), sorted(EXTRAS.items()))
    def test_a_folder_behind_an_extra_imports_only_it(self, folder: str, name: str) -> None:
        """sync/tray/ imports only the runtime dependencies and the `tray` extra."""
        runtime, dev = declared_groups()
        allowed = runtime | extra(name)
        missing = undeclared(imports_under(folder), allowed, packages_distributions())
        assert not missing, report(missing, f"the `{name}` extra")
        assert extra(name) <= dev, f"the `{name}` extra is not in `dev`, so tests cannot run it"

    def test_tests_and_benchmarks_import_only_declared_dependencies(self) -> None:
        """tests/ and bench/ import only what the runtime dependencies and `dev` install."""
        _, dev = declared_groups()
        missing = undeclared(imports_under(*DEVELOPMENT), dev, packages_distributions())
        assert not missing, report(missing, "the `dev` extra")


class TestChecker:
    """The checker itself finds what is missing and passes over what is not third-party."""

    DISTRIBUTIONS: ClassVar[dict[str, list[str]]] = {
        "yaml": ["PyYAML"],
        "openapi_spec_validator": ["openapi-spec-validator"],
        "openapi_schema_validator": ["openapi-schema-validator"],
    }

    @pytest.mark.parametrize(
        ("source", "missing"),
        [
            pytest.param("import yaml\n", {}, id="declared-under-another-name"),
            pytest.param("import os, json.decoder\n", {}, id="stdlib"),
            pytest.param("from __future__ import annotations\n", {}, id="future"),
            pytest.param("from sync.relay import Relay\nimport rig\n", {}, id="first-party"),
            pytest.param("from . import sibling\n", {}, id="relative"),
            pytest.param(
                "import openapi_spec_validator\n",
                {"openapi_spec_validator": ["t.py"]},
                id="installed-not-declared",
            ),
            pytest.param(
                "def f() -> None:\n    from nowhere_pkg.sub import x\n",
                {"nowhere_pkg": ["t.py"]},
                id="not-installed-nested",
            ),
        ],
    )
    def test_undeclared(self, source: str, missing: dict[str, list[str]]) -> None:
        """Only a third-party import no declared distribution provides is reported."""
        imports = {"t.py": top_level_imports(source)}
        declared = ["pyyaml", "openapi-schema-validator"]
        assert undeclared(imports, declared, self.DISTRIBUTIONS) == missing

    @pytest.mark.parametrize(
        ("requirement", "name"),
        [
            pytest.param("PyYAML>=6", "pyyaml", id="version"),
            pytest.param("types-PyYAML", "types-pyyaml", id="bare"),
            pytest.param("uvicorn[standard] >= 0.30", "uvicorn", id="extra"),
            pytest.param("zope.interface; python_version<'4'", "zope-interface", id="marker"),
        ],
    )
    def test_requirement_name(self, requirement: str, name: str) -> None:
        """A requirement string is reduced to its normalized distribution name."""
        assert requirement_name(requirement) == name
