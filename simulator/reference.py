"""The shop's reference data as landed files: catalog updates (`catalog/`) and CRM exports (`customers/`).

The first files hold the whole catalog and the CRM members; later ones hold catalog updates every
CATALOG_EVERY_MS and CRM rows of new sign-ups and tier changes every CRM_EVERY_MS, on the simulated clock.
Every other file of a folder is CSV, so that both formats are exercised.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import orjson

from simulator.population import Population, Shopper
from simulator.segment import Message, iso_ms
from simulator.shop import CATALOG_COLUMNS, Catalog

CATALOG_EVERY_MS = 5 * 60_000  # catalog updates land every 5 simulated minutes
CRM_EVERY_MS = 10 * 60_000  # the CRM exports new sign-ups and tier changes every 10 simulated minutes
TIERS = ((6, "gold"), (2, "silver"), (0, "bronze"))  # (orders at least, loyalty tier)
RANDOM_CATALOG_CHANGES = 4  # per update, besides one restock, one sell-out and one markdown
CUSTOMER_COLUMNS = (
    "user_id",
    "email",
    "first_name",
    "locale",
    "timezone",
    "loyalty_tier",
    "marketing_consent",
    "updated_at",
)


@dataclass(frozen=True)
class ReferenceFile:
    """One file for the `customers/` or `catalog/` landing folder: where it goes, its format and bytes."""

    folder: Literal["customers", "catalog"]
    suffix: Literal[".ndjson", ".csv"]
    data: bytes
    rows: int


class ReferenceFeeds:
    """The catalog and CRM files of one simulation, each due on its own grid from the start time."""

    def __init__(self, seed: int, start_ms: int, catalog: Catalog, population: Population) -> None:
        self.catalog, self.population = catalog, population
        self._start_ms = start_ms
        self._base_prices = {row["product_id"]: row["price"] for row in catalog.rows}
        self._rng = random.Random(f"lakemail-catalog-updates-{seed}")
        self._next_catalog_ms: int | None = None  # None: the whole catalog is still to be landed
        self._next_crm_ms: int | None = None  # None: the members are still to be landed
        self._landed = {"customers": 0, "catalog": 0}  # reference files so far: every other one is CSV

    def due(self, now: int) -> list[ReferenceFile]:
        """The files due at `now` (ms), at most one per folder; rows carry `now` as `updated_at`."""
        stamp = iso_ms(now)
        files: list[ReferenceFile] = []
        if self._next_catalog_ms is None or now >= self._next_catalog_ms:
            if self._next_catalog_ms is None:
                products = [{**row, "updated_at": stamp} for row in self.catalog.rows]
            else:
                products = self._update_catalog(stamp)
            self._next_catalog_ms = _next_due(self._start_ms, now, CATALOG_EVERY_MS)
            files.append(self._file("catalog", products, (*CATALOG_COLUMNS, "updated_at")))
        if self._next_crm_ms is None or now >= self._next_crm_ms:
            if self._next_crm_ms is None:
                self.population.add_members()
            self._next_crm_ms = _next_due(self._start_ms, now, CRM_EVERY_MS)
            customers = self._crm_rows(stamp)
            if customers:
                files.append(self._file("customers", customers, CUSTOMER_COLUMNS))
        return files

    def _file(
        self, folder: Literal["customers", "catalog"], rows: list[Message], columns: Sequence[str]
    ) -> ReferenceFile:
        as_csv = self._landed[folder] % 2 == 1  # every other file, so both formats are exercised
        self._landed[folder] += 1
        data = _csv_bytes(rows, columns) if as_csv else b"".join(orjson.dumps(row) + b"\n" for row in rows)
        return ReferenceFile(folder, ".csv" if as_csv else ".ndjson", data, len(rows))

    def _crm_rows(self, stamp: str) -> list[Message]:
        """CRM rows of signed-up shoppers not yet exported, or whose loyalty tier changed since."""
        rows: list[Message] = []
        for shopper in self.population:
            tier = next(name for least, name in TIERS if shopper.orders >= least)
            if shopper.known and tier != shopper.crm_tier:
                shopper.crm_tier = tier
                rows.append(_crm_row(shopper, tier, stamp))
        return sorted(rows, key=lambda row: row["user_id"])

    def _update_catalog(self, stamp: str) -> list[Message]:
        """One round of changes: a restock, a sell-out, a markdown of 12-40 % and a few random ones."""
        rng, rows, base = self._rng, self.catalog.rows, self._base_prices
        sold_out = [i for i, row in enumerate(rows) if row["stock"] == 0]
        in_stock = [i for i, row in enumerate(rows) if row["stock"] > 0]
        full_price = [i for i, row in enumerate(rows) if row["price"] >= base[row["product_id"]]]
        changed: dict[int, Message] = {}
        for candidates, change in ((sold_out, _restock), (in_stock, _sell_out), (full_price, _markdown)):
            free = [i for i in candidates if i not in changed]
            if free:
                i = rng.choice(free)
                changed[i] = change(rows[i], base[rows[i]["product_id"]], rng)
        for _ in range(RANDOM_CATALOG_CHANGES):
            i = rng.randrange(len(rows))
            if i not in changed:
                changed[i] = rng.choice((_reprice, _sell_some))(rows[i], base[rows[i]["product_id"]], rng)
        updates: list[Message] = []
        for i in sorted(changed):
            if changed[i] != rows[i]:
                self.catalog.replace(i, changed[i])
                updates.append({**changed[i], "updated_at": stamp})
        return updates


def _next_due(start_ms: int, now_ms: int, every_ms: int) -> int:
    """The first time after `now_ms` on the grid of `every_ms` steps from `start_ms`."""
    return start_ms + ((now_ms - start_ms) // every_ms + 1) * every_ms


def _crm_row(shopper: Shopper, tier: str, stamp: str) -> Message:
    email = shopper.email
    if int(shopper.user_id[2:]) % 20 == 7:  # CRM exports are not tidy: the reader normalises this back
        local, domain = email.split("@")
        email = f" {local}@{domain.upper()} "
    row: Message = {"user_id": shopper.user_id, "email": email}
    if shopper.first_name is not None:
        row["first_name"] = shopper.first_name
    row |= {"locale": shopper.locale, "timezone": shopper.timezone, "loyalty_tier": tier}
    return row | {"marketing_consent": shopper.consent, "updated_at": stamp}


def _csv_bytes(rows: list[Message], columns: Sequence[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # as spreadsheet exports write them
    writer.writerow(columns)
    writer.writerows([_csv_cell(row.get(column)) for column in columns] for row in rows)
    return out.getvalue().encode()


def _csv_cell(value: object) -> object:
    if isinstance(value, bool):
        return "yes" if value else "no"  # a CSV-only spelling the reader accepts
    return "" if value is None else value


def _restock(row: Message, base: float, rng: random.Random) -> Message:
    return {**row, "stock": rng.randint(5, 120)}


def _sell_out(row: Message, base: float, rng: random.Random) -> Message:
    return {**row, "stock": 0}


def _markdown(row: Message, base: float, rng: random.Random) -> Message:
    # Only full-price products are marked down, so 12-40 % off the base is >= 10 % off the price.
    return {**row, "price": round(base * rng.uniform(0.60, 0.88), 2)}


def _reprice(row: Message, base: float, rng: random.Random) -> Message:
    # Prices move around the base price (end of a sale, a small discount, a rise), so they never drift.
    return {**row, "price": round(base * rng.choice((0.95, 1.0, 1.1, 1.2)), 2)}


def _sell_some(row: Message, base: float, rng: random.Random) -> Message:
    return {**row, "stock": max(0, row["stock"] - rng.randint(1, 15))}
