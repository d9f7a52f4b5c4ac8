"""`syncd status` in each format for each daemon state: the real CLI entry point against the
real daemon (memory connectors) over its real control socket, and against no daemon."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from rig.memory_crm import MemorySource
from sync.cli_status import oneline, table, waybar
from tests.inprocess import Machine, Running, person

STATES = ("idle", "syncing", "paused", "attention")
FORMATS = ("table", "json", "waybar", "oneline")
#: What the source holds about person-1: none of it may reach any status output.
PERSON_1 = ("First1", "Last1", "p1@work.example", "person-1", "Engines Ltd")


class GatedSource(MemorySource):
    """A memory source whose profile reads wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(person(n) for n in range(3))
        self.gate = anyio.Event()

    async def _admit(self, verb: str, credential: str) -> None:
        if verb == "fetch_person":
            await self.gate.wait()
        await super()._admit(verb, credential)


@dataclass
class Shown:
    """One `syncd status` run: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def config_for(root: Path, socket: Path) -> Path:
    """A config file that names ``socket``: all the thin client reads."""
    path = root / "status.toml"
    path.write_text(f'[daemon]\nsocket = "{socket}"\n', encoding="utf-8")
    return path


async def status(config: Path, fmt: str) -> Shown:
    """`syncd status` with ``fmt`` (``json`` is the --json flag), in a subprocess on a wide
    terminal (the table must still keep to 80 columns)."""
    argv = [sys.executable, "-m", "sync.cli", "status", "--config", str(config)]
    argv += ["--json"] if fmt == "json" else ["--format", fmt]
    done = await anyio.run_process(argv, check=False, env=os.environ | {"COLUMNS": "200"})
    return Shown(done.returncode, done.stdout.decode(), done.stderr.decode())


@dataclass
class Scene:
    """A running daemon in a given state, its source, and the one selection it was given."""

    running: Running
    source: GatedSource
    selection: str

    @property
    def socket(self) -> Path:
        return self.running.client.socket_path


@asynccontextmanager
async def in_state(root: Path, state: str) -> AsyncIterator[Scene]:
    """A running daemon brought into ``state`` (idle, syncing, paused or attention)."""
    machine = Machine.make(root)
    source = GatedSource()
    machine.source = source
    if state != "syncing":
        source.gate.set()
    if state == "attention":
        machine.crms["hubspot"].reject("tok-hubspot")
    async with machine.daemon() as running:
        if state == "paused":
            await running.call(running.client.call, "POST", "/v1/pause")
        (selection,) = await running.add("person-1")
        if state in ("idle", "attention"):
            await running.outcome(selection)
        try:
            yield Scene(running, source, selection)
        finally:
            source.gate.set()


ONELINE: dict[str, Callable[[str], bool]] = {
    "idle": lambda line: line == "syncd: idle",
    "syncing": lambda line: line == "syncd: syncing 1",
    "paused": lambda line: line == "syncd: paused, 1 queued",
    "attention": lambda line: line == "syncd: idle · hubspot auth",
}


class TestEachState:
    """Every format says the daemon's state, and a person's data appears in none of them."""

    @pytest.mark.parametrize("state", STATES)
    async def test_every_format(
        self,
        state: str,
        tmp_path: Path,
    ) -> None:
        """table, --json, waybar and oneline each exit 0 and show ``state``."""
        async with in_state(tmp_path, state) as scene:
            config = config_for(tmp_path, scene.socket)
            shown = {fmt: await status(config, fmt) for fmt in FORMATS}
        for fmt, result in shown.items():
            assert result.code == 0, (fmt, result.err)
            for word in PERSON_1:
                assert word not in result.out + result.err, (fmt, word)
        assert json.loads(shown["json"].out)["state"] == state
        bar = json.loads(shown["waybar"].out)
        assert {"text", "tooltip", "class"} <= set(bar)
        assert bar["class"] == state
        assert "hubspot: " in bar["tooltip"]
        assert "pipedrive: " in bar["tooltip"]
        assert shown["waybar"].out.count("\n") == 1
        line = shown["oneline"].out.rstrip("\n")
        assert "\n" not in line
        assert ONELINE[state](line), line
        rows = shown["table"].out.splitlines()
        assert f"· {state} ·" in rows[0]
        assert all(len(row) <= 80 for row in rows), rows
        names = [row.split()[0] for row in rows if row.split()]
        assert {"source", "hubspot", "pipedrive"} <= set(names)

    async def test_attention_names_the_crm_and_the_fix(self, tmp_path: Path) -> None:
        """A rejected credential shows as `auth` with the command that fixes it, in every
        format meant for a person."""
        async with in_state(tmp_path, "attention") as scene:
            config = config_for(tmp_path, scene.socket)
            shown = {fmt: await status(config, fmt) for fmt in ("table", "waybar")}
        table_text = " ".join(shown["table"].out.split())
        assert "hubspot auth" in table_text
        assert "syncd auth set hubspot" in table_text
        assert "syncd auth set hubspot" in json.loads(shown["waybar"].out)["tooltip"]
        assert json.loads(shown["waybar"].out)["text"].endswith("!")

    async def test_syncing_then_idle(self, tmp_path: Path) -> None:
        """The waybar text carries the queue while syncing and drops it once delivered."""
        async with in_state(tmp_path, "syncing") as scene:
            config = config_for(tmp_path, scene.socket)
            busy = json.loads((await status(config, "waybar")).out)
            scene.source.gate.set()
            await scene.running.outcome(scene.selection)
            calm = json.loads((await status(config, "waybar")).out)
        assert (busy["text"], busy["class"]) == ("syncd 1", "syncing")
        assert (calm["text"], calm["class"]) == ("syncd", "idle")


class TestNotRunning:
    """With no daemon, bars still get something to show; people get exit 3 and a sentence."""

    @pytest.fixture
    def config(self, tmp_path: Path) -> Path:
        run = tmp_path / "run"
        run.mkdir(mode=0o700)
        return config_for(tmp_path, run / "syncd.sock")

    async def test_waybar_is_valid_json_with_class_stopped(self, config: Path) -> None:
        """waybar: exit 0, one JSON object, class and alt `stopped`."""
        shown = await status(config, "waybar")
        assert shown.code == 0
        bar = json.loads(shown.out)
        assert {"text", "tooltip", "class"} <= set(bar)
        assert (bar["class"], bar["alt"]) == ("stopped", "stopped")
        assert "not running" in bar["tooltip"]
        assert shown.err == ""

    async def test_oneline_says_not_running(self, config: Path) -> None:
        """oneline: exit 0 and `syncd: not running`."""
        shown = await status(config, "oneline")
        assert (shown.code, shown.out, shown.err) == (0, "syncd: not running\n", "")

    @pytest.mark.parametrize("fmt", ["table", "json"])
    async def test_table_and_json_exit_3(self, fmt: str, config: Path) -> None:
        """table and --json: exit 3, nothing on stdout, one sentence that says what to run."""
        shown = await status(config, fmt)
        assert shown.code == 3
        assert shown.out == ""
        assert shown.err.count("\n") == 1
        assert "syncd run" in shown.err

    async def test_an_unsafe_socket_is_attention_for_a_bar(self, tmp_path: Path) -> None:
        """A socket directory others can enter: the bar shows `attention` with the reason,
        still valid JSON and exit 0; the table exits 2."""
        run = tmp_path / "open"
        run.mkdir(mode=0o755)
        run.chmod(0o755)
        config = config_for(tmp_path, run / "syncd.sock")
        bar = await status(config, "waybar")
        assert bar.code == 0
        assert json.loads(bar.out)["class"] == "attention"
        assert (await status(config, "table")).code == 2


def busy_status(**changes: Any) -> dict[str, Any]:
    """A status object as the daemon answers it, with a retry, a long error and a note."""
    body: dict[str, Any] = {
        "state": "attention",
        "version": "1.2.3",
        "uptime_s": 7322.4,
        "queue": 3,
        "source": {"health": "ok", "last_error": None},
        "crms": {
            "hubspot": {
                "health": "rate_limited",
                "last_error": "hubspot answered HTTP 429 (TEN_SECONDLY_ROLLING) " * 4,
                "retrying": {"attempt": 2, "next_in_s": 4.2, "reason": "http_429"},
            },
            "pipedrive": {"health": "ok", "last_error": None},
        },
        "recent": [{"time": 1_700_000_000.0, "selection": "sel_0123456789abcdef", "outcomes": {}}]
        * 7,
        "journal": {"note": "the disk refused a write & <syncd> retries it " * 3},
    }
    body.update(changes)
    return body


class TestRendering:
    """The formats themselves, on status objects the daemon rarely shows."""

    def test_table_fits_80_columns_with_retries_notes_and_recent(self) -> None:
        """A retry, a long error, a journal note and 7 recent outcomes stay within 80
        columns, and the table lists the retry and the 5 latest outcomes."""
        text = table(busy_status())
        assert all(len(row) <= 80 for row in text.splitlines()), text
        assert "#2, next in 4 s (http_429)" in text
        assert "up 2h 02m" in text
        assert "journal: the disk refused" in text
        assert "RECENT (last 5 of 7)" in text
        assert text.count("sel_0123456789abcdef") == 5

    def test_table_counts_the_do_not_sync_list_and_nothing_else(self) -> None:
        """The list's size is shown (and only when it holds entries)."""
        assert "do-not-sync list: 3 entries" in table(busy_status(do_not_sync=3))
        assert "do-not-sync" not in table(busy_status(do_not_sync=0))

    def test_waybar_escapes_pango_markup(self) -> None:
        """waybar reads text and tooltip as Pango markup: `&` and `<` arrive escaped."""
        bar = waybar(busy_status())
        assert "&amp;" in bar["tooltip"]
        assert "&lt;syncd&gt;" in bar["tooltip"]
        assert "<" not in bar["tooltip"]
        assert bar["text"] == "syncd 3 !"

    @pytest.mark.parametrize(
        ("changes", "line"),
        [
            pytest.param({}, "syncd: syncing 3 · hubspot rate_limited · journal", id="busy"),
            pytest.param(
                {"crms": {"hubspot": {"health": "ok", "retrying": {"attempt": 1}}}},
                "syncd: syncing 3 · hubspot retrying · journal",
                id="retrying-while-ok",
            ),
            pytest.param(
                {"state": "paused", "queue": 0, "journal": {}, "crms": {}},
                "syncd: paused",
                id="paused-empty",
            ),
        ],
    )
    def test_oneline(self, changes: dict[str, Any], line: str) -> None:
        """One line: what syncd does, then what needs a look."""
        assert oneline(busy_status(**changes)) == line
