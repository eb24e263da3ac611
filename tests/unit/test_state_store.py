"""The state store (issue #15): its codec, atomic stamped commits, the due index, and replacement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import patch

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resources.state import StateResource
from resources.state_lmdb import open_environment
from stores.erasure.state import person_changes
from stores.state.profiles import same_profiles
from stores.state.reads import seen_ids
from transforms.erasure.person import Person
from transforms.profiles.state import PARTIAL_SCHEMA, fill_lists
from transforms.schema import TRIGGERS_SCHEMA
from transforms.state import (
    BULK_PUTS,
    PACK_FROM,
    PACKED,
    PUT_SCHEMA,
    StateChanges,
    StateError,
    decode,
    encode,
)
from transforms.state_keys import HASHED_KEY, due_key, store_key

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def state(tmp_path: Path) -> StateResource:
    return StateResource(uri=str(tmp_path / "state"))


def test_encode_then_decode_gives_the_rows_back_and_the_same_rows_the_same_bytes() -> None:
    schema = {
        "principal": pl.String(),
        "last_ts": PARTIAL_SCHEMA["last_ts"],
        "views": PARTIAL_SCHEMA["views"],
        "engagement": pl.Float64(),
        "day": pl.Date(),
    }
    rows = pl.DataFrame(
        {
            "principal": ["u1", "anon:a"],
            "last_ts": [T0, None],
            "views": [[{"ts": T0, "product_id": "p1", "category": "bags"}], []],
            "engagement": [0.1 + 0.2, None],
            "day": [T0.date(), None],
        },
        schema=schema,
    )
    pairs = encode(rows.lazy(), pl.col("principal"), schema).collect()
    assert pairs["key"].to_list() == ["u1", "anon:a"]
    back = decode([v.encode() for v in pairs["value"]], schema)
    assert back.equals(rows)
    again = encode(back.lazy(), pl.col("principal"), schema).collect()
    assert again["value"].to_list() == pairs["value"].to_list()


@pytest.mark.parametrize("part_bytes", [1, 50, 120, 1 << 20])
def test_a_decode_in_parts_gives_the_rows_of_one_decode(
    monkeypatch: pytest.MonkeyPatch, part_bytes: int
) -> None:
    """A large decode runs in parts of about DECODE_PART_BYTES (#17): any cut gives the same rows in order."""
    schema = {
        "principal": pl.String(),
        "last_ts": PARTIAL_SCHEMA["last_ts"],
        "views": PARTIAL_SCHEMA["views"],
    }
    rows = pl.DataFrame(
        {
            "principal": [f"u{n}" for n in range(7)],
            "last_ts": [T0 + timedelta(minutes=n) if n % 3 else None for n in range(7)],
            "views": [
                [{"ts": T0, "product_id": f"p{m}", "category": None} for m in range(n)] for n in range(7)
            ],
        },
        schema=schema,
    )
    values = [v.encode() for v in encode(rows.lazy(), pl.col("principal"), schema).collect()["value"]]
    monkeypatch.setattr("transforms.state.DECODE_PART_BYTES", part_bytes)
    assert decode(values, schema).equals(rows)
    assert decode(values[:1], schema).equals(rows.head(1))
    assert decode([], schema).equals(rows.clear())


def test_a_key_longer_than_any_store_allows_is_kept_as_its_hash() -> None:
    assert store_key("m-1") == "m-1"
    long = store_key("m" * 1000)
    assert long.startswith(HASHED_KEY) and len(long) < 100 and long == store_key("m" * 1000)


def test_a_batch_of_event_ids_as_a_series_finds_what_a_list_finds(state: StateResource) -> None:
    """`seen_ids` hands the store a Series (sorted by Polars, #17): short and hashed keys, repeats and
    a null find the same ids as the row-by-row path."""
    store = state.store()
    taken = ["e-2", "e-1", "m" * 1000]
    changes = StateChanges()
    for key in taken:
        changes.put("event_ids", key, b"1")
    store.commit(1, changes)
    asked = ["e-3", "e-1", "e-2", "e-1", "m" * 1000, "n" * 1000]
    assert sorted(seen_ids(store, pl.Series("event_id", asked))) == sorted(taken)
    assert sorted(seen_ids(store, pl.Series("event_id", [*asked[:4], None]))) == ["e-1", "e-2"]
    assert store.get_many("event_ids", pl.Series(asked[:4])) == store.get_many("event_ids", asked[:4])


@pytest.mark.parametrize("bulk_keys", [1, 256])
def test_keys_in_bulk_are_the_keys_one_by_one(
    state: StateResource, monkeypatch: pytest.MonkeyPatch, bulk_keys: int
) -> None:
    """`delete_many` and `put_many` (the engine's bulk changes, #17) change what `delete` and `put` change,
    and `get_many` finds the same for a list, a set, a generator and a Series of keys."""
    long_one, long_two = "k" * 600, "q" * 600  # over the store's key limit: kept as their hash
    keys = ["a", "b", long_one, "c", long_two]
    one, bulk = StateChanges(), StateChanges()
    for key in keys:
        one.put("pending_due", key, key.encode()[:8])
    bulk.put_many("pending_due", pl.DataFrame({"key": keys, "value": [k[:8] for k in keys]}))
    gone = ["b", long_one, "zz"]
    for key in gone:
        one.delete("pending_due", key)
    bulk.delete_many("pending_due", pl.Series(gone))
    assert list(bulk.ordered_puts("pending_due")) == list(one.ordered_puts("pending_due"))
    assert bulk.deletes == one.deletes
    short = StateChanges()
    short.delete_many("pending_due", pl.Series(["x", "y", "x"]))
    assert short.deletes == {"pending_due": {"x", "y"}}
    monkeypatch.setattr("resources.state_lmdb.BULK_KEYS", bulk_keys)  # lists sorted by Polars, or in Python
    store = state.store()
    store.commit(1, bulk)
    everything = {"a": b"a", "c": b"c", long_two: b"qqqqqqqq"}  # a hashed key named as asked
    for asked in (keys, set(keys), (k for k in keys), pl.Series(keys)):
        assert store.get_many("pending_due", asked) == everything
    assert store.get_many("pending_due", pl.Series(["b", "a", "a"])) == {"a": b"a"}
    assert store.get_many("pending_due", iter(["c", "zz"])) == {"c": b"c"}
    # A key shaped as a long key's hash is another key (found by review: it was the long one's).
    assert store.get_many("pending_due", [store_key(long_two)]) == {}
    # An empty key (a shopper's `cart_id: ""`) is none the store holds: LMDB refuses to look one up.
    assert store.get_many("pending_due", ["", "a", long_two]) == {k: everything[k] for k in ("a", long_two)}
    assert store.get_many("pending_due", pl.Series(["", "a", None, ""])) == {"a": b"a"}
    assert store.get_many("pending_due", [""]) == store.get_many("pending_due", pl.Series([""])) == {}


def test_a_live_runs_few_puts_stay_python_and_a_backlogs_many_stay_one_polars_frame() -> None:
    """A few puts (a live run) go to a dict: a settle costs ~0.5 ms of Polars whatever its size, 10x a
    dict's (#17, the small-run slowdown e26ca12 found); a backlog's many puts stay one frame, sorted once."""
    few, many = StateChanges(), StateChanges()
    few.put_many("event_ids", pl.DataFrame({"key": ["b", "a"], "value": [b"2", b"1"]}))
    keys = [f"e-{i:05d}" for i in range(BULK_PUTS, 0, -1)]
    many.put_many("event_ids", pl.DataFrame({"key": keys, "value": [k.encode() for k in keys]}))
    assert few.parts == {"event_ids": [{"b": b"2", "a": b"1"}]}
    assert list(few.ordered_puts("event_ids")) == [(b"a", b"1"), (b"b", b"2")]
    settled = many.settle().parts["event_ids"]
    assert len(settled) == 1 and isinstance(settled[0], pl.DataFrame)
    assert [k for k, _ in many.ordered_puts("event_ids")] == sorted(k.encode() for k in keys)


KEYS = st.sampled_from(["a", "b", "é", "\U0001f600", "p|u", "k" * 600, "A"])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.lists(st.tuples(KEYS, st.binary(max_size=3)), min_size=1, max_size=4)),
        st.tuples(st.just("put_many"), st.lists(st.tuples(KEYS, st.binary(max_size=3)), max_size=4)),
        st.tuples(st.just("update"), st.lists(st.tuples(KEYS, st.binary(max_size=3)), max_size=4)),
        st.tuples(st.just("settle"), st.just([])),
    ),
    max_size=8,
)


@pytest.mark.parametrize("bulk_puts", [1, 3, BULK_PUTS])
@settings(max_examples=40, deadline=None)
@given(steps=STEPS)
def test_puts_in_any_mix_of_parts_give_the_last_value_of_each_key_in_byte_order(
    bulk_puts: int, steps: list[tuple[str, list[tuple[str, bytes]]]]
) -> None:
    """Single puts, bulk frames, merged changes and settled parts (#17: kept as Polars frames up to the
    commit) give what a dict of single puts gives: the last value of each key, keys in UTF-8 order.
    `bulk_puts`: the frames from this many rows (below, `put_many` fills a dict as small runs do)."""
    with patch("transforms.state.BULK_PUTS", bulk_puts):
        _check_puts(steps)


def _check_puts(steps: list[tuple[str, list[tuple[str, bytes]]]]) -> None:
    changes = StateChanges()
    expected: dict[bytes, bytes] = {}
    merged: list[tuple[StateChanges, list[tuple[bytes, bytes]]]] = []
    for kind, pairs in steps:
        if kind == "put":
            for key, value in pairs:
                changes.put("catalog", key, value)
        elif kind == "settle":
            changes.settle()
        elif kind == "put_many":
            changes.put_many("catalog", pl.DataFrame(pairs, schema=PUT_SCHEMA, orient="row"))
        else:  # another batch's changes, single puts and a frame, merged in
            other = StateChanges()
            other.put_many("catalog", pl.DataFrame(pairs[1:], schema=PUT_SCHEMA, orient="row"))
            for key, value in pairs[:1]:
                other.put("catalog", key, value)
            changes.update(other)
            pairs = [*pairs[1:], *pairs[:1]]
            merged.append((other, sorted({store_key(k).encode(): v for k, v in pairs}.items())))
        expected.update((store_key(k).encode(), v) for k, v in pairs)
    assert list(changes.ordered_puts("catalog")) == sorted(expected.items())
    assert all(list(other.ordered_puts("catalog")) == before for other, before in merged)  # left as they were


def _state_json(n: int, email: str = "") -> bytes:
    """A profile state's shape: repetitive JSON, as a backlog's shoppers have (~6.5 KB)."""
    view = '{{"ts":{ts},"product_id":"p-{i:05}","category":"home"}}'
    views = ",".join(view.format(ts=1796331034285000 + i, i=i) for i in range(n))
    return f'{{"email":"{email}","views":[{views}]}}'.encode()


@pytest.mark.parametrize("rows", [3, BULK_PUTS])  # a live run's dict, a backlog's frame
def test_a_large_value_is_stored_compressed_and_every_read_gives_back_what_was_put(
    state: StateResource, rows: int
) -> None:
    """#17: a profile state took LMDB overflow pages of its own, rewritten by every commit group. A value of
    PACK_FROM bytes or more is kept zstd-compressed; `get_many`, `scan`, readers and `load` see the JSON."""
    values = {f"u-{i:04}": _state_json(60 + i % 7) for i in range(rows)} | {"small": b'{"views":[]}'}
    changes = StateChanges()
    changes.put_many("profiles", pl.DataFrame(list(values.items()), schema=PUT_SCHEMA, orient="row"))
    store = state.store()
    store.commit(1, changes.settle())
    env = open_environment(state.path, create=False)
    assert env is not None
    with env.begin() as txn:
        raw = dict(txn.cursor(env.open_db(b"profiles")))
    assert all(raw[k.encode()].startswith(PACKED) for k in values if k != "small")
    assert raw[b"small"] == values["small"]  # under PACK_FROM: as put
    assert sum(map(len, raw.values())) * 3 < sum(map(len, values.values()))
    assert store.get_many("profiles", list(values)) == values
    assert dict(store.scan("profiles")) == values
    with store.reader() as reader:
        assert reader.get_many("profiles", ["u-0001"]) == {"u-0001": values["u-0001"]}
    store.load("customers", [("u-1", values["u-0001"])])
    assert store.get_many("customers", ["u-1"]) == {"u-1": values["u-0001"]}
    again = StateChanges()  # a put of what a read gave back packs it as before, once
    again.put_many("profiles", pl.DataFrame(list(values.items()), schema=PUT_SCHEMA, orient="row"))
    assert dict(again.settle().ordered_puts("profiles")) == raw


def test_an_erasure_finds_the_person_inside_a_compressed_value(state: StateResource) -> None:
    """Erasure searches the store's values for the person's text: a packed profile state is searched as
    the JSON it holds."""
    theirs, other = _state_json(80, "bob@x.com"), _state_json(80, "ann@x.com")
    assert len(theirs) >= PACK_FROM
    changes = StateChanges()
    changes.put("profiles", "u-7", theirs)
    changes.put("profiles", "u-8", other)
    store = state.store()
    store.commit(1, changes)
    erased = person_changes(store, Person("u-1", ("a-1",), ("bob@x.com",)), [])
    assert erased.deletes == {"profiles": {"u-7"}}


def test_commit_applies_every_change_and_stamps_its_lane(state: StateResource) -> None:
    store = state.store()
    assert store.stamps() == {"ingest": 0, "triggers": 0}
    changes = StateChanges()
    changes.put("event_ids", "m-1", b'{"batch_id":1}')
    changes.put("event_ids", "m-2", b'{"batch_id":1}')
    changes.put("catalog", "p1", b"{}")
    store.commit(1, changes)
    later = StateChanges()
    later.delete("event_ids", "m-2")
    later.put("event_ids", "m-3", b'{"batch_id":2}')
    store.commit(2, later)
    store.commit(7, StateChanges(), lane="triggers")
    assert store.get_many("event_ids", ["m-1", "m-2", "m-3", "m-4"]) == {
        "m-1": b'{"batch_id":1}',
        "m-3": b'{"batch_id":2}',
    }
    assert store.stamps() == {"ingest": 2, "triggers": 7}
    assert store.counts()["event_ids"] == 2 and store.counts()["catalog"] == 1


def test_a_commit_that_fails_part_way_leaves_nothing_of_itself(state: StateResource) -> None:
    store = state.store()
    first = StateChanges()
    first.put("event_ids", "m-1", b"1")
    store.commit(1, first)
    broken = StateChanges()
    broken.put("event_ids", "m-2", b"2")
    broken.put("catalog", "p1", b"ok")
    broken.put("catalog", "p2", "not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.commit(2, broken)
    assert store.get_many("event_ids", ["m-1", "m-2"]) == {"m-1": b"1"}
    assert store.counts()["catalog"] == 0
    assert store.stamps()["ingest"] == 1


def test_a_stamp_never_goes_back_and_unknown_names_are_refused(state: StateResource) -> None:
    store = state.store()
    store.commit(5, StateChanges())
    store.commit(5, StateChanges())  # the same batch again (a retry) is allowed
    going_back = StateChanges()
    going_back.put("event_ids", "m-9", b"1")
    with pytest.raises(StateError, match="would go back"):
        store.commit(4, going_back)
    assert store.get_many("event_ids", ["m-9"]) == {}
    with pytest.raises(StateError, match="unknown state namespace"):
        StateChanges().put("eventids", "k", b"")
    with pytest.raises(StateError, match="unknown lane"):
        store.commit(6, StateChanges(), lane="sends")


def test_pending_due_answers_the_candidates_due_by_a_time_in_due_order(state: StateResource) -> None:
    rows = pl.DataFrame(
        {
            "trigger_id": ["t-late", "t-now", "t-early", "t-undated"],
            "due_at": [T0 + timedelta(hours=1), T0, T0 - timedelta(days=1), None],
        },
        schema={"trigger_id": pl.String(), "due_at": TRIGGERS_SCHEMA["due_at"]},
    ).with_columns(
        pl.lit(None, dtype=t).alias(c)
        for c, t in TRIGGERS_SCHEMA.items()
        if c not in {"trigger_id", "due_at"}
    )
    changes = StateChanges()
    changes.put_many("pending_triggers", encode(rows.lazy(), pl.col("trigger_id"), TRIGGERS_SCHEMA).collect())
    dated = rows.filter(pl.col("due_at").is_not_null())
    index = encode(dated.lazy(), due_key(pl.col("due_at"), pl.col("trigger_id")), {"trigger_id": pl.String()})
    changes.put_many("pending_due", index.collect())
    state.commit(1, changes)
    assert sorted(state.pending_due(T0)) == ["t-early", "t-now"]
    assert sorted(state.pending_due(T0 - timedelta(microseconds=1))) == ["t-early"]
    assert state.pending_due(T0 - timedelta(days=2)) == {}
    assert [k.split("|")[1] for k, _ in state.store().scan("pending_due")] == ["t-early", "t-now", "t-late"]
    decoded = decode(list(state.pending_due(T0).values()), TRIGGERS_SCHEMA)
    assert set(decoded["due_at"].to_list()) == {T0, T0 - timedelta(days=1)}


def test_keys_of_any_script_keep_their_values_and_scan_in_byte_order(state: StateResource) -> None:
    """A commit sorts the keys as text (#17): each value stays with its key, and LMDB's order (UTF-8
    bytes) is what a scan returns, whatever the script."""
    keys = ["z", "é", "e", "\U0001f600", "ÿ", "\uffff", "A", "p|ü", "p|u"]
    changes = StateChanges()
    for key in keys:
        changes.put("product_viewers", key, key.encode()[::-1])
    state.commit(1, changes)
    scanned = list(state.store().scan("product_viewers"))
    assert [k for k, _ in scanned] == sorted(keys, key=str.encode)
    assert all(value == key.encode()[::-1] for key, value in scanned)


def test_scan_reads_a_key_range_in_order(state: StateResource) -> None:
    changes = StateChanges()
    for key in ("p2|u1", "p1|u2", "p1|u1", "p3|u9"):
        changes.put("product_viewers", key, key.encode())
    state.commit(1, changes)
    store = state.store()
    assert [k for k, _ in store.scan("product_viewers", "p1|", "p1}")] == ["p1|u1", "p1|u2"]
    assert [k for k, _ in store.scan("product_viewers", "p2")] == ["p2|u1", "p3|u9"]
    assert [k for k, _ in store.scan("product_viewers", limit=1)] == ["p1|u1"]


def test_a_replacement_takes_the_old_stores_place_only_when_it_completes(state: StateResource) -> None:
    old = StateChanges()
    old.put("catalog", "p-old", b"1")
    state.commit(3, old)
    with pytest.raises(RuntimeError), state.replacement() as new:
        new.load("catalog", [("p-new", b"2")])
        raise RuntimeError("interrupted")
    assert state.get_many("catalog", ["p-old", "p-new"]) == {"p-old": b"1"}
    with state.replacement() as new:
        new.load("catalog", [("p-new", b"2")])
        new.set_stamps({"ingest": 1, "triggers": 0})
    assert state.get_many("catalog", ["p-old", "p-new"]) == {"p-new": b"2"}
    assert state.stamps() == {"ingest": 1, "triggers": 0}
    assert [p.name for p in state.path.parent.iterdir()] == ["state"]


def test_a_networked_uri_is_refused_with_a_clear_message() -> None:
    with pytest.raises(StateError, match="only a local folder"):
        StateResource(uri="redis://cache:6379/0").store()


def test_profiles_compare_equal_but_for_the_last_bits_of_their_engagement_sum() -> None:
    base = pl.DataFrame({"principal": ["u1"], "email": ["a@example.com"], "engagement": [364.81830540255595]})
    rows = base.with_columns(
        pl.lit(None, dtype=t).alias(c) for c, t in PARTIAL_SCHEMA.items() if c not in base
    )

    def encoded(frame: pl.DataFrame) -> bytes:
        return encode(frame.lazy(), pl.col("principal"), PARTIAL_SCHEMA).collect()["value"][0].encode()

    grouped_otherwise = rows.with_columns(pl.lit(364.8183054025559).alias("engagement"))
    assert encoded(rows) != encoded(grouped_otherwise)
    assert same_profiles(encoded(rows), encoded(grouped_otherwise))
    assert not same_profiles(encoded(rows), encoded(rows.with_columns(pl.lit(365.0).alias("engagement"))))
    assert not same_profiles(
        encoded(rows), encoded(rows.with_columns(pl.lit("b@example.com").alias("email")))
    )


def test_a_profile_stored_before_its_refunds_list_is_the_same_as_one_with_none() -> None:
    """A store from before the `refunds` list (its values lack the key) checks equal to a rebuilt one,
    whose states have the list empty: every reader takes a missing list as empty."""
    rows = pl.DataFrame({"principal": ["u1"], "email": ["a@example.com"]}).with_columns(
        pl.lit(None, dtype=t).alias(c) for c, t in PARTIAL_SCHEMA.items() if c not in ("principal", "email")
    )
    rebuilt = encode(fill_lists(rows).lazy(), pl.col("principal"), PARTIAL_SCHEMA).collect()["value"][0]
    old = orjson.loads(rebuilt)
    del old["refunds"]
    assert same_profiles(rebuilt.encode(), orjson.dumps(old))
    old["refunds"] = [{"order_id": "o1", "refund_id": "m1", "cancelled": True}]
    assert not same_profiles(rebuilt.encode(), orjson.dumps(old))
