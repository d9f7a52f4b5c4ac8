"""The product and the test rig are apart: runtime code never imports the rig."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RIG_PREFIXES = ("rig",)


def _is_rig(module: str) -> bool:
    parts = module.split(".")
    return parts[0] in RIG_PREFIXES or (parts[0] == "connectors" and "sandbox" in parts[2:3])


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _product_files() -> list[Path]:
    files = sorted((ROOT / "sync").rglob("*.py")) + sorted((ROOT / "connectors").rglob("*.py"))
    return [f for f in files if "sandbox" not in f.relative_to(ROOT).parts]


class TestImportBoundary:
    @pytest.mark.parametrize(
        "path", [pytest.param(p, id=str(p.relative_to(ROOT))) for p in _product_files()]
    )
    def test_product_modules_never_import_the_rig(self, path: Path) -> None:
        """No module of sync/ or of a connector (outside its sandbox/) imports the rig."""
        rig = sorted(m for m in _imports(path) if _is_rig(m))
        assert rig == [], f"{path.relative_to(ROOT)} imports the test rig: {rig}"

    @pytest.mark.parametrize(
        "path",
        [
            pytest.param(p, id=str(p.relative_to(ROOT)))
            for p in sorted((ROOT / "sync").rglob("*.py"))
        ],
    )
    def test_sync_never_imports_a_private_connector_module(self, path: Path) -> None:
        """sync/ uses connectors only through their public modules (base, registry)."""
        private = sorted(
            m for m in _imports(path) if m.startswith("connectors.") and "._" in f".{m[11:]}"
        )
        assert private == [], f"{path.relative_to(ROOT)} imports {private}"

    def test_the_scanner_sees_a_rig_import(self, tmp_path: Path) -> None:
        """The scanner notices each way of importing the rig (so the tests above can fail)."""
        sample = tmp_path / "m.py"
        sample.write_text(
            "import rig.stack\nfrom connectors.hubspot.sandbox import HubSpotSandbox\n"
            "from connectors.hubspot import sandbox\n"
        )
        found = {m for m in _imports(sample) if _is_rig(m)}
        assert found == {
            "rig.stack",
            "connectors.hubspot.sandbox",
            "connectors.hubspot.sandbox.HubSpotSandbox",
        }

    def test_a_running_daemon_loads_no_rig_module(self) -> None:
        """Importing the daemon, the control API and every client loads nothing of the rig."""
        code = (
            "import json, sys\n"
            "import sync.daemon, sync.relay, sync.journal, sync.control.server\n"
            "import sync.control.client, sync.cli\n"
            "from connectors import registry\n"
            "for t in registry.PACKAGES: registry.load(registry.info(t).client)\n"
            "print(json.dumps(sorted(sys.modules)))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        )
        loaded = [m for m in json.loads(out.stdout) if _is_rig(m)]
        assert loaded == []
