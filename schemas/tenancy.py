"""Tenants: what a tenant name may be, the tenant of a record that names none, and how a
state or output key is scoped by tenant.

A tenant is a company whose platform account calls the ingress (`WECOM_STREAM_TENANTS`,
`tenant=token` pairs); the ingress stamps the name as the `tenant` header of every record
it can attribute. Records without one (open mode, Insight without
`WECOM_STREAM_INSIGHT_TENANT`, a backfill without `--tenant`) belong to `DEFAULT_TENANT`.
Names are short and free of the key separator, so a scoped key (`scoped_key`) can always be
split back into its tenant and the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "DEFAULT_TENANT",
    "KEY_SEPARATOR",
    "TENANT_NAME",
    "check_tenant_name",
    "scoped_key",
    "tenant_of",
]

DEFAULT_TENANT = "default"
"""The tenant of records that name none. A configured tenant may be called so too: its
records then share state with the unattributed ones (one company's deployment, say)."""

KEY_SEPARATOR = "|"
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""1-64 characters: ASCII letters and digits, then also `.`, `_` and `-`."""


def check_tenant_name(name: str) -> str:
    """`name` when it is a valid tenant name; ValueError saying what a name may be."""
    if not TENANT_NAME.fullmatch(name):
        raise ValueError(
            "a tenant name is 1-64 characters: ASCII letters and digits first, then also "
            "'.', '_' and '-'"
        )
    return name


def tenant_of(headers: Mapping[str, str]) -> str:
    """The tenant of a record by its `tenant` header; `DEFAULT_TENANT` when it has none.
    ValueError for a header that is no valid tenant name (written around the ingress)."""
    name = headers.get("tenant")
    return DEFAULT_TENANT if not name else check_tenant_name(name)


def scoped_key(tenant: str, *parts: str) -> str:
    """A key scoped by tenant: `tenant|part|part…` (a tenant name never holds `|`)."""
    return KEY_SEPARATOR.join((tenant, *parts))
