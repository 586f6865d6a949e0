"""Running the app: uvicorn with read timeouts for slow clients, a graceful SIGTERM (stop
accepting, finish in-flight requests up to a timeout, exit 0), and ``--workers N``
processes sharing one socket through uvicorn's own process manager.

Each worker builds its app with :func:`worker_app` from the settings the parent leaves in
``TRANSDUCE_SERVE_WORKER`` (JSON), so it holds its own model copy and micro-batcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from transduce.atomic import OWNER, owner, remove_dead
from transduce.configcheck import ConfigError
from transduce.serve.limits import ServeLimits
from transduce.serve.metrics import SHARED_ENV
from transduce.serve.protocols import MAX_HEAD_BYTES, http_protocol
from transduce.serve.sockets import REUSE_PORT, own_listener

WORKER_ENV = "TRANSDUCE_SERVE_WORKER"
LISTEN_ENV = "TRANSDUCE_SERVE_LISTEN"  # the address each worker listens on by itself
FAILURE_ENV = "TRANSDUCE_SERVE_FAILURE"  # where a worker whose models cannot load says why
SUPERVISOR_ENV = "TRANSDUCE_SERVE_SUPERVISOR"  # the pid of the process managing the workers
log = logging.getLogger("transduce.serve")


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(cores: int, workers: int = 1) -> int:
    """Intra-op threads per worker when ``--threads`` is not given: 1 unless each worker
    has 4 cores or more of its own, then up to 4.

    Measured on a 2-core machine (issue 30), every engine decoded slower with 2 threads than
    with 1 (CTranslate2 int8 6x slower, onnxruntime 1.6x, torch 1.1x): the worker's event
    loop and the other process compete for the second core. Small batched decodes also
    stop gaining from intra-op threads at a few cores, so more cores are better spent on
    ``--workers`` (one model copy each)."""
    share = max(1, cores) // max(1, workers)
    return 1 if share < 4 else min(4, share)


@dataclass
class ServerSettings:
    """Everything ``transduce serve`` was asked for (a worker process rebuilds it from JSON)."""

    model_specs: list[str]
    host: str = "127.0.0.1"
    port: int = 8000
    limits: ServeLimits = field(default_factory=ServeLimits)
    checkpoint: str = "best"
    device: str = "cpu"
    engine: str = "auto"
    threads: int = 1  # intra-op threads per worker
    workers: int = 1
    log_level: str = "warning"
    log_format: str = "text"
    keep_alive_s: float = 5.0  # idle keep-alive connections closed after this
    read_timeout_s: float = 10.0  # a request's headers and body must arrive within this
    graceful_timeout_s: float = 30.0  # in-flight requests get this long after SIGTERM

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerSettings:
        raw = json.loads(text)
        return cls(**{**raw, "limits": ServeLimits(**raw["limits"])})


def uvicorn_config(app: Any, settings: ServerSettings, **extra: Any) -> uvicorn.Config:
    config = uvicorn.Config(
        app,
        log_level=settings.log_level,
        access_log=False,
        http=http_protocol(),
        loop="auto",  # uvloop when installed (the serve extra brings it)
        # as given: uvicorn's timers take fractions (rounded, 0.3 s had kept idle
        # connections a whole second, 2.5 s two)
        timeout_keep_alive=settings.keep_alive_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=settings.graceful_timeout_s,  # type: ignore[arg-type]
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,  # request line and headers (h11)
        **extra,
    )
    config.transduce_read_timeout = settings.read_timeout_s  # type: ignore[attr-defined]
    return config


class Server(uvicorn.Server):
    """uvicorn's server that prints one line once every model is loaded (or stops if loading
    failed), and returns after a graceful SIGTERM instead of re-raising it (exit status 0)."""

    def __init__(self, config: uvicorn.Config, state, banner: str) -> None:
        super().__init__(config)
        self.state, self.banner = state, banner

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        asyncio.get_running_loop().create_task(self._announce())

    async def _announce(self) -> None:
        while not (self.state.ready or self.state.failed):
            await asyncio.sleep(0.02)
        if self.state.failed:  # the command reports it once the server has stopped
            self.should_exit = True
        else:
            print(self.banner, flush=True)

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def worker_app():
    """uvicorn's app factory in each worker process."""
    from transduce.serve.app import create_app
    from transduce.serve.backend import parse_model_specs

    settings = ServerSettings.from_json(os.environ[WORKER_ENV])
    configure_logging(settings)
    supervisor = int(os.environ[SUPERVISOR_ENV]) if SUPERVISOR_ENV in os.environ else None
    folder = os.environ.get(SHARED_ENV)  # the workers' metrics files
    if supervisor is not None:
        follow_supervisor(supervisor, folder)
    if LISTEN_ENV in os.environ:  # a listening socket of this worker's own (sockets.py)
        own_listener(tuple(json.loads(os.environ[LISTEN_ENV])))
    app = create_app(
        loader=lambda: load_settings_models(settings),
        limits=settings.limits,
        names=list(parse_model_specs(settings.model_specs)),
        json_logs=settings.log_format == "json",
        load_first=True,
    )
    app.state.serve.on_failure = _worker_failed
    if supervisor is not None and folder:  # the supervisor gone: clean up last too
        app.state.serve.after_close = lambda: (
            os.getppid() != supervisor and _remove_own_files(folder, os.getpid())
        )
    return app


def follow_supervisor(
    supervisor: int, folder: str | None = None, every_s: float = 0.25
) -> threading.Thread:
    """A worker stops as on SIGTERM (in-flight requests finish) once the process managing
    it is gone. A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its
    workers, and orphans would go on answering on the shared port with the old model, beside
    or instead of the server restarted in its place (gunicorn's workers watch their parent
    alike). On its way out the orphan removes its own metrics files, and the folder once
    empty (the last worker's removal finds it so): nobody else is left to. It does so
    again as the app's last act (``after_close``), after whatever shutdown wrote."""

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(every_s)
        log.warning("transduce serve: the supervisor (pid %d) is gone; stopping", supervisor)
        if folder:  # now: uvicorn ends a worker by its own SIGTERM, so no exit hook runs
            _remove_own_files(folder, os.getpid())  # (still open: writes go nowhere)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=watch, name="transduce-supervisor", daemon=True)
    watcher.start()
    return watcher


METRICS_PREFIX = "transduce-serve-metrics-"  # + the supervisor's PID@SPACE, -, mkdtemp's part


def _remove_dead_servers_metrics() -> None:
    """The metrics folders of servers whose supervisor and workers were all killed outright
    (``kill -9`` of the process group): this command's own by their name and owner, in
    the temporary directory, once no process of that pid runs."""
    pattern = re.compile(rf"{METRICS_PREFIX}{OWNER}-\w+")
    remove_dead(tempfile.gettempdir(), pattern, folders_only=True, mine=True)


def _remove_own_files(folder: str, pid: int) -> None:
    """This worker's prometheus-client files (``*_PID.db``), then the folder if empty."""
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            if name.endswith(f"_{pid}.db"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))
        os.rmdir(folder)  # fails while another worker's files (or failed.txt) remain


def _worker_failed(reason: str) -> None:
    """A worker whose models cannot load: the reason for the parent to say in one line,
    and the exit code uvicorn's process manager reads as a start-up failure, which stops
    every worker (the others would fail alike) instead of restarting this one forever."""
    path = os.environ.get(FAILURE_ENV)
    if path is None:  # no parent to tell
        log.error("transduce serve: loading failed: %s", reason)
    else:  # "x": the first worker to fail says it
        with contextlib.suppress(FileExistsError), open(path, "x", encoding="utf-8") as out:
            out.write(reason)
    logging.shutdown()
    os._exit(STARTUP_FAILURE)


def load_settings_models(settings: ServerSettings):
    from transduce.serve.backend import load_models, parse_model_specs

    specs = parse_model_specs(settings.model_specs)
    # exports only: torch is never imported (a second of start-up, and memory, for nothing)
    runs = any(not (d / "manifest.json").is_file() for dirs in specs.values() for d in dirs)
    if settings.threads > 0 and runs:
        with contextlib.suppress(ImportError):  # a torch-free install serves exports only
            import torch

            torch.set_num_threads(settings.threads)
    return load_models(
        settings.model_specs,
        settings.checkpoint,
        settings.device,
        settings.engine,
        settings.threads,
    )


def configure_logging(settings: ServerSettings) -> None:
    """Access lines on stderr: JSON lines at any log level with ``--log-format json``,
    text lines with ``--log-level info`` or ``debug``."""
    access = logging.getLogger("transduce.serve.access")
    if access.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.propagate = False
    on = settings.log_format == "json" or settings.log_level in ("info", "debug")
    access.setLevel(logging.INFO if on else logging.WARNING)


def run_workers(settings: ServerSettings, sock, banner: str) -> None:
    """``settings.workers`` processes on ``sock`` under uvicorn's process manager; prints
    ``banner`` once one answers ready."""
    os.environ[WORKER_ENV] = settings.to_json()
    if REUSE_PORT and sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
        os.environ[LISTEN_ENV] = json.dumps(sock.getsockname()[:2])
    # the workers' counters, summed at every scrape (prometheus-client multiprocess mode)
    _remove_dead_servers_metrics()
    metrics_dir = tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{owner()}-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[SHARED_ENV] = metrics_dir  # the workers share it (transduce.serve.metrics)
    config = uvicorn_config(
        "transduce.serve.server:worker_app", settings, factory=True, workers=settings.workers
    )
    failure = os.path.join(metrics_dir, "failed.txt")  # not a metrics file: never read as one
    os.environ[FAILURE_ENV] = failure
    os.environ[SUPERVISOR_ENV] = str(os.getpid())  # the workers stop when it is gone
    logging.getLogger("uvicorn.error").addFilter(_StartupFailure(failure))
    supervisor = Multiprocess(config, sockets=[sock])
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/health/ready"
    threading.Thread(target=_announce_when_ready, args=(url, banner), daemon=True).start()
    try:
        supervisor.run()
        if os.path.exists(failure):
            with open(failure, encoding="utf-8") as said:
                raise ConfigError(said.read() or "a worker could not load the models")
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)  # made above, for this run only


class _StartupFailure(logging.Filter):
    """Drops uvicorn's own line about a worker that failed to start when the worker has
    said why (the parent says it once, as one server process would)."""

    def __init__(self, failure: str) -> None:
        super().__init__()
        self.failure = failure

    def filter(self, record: logging.LogRecord) -> bool:
        return not ("failed to start" in record.getMessage() and os.path.exists(self.failure))


def _announce_when_ready(url: str, banner: str) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    print(banner, flush=True)
                    return
        except OSError:
            pass
        time.sleep(0.1)
