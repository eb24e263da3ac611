"""The holdout and the treated arms are assigned at the same moment (found by a review): quiet hours used
to defer a treated shopper to 08:00 while a holdout shopper was assigned `holdout` at once, at night.
A night-time order then exited the treated cart before it joined the experiment, while the holdout
shopper was assigned and counted as converted: the holdout's conversion rate was inflated, and the
uplift biased down. Now quiet hours come first for both arms."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from tests.story import Shop, at, message
from transforms.measure.experiments import assignments
from transforms.operations.send_checks import sends_terminal_within_budget
from transforms.sends.rows import Attempt, after_attempt, outbox_rows
from transforms.triggers.policies import Policy, unit_hash

HELD = next(f"h{i}" for i in range(1000) if unit_hash(f"holdout:h{i}") < 0.05)
TREATED = next(f"t{i}" for i in range(1000) if unit_hash(f"holdout:t{i}") >= 0.05)


def night_cart(order_at: float | None, morning: float = 20 * 60 + 1) -> Shop:
    """Both shoppers leave a cart at 20:30 UTC (due 21:30, in quiet hours); each orders at `order_at`;
    the engine runs again at `morning` (default 08:01 the next day)."""
    shop = Shop(policy=Policy(holdout_rate=0.05))
    for user in (HELD, TREATED):
        identify = message("identify", at(-3 * 24 * 60), user=user, email=f"{user}@x.example", timezone="UTC")
        shop.land({**identify, "traits": {**identify["traits"], "marketing_consent": True}})
    shop.run(at(-3 * 24 * 60))
    for user in (HELD, TREATED):
        shop.land(
            message("Product Added", at(510), user=user, cart_id=f"c-{user}", product_id="p1", price=40.0)
        )
    shop.run(at(520))
    shop.run(at(570))  # due at 21:30: in quiet hours
    if order_at is not None:
        for user in (HELD, TREATED):
            shop.land(
                message("Order Completed", at(order_at), user=user, order_id=f"o-{user}", cart_id=f"c-{user}")
            )
        shop.run(at(order_at + 10))
    shop.run(at(morning))
    return shop


def decisions(shop: Shop, user: str) -> list[str]:
    log = shop.log.filter((pl.col("kind") == "abandoned_cart") & (pl.col("user_id") == user))
    return log.sort("decided_at")["decision"].to_list()


def test_a_holdout_shopper_waits_out_quiet_hours_like_a_treated_one_and_both_exit_on_a_night_order() -> None:
    shop = night_cart(order_at=660)  # 23:00
    assert decisions(shop, HELD) == decisions(shop, TREATED) == ["held", "quiet_hours_deferred", "exited"]
    assert assignments(shop.log).filter(pl.col("kind") == "abandoned_cart").height == 0


def test_without_an_order_both_arms_are_assigned_at_eight() -> None:
    shop = night_cart(order_at=None)
    assert decisions(shop, HELD)[-1] == "holdout" and decisions(shop, TREATED)[-1] == "send"
    assigned = assignments(shop.log).filter(pl.col("kind") == "abandoned_cart").sort("user_id")
    arms = dict(zip(assigned["user_id"], assigned["arm"], strict=True))
    assert arms[HELD] == "holdout" and arms[TREATED] in ("a", "b")
    assert assigned["exposed_at"].n_unique() == 1  # the same moment: 08:01


def test_an_email_sent_as_quiet_hours_end_counts_its_latency_and_budget_from_their_end() -> None:
    """Found by review: the `send` after a night's deferral was due at the night's due time (21:30), so
    its outbox row's latency (lakemail_landed_to_sent_seconds, the hourly send-latency SLO) counted the
    10.5 h the policy held it as time the system added, and the send budget check flagged it sent late:
    every email deferred to 08:00, every morning (quiet hours are on by default). It is due at 08:00."""
    morning = at(20 * 60 + 5 / 60)  # 08:00:05, 5 s after quiet hours end
    shop = night_cart(order_at=None, morning=20 * 60 + 5 / 60)
    log = shop.log.filter(pl.col("kind") == "abandoned_cart").sort("decided_at")
    assert log.filter(pl.col("user_id") == TREATED)["decision"].to_list()[-1] == "send"
    resumed = log.filter(pl.col("decision").is_in(["send", "holdout"]))
    assert resumed["due_at"].to_list() == [at(20 * 60)] * 2  # both arms: due when the night ended
    assert shop.events is not None
    landed = shop.events.select(pl.col("user_id").alias("principal"), "event_ts", "landed_at")
    (row,) = outbox_rows(resumed, landed, provider="sandbox", now=morning).to_dicts()
    answer = Attempt(status="sent", attempts=1, provider_message_id="m", answered_at=morning)
    sent = after_attempt(row, answer, now=morning)
    assert sent["latency_ms"] == 5_000
    judged = sends_terminal_within_budget(
        log, pl.DataFrame([sent]), now=morning + timedelta(hours=1), budget=timedelta(minutes=15)
    )
    assert judged.passed and judged.figures["sent_late"] == 0
