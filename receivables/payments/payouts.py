"""Payout reconciliation: a payout must equal the net of the balance transactions it carries.

Each charge's transaction links the payout to the online payment it settles, so finance can
follow every cent from invoice to bank. A payout that does not add up is flagged; one that
adds up on a later check has its exception closed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from receivables.db import atomic, is_postgres
from receivables.money import check_currency, format_minor
from receivables.payments.amounts import minor_from_stripe
from receivables.payments.flags import Kind, auto_resolve, flag
from receivables.payments.tables import OnlinePayment, PayoutTransaction, StripePayout

_PAYOUT_TYPES = ("payout", "payout_cancel", "payout_failure")


async def reconcile_payout(payout: dict[str, Any], transactions: list[dict[str, Any]]) -> int:
    """Store the payout and its transactions, check they add up; returns the payout's row id."""
    currency = check_currency(payout["currency"])
    amount = minor_from_stripe(int(payout["amount"]), currency)
    arrival = payout.get("arrival_date")
    arrival_date = datetime.fromtimestamp(int(arrival), UTC).date() if arrival else None
    status = str(payout.get("status") or "")
    values: dict[Any, Any] = {
        StripePayout.currency: currency,
        StripePayout.amount_minor: amount,
        StripePayout.status: status,
        StripePayout.arrival_date: arrival_date,
    }
    async with atomic():
        # payout.created and payout.paid often arrive together: insert once, then lock.
        await StripePayout.insert(
            StripePayout(
                payout_id=payout["id"],
                currency=currency,
                amount_minor=amount,
                status=status,
                arrival_date=arrival_date,
            )
        ).on_conflict(target=StripePayout.payout_id, action="DO NOTHING")
        query = StripePayout.objects().where(StripePayout.payout_id == payout["id"])
        if is_postgres():
            query = query.lock_rows("UPDATE")
        row = (await query)[0]
        await StripePayout.update(values).where(StripePayout.id == row.id)
        if not transactions:
            return int(row.id)

        await PayoutTransaction.delete().where(PayoutTransaction.payout == row.id)
        carried = 0
        same_currency = True
        for txn in transactions:
            txn_currency = check_currency(txn["currency"])
            same_currency &= txn_currency == currency
            net = minor_from_stripe(int(txn["net"]), txn_currency)
            source = str(txn.get("source") or "")
            if isinstance(txn.get("source"), dict):
                source = str(txn["source"].get("id") or "")
            linked = None
            if source.startswith("ch_") or source.startswith("py_"):
                op = await OnlinePayment.objects().get(OnlinePayment.charge_id == source)
                if op is not None:
                    linked = op.id
                    await OnlinePayment.update({OnlinePayment.payout: row.id}).where(
                        OnlinePayment.id == op.id
                    )
            await PayoutTransaction.insert(
                PayoutTransaction(
                    txn_id=txn["id"],
                    payout=row.id,
                    type=str(txn.get("type") or ""),
                    source_id=source,
                    currency=txn_currency,
                    amount_minor=minor_from_stripe(int(txn["amount"]), txn_currency),
                    fee_minor=minor_from_stripe(int(txn.get("fee") or 0), txn_currency),
                    net_minor=net,
                    online_payment=linked,
                )
            ).on_conflict(target=PayoutTransaction.txn_id, action="DO NOTHING")
            if txn.get("type") not in _PAYOUT_TYPES:
                carried += net
        balanced = same_currency and carried == amount
        await StripePayout.update(
            {
                StripePayout.transactions_net_minor: carried,
                StripePayout.transactions: len(transactions),
                StripePayout.balanced: balanced,
                StripePayout.checked_at: datetime.now(UTC),
            }
        ).where(StripePayout.id == row.id)
        if balanced:
            await auto_resolve(Kind.payout_mismatch, payout["id"], "adds up on a later check")
        else:
            difference = amount - carried
            await flag(
                Kind.payout_mismatch,
                payout["id"],
                detail=f"Payout {payout['id']} of {format_minor(amount, currency)} carries "
                f"transactions netting {format_minor(carried, currency)} "
                f"(difference {format_minor(difference, currency)})"
                + ("" if same_currency else "; some are in another currency")
                + ".",
                payout_id=row.id,
                amount_minor=difference,
                currency=currency,
            )
        return int(row.id)
