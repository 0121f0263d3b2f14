"""What the fake provider servers share: their common command-line flags, fault parsing and listening on loopback.

Each fake (`fake_openai.py`, `fake_anthropic.py`) speaks its own provider's wire format; the way a test starts
one, injects faults and learns its port (`PORT n` on stdout) is the same for both.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from aiohttp import web


def add_common_args(ap: argparse.ArgumentParser, *, limit_dims: str) -> None:
    """The flags every fake takes (faults, latency, key, log, limits, batch behaviour)."""
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--fault", action="append", default=[], help="KIND=PROBABILITY, repeatable")
    ap.add_argument("--api-key", default=None, help="require this key (else 401)")
    ap.add_argument("--log", default=None, help="append one JSON line per request served")
    ap.add_argument("--hang", type=float, default=60.0, help="how long a 'timeout' fault hangs")
    ap.add_argument("--retry-after", type=float, default=0.05, help="retry-after seconds sent with a 429 (or 529)")
    ap.add_argument("--completion-tokens", type=int, default=None, help="fixed answer length in tokens")
    ap.add_argument("--limits", default="", help=f"per-minute limits enforced and announced in the provider's "
                                                 f"rate-limit headers: {limit_dims}")
    ap.add_argument("--silent-limits", action="store_true", help="enforce --limits without the headers")
    ap.add_argument("--batch-delay", type=float, default=1.0, help="seconds until a batch ends")
    ap.add_argument("--batch-hold", type=int, default=0, help="the first N batches end only when cancelled")
    ap.add_argument("--batch-expire", action="store_true", help="batches end with half their requests expired")
    ap.add_argument("--lose-batch-creates", type=int, default=0,
                    help="the first N batch creates succeed but are answered 500")


def parse_faults(items: list[str], kinds: Iterable[str]) -> dict[str, float]:
    """`--fault KIND=P` flags -> {kind: probability}; an unknown kind stops the server with the known ones."""
    known = tuple(kinds)
    out = {}
    for item in items:
        kind, _, p = item.partition("=")
        if kind not in known:
            raise SystemExit(f"unknown fault {kind!r}; choose from {', '.join(known)}")
        out[kind] = float(p)
    return out


async def listen(app: web.Application, port: int) -> None:
    """Serve `app` on 127.0.0.1:`port` (0: any free port), print `PORT n` for the test that started us, run forever."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print(f"PORT {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


def run(serve: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a fake's `serve()` on uvloop when installed; Ctrl-C ends it quietly."""
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)
