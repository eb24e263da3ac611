"""GDPR erasure on a real lake: no trace in any table, version, landed file or Delta log; others intact."""

from __future__ import annotations

import gzip
import os
import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import orjson
import polars as pl
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake
from polars.testing import assert_frame_equal

from assets.erasure import run_config_for
from orchestration.definitions import build_defs
from orchestration.jobs import ERASURE_JOB, erasure_job
from orchestration.sensors import erasure_run_requests, erasure_sensor
from orchestration.settings import Settings
from orchestration.sql import run_query
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.secrets import SecretsResource
from resources.state import StateResource
from stores.erasure.lake import fold_into_aggregate
from stores.erasure.requests import erase_user, pending_requests, read_certificate, submit_request
from stores.ingest import ingest, landed_frame
from stores.suppressions import suppressed_users
from tests.conftest import land, table
from transforms.erasure.match import Lines, blank_lines
from transforms.erasure.person import Person, key_predicate, parse_request, text_pattern
from transforms.erasure.records import (
    ErasureCertificate,
    address_key,
    adjust_ingest_log,
    needs_vacuum,
    unreadable_versions,
    user_key,
)
from transforms.ingest.batch import pending_files
from transforms.schema import INGEST_APP_ID, INGEST_LOG_SCHEMA
from transforms.spec import MAX_LINE_BYTES
from transforms.tables import SET_UP_TABLES

SECRET = "test-secret"
USER, ANON_1, ANON_2, EMAIL = "u-erin", "anon-erin-1", "anon-erin-2", "Erin.Erase@example.com"
TRACES = (USER, ANON_1, ANON_2, EMAIL, EMAIL.lower())
PERSON_IDS = (USER, ANON_1, ANON_2)


def message(
    mid: str, *, user: str | None = None, anon: str | None = None, day: int = 22, **extra: object
) -> bytes:
    body: dict[str, object] = {
        "messageId": mid,
        "type": "track",
        "event": "Product Viewed",
        "timestamp": f"2026-11-{day:02d}T10:00:00.000Z",
        "properties": {"product_id": "p-1"},
        **extra,
    }
    body.update({k: v for k, v in (("userId", user), ("anonymousId", anon)) if v})
    return orjson.dumps(body)


def identify(mid: str, user: str, anon: str, email: str, day: int = 22) -> bytes:
    return message(mid, user=user, anon=anon, day=day, type="identify", traits={"email": email})


def land_world(settings: Settings) -> None:
    """The person browses anonymously, logs in on two devices, leaves dirt; others shop alongside."""
    land(
        settings,
        "a.ndjson",
        [
            message("m-01", anon=ANON_1, day=21),  # before login
            message("m-02", user="u-olga", anon="anon-olga", day=21),
            identify("m-03", USER, ANON_1, EMAIL, day=21),
            message("m-04", user=USER, day=22, event="Product Added"),
            b'{"messageId":"m-05","type":"track","event":"X","userId":"u-erin","timestamp":"soon"}',
            b'{broken "anon-erin-1"',
            b"{broken olga",
            message("m-06", user="u-olga", day=22, properties={"product_id": "p-2", "query": "boots"}),
        ],
    )
    ingest(LakeResource(uri=settings.lake_uri), LandingResource(uri=settings.landing_uri))
    gz_lines = [
        identify("m-07", USER, ANON_2, EMAIL.lower(), day=22),
        message("m-08", anon=ANON_2, day=22),
        message("m-04", user=USER, day=22, event="Product Added"),  # a duplicate line
        message("m-09", user="u-olga", anon="anon-olga-2", day=22),
        identify("m-10", "u-olga", "anon-olga-2", "olga@example.com"),
    ]
    land(settings, "b.ndjson.gz", gzip.compress(b"\n".join(gz_lines) + b"\n"))
    land(settings, "c.ndjson", [message("m-11", user="u-paul", day=20), b"\xff\xfe bad bytes"])
    ingest(LakeResource(uri=settings.lake_uri), LandingResource(uri=settings.landing_uri))


def others(settings: Settings) -> dict[str, pl.DataFrame]:
    """Every row of the erasure's tables that is not the person's, sorted."""
    pattern = "|".join(re.escape(t) for t in (*PERSON_IDS, EMAIL.lower()))
    found = {}
    for name in ("events", "quarantine", "identities"):
        frame = table(settings, name)
        text = pl.struct(frame.columns).struct.json_encode().str.to_lowercase()
        found[name] = frame.filter(~text.str.contains(pattern)).sort(pl.all())
    return found


def shoppers(*rows: tuple[str, str | None]) -> pl.DataFrame:
    """Profiles as far as suppressions go: user_id, email."""
    return pl.DataFrame(rows, schema={"user_id": pl.String, "email": pl.String}, orient="row")


def holds_trace(data: bytes) -> bool:
    lowered = data.lower()
    return any(t.lower().encode() in lowered for t in TRACES)


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


BATCH_TABLES = ("events", "quarantine", "identities", "ingest_log")


@dataclass(frozen=True)
class Erased:
    """The lake before the erasure (what must survive) and the erasure's certificate."""

    others: dict[str, pl.DataFrame]
    daily: pl.DataFrame
    batches: dict[str, int]
    certificate: ErasureCertificate


# The erased lake is made once for the module (on one worker: make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("erasure")


@pytest.fixture(scope="module")
def erased_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Erased]:
    """A lake and landing zone after the person's erasure, made once per module; each test works on a
    copy (`erased`)."""
    home = tmp_path_factory.mktemp("erased")
    made = Settings(home=home, lake_uri=str(home / "lake"), landing_uri=str(home / "landing"))
    lake, landing = LakeResource(uri=made.lake_uri), LandingResource(uri=made.landing_uri)
    land_world(made)
    for name in ("events", "quarantine", "identities"):
        DeltaTable(lake.table_uri(name)).create_checkpoint()  # checkpoints must stay clean too
    others_before = others(made)
    daily = table(made, "events").group_by("event_date").len().sort("event_date")
    batches = {n: lake.batch_version(n) for n in BATCH_TABLES}
    return home, Erased(others_before, daily, batches, erase_user(lake, landing, USER, secret=SECRET))


@pytest.fixture
def erased(erased_home: tuple[Path, Erased], settings: Settings) -> Erased:
    """This test's copy of the erased lake and landing zone (Delta logs name their files relatively)."""
    home, made = erased_home
    for part in ("lake", "landing"):
        shutil.copytree(home / part, settings.home / part, dirs_exist_ok=True)
    return made


def test_no_table_answers_with_a_trace_of_the_person(settings: Settings, erased: Erased) -> None:
    tables = LakeResource(uri=settings.lake_uri).table_names()
    assert {"events", "quarantine", "identities", "suppressions", "erasures", "erased_events_daily"} <= set(
        tables
    )
    for name in tables:
        rows = run_query(settings.lake_uri, f"select * from {name}")
        assert rows.height > 0 or name in SET_UP_TABLES, name  # those are set up empty with the lake
        assert not holds_trace(rows.write_ndjson().encode()), name


def test_every_readable_table_version_is_clean(
    settings: Settings, lake: LakeResource, erased: Erased
) -> None:
    certificate = erased.certificate
    unreadable_by_table = {t.table: t.versions_unreadable for t in certificate.tables}
    for name in LakeResource(uri=settings.lake_uri).table_names():
        latest = DeltaTable(lake.table_uri(name)).version()
        said = {v for start, end in unreadable_by_table.get(name, []) for v in range(start, end + 1)}
        for version in range(latest + 1):
            try:
                frame = run_query(settings.lake_uri, f"select * from {name}", as_of=version)
            except Exception:  # a version whose files the erasure removed
                assert version in said, (name, version)
                continue
            assert version not in said, (name, version)
            assert not holds_trace(frame.write_ndjson().encode()), (name, version)
    assert unreadable_by_table["events"], "the person's old event versions must be gone"


def test_no_landing_file_or_delta_log_file_holds_a_trace(settings: Settings, erased: Erased) -> None:
    landed = all_files(Path(settings.landing_uri))
    assert len(landed) == 3
    for path in landed:
        data = path.read_bytes()
        assert not holds_trace(gzip.decompress(data) if path.suffix == ".gz" else data), path
    logs = [p for p in all_files(Path(settings.lake_uri)) if "_delta_log" in p.parts]
    assert any(p.name.endswith(".checkpoint.parquet") for p in logs)
    for path in logs:
        assert not holds_trace(path.read_bytes()), path


def test_everyone_else_is_unchanged(settings: Settings, lake: LakeResource, erased: Erased) -> None:
    after = others(settings)
    for name, rows in erased.others.items():
        assert_frame_equal(after[name], rows)
    assert after["events"]["user_id"].drop_nulls().unique().sort().to_list() == ["u-olga", "u-paul"]
    batches = {n: lake.batch_version(n) for n in BATCH_TABLES}
    assert batches == erased.batches == dict.fromkeys(BATCH_TABLES, 2)
    assert DeltaTable(lake.table_uri("ingest_log")).transaction_version(INGEST_APP_ID) == 2


def test_blanked_landing_files_are_not_ingested_again(
    settings: Settings, lake: LakeResource, landing: LandingResource, erased: Erased
) -> None:
    certificate = erased.certificate
    assert certificate.landing_files == {"events/a.ndjson": 5, "events/b.ndjson.gz": 3}
    ingest_log = lake.read("ingest_log", INGEST_LOG_SCHEMA)
    assert pending_files(landed_frame(landing.list_files()), ingest_log).height == 0
    report = ingest(lake, landing)
    assert (report.files, report.accepted) == (0, 0)
    log = table(settings, "ingest_log").sort("source_file")
    assert log["status"].to_list() == ["committed"] * 3
    assert log.filter(
        pl.col("lines") != pl.col("accepted") + pl.col("quarantined") + pl.col("duplicates")
    ).is_empty()
    per_file = table(settings, "events").group_by("source_file").len()
    joined = log.join(per_file, on="source_file")
    assert joined.filter(pl.col("accepted") != pl.col("len")).is_empty()
    assert log.select("lines", "accepted", "quarantined", "duplicates").rows() == [
        (3, 2, 1, 0),
        (2, 2, 0, 0),
        (2, 1, 1, 0),
    ]


def test_the_person_is_suppressed_and_trends_add_up(
    settings: Settings, lake: LakeResource, erased: Erased
) -> None:
    suppressions = table(settings, "suppressions")
    assert set(suppressions["reason"]) == {"erased"}
    # The predicate the trigger engine and the sender use: by user id, or by address (any user id).
    people = shoppers(
        (USER, None), ("someone-new", " erin.erase@EXAMPLE.com"), ("u-olga", "olga@example.com")
    )
    assert suppressed_users(lake, people, SECRET) == {USER, "someone-new"}
    assert suppressed_users(lake, people, "another secret") == set()

    erased_daily = table(settings, "erased_events_daily").group_by("event_date").agg(pl.col("events").sum())
    now = table(settings, "events").group_by("event_date").len()
    total = now.join(erased_daily, on="event_date", how="full", coalesce=True).fill_null(0)
    total = total.select("event_date", (pl.col("len") + pl.col("events")).cast(pl.UInt32).alias("len"))
    assert_frame_equal(total.sort("event_date"), erased.daily)
    assert int(erased_daily["events"].sum()) == 5  # m-01, m-03, m-04, m-07, m-08


def test_the_certificate_says_what_was_done_without_naming_the_person(
    settings: Settings, lake: LakeResource, landing: LandingResource, erased: Erased
) -> None:
    certificate = erased.certificate
    assert certificate.passed and certificate.user_key == user_key(USER, SECRET)
    assert (certificate.anonymous_ids, certificate.emails) == (2, 2)
    by_table = {t.table: t for t in certificate.tables}
    assert {n: (t.outcome, t.method, t.rows_deleted) for n, t in by_table.items()} == {
        "events": ("erased", "delete", 5),
        "quarantine": ("erased", "delete", 2),
        "identities": ("erased", "rewrite", 2),
        "profiles": ("missing table", None, 0),
        "customers": ("missing table", None, 0),
        "profile_updates": ("erased", "rewrite", 4),  # the ingest lane appends each batch's partials
        "profile_state": ("missing table", None, 0),
        "triggers": ("missing table", None, 0),
        "trigger_state": ("missing table", None, 0),
        "sends": ("missing table", None, 0),
        # set up empty with the lake (its first batch), as audit_results and experiments
        **{name: ("no rows", None, 0) for name in ("attributions", "audit_results", "experiments")},
    }
    assert all(t.rows_remaining == 0 for t in by_table.values())
    events = by_table["events"]
    assert events.files_removed and (events.version_before, events.version_after) == (1, 4)  # delete, vacuum
    text = certificate.to_json()
    assert not holds_trace(text.encode())
    stored = read_certificate(lake, certificate.request_id)
    assert stored is not None and stored.to_json() == text

    again = erase_user(lake, landing, USER, secret=SECRET)  # nothing left: a clean no-op certificate
    assert again.passed and sum(t.rows_deleted for t in again.tables) == 0 and not again.landing_files
    assert table(settings, "suppressions").height == 2  # the id and the address (in any case), once
    retried = erase_user(lake, landing, USER, secret=SECRET, request_id=certificate.request_id)
    assert retried.to_json() == text  # a completed request is answered from `erasures`
    stored_ids = sorted(table(settings, "erasures")["request_id"])
    assert stored_ids == sorted([certificate.request_id, again.request_id])


def test_near_namesakes_keep_their_rows_but_the_persons_address_goes_everywhere(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    land(
        settings,
        "a.ndjson",
        [
            identify("m-1", "u-1", "a-1", "bob@x.com"),
            identify("m-2", "u-10", "a-10", "jbob@x.com"),
            identify("m-3", "u-11", "a-11", "bob@x.com.au"),
            message("m-4", user="u-10", properties={"product_id": "u-1x", "query": "bob@x.community"}),
            message("m-5", user="u-10", properties={"query": "Bob@X.com"}),  # the person, in someone's row
        ],
    )
    ingest(lake, landing)
    certificate = erase_user(lake, landing, "u-1", secret=SECRET)
    assert certificate.passed
    assert sorted(table(settings, "events")["event_id"]) == ["m-2", "m-3", "m-4"]
    assert sorted(table(settings, "identities")["user_id"]) == ["u-10", "u-11"]
    assert certificate.landing_files == {"events/a.ndjson": 2}


def test_a_surrogate_key_that_names_the_person_is_not_put_in_a_predicate(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    land(settings, "a.ndjson", [message(f"{USER}-m1", user=USER), message("m-2", user="u-olga")])
    ingest(lake, landing)
    certificate = erase_user(lake, landing, USER, secret=SECRET)
    [events] = [t for t in certificate.tables if t.table == "events"]
    assert (events.method, events.rows_deleted) == ("rewrite", 1)
    assert table(settings, "events")["event_id"].to_list() == ["m-2"]
    erasure_commits = [c for c in DeltaTable(lake.table_uri("events")).history() if "lakemail.erasure" in c]
    assert erasure_commits and not holds_trace(orjson.dumps(erasure_commits))
    # The ingest put that messageId into file statistics, which no commit rewrite may touch: said, not hidden.
    assert certificate.log_lines_remaining > 0 and not certificate.passed


def test_later_tables_are_one_registry_entry_each(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    land(settings, "a.ndjson", [identify("m-1", USER, ANON_1, EMAIL), message("m-2", user="u-olga")])
    ingest(lake, landing)
    work_email = "erin@work.example"
    profiles = pl.DataFrame(
        {
            "user_id": [USER, "u-olga"],
            "email": [work_email, "olga@example.com"],
            "recent_views": [["p-1"], [ANON_1]],
            "as_of": [1, 1],
        }
    )
    sends = pl.DataFrame({"send_id": ["s-1", "s-2"], "user_id": [USER, "u-olga"], "status": ["sent", "sent"]})
    credits = pl.DataFrame(
        {"order_event_id": ["m-8", "m-9"], "send_id": ["s-1", "s-2"], "user_id": [USER, "u-olga"]}
    )
    # As lakemail must create them: no personal column in the statistics (else the log names the person).
    stats = {"profiles": "as_of", "sends": "send_id,status", "attributions": "order_event_id,send_id"}
    for name, frame in (("profiles", profiles), ("sends", sends), ("attributions", credits)):
        config = {"delta.dataSkippingStatsColumns": stats[name]}
        uri = lake.table_uri(name)  # attributions is set up empty with the lake: replaced, as a test's own
        write_deltalake(
            uri, frame.to_arrow(), configuration=config, mode="overwrite", schema_mode="overwrite"
        )
    certificate = erase_user(lake, landing, USER, secret=SECRET)
    by_table = {t.table: (t.outcome, t.method, t.rows_deleted) for t in certificate.tables}
    assert by_table["profiles"] == ("erased", "rewrite", 2)  # u-olga's row held an anonymous id of Erin's
    assert by_table["sends"] == ("erased", "delete", 1)
    assert table(settings, "sends")["send_id"].to_list() == ["s-2"]
    assert by_table["attributions"] == ("erased", "delete", 1)  # an order's credit goes with its shopper
    assert table(settings, "attributions")["order_event_id"].to_list() == ["m-9"]
    assert table(settings, "profiles").is_empty()
    assert certificate.emails == 2 and certificate.passed
    assert suppressed_users(lake, shoppers(("anyone", work_email)), SECRET) == {"anyone"}


def test_an_erasure_that_died_before_its_vacuum_is_finished_by_the_next(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    land(settings, "a.ndjson", [message("m-1", user=USER), message("m-2", user="u-olga")])
    ingest(lake, landing)
    died = CommitProperties(custom_metadata={"lakemail.erasure": "erasure-died"})
    DeltaTable(lake.table_uri("events")).delete("event_id = 'm-1'", commit_properties=died)
    certificate = erase_user(lake, landing, USER, secret=SECRET)
    [events] = [t for t in certificate.tables if t.table == "events"]
    assert (events.outcome, events.rows_deleted, events.versions_unreadable) == ("erased", 0, [[0, 0]])
    with pytest.raises(Exception, match=r"(?i)not found|no such file"):
        pl.read_delta(lake.table_uri("events"), version=0)


def test_deletes_are_tagged_and_name_no_one(lake: LakeResource, settings: Settings, erased: Erased) -> None:
    history = DeltaTable(lake.table_uri("events")).history()
    tagged = [c for c in history if "lakemail.erasure" in c]
    assert [c["operation"] for c in tagged] == ["VACUUM END", "VACUUM START", "DELETE"]
    assert "event_id" in tagged[-1]["operationParameters"]["predicate"]
    assert not needs_vacuum(history)
    assert needs_vacuum([{"operation": "WRITE"}, tagged[-1], {"operation": "VACUUM END"}])


@pytest.mark.parametrize(
    ("content", "positions", "expected", "blanked"),
    [
        (b'{"u":"u-1"}\n{"u":"u-10"}\n', (), b'\n{"u":"u-10"}\n', [1]),
        (b'\xef\xbb\xbf{"u":"u-1"}\r\nok\r\n', (), b"\xef\xbb\xbf\nok\r\n", [1]),
        (b'x\n\n{"u": 5}', (3,), b"x\n\n", [3]),
        (b"x\nmail BOB@x.com.\ny", (), b"x\n\ny", [2]),
        (b"x\njbob@x.com\nbob@x.com.au", (), b"x\njbob@x.com\nbob@x.com.au", []),
    ],
)
def test_blank_lines(content: bytes, positions: tuple[int, ...], expected: bytes, blanked: list[int]) -> None:
    lines = Lines(re.compile(text_pattern(Person("u-1", (), ("bob@x.com",))).encode()))
    assert blank_lines(content, lines, set(positions)) == (expected, blanked)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b'{"user_id": "u-1"}', None),
        (b'\xef\xbb\xbf{"user_id": "u-1"}\r\n', None),  # regression (found by review): a BOM was "not JSON"
        (b' \xef\xbb\xbf{"user_id": "u-1"}', "not a JSON document"),  # only a leading one is dropped
        (b"{nope", "not a JSON document"),
        (b'{"user_id": 5}', "non-empty string"),
        (b'{"user_id": "  "}', "non-empty string"),
        (b'["u-1"]', "non-empty string"),
        (orjson.dumps({"user_id": "x" * (MAX_LINE_BYTES + 1)}), "longer than"),
    ],
)
def test_parse_request(data: bytes, error: str | None) -> None:
    if error is None:
        assert parse_request(data) == "u-1"
    else:
        with pytest.raises(ValueError, match=error):
            parse_request(data)


def test_key_predicates_and_keys() -> None:
    rows = pl.DataFrame(
        {"source_file": ["b", "a", "a"], "source_line": [3, 2, 1], "event_id": ["x'1", "y", "z"]}
    )
    assert key_predicate(rows, ("event_id",)) == "event_id IN ('x''1', 'y', 'z')"
    assert key_predicate(rows, ("source_file", "source_line")) == (
        "(source_file = 'a' AND source_line IN (1, 2)) OR (source_file = 'b' AND source_line IN (3))"
    )
    assert user_key("u-1", "k") != user_key("u-1", "k2") and len(user_key("u-1", "k")) == 64
    assert address_key(" Bob@X.com ", "k") == user_key("bob@x.com", "k")


def test_unreadable_versions_follow_the_log() -> None:
    actions = pl.DataFrame(
        {
            "version": [0, 1, 2, 3, 3],
            "add": ["f0", "f1", "f%3D2", None, "f3"],
            "remove": [None, None, None, "f1", None],
        },
    )
    assert unreadable_versions(actions, ["f1", "f=2"], last_version=4) == [[1, 4]]
    assert unreadable_versions(actions, ["f0", "orphan"], last_version=4) == [[0, 4]]
    assert unreadable_versions(actions, ["f1"], last_version=4) == [[1, 2]]
    cleaned = actions.filter(pl.col("version") >= 2)  # commits 0 and 1 gone from the log (checkpointed)
    assert unreadable_versions(cleaned, ["f1"], last_version=4) == [[2, 2]]


def test_ingest_log_counts_follow_the_erasure() -> None:
    log = pl.DataFrame(
        [("f", 10, "old", 5, 3, 1, 1, 1, "committed", None, None, None, None)],
        schema=INGEST_LOG_SCHEMA,
        orient="row",
    )
    removed = pl.DataFrame({"source_file": ["f"], "events": [2], "quarantine": [1]})
    rewritten = pl.DataFrame(
        {"source_file": ["f"], "old_sha256": ["old"], "new_bytes": [7], "new_sha256": ["new"], "blanked": [4]}
    )
    columns = ["bytes", "sha256", "lines", "accepted", "quarantined", "duplicates"]
    assert adjust_ingest_log(log, removed, rewritten).select(columns).row(0) == (7, "new", 1, 1, 0, 0)
    gone = adjust_ingest_log(log, removed, rewritten.clear()).row(0, named=True)
    assert (gone["bytes"], gone["lines"], gone["duplicates"]) == (10, 2, 1)


def erasure_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        jobs=[erasure_job],
        sensors=[erasure_sensor],
        resources={
            "lake": LakeResource(uri=settings.lake_uri),
            "landing": LandingResource(uri=settings.landing_uri),
            "secrets": SecretsResource(hmac_key=SECRET),
            "state": StateResource(uri=settings.state_store_uri),  # the op erases the store too (#16.3)
        },
    )


def write_request(settings: Settings, name: str, data: bytes) -> None:
    folder = Path(settings.landing_uri) / "erasure"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def test_request_files_through_the_sensor_and_job(
    settings: Settings, landing: LandingResource, lake: LakeResource, instance: dg.DagsterInstance
) -> None:
    land_world(settings)
    write_request(settings, "req-1.json", orjson.dumps({"user_id": USER}))
    write_request(settings, "bad.json", b"{not json")
    write_request(settings, "wrong.json", b'{"user_id": 42}')
    write_request(settings, ".half.json.tmp", orjson.dumps({"user_id": "u-olga"}))
    defs = erasure_defs(settings)
    sensor = defs.resolve_sensor_def("erasure_sensor")
    context = dg.build_sensor_context(instance=instance, resources={"landing": landing})
    requests = sensor(context)
    assert isinstance(requests, list)
    renamed = sorted(r.run_config["ops"]["erase_requests"]["config"]["requests"][0] for r in requests)
    assert len(renamed) == 3 and all(re.fullmatch(r"erasure/req-[0-9a-f]{32}\.json", p) for p in renamed)
    assert [f.path for f in pending_requests(landing)] == renamed  # renamed in place, each once
    assert [r.run_key for r in requests] == [r.run_key for r in erasure_run_requests(landing)[0]]
    result = defs.resolve_job_def(ERASURE_JOB).execute_in_process(instance=instance)
    assert result.success
    [output] = [e for e in result.all_events if e.is_successful_output]
    metadata = {key: value.value for key, value in output.step_output_data.metadata.items()}
    assert metadata["erased"] == 1 and metadata["all_passed"] is True
    assert isinstance(metadata["rejected"], dict) and len(metadata["rejected"]) == 2
    [certificate] = [orjson.loads(c) for c in result.output_for_node("erase_requests")]
    assert certificate["user_key"] == user_key(USER, SECRET) and certificate["request_source"] in renamed
    assert sorted([*metadata["rejected"], certificate["request_source"]]) == renamed
    records = instance.all_logs(result.run_id)
    assert not holds_trace("\n".join(str(r.dagster_event or r.user_message) for r in records).encode())
    assert not holds_trace(str(metadata).encode())
    erasure = Path(settings.landing_uri) / "erasure"
    assert sorted(p.relative_to(erasure.parent).as_posix() for p in erasure.rglob("*") if p.is_file()) == [
        "erasure/.half.json.tmp",
        *(path.replace("erasure/", "erasure/rejected/") for path in sorted(metadata["rejected"])),
    ]
    assert pending_requests(landing) == []
    assert isinstance(sensor(context), dg.SkipReason)
    outside = defs.resolve_job_def(ERASURE_JOB).execute_in_process(
        instance=instance, run_config=run_config_for("events/a.ndjson")
    )
    assert outside.success and (Path(settings.landing_uri) / "events/a.ndjson").exists()
    assert run_query(settings.lake_uri, "select * from events where user_id = 'u-erin'").is_empty()


def test_lakemail_erase_path_with_the_secret_from_the_environment(
    settings: Settings,
    landing: LandingResource,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAKEMAIL_SECRET", "from-env")
    land_world(settings)
    defs = build_defs(settings)
    path = submit_request(landing, USER)
    assert path.startswith("erasure/cli-") and USER not in path
    result = defs.resolve_job_def(ERASURE_JOB).execute_in_process(
        instance=instance, run_config=run_config_for(path)
    )
    [text] = result.output_for_node("erase_requests")
    assert orjson.loads(text)["user_key"] == user_key(USER, "from-env")
    assert not (Path(settings.landing_uri) / path).exists()
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and not holds_trace(orjson.dumps([run.run_config, run.tags]))
    assert not holds_trace(dg.serialize_value(instance.all_logs(result.run_id)).encode())
    assert os.listdir(Path(settings.landing_uri) / "erasure") == []


def test_trend_totals_count_a_request_once_and_keep_no_erasure_apart(
    settings: Settings, lake: LakeResource
) -> None:
    def events(*rows: tuple[int, str, str | None]) -> pl.DataFrame:
        return pl.DataFrame(
            [(date(2026, 11, day), kind, name) for day, kind, name in rows],
            schema={"event_date": pl.Date, "event_type": pl.String, "event_name": pl.String},
            orient="row",
        )

    assert fold_into_aggregate(lake, events((21, "track", "A"), (21, "identify", None)), "r-1") == 2
    second = events((21, "track", "A"), (21, "identify", None), (22, "page", None))
    assert fold_into_aggregate(lake, second, "r-2") == 3
    fold_into_aggregate(lake, second, "r-2")  # a retry of the same request
    totals = table(settings, "erased_events_daily").sort("event_date", "event_type")
    assert totals.rows() == [
        (date(2026, 11, 21), "identify", None, 2),
        (date(2026, 11, 21), "track", "A", 2),
        (date(2026, 11, 22), "page", None, 1),
    ]
    with pytest.raises(Exception, match=r"(?i)not found|no such file"):
        pl.read_delta(lake.table_uri("erased_events_daily"), version=0)  # r-1 alone is not readable
