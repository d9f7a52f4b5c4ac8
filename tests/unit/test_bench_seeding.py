"""Seeding the source sandbox is linear: work per person does not grow with who it holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.linkedin.sandbox import LinkedInSandbox
from connectors.linkedin.sandbox.samples import generated_people, profile

#: Dict operations allowed per added person (a lookup, a delete, a store, ... each).
PER_PERSON = 12


class _Budget:
    """A shared count of dict operations that fails the test once it is spent."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, n: int = 1) -> None:
        self.used += n
        if self.used > self.limit:
            raise AssertionError(f"more than {self.limit} dict operations: not linear")


class _CountingDict(dict[Any, Any]):
    """A dict that charges every access, and every item a scan visits, to a budget."""

    def __init__(self, data: dict[Any, Any], budget: _Budget) -> None:
        super().__init__(data)
        self.budget = budget

    def __getitem__(self, key: Any) -> Any:
        self.budget.spend()
        return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.budget.spend()
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.budget.spend()
        super().__delitem__(key)

    def __contains__(self, key: object) -> bool:
        self.budget.spend()
        return super().__contains__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.budget.spend()
        return super().get(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        self.budget.spend()
        return super().pop(key, *default)

    def _charged(self, items: Iterator[Any]) -> Iterator[Any]:
        for item in items:
            self.budget.spend()
            yield item

    def __iter__(self) -> Iterator[Any]:
        return self._charged(super().__iter__())

    def items(self) -> Any:
        return list(self._charged(iter(super().items())))

    def values(self) -> Any:
        return list(self._charged(iter(super().values())))

    def keys(self) -> Any:
        return list(self._charged(iter(super().keys())))


def _instrument(sandbox: LinkedInSandbox, budget: _Budget) -> None:
    """Swap every dict the sandbox keeps people in for a counting one."""
    for name, value in vars(sandbox).items():
        if isinstance(value, dict) and name in ("_people", "_member_keys"):
            setattr(sandbox, name, _CountingDict(value, budget))


class TestSeedingIsLinear:
    def test_20000_people_cost_a_constant_number_of_dict_operations_each(self) -> None:
        """Adding 20 000 people does at most a fixed number of dict operations per person."""
        people = generated_people(20_000)
        sandbox = LinkedInSandbox(tokens=["t"], people=[])
        budget = _Budget(PER_PERSON * len(people))
        _instrument(sandbox, budget)
        sandbox.add_people(people)
        assert len(sandbox.public_ids()) == 20_000
        assert budget.used <= PER_PERSON * len(people)

    def test_seeding_in_two_halves_costs_what_one_pass_costs(self) -> None:
        """The second 10 000 cost as much as the first: the work does not grow with size."""
        people = generated_people(20_000)
        sandbox = LinkedInSandbox(tokens=["t"], people=[])
        budget = _Budget(10**9)
        _instrument(sandbox, budget)
        sandbox.add_people(people[:10_000])
        first = budget.used
        sandbox.add_people(people[10_000:])
        assert budget.used - first == pytest.approx(first, rel=0.01)


class TestReplacementStillWorks:
    def test_a_renamed_vanity_replaces_the_person_with_the_same_member_id(self) -> None:
        """Re-adding a member under a new publicId drops the old publicId."""
        sandbox = LinkedInSandbox(tokens=["t"], people=generated_people(3))
        renamed = generated_people(1)[0]
        renamed["profile"] = profile(1000, "person-renamed", "First1000", "Last1000")
        sandbox.add_people([renamed])
        assert sandbox.public_ids() == ["person-1001", "person-1002", "person-renamed"]

    def test_a_publicid_taken_by_another_member_replaces_that_member(self) -> None:
        """A new member under a held publicId replaces the old one, who can then be re-added."""
        sandbox = LinkedInSandbox(tokens=["t"], people=generated_people(2))
        taker = generated_people(1, first_index=5000)[0]
        taker["profile"] = profile(5000, "person-1000", "Other", "Person")
        sandbox.add_people([taker])
        assert sandbox.public_ids() == ["person-1000", "person-1001"]
        assert sandbox.people_data(["person-1000"])[0]["first_name"] == "Other"
        back = generated_people(1)[0]
        back["profile"] = profile(1000, "person-back", "First1000", "Last1000")
        sandbox.add_people([back])
        assert sandbox.public_ids() == ["person-1000", "person-1001", "person-back"]
