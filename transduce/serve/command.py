"""``transduce serve``: load models, build the app, run it with uvicorn on 127.0.0.1."""

from __future__ import annotations

import argparse
import socket
import sys
from dataclasses import fields

from transduce.cli_options import port_number
from transduce.config import ConfigError
from transduce.export.command import ENGINES
from transduce.serve.limits import ServeLimits


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only for those;
    # without it every small reply waits out the client's delayed ACK (~40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    return sock


def serve(
    model_specs: list[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServeLimits | None = None,
    checkpoint: str = "best",
    device: str = "cpu",
    log_level: str = "warning",
    engine: str = "auto",
    threads: int = 0,
) -> None:
    """Serve ``model_specs`` (``DIR``, ``NAME=DIR`` or ``NAME=DIR1+DIR2`` for an ensemble)
    until interrupted; port 0 picks a free port. Exports run on ``engine`` (auto: each
    manifest's). Prints one line saying where it listens once it accepts connections."""
    import uvicorn

    from transduce.serve.app import create_app
    from transduce.serve.backend import load_models

    models = load_models(model_specs, checkpoint, device, engine, threads)
    app = create_app(models, limits)
    sock = listening_socket(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            print(f"transduce serve: listening on http://{shown}:{bound} "
                  f"(models: {', '.join(models)})", flush=True)  # fmt: skip

    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_keep_alive=30)
    Server(config).run(sockets=[sock])


def serve_command(args: argparse.Namespace) -> None:
    limits = ServeLimits(**{f.name: getattr(args, f.name) for f in fields(ServeLimits)})
    for f in fields(ServeLimits):
        if getattr(limits, f.name) < (0 if f.name == "max_wait_ms" else 1):
            raise ConfigError(f"--{f.name.replace('_', '-')} must be positive")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"transduce serve: warning: listening on {args.host}, beyond this machine",
              file=sys.stderr)  # fmt: skip
    serve(args.model, args.host, args.port, limits, args.checkpoint, args.device, args.log_level,
          args.engine, args.threads)  # fmt: skip


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``transduce serve`` on the CLI's subparsers."""
    d = ServeLimits()
    p = sub.add_parser("serve", help="HTTP API and web page over trained models")
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="[NAME=]DIR[+DIR...]",
        help="run directory or exported directory (transduce export), repeatable; NAME: the "
        "folder's name. NAME=DIR1+DIR2 serves an ensemble of runs under NAME (text: "
        "log-probabilities averaged; forecasts: their median)",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="auto: an exported directory's engine (manifest.json), else torch; another "
        "value applies to every model and must match it",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=port_number, default=8000, help="port (0: a free one)")
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=d.max_batch_size,
        help=f"inputs per batched decode (default {d.max_batch_size}; 1: no batching)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=d.max_wait_ms,
        help=f"longest wait for a batch to fill (default {d.max_wait_ms:g})",
    )
    p.add_argument(
        "--max-texts",
        type=int,
        default=d.max_texts,
        help=f"inputs or series per request (default {d.max_texts})",
    )
    p.add_argument(
        "--max-chars",
        type=int,
        default=d.max_chars,
        help=f"characters per input (default {d.max_chars})",
    )
    p.add_argument(
        "--max-values",
        type=int,
        default=d.max_values,
        help=f"values per series (default {d.max_values})",
    )
    p.add_argument(
        "--max-body-kb",
        type=int,
        default=d.max_body_kb,
        help=f"request body size in KiB (default {d.max_body_kb})",
    )
    p.add_argument("--threads", type=int, default=0,
                   help="torch (or onnxruntime, CTranslate2) CPU threads (0: default)")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--checkpoint", choices=["best", "last", "averaged"], default="best",
                   help="which weights: best validation (default), last, or averaged")  # fmt: skip
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning"],
                   help="server log level (default warning)")  # fmt: skip
    p.set_defaults(func=serve_command)
    return p
