"""The local Prefect API server process that `kerasflow.runtime.prefect_server` starts.

Runs Prefect's own FastAPI app (`prefect.server.api.server.create_app`) under
uvicorn on 127.0.0.1, wrapped in a small ASGI layer that records activity:

- the shared server (default) serves the UI without background services and
  stops itself once it has been idle for `--idle-minutes`: no request in
  flight or in that time, and no live kerasflow command registered in
  `--clients`;
- a temporary server (`--ephemeral`) is Prefect's ephemeral app, and stops
  when its `--parent` process is gone.

Usage: python -m kerasflow.runtime.prefect_daemon --port PORT [--idle-minutes M]
       [--clients DIR] [--ephemeral --parent PID]
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from kerasflow.runtime.prefect_server import _alive, _locked, _read_state

POLL_SECONDS = 5.0


class ActivityTracker:
    """ASGI middleware that counts requests in flight and remembers the last one.

    Args:
        app: The wrapped ASGI app.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.active = 0
        self.last = time.monotonic()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        self.active += 1
        self.last = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
            self.last = time.monotonic()


def main(argv: list[str] | None = None) -> None:
    """Runs the server until it is stopped, idle, or orphaned."""
    parser = argparse.ArgumentParser(prog="python -m kerasflow.runtime.prefect_daemon", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle-minutes", type=float, default=0.0, help="0 never stops for idleness")
    parser.add_argument("--clients", type=Path, help="folder of <pid> files of the commands using this server")
    parser.add_argument("--ephemeral", action="store_true", help="Prefect's ephemeral app: no UI, no services")
    parser.add_argument("--parent", type=int, help="stop when this process is gone")
    args = parser.parse_args(argv)

    from kerasflow.quiet import silence

    silence()
    import uvicorn
    from prefect.server.api.server import create_app

    app = ActivityTracker(create_app(ephemeral=args.ephemeral, webserver_only=not args.ephemeral, final=True))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="error",
                                           lifespan="on"))
    threading.Thread(target=_watch, args=(server, app, args), name="idle-watch", daemon=True).start()
    server.run()


def _watch(server: Any, app: ActivityTracker, args: argparse.Namespace) -> None:
    while not server.should_exit:
        time.sleep(POLL_SECONDS)
        if args.parent and not _alive(args.parent):
            server.should_exit = True
        elif args.idle_minutes > 0 and args.clients is not None and _idle_stop(app, args):
            server.should_exit = True


def _idle_stop(app: ActivityTracker, args: argparse.Namespace) -> bool:
    """Decides, under the shared lock, whether to stop; retires the state file if so."""
    if app.active or time.monotonic() - app.last < args.idle_minutes * 60:
        return False
    folder = args.clients.parent
    with _locked(folder):
        if _live_clients(args.clients):
            return False
        state = _read_state(folder)
        if state is not None and state.get("url", "").endswith(f":{args.port}/api"):
            (folder / "server.json").unlink(missing_ok=True)
        return True


def _live_clients(clients: Path) -> list[int]:
    live = []
    for mark in clients.glob("*"):
        if mark.name.isdigit() and _alive(int(mark.name)):
            live.append(int(mark.name))
        else:
            mark.unlink(missing_ok=True)
    return live


if __name__ == "__main__":
    main()
