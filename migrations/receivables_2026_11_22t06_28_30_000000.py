"""Back office: trigram indexes for the customer search (Postgres only).

Searching "part of a name, reference or contact email" is a LIKE '%...%', which no
b-tree serves. On Postgres, pg_trgm's GIN indexes do. pg_trgm is a trusted extension
(Postgres 13+): the database owner may create it. Where it cannot be created, nothing is
done and the search still works, by scanning. SQLite has no trigram index: demo scale.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.querystring import QueryString

ID = "2026-11-22T06:28:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "trigram indexes for the customer search (Postgres)"

INDEXES = [
    ("customer_name_trgm", "customer USING gin (lower(name) gin_trgm_ops)"),
    ("customer_ref_trgm", "customer USING gin (lower(ref) gin_trgm_ops)"),
    ("contact_email_trgm", "contact USING gin (lower(email) gin_trgm_ops)"),
]

CAN_USE_TRGM = """
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')
    OR (
        EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm')
        AND (
            (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
            OR (
                has_database_privilege(current_user, current_database(), 'CREATE')
                AND COALESCE((SELECT bool_or(trusted) FROM pg_available_extension_versions
                              WHERE name = 'pg_trgm'), false)
            )
        )
    ) AS ok
"""


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="receivables", description=DESCRIPTION)

    async def create_indexes():
        engine = engine_finder()
        if engine.engine_type != "postgres":
            return
        rows = await engine.run_querystring(QueryString(CAN_USE_TRGM))
        if not rows or not rows[0]["ok"]:
            return
        await engine.run_ddl("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, definition in INDEXES:
            await engine.run_ddl(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")

    async def drop_indexes():
        engine = engine_finder()
        if engine.engine_type != "postgres":
            return
        for name, _ in INDEXES:
            await engine.run_ddl(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
