"""PUT an invoice or credit note; POST its PDF."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import Response, post, put
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, MultipartBody, PathParameter

from api.auth import Caller
from api.invoice_pdfs import MAX_PDF_BYTES, attach_invoice_pdf
from api.schemas import UPSERT_ANSWER, ItemFields, ItemOut, MoneyOut, PdfOut, carried, upsert_status
from receivables.ledger.records import parse_item, upsert_items
from receivables.ledger.tables import Item
from web.deps import SettingsDep

ItemNumber = Annotated[str, PathParameter(description="The invoice or credit note number")]


async def item_out(item_id: int, *, created: bool) -> ItemOut:
    row = (
        await Item.select(*Item.all_columns(), Item.customer.ref).where(Item.id == item_id).first()
    )
    assert row is not None
    currency = row["currency"]
    return ItemOut(
        number=row["number"],
        customer_ref=row["customer.ref"],
        kind=row["kind"],
        issue_date=row["issue_date"],
        due_date=row["due_date"],
        total=MoneyOut.minor(row["total_minor"], currency),
        open=MoneyOut.minor(row["open_minor"], currency),
        po_number=row["po_number"],
        status=row["status"],
        has_pdf=bool(row["pdf_path"]),
        created=created,
    )


@put(
    "/items/{number:str}",
    summary="Create or update an invoice or credit note",
    description="Upsert by (company, `number`): sending the same number again updates the "
    "item, never duplicates it. A new item is fully open; a changed total keeps the open "
    "amount equal to the total minus what is allocated (a total below that is refused). "
    + UPSERT_ANSWER,
    status_code=200,
    responses={201: ResponseSpec(ItemOut, description="Created by this call")},
)
async def put_item(
    caller: NamedDependency[Caller], number: ItemNumber, data: JSONBody[ItemFields]
) -> Response[ItemOut]:
    record = parse_item(carried(data, number=number))
    result = await upsert_items([record], caller.actor, company_code=caller.company_code)
    out = await item_out(
        result.ids[(caller.company_code, record.number)], created=bool(result.created)
    )
    return Response(out, status_code=upsert_status(out.created))


@dataclass
class PdfUpload:
    file: UploadFile
    """The invoice as a PDF file, at most 10 MB."""


@post(
    "/items/{number:str}/pdf",
    summary="Upload the PDF of an invoice or credit note",
    description="multipart/form-data with one part `file`: the PDF (checked by its first "
    "bytes, `%PDF-`), at most 10 MB. The customer then downloads this file from the portal "
    "instead of a generated one. Sending the same file again changes nothing (`changed`: "
    "false). 404 when the company has no item with this number.",
    status_code=200,
    request_max_body_size=MAX_PDF_BYTES + 64 * 1024,  # room for the multipart envelope
)
async def upload_item_pdf(
    settings: SettingsDep,
    caller: NamedDependency[Caller],
    number: ItemNumber,
    data: MultipartBody[PdfUpload],
) -> PdfOut:
    content = await data.file.read()
    stored = await attach_invoice_pdf(
        settings.documents_path,
        caller.company_id,
        number,
        content,
        caller.actor,
    )
    return PdfOut(
        number=stored.number, bytes=stored.size, sha256=stored.sha256, changed=stored.changed
    )
