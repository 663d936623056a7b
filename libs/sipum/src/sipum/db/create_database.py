"""``python -m sipum.db.create_database URL``: create the database named in URL if missing.

Used by ``deploy/local/up`` on a machine whose PostgreSQL does not have the sipum database
yet; it connects to the server's ``postgres`` maintenance database with the same credentials.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlsplit, urlunsplit

from sipum.config import exit_on_config_error, normalize_database_url, redact_url
from sipum.db.pool import connect
from sipum.errors import ConfigError


async def create_database_if_missing(url: str) -> bool:
    """Create the database of ``url``; returns True when it had to be created."""
    parts = urlsplit(normalize_database_url(url))
    name = parts.path.lstrip("/")
    if not name:
        raise ConfigError("database_url", f"no database name in {redact_url(url)}")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    conn = await connect(maintenance)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        # Identifiers cannot be bound parameters; quote it as PostgreSQL does.
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"CREATE DATABASE {quoted}")
        return True
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    prog = "sipum.db.create_database"
    with exit_on_config_error(prog):
        if len(args) != 1:
            raise ConfigError("database_url", "usage: python -m sipum.db.create_database URL")
        created = asyncio.run(create_database_if_missing(args[0]))
    if created:
        print(f"created database {redact_url(args[0])}")


if __name__ == "__main__":
    main()
