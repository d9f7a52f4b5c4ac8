"""The person custom fields syncd writes in one Pipedrive company, found by name and made
when missing (``GET``/``POST /api/v2/personFields``): the identity field ("syncd member
id"), the profile URL, "syncd synced at" and, for follow mode, "syncd follow". All are text
(``varchar``) fields; their hashed keys are remembered for the client's life once found.
"""

from __future__ import annotations

from connectors._session import Session
from connectors.pipedrive.errors import envelope
from connectors.pipedrive.mapping import (
    FOLLOW_FIELD,
    JOB_TITLE,
    PAGE_LIMIT,
    POSTAL_ADDRESS,
    SYNCED_AT_FIELD,
    FieldDefinition,
    FieldMap,
    field_from,
)
from sync.errors import FatalConnectorError

PERSON_FIELDS = "/api/v2/personFields"


class PersonFields:
    """Where this company keeps what syncd writes on a person."""

    def __init__(self, api: Session, member_field: str, profile_field: str) -> None:
        self._api = api
        self._names = (member_field, profile_field, SYNCED_AT_FIELD)
        self._map: FieldMap | None = None
        self._follow = ""

    async def field_map(self, *, create: bool) -> FieldMap:
        """The hashed keys of syncd's fields ("" for one that does not exist; made if
        ``create``), and which contact-sync fields the company has."""
        if self._map is not None:
            return self._map
        definitions = await self._definitions()
        custom = {
            f["field_name"].casefold(): f["field_code"] for f in definitions if f["is_custom_field"]
        }
        codes = {f["field_code"] for f in definitions}
        keys: list[str] = []
        for name in self._names:
            key = custom.get(name.casefold(), "")
            keys.append(await self._create(name) if not key and create else key)
        found = FieldMap(
            keys[0], keys[1], JOB_TITLE in codes, POSTAL_ADDRESS in codes, synced_at=keys[2]
        )
        if found.member_id and found.profile_url and found.synced_at:
            self._map = found
        return found

    async def follow_key(self, *, create: bool) -> str:
        """The key of the "syncd follow" field ("" while it does not exist), made if
        missing and ``create``."""
        if not self._follow:
            for definition in await self._definitions():
                name = definition["field_name"].casefold()
                if definition["is_custom_field"] and name == FOLLOW_FIELD.casefold():
                    self._follow = definition["field_code"]
                    break
            else:
                self._follow = await self._create(FOLLOW_FIELD) if create else ""
        return self._follow

    async def _definitions(self) -> list[FieldDefinition]:
        """Every person field definition, every page."""
        definitions: list[FieldDefinition] = []
        cursor: str | None = None
        while True:
            params = {"limit": str(PAGE_LIMIT), **({"cursor": cursor} if cursor else {})}
            response = await self._api.call("GET", PERSON_FIELDS, params=params)
            data, more = envelope(self._api.connector, response)
            definitions += [f for f in map(field_from, data or []) if f is not None]
            cursor = more.get("next_cursor") if isinstance(more.get("next_cursor"), str) else None
            if not cursor:
                return definitions

    async def _create(self, name: str) -> str:
        body = {"field_name": name, "field_type": "varchar"}
        response = await self._api.call("POST", PERSON_FIELDS, body=body)
        made = field_from(envelope(self._api.connector, response)[0])
        if made is None:
            connector = self._api.connector
            raise FatalConnectorError(connector, f"{connector} sent a malformed field")
        return made["field_code"]
