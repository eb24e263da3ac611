"""The providers' webhooks' own credentials at start-up (found by review: the webhooks took the public write
key): LAKEMAIL_ESP_WEBHOOK_KEY and LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY are settings, and a value the
collector cannot take stops start-up naming the variable, never showing the value."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from orchestration.settings import Settings, SettingsError, known_variables
from services.collector.app import CollectorConfig, create_collector_app

KEY = "esp-webhook-key-0123456789"
KEY_VARIABLE, PUBLIC_VARIABLE = "LAKEMAIL_ESP_WEBHOOK_KEY", "LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY"


def der_text(public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) -> str:
    return base64.b64encode(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()


P256 = der_text(ec.generate_private_key(ec.SECP256R1()).public_key())


def test_the_webhook_credentials_are_settings() -> None:
    assert {KEY_VARIABLE, PUBLIC_VARIABLE} <= known_variables()
    env = {KEY_VARIABLE: KEY, PUBLIC_VARIABLE: P256, "LAKEMAIL_WRITE_KEY": "wk"}
    assert Settings.from_env(env, dotenv=None).esp == "sandbox"
    wrapped = P256[:40] + "\n" + P256[40:]  # a key pasted over two lines
    Settings.from_env({KEY_VARIABLE: "A" * 16, PUBLIC_VARIABLE: wrapped}, dotenv=None)
    Settings.from_env({KEY_VARIABLE: "", PUBLIC_VARIABLE: ""}, dotenv=None)  # empty: unset


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({KEY_VARIABLE: "short-key"}, f"{KEY_VARIABLE} must be at least 16 characters"),
        ({KEY_VARIABLE: "with a space in it now"}, f"{KEY_VARIABLE} must be at least 16 characters"),
        ({KEY_VARIABLE: "user:password-0123456"}, f"{KEY_VARIABLE} must be at least 16 characters"),
        ({KEY_VARIABLE: KEY + "\n"}, f"{KEY_VARIABLE} must be at least 16 characters"),
        ({KEY_VARIABLE: KEY, "LAKEMAIL_WRITE_KEY": f"wk, {KEY}"}, f"{KEY_VARIABLE} must not be a write key"),
        ({PUBLIC_VARIABLE: "not base64 at all!"}, f"{PUBLIC_VARIABLE} must be the base64 DER P-256"),
        ({PUBLIC_VARIABLE: base64.b64encode(b"x" * 91).decode()}, f"{PUBLIC_VARIABLE} must be the base64"),
        (
            {PUBLIC_VARIABLE: der_text(ec.generate_private_key(ec.SECP384R1()).public_key())},
            f"{PUBLIC_VARIABLE} must be the base64 DER P-256",
        ),
        (
            {PUBLIC_VARIABLE: der_text(ed25519.Ed25519PrivateKey.generate().public_key())},
            f"{PUBLIC_VARIABLE} must be the base64 DER P-256",
        ),
    ],
)
def test_a_webhook_credential_the_collector_cannot_take_stops_start_up(
    env: dict[str, str], says: str
) -> None:
    with pytest.raises(SettingsError, match=says) as raised:
        Settings.from_env(env, dotenv=None)
    for value in env.values():
        assert value.strip() not in str(raised.value)


def test_the_collector_refuses_a_write_key_as_the_webhook_key(tmp_path: Path) -> None:
    config = CollectorConfig(landing=tmp_path, write_keys=("wk", KEY), esp_webhook_key=KEY)
    with pytest.raises(ValueError, match=f"{KEY_VARIABLE} must not be a write key"):
        create_collector_app(config)
