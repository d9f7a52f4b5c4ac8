"""Follow mode's list in a Salesforce org: the ``syncd_follow__c`` checkbox on a Contact or
Lead, set by `syncd follow`, cleared by `syncd unfollow`, and every checked record listed
with the publicId of the profile URL syncd wrote on it. Nothing about it is kept locally.

The flag is written like any field (``PATCH …/sobjects/<Object>/<Id>``, 204), with
``syncd_synced_at__c``; the list is one SOQL query, every page.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_update_fields.htm
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import httpx

from connectors.base import Followed, profile_key
from connectors.salesforce import errors, outcomes
from connectors.salesforce.mapping import FIELD_OF, FOLLOW_FIELD, SYNCED_AT_FIELD, SObject, text
from sync.errors import FatalConnectorError, RecordRejected


def hint(obj: SObject) -> str:
    """What to check when the org refuses the follow field."""
    return f"the field {FOLLOW_FIELD} (Checkbox, default unchecked) exists on {obj} for follow mode"


def body(follow: bool, stamp: str) -> dict[str, object]:
    """The fields a follow (or unfollow) writes."""
    return {FOLLOW_FIELD: follow, SYNCED_AT_FIELD: stamp}


def check_set(connector: str, obj: SObject, response: httpx.Response) -> None:
    """Raise unless the flag was written: an org without the field is a fatal error that
    names it; any other refusal is RecordRejected with its codes."""
    if response.is_success:
        return
    code = errors.first_code(response)
    if code in ("INVALID_FIELD", "INVALID_FIELD_FOR_INSERT_UPDATE"):
        raise FatalConnectorError(
            connector,
            f"{connector} refused the follow flag (HTTP {response.status_code} {code}); "
            f"check that {hint(obj)} and that the connected app's user can edit it",
            status=response.status_code,
        )
    failed = outcomes.rejected(connector, response, "the follow flag")
    raise RecordRejected(connector, failed.detail, status=response.status_code)


def listed(obj: SObject, rows: Iterable[Mapping[str, object]]) -> list[Followed]:
    """The followed records of a query answer, each with its publicId; a record without a
    profile URL cannot be followed on the source and is left out."""
    out: list[Followed] = []
    for row in rows:
        rid = text(row, "Id")
        key = profile_key(text(row, FIELD_OF[obj]["linkedin_url"]))
        if rid and key:
            out.append(Followed(rid, key.split("/", 1)[1]))
    return out
