"""The HubSpot sandbox's CRM search, shared by contacts and companies: a body's
``filterGroups`` turned into tests on a record's properties, and one page of the hits."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping

from connectors.hubspot.sandbox import http as h

#: One filter: a test on a record's properties.
Test = Callable[[Mapping[str, str]], bool]


def filter_groups(body: Mapping[str, object]) -> list[list[Test]]:
    """A search body's ``filterGroups`` (ORed) of ``filters`` (ANDed), with HubSpot's limits:
    at most 5 groups, 6 filters a group, 18 filters in all."""
    groups = h.objects(body.get("filterGroups", []), "filterGroups")
    filters = [h.objects(g.get("filters"), "filters") for g in groups]
    if len(groups) > 5 or any(len(f) > 6 for f in filters) or sum(map(len, filters)) > 18:
        raise h.bad_input("A search takes at most 5 filter groups, 6 filters a group, 18 in all.")
    return [[_filter(f) for f in group] for group in filters]


def search_page(body: Mapping[str, object], results: list[object]) -> dict[str, object]:
    """One page of search ``results`` by the body's ``limit`` (at most 200) and ``after``."""
    limit = max(1, min(200, h.number(body.get("limit"), 10)))
    after = h.number(body.get("after"), 0)
    answer: dict[str, object] = {"total": len(results), "results": results[after : after + limit]}
    if after + limit < len(results):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return answer


def _filter(spec: Mapping[str, object]) -> Test:
    """One search filter as a test on a record's properties (EQ, NEQ, IN, HAS_PROPERTY,
    NOT_HAS_PROPERTY, CONTAINS_TOKEN where ``*`` stands for any text)."""
    name = h.text(spec.get("propertyName"), "propertyName")
    operator = spec.get("operator")
    value = str(spec.get("value", "")).lower()
    raw_values = spec.get("values")
    values = {str(v).lower() for v in raw_values} if isinstance(raw_values, list) else set()
    tests: dict[object, Callable[[str], bool]] = {
        "EQ": lambda have: have == value,
        "NEQ": lambda have: have != value,
        "IN": lambda have: have in values,
        "HAS_PROPERTY": lambda have: have != "",
        "NOT_HAS_PROPERTY": lambda have: have == "",
        "CONTAINS_TOKEN": lambda have: fnmatch.fnmatchcase(
            have, value if "*" in value else f"*{value}*"
        ),
    }
    if operator not in tests:
        raise h.bad_input("The filter operator is not supported.")
    test = tests[operator]
    return lambda props: test((props.get(name) or "").lower())
