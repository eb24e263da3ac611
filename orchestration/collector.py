"""`lakemail serve collector`: the collector's options, its configuration from the settings, and serving."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from orchestration.arguments import non_negative, non_negative_int, positive_int
from orchestration.settings import (
    Settings,
    api_key,
    ensure_secret,
    esp_webhook_key,
    sendgrid_webhook_public_key,
    server_write_keys,
    write_keys,
)

if TYPE_CHECKING:  # the service's modules load when it is served, not on every `lakemail` command
    from services.collector.app import CollectorConfig
    from services.collector.profiles import ProfileApi

DEFAULT_PORT = 8000
MB = 1024 * 1024


def add_collector_options(serve: argparse.ArgumentParser) -> None:
    """The collector's knobs on `lakemail serve` (the sandbox ignores them)."""
    group = serve.add_argument_group("collector")
    group.add_argument(
        "--commit-ms",
        type=non_negative,
        default=100.0,
        help="one landing file per this many ms at most; requests meanwhile share the next (100)",
    )
    group.add_argument(
        "--max-backlog-mb",
        type=positive_int,
        default=1024,
        help="refuse (503) while more landed MB than this wait to be ingested (1024)",
    )
    group.add_argument(
        "--max-backlog-files",
        type=positive_int,
        default=20_000,
        help="refuse (503) while more landed files than this wait to be ingested (20000)",
    )
    group.add_argument(
        "--min-free-mb",
        type=non_negative_int,
        default=256,
        help="refuse (503) when the disk has less free (256)",
    )
    group.add_argument(
        "--demo-shop", action="store_true", help="serve the demo shop on /shop (the simulator's catalog)"
    )


def collector_config(settings: Settings, args: argparse.Namespace, keys: tuple[str, ...]) -> CollectorConfig:
    """What the collector of these settings and options lands where, with which bounds."""
    from resources.landing import LandingResource
    from services.collector.app import CollectorConfig
    from services.collector.backlog import BacklogLimits, landing_backlog
    from services.unsubscribe import user_for_send, users_for_sends
    from simulator.shop import make_catalog

    limits = BacklogLimits(
        max_files=args.max_backlog_files,
        max_bytes=args.max_backlog_mb * MB,
        min_free_bytes=args.min_free_mb * MB,
    )
    return CollectorConfig(
        landing=LandingResource(uri=settings.landing_uri).root,
        write_keys=keys,  # public: every browser holds one
        server_write_keys=server_write_keys(),  # secret: their messages may suppress shoppers
        probe=landing_backlog(settings.lake_uri, settings.landing_uri),
        limits=limits,
        linger=args.commit_ms / 1000,
        shop_catalog=make_catalog(seed=0) if args.demo_shop else None,  # what `lakemail up`'s simulator sells
        click_secret=ensure_secret(settings.home),  # the runs' LAKEMAIL_SECRET: click and unsubscribe tokens'
        user_for_send=partial(user_for_send, settings.lake_uri),  # whom an unsubscribe link's send went to
        users_for_sends=partial(users_for_sends, settings.lake_uri),  # whom a bounced send went to
        profiles=profile_api(settings, api_key()),
        esp_webhook_key=esp_webhook_key(),  # the providers' webhooks' own secret, never a write key
        sendgrid_public_key=sendgrid_webhook_public_key(),
    )


def profile_api(settings: Settings, key: str | None) -> ProfileApi:
    """The profile API over this home's state store (off, answering 503, when `key` is None)."""
    from resources.lake import LakeResource
    from resources.landing import LandingResource
    from resources.shop import ShopResource
    from resources.state import StateResource
    from services.collector.profile_store import ProfileStore
    from services.collector.profiles import ProfileApi
    from stores.ingest import reflected_as_of
    from stores.sends import read_bestsellers

    lake, shop = LakeResource(uri=settings.lake_uri), ShopResource()  # the shop the send stage uses
    landing = LandingResource(uri=settings.landing_uri)
    return ProfileApi(
        store=ProfileStore(StateResource(uri=settings.state_store_uri), secret=ensure_secret(settings.home)),
        api_key=key,
        shop=shop.shop(),
        staleness=timedelta(hours=shop.staleness_hours),
        bestsellers=lambda now: read_bestsellers(lake, now),
        reflected=lambda reader, now: reflected_as_of(landing, reader, now, timedelta(0)),
    )


def serve_collector(settings: Settings, args: argparse.Namespace) -> int:
    """Serve the collector on 127.0.0.1 until SIGINT / SIGTERM; 2 when no write key is configured."""
    from services.collector.app import create_collector_app
    from services.server import serve_forever

    keys = write_keys()
    if not keys:
        print(
            "lakemail: the collector needs LAKEMAIL_WRITE_KEY (comma-separated write keys)", file=sys.stderr
        )
        return 2
    if api_key() is None:  # a key too short stopped the settings already (check_profile_api_key)
        print("lakemail: the profile API is off (503) until LAKEMAIL_API_KEY is set", file=sys.stderr)
    signed = settings.esp == "sendgrid" and sendgrid_webhook_public_key() is not None
    if settings.esp in ("sendgrid", "postmark") and not signed and esp_webhook_key() is None:
        print(
            f"lakemail: the {settings.esp} webhook /v1/esp/{settings.esp} is off (503) until "
            "LAKEMAIL_ESP_WEBHOOK_KEY is set",
            file=sys.stderr,
        )
    app = create_collector_app(collector_config(settings, args, keys))
    serve_forever(app, "127.0.0.1", DEFAULT_PORT if args.port is None else args.port)
    return 0
