"""``transduce serve``: load models, build the app, run it with uvicorn on 127.0.0.1.

Every flag can also come from a ``TRANSDUCE_SERVE_<FLAG>`` environment variable (``--max-
texts`` from ``TRANSDUCE_SERVE_MAX_TEXTS``; ``--model`` from ``TRANSDUCE_SERVE_MODEL``,
specs separated by spaces); a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from transduce.commands import options as opt
from transduce.config import ConfigError
from transduce.export.command import ENGINES
from transduce.serve.limits import ServeLimits
from transduce.serve.sockets import REUSE_PORT, listening_socket

if TYPE_CHECKING:  # the server pulls in uvicorn; the parser is built without it
    from transduce.serve.server import ServerSettings

ENV_PREFIX = "TRANSDUCE_SERVE_"
# more workers than this per usable core only multiply the models in memory (each worker
# decodes on one core at a time); 100,000 had filled the machine's memory
MAX_WORKERS_PER_CORE = 4


def serve(settings) -> None:
    """Serve ``settings.model_specs`` until SIGTERM or Ctrl-C (a model that fails to load:
    :class:`ConfigError` once the server has stopped).
    Prints one line saying where it listens once every model is loaded (``/health/live``
    answers from the start, ``/health/ready`` once loaded)."""
    from transduce.serve.app import create_app
    from transduce.serve.backend import parse_model_specs
    from transduce.serve.server import (
        Server,
        configure_logging,
        load_settings_models,
        run_workers,
        uvicorn_config,
    )

    specs = parse_model_specs(settings.model_specs)  # bad specs fail before binding
    names = list(specs)
    if settings.checkpoint != "best":  # an export holds the one set of weights exported
        for name, dirs in specs.items():
            if any((d / "manifest.json").is_file() for d in dirs):
                raise ConfigError(
                    f"--checkpoint {settings.checkpoint}: model {name!r} is an export of one "
                    "checkpoint; export that checkpoint (transduce export ... --checkpoint)"
                )
    configure_logging(settings)
    own_sockets = settings.workers > 1 and REUSE_PORT  # sockets.py: one per worker
    sock = listening_socket(settings.host, settings.port, reuse_port=own_sockets)
    bound = sock.getsockname()[1]
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    banner = f"transduce serve: listening on http://{shown}:{bound} (models: {', '.join(names)}"
    banner += f"; {settings.workers} workers)" if settings.workers > 1 else ")"
    if settings.workers > 1:
        run_workers(settings, sock, banner)
        return
    app = create_app(
        loader=lambda: load_settings_models(settings),
        limits=settings.limits,
        names=names,
        json_logs=settings.log_format == "json",
    )
    server = Server(uvicorn_config(app, settings), app.state.serve, banner)
    server.run(sockets=[sock])
    if app.state.serve.failed:
        raise ConfigError(app.state.serve.failed)


def serve_command(args: argparse.Namespace) -> None:
    from transduce.serve.server import ServerSettings

    if getattr(args, "env_error", None):
        raise ConfigError(args.env_error)
    if args.model is None:
        args.model = os.environ.get(ENV_PREFIX + "MODEL", "").split() or None
    if not args.model:
        raise ConfigError("serve: give at least one --model DIR (or TRANSDUCE_SERVE_MODEL)")
    limits = ServeLimits(**{f.name: getattr(args, f.name) for f in fields(ServeLimits)})
    for f in fields(ServeLimits):
        if not (0 if f.name == "max_wait_ms" else 1e-9) <= getattr(limits, f.name) < 1e18:
            raise ConfigError(f"--{f.name.replace('_', '-')} must be positive and finite")
    for name in ("workers", "keep_alive_s", "read_timeout_s", "graceful_timeout_s"):
        if not 0 < getattr(args, name) < 1e9:  # inf: a worker or a timeout that never ends
            raise ConfigError(f"--{name.replace('_', '-')} must be positive and finite")
    for name in ("keep_alive_s", "read_timeout_s"):
        if getattr(args, name) < 0.01:  # a deadline no request can meet
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 0.01 seconds")
    from transduce.serve.server import default_threads, usable_cores

    most = MAX_WORKERS_PER_CORE * usable_cores()
    if args.workers > most:  # each worker holds a copy of every model
        raise ConfigError(
            f"--workers {args.workers}: at most {most} here ({MAX_WORKERS_PER_CORE} per usable "
            "core; each worker loads its own copy of the models)"
        )
    if not args.host.strip():  # an empty host would bind every interface
        raise ConfigError("--host: give an address (127.0.0.1 by default; 0.0.0.0 for all)")
    if args.threads is None:  # neither --threads nor TRANSDUCE_SERVE_THREADS
        args.threads = default_threads(usable_cores(), args.workers)
    if args.threads < 0:
        raise ConfigError("--threads must be 0 (the engine's default) or more")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"transduce serve: warning: listening on {args.host}, beyond this machine",
            file=sys.stderr,
        )
    settings = ServerSettings(
        args.model,
        args.host,
        args.port,
        limits,
        args.checkpoint,
        args.device,
        args.engine,
        args.threads,
        args.workers,
        args.log_level,
        args.log_format,
        args.keep_alive_s,
        args.read_timeout_s,
        args.graceful_timeout_s,
    )
    serve(settings)


def _env_defaults(p: argparse.ArgumentParser) -> None:
    """Defaults from ``TRANSDUCE_SERVE_*``, converted with the flag's type here: a bad
    value is one line naming the variable when serve runs (argparse had printed its usage
    and blamed the flag, which the user never gave), and breaks no other command."""
    for action in p._actions:
        if not action.option_strings or action.dest in ("help", "model"):
            continue
        name = ENV_PREFIX + action.dest.upper()
        value = os.environ.get(name)
        if value is None:
            continue
        problem = None
        if action.choices is not None and value not in action.choices:
            problem = f"choose from {', '.join(map(str, action.choices))}"
        elif callable(action.type):
            try:
                value = action.type(value)
            except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
                kind = getattr(action.type, "__name__", "value")
                problem = str(err) if isinstance(err, argparse.ArgumentTypeError) else kind
                problem = f"not a valid {problem}" if problem == kind else problem
        if problem is not None:
            p.set_defaults(
                env_error=f"{name}={value[:80]!r}: {problem} ({action.option_strings[0]})"
            )
            continue
        action.default = value


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``transduce serve`` on the CLI's subparsers."""
    from transduce.serve.server import ServerSettings

    d, s = ServeLimits(), ServerSettings([])
    p = sub.add_parser("serve", help="HTTP API and web page over trained models")
    add = p.add_argument
    add(
        "--model",
        action="append",
        metavar="[NAME=]DIR[+DIR...]",
        help="run directory or exported directory (transduce export), repeatable; NAME: the "
        "folder's name. NAME=DIR1+DIR2 serves an ensemble of runs under NAME (text: "
        "log-probabilities averaged; forecasts: their median)",
    )
    add(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="auto: an exported directory's engine (manifest.json), else torch; another "
        "value applies to every model and must match it",
    )
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8000, help="port (0: a free one)")
    add(
        "--workers",
        type=int,
        default=s.workers,
        help=f"server processes sharing the port, each with its own model copy (default "
        f"{s.workers})",
    )
    add(
        "--threads",
        type=opt.int_at_least(0, opt.MAX_THREADS),
        default=None,
        help="intra-op CPU threads per worker (torch, onnxruntime, CTranslate2; default 1, "
        "up to 4 where each worker has 4 cores or more; 0: the engine's default)",
    )
    _add_limit_flags(add, d, s)
    add("--device", type=opt.device_name, default="cpu", help="cpu, cuda, cuda:N or auto")
    add(
        "--checkpoint",
        choices=["best", "last", "averaged"],
        default="best",
        help="which weights: best validation (default), last, or averaged",
    )
    _add_log_flags(add)
    _env_defaults(p)
    p.set_defaults(func=serve_command)
    return p


# Help of each ServeLimits field's flag (the defaults come from the dataclass itself).
_LIMIT_HELP = {
    "max_batch_size": "inputs per batched decode (1: no batching)",
    "max_wait_ms": "longest wait for a batch to fill",
    "max_texts": "inputs or series per request",
    "max_chars": "characters per input",
    "max_values": "values per series",
    "max_body_kb": "request body size in KiB",
    "max_inflight_kb": "KiB of request bodies handled at once; beyond, 503 with Retry-After",
    "max_compute": "a translation's texts x beam x max_len",
    "max_batch_work": "one batch's (and one input's) beam x (max_len + 8) x source characters",
    "decode_timeout_s": "seconds before a request's decode is stopped (503)",
    "max_errors": "validation problems listed in one 422 reply",
    "max_keys": "JSON object keys in one request body",
}


def _add_limit_flags(add: Callable[..., Any], d: ServeLimits, s: ServerSettings) -> None:
    """One flag per request limit (ServeLimits) and per server timeout (ServerSettings)."""
    for f in fields(ServeLimits):
        default = getattr(d, f.name)
        add(
            f"--{f.name.replace('_', '-')}",
            type=type(default),
            default=default,
            help=f"{_LIMIT_HELP[f.name]} (default {default:g})",
        )
    for name, what in (
        ("keep_alive_s", "idle keep-alive connections are closed after this"),
        ("read_timeout_s", "a request's headers and body must arrive within this"),
        ("graceful_timeout_s", "on SIGTERM, in-flight requests get this long to finish"),
    ):
        default = getattr(s, name)
        add(
            f"--{name.replace('_', '-')}",
            type=float,
            default=default,
            help=f"seconds: {what} (default {default:g})",
        )


def _add_log_flags(add: Callable[..., Any]) -> None:
    """The server's log level and the access log's format."""
    add(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning"],
        help="server log level (default warning; info: text access lines)",
    )
    add(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="access log: json writes one JSON line per request (request id, route, status, "
        "latency) to stderr at any log level",
    )
