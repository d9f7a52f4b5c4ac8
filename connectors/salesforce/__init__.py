"""Salesforce: Contacts (or Leads) upserted on the source's member id, kept in an external
id field of the org.

Standard library only: the registry imports this module to read :data:`INFO`.
"""

from __future__ import annotations

from connectors.registry import ConnectorInfo, Option

INFO = ConnectorInfo(
    kind="crm",
    client="connectors.salesforce.client:SalesforceCRM",
    sandbox="connectors.salesforce.sandbox.app:SalesforceSandbox",
    default_base_url="https://login.salesforce.com",
    batch_size=200,  # sObject Collections take 200 records a call
    credential=(
        "OAuth JSON {client_id, client_secret, refresh_token} of a connected app "
        '(optional "instance_url")'
    ),
    options={
        "login_url": Option(
            str,
            "https://login.salesforce.com",
            "where the refresh token is traded: https://login.salesforce.com, "
            "https://test.salesforce.com for a sandbox org, or your My Domain URL",
        ),
        "api_version": Option(str, "v62.0", "the REST API version, as vNN.0"),
        "external_id_field": Option(
            str,
            "LinkedIn_Member_Id__c",
            "the Text field (External ID, Unique) that holds the source's member id",
        ),
        "object": Option(
            str,
            "Contact",
            "what a person becomes in Salesforce",
            choices=("Contact", "Lead"),
        ),
    },
)

__all__ = ["INFO"]
