"""`restream-operator console --in-cluster`: the console as a Deployment's pod serves it.

Each viewer signs in with their own bearer token, or a front proxy sends it (auth.py);
the pod itself has no token, and this process never loads one: no kubeconfig, no
mounted ServiceAccount.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from ..agent import jsonlog
from ..agent.redact import Redactor
from . import server
from .auth import SERVICE_ACCOUNT_CA, ApiServer, BearerGuard

__all__ = ["SERVICE_ACCOUNT_CA", "main"]

log = logging.getLogger(__name__)


async def serve(sock: socket.socket, guard: BearerGuard) -> None:
    app = server.make_app(guard, None)
    app.cleanup_ctx.append(guard.sweeping)
    runner = await server.start(app, sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    host, port = sock.getsockname()[:2]
    log.info(
        f"console: listening on {host}:{port} for {', '.join(sorted(guard.origins))}",
        extra={"api": guard.api.url},
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(
    *,
    listen: tuple[str, int],
    public_urls: Sequence[str],
    api_server: str | None,
    ca_file: str,
    default_namespace: str,
    idle_minutes: float,
    max_hours: float,
) -> int:
    def fail(message: str) -> int:
        print(f"restream-operator console: {message}", file=sys.stderr)
        return 2

    try:
        api = ApiServer.in_cluster(api_server, ca_file, os.environ)
    except ValueError as exc:
        return fail(str(exc))
    if not os.access(ca_file, os.R_OK):
        return fail(f"cannot read the API server's CA certificate {ca_file} (--api-ca-file)")
    redactor = Redactor()
    try:
        guard = BearerGuard(public_urls, api, default_namespace=default_namespace,
                            idle=idle_minutes * 60, lifetime=max_hours * 3600,
                            redactor=redactor)  # fmt: skip
    except ValueError as exc:
        return fail(str(exc))
    host, port = listen
    try:
        sock = server.listen(port, host)
    except OSError as exc:
        return fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    jsonlog.setup(redactor, stream=sys.stderr)
    with contextlib.closing(sock):
        asyncio.run(serve(sock, guard))
    return 0
