"""Settings: every bad value named at once; a missing SECRET_KEY stops the start."""

import pytest

from receivables.settings import SettingsError, load_settings

GOOD_KEY = "k" * 40


def test_defaults_are_sqlite_in_working_directory():
    s = load_settings({"SECRET_KEY": GOOD_KEY})
    assert s.engine_name == "sqlite" and s.database_url == "sqlite:///relance.sqlite3"
    assert not s.stripe_enabled


def test_missing_secret_key_stops_with_a_message():
    with pytest.raises(SettingsError) as err:
        load_settings({})
    assert any(p.startswith("SECRET_KEY: missing") for p in err.value.problems)
    # The demo (and commands that sign nothing) may do without it.
    assert load_settings({}, require_secret=False).secret_key == ""


def test_every_bad_value_is_reported_once():
    with pytest.raises(SettingsError) as err:
        load_settings(
            {
                "SECRET_KEY": "short",
                "DATABASE_URL": "mysql://x",
                "BASE_URL": "ftp://x",
                "SMTP_PORT": "abc",
                "SMTP_TLS": "maybe",
                "STRIPE_SECRET_KEY": "sk_test_1",
                "PORTAL_LINK_DAYS": "0",
            }
        )
    names = [p.split(":")[0] for p in err.value.problems]
    assert names == [
        "DATABASE_URL",
        "SECRET_KEY",
        "BASE_URL",
        "SMTP_PORT",
        "SMTP_TLS",
        "STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "PORTAL_LINK_DAYS",
    ]


def test_postgres_url_and_hosts():
    s = load_settings(
        {
            "SECRET_KEY": GOOD_KEY,
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/relance",
            "BASE_URL": "https://pay.example.com/",
        }
    )
    assert s.engine_name == "postgres" and s.https
    assert s.base_url == "https://pay.example.com"
    assert s.allowed_hosts == ["pay.example.com"]
