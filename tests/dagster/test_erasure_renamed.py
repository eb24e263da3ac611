"""A golden story in Segment's shapes, then a GDPR erasure: Ann identifies as u-old with her address and
consent from her phone, adds a mug, the shop renames her (`alias`, userId u-new, previousId u-old:
spec/alias.md's "a User ID you previously identified them with") and she orders as u-new. `lakemail erase`
of u-new took u-old as an anonymous id only (found by review): u-old's profile partials with her address
and her product views in the store stayed, the certificate passed, and `lakemail state check` found the
store unequal to a rebuild, which brought u-old's profile back. Now the erasure of either id takes the
whole shopper: no row, store entry or landed line holds u-old, u-new, her phone's id or her address,
both ids and the address are suppressed, the certificate says so and passes, the store equals a rebuild,
and the micro-batches and the profiles refresh that follow bring nothing back; Lee, beside her, keeps
everything. Real micro-batch runs and the erasure job on a Delta lake, mailing a real sandbox."""

from __future__ import annotations

from typing import Any

import dagster as dg
import orjson
import pytest

from orchestration.definitions import build_defs
from orchestration.jobs import PROFILES_JOB
from orchestration.process import erase_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.state.rebuild import check
from tests.conftest import land, table
from tests.dagster.sends_harness import SHOPPERS, Mailbox, run
from tests.dagster.test_erasure_clicks import landing_holding, store_holding, tables_holding
from tests.story import at, spec_message
from transforms.erasure.records import ErasureCertificate, address_key, certificate_summary, user_key
from transforms.schema import SUPPRESSIONS_SCHEMA

SECRET = "test-secret"
MUG: dict[str, Any] = {"product_id": "p-mug", "sku": "M-1", "name": "Mug", "price": 12.5, "quantity": 2}
OLD, NEW, PHONE, ADDRESS = "u-old", "u-new", "anon-ann-phone-7f3e", "Ann@example.com"
LEE = SHOPPERS[0]
HERS = (OLD, NEW, PHONE, ADDRESS, ADDRESS.lower(), "o-ann-1")


def _story(settings: Settings, instance: dg.DagsterInstance) -> None:
    traits: dict[str, Any] = {"marketing_consent": True, "timezone": "Europe/London"}
    signups = [
        spec_message("identify", at(0), user=OLD, anon=PHONE, email=ADDRESS, first_name="Ann", **traits),
        spec_message("identify", at(0), user=LEE, email="Lee@example.com", first_name="Lee", **traits),
    ]
    land(settings, "signup.ndjson", [orjson.dumps(m) for m in signups])
    run(settings, instance, 5)  # the welcomes go out
    carts = [
        spec_message("Product Added", at(20 * 60), user=OLD, **MUG),
        spec_message("Product Added", at(20 * 60), user=LEE, **MUG),
    ]
    land(settings, "carts.ndjson", [orjson.dumps(m) for m in carts])
    run(settings, instance, 20 * 60 + 1)
    renamed = spec_message("alias", at(20 * 60 + 2), user=NEW, previous_id=OLD)
    land(settings, "rename.ndjson", [orjson.dumps(renamed)])
    run(settings, instance, 20 * 60 + 3)
    order: dict[str, Any] = {"order_id": "o-ann-1", "total": 25.0, "revenue": 25.0, "currency": "EUR"}
    ordered = spec_message("Order Completed", at(20 * 60 + 4), user=NEW, products=[MUG], **order)
    land(settings, "order.ndjson", [orjson.dumps(ordered)])
    for minutes in (20 * 60 + 5, 20 * 60 + 90):
        run(settings, instance, minutes)


def _nothing_of_hers(lake: LakeResource, landing: LandingResource, state: StateResource) -> None:
    assert tables_holding(lake, *HERS) == {}
    assert landing_holding(landing, *HERS) == {}
    assert store_holding(state, *HERS) == []
    report = check(lake, state)
    assert report.equal, report.summary()
    assert {"events", "sends", "profile_updates"} <= tables_holding(lake, LEE).keys()
    assert ("profiles", LEE) in store_holding(state, LEE)


# By her old id, the surprising direction, through real runs (18 s each; tests/lake/test_erasure_renamed.py
# erases by either id): the suite stays within its 15 minutes.
@pytest.mark.parametrize("erased", [OLD], ids=["her-old-id"])
def test_erasing_a_renamed_shopper_by_either_id_leaves_nothing_of_her(
    mail_settings: Settings,
    mailbox: Mailbox,
    instance: dg.DagsterInstance,
    lake: LakeResource,
    landing: LandingResource,
    state: StateResource,
    erased: str,
) -> None:
    _story(mail_settings, instance)
    assert sorted(m["to"] for m in mailbox.messages()) == [ADDRESS, "Lee@example.com", "Lee@example.com"]
    assert {"profile_updates", "identities", "events"} <= tables_holding(lake, OLD).keys()
    assert check(lake, state).equal

    passed, text = erase_once(mail_settings, erased, instance)

    certificate = orjson.loads(text)
    assert passed and certificate["merged_ids"] == 1 and certificate["emails"] == 1
    assert not any(value in text for value in HERS)
    summary = certificate_summary(ErasureCertificate.from_json(text))
    assert "PASSED" in summary and "1 other user id of the same shopper (renamed by an alias)" in summary
    _nothing_of_hers(lake, landing, state)
    suppressed = set(lake.read("suppressions", SUPPRESSIONS_SCHEMA)["user_key"])
    assert {user_key(OLD, SECRET), user_key(NEW, SECRET), address_key(ADDRESS, SECRET)} <= suppressed

    run(mail_settings, instance, 2 * 24 * 60)  # later micro-batches (her cart's and her order's times)
    refresh = build_defs(mail_settings).resolve_job_def(PROFILES_JOB)
    assert refresh.execute_in_process(instance=instance).success
    assert table(mail_settings, "profiles")["user_id"].to_list() == [LEE]
    _nothing_of_hers(lake, landing, state)
