#!/usr/bin/env python3
"""Run moto's server single-threaded, for Tollgate's DynamoDB/SQS tests.

Why not moto's own `moto_server`: it serves with `threaded=True`, and moto's
TransactWriteItems is not atomic when two requests run at once, so concurrent
duplicate callbacks could both "win" a conditional transaction. Serving one
request at a time models DynamoDB's serializable transactions.

Why `make_server` rather than `run_simple`: it is the same werkzeug server
`run_simple(host, port, app, threaded=False, use_reloader=False)` builds (no
reloader, no debugger), but it hands us the server object, so with port 0 we
can learn the port the kernel picked and publish it once the socket listens.

The port file is written atomically (temp file + rename) after listen(), so a
caller that sees the file can connect at once: connections made before the
first accept() wait in the listen backlog instead of being refused.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from typing import Any

from werkzeug import serving

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    create_backend_app,
)


def _stop(signum: int, frame: Any) -> None:
    # SystemExit unwinds serve_forever(), whose `finally` closes the socket.
    sys.exit(0)


def _write_port_file(path: str, port: int) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".moto-port-")
    with os.fdopen(fd, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


class _QuietHandler(serving.WSGIRequestHandler):
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (0)")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument(
        "--backlog",
        type=int,
        default=1024,
        help="listen backlog; one request is served at a time, so concurrent clients wait here (1024)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log every request")
    args = parser.parse_args(argv)

    if args.backlog < 128:
        parser.error("--backlog must be at least 128")

    # The listen() backlog comes from this class attribute (werkzeug's default
    # is 128); the kernel still caps it at net.core.somaxconn.
    serving.BaseWSGIServer.request_queue_size = args.backlog

    app = DomainDispatcherApplication(create_backend_app)

    server = serving.make_server(
        args.host,
        args.port,
        app,
        threaded=False,
        processes=1,
        request_handler=_QuietHandler if args.quiet else None,
    )
    assert not server.multithread and not server.multiprocess
    port = server.socket.getsockname()[1]

    # moto builds some URLs (e.g. SQS QueueUrl) from MOTO_PORT when set.
    os.environ.setdefault("MOTO_PORT", str(port))

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    if args.port_file:
        _write_port_file(args.port_file, port)
    print(f"moto listening on http://{args.host}:{port} (single-threaded)", flush=True)

    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
