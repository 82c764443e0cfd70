"""The statement page (or its table fragment for htmx) and the downloads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from portal.access import ROOT, page_context
from portal.display import TYPES, Listing, group_iban, statement_context, status_text
from receivables.clock import customer_today
from receivables.documents import storage
from receivables.documents.pdf import Assets, cached_pdf
from receivables.documents.xlsx import statement_xlsx_async
from receivables.i18n import Translator
from receivables.money import Money
from receivables.portal.account import AccountView, account_view, invoice_of, record_visit
from receivables.portal.sessions import Visit
from receivables.settings import Settings
from web.deps import SettingsDep

STATIC = ROOT / "static"


def wants_fragment(request: HTMXRequest) -> bool:
    return bool(request.htmx) and not request.htmx.boosted


def visit_context(visit: Visit, view: AccountView | None = None, **extra: Any) -> dict[str, Any]:
    company_locale = view.statement.company.locale if view else visit.company_locale
    return page_context(
        visit.language,
        company_locale,
        csrf_token=visit.csrf_token,
        visit=visit,
        **extra,
    )


async def page_data(visit: Visit, listing: Listing) -> dict[str, Any]:
    view = await account_view(visit.customer_id, await customer_today(visit.customer_id))
    ctx = visit_context(visit, view)
    ctx.update(statement_context(view, visit, ctx["t"], ctx["locale"], listing))
    return ctx


@get("/statement", name="portal:statement", include_in_schema=False)
async def statement_page(
    request: HTMXRequest,
    visit: NamedDependency[Visit],
    settings: SettingsDep,
    show: FromQuery[str | None] = None,
    sort: FromQuery[str | None] = None,
    order: FromQuery[str | None] = None,
    rows: FromQuery[str | None] = None,
    answered: FromQuery[int | None] = None,
) -> Template:
    listing = Listing.parse(show, sort, order, rows)
    ctx = await page_data(visit, listing)
    if wants_fragment(request):
        return Template(template_name="portal/_items.html", context=ctx)
    await record_visit(visit, "portal.statement_viewed", show=listing.show)
    ctx["answered"] = answered or 0
    ctx["stripe_enabled"] = settings.stripe_enabled
    return Template(template_name="portal/statement.html", context=ctx)


def assets_of(settings: Settings) -> Assets:
    return Assets(static_dir=STATIC, documents_dir=settings.documents_path)


def _filename(*parts: str) -> str:
    name = "-".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120]


def download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content=content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def render_document(request: Request, template: str, ctx: dict[str, Any]) -> str:
    env = request.app.template_engine.engine
    return env.get_template(template).render(ctx)


@get("/statement.pdf", name="portal:statement-pdf", include_in_schema=False)
async def statement_pdf(
    request: Request, visit: NamedDependency[Visit], settings: SettingsDep
) -> Response:
    ctx = await page_data(visit, Listing.parse("all", None, None, "all"))
    html = render_document(request, "documents/statement.html", ctx)
    # Cached under the hash of its HTML: the account's figures, statuses, date and language
    # are all in it, so the cache serves exactly what a new rendering would.
    pdf, cached = await cached_pdf(html, assets_of(settings))
    await record_visit(
        visit,
        "portal.document_downloaded",
        document="statement_pdf",
        source="cache" if cached else "generated",
    )
    st = ctx["statement"]
    return download(
        pdf, "application/pdf", _filename("statement", st.customer.ref, str(st.on)) + ".pdf"
    )


@get("/statement.xlsx", name="portal:statement-xlsx", include_in_schema=False)
async def statement_spreadsheet(request: Request, visit: NamedDependency[Visit]) -> Response:
    view = await account_view(visit.customer_id, await customer_today(visit.customer_id))
    ctx = visit_context(visit, view)
    _: Translator = ctx["t"]
    locale = ctx["locale"]
    content = await statement_xlsx_async(
        view.statement,
        _=_,
        locale=locale,
        status_of=lambda item: status_text(
            item, view.pending.get(item.id), _, locale, view.statement.on
        ),
        type_of=lambda kind: _(TYPES.get(kind, kind)),
    )
    await record_visit(visit, "portal.document_downloaded", document="statement_xlsx")
    st = view.statement
    return download(
        content,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _filename("statement", st.customer.ref, str(st.on)) + ".xlsx",
    )


@get("/invoices/{item_id:int}/pdf", name="portal:invoice-pdf", include_in_schema=False)
async def invoice_pdf(
    request: Request, visit: NamedDependency[Visit], item_id: FromPath[int], settings: SettingsDep
) -> Response:
    doc = await invoice_of(visit.customer_id, item_id)
    item = doc.item
    assets = assets_of(settings)
    stored: Path | None = storage.stored_file(assets.documents_dir, item.pdf_path)
    if stored is not None:
        content = await storage.read_bytes(stored)
        source = "stored"
    else:
        ctx = visit_context(visit, None, today=await customer_today(visit.customer_id))
        ctx.update(
            item=item,
            company=doc.company,
            customer=doc.customer,
            kind_label=TYPES,
            iban=group_iban(doc.company.iban),
            money_of=Money.from_minor,
        )
        html = render_document(request, "documents/invoice.html", ctx)
        content, cached = await cached_pdf(html, assets)
        source = "cache" if cached else "generated"
    await record_visit(
        visit, "portal.document_downloaded", item_id=item.id, document="invoice_pdf", source=source
    )
    return download(content, "application/pdf", _filename(item.number) + ".pdf")
