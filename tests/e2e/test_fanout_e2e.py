"""Fan-out, `--to` and `check` end to end: the real CLI in a subprocess, a daemon, and a
loopback sandbox per CRM instance (the throwaway stack `syncd demo` stands on)."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from connectors import registry
from rig.stack import Stack, throwaway_stack

ADA = "https://www.linkedin.example/in/ada-quill/"


# The stacks are opened inside each test, not in fixtures: a task group must be left by the
# task that entered it, and pytest-asyncio sets fixtures up and tears them down in two.


def every_crm(root: Path) -> AbstractAsyncContextManager[Stack]:
    """One instance of every CRM type."""
    return throwaway_stack(root)


def two_portals(root: Path) -> AbstractAsyncContextManager[Stack]:
    """Two HubSpot instances side by side, each with its own sandbox (its own portal)."""
    return throwaway_stack(root, crms={"hubspot": "hubspot", "eu": "hubspot"})


def lines(output: str) -> dict[str, str]:
    """`name: rest` lines by CRM name."""
    out = {}
    for line in output.strip().splitlines():
        name, _, rest = line.partition(": ")
        out[name] = rest
    return out


async def test_one_add_reaches_every_crm_once(tmp_path: Path) -> None:
    """One selection, one line and one record per CRM; a re-add changes nothing."""
    async with every_crm(tmp_path) as stack:
        assert set(stack.crms) == set(registry.types("crm"))
        output, code, _ = await stack.cli("add-contact", ADA)
        assert code == 0, output
        first = lines(output)
        assert set(first) == set(stack.crms)
        assert all(rest.startswith("created ") for rest in first.values()), output
        output, code, _ = await stack.cli("add-contact", ADA)
        assert code == 0, output
        second = lines(output)
        assert {n: r.replace("unchanged", "created") for n, r in second.items()} == first
        assert stack.record_counts() == dict.fromkeys(stack.crms, 1)


async def test_to_picks_instances(tmp_path: Path) -> None:
    """--to sends to the named instance only."""
    async with two_portals(tmp_path) as stack:
        output, code, _ = await stack.cli("add-contact", ADA, "--to", "eu")
        assert code == 0, output
        assert list(lines(output)) == ["eu"]
        assert stack.record_counts() == {"hubspot": 0, "eu": 1}


async def test_unknown_to_is_exit_2_and_nothing_is_sent(tmp_path: Path) -> None:
    """An unknown instance name is refused before the source or any CRM is asked."""
    async with two_portals(tmp_path) as stack:
        output, code, _ = await stack.cli("add-contact", ADA, "--to", "eu,nowhere")
        assert code == 2
        assert "nowhere" in output
        assert "Traceback" not in output
        assert stack.source.sandbox.core.requests == []
        assert all(sb.sandbox.core.requests == [] for sb in stack.crms.values())


async def test_two_instances_of_one_type_work_side_by_side(tmp_path: Path) -> None:
    """Both portals get their own record, with their own ids."""
    async with two_portals(tmp_path) as stack:
        output, code, _ = await stack.cli("add-contact", ADA)
        assert code == 0, output
        assert set(lines(output)) == {"hubspot", "eu"}
        assert stack.record_counts() == {"hubspot": 1, "eu": 1}


async def test_one_failing_crm_does_not_hold_back_the_others(tmp_path: Path) -> None:
    """A CRM that refuses the record fails alone: the other is written; exit 1 says which."""
    async with two_portals(tmp_path) as stack:
        stack.crms["eu"].sandbox.core.fail_next(400, count=100)
        output, code, _ = await stack.cli("add-contact", ADA)
        assert code == 1, output
        result = lines(output)
        assert result["hubspot"].startswith("created ")
        assert result["eu"].startswith("failed: ")
        assert "400" in result["eu"]
        assert stack.record_counts() == {"hubspot": 1, "eu": 0}


async def test_check_answers_without_writing(tmp_path: Path) -> None:
    """check says "not found" everywhere before the first add, and id + link after."""
    async with every_crm(tmp_path) as stack:
        output, code, _ = await stack.cli("check", ADA)
        assert code == 0, output
        assert set(lines(output).values()) == {"not found"}
        assert stack.record_counts() == dict.fromkeys(stack.crms, 0)
        added, code, _ = await stack.cli("add-contact", ADA)
        assert code == 0
        ids = {n: rest.split()[-1] for n, rest in lines(added).items()}
        output, code, _ = await stack.cli("check", ADA, "--json")
        assert code == 0, output
        answer = json.loads(output)
        assert answer["ref"] == ADA
        for name, found in answer["crms"].items():
            assert found["found"] is True
            assert found["id"] == ids[name]
            assert found["step"] == "identity"
            assert ids[name] in found["url"]
        assert stack.record_counts() == dict.fromkeys(stack.crms, 1)


async def test_check_refuses_a_bad_ref_with_exit_2(tmp_path: Path) -> None:
    """A company page is not a person: exit 2, one sentence, nothing asked."""
    async with every_crm(tmp_path) as stack:
        output, code, _ = await stack.cli("check", "https://www.linkedin.example/company/acme/")
        assert code == 2
        assert output.startswith("syncd: ")
        assert stack.source.sandbox.core.requests == []


async def test_the_same_person_many_times_at_once_is_one_record(tmp_path: Path) -> None:
    """Six selections of two people in one call (batched together or not): two records per
    CRM, and a second add of them changes nothing (their identity was written)."""
    async with every_crm(tmp_path) as stack:
        zoe = "https://www.linkedin.example/in/zoe-angstrom/"
        refs = [ADA, "ada-quill", zoe, ADA + "?utm=x", "zoe-angstrom", ADA]
        output, code, _ = await stack.cli("add-contact", *refs)
        assert code == 0, output
        assert stack.record_counts() == dict.fromkeys(stack.crms, 2)
        again, code, _ = await stack.cli("add-contact", ADA, zoe)
        assert code == 0, again
        assert "created" not in again
        assert "updated" not in again
