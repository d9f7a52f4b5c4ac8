"""`syncd add-contact --from-file` for long imports: LinkedIn's Connections.csv export through
the real CLI (a subprocess) and a daemon with loopback sandboxes (the throwaway stack), with a
progress bar on a pseudo-terminal, plain lines on a pipe, and Ctrl-C that stops only the
waiting."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
from collections.abc import Collection
from pathlib import Path

import anyio
import pytest

from connectors.linkedin.sandbox.samples import generated_people
from rig.stack import Stack, syncd_argv, throwaway_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OUTCOMES = ("created", "updated", "unchanged", "ambiguous", "failed", "refused")


def seed(stack: Stack, count: int, first: int = 1000) -> list[str]:
    """``count`` fresh people in the source sandbox, unthrottled; their publicIds."""
    people = generated_people(count, first_index=first)
    stack.source.as_source.add_people(people)
    stack.source.as_source.set_rate_limit(100_000, 1.0)
    return [p["profile"]["publicId"] for p in people]


def connections_csv(public_ids: list[str]) -> str:
    """An export shaped like LinkedIn's: a notes preamble, a blank line, then its columns."""
    rows = [
        "Notes:",
        '"This preamble stands for the export\'s own notes, which syncd skips."',
        "",
        "First Name,Last Name,URL,Email Address,Company,Position,Connected On",
    ]
    for n, public_id in enumerate(public_ids):
        rows.append(
            f"First{n},Last{n},https://www.linkedin.com/in/{public_id},,"
            f'"Company {n % 97}, Ltd",Buyer,{1 + n % 28:02d} Mar 2024'
        )
    return "\n".join(rows) + "\n"


def write_export(root: Path, public_ids: list[str]) -> Path:
    path = root / "Connections.csv"
    path.write_text(connections_csv(public_ids), encoding="utf-8")
    return path


def summary(output: str, crms: Collection[str]) -> dict[str, dict[str, int]]:
    """The summary table at the end of ``output``: per CRM, the count of each outcome."""
    lines = output.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("summary of "))
    head = lines[start + 1].split()
    assert head == ["CRM", *OUTCOMES], lines[start + 1]
    table: dict[str, dict[str, int]] = {}
    for line in lines[start + 2 : start + 2 + len(crms)]:
        name, *counts = line.split()
        table[name] = dict(zip(OUTCOMES, map(int, counts), strict=True))
    return table


def on_a_terminal(
    argv: list[str], env: dict[str, str], *, interrupt_on: bytes | None = None
) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal (80 by 24) as stdin, stdout and stderr; its exit
    code and everything it drew. With ``interrupt_on``, Ctrl-C (SIGINT) once that appears."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    interrupted = False
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every copy of the terminal's other end is closed
            break
        if not data:
            break
        seen += data
        if interrupt_on is not None and not interrupted and interrupt_on in seen:
            proc.send_signal(signal.SIGINT)
            interrupted = True
    os.close(master)
    return proc.wait(timeout=60), seen.decode("utf-8", errors="replace")


def terminal_env(stack: Stack) -> dict[str, str]:
    """The stack's environment, with the terminal's own size (no COLUMNS/LINES override)."""
    return {k: v for k, v in stack.env.items() if k not in ("COLUMNS", "LINES")}


class TestConnectionsExport:
    """A 1 000-line export ends with a summary that matches what every CRM holds."""

    @pytest.mark.timeout(600)
    async def test_a_1000_line_export_matches_the_crms(self, tmp_path: Path) -> None:
        """Every person is created once in each CRM, and the summary says so, per CRM."""
        async with throwaway_stack(tmp_path) as stack:
            export = write_export(tmp_path, seed(stack, 1000))
            output, code, _ = await stack.cli("add-contact", "--from-file", str(export))
        assert code == 0, output[-3000:]
        held = stack.record_counts()
        assert held == dict.fromkeys(stack.crms, 1000)
        table = summary(output, stack.crms)
        assert set(table) == set(stack.crms)
        for name, counts in table.items():
            assert counts["created"] == held[name], (name, counts)
            assert sum(counts.values()) == 1000, (name, counts)
        assert "summary of 1000 selections" in output
        assert "\r" not in output


class TestProgress:
    """A bar on a terminal, plain lines elsewhere, and the same summary on both."""

    async def test_a_terminal_gets_a_bar_and_the_summary(self, tmp_path: Path) -> None:
        """On a pseudo-terminal the bar is drawn with `\\r` and per-CRM counts, fits 80
        columns, and the summary table follows it."""
        async with throwaway_stack(tmp_path, crms=["hubspot"]) as stack:
            export = write_export(tmp_path, seed(stack, 40))
            argv = syncd_argv(
                "add-contact", "--config", str(stack.config_path), "--from-file", str(export)
            )
            code, drawn = await anyio.to_thread.run_sync(
                lambda: on_a_terminal(argv, terminal_env(stack))
            )
        assert code == 0, drawn
        bars = [part for part in drawn.split("\r") if part.startswith("[")]
        assert bars, drawn
        assert any("/40" in bar and "hubspot " in bar for bar in bars), bars
        assert all(len(bar.split("\x1b[K")[0]) < 80 for bar in bars), bars
        shown = drawn.replace("\r\n", "\n").replace("\x1b[K", "")
        assert summary(shown, ["hubspot"])["hubspot"]["created"] == 40
        assert ": created " not in drawn  # while a bar is drawn, only what needs a look

    async def test_a_pipe_gets_plain_lines_and_the_summary(self, tmp_path: Path) -> None:
        """On a pipe: one line per CRM per person, no carriage return, the same summary."""
        async with throwaway_stack(tmp_path, crms=["hubspot"]) as stack:
            public_ids = seed(stack, 12)
            export = write_export(tmp_path, public_ids)
            output, code, _ = await stack.cli("add-contact", "--from-file", str(export))
        assert code == 0, output
        assert "\r" not in output
        assert "\x1b" not in output
        assert output.count("hubspot: created ") == 12
        assert summary(output, ["hubspot"])["hubspot"]["created"] == 12

    async def test_ctrl_c_stops_waiting_and_the_daemon_finishes(self, tmp_path: Path) -> None:
        """Ctrl-C while waiting exits 130 and says how many are still queued and how to
        follow them; the daemon still delivers every one of them."""
        async with throwaway_stack(tmp_path, crms=["hubspot"]) as stack:
            export = write_export(tmp_path, seed(stack, 30))
            stack.source.sandbox.core.latency_ms = 300  # slow enough to interrupt midway
            argv = syncd_argv(
                "add-contact", "--config", str(stack.config_path), "--from-file", str(export)
            )
            code, drawn = await anyio.to_thread.run_sync(
                lambda: on_a_terminal(argv, terminal_env(stack), interrupt_on=b"\r[")
            )
            for _ in range(600):
                status, _, _ = await stack.cli("status", "--format", "oneline")
                if status.strip() == "syncd: idle":
                    break
                await anyio.sleep(0.1)
            held = stack.record_counts()
        assert code == 130, drawn
        words = " ".join(drawn.split())
        assert "still queued" in words
        assert "syncd status" in words
        queued = int(words.split("stopped waiting; ")[1].split()[0])
        assert 0 < queued < 30
        assert "Traceback" not in drawn
        assert held == {"hubspot": 30}
