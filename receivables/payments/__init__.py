"""Online payments and reconciliation: the Stripe gateway, webhook events, allocation of what
Stripe reports, payouts, bank statements, and the exceptions finance acts on."""
