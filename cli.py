"""The `relance` command line."""

from __future__ import annotations

import asyncio
import getpass
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console

from receivables import db
from receivables.settings import Settings, SettingsError, load_settings

console = Console(stderr=True)
out = Console()


def _settings(require_secret: bool = True, env: dict[str, str] | None = None) -> Settings:
    try:
        return load_settings(env, require_secret=require_secret)
    except SettingsError as exc:
        console.print("[bold red]Configuration problems:[/]")
        for problem in exc.problems:
            console.print(f"  - {problem}")
        console.print("See README.md, 'Settings'.")
        sys.exit(2)


def _with_db(settings: Settings, work: Callable[[], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        engine = db.make_engine(settings.database_url)
        db.use_engine(engine)
        await db.start(engine, pool_size=settings.database_pool_size)
        try:
            return await work()
        finally:
            await db.stop(engine)

    return asyncio.run(run())


def _company(code: str | None):
    """The company named by code, or the only one; exits with a message otherwise."""
    from receivables.ledger.tables import Company

    async def find():
        if code:
            return await Company.objects().get(Company.code == code)
        companies = await Company.objects().limit(2)
        return companies[0] if len(companies) == 1 else None

    return find


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]Error:[/] {message}")
    sys.exit(code)


@click.group()
@click.version_option(package_name="relance")
def main() -> None:
    """Relance: collections with interactive reminders and a self-service customer portal."""
    from web.logs import configure_logging

    configure_logging("WARNING")


@main.command()
def migrate() -> None:
    """Bring the database (DATABASE_URL) to the latest schema."""
    settings = _settings(require_secret=False)

    async def run() -> None:
        engine = db.make_engine(settings.database_url)
        await db.migrate(engine)

    asyncio.run(run())
    out.print(f"Database is up to date ({settings.engine_name}).")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes; each has its own database pool (DATABASE_POOL_SIZE).",
)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the web application (portal, back office, API, webhooks)."""
    import uvicorn

    from web.logs import configure_logging

    settings = _settings()  # checked here, so a bad value stops the start with its name
    configure_logging(settings.log_level)
    uvicorn.run(
        "app:create_app_from_env",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        # X-Forwarded-For is read by the app, from TRUSTED_PROXIES only (web/client_address.py);
        # uvicorn's own handling would trust 127.0.0.1 whatever the setting says.
        proxy_headers=False,
        server_header=False,
    )


@main.command()
def worker() -> None:
    """Run the background worker (scheduled jobs) until interrupted."""
    from receivables.worker import run_forever
    from web.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level)
    try:
        _with_db(settings, lambda: run_forever(settings))
    except KeyboardInterrupt:
        console.print("Worker stopped.")


@main.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--kind",
    type=click.Choice(["companies", "customers", "contacts", "items", "payments"]),
    help="Kind of rows, when the header row does not tell.",
)
@click.option("--company", "company_code", help="Company code (needed when there are several).")
@click.option("--check", is_flag=True, help="Check the files and report; write nothing.")
@click.option(
    "--locale",
    "amount_locale",
    metavar="LOCALE",
    help="How the files write amounts (en_GB: 1,234.56; fr_FR: 1 234,56; de_DE: 1.234,56; "
    "de_CH: 1'234.56). Default: the company's locale.",
)
@click.option(
    "--decimal-separator",
    type=click.Choice([".", ","]),
    help="The files' decimal separator, instead of a locale.",
)
def import_(
    files: tuple[str, ...],
    kind: str | None,
    company_code: str | None,
    check: bool,
    amount_locale: str | None,
    decimal_separator: str | None,
) -> None:
    """Import CSV or XLSX files of companies, customers, contacts, items, payments.

    All or nothing: a file with any bad row imports nothing and every bad row is listed.
    Amounts written as text are read in the company's locale unless --locale or
    --decimal-separator says otherwise; "1,000" with neither is refused as ambiguous.
    """
    from receivables.money import AmountFormat, MoneyError

    try:
        AmountFormat(locale=amount_locale, decimal_separator=decimal_separator)
    except MoneyError as exc:
        raise click.UsageError(str(exc)) from None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from receivables.history import Actor
    from receivables.ledger.imports import import_files

    settings = _settings(require_secret=False)
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step[:28], total=total or None)
            progress.update(tasks[step], completed=done, total=total or None)

        report = _with_db(
            settings,
            lambda: import_files(
                [Path(f) for f in files],
                company_code=company_code,
                kind=kind,
                actor=Actor.system("cli import"),
                progress=on_progress,
                dry_run=check,
                locale=amount_locale,
                decimal_separator=decimal_separator,
            ),
        )
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if not report.ok:
        console.print(f"[bold red]Nothing imported:[/] {len(report.problems)} problem(s)")
        for line in report.problem_lines(limit=500):
            console.print(f"  {line}", soft_wrap=True, highlight=False)
        if report.amounts:
            console.print(f"({report.amounts})", highlight=False)
        sys.exit(1)
    for line in report.summary_lines():
        out.print(line, highlight=False)
    if check:
        out.print("Checked: no problems found; nothing was written (--check).")


@main.command(name="portal-link")
@click.argument("customer_ref")
@click.option("--contact", "contact_email", help="Email of the contact the link is for.")
@click.option("--company", "company_code", help="Company code (needed when there are several).")
def portal_link(customer_ref: str, contact_email: str | None, company_code: str | None) -> None:
    """Print a fresh signed portal URL for a customer account."""
    settings = _settings()

    async def run() -> str:
        from receivables.access.portal_links import issue_link
        from receivables.ledger.tables import Contact, Customer

        company = await _company(company_code)()
        if company is None:
            _fail(
                "name the company with --company CODE"
                if not company_code
                else f"no company with code {company_code}"
            )
        customer = await Customer.objects().get(
            (Customer.company == company.id) & (Customer.ref == customer_ref)
        )
        if customer is None:
            _fail(f"no customer with reference {customer_ref}")
        contact = None
        if contact_email:
            contact = await Contact.objects().get(
                (Contact.customer == customer.id) & (Contact.email == contact_email.strip().lower())
            )
            if contact is None:
                _fail(f"{contact_email} is not a contact of {customer_ref}")
        issued = await issue_link(
            customer=customer,
            contact=contact,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
            days=settings.portal_link_days,
            issued_by="cli",
        )
        return issued.url

    out.print(_with_db(settings, run), soft_wrap=True)


@main.command()
@click.option("--email", prompt=True)
@click.option("--name", prompt=True)
@click.option("--role", type=click.Choice(["admin", "collector", "finance", "viewer"]), prompt=True)
@click.option("--password", help="Prompted (hidden) when not given.")
def createuser(email: str, name: str, role: str, password: str | None) -> None:
    """Create a back-office user."""
    from receivables.access.staff import create_user
    from receivables.errors import InvalidInput

    settings = _settings(require_secret=False)
    if password is None:
        password = getpass.getpass("Password (10 characters or more): ")
        if getpass.getpass("Again: ") != password:
            _fail("the passwords differ")
    try:
        user = _with_db(settings, lambda: create_user(email, name, role, password or ""))
    except InvalidInput as exc:
        _fail(str(exc))
    out.print(f"Created {user.role} {user.email}.")


@main.group()
def apikey() -> None:
    """API keys for ERPs."""


@apikey.command(name="create")
@click.option("--name", required=True, help="What the key is for, e.g. 'SAP production'.")
@click.option("--company", "company_code", help="Company code (needed when there are several).")
def apikey_create(name: str, company_code: str | None) -> None:
    """Create an API key; it is printed once and only its hash is kept."""
    from receivables.access.api_keys import create_key

    settings = _settings(require_secret=False)

    async def run() -> str:
        company = await _company(company_code)()
        if company is None:
            _fail(
                "name the company with --company CODE"
                if not company_code
                else f"no company with code {company_code}"
            )
        _key, clear = await create_key(company, name)
        return clear

    clear = _with_db(settings, run)
    console.print("API key (shown once; send it as 'Authorization: Bearer <key>'):")
    out.print(clear)


@apikey.command(name="list")
@click.option("--company", "company_code", help="Company code (needed when there are several).")
def apikey_list(company_code: str | None) -> None:
    """List API keys (prefix, name, created, last used, revoked); never the keys themselves."""
    from receivables.access.api_keys import list_keys

    settings = _settings(require_secret=False)

    async def run():
        company = await _company(company_code)()
        if company is None:
            _fail("name the company with --company CODE")
        return await list_keys(company)

    for key in _with_db(settings, run):
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
        out.print(
            f"{key.prefix}…  {key.name:<30} created {key.created_at:%Y-%m-%d}  "
            f"last used {used}  {state}",
            highlight=False,
        )


@apikey.command(name="revoke")
@click.argument("prefix")
@click.option("--company", "company_code", help="Company code (needed when there are several).")
def apikey_revoke(prefix: str, company_code: str | None) -> None:
    """Revoke the key whose first characters (as `apikey list` shows them) are PREFIX."""
    from receivables.access.api_keys import revoke_key

    settings = _settings(require_secret=False)

    async def run() -> int:
        company = await _company(company_code)()
        if company is None:
            _fail("name the company with --company CODE")
        return await revoke_key(prefix.rstrip("…"), company)

    count = _with_db(settings, run)
    if not count:
        _fail(f"no active key starts with {prefix}")
    out.print(f"Revoked {count} key(s).")


@main.group()
def history() -> None:
    """The append-only history."""


@history.command(name="verify")
@click.option(
    "--against",
    "kept",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of checkpoint lines kept outside the database (`checkpoint --export`).",
)
def history_verify(kept: Path | None) -> None:
    """Check every chain link by link and against the latest checkpoint; exit 1 on a problem."""
    from receivables.history import verify

    settings = _settings(require_secret=False)
    lines = kept.read_text().splitlines() if kept else ()
    report = _with_db(settings, lambda: verify(settings, against=lines))
    latest = report.checkpoint
    sealed = (
        f"checkpoint #{latest.number} of {latest.made_at:%Y-%m-%d %H:%M} UTC"
        + ("" if report.seals_checked else " (not authenticated: SECRET_KEY is not set)")
        if latest
        else "no checkpoint yet (`relance history checkpoint`)"
    )
    if report.ok:
        out.print(
            f"History intact: {report.checked} events checked in {report.chains} chains; "
            f"{sealed}; {report.unsealed} events since.",
            soft_wrap=True,
        )
        if kept:
            out.print(f"Every checkpoint in {kept} is in the database as it was kept.")
        return
    for problem in report.problems:
        where = f"at event {problem.event_id}" if problem.event_id is not None else "in its seals"
        chain = f", chain {problem.chain}" if problem.chain else ""
        out.print(
            f"History BROKEN {where} ({problem.kind}{chain}): {problem.message}.",
            markup=False,
            soft_wrap=True,
        )
    out.print(
        f"{len(report.problems)} problem(s); {report.checked} events checked; {sealed}.",
        soft_wrap=True,
    )
    sys.exit(1)


@history.command(name="checkpoint")
@click.option(
    "--export",
    "export",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append the checkpoint's line to this file (keep it outside the database).",
)
def history_checkpoint(export: Path | None) -> None:
    """Seal every chain's head now (HMAC under a key derived from SECRET_KEY); print its line."""
    from receivables.history import HistoryBroken, checkpoint_all

    settings = _settings()

    async def run():
        try:
            return await checkpoint_all(settings, made_by="relance history checkpoint")
        except HistoryBroken as exc:
            return exc

    result = _with_db(settings, run)
    if isinstance(result, HistoryBroken):
        for problem in result.problems:
            console.print(f"  - {problem}", markup=False, soft_wrap=True)
        _fail("the history does not match its chains or checkpoints; nothing sealed")
    if export:
        with export.open("a") as kept:
            kept.write(result.line() + "\n")
    console.print(
        f"Checkpoint #{result.number}: {result.chains} chains, {result.events} events "
        f"({result.changed} changed since the last one)."
        + (f" Line appended to {export}." if export else ""),
        soft_wrap=True,
    )
    out.print(result.line(), soft_wrap=True)


@main.command()
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--dir",
    "folder",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo database is created.",
)
def demo(port: int, host: str, folder: str) -> None:
    """Fresh demo database with realistic data, server, worker and a mail catcher."""
    run_demo(Path(folder), host=host, port=port)


DEMO_LOCK = "relance-demo.lock"


def _lock_demo_folder(folder: Path, url: str) -> IO[str]:
    """The folder's demo lock, held while this demo runs; exits naming the demo holding it.

    An exclusive `flock` on relance-demo.lock: the system frees it when its process ends,
    however it ends, so the lock of a crashed demo is simply taken over. The file names
    its holder for the message. The database is only deleted once the lock is ours.
    """
    import fcntl
    import json

    handle = (folder / DEMO_LOCK).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        try:
            holder = json.loads(handle.read() or "{}")
        except ValueError:
            holder = {}
        handle.close()
        where = ", ".join(
            part
            for part in (f"pid {holder['pid']}" if "pid" in holder else "", holder.get("url", ""))
            if part
        )
        _fail(
            f"a demo is already running in {folder.resolve()}"
            + (f" ({where})" if where else "")
            + ". Stop it (Ctrl-C in its terminal) or start this one with --dir ANOTHER_FOLDER;"
            " its database was left as it is."
        )
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "url": url}) + "\n")
    handle.flush()
    return handle


def _agenda_line(name: str, counts: dict[str, int]) -> str:
    words = [
        ("to_confirm", "email to confirm", "emails to confirm"),
        ("email", "email to write", "emails to write"),
        ("phone", "call", "calls"),
        ("letter", "formal notice to post", "formal notices to post"),
        ("litigation", "litigation decision", "litigation decisions"),
    ]
    parts = [
        f"{counts[key]} {one if counts[key] == 1 else many}"
        for key, one, many in words
        if counts.get(key)
    ]
    late = counts.get("overdue", 0)
    return f"  {name:<16} {', '.join(parts) or 'nothing'}" + (f" ({late} late)" if late else "")


def run_demo(folder: Path, *, host: str, port: int) -> None:
    """Fresh demo database in `folder`, served with the worker and a mail catcher."""
    import contextlib
    import io
    import time

    import uvicorn

    from app import create_app
    from receivables.access.portal_links import issue_link
    from receivables.demo import DEMO_PASSWORD, HISTORY_DAYS, STAFF, build
    from receivables.mail.capture import start_capture_server
    from receivables.portal.emails import PortalMail
    from receivables.worker import run_forever
    from web.logs import configure_logging
    from web.mailing import TemplateComposer

    folder.mkdir(parents=True, exist_ok=True)
    base_url = f"http://{host}:{port}"
    lock = _lock_demo_folder(folder, base_url)
    database = folder / "relance-demo.sqlite3"
    for stale in folder.glob("relance-demo.sqlite3*"):
        stale.unlink()
    secret_file = folder / "relance-demo.secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(48))
        secret_file.chmod(0o600)
    env = {
        "DATABASE_URL": f"sqlite:///{database.resolve()}",
        "SECRET_KEY": secret_file.read_text().strip(),
        "BASE_URL": base_url,
    }
    here = Path(__file__).resolve().parent
    templates, sample = here / "templates", here / "examples" / "bank-statement-demo.csv"
    # Online payment: localstripe on a free port of 127.0.0.1, our webhook registered with it.
    emulator = _start_demo_stripe(env)

    async def run() -> None:
        engine = db.make_engine(env["DATABASE_URL"])
        started = time.monotonic()
        smtp = await start_capture_server("127.0.0.1", 0)
        smtp_port = smtp.sockets[0].getsockname()[1]
        settings = _settings(env={**env, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port)})
        mail = PortalMail(
            compose=TemplateComposer(templates),
            mail_from=settings.smtp_from,
            base_url=settings.base_url,
        )
        with console.status("Creating the demo database...") as status:
            with contextlib.redirect_stdout(io.StringIO()):  # Piccolo lists each migration
                await db.migrate(engine)
            await db.start(engine)

            def replayed(done: int, total: int) -> None:
                status.update(
                    f"Replaying the demo company's last {HISTORY_DAYS} days: {done}/{total}"
                )

            summary = await build(settings, mail, progress=replayed)
        ready_in = time.monotonic() - started
        links = []
        for customer in summary.customers[:3]:
            contact = summary.contacts[customer.id][0]
            issued = await issue_link(
                customer=customer,
                contact=contact,
                secret_key=settings.secret_key,
                base_url=settings.base_url,
                days=settings.portal_link_days,
                issued_by="demo",
            )
            links.append((customer.name, contact.email, issued.url))

        out.print(
            f"\n[bold]Relance demo[/] on [link]{settings.base_url}/[/link]  "
            f"(database {database}, mail catcher on 127.0.0.1:{smtp_port}, "
            f"ready in {ready_in:.1f} s)\n"
        )
        if emulator is not None:
            out.print(
                f"Card payments go to localstripe at {emulator.api_base} "
                "(test cards: 4242 4242 4242 4242; 3-D Secure 4000 0025 0000 3155; "
                "declined 4000 0000 0000 0341)\n"
            )
        out.print(
            "[bold]Staff logins[/] (password for all: "
            f"[green]{DEMO_PASSWORD}[/]) at {settings.base_url}/backoffice/"
        )
        for email, name, role, _phone in STAFF:
            out.print(f"  {role.value:<10} {email:<28} {name}")
        out.print(f"\n[bold]Today's agenda[/] ({settings.base_url}/backoffice/agenda):")
        for name, counts in summary.agenda.items():
            out.print(_agenda_line(name, counts), highlight=False)
        out.print("\n[bold]Customer portal links[/] (what a reminder email carries):")
        for name, email, url in links:
            out.print(f"  {name} ({email})")
            out.print(f"    {url}", soft_wrap=True)
        if sample.exists():
            out.print(
                f"\nToday's bank statement, for finance to import at /backoffice/finance/bank: "
                f"{sample} (CAMT.053: {sample.with_suffix('.xml').name})",
                soft_wrap=True,
            )
        out.print("\nPress Ctrl-C to stop.\n")

        configure_logging(settings.log_level, demo=True)
        app = create_app(settings, engine=engine, demo=True)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                access_log=False,
                log_config=None,
                server_header=False,
                proxy_headers=False,  # the app reads X-Forwarded-For from TRUSTED_PROXIES only
            )
        )
        stop = asyncio.Event()
        worker_task = asyncio.create_task(run_forever(settings, stop))
        try:
            await server.serve()
        finally:
            stop.set()
            await worker_task
            smtp.close()
            await smtp.wait_closed()
            await db.stop(engine)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        if emulator is not None:
            emulator.stop()
        lock.close()
    console.print("Demo stopped.")


def _start_demo_stripe(env: dict[str, str]):
    """Start localstripe for the demo and add its STRIPE_* settings to `env` (None: no Stripe)."""
    import importlib.util

    if importlib.util.find_spec("localstripe") is None:
        console.print("[yellow]localstripe is not installed: online payment is hidden.[/]")
        return None
    from receivables.payments.emulator import start_emulator

    try:
        emulator = start_emulator()
    except RuntimeError as exc:
        console.print(f"[yellow]{exc}: online payment is hidden.[/]")
        return None
    webhook_secret = "whsec_demo_" + secrets.token_hex(16)
    env.update(
        {
            "STRIPE_SECRET_KEY": "sk_test_relance_demo",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_relance_demo",
            "STRIPE_WEBHOOK_SECRET": webhook_secret,
            "STRIPE_API_BASE": emulator.api_base,
        }
    )
    emulator.register_webhook("relance-demo", f"{env['BASE_URL']}/webhooks/stripe", webhook_secret)
    return emulator


@main.group()
def dunning() -> None:
    """Dunning: the scenarios' daily run."""


@dunning.command(name="run")
@click.option(
    "--date",
    "on",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Run as of this date, YYYY-MM-DD (default: today).",
)
def dunning_run(on: Any) -> None:
    """Make the day's dunning actions; automatic emails go to the outbox.

    Running it again on the same date creates nothing new.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from receivables.dunning.run import run_dunning, run_today
    from receivables.dunning.schedule import checkpoint_history

    settings = _settings()
    day = on.date() if on else None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("customers"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        label = day.isoformat() if day else "today (each company's date)"
        task = progress.add_task(f"Dunning run {label}", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        async def run_and_seal():
            report = await (
                run_dunning(day, settings, progress=on_progress, triggered_by="cli")
                if day
                else run_today(settings, progress=on_progress, triggered_by="cli")
            )
            await checkpoint_history(settings, "dunning run (cli)")
            return report

        report = _with_db(settings, run_and_seal)
    if report.broken_promises:
        console.print(f"{report.broken_promises} broken promise(s) marked in the history.")
    if report.kept_promises:
        console.print(f"{report.kept_promises} promise(s) kept.")
    if report.waiting:
        console.print(
            f"{report.waiting} account(s) wait: spacing, an undone task, the minimum, or a "
            "formal notice's deadline."
        )
    if report.held:
        console.print(f"{report.held} automatic step(s) held for a collector (see the agenda).")
    if report.failed:
        console.print(
            f"[bold red]{report.failed} customer(s) failed[/] (see the log); "
            "the next run tries them again."
        )
    out.print(report.line())


@main.group()
def insight() -> None:
    """The dashboard's figures: snapshots and trends."""


@insight.command(name="rebuild")
@click.option(
    "--date",
    "on",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Rebuild up to this date, YYYY-MM-DD (default: today).",
)
@click.option("--months", default=12, show_default=True, type=click.IntRange(1, 60))
def insight_rebuild(on: Any, months: int) -> None:
    """Rebuild the month-end trend points and past weeks' forecasts from the ledger's
    dates (a new installation, an import of old invoices), then today's figures."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from receivables.clock import company_today
    from receivables.insight.snapshots import rebuild

    settings = _settings()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("Dashboard rebuild", total=None)

        def on_progress(step: str, done: int, total: int) -> None:
            progress.update(task, description=f"Dashboard: {step}", completed=done, total=total)

        async def run() -> int:
            day = on.date() if on else await company_today()
            return await rebuild(day, months=months, progress=on_progress)

        written = _with_db(settings, run)
    out.print(f"{written} month-end points rebuilt")


if __name__ == "__main__":
    main()
