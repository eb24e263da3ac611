"""Erasure, pure part (#13, points 14 and 15): every key of the person, the links a landed file makes,
ingest_log counts of a blanked CRM file, the tables an erasure visits and the certificate's verdict."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import orjson
import polars as pl
import pytest

from transforms.erasure.landed import landed_links
from transforms.erasure.logs import log_pattern
from transforms.erasure.made import made_patterns
from transforms.erasure.match import mentions
from transforms.erasure.person import (
    ERASURE_TABLES,
    KEPT_TABLES,
    Person,
    erasure_tables,
    names_person,
    person_from,
    text_pattern,
)
from transforms.erasure.records import ErasureCertificate, TableErasure, adjust_ingest_log
from transforms.schema import INGEST_LOG_SCHEMA

SHORT = Person("u-1", ("a-1",), ("bob@x.com",))
LONG = Person("customer-4711", ("anon-7f3e9a",), ())
NUMERIC = Person("12345678")


@pytest.mark.parametrize(
    ("person", "text", "theirs"),
    [
        (SHORT, '{"principal":"anon:a-1"}', True),  # the key of profile partials and trigger candidates
        (SHORT, '{"principal":"anon:a-10"}', False),
        (SHORT, "u-1,bob@x.com,Bob", True),  # a CRM export's CSV row
        (SHORT, "x,y\nu-1,Bob\r\n", True),  # inside a whole CSV file
        (SHORT, "u-10,jbob@x.com,Bob", False),
        (SHORT, "u-1x,Bob", False),
        (SHORT, "refers to u-1 here", False),  # a short id only as a value, never as a word
        (LONG, "referred by customer-4711.", True),  # a long id as a word in free text
        (LONG, "'anon-7f3e9a'", True),
        (LONG, "customer-47110", False),
        (LONG, "xcustomer-4711", False),
        (NUMERIC, '{"revenue": 12345678.5}', False),  # an all-digit id is not a word in a number
        (NUMERIC, '{"user_id": "12345678"}', True),
        (NUMERIC, "12345678,Bob", True),
    ],
)
def test_the_persons_keys_in_text(person: Person, text: str, theirs: bool) -> None:
    assert bool(re.search(text_pattern(person), text)) is theirs
    frame = pl.DataFrame({"value": [text]})
    assert frame.select(mentions(frame.collect_schema(), person)).item() is theirs


def test_only_an_address_is_the_persons_email() -> None:
    """A shopper's `email` trait is what they sent: `5` or `example.com` would be looked for as a word in
    every table and file, other shoppers' rows and lines with it (found by review)."""
    traits = ['{"email": 5}', '{"email": "example.com"}', '{"email": "@x.com"}', '{"email": "bob@"}',
              '{"email": " ann@x.com "}', '{"email": "a@b@c.com"}', None]  # fmt: skip
    events = pl.DataFrame({"user_id": ["u-1"] * len(traits), "anonymous_id": None, "traits": traits})
    identities = pl.DataFrame(
        {"anonymous_id": [], "user_id": []}, schema={"anonymous_id": pl.String, "user_id": pl.String}
    )
    person = person_from("u-1", identities, events, ["com", "crm@x.com"])
    assert person.emails == ("a@b@c.com", "ann@x.com", "crm@x.com")
    assert person.union(Person("u-1", (), ("5", "bob@x.com"))).emails == (
        "a@b@c.com",
        "ann@x.com",
        "bob@x.com",
        "crm@x.com",
    )


def test_anonymous_ids_are_keys_as_themselves_and_as_anon_principals() -> None:
    assert (SHORT.values, SHORT.principals) == (("u-1", "a-1"), ("u-1", "anon:a-1"))
    frame = pl.DataFrame({"value": ["a-1", "u-1", "a-10", "u-10"]})
    assert frame.filter(mentions(frame.collect_schema(), SHORT))["value"].to_list() == ["a-1", "u-1"]
    # Where a principal stands, only theirs: `a-1` there is the user `a-1` (`transforms.principals`).
    frame = pl.DataFrame({"principal": ["anon:a-1", "a-1", "u-1", "anon:a-10", "u-10"]})
    assert frame.filter(mentions(frame.collect_schema(), SHORT))["principal"].to_list() == ["anon:a-1", "u-1"]


def test_trigger_and_send_ids_are_keys_but_never_log_traces() -> None:
    """A click lands under `anonymousId` = its send id: the send id is theirs as itself, as the `anon:`
    principal of the click's partial and inside the event; as a surrogate key (deletes of sends go by it,
    file statistics hold it), a Delta log naming it names no one."""
    sent = Person("u-1", ("a-1",), (), ("s-0123456789abcdef01234567", "t-0123456789abcdef01234567"))
    assert (*sent.values, *sent.principals) == (
        "u-1",
        "a-1",
        "s-0123456789abcdef01234567",
        "t-0123456789abcdef01234567",
        "u-1",
        "anon:a-1",
        "anon:s-0123456789abcdef01234567",
        "anon:t-0123456789abcdef01234567",
    )
    click = '{"anonymous_id":"s-0123456789abcdef01234567","properties":{"kind":"welcome"}}'
    frame = pl.DataFrame(
        {
            "value": [
                "anon:s-0123456789abcdef01234567",
                click,
                "credited to s-0123456789abcdef01234567.",
                "s-0123456789abcdef012345678",
                "anon:s-1",
            ]
        }
    )
    assert frame.select(mentions(frame.collect_schema(), sent))["value"].to_list() == [True] * 3 + [False] * 2
    assert not names_person("send_id IN ('s-0123456789abcdef01234567')", sent)
    stats = '{"add":{"stats":"{\\"minValues\\":{\\"send_id\\":\\"s-0123456789abcdef01234567\\"}}"}}'
    assert not re.search(log_pattern(sent), stats)
    assert Person("u-1", ("a-2",), ("x@y.z",)).union(sent) == Person(
        "u-1", ("a-1", "a-2"), ("x@y.z",), sent.made_ids
    )


@pytest.mark.deep  # 2-3 s (12,000 ids): `make test` runs it, the fast tier leaves it
def test_thousands_of_made_ids_are_found_in_polars_and_python_alike() -> None:
    """One regex per 2,000 ids: 12,000 in one passed Polars' 10 MB regex limit."""
    made = tuple(f"s-{hashlib.sha256(str(i).encode()).hexdigest()[:24]}" for i in range(12000))
    person = Person("u-1", (), (), made)
    texts = [
        f'{{"anonymous_id":"{made[4321]}"}}',
        f"anon:{made[-1]}",
        f"x,{made[0]}\r\n",
        made[7][:-1],
        "s-1",
    ]
    frame = pl.DataFrame({"value": texts})
    assert (
        frame.select(mentions(frame.collect_schema(), person))["value"].to_list() == [True] * 3 + [False] * 2
    )
    pattern = re.compile(text_pattern(person))
    assert [bool(pattern.search(t)) for t in texts] == [True] * 3 + [False] * 2
    prefixes = re.compile(made_patterns(["s-1", "s-12"])[0])
    assert [bool(prefixes.search(t)) for t in ("s-1", '"s-12"', "s-123", "s-13", "xs-1")] == [True] * 2 + [
        False
    ] * 3


def line(**message: object) -> bytes:
    return orjson.dumps(message)


def test_a_landed_file_links_anonymous_ids_and_emails_as_the_ingest_would() -> None:
    content = b"\n".join(
        [
            line(type="identify", userId="u/1", anonymousId="a-2", traits={"email": "new@x.com"}),
            line(type="alias", userId="u/1", previousId="a-3"),
            line(type="track", userId="u/1", anonymousId=" a-4 ", context={"traits": {"email": "ctx@x.com"}}),
            line(type="identify", userId="u/10", anonymousId="a-5", traits={"email": "other@x.com"}),
            line(type="track", anonymousId="a-6", properties={"note": "u/1"}),
            b'{"type": "identify", "userId": "u\\/1", "anonymousId": "a-7"}',  # escaped, as some writers do
            b'{broken "u/1"',
        ]
    )
    assert landed_links(content, "u/1") == ({"a-2", "a-3", "a-4", "a-7"}, {"new@x.com", "ctx@x.com"})
    assert landed_links(content, "u-9") == (set(), set())


def test_a_blanked_crm_file_keeps_its_ingest_log_row_in_step() -> None:
    log = pl.DataFrame(
        [("customers/c.csv", 90, "old", 3, 2, 1, 0, 1, "committed", None, None, None, None)],
        schema=INGEST_LOG_SCHEMA,
        orient="row",
    )
    removed = pl.DataFrame({"source_file": ["customers/c.csv"], "events": [0], "quarantine": [1]})
    rewritten = pl.DataFrame(
        {
            "source_file": ["customers/c.csv"],
            "old_sha256": ["old"],
            "new_bytes": [60],
            "new_sha256": ["new"],
            "blanked": [2],
            "rows_blanked": [1],  # a CRM row, and a quarantined line of the person
        }
    )
    columns = ["bytes", "sha256", "lines", "accepted", "quarantined", "duplicates"]
    assert adjust_ingest_log(log, removed, rewritten).select(columns).row(0) == (60, "new", 1, 1, 0, 0)


def test_a_file_the_ingest_never_read_keeps_its_ingest_log_row_in_step_with_its_rewrite() -> None:
    # `failed` unread (a type its folder does not take): no sha256, its size as listed. Given the new size,
    # the ingest does not take the blanked file again; the row of an earlier landing of it keeps its own.
    never_read = (None, None, None, None, None, "failed", "never read", None, None, None)
    log = pl.DataFrame(
        [("events/x.csv", 70, None, *never_read), ("events/x.csv", 90, None, *never_read)],
        schema=INGEST_LOG_SCHEMA,
        orient="row",
    ).with_columns(batch_id=pl.Series([1, 2]))
    rewritten = pl.DataFrame(
        {
            "source_file": ["events/x.csv"],
            "old_sha256": ["old"],
            "new_bytes": [60],
            "new_sha256": ["new"],
            "blanked": [1],
            "rows_blanked": [1],
            "old_bytes": [90],
        }
    )
    removed = pl.DataFrame(schema={"source_file": pl.String, "events": pl.Int64, "quarantine": pl.Int64})
    columns = ["batch_id", "bytes", "sha256", "lines", "accepted", "status"]
    assert adjust_ingest_log(log, removed, rewritten).select(columns).sort("batch_id").rows() == [
        (1, 70, None, None, None, "failed"),
        (2, 60, None, None, None, "failed"),
    ]


def test_an_erasure_visits_the_registry_and_every_other_table_but_its_own_records() -> None:
    names = [t.name for t in erasure_tables(["events", "catalog", "audit_results", *KEPT_TABLES])]
    assert names == [t.name for t in ERASURE_TABLES] + ["audit_results", "catalog"]


def test_one_key_left_anywhere_fails_the_certificate() -> None:
    certificate = ErasureCertificate("r", "api", "k", datetime(2026, 11, 22, tzinfo=UTC), 1, 1)
    certificate.tables = [TableErasure("events", "erased")]
    certificate.checks = {"tables": {"events": 0, "ingest_log": 0}, "landing": {"customers/c.csv": 0}}
    assert certificate.passed and orjson.loads(certificate.to_json())["checks"] == certificate.checks
    certificate.checks["landing"]["customers/c.csv"] = 1
    assert not certificate.passed
    certificate.checks["landing"]["customers/c.csv"] = 0
    certificate.checks["tables"]["ingest_log"] = 1
    assert not certificate.passed
    again = ErasureCertificate.from_json(certificate.to_json())
    assert again.checks == certificate.checks and not again.passed
