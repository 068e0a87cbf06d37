"""The embedded run catalog: a Tiled SQL catalog in a data directory, opened in-process.

Layout of a data directory::

    catalog.db        Tiled catalog (SQLite): runs, streams, metadata
    storage.duckdb    Tiled tabular storage for event data (detector streams)
    files/            HDF5 files of the fast streams, registered as external assets
    run_engine.json   persisted RunEngine metadata (scan_id keeps counting across processes)
    reports/          PNG overviews written by the demo

The root container carries the CatalogOfBlueskyRuns spec, so a stock Tiled client looks runs up
by scan id, uid, partial uid or -1.
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "OPERANDO_DATA"
API_KEY_ENV = "OPERANDO_API_KEY"
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


def catalog_adapter(data_dir: Path):
    """The Tiled catalog adapter over a data directory (created on first use)."""
    from tiled.catalog import from_uri

    return from_uri(
        f"sqlite:///{data_dir / 'catalog.db'}",
        writable_storage=[files_dir(data_dir), f"duckdb:///{data_dir / 'storage.duckdb'}"],
        readable_storage=[files_dir(data_dir)],
        init_if_not_exists=True,
        specs=BLUESKY_SPECS,
    )


def build_catalog_app(data_dir: Path, api_key: str):
    from tiled.config import Authentication
    from tiled.server.app import build_app

    return build_app(
        catalog_adapter(data_dir), authentication=Authentication(single_user_api_key=api_key)
    )


@dataclass
class Catalog:
    """An open catalog: ``client`` is a stock Tiled client (CatalogOfBlueskyRuns)."""

    data_dir: Path
    client: object
    _context: object

    def close(self) -> None:
        # Leaves the in-process server's portal; without this the interpreter hangs at exit.
        self._context.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_catalog(data_dir: Path) -> Catalog:
    """Open the catalog in-process (no socket): Tiled's app behind an in-memory transport."""
    from tiled.client import Context, from_context

    import tiled.server.app  # noqa: F401  (it sets its own logger to INFO on import)

    # No start-up banner on every command.
    logging.getLogger("tiled.server.app").setLevel(logging.WARNING)
    api_key = secrets.token_hex(16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient transport deprecation notice
        context = Context.from_app(build_catalog_app(data_dir, api_key), api_key=api_key)
    return Catalog(data_dir=data_dir, client=from_context(context), _context=context)
