"""Segment's spec names as its destinations read them (transforms/ingest/spec_names.py): a variant of a spec
event name is stored as the spec writes it, a keyed id is read in camelCase too, on every parse path."""

from __future__ import annotations

import re

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal

from stores.state.namespaces import VIEWED_EVENTS
from stores.suppressions import SUPPRESSING
from tests.unit.test_parse_paths import assert_all_paths, message, with_raw
from transforms.ingest.events import KEY_IDS
from transforms.ingest.spec_names import CAMEL_IDS, SPEC_NAMES, V1_NAMES, spec_event_name, spec_event_names
from transforms.measure.attribution import MEASURED_EVENTS
from transforms.profiles.state import CART_EVENTS
from transforms.sends.refusals import BOUNCED, COMPLAINED

STORED = [
    ("Order Completed", "Order Completed"),
    ("order_completed", "Order Completed"),
    ("Order completed", "Order Completed"),
    ("ORDER COMPLETED", "Order Completed"),
    ("Order Completed ", "Order Completed"),
    ("\tOrder Completed\r\n", "Order Completed"),
    ("Order  Completed", "Order Completed"),
    ("order-completed", "Order Completed"),
    ("order__completed", "Order Completed"),
    ("Completed Order", "Order Completed"),
    ("completed_order", "Order Completed"),
    ("Viewed Product", "Product Viewed"),
    ("product_viewed", "Product Viewed"),
    ("Added Product", "Product Added"),
    ("Removed Product", "Product Removed"),
    ("Started Checkout", "Checkout Started"),
    ("Started Order", "Checkout Started"),
    ("checkout_started", "Checkout Started"),
    ("Viewed Cart", "Cart Viewed"),
    ("Searched Products", "Products Searched"),
    ("Refunded Order", "Order Refunded"),
    ("order_cancelled", "Order Cancelled"),
    ("email_link_clicked", "Email Link Clicked"),
    ("email bounced", "Email Bounced"),
    ("Email Marked As Spam", "Email Marked as Spam"),
    ("unsubscribed", "Unsubscribed"),
    # kept as sent: no spec name up to case, blanks around and separators
    ("Order Completed Late", "Order Completed Late"),
    ("Product Viewed Twice", "Product Viewed Twice"),
    ("My Order Completed", "My Order Completed"),
    ("OrderCompleted", "Order Completed"),  # Segment's regexes take the separator as optional
    ("completedorder", "Order Completed"),
    ("emailLinkClicked", "Email Link Clicked"),
    ("Order.Completed", "Order.Completed"),
    ("Order Complete", "Order Complete"),
    ("Completed Checkout", "Completed Checkout"),
    ("Order Started", "Order Started"),
    ("Product Clicked", "Product Clicked"),  # a spec name lakemail reads nowhere
    (" Viewed ", " Viewed "),
    ("Signed Up", "Signed Up"),
]


@pytest.mark.parametrize(("sent", "stored"), STORED)
def test_a_variant_of_a_spec_name_is_stored_as_the_spec_writes_it(sent: str, stored: str) -> None:
    assert spec_event_names(pl.Series([sent, None, "Product Added"])).to_list() == [
        stored,
        None,
        "Product Added",
    ]


def test_names_are_normalised_in_place_and_the_column_is_left_alone_when_all_are_the_spec_s() -> None:
    frame = pl.DataFrame({"event": [sent for sent, _ in STORED] * 3 + [None]})
    expected = pl.Series("event", [stored for _, stored in STORED] * 3 + [None])
    assert_series_equal(frame.select(spec_event_name(pl.col("event")))["event"], expected)
    exact = pl.Series("event", ["Order Completed", None, "Product Viewed"])
    assert spec_event_names(exact) is exact


def test_every_name_lakemail_decides_on_is_a_spec_name_the_ingest_normalises() -> None:
    """The names transforms/ and stores/ compare `event_name` with: a variant of each is stored as it."""
    decided = {*CART_EVENTS, *MEASURED_EVENTS, *VIEWED_EVENTS, *SUPPRESSING, BOUNCED, COMPLAINED}
    decided |= {"Checkout Started", "Products Searched", "Cart Viewed"}
    assert decided == set(SPEC_NAMES)
    assert set(V1_NAMES.values()) <= set(SPEC_NAMES)
    assert tuple(CAMEL_IDS) == KEY_IDS


WORDS = ["order", "Order", "COMPLETED", "completed", "product", "Viewed", "added", "x", "Email", "as"]
SEPARATORS = [" ", "  ", "_", "-", "\t", " _ "]


def model(sent: str) -> str:
    """The rule in Python: whitespace, `_` and `-` dropped, case ignored."""
    key = re.sub(r"[\s_-]+", "", sent).lower()
    table = {name.lower().replace(" ", ""): name for name in SPEC_NAMES}
    table |= {old.lower().replace(" ", ""): new for old, new in V1_NAMES.items()}
    return table.get(key, sent)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", " ", "\t"]),
            st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), min_size=1, max_size=4),
        ),
        max_size=12,
    )
)
def test_the_polars_rule_agrees_with_the_rule_in_python(
    names: list[tuple[str, list[tuple[str, str]]]],
) -> None:
    sent = [pad + "".join(w + s for w, s in words).rstrip(" _-\t") + pad for pad, words in names]
    assert spec_event_names(pl.Series(sent, dtype=pl.String)).to_list() == [model(s) for s in sent]


# --- every parse path: the same rows


def test_names_and_camel_case_ids_give_the_same_rows_on_every_path() -> None:
    """The group's vectorised pass, the file's fast path and line by line: one row each, the same."""
    lines = [
        message("a", event="order_completed", properties={"orderId": "o1", "checkoutId": "k1", "revenue": 5}),
        message("b", event="Completed Order", properties={"order_id": " ", "orderId": "o2"}),
        message("c", event="Order Completed ", properties={"order_id": "o3", "orderId": "o-other"}),
        message("d", event="Added Product", properties={"productId": "p1", "cartId": "c1", "name": "t\tb"}),
        message("e", event="Order Completed Late", properties={"orderId": " \t"}),
        message("f", event="Started Checkout", properties={"checkoutId": "k2", "a": 1e100}),
        message("g", event="viewed_product", properties={"productId": 7}),
        message("h", event="Product  Viewed", properties={"product_id": "p2", "productId": ""}),
        message("i", event="Signed Up", traits={"orderId": "not a property"}),
    ]
    line = message("j", properties={"orderId": "o9"})
    lines.append(line.replace(b'"Viewed"', b'"order\\u005Fcompleted"'))  # an escape in the name
    lines.append(with_raw("k", b'"properties"', b'{"order\\u0049d":"o10"}'))  # an escape in the key
    result = assert_all_paths(b"\n".join(lines) + b"\n")
    assert result.quarantine.height == 0
    kept = result.events.select("event_id", "event_name", *KEY_IDS).rows()
    assert kept == [
        ("a", "Order Completed", None, "k1", "o1", None),
        ("b", "Order Completed", None, None, "o2", None),
        ("c", "Order Completed", None, None, "o3", None),
        ("d", "Product Added", "c1", None, None, "p1"),
        ("e", "Order Completed Late", None, None, None, None),
        ("f", "Checkout Started", None, "k2", None, None),
        ("g", "Product Viewed", None, None, None, "7"),
        ("h", "Product Viewed", None, None, None, "p2"),
        ("i", "Signed Up", None, None, None, None),
        ("j", "Order Completed", None, None, "o9", None),
        ("k", "Viewed", None, None, "o10", None),
    ]
    sent = [orjson.loads(line).get("properties") for line in lines]
    assert [orjson.loads(p) if p else None for p in result.events["properties"]] == sent


def test_a_file_of_spec_names_reads_as_before() -> None:
    """No variant, no camelCase id: the columns of the snake_case ids, as sent."""
    lines = [message(f"m{n}", event="Product Added", properties={"product_id": f"p{n}"}) for n in range(50)]
    result = assert_all_paths(b"\n".join(lines) + b"\n")
    expected = pl.DataFrame(
        {"event_name": ["Product Added"] * 50, "product_id": [f"p{n}" for n in range(50)]}
    )
    assert_frame_equal(result.events.select("event_name", "product_id"), expected)
