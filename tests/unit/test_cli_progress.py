"""add-contact's progress bar and summary table, drawn on a fake terminal with a fake clock."""

from __future__ import annotations

import io

import pytest

from sync.cli_add import Progress, summary_table


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal and counts the bar's redraws."""

    def isatty(self) -> bool:
        return True

    def redraws(self) -> int:
        return self.getvalue().count("\r[")


def selection(**outcomes: str) -> dict[str, object]:
    return {"targets": {name: {"outcome": o} for name, o in outcomes.items()}}


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestBar:
    """The bar is redrawn at most ten times a second, fits the terminal, and counts per CRM."""

    def test_redraws_are_throttled_but_the_last_one_is_drawn(self) -> None:
        """500 selections finishing within 0.25 s redraw 3 times plus the final 500/500."""
        stream, clock = FakeTerminal(), Clock()
        progress = Progress(500, stream, clock=clock)
        for n in range(500):
            clock.now = 100.0 + n * 0.0005
            progress.step(selection(hubspot="created"))
        assert stream.redraws() == 4
        assert "500/500" in stream.getvalue().rsplit("\r[", 1)[1]

    @pytest.mark.parametrize("width", [30, 60, 80, 132])
    def test_the_line_never_reaches_the_last_column(self, width: int) -> None:
        """At any width the bar stays shorter than the terminal, so it never wraps."""
        progress = Progress(1000, FakeTerminal())
        for _ in range(417):
            progress.step(selection(hubspot="created", pipedrive="failed", salesforce="unchanged"))
        line = progress.line(width)
        assert len(line) < width
        assert "417/1000" in line

    def test_per_crm_counts_show_when_they_fit(self) -> None:
        """On 80 columns the counts of three CRMs are shown, issues marked."""
        progress = Progress(10, FakeTerminal())
        for n in range(4):
            progress.step(selection(hubspot="created", pipedrive="ambiguous" if n else "updated"))
        line = progress.line(80)
        assert "hubspot 4 ok" in line
        assert "pipedrive 1 ok" in line
        assert "3" in line.split("pipedrive", 1)[1]

    def test_no_bar_off_a_terminal_or_for_one_person(self) -> None:
        """A pipe, or a single selection, gets no bar at all."""
        pipe = io.StringIO()
        Progress(50, pipe).step(selection(hubspot="created"))
        single = FakeTerminal()
        Progress(1, single).step(selection(hubspot="created"))
        assert pipe.getvalue() == ""
        assert single.getvalue() == ""


class TestSummary:
    """The summary has one row per CRM and one column per outcome word."""

    def test_columns_and_counts(self) -> None:
        """Each outcome is counted in its own column, in the README's order."""
        progress = Progress(3, io.StringIO())
        progress.step(selection(hubspot="created", pipedrive="refused"))
        progress.step(selection(hubspot="unchanged", pipedrive="refused"))
        progress.step(selection(hubspot="ambiguous", pipedrive="failed"))
        lines = summary_table(progress.counts, 3).splitlines()
        assert lines[0] == "summary of 3 selections"
        assert lines[1].split() == [
            "CRM",
            "created",
            "updated",
            "unchanged",
            "ambiguous",
            "failed",
            "refused",
        ]
        assert lines[2].split() == ["hubspot", "1", "0", "1", "1", "0", "0"]
        assert lines[3].split() == ["pipedrive", "0", "0", "0", "0", "1", "2"]
