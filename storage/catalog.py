"""The embedded run catalog: a Tiled SQL catalog in a data directory, opened in-process.

Layout of a data directory::

    catalog.db        Tiled catalog (SQLite): runs, streams, metadata
    storage.sqlite    Tiled tabular storage for event data (detector streams), SQLite in WAL
                      mode so other processes can read while a run writes (a data directory
                      made before this keeps its storage.duckdb)
    files/            HDF5 files of the fast streams, registered as external assets
    run_engine.json   persisted RunEngine metadata (scan_id keeps counting across processes)
    reports/          PNG overviews written by the demo

    journal/          every run's documents as JSON lines (crash recovery, replay)

The root container carries the CatalogOfBlueskyRuns spec, so a stock Tiled client looks runs up
by scan id, uid, partial uid or -1.

Scale-out: ``$OPERANDO_CATALOG_URI`` (or ``open_catalog(..., uri=)``) moves the catalog off the
data directory — ``postgresql://user@host/db`` keeps runs *and* event tables in PostgreSQL
(opened in-process, as with SQLite), ``http://host:port/api/v1?api_key=…`` talks to a running
Tiled server (e.g. ``tiled serve config config/tiled-postgres.yml``). The HDF5 files, journal and
RunEngine metadata stay in the data directory, which the server must be able to read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path

DATA_ENV = "OPERANDO_DATA"
API_KEY_ENV = "OPERANDO_API_KEY"
CATALOG_URI_ENV = "OPERANDO_CATALOG_URI"
BLUESKY_SPECS = [{"name": "CatalogOfBlueskyRuns", "version": "3.0"}]


class DataDirectoryError(OSError):
    """The data directory cannot be used; nothing was started."""


def resolve_data_dir(option: str | os.PathLike | None = None) -> Path:
    """--data option, else $OPERANDO_DATA, else ./data — created and checked writable."""
    raw = option if option is not None else os.environ.get(DATA_ENV) or "data"
    path = Path(raw).expanduser().absolute()
    source = "--data" if option is not None else (DATA_ENV if os.environ.get(DATA_ENV) else "default")
    try:
        (path / "files").mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DataDirectoryError(
            f"data directory {path} (from {source}) is not writable: {exc.strerror or exc}. "
            f"Choose another with --data DIR or ${DATA_ENV}."
        ) from None
    return path


def files_dir(data_dir: Path) -> Path:
    return data_dir / "files"


def catalog_uri(data_dir: Path, uri: str | None = None) -> str:
    """The catalog database: ``uri``, else $OPERANDO_CATALOG_URI, else SQLite in the data dir."""
    return uri or os.environ.get(CATALOG_URI_ENV) or f"sqlite:///{data_dir / 'catalog.db'}"


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def catalog_adapter(data_dir: Path, uri: str | None = None):
    """The Tiled catalog adapter over a data directory (created on first use)."""
    from tiled.catalog import from_uri

    # Absolute paths only: Tiled records storage locations as given and finds them by that text.
    data_dir = Path(data_dir).absolute()
    uri = catalog_uri(data_dir, uri)
    if uri.startswith("postgresql"):
        # Event tables in the same database: many writers and readers, nothing on local disk.
        tables = "postgresql://" + uri.split("://", 1)[1]
    elif (data_dir / "storage.duckdb").exists():
        tables = f"duckdb:///{data_dir / 'storage.duckdb'}"  # a data directory from before WAL
    else:
        tables = f"sqlite:///{_wal_sqlite(data_dir / 'storage.sqlite')}"
    # Tiled initialises a database by running `python -m tiled catalog init` in a subprocess
    # (~3 s of imports, on every open): do it once per database, remembered by a marker file.
    marker = data_dir / f".catalog-initialized-{hashlib.sha1(uri.encode()).hexdigest()[:12]}"
    adapter = from_uri(
        uri,
        writable_storage=[files_dir(data_dir), tables],
        readable_storage=[files_dir(data_dir)],
        init_if_not_exists=not marker.exists(),
        specs=BLUESKY_SPECS,
    )
    marker.touch()
    _private_engine(adapter.context)
    return adapter


def _private_engine(context) -> None:
    """Give this catalog a database engine of its own.

    Tiled caches one AsyncEngine per database settings in a module-level dict, and its pooled
    aiosqlite/asyncpg connections belong to the event loop that opened them. Each in-process
    catalog runs its own loop (a portal thread), so a second catalog on the same database in one
    process — the GUI's browser and the run it starts, a data directory reopened — could await a
    connection of a closed or foreign loop forever (seen: TiledWriter hung in create_container,
    every thread idle). A shutdown would also dispose the engine another open catalog uses.
    """
    from tiled.server import connection_pool

    engine = connection_pool.open_database_connection_pool(context.database_settings)
    connection_pool._connection_pools.pop(context.database_settings, None)  # nobody else's
    context.engine = engine
    shutdown = context.shutdown

    async def shutdown_and_dispose():
        await shutdown()
        await engine.dispose()

    context.shutdown = shutdown_and_dispose


def single_process_tables(data_dir: Path, uri: str | None = None) -> bool:
    """True when the catalog's event tables can be open in one process at a time only: a data
    directory made before SQLite-WAL tables, which keeps its DuckDB file."""
    uri = catalog_uri(Path(data_dir).absolute(), uri)
    return not uri.startswith(("postgresql", "http")) and (Path(data_dir) / "storage.duckdb").exists()


def _wal_sqlite(path: Path) -> Path:
    """An SQLite file in write-ahead-log mode (a setting kept in the file): readers in other
    processes — ``operando show``, the GUI's browser — never block the acquiring process's
    writes, and it never blocks them. DuckDB, used before, locks the whole file per process."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            db.execute("PRAGMA journal_mode=WAL")
    return path


def register_exporters() -> None:
    """Let a run export its documents (json-seq): what ``run.documents()`` and replay ask for."""
    from bluesky_tiled_plugins.exporters import json_seq_exporter
    from tiled.media_type_registration import default_serialization_registry as registry

    registry.register("BlueskyRun", "application/json-seq", json_seq_exporter)


def build_catalog_app(data_dir: Path, api_key: str, uri: str | None = None):
    from tiled.config import Authentication
    from tiled.server.app import build_app

    register_exporters()

    return build_app(catalog_adapter(data_dir, uri), authentication=Authentication(single_user_api_key=api_key))


@dataclass
class Catalog:
    """An open catalog: ``client`` is a stock Tiled client (CatalogOfBlueskyRuns).

    Writers feeding it (a RunEngine's background catalog writer, ``acquisition/session.py``)
    are flushed before it closes, so a run that ended in an error — in a script, at the prompt
    — is stored whole, stop document included, whichever way the ``with`` block is left.
    """

    data_dir: Path
    client: object
    _context: object
    writers: list = field(default_factory=list)  # each with flush(); flushed on close
    _closed: bool = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for writer in self.writers:
            try:
                writer.flush()
            except Exception:  # report, and still close: one failed document must not hang exit
                logging.getLogger(__name__).exception("flushing %s before closing failed", writer)
        # Leaves the in-process server's portal; without this the interpreter hangs at exit.
        self._context.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# One key for every in-process catalog: Tiled writes an app's single-user key into its
# process-wide cached settings, so each new app would invalidate the key of every catalog opened
# before it in this process (seen: 401 "Invalid API key" on the GUI's catalog after a run opened
# its own). No socket is involved; the key is a formality here.
_IN_PROCESS_API_KEY = secrets.token_hex(16)


def open_catalog(data_dir: Path, uri: str | None = None) -> Catalog:
    """Open the catalog in-process (no socket): Tiled's app behind an in-memory transport.

    With a server uri (http…), connect to that Tiled server instead.
    """
    from tiled.client import Context, from_context

    data_dir = Path(data_dir).absolute()
    uri = catalog_uri(data_dir, uri)
    if is_server_uri(uri):
        from tiled.client import from_uri

        client = from_uri(uri)
        return Catalog(data_dir=data_dir, client=client, _context=client.context)

    import tiled.server.app  # noqa: F401  (it sets its own logger to INFO on import)

    # No start-up banner on every command.
    logging.getLogger("tiled.server.app").setLevel(logging.WARNING)
    api_key = _IN_PROCESS_API_KEY
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient transport deprecation notice
        context = Context.from_app(build_catalog_app(data_dir, api_key, uri), api_key=api_key)
    return Catalog(data_dir=data_dir, client=from_context(context), _context=context)
