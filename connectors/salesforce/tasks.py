"""syncd's Tasks in a Salesforce org: each LinkedIn message (or part of a long one) as one
completed Task on the person's Contact or Lead, and the look-ups that tell which messages
the org holds already.

A Task syncd writes: ``WhoId`` = the person, ``Status`` = ``Completed`` (a message sent or
received is done), ``Subject`` = "LinkedIn message sent|received <time> UTC",
``Description`` = the body, ``ActivityDate`` = the day (UTC) and ``syncd_message_id__c`` =
the :class:`connectors.base.Activity` key. The exact time is in the Subject because Task
has no date-time an integration sets for when an activity happened: ``ActivityDate`` is a
date whose time is always midnight UTC, ``CompletedDateTime`` is read-only (Salesforce
stamps it when the Task is closed) and ``ReminderDateTime`` is a reminder. ``TaskSubtype``
is left to its default ("Task"): it can only be set on create, and an org's picklist may
not hold anything closer to a LinkedIn message.

Tasks go through sObject Collections create (``POST …/composite/sobjects``, at most 200 a
call) with ``allOrNone``: a call lands whole or not at all, so what the org holds is always
whole calls, and a refusal leaves nothing half-written. A lost answer is never resent
(WriteUncertain); the caller reads :meth:`TaskLog.message_ids` again and writes the rest.

Reads use ``queryAll`` with ``IsDeleted = false``: a plain query leaves out archived Tasks
(closed ones older than a year), and a message whose Task was archived must still count
as held, and still be deleted by `syncd forget`.

https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_create.htm
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_task.htm
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_queryall.htm
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

import httpx

from connectors._http import json_body
from connectors.base import Activity, Logged, message_of
from connectors.salesforce import errors, outcomes, soql
from connectors.salesforce.mapping import BATCH_LIMIT, MESSAGE_ID_FIELD, parse_datetime, text
from connectors.salesforce.query import Call
from sync.errors import ActivitiesRefused, ConnectorError, FatalConnectorError, RecordRejected

#: The Task status syncd writes: the standard closed value.
COMPLETED = "Completed"
_SUBJECT = re.compile(
    r"^LinkedIn message (sent|received) (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) UTC$"
)
#: Error codes that mean the integration user may not write syncd's Tasks: no create or
#: edit right on Task, no access to the person, or the message id field missing/read-only.
REFUSALS = frozenset(
    {
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "INVALID_FIELD",
        "INVALID_TYPE",
        "INVALID_TYPE_FOR_OPERATION",
    }
)
_ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


class Query(Protocol):
    """The client's paged SOQL query (see ``SalesforceCRM._query``)."""

    async def __call__(
        self,
        query: str,
        *,
        fields: str = "",
        missing_field_means_none: bool = False,
        all_rows: bool = False,
        refused: type[ConnectorError] = FatalConnectorError,
    ) -> list[dict[str, object]]: ...


def subject(activity: Activity) -> str:
    """The Task's Subject: the direction and the message's time, to the second, in UTC."""
    direction = "sent" if activity.message.sender == "me" else "received"
    moment = activity.message.sent_at.astimezone(UTC)
    return f"LinkedIn message {direction} {moment:%Y-%m-%d %H:%M:%S} UTC"


def subject_time(value: object) -> datetime | None:
    """The time a Subject syncd wrote carries; None for any other Subject."""
    found = _SUBJECT.match(value) if isinstance(value, str) else None
    if found is None:
        return None
    return datetime.strptime(found.group(2), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def task(record_id: str, activity: Activity) -> dict[str, object]:
    """One activity as an sObject Collections record: a completed Task on the person."""
    return {
        "attributes": {"type": "Task"},
        "WhoId": record_id,
        "Status": COMPLETED,
        "Subject": subject(activity),
        "Description": activity.body,
        "ActivityDate": activity.message.sent_at.astimezone(UTC).date().isoformat(),
        MESSAGE_ID_FIELD: activity.key,
    }


def logged(activities: Sequence[Activity]) -> Logged:
    """What writing ``activities`` wrote: messages (a split one once) and how many split."""
    messages = {message_of(a.key) for a in activities}
    split = {message_of(a.key) for a in activities if "#" in a.key}
    return Logged(written=len(messages), split=len(split))


def refused(connector: str, codes: Sequence[str], status: int) -> ActivitiesRefused:
    """The sentence for an org that will not take syncd's Tasks."""
    return ActivitiesRefused(
        connector,
        f"{connector} refused the Tasks for the messages ({', '.join(dict.fromkeys(codes))}); "
        f"give the connected app's user the right to create Tasks and to edit the Task field "
        f"{MESSAGE_ID_FIELD} (Text 255; create it if it is missing)",
        status=status,
    )


def check_created(connector: str, response: httpx.Response, asked: int) -> None:
    """Raise unless a collection create of ``asked`` Tasks created every one: a refusal for
    want of a right is ActivitiesRefused, anything else RecordRejected (with ``allOrNone``,
    none of the call's Tasks was written then)."""
    status = response.status_code
    if status == 200:
        codes = _failed_codes(connector, json_body(response), asked)
        if not codes:
            return
    else:
        codes = [errors.describe(e) for e in errors.errors(response)] or ["ERROR"]
    if any(c.split(" ", 1)[0] in REFUSALS for c in codes):
        raise refused(connector, codes, status)
    raise RecordRejected(
        connector,
        f"{connector} refused the Tasks for the messages (HTTP {status} "
        f"{', '.join(dict.fromkeys(codes))}); none of that call's Tasks was written",
        status=status,
    )


def _failed_codes(connector: str, results: object, asked: int) -> list[str]:
    """The error codes of the failed SaveResults of a collection answer (the roll-back
    marker only when nothing else is named); empty when every record was created."""
    if not isinstance(results, list) or len(results) != asked:
        raise FatalConnectorError(connector, f"{connector} answered a collection create wrongly")
    items = [r if isinstance(r, dict) else {} for r in results]
    failures = [r for r in items if r.get("success") is not True]
    codes: list[str] = []
    for item in failures:
        entries = item.get("errors")
        for entry in entries if isinstance(entries, list) else []:
            code = errors.describe(entry if isinstance(entry, dict) else {}, "statusCode")
            if not code.startswith(_ROLLED_BACK):
                codes.append(code)
    return codes or ([_ROLLED_BACK] if failures else [])


class TaskLog:
    """syncd's Tasks on the people of one org, over the client's call and query."""

    def __init__(self, connector: str, data: str, call: Call, query: Query) -> None:
        self._connector = connector
        self._data = data
        self._call = call
        self._query = query

    async def rows(self, record_id: str) -> list[dict[str, object]]:
        """The Tasks syncd wrote on a record (archived ones too); none in an org without
        the message id field on Task (syncd cannot have written any there)."""
        return await self._query(
            soql.task_query(record_id),
            fields=f"the field {MESSAGE_ID_FIELD} exists on Task",
            missing_field_means_none=True,
            all_rows=True,
        )

    async def message_ids(self, record_id: str) -> frozenset[str]:
        """The keys of the Tasks syncd wrote on a record; a person's own Tasks carry none.
        An org without the field (or a user who cannot read Tasks) is ActivitiesRefused."""
        found = await self._query(
            soql.task_query(record_id),
            fields=f"the field {MESSAGE_ID_FIELD} (Text 255) exists on Task",
            all_rows=True,
            refused=ActivitiesRefused,
        )
        return frozenset(k for k in (text(r, MESSAGE_ID_FIELD) for r in found) if k)

    async def add(self, record_id: str, activities: Sequence[Activity]) -> Logged:
        """Write ``activities`` in order as completed Tasks, 200 a call."""
        path = f"{self._data}/composite/sobjects"
        for start in range(0, len(activities), BATCH_LIMIT):
            chunk = activities[start : start + BATCH_LIMIT]
            body = {"allOrNone": True, "records": [task(record_id, a) for a in chunk]}
            response = await self._call("POST", path, body=body, ok={200, 400})
            check_created(self._connector, response, len(chunk))
        return logged(activities)

    async def delete(self, ids: Sequence[str]) -> int:
        """Delete up to 200 Tasks in one call; how many went (see :func:`outcomes.deleted`)."""
        params = {"ids": ",".join(ids), "allOrNone": "false"}
        response = await self._call(
            "DELETE", f"{self._data}/composite/sobjects", params=params, idempotent=False
        )
        return outcomes.deleted(self._connector, response, len(ids))


def task_time(row: Mapping[str, object]) -> datetime | None:
    """When the message a Task records happened: the Subject's time, else its ActivityDate,
    else when it was created (a person may have edited the Subject)."""
    return (
        subject_time(row.get("Subject"))
        or parse_datetime(row.get("ActivityDate"))
        or parse_datetime(row.get("CreatedDate"))
    )
