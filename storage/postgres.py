"""PostgreSQL catalog databases: create one on a server (for a lab set-up, and for tests).

A Tiled PostgreSQL catalog needs an empty database; Tiled creates its tables on first use
(``init_if_not_exists``). This makes that database, given a server URI with rights to do so.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlparse, urlunparse

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def database_uri(server_uri: str, name: str) -> str:
    """``server_uri`` (any database on that server) with its database replaced by ``name``."""
    parts = urlparse(server_uri)
    return urlunparse(parts._replace(path="/" + name))


def _admin_uri(server_uri: str) -> str:
    # asyncpg wants plain postgresql://; Tiled's form may carry a driver (postgresql+asyncpg://).
    return "postgresql://" + server_uri.split("://", 1)[1]


async def _execute(server_uri: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_admin_uri(server_uri), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(server_uri: str, name: str, *, exist_ok: bool = True) -> str:
    """Create database ``name`` on the server; returns its URI."""
    if not _NAME.match(name):
        raise ValueError(f"database name {name!r}: lower-case letters, digits and _ only")
    try:
        asyncio.run(_execute(server_uri, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if not (exist_ok and "already exists" in str(exc)):
            raise
    return database_uri(server_uri, name)


def drop_database(server_uri: str, name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"database name {name!r}: lower-case letters, digits and _ only")
    asyncio.run(_execute(server_uri, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def reachable(server_uri: str) -> bool:
    try:
        asyncio.run(_execute(server_uri, "SELECT 1"))
        return True
    except Exception:
        return False
