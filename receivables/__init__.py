"""Relance's domain: the ledger, dunning, mail, payments, documents and access rules."""
