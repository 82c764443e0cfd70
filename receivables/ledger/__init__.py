"""The ledger: companies, customers, contacts, items, payments, allocations, statements."""
