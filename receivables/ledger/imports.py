"""File import: CSV and XLSX files to ledger records, checked as a whole, written all or nothing.

`import_files` (paths) and `import_uploads` (name + bytes, for the back office) read every
file, recognise what each holds from its header, parse every row, check everything
against the database and each other, and only when no row of any file has a problem,
write it all in one transaction (companies, customers, contacts, items, payments, in
that order). The formats are described in docs/IMPORT_FORMATS.md.
"""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from receivables.db import atomic, current_engine
from receivables.errors import FieldProblem, InvalidInput, ReceivablesError
from receivables.history import Actor
from receivables.ledger.records import (
    FIELDS,
    KINDS,
    REQUIRED,
    Changeset,
    CompanyRecord,
    ParsedRows,
    Progress,
    RowProblem,
    UpsertResult,
    fold,
    parse_rows,
)
from receivables.ledger.tables import Company
from receivables.money import AmountFormat, MoneyError

ALIASES: dict[str, dict[str, str]] = {
    "companies": {
        "company_code": "code",
        "company_name": "name",
        "raison_sociale": "name",
        "vat_number": "legal_id",
        "registration_number": "legal_id",
        "siren": "legal_id",
        "siret": "legal_id",
        "adresse": "address",
        "e_mail": "email",
        "mail": "email",
        "telephone": "phone",
        "tel": "phone",
        "swift": "bic",
        "devise": "currency",
        "logo": "logo_path",
    },
    "customers": {
        "customer_ref": "ref",
        "customer_code": "ref",
        "code_client": "ref",
        "customer_name": "name",
        "raison_sociale": "name",
        "nom": "name",
        "adresse": "address",
        "pays": "country",
        "country_code": "country",
        "profile": "payer_profile",
        "profil": "payer_profile",
        "lang": "language",
        "langue": "language",
        "collector": "collector_email",
        "devise": "currency",
    },
    "contacts": {
        "customer": "customer_ref",
        "customer_code": "customer_ref",
        "client": "customer_ref",
        "code_client": "customer_ref",
        "nom": "name",
        "e_mail": "email",
        "mail": "email",
        "telephone": "phone",
        "tel": "phone",
        "fonction": "role",
        "lang": "language",
        "langue": "language",
        "reminders": "receives_reminders",
        "relances": "receives_reminders",
        "contact_ref": "ext_ref",
    },
    "items": {
        "invoice_number": "number",
        "item_number": "number",
        "n_facture": "number",
        "no_facture": "number",
        "numero_facture": "number",
        "numero": "number",
        "customer": "customer_ref",
        "customer_code": "customer_ref",
        "client": "customer_ref",
        "code_client": "customer_ref",
        "type": "kind",
        "invoice_date": "issue_date",
        "date": "issue_date",
        "date_facture": "issue_date",
        "date_emission": "issue_date",
        "due": "due_date",
        "echeance": "due_date",
        "date_echeance": "due_date",
        "devise": "currency",
        "amount": "total",
        "total_amount": "total",
        "montant": "total",
        "montant_ttc": "total",
        "total_ttc": "total",
        "po": "po_number",
        "purchase_order": "po_number",
        "bon_de_commande": "po_number",
    },
    "payments": {
        "payment_ref": "ref",
        "reference": "ref",
        "customer": "customer_ref",
        "customer_code": "customer_ref",
        "client": "customer_ref",
        "code_client": "customer_ref",
        "date": "received_on",
        "payment_date": "received_on",
        "value_date": "received_on",
        "date_reglement": "received_on",
        "date_paiement": "received_on",
        "montant": "amount",
        "devise": "currency",
        "payment_method": "method",
        "mode_de_reglement": "method",
        "invoice_number": "item_number",
        "invoice": "item_number",
        "facture": "item_number",
    },
}
"""Other header spellings accepted per kind (after folding), mapped to the field name."""

READABLE = (".csv", ".xlsx", ".xlsm")


def normalise_header(label: object) -> str:
    """ "Due date", "due_date", "DUE DATE", " Due-Date " -> "due_date"; accents dropped."""
    return fold("" if label is None else str(label))


def field_for(kind: str, header: str) -> str | None:
    """The field a normalised header names for `kind`, or None when it names none."""
    if header in FIELDS[kind]:
        return header
    return ALIASES[kind].get(header)


def detect_kind(headers: Iterable[str]) -> str:
    """The kind of records a file holds, from its normalised headers.

    A kind is possible when every one of its required fields has a column; among possible
    kinds the one leaving the fewest columns unused wins. Raises ValueError when no kind
    or several equally fit, with what each kind needs.
    """
    headers = [h for h in headers if h]
    scores: dict[str, int] = {}
    for kind in KINDS:
        mapped = {field_for(kind, h) for h in headers}
        if REQUIRED[kind] <= mapped:
            scores[kind] = sum(1 for h in headers if field_for(kind, h) is None)
    if not scores:
        needs = "; ".join(f"{k}: {', '.join(sorted(REQUIRED[k]))}" for k in KINDS)
        raise ValueError(
            f"cannot tell what this file holds from its columns ({', '.join(headers)}); "
            f"each kind needs these columns: {needs}"
        )
    best = min(scores.values())
    winners = [k for k, s in scores.items() if s == best]
    if len(winners) > 1:
        raise ValueError(f"these columns fit {' and '.join(winners)}; say which kind it is")
    return winners[0]


# --------------------------------------------------------------------------------------
# Reading


class UnreadableFile(ValueError):
    """The file cannot be read as a table (format, encoding, no header)."""


@dataclass
class Sheet:
    """The table of one file: header labels and data rows with their spreadsheet line."""

    name: str
    labels: list[str]
    """Header cells as written."""
    headers: list[str]
    """Header cells normalised (see `normalise_header`)."""
    header_line: int
    rows: list[tuple[int, tuple[Any, ...]]] = field(default_factory=list)
    """(line, cells) of each non-empty row after the header; line 1 is the file's first row."""


_Notify = Callable[[str, int, int], None]


def _blank(cells: Sequence[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _sheet(
    name: str, lines: Iterable[tuple[int, Sequence[Any]]], notify: _Notify | None, total: int
) -> Sheet:
    sheet: Sheet | None = None
    for line, cells in lines:
        if _blank(cells):
            continue
        if sheet is None:
            labels = ["" if c is None else str(c).strip() for c in cells]
            while labels and not labels[-1]:
                labels.pop()
            sheet = Sheet(name, labels, [normalise_header(c) for c in labels], line)
            continue
        sheet.rows.append((line, tuple(cells)))
        if notify and len(sheet.rows) % 2000 == 0:
            notify(f"read {name}", len(sheet.rows), total)
    if sheet is None:
        raise UnreadableFile("the file is empty (no header row)")
    if notify:
        notify(f"read {name}", len(sheet.rows), len(sheet.rows))
    return sheet


def _delimiter(text: str) -> str:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return ";" if first.count(";") > first.count(",") else ","


def _read_csv(name: str, data: bytes, notify: _Notify | None) -> Sheet:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not UTF-8 text (byte {exc.start}); save it as 'CSV UTF-8'") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        rows = list(enumerate(reader, start=1))
    except csv.Error as exc:
        raise UnreadableFile(f"not a readable CSV file: {exc}") from None
    return _sheet(name, rows, notify, len(rows))


def _read_xlsx(name: str, source: Path | BinaryIO, notify: _Notify | None) -> Sheet:
    try:
        # data_only: a formula cell gives the value the spreadsheet computed, not "=A1*B1".
        workbook = load_workbook(source, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
        raise UnreadableFile(f"not a readable .xlsx file ({exc})") from None
    try:
        if not workbook.worksheets:
            raise UnreadableFile("the workbook has no sheet")
        sheet = workbook.worksheets[0]
        total = sheet.max_row or 0
        rows = enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1)
        return _sheet(name, rows, notify, total)
    finally:
        workbook.close()


def _reader(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix == ".xls":
        raise UnreadableFile("old .xls files are not read; save it as .xlsx or CSV UTF-8")
    raise UnreadableFile(f"'{suffix or name}' files are not read; use .csv or .xlsx")


def read_rows(path: str | Path, *, progress: Progress | None = None) -> Sheet:
    """The table of a .csv (UTF-8, with or without BOM; ',' or ';') or .xlsx (first sheet)
    file; the header is its first non-empty row. Raises UnreadableFile."""
    path = Path(path)
    kind = _reader(path.name)
    if kind == "csv":
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UnreadableFile(f"cannot read the file: {exc.strerror}") from None
        return _read_csv(str(path), data, progress)
    if not path.is_file():
        raise UnreadableFile("no such file")
    return _read_xlsx(str(path), path, progress)


def read_upload(name: str, data: bytes | BinaryIO, *, progress: Progress | None = None) -> Sheet:
    """Like `read_rows` for a file received as bytes or a binary file object; `name`'s
    extension tells the format."""
    kind = _reader(name)
    if kind == "csv":
        return _read_csv(name, data if isinstance(data, bytes) else data.read(), progress)
    return _read_xlsx(name, io.BytesIO(data) if isinstance(data, bytes) else data, progress)


# --------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class FileProblem:
    """One refused value: file, line as a spreadsheet shows it, column as written, why."""

    file: str
    line: int | None
    column: str
    message: str

    def __str__(self) -> str:
        where = [self.file] if self.file else []
        if self.line:
            where.append(f"line {self.line}")
        if self.column:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass
class FileSummary:
    name: str
    kind: str | None
    rows: int


@dataclass
class ImportReport:
    """What an import found and did. Nothing was written unless `written` is True."""

    files: list[FileSummary] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Things ignored (unknown columns); they do not stop the import."""
    results: dict[str, UpsertResult] = field(default_factory=dict)
    """Per kind, in write order; empty when nothing was written."""
    written: bool = False
    amounts: str = ""
    """How amounts written as text were read: "amounts read the fr_FR way (company ATL's
    locale)", "amounts read with ',' as decimal separator"..."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary_lines(self) -> list[str]:
        """One line per kind: 'items: 30 created, 2 updated, 0 unchanged'."""
        return [
            f"{kind}: {r.created} created, {r.updated} updated, {r.unchanged} unchanged"
            for kind, r in self.results.items()
        ]

    def problem_lines(self, limit: int | None = None) -> list[str]:
        """Every problem as 'file, line N, column C: reason' (the first `limit` of them)."""
        lines = [str(p) for p in self.problems[:limit]]
        if limit is not None and len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more problems")
        return lines


# --------------------------------------------------------------------------------------
# Import


@dataclass
class _Prepared:
    files: list[FileSummary] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parsed: list[tuple[str, ParsedRows]] = field(default_factory=list)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    """file -> field -> header label as written."""
    positions: dict[str, dict[str, int]] = field(default_factory=dict)
    """file -> header label -> column index, to list a row's problems left to right."""
    amounts: str = ""


def _prepare(
    sources: Sequence[tuple[str, Callable[[Progress | None], Sheet]]],
    kind: str | None,
    notify: _Notify | None,
    amounts: _Amounts,
) -> _Prepared:
    out = _Prepared()
    sheets: list[tuple[Sheet, str]] = []
    for name, read in sources:
        try:
            sheet = read(notify)
        except UnreadableFile as exc:
            out.files.append(FileSummary(name, None, 0))
            out.problems.append(FileProblem(name, None, "", str(exc)))
            continue
        try:
            file_kind = kind or detect_kind(sheet.headers)
        except ValueError as exc:
            out.files.append(FileSummary(name, None, len(sheet.rows)))
            out.problems.append(FileProblem(name, sheet.header_line, "", str(exc)))
            continue
        out.files.append(FileSummary(name, file_kind, len(sheet.rows)))
        sheets.append((sheet, file_kind))
    # Companies first: a company created by this import reads its own rows in its locale.
    sheets.sort(key=lambda entry: KINDS.index(entry[1]))
    for sheet, file_kind in sheets:
        parsed = _parse_sheet(sheet, file_kind, out, notify, amounts)
        if parsed is not None:
            out.parsed.append((file_kind, parsed))
            if file_kind == "companies":
                amounts.learn(parsed.records)
    out.amounts = amounts.describe()
    return out


@dataclass
class _Amounts:
    """How the files write amounts: the explicit format, else each company's locale."""

    explicit: AmountFormat | None
    company_code: str | None
    locales: dict[str, str] = field(default_factory=dict)
    """company code -> locale, from the database and the companies being imported."""

    def learn(self, records: Iterable[object]) -> None:
        for record in records:
            if isinstance(record, CompanyRecord) and (
                record.fields_set is None or "locale" in record.fields_set
            ):
                self.locales[record.code] = record.locale
            elif isinstance(record, CompanyRecord):
                self.locales.setdefault(record.code, record.locale)

    def _default_code(self) -> str | None:
        if self.company_code:
            return self.company_code
        return next(iter(self.locales)) if len(self.locales) == 1 else None

    def default(self) -> AmountFormat:
        if self.explicit is not None:
            return self.explicit
        code = self._default_code()
        return _by_locale(self.locales.get(code)) if code else AmountFormat()

    def per_company(self) -> dict[str, AmountFormat] | None:
        if self.explicit is not None:
            return None
        return {code: _by_locale(locale) for code, locale in self.locales.items()}

    def describe(self) -> str:
        if self.explicit is not None:
            return f"amounts read {self.explicit}"
        code = self._default_code()
        if code and code in self.locales:
            return f"amounts read {_by_locale(self.locales[code])} (company {code}'s locale)"
        return "amounts read with no locale: only spellings with one reading"


def _by_locale(locale: str | None) -> AmountFormat:
    try:
        return AmountFormat(locale=locale) if locale else AmountFormat()
    except MoneyError:
        return AmountFormat()


def _parse_sheet(
    sheet: Sheet, kind: str, out: _Prepared, notify: _Notify | None, amounts: _Amounts
) -> ParsedRows | None:
    name = sheet.name
    targets: list[str | None] = []
    labels: dict[str, str] = {}
    unknown: list[str] = []
    for label, header in zip(sheet.labels, sheet.headers, strict=True):
        target = field_for(kind, header) if header else None
        if target is not None and target in labels:
            out.problems.append(
                FileProblem(
                    name,
                    sheet.header_line,
                    label,
                    f"says the same as column {labels[target]} ({target})",
                )
            )
            target = None
        elif target is None and label:
            unknown.append(label)
        if target is not None:
            labels[target] = label
        targets.append(target)
    out.labels[name] = labels
    out.positions[name] = {label: i for i, label in reversed(list(enumerate(sheet.labels)))}
    if unknown:
        out.warnings.append(f"{name}: columns ignored (not {kind} fields): {', '.join(unknown)}")
    missing = sorted(REQUIRED[kind] - set(labels))
    for missing_field in missing:
        out.problems.append(
            FileProblem(
                name, sheet.header_line, missing_field, f"required column missing for {kind}"
            )
        )
    if missing:
        return None
    width = len(targets)
    rows: list[tuple[int | None, dict[str, object]]] = []
    for line, cells in sheet.rows:
        if not _blank(cells[width:]):
            used = max(i for i, c in enumerate(cells) if not _blank([c])) + 1
            out.problems.append(
                FileProblem(
                    name,
                    line,
                    "",
                    f"{used} cells for {width} columns; does a value hold the delimiter "
                    "without quotes?",
                )
            )
            continue
        data = {
            t: (cells[i] if i < len(cells) else None)
            for i, t in enumerate(targets)
            if t is not None
        }
        rows.append((line, data))
    parsed = parse_rows(
        kind,
        rows,
        source=name,
        amounts=amounts.default(),
        company_amounts=amounts.per_company(),
    )
    if notify:
        notify(f"parse {name}", len(rows), len(rows))
    return parsed


def _to_file_problem(problem: FieldProblem, labels: dict[str, dict[str, str]]) -> FileProblem:
    source = problem.source if isinstance(problem, RowProblem) else ""
    column = labels.get(source, {}).get(problem.field, problem.field)
    return FileProblem(source, problem.line, column, problem.message)


async def _run(
    sources: Sequence[tuple[str, Callable[[Progress | None], Sheet]]],
    *,
    company_code: str | None,
    kind: str | None,
    actor: Actor,
    progress: Progress | None,
    dry_run: bool,
    locale: str | None,
    decimal_separator: str | None,
) -> ImportReport:
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    try:
        explicit = (
            AmountFormat(locale=locale, decimal_separator=decimal_separator)
            if locale or decimal_separator
            else None
        )
    except MoneyError as exc:
        raise ValueError(str(exc)) from None
    amounts = _Amounts(explicit, company_code)
    if explicit is None:
        amounts.locales = {
            row["code"]: row["locale"] for row in await Company.select(Company.code, Company.locale)
        }
    loop = asyncio.get_running_loop()
    notify: _Notify | None = None
    if progress is not None:
        report_progress = progress

        def notify(step: str, done: int, total: int) -> None:
            loop.call_soon_threadsafe(report_progress, step, done, total)

    # openpyxl and 100k-row parsing are blocking: off the event loop.
    prepared = await asyncio.to_thread(_prepare, sources, kind, notify, amounts)
    report = ImportReport(
        files=prepared.files,
        problems=list(prepared.problems),
        warnings=prepared.warnings,
        amounts=prepared.amounts,
    )
    order = {name: i for i, (name, _) in enumerate(sources)}
    changes = Changeset(
        actor,
        company_code=company_code,
        source=", ".join(name for name, _ in sources),
        channel="import",
    )
    for file_kind, parsed in prepared.parsed:
        changes.add(parsed.records)
        changes.mention(file_kind, parsed.bad_keys)
        report.problems.extend(_to_file_problem(p, prepared.labels) for p in parsed.problems)

    async with atomic():
        transaction = current_engine().current_transaction.get()
        assert transaction is not None
        savepoint = await transaction.savepoint()
        try:
            checked = await changes.check(progress, lock=not dry_run)
            report.problems.extend(_to_file_problem(p, prepared.labels) for p in checked)
            if not report.problems and not dry_run:
                try:
                    report.results = await changes.apply(progress)
                    report.written = True
                except InvalidInput as exc:
                    report.problems.extend(
                        _to_file_problem(p, prepared.labels) for p in exc.problems
                    )
                except ReceivablesError as exc:
                    report.problems.append(FileProblem("", None, "", str(exc)))
        except BaseException:
            await savepoint.rollback_to()
            raise
        if report.written:
            await savepoint.release()
        else:
            await savepoint.rollback_to()
    positions = prepared.positions
    report.problems.sort(
        key=lambda p: (
            order.get(p.file, -1),
            p.line or 0,
            positions.get(p.file, {}).get(p.column, len(positions.get(p.file, {}))),
        )
    )
    return report


async def import_files(
    paths: Sequence[str | Path],
    *,
    actor: Actor,
    company_code: str | None = None,
    kind: str | None = None,
    progress: Progress | None = None,
    dry_run: bool = False,
    locale: str | None = None,
    decimal_separator: str | None = None,
) -> ImportReport:
    """Import .csv and .xlsx files all or nothing; see the module docstring.

    `company_code`: the company of rows without a `company` column (optional when there is
    one company). `kind`: what every file holds, instead of recognising it from the header.
    `progress(step, done, total)` is called on the event loop with steps "read FILE",
    "parse FILE", "check" and then each kind written. `dry_run` checks without writing.
    Amounts written as text are read the way `locale` (en_GB, fr_FR, de_CH...) or
    `decimal_separator` ('.' or ',') says; without either, the way the row's company's
    locale says (its `company` column, else `company_code`, else the one company), and with
    no company known only spellings with a single reading ("1,000" is refused).
    Problems are returned in the report, not raised; files that cannot be read are problems.
    """
    sources = [(str(p), lambda notify, p=p: read_rows(p, progress=notify)) for p in paths]
    return await _run(
        sources,
        company_code=company_code,
        kind=kind,
        actor=actor,
        progress=progress,
        dry_run=dry_run,
        locale=locale,
        decimal_separator=decimal_separator,
    )


async def import_uploads(
    uploads: Sequence[tuple[str, bytes | BinaryIO]],
    *,
    actor: Actor,
    company_code: str | None = None,
    kind: str | None = None,
    progress: Progress | None = None,
    dry_run: bool = False,
    locale: str | None = None,
    decimal_separator: str | None = None,
) -> ImportReport:
    """Like `import_files` for files received as (file name, bytes or binary file object)."""
    sources = [
        (name, lambda notify, name=name, data=data: read_upload(name, data, progress=notify))
        for name, data in uploads
    ]
    return await _run(
        sources,
        company_code=company_code,
        kind=kind,
        actor=actor,
        progress=progress,
        dry_run=dry_run,
        locale=locale,
        decimal_separator=decimal_separator,
    )


__all__ = [
    "ALIASES",
    "FileProblem",
    "FileSummary",
    "ImportReport",
    "Sheet",
    "UnreadableFile",
    "detect_kind",
    "field_for",
    "import_files",
    "import_uploads",
    "normalise_header",
    "read_rows",
    "read_upload",
]
