"""`python -m bench`'s smallest configuration runs and its JSON has every figure."""

from __future__ import annotations

import json

import pytest

from bench.interactive import answering
from bench.suite import SMOKE, run_suite, summary, table
from rig.sandbox import RecordedRequest

#: The keys issue 13 asks `python -m bench --quick --json` for.
REQUIRED = (
    "ceiling_ratio", "requests_per_person", "pipedrive_tokens_per_person", "throttled",
    "add_overhead_ms_p50", "status_vs_bare", "idle_rss_mb", "idle_wakeups_per_s",
    "peak_rss_mb", "team_429_share", "team_utilisation",
)  # fmt: skip
PER_CRM = ("ceiling_ratio", "requests_per_person", "throttled")
CRMS = {"hubspot", "pipedrive", "salesforce"}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(600)
class TestSmallestSuite:
    def test_every_key_holds_a_number(self) -> None:
        """20 people, no latency: every summary key is a number (or one per CRM)."""
        results = run_suite(SMOKE)
        figures = json.loads(json.dumps(summary(results)))
        for key in REQUIRED:
            assert key in figures, key
            if key in PER_CRM:
                assert set(figures[key]) == CRMS, key
                assert all(_is_number(v) for v in figures[key].values()), key
            elif key.startswith("team_") and results.team is None:
                assert figures[key] is None  # bench/team.py not there: shown as n/a
            else:
                assert _is_number(figures[key]), key
        assert figures["requests_per_person"]["hubspot"] > 0
        assert "1. bulk" in table(results)


def _request(started: float, at: float) -> RecordedRequest:
    return RecordedRequest("GET", "/", "", 200, (), at=at, started=started)


class TestAnswering:
    """The sandboxes' answering time of one add: overlapping requests count once."""

    def test_overlaps_count_once_and_gaps_not_at_all(self) -> None:
        records = [_request(0.0, 1.0), _request(0.5, 1.5), _request(3.0, 3.25)]
        assert answering(records) == pytest.approx(1.75)

    def test_a_request_inside_another_adds_nothing(self) -> None:
        assert answering([_request(2.0, 2.5), _request(0.0, 4.0)]) == pytest.approx(4.0)

    def test_nothing_answered_is_zero(self) -> None:
        assert answering([]) == 0.0
