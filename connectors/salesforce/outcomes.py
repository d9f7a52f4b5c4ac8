"""What Salesforce's answers to writes mean for each person: created, updated, ambiguous
or failed, with details that carry status, error codes and field names only (never the
vendor's message, which can quote the person's data).

A collection DELETE answers 200 with one DeleteResult per id, in order
(.../resources_composite_sobjects_collections_delete.htm).

One-record PATCH: 201 created, 200 (204 before API v46) updated, 300 several records hold
the external id (the body lists their URLs), 400/404 refused. sObject Collections: 200 with
one SaveResult/UpsertResult per record, in order, errors named by ``statusCode``.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from connectors._http import json_body
from connectors.base import MatchStep, TargetOutcome
from connectors.salesforce import errors
from sync.errors import FatalConnectorError, RecordRejected

_HINTS = {
    "DUPLICATES_DETECTED": "a duplicate rule matched an existing record (often another "
    "synced person with the same email); merge them in Salesforce",
    "REQUIRED_FIELD_MISSING": "a field the org requires is missing",
    "DUPLICATE_VALUE": "another record already holds this member id",
}


def single(connector: str, response: httpx.Response, known: str | None) -> TargetOutcome:
    """The outcome of a one-record PATCH (upsert by external id, or update by Id)."""
    status = response.status_code
    if status == 201:
        return TargetOutcome("created", id=result_id(response))
    if status in (200, 204):
        return TargetOutcome("updated", id=result_id(response) or known)
    if status == 300:
        urls = _json(response)
        ids = (
            [u.rstrip("/").rsplit("/", 1)[-1] for u in urls if isinstance(u, str)]
            if isinstance(urls, list)
            else []
        )
        return TargetOutcome(
            "ambiguous",
            candidates=tuple(sorted(ids)),
            detail=f"{connector}: several records hold this member id; nothing was written",
        )
    return rejected(connector, response)


def collection(
    connector: str,
    response: httpx.Response,
    known: Sequence[str | None],
    what: str = "the record",
) -> list[TargetOutcome]:
    """One outcome per record of an sObject Collections answer, in order."""
    if response.status_code != 200:
        return [rejected(connector, response, what) for _ in known]
    results = _json(response)
    if not isinstance(results, list) or len(results) != len(known):
        raise FatalConnectorError(connector, f"{connector} answered a collection wrongly")
    out: list[TargetOutcome] = []
    for result, rid in zip(results, known, strict=True):
        item = result if isinstance(result, dict) else {}
        given = item.get("id")
        rid = given if isinstance(given, str) and given else rid
        if item.get("success") is True:
            out.append(TargetOutcome("created" if item.get("created") is True else "updated", rid))
            continue
        entries = item.get("errors")
        first = entries[0] if isinstance(entries, list) and entries else {}
        codes = errors.describe(first if isinstance(first, dict) else {}, "statusCode")
        out.append(failed(connector, f"HTTP 200 {codes}", codes, what))
    return out


def deleted(connector: str, response: httpx.Response, asked: int) -> int:
    """How many Tasks a collection DELETE of ``asked`` ids deleted. One already deleted
    counts as gone; any other refusal raises RecordRejected, so the erasure stops before the
    person's record is touched and a later `syncd forget` finds the Tasks again."""
    results = _json(response)
    if not isinstance(results, list) or len(results) != asked:
        raise FatalConnectorError(connector, f"{connector} answered a collection delete wrongly")
    done, refused = 0, []
    for result in results:
        item = result if isinstance(result, dict) else {}
        if item.get("success") is True:
            done += 1
            continue
        entries = item.get("errors")
        first = entries[0] if isinstance(entries, list) and entries else {}
        code = errors.describe(first if isinstance(first, dict) else {}, "statusCode")
        if code != "ENTITY_IS_DELETED":
            refused.append(code)
    if refused:
        raise RecordRejected(
            connector,
            f"{connector} refused to delete {len(refused)} of the Tasks syncd wrote on the "
            f"person ({', '.join(dict.fromkeys(refused))}); the person's record was kept, so "
            "`syncd forget` can finish once the Tasks can be deleted",
            status=response.status_code,
        )
    return done


def rejected(connector: str, response: httpx.Response, what: str = "the record") -> TargetOutcome:
    """A failed outcome for an error answer: status, codes and fields."""
    entries = errors.errors(response)
    codes = ", ".join(dict.fromkeys(errors.describe(e) for e in entries[:3]))
    return failed(connector, f"HTTP {response.status_code} {codes}".strip(), codes, what)


def failed(
    connector: str, what_happened: str, codes: str, what: str = "the record"
) -> TargetOutcome:
    """A rejected record, with a hint of what to do where the code suggests one."""
    hint = next((h for code, h in _HINTS.items() if codes.startswith(code)), "")
    detail = f"{connector} refused {what} ({what_happened})" + (f": {hint}" if hint else "")
    return TargetOutcome("failed", detail=detail, reason="rejected")


def nameless(connector: str) -> TargetOutcome:
    """A person with no name: Salesforce requires LastName, and syncd invents none."""
    return TargetOutcome(
        "failed",
        detail=f"{connector}: the person has no name and Salesforce requires LastName; "
        "nothing was sent",
        reason="rejected",
    )


def ambiguous(connector: str, step: MatchStep | None, ids: tuple[str, ...]) -> TargetOutcome:
    """Several records fit one matching step; none is touched."""
    return TargetOutcome(
        "ambiguous",
        candidates=ids,
        detail=f"{connector}: several records fit by {step}; nothing was written",
    )


def result_id(response: httpx.Response) -> str | None:
    """The ``id`` of a SaveResult/UpsertResult body, if it has one."""
    body = _json(response)
    rid = body.get("id") if isinstance(body, dict) else None
    return rid if isinstance(rid, str) and rid else None


def _json(response: httpx.Response) -> object:
    return json_body(response)
