"""`operando serve`: a stock Tiled server over a data directory, loopback by default."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from urllib.parse import quote_plus

from .catalog import API_KEY_ENV, build_catalog_app


def serve(data_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted. Prints one line ``Serving <uri>``; the uri carries the API key."""
    import uvicorn

    api_key = os.environ.get(API_KEY_ENV) or secrets.token_hex(16)
    app = build_catalog_app(data_dir, api_key)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)

    # Print the address only once the socket is listening, so a reader can connect at once.
    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets=sockets)
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        print(f"Serving http://{host}:{bound}/api/v1?api_key={quote_plus(api_key)}", flush=True)

    server.startup = startup
    server.run()
    sys.stdout.flush()
