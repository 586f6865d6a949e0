r"""Load on ``transduce serve``: one-sentence requests from 1, 8 and 32 concurrent loopback
clients, with dynamic batching on and off, against offline batched decoding.

Starts two servers on 127.0.0.1 over the same model -- batching on (``--max-batch-size 64``)
and off (``--max-batch-size 1``) -- and, for each client count, alternates between them
(``--repeats`` rounds), each setting bounded by ``--seconds`` and ``--max-requests``. Clients
are keep-alive HTTP/1.1 connections that send test_2016_flickr German sentences one per
request. Prints one JSON line: per setting sentences/s and p50/p95/p99 latency, plus the
offline ``Translator.decode`` figures on the same sentences, measured before and after the
server runs (what ``transduce translate --batch-size 64`` runs, in a fresh process started
like the servers): batched throughput and the one-sentence time; ratios use their mean.

    python benchmarks/serve_load.py --model runs/m30k_word       # trained first if missing
    python benchmarks/serve_load.py --clients 1,8 --seconds 5 --repeats 2

``--settings 1x1,1x2,2x1`` compares server processes instead (``WORKERSxTHREADS``: ``serve
--workers W --threads T``, batching on), alternated round by round, each against offline
decoding with the same total threads (W x T; measured before and after, their mean in the
ratios ``vs_offline_same_threads`` and, for one client, ``p95_vs_offline_one_sentence``,
beside the server's floor: one client's ``GET /health/live`` round trip on the same server).
``--model`` may be an export (``transduce export onnx|ct2``): offline decoding then runs on
its engine. ``--inputs FILE`` takes the sentences from a text or TSV file (first column),
e.g. the demo's data:

    python benchmarks/serve_load.py --model runs/demo/run --inputs runs/demo/data/valid.tsv \
        --settings 1x1,1x2,2x1 --clients 32 --seconds 5 --repeats 2 --threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_cli import int_at_least, int_list, positive_float
from bench_cli import parser as make_parser
from bench_cli import run as run_script

from transduce.config import data_root, load_config
from transduce.data.corpus import read_lines
from transduce.inference.decoding import DecodeOptions

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "multi30k_de_en_word_rnn.yaml"
HOST = "127.0.0.1"  # loopback only


@contextlib.contextmanager
def server(model: str, threads: int, *flags: str, workers: int = 1):
    """``transduce serve`` on a free loopback port; yields the port."""
    cmd = [
        sys.executable,
        "-m",
        "transduce",
        "-q",
        "serve",
        "--model",
        model,
        "--host",
        HOST,
        "--port",
        "0",
        "--threads",
        str(threads),
        "--workers",
        str(workers),
        *flags,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline() if select.select([proc.stdout], [], [], 300)[0] else ""
        match = re.search(r"listening on http://[^:]+:(\d+)", line)
        if not match:
            raise RuntimeError(f"server did not start: {line!r}")
        yield int(match.group(1))
    finally:
        proc.terminate()
        proc.wait(30)


def _requests(sentences: list[str], beam: int) -> list[bytes]:
    """Each sentence's whole request, encoded once: the load generator shares the cores with
    the server, so it does as little as it can per request."""
    out = []
    for text in sentences:
        body = json.dumps({"texts": [text], "beam": beam}).encode()
        head = (
            f"POST /v1/translate HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def _request(reader, writer, request: bytes) -> int:
    writer.write(request)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def load(port: int, clients: int, sentences: list[str], seconds: float, cap: int, beam: int):
    """``clients`` connections sending one sentence per request until time or count runs out."""
    sent, latencies, errors = [0], [], [0]
    requests = _requests(sentences, beam)
    stop = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        while time.perf_counter() < stop and sent[0] < cap:
            request = requests[sent[0] % len(requests)]
            sent[0] += 1
            start = time.perf_counter()
            if await _request(reader, writer, request) != 200:
                errors[0] += 1
            latencies.append(time.perf_counter() - start)
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    return len(latencies), elapsed, latencies, errors[0]


async def http_floor(port: int, requests: int = 2000) -> dict:
    """One client's round trip to ``GET /health/live`` (no body, no model): what the server's
    stack (HTTP, event loop, middleware, FastAPI) and the loopback cost a request whatever it
    asks, the floor under a one-client translation's latency on this server (bare uvicorn's
    is lower: docs/guide/deploying.md)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    request = f"GET /health/live HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        if (status := await _request(reader, writer, request)) != 200:
            raise RuntimeError(f"GET /health/live answered {status}: no floor to measure")
        times.append(time.perf_counter() - start)
    writer.close()
    await writer.wait_closed()
    ms = np.array(times) * 1000
    return {f"http_floor_p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 95)}


def run(coro):
    """``asyncio.run`` on uvloop where installed (a cheaper client loop), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def summary(done: int, elapsed: float, latencies: list[float], errors: int) -> dict:
    ms = np.array(latencies) * 1000
    return {
        "requests": done,
        "errors": errors,
        "seconds": round(elapsed, 2),
        "sentences_per_s": round(done / elapsed, 2),
        **{f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)},
    }


def offline(model: str, threads: int, beam: int, singles: int, inputs: str = "") -> dict:
    """What ``transduce translate --batch-size 64`` does, in a fresh process started like the
    servers (``OMP_NUM_THREADS``, ``--threads``), and one sentence at a time (the latency a
    single client could hope for)."""
    cmd = [
        sys.executable,
        __file__,
        "--offline-child",
        "--model",
        model,
        "--threads",
        str(threads),
        "--beam",
        str(beam),
        "--singles",
        str(singles),
        *(["--inputs", inputs] if inputs else []),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout.splitlines()[-1])


def offline_child(model: str, sentences: list[str], threads: int, beam: int, singles: int) -> dict:
    from transduce.loading import load

    if not (Path(model) / "manifest.json").is_file():  # a training run: the torch engine
        import torch

        torch.set_num_threads(threads)
    tr = load(model, threads=threads)  # an export: its engine, with ``threads`` intra-op
    tr.decode(sentences[:64], DecodeOptions(beam=beam, batch_size=64))  # warm-up
    start = time.perf_counter()
    tr.decode(sentences, DecodeOptions(beam=beam, batch_size=64))
    batched = time.perf_counter() - start
    times = []
    for text in sentences[:singles]:
        t = time.perf_counter()
        tr.decode([text], DecodeOptions(beam=beam, batch_size=1))
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {
        "batch64_sentences_per_s": round(len(sentences) / batched, 2),
        "one_sentence_p50_ms": round(float(np.percentile(ms, 50)), 3),
        "one_sentence_p95_ms": round(float(np.percentile(ms, 95)), 3),
    }


def _sentences(path: str) -> list[str]:
    if not path:
        return read_lines(data_root() / "multi30k" / "test_2016_flickr.de.gz")
    return [line.split("\t")[0] for line in read_lines(Path(path)) if line.strip()]


def offline_by_threads(args: argparse.Namespace, totals: list[int]) -> dict[int, dict]:
    """Offline decoding at each total thread count, one fresh process each."""
    return {t: offline(args.model, t, args.beam, args.singles, args.inputs) for t in totals}


def _setting_row(
    c: int, w: int, t: int, got: list[tuple], ref: dict, best: dict, floor: dict
) -> dict:
    """One setting's merged rounds, and its ratios to offline decoding ``ref`` (the same
    total threads) and ``best`` (the fastest offline thread count measured: with 2 threads
    in one process some engines decode several times slower than with 1)."""
    merged = (
        sum(g[0] for g in got),
        sum(g[1] for g in got),
        [x for g in got for x in g[2]],
        sum(g[3] for g in got),
    )
    row = {"clients": c, "workers": w, "threads": t, **summary(*merged)}
    row["vs_offline_same_threads"] = round(
        row["sentences_per_s"] / ref["batch64_sentences_per_s"], 3
    )
    row["vs_offline_best"] = round(row["sentences_per_s"] / best["batch64_sentences_per_s"], 3)
    if c == 1:
        row.update(floor)
        row["p95_vs_offline_one_sentence"] = round(row["p95_ms"] / ref["one_sentence_p95_ms"], 3)
        row["p95_vs_offline_best_one_sentence"] = round(
            row["p95_ms"] / best["one_sentence_p95_ms"], 3
        )
    return row


def compare_settings(args: argparse.Namespace, sentences: list[str], clients: list[int]) -> None:
    """Servers at each ``WORKERSxTHREADS`` setting, batching on, alternated round by round
    (the machine's load drifts), against offline decoding with the same total threads
    (``W x T``), measured before and after the servers run (their mean in the ratios)."""
    pairs = args.settings
    totals = sorted({w * t for w, t in pairs})
    runs: dict[tuple, list[tuple]] = {}
    before = offline_by_threads(args, totals)
    with contextlib.ExitStack() as stack:
        ports = {(w, t): stack.enter_context(server(args.model, t, workers=w)) for w, t in pairs}
        for port in ports.values():  # warm-up: first requests pay for lazy initialisation
            run(load(port, 4, sentences, 2.0, 40, args.beam))
        floors = {setting: run(http_floor(port)) for setting, port in ports.items()}
        for c in clients:
            for _ in range(args.repeats):
                for (w, t), port in ports.items():
                    got = run(load(port, c, sentences, args.seconds, args.max_requests, args.beam))
                    runs.setdefault((c, w, t), []).append(got)
    after = offline_by_threads(args, totals)
    off = {n: {k: round((before[n][k] + after[n][k]) / 2, 3) for k in before[n]} for n in totals}
    best = max(off.values(), key=lambda o: o["batch64_sentences_per_s"])
    settings = [
        _setting_row(c, w, t, got, off[w * t], best, floors[w, t])
        for (c, w, t), got in runs.items()
    ]
    out = {
        "model": args.model,
        "beam": args.beam,
        "sentences": len(sentences),
        "offline": {f"{n}_threads": v for n, v in off.items()},
        "offline_before": before,
        "offline_after": after,
        "settings": settings,
    }
    print(json.dumps(out))


def worker_settings(text: str) -> list[tuple[int, int]]:
    """``--settings``' type: ``WORKERSxTHREADS`` pairs (``1x1,1x2,2x1``), each >= 1."""
    pairs = []
    for item in (x.strip() for x in text.split(",")):
        w, _, t = item.partition("x")
        if not (w.isdigit() and t.isdigit() and int(w) >= 1 and int(t) >= 1):
            raise argparse.ArgumentTypeError(
                f"expected WORKERSxTHREADS pairs of integers >= 1 (e.g. 1x1,1x2,2x1), got {item!r}"
            )
        pairs.append((int(w), int(t)))
    return pairs


def main() -> None:
    p = make_parser(__doc__)
    p.add_argument("--model", default="runs/m30k_word")
    p.add_argument("--train-seconds", type=positive_float, default=540, help="budget if training")
    p.add_argument("--clients", type=int_list, default=[1, 8, 32], metavar="N,N,...")
    p.add_argument("--seconds", type=positive_float, default=8.0, help="per setting and round")
    p.add_argument(
        "--max-requests", type=int_at_least(1), default=3000, help="per setting and round"
    )
    p.add_argument("--repeats", type=int_at_least(1), default=1, help="on/off alternation rounds")
    p.add_argument("--threads", type=int_at_least(1), default=2)
    p.add_argument("--beam", type=int_at_least(1), default=1)
    p.add_argument(
        "--singles", type=int_at_least(1), default=100, help="sentences timed one at a time"
    )
    p.add_argument(
        "--settings", type=worker_settings, default=[], help="WxT,...: compare workers x threads"
    )
    p.add_argument("--inputs", default="", help="sentences: a text or TSV file (first column)")
    p.add_argument("--offline-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inputs and not Path(args.inputs).is_file():
        p.error(f"--inputs {args.inputs}: no such file")
    # a terminated benchmark still stops its servers (the with-blocks' cleanup runs)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.offline_child:
        sentences = _sentences(args.inputs)
        print(
            json.dumps(offline_child(args.model, sentences, args.threads, args.beam, args.singles))
        )
        return
    exported = (Path(args.model) / "manifest.json").exists()
    if not exported and not (Path(args.model) / "config.yaml").exists():
        from transduce.tasks.train import train

        over = [f"train.max_seconds={args.train_seconds}"]
        train(load_config(RECIPE, over), args.model)
    sentences = _sentences(args.inputs)
    clients = args.clients
    if args.settings:
        return compare_settings(args, sentences, clients)
    runs: dict[tuple[int, bool], list[tuple]] = {}
    before = offline(args.model, args.threads, args.beam, args.singles)
    with (
        server(args.model, args.threads) as on,
        server(args.model, args.threads, "--max-batch-size", "1") as off,
    ):
        for port in (on, off):  # warm-up: first requests pay for lazy initialisation
            run(load(port, 4, sentences, 2.0, 40, args.beam))
        for c in clients:
            for _ in range(args.repeats):
                for batching, port in ((True, on), (False, off)):
                    got = run(load(port, c, sentences, args.seconds, args.max_requests, args.beam))
                    runs.setdefault((c, batching), []).append(got)
    settings = []
    for (c, batching), got in runs.items():
        done = sum(g[0] for g in got)
        merged = (
            done,
            sum(g[1] for g in got),
            [x for g in got for x in g[2]],
            sum(g[3] for g in got),
        )
        settings.append({"clients": c, "batching": batching, **summary(*merged)})
    after = offline(args.model, args.threads, args.beam, args.singles)
    # the machine's load drifts: compare against the mean of offline runs before and after
    off = {k: round((before[k] + after[k]) / 2, 3) for k in before}
    rate = {(s["clients"], s["batching"]): s for s in settings}
    top = max(clients)
    checks = {
        f"c{top}_batched_vs_offline": round(
            rate[top, True]["sentences_per_s"] / off["batch64_sentences_per_s"], 3
        ),
        f"c{top}_batched_vs_unbatched": round(
            rate[top, True]["sentences_per_s"] / rate[top, False]["sentences_per_s"], 3
        ),
    }
    if 1 in clients:
        checks["c1_p95_vs_offline_one_sentence"] = round(
            rate[1, True]["p95_ms"] / off["one_sentence_p95_ms"], 3
        )
    print(
        json.dumps(
            {
                "model": args.model,
                "threads": args.threads,
                "beam": args.beam,
                "sentences": len(sentences),
                "offline": off,
                "offline_before": before,
                "offline_after": after,
                "ratios": checks,
                "settings": settings,
            }
        )
    )


if __name__ == "__main__":
    run_script(main)
