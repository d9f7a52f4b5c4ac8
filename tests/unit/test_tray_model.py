"""The tray's pure parts: the view of a status answer, the icon per state, the notification
rule, the polling rhythm, and the poller thread around them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from sync.control.client import ControlClient
from sync.tray.icon import COLOURS, SIZE, badge_box, badge_text, draw
from sync.tray.model import (
    IDLE_INTERVAL,
    STATES,
    SYNCING_INTERVAL,
    Incidents,
    TrayState,
    View,
    not_running,
    poll_interval,
    view_of,
)
from sync.tray.poll import Poller, fetch


def rgb(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """The colour channels of one pixel."""
    pixel = image.getpixel(xy)
    assert isinstance(pixel, tuple)
    return pixel[:3]


def status(state: str = "idle", queue: int = 0, **crms: str) -> dict[str, Any]:
    """A status answer shaped like the daemon's, with ``crms`` as name → health."""
    return {
        "state": state,
        "version": "0.1.0",
        "uptime_s": 3.0,
        "queue": queue,
        "source": {"health": "ok", "last_error": None},
        "crms": {name: {"health": h, "last_error": None} for name, h in crms.items()},
        "recent": [],
        "journal": {"note": None},
    }


class TestView:
    """A status answer becomes the lines, tooltip and menu the tray shows."""

    @pytest.mark.parametrize("state", ["idle", "syncing", "paused", "attention"])
    def test_the_daemon_state_is_the_tray_state(self, state: str) -> None:
        """Each daemon state is shown as itself, with the queue in the status line."""
        view = view_of(status(state, queue=4, hubspot="ok"))
        assert view.state == state
        assert view.status_line == f"syncd 0.1.0: {state}, 4 pending"

    def test_an_unknown_state_asks_for_attention(self) -> None:
        """A state this tray does not know (a newer daemon) is shown as needing a look."""
        assert view_of(status("rebuilding")).state == "attention"

    def test_each_instance_has_a_health_line(self) -> None:
        """The source and each CRM get one line saying how they answered last."""
        view = view_of(status(hubspot="ok", pipedrive="rate_limited"))
        assert view.health_lines == (
            "source: ok",
            "hubspot: ok",
            "pipedrive: rate limited, waiting",
        )

    def test_a_refused_credential_names_the_crm_and_the_fix(self) -> None:
        """When hubspot's credential is refused, tooltip and menu name it and the command."""
        view = view_of(status("attention", hubspot="auth", pipedrive="ok"))
        fix = "hubspot needs a new credential: syncd auth set hubspot"
        assert view.needs_credential == ("hubspot",)
        assert fix in view.tooltip
        assert "pipedrive" not in view.tooltip
        fixes = [e for e in view.menu() if e.action == "fix"]
        assert [(e.text, e.target) for e in fixes] == [(fix, "hubspot")]

    def test_the_menu_offers_resume_while_paused_and_pause_otherwise(self) -> None:
        """The toggle follows the state; open log and quit are always there."""
        paused = [e.action for e in view_of(status("paused")).menu()]
        idle = [e.action for e in view_of(status("idle")).menu()]
        assert paused[-3:] == ["resume", "open_log", "quit"]
        assert idle[-3:] == ["pause", "open_log", "quit"]

    def test_no_daemon_disables_pause(self) -> None:
        """Without a daemon there is nothing to pause; the menu still quits."""
        menu = {e.action: e.enabled for e in not_running().menu()}
        assert menu["pause"] is False
        assert menu["quit"] is True

    def test_the_view_holds_nothing_but_states_and_names(self) -> None:
        """Recent outcomes and errors are not kept: only counts, states and instance names."""
        answer = status(hubspot="unreachable")
        answer["recent"] = [{"time": 1.0, "selection": "sel-1", "outcomes": {"hubspot": "x"}}]
        answer["crms"]["hubspot"]["last_error"] = "hubspot answered 503 (request id r-9)"
        view = view_of(answer)
        assert "sel-1" not in repr(view)
        assert "r-9" not in repr(view)


class TestIcon:
    """The icon is a disc coloured by state, with a badge while syncing."""

    @pytest.mark.parametrize("state", STATES)
    def test_the_centre_has_the_state_colour(self, state: TrayState) -> None:
        """The centre pixel is the state's colour, and no two states share one."""
        image = draw(state, queue=5)
        assert rgb(image, (SIZE // 2, SIZE // 2)) == COLOURS[state]
        assert len(set(COLOURS.values())) == len(STATES)

    def test_syncing_shows_the_queue_in_a_badge(self) -> None:
        """While syncing, the badge corner holds dark digit pixels, and they differ by count."""
        box = badge_box()
        three = draw("syncing", 3).crop(box)
        twelve = draw("syncing", 12).crop(box)
        pixels = [three.getpixel((x, y)) for x in range(three.width) for y in range(three.height)]
        dark = [p for p in pixels if isinstance(p, tuple) and p[3] and max(p[:3]) < 80]
        assert len(dark) > 10
        assert three.tobytes() != twelve.tobytes()

    @pytest.mark.parametrize("state", ["idle", "paused", "attention", "not_running"])
    def test_no_badge_outside_syncing(self, state: TrayState) -> None:
        """Only syncing draws the badge: the other states ignore the queue."""
        assert draw(state, 7).tobytes() == draw(state, 0).tobytes()

    def test_an_empty_queue_draws_no_badge(self) -> None:
        """Syncing with nothing queued (work in flight) is the plain disc."""
        left, top, right, bottom = badge_box()
        centre = ((left + right) // 2, (top + bottom) // 2)
        assert rgb(draw("syncing", 0), centre) == COLOURS["syncing"]
        assert rgb(draw("syncing", 3), centre) != COLOURS["syncing"]

    @pytest.mark.parametrize(("queue", "text"), [(1, "1"), (99, "99"), (100, "99+")])
    def test_the_badge_text_is_capped(self, queue: int, text: str) -> None:
        """Three digits would not fit: past 99 the badge says 99+."""
        assert badge_text(queue) == text


class TestIncidents:
    """A refused credential is notified once per incident."""

    def test_once_per_incident(self) -> None:
        """The same refusal seen at every poll is said once; a recovery and a new refusal
        is a new incident."""
        incidents = Incidents()
        refused = view_of(status("attention", hubspot="auth"))
        fix = "hubspot needs a new credential: syncd auth set hubspot"
        assert incidents.new(refused) == [fix]
        assert incidents.new(refused) == []
        assert incidents.new(view_of(status("idle", hubspot="ok"))) == []
        assert incidents.new(refused) == [fix]

    def test_a_second_crm_is_its_own_incident(self) -> None:
        """A second CRM refused later is said, without repeating the first."""
        incidents = Incidents()
        incidents.new(view_of(status("attention", hubspot="auth", pipedrive="ok")))
        both = view_of(status("attention", hubspot="auth", pipedrive="auth"))
        assert incidents.new(both) == ["pipedrive needs a new credential: syncd auth set pipedrive"]

    def test_a_daemon_restart_does_not_repeat_it(self) -> None:
        """The daemon going away and coming back with the same refusal says nothing new."""
        incidents = Incidents()
        refused = view_of(status("attention", hubspot="auth"))
        incidents.new(refused)
        assert incidents.new(not_running()) == []
        assert incidents.new(refused) == []


class TestPolling:
    """How often the tray asks, and what it shows when nobody answers."""

    @pytest.mark.parametrize(
        ("state", "seconds"),
        [
            pytest.param("syncing", SYNCING_INTERVAL, id="syncing"),
            pytest.param("idle", IDLE_INTERVAL, id="idle"),
            pytest.param("paused", IDLE_INTERVAL, id="paused"),
            pytest.param("attention", IDLE_INTERVAL, id="attention"),
            pytest.param("not_running", IDLE_INTERVAL, id="not-running"),
        ],
    )
    def test_interval_per_state(self, state: TrayState, seconds: float) -> None:
        """Once a second while syncing, every few seconds otherwise."""
        assert poll_interval(state) == seconds
        assert SYNCING_INTERVAL >= 1.0
        assert 2.0 <= IDLE_INTERVAL <= 10.0

    def test_a_missing_socket_is_not_running(self, tmp_path: Path) -> None:
        """No socket file: the grey "not running" view, not an error."""
        run = tmp_path / "run"
        run.mkdir(mode=0o700)
        view = fetch(ControlClient(run / "syncd.sock", timeout=1.0))
        assert view.state == "not_running"
        assert view.status_line == "syncd is not running"

    def test_the_poller_asks_at_the_pace_of_each_state_and_stops(self) -> None:
        """Each poll's view is shown and its state sets the wait; stop() joins the thread."""
        views = [view_of(status("syncing", 2)), view_of(status("idle")), not_running()]
        shown: list[View] = []
        asked: list[TrayState] = []
        done = threading.Event()

        def interval(state: TrayState) -> float:
            asked.append(state)
            if len(asked) == len(views):
                done.set()
            return 0.0

        poller = Poller(
            lambda: views[min(len(shown), 2)], shown.append, done.set, interval=interval
        )
        poller.start()
        assert done.wait(5)
        assert poller.stop(5)
        assert asked[:3] == ["syncing", "idle", "not_running"]
        assert shown[:3] == views

    def test_work_runs_in_the_poller_then_it_polls_again(self) -> None:
        """A menu request runs in the poller's thread, followed by a fresh poll."""
        events: list[str] = []
        ran_in: list[str] = []
        second_poll = threading.Event()

        def fetch_view() -> View:
            events.append("poll")
            if events.count("poll") == 2:
                second_poll.set()
            return view_of(status("idle"))

        poller = Poller(fetch_view, lambda v: None, lambda: None, interval=lambda s: 30.0)

        def work() -> None:
            events.append("work")
            ran_in.append(threading.current_thread().name)

        poller.request(work)
        poller.start()
        assert second_poll.wait(5)
        assert poller.stop(5)
        assert events[:3] == ["poll", "work", "poll"]
        assert ran_in == ["syncd-tray-poll"]

    def test_quit_tells_the_gui_from_the_poller(self) -> None:
        """quit() ends the loop and calls on_quit once, in the poller's own thread."""
        quit_in: list[str] = []
        gone = threading.Event()

        def on_quit() -> None:
            quit_in.append(threading.current_thread().name)
            gone.set()

        poller = Poller(not_running, lambda v: None, on_quit, interval=lambda s: 30.0)
        poller.start()
        poller.quit()
        assert gone.wait(5)
        assert poller.stop(5)
        assert quit_in == ["syncd-tray-poll"]
        assert poller.error is None

    def test_a_bug_in_the_loop_is_kept_and_ends_the_gui(self) -> None:
        """An unexpected exception stops the tray (no stale icon) and is kept for the owner."""
        gone = threading.Event()

        def broken() -> View:
            raise RuntimeError("boom")

        poller = Poller(broken, lambda v: None, gone.set)
        poller.start()
        assert gone.wait(5)
        assert poller.stop(5)
        assert isinstance(poller.error, RuntimeError)
