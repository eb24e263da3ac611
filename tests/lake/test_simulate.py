"""The shopper simulator: determinism, realistic sessions, honest dirt, landing files, reference data."""

from __future__ import annotations

import gzip
import re
import threading
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from orchestration.cli import main
from simulator.dirt import MALFORMED_REASONS, Dirt
from simulator.landing import SimulationReport, write_landing_file
from simulator.run import run_simulation
from simulator.segment import SimLine
from simulator.shop import make_catalog
from simulator.shoppers import ShopperSimulator
from transforms.ingest.reference import ReferenceResult, parse_reference
from transforms.ingest.reference_tables import catalog_changes, latest_rows
from transforms.schema import CATALOG_SCHEMA

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MAX_LINE = 32 * 1024
DIRTY = Dirt(duplicate_rate=0.03, malformed_rate=0.03, late_rate=0.05, skew_rate=0.1)
OBJECT_FIELDS = ("properties", "traits", "context")
CATALOG_KEYS = {"product_id", "name", "category", "price", "currency", "stock", "url", "image_url"}
PRODUCT_EVENTS = ("Product Viewed", "Product Added", "Product Removed")
PRODUCT_KEYS = {"product_id", "sku", "category", "name", "brand", "price", "quantity", "url", "image_url"}
TRACK_KEYS = {
    "Products Searched": {"query"},
    "Cart Viewed": {"cart_id", "products"},
    "Checkout Started": {"checkout_id", "order_id", "total", "revenue", "currency", "products"},
    "Order Completed": {"order_id", "checkout_id", "total", "revenue", "currency", "products"},
    **{name: PRODUCT_KEYS for name in PRODUCT_EVENTS},
}
TYPES = ("track", "identify", "page", "screen", "group", "alias")
TYPE_FIELDS = {"track": ("event",), "alias": ("previousId", "userId"), "group": ("groupId",)}
CONTEXT_KEYS = {"library", "locale", "timezone", "userAgent", "ip"}
PAGE_KEYS = {"url", "path", "referrer", "search", "title"}
Step = tuple[datetime, datetime, list[SimLine]]


def run_steps(
    seed: int = 7, dirt: Dirt | None = None, steps: int = 12, n: int = 1500, cart_ids: bool = False
) -> list[Step]:
    """(previous now, now, lines) of `steps` one-minute steps of `n` lines each."""
    sim = ShopperSimulator(users=300, seed=seed, start=START, dirt=dirt, cart_ids=cart_ids)
    out: list[Step] = []
    for i in range(steps):
        previous, now = START + timedelta(minutes=i), START + timedelta(minutes=i + 1)
        out.append((previous, now, sim.step(now, n)))
    return out


def all_lines(steps: list[Step]) -> list[SimLine]:
    return [line for _, _, lines in steps for line in lines]


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def event_time(message: dict[str, Any]) -> datetime:
    """Segment's skew-corrected event time: receivedAt - (sentAt - timestamp) when both are there.

    With `originalTimestamp` Segment corrected it already: `timestamp` is the event time.
    """
    if "originalTimestamp" in message:
        return ts(message["timestamp"])
    if "sentAt" in message and "receivedAt" in message:
        return ts(message["receivedAt"]) - (ts(message["sentAt"]) - ts(message["timestamp"]))
    return ts(message["timestamp"])


def problem(data: bytes, landed: datetime) -> str | None:
    """Why `data` is not one valid message per the product spec (first failing check), or None."""
    if len(data) > MAX_LINE:
        return "line_too_long"
    try:
        message = orjson.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return "invalid_utf8"
    except orjson.JSONDecodeError:
        return "invalid_json"
    if not isinstance(message, dict):
        return "invalid_json"
    required = ("messageId", "type", "timestamp", *TYPE_FIELDS.get(message.get("type", ""), ()))
    identified = message.get("userId") or message.get("anonymousId")
    if not all(message.get(key) for key in required) or not identified:
        return "missing_field"
    if any(not isinstance(message.get(key, {}), dict) for key in OBJECT_FIELDS):
        return "wrong_type"
    if message["type"] not in TYPES:
        return "unknown_type"
    if event_time(message) > landed + timedelta(hours=24):
        return "timestamp_out_of_range"
    return None


def check_ok_message(message: dict[str, Any]) -> None:
    """Asserts the shape the product spec promises for a valid simulated message."""
    assert all(isinstance(message.get(key), str) for key in ("messageId", "type", "anonymousId", "timestamp"))
    times = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
    assert all(ISO_MS.match(message[key]) for key in times if key in message)
    assert ("sentAt" in message) == ("receivedAt" in message)
    context = message["context"]
    assert set(context) >= CONTEXT_KEYS and set(context["library"]) == {"name", "version"}
    web = context["library"]["name"] == "analytics.js"
    assert ("page" in context) == web and (set(context["page"]) == PAGE_KEYS if web else "app" in context)
    if message["type"] in ("identify", "alias"):
        assert message["userId"]
    if message["type"] == "identify":
        assert {"email", "marketing_consent"} <= set(message["traits"])
        assert isinstance(message["traits"]["marketing_consent"], bool)
    elif message["type"] == "page":
        assert web and message["properties"] == context["page"]
    elif message["type"] == "screen":
        assert not web and message["name"] and message["properties"]["path"].startswith("/")
    elif message["type"] == "alias":
        assert message["previousId"] == message["anonymousId"]
    elif message["type"] == "group":
        assert message["groupId"].startswith("g-") and message["traits"]["name"]
    else:
        assert TRACK_KEYS[message["event"]] <= set(message["properties"])


def test_same_seed_and_steps_give_identical_bytes() -> None:
    first, second = all_lines(run_steps(seed=3, dirt=DIRTY)), all_lines(run_steps(seed=3, dirt=DIRTY))
    assert first == second
    assert len({line.kind for line in first}) == 3


def test_different_seeds_differ() -> None:
    first, second = all_lines(run_steps(seed=3, steps=2)), all_lines(run_steps(seed=4, steps=2))
    assert [line.data for line in first] != [line.data for line in second]
    ids = [{line.message_id for line in lines if line.message_id is not None} for lines in (first, second)]
    assert not ids[0] & ids[1]


def test_catalog_is_deterministic_and_complete() -> None:
    catalog = make_catalog(seed=5)
    assert catalog == make_catalog(seed=5) != make_catalog(seed=6)
    assert len(catalog) == 200 and len({row["product_id"] for row in catalog}) == 200
    assert len({row["category"] for row in catalog}) == 8
    assert any(row["stock"] == 0 for row in catalog) and any(row["stock"] > 0 for row in catalog)
    for row in catalog:
        assert set(row) == CATALOG_KEYS
        assert isinstance(row["price"], float) and row["price"] == round(row["price"], 2) and row["price"] > 0
        assert row["url"] == f"https://shop.example/p/{row['product_id']}"
        assert row["image_url"] == f"https://shop.example/img/{row['product_id']}.jpg"


def test_every_malformed_reason_occurs_and_is_bad_that_way() -> None:
    steps = run_steps(dirt=DIRTY)
    seen: Counter[str] = Counter()
    for _, now, lines in steps:
        for line in lines:
            if line.kind == "malformed":
                assert line.reason is not None
                seen[line.reason] += 1
                assert problem(line.data, landed=now) == line.reason, line.data[:300]
    assert set(seen) == set(MALFORMED_REASONS)


def test_malformed_lines_are_otherwise_good() -> None:
    """Each malformed line has exactly the one defect it claims (removing it leaves a valid message)."""
    malformed = [line for line in all_lines(run_steps(dirt=DIRTY)) if line.kind == "malformed"]
    landed = START + timedelta(hours=1)
    for line in malformed:
        if line.reason == "invalid_utf8":
            assert b"\xff\xfe" in line.data and problem(line.data.replace(b"\xff\xfe", b""), landed) is None
        elif line.reason == "line_too_long":
            assert problem(orjson.dumps(_shortened(line.data)), landed) is None
        elif line.reason == "missing_field":
            message = orjson.loads(line.data)
            assert "messageId" not in message or not ({"userId", "anonymousId"} & set(message))
        elif line.reason == "wrong_type":
            assert isinstance(orjson.loads(line.data)["properties"], str | list)
        elif line.reason == "unknown_type":
            assert orjson.loads(line.data)["type"] == "bogus"


def _shortened(data: bytes) -> dict[str, Any]:
    message = orjson.loads(data)
    message["properties"].pop("description")
    return dict(message)


def test_ok_lines_are_valid_messages() -> None:
    steps = run_steps(dirt=DIRTY)
    names: Counter[str] = Counter()
    for _, now, lines in steps:
        for line in lines:
            if line.kind == "ok":
                assert problem(line.data, landed=now) is None, line.data[:300]
                message = orjson.loads(line.data)
                assert message["messageId"] == line.message_id
                check_ok_message(message)
                names[message.get("event", message["type"])] += 1
    assert set(names) == {*TYPES, *TRACK_KEYS} - {"track"}


def test_clean_timestamps_fall_inside_their_step() -> None:
    for previous, now, lines in run_steps(dirt=Dirt.none()):
        assert all(line.kind == "ok" for line in lines)
        for line in lines:
            message = orjson.loads(line.data)
            assert previous <= ts(message["timestamp"]) <= now
            assert ts(message["timestamp"]) <= ts(message.get("receivedAt", message["timestamp"])) <= now


def test_late_and_skewed_events_keep_their_true_time() -> None:
    late = skewed = 0
    for previous, now, lines in run_steps(dirt=DIRTY):
        for line in (line for line in lines if line.kind == "ok"):
            message = orjson.loads(line.data)
            timestamp, true_time = ts(message["timestamp"]), event_time(message)
            assert previous - timedelta(minutes=10) <= true_time <= now
            assert abs(timestamp - true_time) <= timedelta(minutes=5)
            late += true_time < previous
            skewed += message.get("sentAt") != message.get("receivedAt") and timestamp != true_time
    assert late > 0 and skewed > 0


def test_duplicates_repeat_earlier_ok_lines_within_and_across_steps() -> None:
    earlier: dict[bytes, int] = {}  # ok line -> step it was emitted in
    same_step = cross_step = 0
    for index, (_, _, lines) in enumerate(run_steps(dirt=DIRTY)):
        for line in lines:
            if line.kind == "ok":
                assert line.data not in earlier
                earlier[line.data] = index
            elif line.kind == "duplicate":
                assert line.data in earlier
                assert line.message_id == orjson.loads(line.data)["messageId"]
                same_step += earlier[line.data] == index
                cross_step += earlier[line.data] < index
    assert same_step > 0 and cross_step > 0


def test_identify_links_anonymous_id_to_user_id() -> None:
    linked: dict[str, str] = {}
    anonymous_only = with_user = 0
    for line in all_lines(run_steps(dirt=DIRTY)):
        if line.kind != "ok":
            continue
        message = orjson.loads(line.data)
        anonymous_id, user_id = message["anonymousId"], message.get("userId")
        if message["type"] == "identify":
            assert linked.setdefault(anonymous_id, user_id) == user_id
            number = int(user_id.removeprefix("u-"))
            assert message["traits"]["email"] == f"shopper{number}@example.com"
        elif user_id is None:
            anonymous_only += 1
        else:  # an event with a userId comes after the identify that linked its anonymousId
            assert linked.get(anonymous_id) == user_id
            with_user += 1
    assert len(set(linked.values())) == len(linked) > 10
    assert anonymous_only > 0 and with_user > 0


def test_shoppers_view_some_products_repeatedly() -> None:
    views: Counter[tuple[str, str]] = Counter()
    for line in all_lines(run_steps(dirt=Dirt.none(), steps=4)):
        message = orjson.loads(line.data)
        if message.get("event") == "Product Viewed":
            views[message["anonymousId"], message["properties"]["product_id"]] += 1
    repeated = sum(count >= 2 for count in views.values())
    assert 0.05 < repeated / len(views) < 0.9


@pytest.mark.parametrize("cart_ids", [False, True])
def test_orders_match_the_cart_and_the_checkout_they_complete(cart_ids: bool) -> None:
    """The order holds the shopper's cart and the ids of the checkout before it (the cart's if asked)."""
    carts: dict[str, Counter[str]] = defaultdict(Counter)
    open_cart: dict[str, str] = {}  # anonymousId -> its cart
    checkouts: dict[str, dict[str, Any]] = {}  # anonymousId -> properties of its last Checkout Started
    ordered: set[str] = set()
    for line in all_lines(run_steps(dirt=Dirt.none(), steps=20, cart_ids=cart_ids)):
        message = orjson.loads(line.data)
        properties, event, shopper = (
            message.get("properties", {}),
            message.get("event"),
            message["anonymousId"],
        )
        if event in ("Product Added", "Product Removed"):
            assert properties["cart_id"] not in ordered
            open_cart[shopper] = properties["cart_id"]
            sign = 1 if event == "Product Added" else -1
            carts[properties["cart_id"]][properties["product_id"]] += sign * properties["quantity"]
        elif event == "Checkout Started":
            checkouts[shopper] = properties
        elif event == "Order Completed":
            cart_id = open_cart.pop(shopper)
            assert properties.get("cart_id") == (cart_id if cart_ids else None)
            assert {p["product_id"]: p["quantity"] for p in properties["products"]} == dict(+carts[cart_id])
            expected = round(sum(p["price"] * p["quantity"] for p in properties["products"]), 2)
            assert properties["total"] == properties["revenue"] == expected > 0
            checkout = checkouts.pop(shopper)
            assert (checkout["checkout_id"], checkout["order_id"]) == (
                properties["checkout_id"],
                properties["order_id"],
            )
            assert checkout["products"] == properties["products"]
            ordered.add(cart_id)
    assert len(ordered) > 5


@pytest.mark.parametrize(
    ("now", "n"),
    [(START.replace(tzinfo=None), 10), (START - timedelta(seconds=1), 10), (START, -1)],
)
def test_step_rejects_naive_or_backward_time_and_negative_counts(now: datetime, n: int) -> None:
    with pytest.raises(ValueError):
        ShopperSimulator(users=5, start=START).step(now, n)


@pytest.mark.parametrize(
    "rates", [{"duplicate_rate": -0.1}, {"skew_rate": 1.5}, {"late_rate": 0.6, "skew_rate": 0.6}]
)
def test_dirt_rejects_impossible_rates(rates: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Dirt(**rates)


@pytest.mark.parametrize(
    ("seed", "sizes"),
    [(0, [0, 1, 2]), (1, [400]), (2**31, [1, 399, 0, 57]), (99, [250, 250, 250]), (12345, [3, 0, 300])],
)
def test_steps_return_exactly_n_lines_and_honest_labels(seed: int, sizes: list[int]) -> None:
    sim = ShopperSimulator(users=20, seed=seed, start=START, dirt=DIRTY)
    for index, size in enumerate(sizes):
        now = START + timedelta(seconds=index + 1)
        lines = sim.step(now, size)
        assert len(lines) == size
        for line in lines:
            assert problem(line.data, landed=now) == line.reason


def test_write_landing_file_is_atomic_and_newline_terminated(tmp_path: Path) -> None:
    path = write_landing_file(tmp_path / "events", "a.ndjson", [b'{"x":1}', b'{"x":2}'])
    assert path == tmp_path / "events" / "a.ndjson"
    assert path.read_bytes() == b'{"x":1}\n{"x":2}\n'
    assert [p.name for p in path.parent.iterdir()] == ["a.ndjson"]
    with pytest.raises(FileExistsError):
        write_landing_file(path.parent, "a.ndjson", [b"{}"])
    assert path.read_bytes() == b'{"x":1}\n{"x":2}\n'


@pytest.mark.parametrize("name", [".hidden.ndjson", "x.ndjson.tmp", "sub/x.ndjson"])
def test_write_landing_file_refuses_names_the_ingest_would_skip(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        write_landing_file(tmp_path, name, [b"{}"])


def test_gzip_landing_file_is_readable(tmp_path: Path) -> None:
    lines = [line.data for line in all_lines(run_steps(steps=1, n=50))]
    path = write_landing_file(tmp_path, "b.ndjson", lines, gzip=True)
    assert path.name == "b.ndjson.gz"
    assert gzip.decompress(path.read_bytes()).split(b"\n") == [*lines, b""]
    assert [p.name for p in tmp_path.iterdir()] == ["b.ndjson.gz"]


def reconcile(files: list[Path], landed: datetime) -> tuple[Counter[str], Counter[str], set[str]]:
    """Lines by kind and malformed lines by reason as a reader of the files would find them."""
    kinds: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    ok_ids: set[str] = set()
    for path in files:
        for data in path.read_bytes().split(b"\n")[:-1]:
            reason = problem(data, landed)
            if reason is not None:
                kinds["malformed"] += 1
                reasons[reason] += 1
                continue
            message_id = orjson.loads(data)["messageId"]
            kinds["duplicate" if message_id in ok_ids else "ok"] += 1
            ok_ids.add(message_id)
    return kinds, reasons, ok_ids


def test_run_simulation_report_matches_the_files(tmp_path: Path) -> None:
    report = run_simulation(
        tmp_path, users=500, rate=10_000, duration=2, seed=9, realtime=False, start=START, rotate_events=3000
    )
    events = sorted((tmp_path / "events").iterdir())
    assert events == report.files and len(events) == 7  # 20k lines, 3000 a file
    assert all(re.fullmatch(r"sim-9-\d{8}T\d{12}Z-\d{6}\.ndjson", p.name) for p in events)
    assert all(p.read_bytes().endswith(b"\n") and p.read_bytes().count(b"\n") <= 3000 for p in events)
    kinds, reasons, ok_ids = reconcile(events, landed=START + timedelta(seconds=2))
    assert report.total_lines == sum(kinds.values()) == 20_000
    assert report.lines == dict(kinds) and report.malformed == dict(reasons)
    assert report.distinct_ok_ids == len(ok_ids) == kinds["ok"]
    assert not report.interrupted
    first_catalog = report.reference_files[0]
    assert first_catalog == tmp_path / "catalog" / events[0].name
    rows = [orjson.loads(row) for row in first_catalog.read_bytes().split(b"\n")[:-1]]
    assert rows == [{**row, "updated_at": "2026-11-22T10:00:00.000Z"} for row in make_catalog(9)]
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_run_simulation_content_depends_only_on_the_seed(tmp_path: Path) -> None:
    contents = []
    for run in ("one", "two"):
        report = run_simulation(tmp_path / run, users=50, rate=500, duration=4, realtime=False, start=START)
        contents.append(b"".join(path.read_bytes() for path in report.files))
    assert contents[0] == contents[1] and contents[0].count(b"\n") == 2000


def test_stop_ends_the_run_after_the_current_file(tmp_path: Path) -> None:
    stop = threading.Event()

    def landed(path: Path, lines: int) -> None:
        stop.set()

    report = run_simulation(
        tmp_path, users=50, rate=1000, duration=10, realtime=False, start=START, stop=stop, on_file=landed
    )
    assert len(report.files) == 1 and report.total_lines == 1000 and report.interrupted


def test_realtime_run_lands_every_line_with_wall_clock_times(tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    report = run_simulation(
        tmp_path, users=20, rate=400, duration=0.25, rotate_events=30, dirt=Dirt.none(), realtime=True
    )
    after = datetime.now(UTC)
    assert report.total_lines == report.lines["ok"] == 100 and len(report.files) >= 4
    for path in report.files:
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b"" and 0 < len(lines) - 1 <= 30
        assert all(before <= ts(orjson.loads(line)["timestamp"]) <= after for line in lines[:-1])


def test_ctrl_c_in_realtime_finishes_the_current_file_once(tmp_path: Path) -> None:
    def interrupt(path: Path, lines: int) -> None:
        raise KeyboardInterrupt

    report = run_simulation(tmp_path, users=20, rate=2000, duration=5, rotate_events=50, on_file=interrupt)
    assert report.interrupted and 50 <= report.total_lines < 10_000
    landed = [line for path in report.files for line in path.read_bytes().split(b"\n")[:-1]]
    assert (
        len(landed) == report.total_lines
        and len(set(landed)) == report.lines["ok"] + report.lines["malformed"]
    )
    assert sorted(p.name for p in (tmp_path / "events").iterdir()) == [p.name for p in report.files]


def test_realtime_run_refuses_a_simulated_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        run_simulation(tmp_path, users=5, rate=10, duration=1, start=START)


SIM_MINUTES = 40


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> SimulationReport:
    """A clean 40-minute simulation, one event file a simulated minute."""
    landing = tmp_path_factory.mktemp("reference")
    return run_simulation(
        landing,
        users=300,
        rate=5,
        duration=SIM_MINUTES * 60,
        seed=11,
        rotate_seconds=60,
        realtime=False,
        start=START,
        dirt=Dirt.none(),
    )


def parse_landed(path: Path) -> ReferenceResult:
    kind, landed = path.parent.name, START + timedelta(minutes=SIM_MINUTES)
    return parse_reference(
        kind,
        path.read_bytes(),
        source_file=f"{kind}/{path.name}",
        landed_at=landed,
        ingested_at=landed,
        batch_id=1,
    )


def landed_in(report: SimulationReport, folder: str) -> list[Path]:
    return [path for path in report.reference_files if path.parent.name == folder]


def test_a_simulation_lands_customers_and_catalog_files_that_parse_cleanly(
    reference_run: SimulationReport,
) -> None:
    customers, catalog = landed_in(reference_run, "customers"), landed_in(reference_run, "catalog")
    assert len(customers) == SIM_MINUTES // 10 and len(catalog) == SIM_MINUTES // 5
    for files in (customers, catalog):
        assert {path.suffix for path in files} == {".ndjson", ".csv"}
        assert all(re.fullmatch(r"sim-11-\d{8}T\d{12}Z-\d{6}\.(ndjson|csv)", path.name) for path in files)
    for folder, files in (("customers", customers), ("catalog", catalog)):
        results = [parse_landed(path) for path in files]
        assert all(result.quarantine.height == 0 for result in results)
        assert sum(result.rows.height for result in results) == reference_run.reference_rows[folder] > 0
        for minute, result in zip(
            range(0, SIM_MINUTES, 10 if folder == "customers" else 5), results, strict=True
        ):
            assert set(result.rows["updated_at"]) == {START + timedelta(minutes=minute)}
    assert catalog[0].read_bytes().count(b"\n") == 200 and (catalog[1].read_bytes().count(b"\r\n")) > 1


def test_catalog_updates_bring_products_back_in_stock_and_drop_prices(
    reference_run: SimulationReport,
) -> None:
    table = pl.DataFrame(schema=CATALOG_SCHEMA)
    changes: Counter[str] = Counter()
    sold_out = rises = 0
    for path in landed_in(reference_run, "catalog"):
        after = latest_rows(table, parse_landed(path).rows, "product_id")
        changes.update(catalog_changes(table, after)["change"].to_list())
        both = after.join(table, on="product_id", suffix="_before")
        sold_out += both.filter((pl.col("stock") == 0) & (pl.col("stock_before") > 0)).height
        rises += both.filter(pl.col("price") > pl.col("price_before")).height
        table = after
    assert table.height == 200
    assert changes["back_in_stock"] >= SIM_MINUTES // 5 - 1 and changes["price_drop"] >= SIM_MINUTES // 5 - 1
    assert sold_out > 0 and rises > 0


def catalog_as_of(report: SimulationReport) -> list[tuple[datetime, dict[str, tuple[float, int]]]]:
    """(updated_at, product_id -> (price, stock)) after each landed catalog file."""
    state: dict[str, tuple[float, int]] = {}
    timeline = []
    for path in landed_in(report, "catalog"):
        rows = parse_landed(path).rows
        state = state | {
            pid: (price, stock) for pid, price, stock in rows.select("product_id", "price", "stock").rows()
        }
        timeline.append((rows["updated_at"][0], state))
    return timeline


def test_shoppers_see_the_catalog_as_it_was_when_they_acted(reference_run: SimulationReport) -> None:
    timeline = catalog_as_of(reference_run)
    checked: Counter[str] = Counter()
    for path in reference_run.files:
        for data in path.read_bytes().split(b"\n")[:-1]:
            message = orjson.loads(data)
            if message.get("event") not in ("Product Viewed", "Product Added"):
                continue
            at = ts(message["timestamp"])
            state = next(state for since, state in reversed(timeline) if since <= at)
            price, stock = state[message["properties"]["product_id"]]
            assert message["properties"]["price"] == price
            assert message["event"] == "Product Viewed" or stock > 0
            checked[message["event"]] += 1
    assert checked["Product Viewed"] > 1000 and checked["Product Added"] > 100


def identifies(report: SimulationReport) -> dict[str, tuple[datetime, dict[str, Any]]]:
    """user_id -> (time of the first identify, its traits)."""
    found: dict[str, tuple[datetime, dict[str, Any]]] = {}
    for path in report.files:
        for data in path.read_bytes().split(b"\n")[:-1]:
            message = orjson.loads(data)
            if message["type"] == "identify" and message["userId"] not in found:
                found[message["userId"]] = (ts(message["timestamp"]), message["traits"])
    return found


def test_crm_rows_match_the_shoppers_identify_traits(reference_run: SimulationReport) -> None:
    traits = {user_id: found for user_id, (_, found) in identifies(reference_run).items()}
    results = [parse_landed(path).rows for path in landed_in(reference_run, "customers")]
    rows = pl.concat(results)
    assert results[0].height == 90  # members: 3 of every 10 of the 300 shoppers, known before any event
    assert set(rows["loyalty_tier"]) == {"bronze", "silver", "gold"}
    assert 0.03 < rows["first_name"].null_count() / rows.height < 0.2
    assert 0 < rows.filter(pl.col("marketing_consent")).height < rows.height
    identified = [row for row in rows.iter_rows(named=True) if row["user_id"] in traits]
    assert len(identified) > 30
    for row in identified:
        expected = traits[row["user_id"]]
        assert row["email"] == expected["email"] and row["first_name"] == expected.get("first_name")
        assert (row["locale"], row["timezone"]) == (expected["locale"], expected["timezone"])
        assert row["marketing_consent"] == expected["marketing_consent"]
    listed = rows.group_by("user_id").agg(pl.col("loyalty_tier").n_unique().alias("tiers"), pl.len())
    assert listed.filter(pl.col("tiers") != pl.col("len")).height == 0  # listed again only on a new tier
    assert listed.filter(pl.col("len") > 1).height > 0


def test_sign_ups_reach_the_crm_within_one_export_interval(reference_run: SimulationReport) -> None:
    rows = pl.concat([parse_landed(path).rows for path in landed_in(reference_run, "customers")])
    first_listed = dict(rows.group_by("user_id").agg(pl.col("updated_at").min()).iter_rows())
    members = set(rows.filter(pl.col("updated_at") == START)["user_id"])
    last_export = START + timedelta(minutes=SIM_MINUTES - 10)
    sign_ups = {user: at for user, (at, _) in identifies(reference_run).items() if user not in members}
    assert len(sign_ups) > 10
    for user, signed_up_at in sign_ups.items():
        if signed_up_at < last_export - timedelta(minutes=1):
            assert timedelta(0) <= first_listed[user] - signed_up_at <= timedelta(minutes=11)
        else:
            assert user not in first_listed or first_listed[user] >= signed_up_at


def test_reference_files_depend_only_on_the_seed(tmp_path: Path) -> None:
    contents = []
    for run, seed in (("one", 4), ("two", 4), ("three", 5)):
        report = run_simulation(
            tmp_path / run,
            users=100,
            rate=2,
            duration=1200,
            seed=seed,
            rotate_seconds=60,
            realtime=False,
            start=START,
        )
        contents.append(
            [(path.parent.name, path.suffix, path.read_bytes()) for path in report.reference_files]
        )
    assert contents[0] == contents[1] != contents[2]
    assert len(contents[0]) == 20 // 5 + 20 // 10


@pytest.mark.parametrize("flag", [[], ["--cart-ids"]])
def test_simulate_command_puts_cart_ids_on_orders_only_with_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str]
) -> None:
    """`lakemail simulate` in-process (a subprocess would run the installed checkout, not this one)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKEMAIL_HOME", str(tmp_path))
    args = ["simulate", "--users", "20", "--rate", "1000", "--duration", "4", "--seed", "3", "--fast", *flag]
    assert main(args) == 0
    found = [
        orjson.loads(line)["properties"]
        for path in sorted((tmp_path / "landing" / "events").glob("*.ndjson"))
        for line in path.read_bytes().splitlines()
        if b'"Order Completed"' in line or b'"Checkout Started"' in line
    ]
    assert len(found) > 5
    assert all(("cart_id" in properties) == bool(flag) for properties in found)


def test_simulate_command_repeats_its_events_for_the_same_arguments_unless_it_carries_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Benchmarks and tests rely on `--seed`; only `--carry-on` (what `lakemail up` adds) sends new events."""

    def run(home: str, *flag: str) -> tuple[list[bytes], set[bytes]]:
        """(message ids, user ids) that `lakemail simulate` landed in a home of its own."""
        (tmp_path / home).mkdir()
        monkeypatch.chdir(tmp_path / home)
        monkeypatch.setenv("LAKEMAIL_HOME", str(tmp_path / home))
        args = ["simulate", "--users", "20", "--rate", "1000", "--duration", "2", "--seed", "3", "--fast"]
        assert main([*args, *flag]) == 0
        data = b"".join(p.read_bytes() for p in sorted((tmp_path / home / "landing" / "events").iterdir()))
        return re.findall(rb'"messageId":"([^"]+)"', data), set(re.findall(rb'"userId":"([^"]+)"', data))

    (first, users), (again, _), (carried, carried_users) = run("one"), run("two"), run("three", "--carry-on")
    assert len(first) > 1900 and first == again
    assert not set(first) & set(carried) and users & carried_users
