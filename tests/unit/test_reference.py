"""Reference files: every reason code in NDJSON and CSV, the latest row wins, catalog changes."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from transforms.ingest.reference import ReferenceResult, parse_reference
from transforms.ingest.reference_tables import catalog_changes, latest_rows
from transforms.schema import CATALOG_CHANGE_SCHEMA, CATALOG_SCHEMA, CUSTOMERS_SCHEMA, QUARANTINE_SCHEMA
from transforms.spec import MAX_LINE_BYTES, RAW_QUARANTINE_BYTES, Reason

LANDED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SOURCE = {"source_file": pl.String(), "source_line": pl.Int64()}
CUSTOMER = {"user_id": "u-1", "email": "ann@example.com", "first_name": "Ann", "marketing_consent": True}
PRODUCT = {"product_id": "p-1", "name": "Mug", "category": "home", "price": 12.5, "stock": 3}
LONG = "x" * MAX_LINE_BYTES


def parse(kind: str, data: bytes, name: str = "f.ndjson") -> ReferenceResult:
    result = parse_reference(
        kind, data, source_file=f"{kind}/{name}", landed_at=LANDED, ingested_at=LANDED, batch_id=4
    )
    assert result.rows.schema == pl.Schema(
        {**(CUSTOMERS_SCHEMA if kind == "customers" else CATALOG_SCHEMA), **SOURCE}
    )
    assert result.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert result.lines == result.rows.height + result.quarantine.height
    return result


def ndjson(kind: str, **overrides: object) -> bytes:
    base = CUSTOMER if kind == "customers" else PRODUCT
    return orjson.dumps({k: v for k, v in {**base, **overrides}.items() if v is not None})


def csv_file(header: str, *rows: str | bytes) -> bytes:
    lines = [row if isinstance(row, bytes) else row.encode() for row in (header, *rows, "")]
    return b"\r\n".join(lines)


CUSTOMERS_HEADER = "user_id,email,first_name,locale,timezone,loyalty_tier,marketing_consent,updated_at"
CATALOG_HEADER = "product_id,name,category,price,currency,stock,url,image_url"


@pytest.mark.parametrize(
    ("kind", "bad", "reason", "detail"),
    [
        ("customers", ndjson("customers", first_name=LONG), Reason.LINE_TOO_LONG, "bytes"),
        ("customers", b'{"user_id": "u-\xff\xfe"}', Reason.INVALID_UTF8, "byte"),
        ("customers", b'{"user_id": "u-1", "email": ', Reason.INVALID_JSON, ""),
        ("customers", b'["u-1"]', Reason.NOT_AN_OBJECT, "list"),
        ("catalog", b"42", Reason.NOT_AN_OBJECT, "int"),
        ("customers", ndjson("customers", user_id=None), Reason.MISSING_FIELD, "user_id"),
        ("customers", ndjson("customers", user_id="  "), Reason.MISSING_FIELD, "user_id"),
        ("catalog", ndjson("catalog", product_id=None), Reason.MISSING_FIELD, "product_id"),
        ("catalog", ndjson("catalog", name=None), Reason.MISSING_FIELD, "name"),
        ("catalog", ndjson("catalog", price=None), Reason.MISSING_FIELD, "price"),
        ("customers", ndjson("customers", user_id={"id": 1}), Reason.WRONG_TYPE, "user_id"),
        ("customers", ndjson("customers", first_name=["Ann"]), Reason.WRONG_TYPE, "first_name"),
        ("customers", ndjson("customers", locale=True), Reason.WRONG_TYPE, "locale"),
        ("customers", ndjson("customers", email="ann.example.com"), Reason.WRONG_TYPE, "email"),
        ("customers", ndjson("customers", marketing_consent="maybe"), Reason.WRONG_TYPE, "marketing_consent"),
        ("customers", ndjson("customers", marketing_consent=1), Reason.WRONG_TYPE, "marketing_consent"),
        ("catalog", ndjson("catalog", price="12.50"), Reason.WRONG_TYPE, "price"),
        ("catalog", ndjson("catalog", price=-1), Reason.WRONG_TYPE, "price"),
        ("catalog", ndjson("catalog", price=True), Reason.WRONG_TYPE, "price"),
        ("catalog", ndjson("catalog", stock=-2), Reason.WRONG_TYPE, "stock"),
        ("catalog", ndjson("catalog", stock=1.5), Reason.WRONG_TYPE, "stock"),
        ("catalog", ndjson("catalog", stock="3"), Reason.WRONG_TYPE, "stock"),
        ("catalog", ndjson("catalog", url={"href": "x"}), Reason.WRONG_TYPE, "url"),
        ("customers", ndjson("customers", updated_at="yesterday"), Reason.INVALID_TIMESTAMP, "updated_at"),
        ("catalog", ndjson("catalog", updated_at=1_700_000_000), Reason.INVALID_TIMESTAMP, "updated_at"),
        ("catalog", ndjson("catalog", updated_at="2099-01-01T00:00:00Z"), Reason.TIMESTAMP_OUT_OF_RANGE, ""),
    ],
)
def test_ndjson_line_is_quarantined_with_its_reason(
    kind: str, bad: bytes, reason: Reason, detail: str
) -> None:
    good = ndjson(kind)
    result = parse(kind, b"\n".join([good, bad, good]) + b"\n")
    assert result.rows["source_line"].to_list() == [1, 3]
    assert result.quarantine.select("source_line", "reason").rows() == [(2, str(reason))]
    assert detail in result.quarantine["detail"][0]
    assert result.quarantine["raw"][0] == bad[:RAW_QUARANTINE_BYTES].decode(errors="replace")
    assert result.quarantine["batch_id"][0] == 4 and result.quarantine["source_file"][0] == f"{kind}/f.ndjson"


GOOD_CUSTOMER_ROW = "u-1,ann@example.com,Ann,en-GB,Europe/London,gold,yes,2026-11-20T10:00:00Z"
GOOD_PRODUCT_ROW = "p-1,Mug,home,12.50,EUR,3,https://shop.example/p/p-1,https://shop.example/i/p-1.jpg"


@pytest.mark.parametrize(
    ("kind", "bad", "reason", "detail"),
    [
        ("customers", f"u-2,b@example.com,{LONG},en,UTC,gold,yes,", Reason.LINE_TOO_LONG, "bytes"),
        ("customers", b"u-\xff2,b@example.com,Bo,en,UTC,gold,yes,", Reason.INVALID_UTF8, "byte"),
        ("customers", ",b@example.com,Bo,en,UTC,gold,yes,", Reason.MISSING_FIELD, "user_id"),
        ("customers", "u-2,b@example.com,Bo", Reason.MISSING_FIELD, "3 fields, the header has 8"),
        ("catalog", "p-2,Cup,home,,EUR,3,,", Reason.MISSING_FIELD, "price"),
        ("catalog", "p-2,,home,4,EUR,3,,", Reason.MISSING_FIELD, "name"),
        ("customers", "u-2,b@example.com,Bo,en,UTC,gold,yes,,extra", Reason.WRONG_TYPE, "9 fields"),
        ("customers", 'u-2,"b@example.com"x,Bo,en,UTC,gold,yes,', Reason.WRONG_TYPE, "CSV"),
        ("customers", "u-2,b-at-example.com,Bo,en,UTC,gold,yes,", Reason.WRONG_TYPE, "email"),
        ("customers", "u-2,b@example.com,Bo,en,UTC,gold,sometimes,", Reason.WRONG_TYPE, "marketing_consent"),
        ("catalog", "p-2,Cup,home,cheap,EUR,3,,", Reason.WRONG_TYPE, "price"),
        ("catalog", "p-2,Cup,home,nan,EUR,3,,", Reason.WRONG_TYPE, "price"),
        ("catalog", "p-2,Cup,home,4,EUR,-1,,", Reason.WRONG_TYPE, "stock"),
        ("catalog", "p-2,Cup,home,4,EUR,2.5,,", Reason.WRONG_TYPE, "stock"),
        # Python's float() reads these, no CSV reader does (Polars: "could not parse")
        ("catalog", "p-2,Cup,home,1_000,EUR,3,,", Reason.WRONG_TYPE, "price"),
        ("catalog", "p-2,Cup,home,\uff11\uff12,EUR,3,,", Reason.WRONG_TYPE, "price"),
        ("catalog", 'p-2,Cup,home,"1,99",EUR,3,,', Reason.WRONG_TYPE, "price"),
        ("catalog", "p-2,Cup,home,4,EUR,1_0,,", Reason.WRONG_TYPE, "stock"),
        ("catalog", "p-2,Cup,home,4,EUR,\uff13,,", Reason.WRONG_TYPE, "stock"),
        ("catalog", "p-2,Cup,home,4,EUR,\u0663,,", Reason.WRONG_TYPE, "stock"),
        (
            "customers",
            "u-2,b@example.com,Bo,en,UTC,gold,no,22/11/2026",
            Reason.INVALID_TIMESTAMP,
            "updated_at",
        ),
        ("customers", "u-2,b@example.com,Bo,en,UTC,gold,no,2099-01-01", Reason.TIMESTAMP_OUT_OF_RANGE, ""),
    ],
)
def test_csv_row_is_quarantined_with_its_reason(
    kind: str, bad: str | bytes, reason: Reason, detail: str
) -> None:
    header, good = (
        (CUSTOMERS_HEADER, GOOD_CUSTOMER_ROW) if kind == "customers" else (CATALOG_HEADER, GOOD_PRODUCT_ROW)
    )
    result = parse(kind, csv_file(header, good, bad, good), "f.csv")
    assert result.rows["source_line"].to_list() == [2, 4]
    assert result.quarantine.select("source_line", "reason").rows() == [(3, str(reason))]
    assert detail in result.quarantine["detail"][0]
    assert not result.quarantine["raw"][0].endswith("\r")


def test_csv_header_without_the_key_column_quarantines_every_line() -> None:
    result = parse("customers", csv_file("id,email", "u-1,a@example.com", "u-2,b@example.com"), "f.csv")
    assert result.rows.height == 0 and result.lines == 3
    assert result.quarantine.select("source_line", "reason").rows() == [
        (line, str(Reason.MISSING_FIELD)) for line in (1, 2, 3)
    ]
    assert "user_id" in result.quarantine["detail"][0]
    assert "no usable CSV header" in result.quarantine["detail"][1]


@pytest.mark.parametrize("name", ["f.ndjson", "f.csv"])
def test_an_unreadable_file_quarantines_its_lines(name: str) -> None:
    rng = random.Random(5)
    garbage = b"\n".join(b"\xff" + rng.randbytes(40).replace(b"\n", b"") for _ in range(6))
    result = parse("catalog", garbage, name)
    assert result.rows.height == 0 and result.lines == result.quarantine.height == 6
    assert set(result.quarantine["reason"]) == {str(Reason.INVALID_UTF8)}


@pytest.mark.parametrize("name", ["f.ndjson", "f.csv"])
def test_empty_file_gives_empty_frames(name: str) -> None:
    result = parse("customers", b"", name)
    assert result.lines == result.rows.height == result.quarantine.height == 0


def test_bom_crlf_and_blank_lines_in_ndjson() -> None:
    data = (
        b"\xef\xbb\xbf"
        + ndjson("customers")
        + b"\r\n\r\n   \r\n"
        + ndjson("customers", user_id="u-2")
        + b"\r\n"
    )
    result = parse("customers", data)
    assert result.lines == 2 and result.quarantine.height == 0
    assert result.rows.select("user_id", "source_line").rows() == [("u-1", 1), ("u-2", 4)]
    assert result.rows["first_name"].to_list() == ["Ann", "Ann"]


def test_bom_crlf_and_blank_lines_in_csv() -> None:
    data = b"\xef\xbb\xbf" + csv_file(
        CUSTOMERS_HEADER, "", GOOD_CUSTOMER_ROW, "  ", GOOD_CUSTOMER_ROW.replace("u-1", "u-2")
    )
    result = parse("customers", data, "f.csv")
    assert result.lines == 2 and result.quarantine.height == 0
    assert result.rows.select("user_id", "source_line", "updated_at").rows() == [
        ("u-1", 3, datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("u-2", 5, datetime(2026, 11, 20, 10, tzinfo=UTC)),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("0", False), ("yes", True), ("No", False), ("TRUE", True), ("false", False), ("", None)],
)
def test_csv_consent_words(text: str, expected: bool | None) -> None:
    row = f"u-1,a@example.com,A,en,UTC,gold,{text},"
    result = parse("customers", csv_file(CUSTOMERS_HEADER, row), "f.csv")
    assert result.rows["marketing_consent"].to_list() == [expected]


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), ("True", True), (None, None)])
def test_ndjson_consent_values(value: object, expected: bool | None) -> None:
    result = parse("customers", ndjson("customers", marketing_consent=value))
    assert result.rows["marketing_consent"].to_list() == [expected]


def test_customer_fields_are_normalised() -> None:
    data = orjson.dumps(
        {
            "user_id": 1234,
            "email": "  Ann.Lee@Example.COM ",
            "first_name": " ",
            "loyalty_tier": "Gold",
            "updated_at": "2026-11-22T10:00:00+02:00",
            "favourite_colour": {"unknown": "columns are ignored"},
        }
    )
    row = parse("customers", data).rows.row(0, named=True)
    assert row["user_id"] == "1234" and row["email"] == "Ann.Lee@example.com"
    assert row["first_name"] is None and row["loyalty_tier"] == "gold"
    assert row["updated_at"] == datetime(2026, 11, 22, 8, tzinfo=UTC)


def test_missing_updated_at_is_the_landing_time_and_naive_times_are_utc() -> None:
    data = b"\n".join([ndjson("catalog"), ndjson("catalog", updated_at="2026-11-21 09:30")])
    assert parse("catalog", data).rows["updated_at"].to_list() == [
        LANDED,
        datetime(2026, 11, 21, 9, 30, tzinfo=UTC),
    ]


def test_catalog_csv_reads_typed_values_and_ignores_unknown_columns() -> None:
    data = csv_file(CATALOG_HEADER + ",colour", GOOD_PRODUCT_ROW + ",navy", "p-2,Cup,home,4,EUR,5.0,,,red")
    rows = parse("catalog", data, "f.csv").rows
    assert rows.select("product_id", "price", "stock", "url").rows() == [
        ("p-1", 12.5, 3, "https://shop.example/p/p-1"),
        ("p-2", 4.0, 5, None),
    ]


@pytest.mark.parametrize("name", ["f.ndjson", "f.csv"])
def test_a_crlf_line_at_the_limit_is_read(name: str) -> None:
    """Regression (found by review): a CRLF file's CR counted against the line limit."""

    def sized(size: int, n: int) -> bytes:
        if name == "f.csv":
            row = f"p-{n},Mug,home,12.50,EUR,3,,"
            return row.replace("Mug", "M" * (size - len(row) + 3)).encode()
        short = ndjson("catalog", product_id=f"p-{n}", name="")
        return ndjson("catalog", product_id=f"p-{n}", name="M" * (size - len(short)))

    lines = [sized(MAX_LINE_BYTES, 1), sized(MAX_LINE_BYTES + 1, 2)]
    assert [len(line) for line in lines] == [MAX_LINE_BYTES, MAX_LINE_BYTES + 1]
    body = csv_file(CATALOG_HEADER, *lines) if name == "f.csv" else b"\r\n".join([*lines, b""])
    result = parse("catalog", body, name)
    assert result.rows["product_id"].to_list() == ["p-1"]
    assert result.quarantine.select("reason", "detail").rows() == [
        (str(Reason.LINE_TOO_LONG), f"{MAX_LINE_BYTES + 1} bytes > {MAX_LINE_BYTES}")
    ]


def test_csv_numbers_are_read_as_polars_reads_them() -> None:
    """A plain ASCII decimal, as Polars' CSV reader takes it (sign, point, exponent), blanks around stripped
    as in every reference field."""
    cells = ["4", " 4.5", "+4", ".5", "5.", "1e1", "007", "0.25 "]
    rows = [f"p-{n},Cup,home,{cell},EUR,{round(float(cell))},," for n, cell in enumerate(cells)]
    rows += [f"p-{n}s,Cup,home,1,EUR,{cell},," for n, cell in enumerate(cells) if float(cell).is_integer()]
    read = parse("catalog", csv_file(CATALOG_HEADER, *rows), "f.csv")
    assert read.quarantine.height == 0
    stripped = "\n".join(cell.strip() for cell in cells)
    polars = pl.read_csv(f"price\n{stripped}".encode(), schema={"price": pl.Float64})
    assert read.rows["price"].to_list()[: len(cells)] == polars["price"].to_list()
    assert read.rows["stock"].to_list()[len(cells) :] == [4, 4, 5, 10, 7]


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        parse_reference("orders", b"", source_file="x", landed_at=LANDED, ingested_at=LANDED, batch_id=1)


def product(pid: str, price: float, stock: int | None, minute: int, **source: object) -> dict[str, object]:
    return {
        "product_id": pid,
        "name": f"n-{pid}",
        "category": "home",
        "price": price,
        "currency": "EUR",
        "stock": stock,
        "url": None,
        "image_url": None,
        "updated_at": LANDED + timedelta(minutes=minute),
        **source,
    }


def frame(rows: list[dict[str, object]], sourced: bool = True) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={**CATALOG_SCHEMA, **(SOURCE if sourced else {})})


def test_latest_row_wins_by_time_not_by_order() -> None:
    existing = frame([product("p-1", 10.0, 1, minute=5), product("p-2", 10.0, 1, minute=0)], sourced=False)
    incoming = frame(
        [
            product("p-1", 99.0, 1, minute=4, source_file="b.ndjson", source_line=1),  # older: loses
            product("p-2", 7.0, 1, minute=3, source_file="a.ndjson", source_line=2),
            product("p-2", 8.0, 1, minute=1, source_file="a.ndjson", source_line=3),
            product("p-3", 5.0, 0, minute=0, source_file="a.ndjson", source_line=4),
        ]
    )
    result = latest_rows(existing, incoming, "product_id")
    assert result.schema == pl.Schema(CATALOG_SCHEMA)
    assert result.select("product_id", "price").rows() == [("p-1", 10.0), ("p-2", 7.0), ("p-3", 5.0)]


def test_ties_go_to_the_later_file_then_line_and_stored_rows_count_as_earliest() -> None:
    existing = frame([product("p-1", 1.0, 1, minute=0)], sourced=False)
    incoming = frame(
        [
            product("p-1", 4.0, 1, minute=0, source_file="b.ndjson", source_line=1),
            product("p-1", 3.0, 1, minute=0, source_file="a.ndjson", source_line=9),
            product("p-2", 5.0, 1, minute=0, source_file="a.ndjson", source_line=2),
            product("p-2", 6.0, 1, minute=0, source_file="a.ndjson", source_line=3),
        ]
    )
    result = latest_rows(existing, incoming.reverse(), "product_id")
    assert result.select("product_id", "price").rows() == [("p-1", 4.0), ("p-2", 6.0)]


def test_latest_rows_output_is_exactly_the_customers_schema() -> None:
    incoming = parse("customers", ndjson("customers")).rows
    result = latest_rows(pl.DataFrame(schema=CUSTOMERS_SCHEMA), incoming, "user_id")
    assert result.schema == pl.Schema(CUSTOMERS_SCHEMA) and result["user_id"].to_list() == ["u-1"]
    with pytest.raises(ValueError):
        latest_rows(result, incoming, "email")


Batch = list[tuple[str, int, float]]  # (product_id, minute, price)
batches_strategy = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["p-1", "p-2", "p-3"]), st.integers(0, 5), st.sampled_from([1.0, 2.0, 3.0])
        ),
        max_size=6,
    ),
    min_size=1,
    max_size=4,
)


def batch_frame(index: int, batch: Batch) -> pl.DataFrame:
    # minute * 10 + index: never a tie between batches, ties within a batch (same minute) are allowed
    return frame(
        [
            product(pid, price, 1, minute * 10 + index, source_file=f"f{index}.ndjson", source_line=line)
            for line, (pid, minute, price) in enumerate(batch, 1)
        ]
    )


def expected_latest(batches: list[Batch]) -> pl.DataFrame:
    best: dict[str, tuple[tuple[int, str, int], dict[str, object]]] = {}
    for index, batch in enumerate(batches):
        for line, (pid, minute, price) in enumerate(batch, 1):
            rank = (minute * 10 + index, f"f{index}.ndjson", line)
            if pid not in best or rank > best[pid][0]:
                best[pid] = (rank, product(pid, price, 1, rank[0]))
    return frame([best[pid][1] for pid in sorted(best)], sourced=False)


@settings(max_examples=60, deadline=None)
@given(batches=batches_strategy, data=st.data())
def test_any_order_and_repetition_of_batches_gives_the_same_table(
    batches: list[Batch], data: st.DataObject
) -> None:
    extra = data.draw(st.lists(st.integers(0, len(batches) - 1), max_size=3))
    order = data.draw(st.permutations([*range(len(batches)), *extra]))
    table = frame([], sourced=False)
    for index in order:
        table = latest_rows(table, batch_frame(index, batches[index]), "product_id")
    assert_frame_equal(table, expected_latest(batches))
    again = latest_rows(table, batch_frame(order[0], batches[order[0]]), "product_id")
    assert_frame_equal(again, table)  # idempotent


def change_rows(changes: pl.DataFrame) -> list[tuple[object, ...]]:
    return changes.select("product_id", "change", "old_value", "new_value").rows()


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ((100.0, 0), (100.0, 5), [("back_in_stock", 0.0, 5.0)]),
        ((100.0, 5), (100.0, 0), []),
        ((100.0, None), (100.0, 5), []),  # only a known 0 comes back in stock
        ((100.0, 3), (100.0, 7), []),
        ((100.0, 5), (89.0, 5), [("price_drop", 100.0, 89.0)]),
        ((100.0, 5), (90.0, 5), [("price_drop", 100.0, 90.0)]),  # exactly 10 %
        ((19.99, 5), (17.99, 5), [("price_drop", 19.99, 17.99)]),
        ((100.0, 5), (95.0, 5), []),
        ((100.0, 5), (120.0, 5), []),
        ((100.0, 0), (50.0, 2), [("back_in_stock", 0.0, 2.0), ("price_drop", 100.0, 50.0)]),
    ],
)
def test_catalog_changes(
    before: tuple[float, int | None], after: tuple[float, int | None], expected: list[tuple[object, ...]]
) -> None:
    old = frame([product("p-1", *before, minute=0)], sourced=False)
    new = frame([product("p-1", *after, minute=7), product("p-9", 1.0, 3, minute=7)], sourced=False)
    changes = catalog_changes(old, new)
    assert changes.schema == pl.Schema(CATALOG_CHANGE_SCHEMA)
    assert change_rows(changes) == [("p-1", *row) for row in expected]
    assert changes["changed_at"].to_list() == [LANDED + timedelta(minutes=7)] * len(expected)


def test_new_products_are_not_changes_and_min_drop_is_configurable() -> None:
    old = frame([product("p-1", 100.0, 5, minute=0)], sourced=False)
    new = frame([product("p-1", 95.0, 5, minute=1), product("p-2", 1.0, 0, minute=1)], sourced=False)
    assert catalog_changes(old, new).height == 0
    assert change_rows(catalog_changes(old, new, min_drop=0.05)) == [("p-1", "price_drop", 100.0, 95.0)]
    with pytest.raises(ValueError):
        catalog_changes(old, new, min_drop=1.5)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=4,
)
FIELDS = sorted({*CUSTOMERS_SCHEMA, *CATALOG_SCHEMA})


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(["customers", "catalog"]),
    name=st.sampled_from(["f.ndjson", "f.csv"]),
    records=st.lists(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=9), max_size=4),
    noise=st.binary(max_size=60),
)
def test_never_raises_and_accounts_for_every_line(
    kind: str, name: str, records: list[dict[str, object]], noise: bytes
) -> None:
    as_csv = name.endswith(".csv")
    if as_csv:  # cells may hold commas, quotes or newlines: bad rows, never a crash
        rows = [",".join(str(record.get(field, "")) for field in FIELDS).encode() for record in records]
        data = b"\n".join([",".join(FIELDS).encode(), *rows, noise])
    else:
        data = b"\n".join([*(json.dumps(record).encode() for record in records), noise])
    result = parse(kind, data, name)  # also checks both schemas and lines == rows + quarantine
    non_blank = sum(1 for line in data.removeprefix(b"\xef\xbb\xbf").split(b"\n") if line.strip())
    assert result.lines == non_blank - as_csv  # a usable CSV header is not a data line


def test_catalog_changes_take_every_step_of_a_batch_in_time_order() -> None:
    """3 -> 0 -> 5 within one batch restocks (before: only first against last, so nothing), in time
    order not file order; a row older than the stored one, and a new product's first row, are no step."""
    old = frame([product("p-1", 100.0, 3, minute=0), product("p-2", 100.0, 0, minute=9)], sourced=False)
    rows = frame(
        [
            product("p-1", 100.0, 5, minute=4, source_file="a.csv", source_line=1),
            product("p-1", 80.0, 0, minute=2, source_file="b.csv", source_line=1),
            product("p-2", 100.0, 7, minute=8, source_file="a.csv", source_line=2),  # older than stored
            product("p-3", 50.0, 0, minute=1, source_file="a.csv", source_line=3),
            product("p-3", 40.0, 2, minute=3, source_file="a.csv", source_line=4),
        ]
    )
    changes = catalog_changes(old, rows)
    assert change_rows(changes) == [
        ("p-1", "back_in_stock", 0.0, 5.0),
        ("p-1", "price_drop", 100.0, 80.0),
        ("p-3", "back_in_stock", 0.0, 2.0),
        ("p-3", "price_drop", 50.0, 40.0),
    ]
    minutes = [int((t - LANDED).total_seconds() // 60) for t in changes["changed_at"]]
    assert minutes == [4, 2, 3, 3]
