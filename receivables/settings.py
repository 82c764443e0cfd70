"""Settings read from the environment, validated once with one message per bad value."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_SQLITE_FILE = "relance.sqlite3"


class SettingsError(Exception):
    """Raised with every bad value at once, so the operator fixes them in one go."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default=f"sqlite:///{DEFAULT_SQLITE_FILE}")
    """`sqlite:///relative/path.sqlite3`, `sqlite:////abs/path` or `postgres://user@host:port/db`."""
    secret_key: str = ""
    """Signs portal links and staff sessions; at least 32 characters. Required outside the demo."""
    base_url: str = "http://127.0.0.1:8000"
    """Public address of this installation; links in emails start with it; its host is allowed."""
    smtp_host: str = "127.0.0.1"
    """SMTP server the worker hands mail to."""
    smtp_port: int = 25
    """Its port."""
    smtp_username: str = ""
    """Login, when the server wants one."""
    smtp_password: str = ""
    """Password for that login."""
    smtp_tls: str = "none"
    """`none`, `starttls` or `tls` (implicit TLS)."""
    smtp_from: str = "relance@localhost"
    """Envelope sender when a company has no address of its own."""
    stripe_secret_key: str = ""
    """`sk_...`; empty hides online payment and leaves bank transfer."""
    stripe_publishable_key: str = ""
    """`pk_...`, given to the browser."""
    stripe_webhook_secret: str = ""
    """`whsec_...`, verifies `/webhooks/stripe`."""
    stripe_api_base: str = ""
    """Points the Stripe SDK at another API (localstripe in tests and the demo)."""
    portal_link_days: int = 60
    """How long a portal link stays valid."""
    documents_dir: str = ""
    """Folder of stored documents: invoice PDFs sent by the ERP, proofs customers upload,
    generated PDFs kept as a cache. Empty: `documents/` beside the SQLite file (or in the
    working directory on Postgres). PDF rendering may read files here and under static/ only."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or CIDR blocks of our own reverse proxies (`10.0.0.5,10.1.0.0/16`). Only a
    request whose peer is one of them has its X-Forwarded-For believed, taking the right-most
    address that is not a trusted proxy as the client's. Empty: none, loopback included."""
    database_pool_size: int = 5
    """Postgres connections each process may open (web worker, background worker, command).
    Processes times this must stay under the server's `max_connections`."""

    @property
    def engine_name(self) -> str:
        return (
            "postgres"
            if self.database_url.startswith(("postgres://", "postgresql://"))
            else "sqlite"
        )

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def documents_path(self) -> Path:
        """The documents folder, absolute (see `documents_dir`)."""
        if self.documents_dir:
            return Path(self.documents_dir).expanduser().resolve()
        if self.engine_name == "sqlite":
            return (self.sqlite_path.parent / "documents").resolve()
        return Path("documents").resolve()

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def allowed_hosts(self) -> list[str]:
        """Host headers accepted: BASE_URL's host, with and without its port."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or "127.0.0.1"
        hosts = {host, parts.netloc}
        if host in ("127.0.0.1", "localhost"):
            hosts |= {"127.0.0.1", "localhost"}
            if parts.port:
                hosts |= {f"127.0.0.1:{parts.port}", f"localhost:{parts.port}"}
        return sorted(hosts)

    @property
    def stripe_enabled(self) -> bool:
        return bool(self.stripe_secret_key and self.stripe_publishable_key)


def _int(
    env: dict[str, str], name: str, default: int, low: int, high: int, problems: list[str]
) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name}: '{raw}' is not a whole number")
        return default
    if not low <= value <= high:
        problems.append(f"{name}: {value} is outside {low}..{high}")
    return value


def load_settings(env: dict[str, str] | None = None, *, require_secret: bool = True) -> Settings:
    """Read and check every setting; raise SettingsError listing all bad values."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []

    database_url = env.get("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_FILE}"
    if database_url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(database_url)
        if not parts.hostname or not parts.path.strip("/"):
            problems.append(
                "DATABASE_URL: a Postgres URL needs a host and a database name, "
                "e.g. postgres://postgres@127.0.0.1:5432/relance"
            )
    elif not database_url.startswith("sqlite:///") or database_url == "sqlite:///":
        problems.append(
            "DATABASE_URL: use sqlite:///FILE or postgres://USER@HOST:PORT/DB "
            f"(got '{database_url.split(':', 1)[0]}:...')"
        )

    secret_key = env.get("SECRET_KEY", "")
    if not secret_key and require_secret:
        problems.append(
            "SECRET_KEY: missing; set it to a random string of at least 32 characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    elif secret_key and len(secret_key) < 32:
        problems.append(f"SECRET_KEY: too short ({len(secret_key)} characters, at least 32)")

    base_url = (env.get("BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(
            f"BASE_URL: '{base_url}' is not an http(s) address like https://pay.example.com"
        )

    smtp_port = _int(env, "SMTP_PORT", 25, 1, 65535, problems)
    smtp_tls = (env.get("SMTP_TLS") or "none").lower()
    if smtp_tls not in ("none", "starttls", "tls"):
        problems.append(f"SMTP_TLS: '{smtp_tls}' is not one of none, starttls, tls")

    stripe_secret = env.get("STRIPE_SECRET_KEY", "")
    if stripe_secret and not stripe_secret.startswith(("sk_", "rk_")):
        problems.append("STRIPE_SECRET_KEY: should start with sk_ (or rk_ for a restricted key)")
    stripe_public = env.get("STRIPE_PUBLISHABLE_KEY", "")
    if stripe_public and not stripe_public.startswith("pk_"):
        problems.append("STRIPE_PUBLISHABLE_KEY: should start with pk_")
    if bool(stripe_secret) != bool(stripe_public):
        problems.append("STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY: set both or neither")
    webhook_secret = env.get("STRIPE_WEBHOOK_SECRET", "")
    if stripe_secret and not webhook_secret:
        problems.append("STRIPE_WEBHOOK_SECRET: required when Stripe keys are set (whsec_...)")
    api_base = env.get("STRIPE_API_BASE", "").rstrip("/")
    if api_base and not api_base.startswith(("http://", "https://")):
        problems.append(f"STRIPE_API_BASE: '{api_base}' is not an http(s) address")

    portal_days = _int(env, "PORTAL_LINK_DAYS", 60, 1, 366, problems)
    documents_dir = (env.get("DOCUMENTS_DIR") or "").strip()
    if documents_dir and Path(documents_dir).expanduser().exists():
        if not Path(documents_dir).expanduser().is_dir():
            problems.append(f"DOCUMENTS_DIR: '{documents_dir}' exists and is not a folder")
    log_level = (env.get("LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(f"LOG_LEVEL: '{log_level}' is not one of DEBUG, INFO, WARNING, ERROR")
    trusted_proxies = tuple(
        entry.strip() for entry in (env.get("TRUSTED_PROXIES") or "").split(",") if entry.strip()
    )
    for entry in trusted_proxies:
        try:
            ip_network(entry, strict=False)
        except ValueError:
            problems.append(
                f"TRUSTED_PROXIES: '{entry}' is not an IP address or CIDR block "
                "(comma-separated, e.g. 10.0.0.5,10.1.0.0/16)"
            )
    pool_size = _int(env, "DATABASE_POOL_SIZE", 5, 1, 100, problems)

    if problems:
        raise SettingsError(problems)
    return Settings(
        database_url=database_url,
        secret_key=secret_key,
        base_url=base_url,
        smtp_host=env.get("SMTP_HOST") or "127.0.0.1",
        smtp_port=smtp_port,
        smtp_username=env.get("SMTP_USERNAME", ""),
        smtp_password=env.get("SMTP_PASSWORD", ""),
        smtp_tls=smtp_tls,
        smtp_from=env.get("SMTP_FROM") or "relance@localhost",
        stripe_secret_key=stripe_secret,
        stripe_publishable_key=stripe_public,
        stripe_webhook_secret=webhook_secret,
        stripe_api_base=api_base,
        portal_link_days=portal_days,
        documents_dir=documents_dir,
        log_level=log_level,
        trusted_proxies=trusted_proxies,
        database_pool_size=pool_size,
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once. Tests and the demo call `load_settings` directly."""
    return load_settings()
