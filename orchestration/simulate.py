"""`lakemail simulate`: realistic shoppers into the landing zone (or through the collector), and with
`--inbox` shoppers who read the emails the sandbox delivered and respond to them (#19)."""

from __future__ import annotations

import argparse
import sys

from orchestration.arguments import non_negative, positive, positive_int
from orchestration.settings import Settings


def add_simulate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = commands.add_parser("simulate", help="write realistic shopper events into the landing zone")
    sim.add_argument("--users", type=positive_int, required=True)
    sim.add_argument("--rate", type=positive, required=True, help="events per second")
    sim.add_argument("--duration", type=non_negative, required=True, help="seconds")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--fast", action="store_true", help="no pacing: simulated clock, as fast as possible")
    sim.add_argument(
        "--cart-ids",
        action="store_true",
        help="put cart_id on checkouts and orders too, as some shops do (Segment's spec does not)",
    )
    sim.add_argument(
        "--via-collector",
        metavar="URL",
        help="post the events to the collector at URL (key: LAKEMAIL_WRITE_KEY) instead of landing files",
    )
    sim.add_argument(
        "--inbox",
        metavar="URL",
        help="the shoppers read the emails delivered to the sandbox at URL (key: LAKEMAIL_ESP_API_KEY) "
        "and respond: open, click through the click redirect, buy (real time only)",
    )
    sim.add_argument(
        "--carry-on",
        action="store_true",
        help="new events each run (message ids, carts, orders) from the --seed's same shoppers and catalog, "
        "so a restarted demo carries on instead of repeating the last run's (what lakemail up adds)",
    )


def _url_problem(url: str) -> str | None:
    """What is wrong with `url` as the collector's address (None: an http(s) URL with a host)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number or out of range: ValueError
    except ValueError as error:
        return f"--via-collector {url!r} is not a URL ({error})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"--via-collector {url!r} is not an http(s) URL with a host (e.g. http://localhost:8090)"
    return None


def _keys(args: argparse.Namespace) -> tuple[tuple[str, str] | None, tuple[str, str] | None] | str:
    """(collector, inbox) as (URL, key) pairs, or what is wrong with the options."""
    from orchestration.settings import esp_api_key, write_keys
    from resources.providers import SANDBOX_API_KEY

    if args.fast and (args.via_collector or args.inbox):
        return "--via-collector and --inbox run in real time (not with --fast)"
    collector = inbox = None
    if args.via_collector:
        if not write_keys():
            return "--via-collector needs LAKEMAIL_WRITE_KEY set"
        if (problem := _url_problem(args.via_collector)) is not None:
            return problem
        collector = (args.via_collector, write_keys()[0])
    if args.inbox:
        inbox = (args.inbox, esp_api_key() or SANDBOX_API_KEY)
    return collector, inbox


def simulate_command(settings: Settings, args: argparse.Namespace) -> int:
    import secrets

    from resources.landing import LandingResource
    from simulator.collector import CollectorUnavailable
    from simulator.run import run_simulation

    keys = _keys(args)
    if isinstance(keys, str):
        print(f"lakemail: {keys}", file=sys.stderr)
        return 2
    collector, inbox = keys
    try:
        report = run_simulation(
            LandingResource(uri=settings.landing_uri).root,
            users=args.users,
            rate=args.rate,
            duration=args.duration,
            seed=args.seed,
            realtime=not args.fast,
            cart_ids=args.cart_ids,
            collector=collector,
            inbox=inbox,
            # A run of its own: repeating an earlier run's message ids, the ingest would drop them all.
            stream=secrets.token_hex(8) if args.carry_on else None,
        )
    except CollectorUnavailable as error:
        print(f"lakemail simulate: {error} at {args.via_collector}", file=sys.stderr)
        return 2
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.lines.items()))
    if collector is not None:
        sent = report.posted
        print(f"posted {sent['messages']} messages in {sent['batches']} batches, {sent['refused']} refused")
        print(f"generated {report.total_lines} lines ({kinds})")
        if sent["refused"]:
            print(f"lakemail simulate: the collector refused {sent['refused']} messages", file=sys.stderr)
            return 1
    else:
        print(f"landed {len(report.files)} files, {report.total_lines} lines ({kinds})")
    return 0
