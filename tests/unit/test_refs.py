"""REF parsing: what names a person, and what is refused before anything is sent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.errors import UsageError
from sync.refs import PUBLIC_ID, BadLine, parse_ref, read_refs


class TestParseRef:
    """parse_ref accepts profile URLs and bare publicIds, and nothing else."""

    @pytest.mark.parametrize(
        ("ref", "public_id"),
        [
            pytest.param("ada-lovelace", "ada-lovelace", id="bare"),
            pytest.param("https://www.linkedin.com/in/ada-lovelace", "ada-lovelace", id="url"),
            pytest.param("https://www.linkedin.com/in/ada_1/", "ada_1", id="trailing-slash"),
            pytest.param("https://x.example/in/ada?trk=a&b=c", "ada", id="query"),
            pytest.param("https://x.example/in/ada/#frag", "ada", id="fragment"),
            pytest.param("  ada-lovelace\n", "ada-lovelace", id="whitespace-around"),
            pytest.param("HTTPS://x.example/in/Ada9", "Ada9", id="scheme-case"),
        ],
    )
    def test_accepts(self, ref: str, public_id: str) -> None:
        """Each accepted form yields the publicId."""
        assert parse_ref(ref) == public_id

    @pytest.mark.parametrize(
        "ref",
        [
            pytest.param("https://www.linkedin.com/company/acme/", id="company"),
            pytest.param("https://www.linkedin.com/in/../x", id="dot-dot"),
            pytest.param("https://www.linkedin.com/in/a/b", id="extra-segment"),
            pytest.param("http://www.linkedin.com/in/ada", id="plain-http"),
            pytest.param("www.linkedin.com/in/ada", id="no-scheme"),
            pytest.param("ada lovelace", id="space"),
            pytest.param("zoë", id="non-ascii"),
            pytest.param("a", id="one-char"),
            pytest.param("a" * 101, id="too-long"),
            pytest.param("-ada", id="leading-dash"),
            pytest.param("https:///in/ada", id="no-host"),
            pytest.param("https://user@x.example/in/ada", id="userinfo"),
            pytest.param("", id="empty"),
        ],
    )
    def test_refuses(self, ref: str) -> None:
        """Anything else is a UsageError whose message does not repeat the input."""
        with pytest.raises(UsageError) as caught:
            parse_ref(ref)
        if len(ref) > 3:
            assert ref not in str(caught.value)

    @given(st.from_regex(PUBLIC_ID, fullmatch=True))
    def test_every_valid_public_id_round_trips_through_a_url(self, public_id: str) -> None:
        """Any valid publicId is accepted bare and inside a profile URL."""
        assert parse_ref(public_id) == public_id
        assert parse_ref(f"https://www.linkedin.com/in/{public_id}/") == public_id


class TestReadRefs:
    """--from-file input: one ref per line, comments skipped, bad lines numbered."""

    def test_lines_comments_and_bad_lines(self) -> None:
        """Good lines keep their numbers; bad ones are reported, not fatal."""
        lines = ["# people", "", "ada-lovelace", "not a ref", "https://x.example/in/bob/"]
        items = list(read_refs(lines))
        assert items[0] == (3, "ada-lovelace")
        assert isinstance(items[1], BadLine)
        assert items[1].line == 4
        assert items[2] == (5, "https://x.example/in/bob/")

    def test_linkedin_connections_csv(self) -> None:
        """LinkedIn's Connections.csv export is read by its URL column, after its preamble."""
        lines = [
            "Notes:",
            '"When exporting your connection data, you may notice..."',
            "",
            "First Name,Last Name,URL,Email Address,Company,Position,Connected On",
            'Ada,Lovelace,https://www.linkedin.com/in/ada-lovelace,,"Engines, Ltd",Analyst,01 Jan',
            "Bob,NoUrl,,,,,",
        ]
        items = list(read_refs(lines))
        assert items[0] == (5, "https://www.linkedin.com/in/ada-lovelace")
        assert isinstance(items[1], BadLine)
