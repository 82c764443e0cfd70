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


def test_no_proxy_is_trusted_and_the_pool_is_small_by_default():
    s = load_settings({"SECRET_KEY": GOOD_KEY})
    assert s.trusted_proxies == () and s.database_pool_size == 5


def test_trusted_proxies_and_pool_size_are_read_and_checked():
    s = load_settings(
        {
            "SECRET_KEY": GOOD_KEY,
            "TRUSTED_PROXIES": " 10.0.0.5, 10.1.0.0/16 ,,2001:db8::/32",
            "DATABASE_POOL_SIZE": "12",
        }
    )
    assert s.trusted_proxies == ("10.0.0.5", "10.1.0.0/16", "2001:db8::/32")
    assert s.database_pool_size == 12
    with pytest.raises(SettingsError) as err:
        load_settings(
            {
                "SECRET_KEY": GOOD_KEY,
                "TRUSTED_PROXIES": "10.0.0.5,proxy.internal,10.0.0.0/33",
                "DATABASE_POOL_SIZE": "0",
            }
        )
    assert err.value.problems == [
        "TRUSTED_PROXIES: 'proxy.internal' is not an IP address or CIDR block "
        "(comma-separated, e.g. 10.0.0.5,10.1.0.0/16)",
        "TRUSTED_PROXIES: '10.0.0.0/33' is not an IP address or CIDR block "
        "(comma-separated, e.g. 10.0.0.5,10.1.0.0/16)",
        "DATABASE_POOL_SIZE: 0 is outside 1..100",
    ]
    with pytest.raises(SettingsError) as err:
        load_settings({"SECRET_KEY": GOOD_KEY, "DATABASE_POOL_SIZE": "ten"})
    assert err.value.problems == ["DATABASE_POOL_SIZE: 'ten' is not a whole number"]
