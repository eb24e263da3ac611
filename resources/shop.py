"""The `shop` resource: who the emails come from and where their links go."""

from __future__ import annotations

import dagster as dg

from resources.providers import SANDBOX_URL
from transforms.sends.clicks import LOCAL_COLLECTOR_URL
from transforms.sends.content import Shop


class ShopResource(dg.ConfigurableResource):
    """Who the emails come from and where their links go (the demo shop unless configured)."""

    name: str = "Lakemail Demo Shop"
    home_url: str = "https://shop.example"  # the simulator's demo shop
    postal_address: str = "Lakemail Demo Shop, 1 Example Street, 10115 Berlin, Germany"
    support_email: str = "support@shop.example"
    currency: str = "EUR"
    public_url: str = SANDBOX_URL  # serves /unsubscribe/<token> (the collector or the sandbox)
    click_url: str = LOCAL_COLLECTOR_URL  # serves the click redirect /c/<token> (the collector)
    unsubscribe_mailto: str = "mailto:unsubscribe@shop.example"
    staleness_hours: float = 72.0  # a profile older than this gets generic content

    def shop(self) -> Shop:
        return Shop(
            name=self.name,
            home_url=self.home_url,
            postal_address=self.postal_address,
            support_email=self.support_email,
            currency=self.currency,
        )

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.public_url.rstrip('/')}/unsubscribe/{token}"

    def click_link(self, token: str) -> str:
        return f"{self.click_url.rstrip('/')}/c/{token}"
