"""`python -m bench.server --port P`: a bench server process, started and stopped by the benchmarks.

It serves Linnet's own ASGI application exactly as `manage.py serve` does (daphne, same
options, same consumers), plus two bench-only WebSocket routes under `/ws/bench/`:

- `/ws/bench/bare/<group>`: the baseline consumer (bench.baseline.BareGroupConsumer);
- `/ws/bench/control`: publish inside this process and report its RSS (bench.control).

What it leaves out of `serve` is the worker loops (reaper, GC, sweep): a pass landing in
the middle of a measurement would only add noise, and the reaper has its own benchmark.
"""

from __future__ import annotations

import argparse
import os
import resource

import django


def raise_open_file_limit() -> None:
    """Hundreds of sockets per process need more descriptors than some shells allow."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_open_file_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linnet_site.settings")

    # daphne.server installs Twisted's asyncio reactor; it must be imported before the reactor.
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server

    # Models are imported below (the consumers), so the app registry must be ready first.
    django.setup()

    from channels.routing import URLRouter
    from django.urls import path

    from bench.baseline import BareGroupConsumer
    from bench.control import ControlConsumer
    from linnet_site.asgi import application as linnet_application
    from sessions_app.services import presence

    bench_sockets = URLRouter(
        [
            path("ws/bench/control", ControlConsumer.as_asgi()),
            path("ws/bench/bare/<str:group>", BareGroupConsumer.as_asgi()),
        ]
    )

    async def application(scope, receive, send):
        if scope["type"] == "websocket" and scope["path"].startswith("/ws/bench/"):
            return await bench_sockets(scope, receive, send)
        return await linnet_application(scope, receive, send)

    presence.PROCESS.role = "serve"
    Server(
        application=application,
        endpoints=build_endpoint_description_strings(host=args.host, port=args.port),
        signal_handlers=True,
        action_logger=None,
        websocket_timeout=86400,
    ).run()


if __name__ == "__main__":
    main()
