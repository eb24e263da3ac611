"""The `secrets` resource: lakemail's HMAC key (unsubscribe tokens, suppression keys, erasure)."""

from __future__ import annotations

import dagster as dg


class SecretsResource(dg.ConfigurableResource):
    """lakemail's secrets; bind `hmac_key` with `dg.EnvVar("LAKEMAIL_SECRET")`."""

    hmac_key: str
