"""The vendors' small-plan limits switched on in running sandboxes, and how close a run came.

Limits (checked on the vendors' pages):

- HubSpot Starter, private app: 100 requests per 10 s, the CRM search endpoints 5 per second
  per account (https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details).
- Pipedrive Lite, API token: a burst of 20 requests per 2 s per token, search 10 per 2 s, and
  a daily budget of 30 000 tokens x plan multiplier (Lite 1) x seats, each request spending
  its endpoint's token cost (https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting).
- Salesforce: 25 concurrent long-running (20 s or more) requests per org, and a rolling
  24-hour API request allocation (https://developer.salesforce.com/docs/atlas.en-us.
  salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/
  salesforce_app_limits_platform_api.htm); no per-second limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rig.runner import RunningSandbox
from rig.sandbox import RecordedRequest

HUBSPOT_BURST = (100, 10.0)
HUBSPOT_SEARCH = (5, 1.0)
PIPEDRIVE_BURST = (20, 2.0)
PIPEDRIVE_SEARCH = (10, 2.0)
PIPEDRIVE_DAILY_TOKENS = 30_000  # one seat of Lite
SALESFORCE_CONCURRENT = 25
SALESFORCE_DAILY = 15_000  # the sandbox's allocation (a Developer Edition org's)


def apply_small_plan(running: Mapping[str, RunningSandbox], latency_ms: int) -> list[str]:
    """Switch on each CRM sandbox's small-plan limits and ``latency_ms`` on every sandbox;
    returns the limits the sandboxes have no knob for (the bench cannot enforce them)."""
    missing: list[str] = []
    for sb in running.values():
        sb.sandbox.core.latency_ms = latency_ms
        box: object = sb.sandbox
        if sb.type == "hubspot":
            box.rate_limit, box.rate_interval = HUBSPOT_BURST  # type: ignore[attr-defined]
            if hasattr(box, "search_limit"):
                box.search_limit, box.search_interval = HUBSPOT_SEARCH  # type: ignore[attr-defined]
            else:
                missing.append("hubspot: search 5/s (no sandbox knob)")
        elif sb.type == "pipedrive":
            limits = box.limits  # type: ignore[attr-defined]
            limits.burst = PIPEDRIVE_BURST[0]
            limits.search_burst = PIPEDRIVE_SEARCH[0]
            # The daily budget is counted, not enforced: a 2 000-person run may spend more
            # than one Lite seat's day, and the bench reports people/day from the count.
            missing.append("pipedrive: 30 000 tokens/day counted, not enforced (run > a day)")
        elif sb.type == "salesforce":
            box.usage.limit = SALESFORCE_DAILY  # type: ignore[attr-defined]
            missing.append("salesforce: 25 concurrent (no sandbox knob; peak measured)")
    return missing


@dataclass(frozen=True, slots=True)
class Traffic:
    """What one CRM sandbox saw during one phase."""

    requests: int
    searches: int
    throttled: int
    seconds: float
    tokens: int
    peak_concurrent: int

    def ceiling_ratio(self, crm_type: str) -> float:
        """The achieved rate over the binding documented limit (1.0 = at the ceiling)."""
        if self.seconds <= 0:
            return 0.0
        rate, search_rate = self.requests / self.seconds, self.searches / self.seconds
        if crm_type == "hubspot":
            return max(rate / (HUBSPOT_BURST[0] / HUBSPOT_BURST[1]),
                       search_rate / (HUBSPOT_SEARCH[0] / HUBSPOT_SEARCH[1]))  # fmt: skip
        if crm_type == "pipedrive":
            return max(rate / (PIPEDRIVE_BURST[0] / PIPEDRIVE_BURST[1]),
                       search_rate / (PIPEDRIVE_SEARCH[0] / PIPEDRIVE_SEARCH[1]))  # fmt: skip
        return self.peak_concurrent / SALESFORCE_CONCURRENT


def is_search(request: RecordedRequest) -> bool:
    """Whether a vendor request is a search (HubSpot, Pipedrive) or a SOQL query."""
    return "/search" in request.path or request.path.endswith("/query")


def traffic(sb: RunningSandbox, since: int, started: float, tokens_before: int) -> Traffic:
    """The requests ``sb`` saw after its first ``since``, timed from ``started`` (epoch)."""
    seen: Sequence[RecordedRequest] = sb.sandbox.core.requests[since:]
    last = max((r.at for r in seen), default=started)
    return Traffic(
        requests=len(seen),
        searches=sum(1 for r in seen if is_search(r)),
        throttled=sum(1 for r in seen if r.status == 429),
        seconds=last - started,
        tokens=tokens_spent(sb) - tokens_before,
        peak_concurrent=sb.sandbox.core.peak_in_flight,
    )


def tokens_spent(sb: RunningSandbox) -> int:
    """Pipedrive tokens the company has spent today (0 for other CRMs)."""
    limits = getattr(sb.sandbox, "limits", None)
    return int(getattr(limits, "spent", 0))
