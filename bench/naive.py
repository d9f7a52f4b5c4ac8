"""The naive baseline: one request per step per person, one person after another.

What a first integration script does: for each person read the profile and the contact info
from the source, then in the CRM search by member id, by profile URL, by email and by name,
and create the person when no search found them; on a 429, wait what the answer says and
ask again. Plain httpx against the same sandboxes syncd talks to, with a token of its own so
its rate windows do not share syncd's.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from rig.runner import RunningSandbox

API = "/services/data/v62.0"
HUBSPOT_CONTACTS = "/crm/v3/objects/contacts"


@dataclass(slots=True)
class NaiveRun:
    """What the naive client did for ``people`` people into one CRM."""

    people: int = 0
    created: int = 0
    requests: int = 0
    throttled: int = 0
    seconds: float = 0.0


class _Client:
    def __init__(self, http: httpx.AsyncClient, run: NaiveRun) -> None:
        self.http = http
        self.run = run

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        while True:
            self.run.requests += 1
            answer = await self.http.request(method, url, **kwargs)
            if answer.status_code != 429:
                return answer
            self.run.throttled += 1
            wait = answer.headers.get("retry-after") or answer.headers.get("x-ratelimit-reset")
            await anyio.sleep(float(wait) if wait else 1.0)


def _hubspot_search(prop: str, value: str, *more: tuple[str, str]) -> dict[str, object]:
    filters = [{"propertyName": p, "operator": "EQ", "value": v} for p, v in ((prop, value), *more)]
    return {"filterGroups": [{"filters": filters}], "limit": 2}


async def _hubspot(c: _Client, base: str, p: dict[str, str]) -> bool:
    url = base + HUBSPOT_CONTACTS
    for body in (
        _hubspot_search("syncd_member_id", p["member_id"]),
        _hubspot_search("syncd_linkedin_url", p["url"]),
        _hubspot_search("email", p["email"]),
        _hubspot_search(
            "firstname", p["first"], ("lastname", p["last"]), ("company", p["company"])
        ),
    ):
        found = await c.call("POST", url + "/search", json=body)
        if found.status_code == 200 and found.json().get("total"):
            return False
    props = {"email": p["email"], "firstname": p["first"], "lastname": p["last"],
             "company": p["company"]}  # fmt: skip
    made = await c.call("POST", url, json={"properties": props})
    return made.status_code == 201


async def _pipedrive(c: _Client, base: str, p: dict[str, str]) -> bool:
    url = base + "/api/v2/persons"
    name = f"{p['first']} {p['last']}"
    for term, field in ((p["email"], "email"), (name, "name")):
        query = {"term": term, "fields": field, "exact_match": "true"}
        found = await c.call("GET", url + "/search", params=query)
        if found.status_code == 200 and (found.json().get("data") or {}).get("items"):
            return False
    body = {"name": name, "emails": [{"value": p["email"], "primary": True, "label": "work"}]}
    made = await c.call("POST", url, json=body)
    return made.status_code in (200, 201)


async def _salesforce(c: _Client, base: str, p: dict[str, str]) -> bool:
    for where in (
        f"LinkedIn_Member_Id__c = '{p['member_id']}'",
        f"LinkedIn_Profile_URL__c = '{p['url']}'",
        f"Email = '{p['email']}'",
        f"FirstName = '{p['first']}' AND LastName = '{p['last']}'",
    ):
        found = await c.call("GET", base + API + "/query",
                             params={"q": "SELECT Id FROM Contact WHERE " + where})  # noqa: S608 - fixed fields, sample values  # fmt: skip
        if found.status_code == 200 and found.json().get("totalSize"):
            return False
    body = {"FirstName": p["first"], "LastName": p["last"], "Email": p["email"]}
    made = await c.call("POST", base + API + "/sobjects/Contact", json=body)
    return made.status_code == 201


async def _person(source: _Client, base: str, public_id: str) -> dict[str, str]:
    profile = (await source.call("GET", f"{base}/api/v1/profiles/{public_id}")).json()
    contact = (await source.call("GET", f"{base}/api/v1/profiles/{public_id}/contact-info")).json()
    positions = profile.get("positions") or [{}]
    return {
        "member_id": profile["id"], "url": profile["profileUrl"],
        "first": profile["firstName"], "last": profile["lastName"],
        "email": contact.get("emailAddress") or "", "company": positions[0].get("companyName", ""),
    }  # fmt: skip


async def _crm_client(sb: RunningSandbox, http: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """(base URL, auth headers) for the naive client: a fresh token the sandbox accepts."""
    if sb.type == "salesforce":
        answer = await http.post(sb.url + "/services/oauth2/token", data={
            "grant_type": "refresh_token", "refresh_token": sb.token,
            "client_id": sb.sandbox.CLIENT_ID, "client_secret": sb.sandbox.CLIENT_SECRET,  # type: ignore[attr-defined]
        })  # fmt: skip
        session = answer.json()
        return session["instance_url"], {"Authorization": f"Bearer {session['access_token']}"}
    token = f"naive-{secrets.token_urlsafe(8)}"
    sb.sandbox.core.tokens.add(token)
    header = "x-api-token" if sb.type == "pipedrive" else "Authorization"
    return sb.url, {header: token if sb.type == "pipedrive" else f"Bearer {token}"}


STEPS = {"hubspot": _hubspot, "pipedrive": _pipedrive, "salesforce": _salesforce}


async def relay(source: RunningSandbox, crm: RunningSandbox, public_ids: Sequence[str]) -> NaiveRun:
    """Relay ``public_ids`` into ``crm`` the naive way; counts only the CRM's requests."""
    run, source_run = NaiveRun(people=len(public_ids)), NaiveRun()
    async with httpx.AsyncClient(timeout=30) as http:
        base, headers = await _crm_client(crm, http)
        crm_http = httpx.AsyncClient(timeout=30, headers=headers)
        source_http = httpx.AsyncClient(
            timeout=30, headers={"Authorization": f"Bearer {source.token}"}
        )
        async with crm_http, source_http:
            client, reader = _Client(crm_http, run), _Client(source_http, source_run)
            started = time.perf_counter()
            for public_id in public_ids:
                person = await _person(reader, source.url, public_id)
                run.created += await STEPS[crm.type](client, base, person)
            run.seconds = time.perf_counter() - started
    return run
