"""Generate the README's screenshots from the real program, never by hand.

    python scripts/screenshots.py

One function per screenshot, each writing under docs/images/; main() calls them all.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from rig.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"

sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def status_table(out: Path = IMAGES / "status.txt") -> Path:
    """`syncd status` as a terminal shows it (80 columns): a daemon on the throwaway stack
    has relayed a few sample people, and Pipedrive is being retried after a 429."""

    async def render(root: Path) -> str:
        from rig.stack import throwaway_stack

        async with throwaway_stack(root) as stack:
            refs = stack.source.as_source.public_ids()[:3]
            output, code, _ = await stack.cli("add-contact", *refs)
            if code != 0:
                raise SystemExit(f"add-contact failed ({code}):\n{output}")
            # The next write to Pipedrive is throttled for a while: status shows the retry.
            stack.crms["pipedrive"].sandbox.core.fail_next(429, retry_after=30)
            public_ids = stack.source.as_source.public_ids()
            await stack.cli("add-contact", "--no-wait", public_ids[3])
            for _ in range(150):  # the retry is planned a moment after the 429
                shown = await _status(stack)
                if ", next in " in shown:
                    break
                await anyio.sleep(0.2)
            else:
                raise SystemExit(f"status never showed the retry:\n{shown}")
            return f"$ syncd status\n{shown}"

    with tempfile.TemporaryDirectory(prefix="syncd-screenshot-") as tmp:
        text = anyio.run(render, Path(tmp))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


async def _status(stack: Stack) -> str:
    """`syncd status` through the real CLI on an 80-column terminal."""
    from rig.stack import syncd_argv

    done = await anyio.run_process(
        syncd_argv("status", "--config", str(stack.config_path)),
        check=False,
        env={**stack.env, "COLUMNS": "80"},
    )
    return done.stdout.decode()


def tray(out: Path = IMAGES) -> Path:
    """tray-idle.png, tray-paused.png and tray-not-running.png: the tray's end-to-end test
    (`syncd tray` on Xvfb with trayer, against a real daemon) keeps its screenshots in
    ``out``. Needs what that test needs: Xvfb, trayer, dbus-run-session, gnome-keyring."""
    import os
    import subprocess

    out.mkdir(parents=True, exist_ok=True)
    command = ["dbus-run-session", "--", "bash", str(ROOT / "scripts" / "checks.sh")]
    command += ["--pytest-only", "-q", "-p", "no:cacheprovider", "tests/e2e/test_tray_e2e.py"]
    environ = {**os.environ, "SYNCD_SCREENSHOTS": str(out)}
    subprocess.run(command, cwd=ROOT, env=environ, check=True)  # noqa: S603 — our own test
    return out


def main() -> int:
    """Write every screenshot; print where each went."""
    for shot in (status_table, tray):
        print(shot().relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
