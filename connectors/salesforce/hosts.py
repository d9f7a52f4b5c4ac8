"""Where the Salesforce client may send its access token, and which query page links it
follows.

The OAuth answer names the org's instance (``instance_url``), and every query page names the
next one (``nextRecordsUrl``): both come from the network, so neither is trusted as a string.
A request may go only over https to a Salesforce host (``*.salesforce.com``, which covers
My Domain's ``*.my.salesforce.com`` and sandbox orgs' ``*.sandbox.my.salesforce.com``, or
``*.force.com``) or to the configured login host itself. When the login URL is plain http
on a loopback host (a local sandbox, as the config allows), requests go to loopback hosts
only. A page link must be a path under ``/services/data/`` on the same instance.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_understanding_refresh_token_oauth.htm
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm
"""

from __future__ import annotations

import httpx

from sync.config_check import is_loopback

#: The domains whose subdomains serve Salesforce orgs.
SALESFORCE_DOMAINS = ("salesforce.com", "force.com")
DATA_PREFIX = "/services/data/"


def _host(url: httpx.URL) -> str:
    return url.host.lower().rstrip(".")


def may_receive_token(url: httpx.URL, login: httpx.URL) -> bool:
    """Whether a request to ``url`` may carry the access token, given the login URL."""
    host = _host(url)
    if not host or url.userinfo:
        return False
    if login.scheme == "http" and is_loopback(login.host):
        return url.scheme in ("http", "https") and is_loopback(host)
    if url.scheme != "https":
        return False
    if host == _host(login):
        return True
    return any(host.endswith("." + domain) for domain in SALESFORCE_DOMAINS)


def page_path(link: str) -> str | None:
    """``nextRecordsUrl`` if it is a path on the instance the query went to, else None."""
    try:
        url = httpx.URL(link)
    except httpx.InvalidURL:
        return None
    if url.scheme or url.host or url.userinfo or url.query or url.fragment:
        return None
    segments = link.split("/")
    if not link.startswith(DATA_PREFIX) or "\\" in link or ".." in segments or "" in segments[1:]:
        return None
    return link
