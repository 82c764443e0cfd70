"""Where the cash is, where it will come from, who is slipping: the dashboard's figures.

Computed from the ledger (mostly in SQL), each with its one-line definition; the heavy ones
are written nightly into snapshots after the daily run (see `snapshots`). No Litestar, no
Jinja here.
"""
