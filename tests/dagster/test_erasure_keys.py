"""GDPR erasure of every key of a person through the real jobs (#13): the user id, both anonymous ids
(as themselves and as the `anon:` keys of partials and candidates), the emails; in every table, in the
landed events and CRM files (NDJSON and CSV); the certificate checks them all, and a later micro-batch
brings nothing of them back."""

from __future__ import annotations

import gzip

import dagster as dg
import orjson
import polars as pl
import pytest
from deltalake import write_deltalake

from orchestration.process import erase_once, process_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.erasure.requests import erase_user
from stores.ingest import ingest
from tests.story import at, message
from transforms.schema import INGEST_LOG_SCHEMA

USER, ANON_1, ANON_2, EMAIL = "u-erin", "anon-erin-1", "anon-erin-2", "Erin.Erase@example.com"
KEYS = (USER, ANON_1, ANON_2, EMAIL)
OLGA = "u-olga"


def lines(*messages: dict[str, object]) -> bytes:
    return b"".join(orjson.dumps(m) + b"\n" for m in messages)


def land_crm(landing: LandingResource) -> None:
    """The CRM export, as NDJSON and as CSV: the person's row between other people's."""
    rows: list[dict[str, object]] = [
        {"user_id": OLGA, "email": "olga@example.com", "first_name": "Olga", "marketing_consent": True},
        {"user_id": USER, "email": EMAIL, "first_name": "Erin", "marketing_consent": True},
        {"user_id": "u-paul", "email": "paul@example.com", "first_name": "Paul"},
    ]
    landing.land("customers/crm.ndjson", lines(*rows))
    csv = ["user_id,email,first_name"] + [f"{r['user_id']},{r['email']},{r['first_name']}" for r in rows]
    landing.land("customers/crm.csv", ("\r\n".join(csv) + "\r\n").encode())


def traces(text: str) -> int:
    """Lines of `text` holding any key of the person, in any case."""
    lowered = [key.lower() for key in KEYS]
    return sum(1 for line in text.lower().splitlines() if any(key in line for key in lowered))


def table_traces(lake: LakeResource) -> dict[str, int]:
    """Rows of every table of the lake (every column, nested ones as JSON) holding a key, and lines of
    its Delta logs (commits and checkpoints)."""
    found = {name: traces(pl.read_delta(lake.table_uri(name)).write_ndjson()) for name in lake.table_names()}
    assert lake.root is not None
    for path in lake.root.glob("*/_delta_log/*"):
        found[path.relative_to(lake.root).as_posix()] = traces(path.read_bytes().decode(errors="replace"))
    return {name: rows for name, rows in found.items() if rows}


def landing_traces(landing: LandingResource) -> dict[str, int]:
    """Lines of every file in the landing zone (gunzipped) holding a key."""
    found = {}
    for path in sorted(p for p in landing.root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode(errors="replace")
        found[path.relative_to(landing.root).as_posix()] = traces(text)
    return {path: rows for path, rows in found.items() if rows}


def of_person(frame: pl.DataFrame) -> pl.DataFrame:
    keys = [USER, ANON_1, ANON_2, f"anon:{ANON_1}", f"anon:{ANON_2}"]
    return frame.filter(pl.col("principal").is_in(keys) | (pl.col("user_id") == USER))


def run(settings: Settings, instance: dg.DagsterInstance, minutes: float) -> None:
    assert process_once(settings, instance, now=at(minutes).isoformat())["status"] == "SUCCESS"


@pytest.fixture
def shop(settings: Settings, instance: dg.DagsterInstance, landing: LandingResource) -> None:
    """Erin browses and carts on two devices anonymously, then logs in on both; Olga shops alongside."""
    landing.land(
        "events/1.ndjson",
        lines(
            message("Product Viewed", at(0), anon=ANON_2, product_id="p1"),
            message("Product Viewed", at(1), anon=ANON_2, product_id="p1"),
            message(
                "Product Added", at(2), anon=ANON_1, cart_id="c-e", product_id="p1", name="Mug", price=9.5
            ),
        )
        + b'{"messageId": "bad", "anonymousId": "anon-erin-2", "type": "track"\n',  # quarantined
    )
    land_crm(landing)
    run(settings, instance, 3)  # pending candidates under the anonymous ids (`anon:` principals)
    landing.land(
        "events/2.ndjson",
        lines(
            message("identify", at(3), user=USER, anon=ANON_1, email=EMAIL, marketing_consent=True),
            message("identify", at(4), user=USER, anon=ANON_2, email=EMAIL.upper()),
            message(
                "Product Added", at(4), anon=ANON_2, cart_id="c-e2", product_id="p2", name="Cup", price=5.0
            ),
            message(
                "identify",
                at(5),
                user=OLGA,
                anon="anon-olga",
                email="olga@example.com",
                marketing_consent=True,
            ),
            message("Product Added", at(6), user=OLGA, cart_id="c-o", product_id="p1", name="Mug", price=9.5),
        ),
    )
    run(settings, instance, 10)


def test_every_key_goes_everywhere_the_certificate_checks_each_and_nothing_comes_back(
    settings: Settings, instance: dg.DagsterInstance, lake: LakeResource, landing: LandingResource, shop: None
) -> None:
    before = table_traces(lake)
    assert {
        "events",
        "quarantine",
        "identities",
        "customers",
        "profile_updates",
        "triggers",
        "trigger_state",
    } <= set(before)
    assert of_person(pl.read_delta(lake.table_uri("trigger_state"))).height > 0  # pending for them
    assert set(landing_traces(landing)) == {
        "events/1.ndjson",
        "events/2.ndjson",
        "customers/crm.ndjson",
        "customers/crm.csv",
    }

    passed, text = erase_once(settings, USER, instance)
    certificate = orjson.loads(text)
    assert passed and certificate["passed"] is True
    assert table_traces(lake) == {} and landing_traces(landing) == {}
    # The certificate names every table and landed file it checked, each clean.
    checked = set(lake.table_names()) - {"erasures"}  # the certificate's own table is written after
    assert certificate["checks"]["tables"] == dict.fromkeys(sorted(checked), 0)
    landed = sorted(p.relative_to(landing.root).as_posix() for p in landing.root.rglob("*") if p.is_file())
    assert certificate["checks"]["landing"] == dict.fromkeys(landed, 0)
    assert certificate["landing_files"] == {
        "customers/crm.csv": 1,
        "customers/crm.ndjson": 1,
        "events/1.ndjson": 4,
        "events/2.ndjson": 3,
    }

    # The other people's CRM rows stay, line for line, and the ingest takes no file again.
    assert (landing.root / "customers/crm.csv").read_bytes() == (
        b"user_id,email,first_name\r\nu-olga,olga@example.com,Olga\r\n\nu-paul,paul@example.com,Paul\r\n"
    )
    assert sorted(pl.read_delta(lake.table_uri("customers"))["user_id"]) == [OLGA, "u-paul"]
    log = lake.read("ingest_log", INGEST_LOG_SCHEMA).sort("source_file")
    assert set(log["status"]) == {"committed"}
    assert log.filter(
        pl.col("lines") != pl.col("accepted") + pl.col("quarantined") + pl.col("duplicates")
    ).is_empty()
    assert log.filter(pl.col("source_file").str.starts_with("customers/"))["accepted"].to_list() == [2, 2]
    assert ingest(lake, landing).files == 0

    # Later micro-batches (a day on: every held candidate is due) bring nothing of them back.
    landing.land("events/3.ndjson", lines(message("Product Viewed", at(200), user=OLGA, product_id="p2")))
    run(settings, instance, 24 * 60)
    run(settings, instance, 3 * 24 * 60)
    assert table_traces(lake) == {} and landing_traces(landing) == {}
    assert of_person(pl.read_delta(lake.table_uri("triggers"))).is_empty()
    assert pl.read_delta(lake.table_uri("triggers")).filter(pl.col("user_id").is_null()).is_empty()
    assert set(pl.read_delta(lake.table_uri("triggers"))["user_id"]) == {OLGA}


def test_events_landed_before_the_erasure_and_ingested_after_bring_nothing_back(
    settings: Settings, instance: dg.DagsterInstance, lake: LakeResource, landing: LandingResource, shop: None
) -> None:
    """A third device, linked only by a file the ingest has not taken yet: its id is the person's too."""
    anon_3 = "anon-erin-3"
    landing.land(
        "events/4.ndjson",
        lines(
            message(
                "Product Added", at(20), anon=anon_3, cart_id="c-e3", product_id="p1", name="Mug", price=9.5
            ),
            message("Product Viewed", at(21), anon=anon_3, product_id="p2"),
            message("identify", at(22), user=USER, anon=anon_3),
            message("Product Viewed", at(23), user=OLGA, product_id="p2"),
        ),
    )
    # The micro-batches keep a state store: the erasure takes the person out of it too, or the engine
    # would decide from what it still held.
    state = StateResource(uri=settings.state_store_uri)
    certificate = erase_user(lake, landing, USER, secret="test-secret", state=state)
    assert certificate.passed and certificate.anonymous_ids == 3
    assert certificate.landing_files["events/4.ndjson"] == 3
    run(settings, instance, 24 * 60)
    events = pl.read_delta(lake.table_uri("events"))
    assert events.filter(pl.col("source_file") == "events/4.ndjson")["user_id"].to_list() == [OLGA]
    for name in ("events", "identities", "profile_updates", "triggers"):
        assert traces(pl.read_delta(lake.table_uri(name)).write_ndjson()) == 0, name
        assert anon_3 not in pl.read_delta(lake.table_uri(name)).write_ndjson(), name


def test_a_key_left_anywhere_fails_the_certificate(lake: LakeResource, landing: LandingResource) -> None:
    landing.land("events/a.ndjson", lines(message("identify", at(0), user=USER, anon=ANON_1, email=EMAIL)))
    ingest(lake, landing)
    # A stray export the ingest never reads (the erasure blanks it all the same), and a table of the
    # lake's own records that should never hold a raw id: it is checked and named in the certificate.
    (landing.root / "customers" / "notes.txt").parent.mkdir(parents=True, exist_ok=True)
    (landing.root / "customers" / "notes.txt").write_text(f"call back {EMAIL} tomorrow\nnothing here\n")
    failure = pl.DataFrame(
        {"source_file": ["events/x.ndjson"], "status": ["failed"], "detail": [f"bad line for {ANON_1!r}"]}
    )
    write_deltalake(lake.table_uri("ingest_log"), failure.to_arrow(), mode="append", schema_mode="merge")
    certificate = erase_user(lake, landing, USER, secret="test-secret")
    assert not certificate.passed
    assert certificate.checks["landing"] == {"customers/notes.txt": 0, "events/a.ndjson": 0}
    assert certificate.landing_files == {"customers/notes.txt": 1, "events/a.ndjson": 1}
    assert (landing.root / "customers" / "notes.txt").read_text() == "\nnothing here\n"
    assert certificate.checks["tables"]["ingest_log"] == 1
    assert {name for name, rows in certificate.checks["tables"].items() if rows} == {"ingest_log"}
    assert orjson.loads(certificate.to_json())["passed"] is False


def test_a_clean_erasure_of_nobody_checks_every_landed_file(
    lake: LakeResource, landing: LandingResource
) -> None:
    landing.land("events/a.ndjson", lines(message("Product Viewed", at(0), user=OLGA, product_id="p1")))
    land_crm(landing)
    ingest(lake, landing)
    landing.land("catalog/feed.csv", b"product_id,name,price\np1,Mug,9.5\n")  # landed, not ingested yet
    certificate = erase_user(lake, landing, "u-nobody", secret="test-secret")
    assert certificate.passed and not certificate.landing_files
    assert sorted(certificate.checks["landing"]) == [
        "catalog/feed.csv",
        "customers/crm.csv",
        "customers/crm.ndjson",
        "events/a.ndjson",
    ]
    assert set(certificate.checks["tables"]) == set(lake.table_names()) - {"erasures"}  # stored after
