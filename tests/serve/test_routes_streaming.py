"""``/v1/translate`` with ``prefix``, ``constraints`` and ``"stream": true``: the same outputs
as the Python API, every output starts with its prefix and contains its phrases, refusals
name the field, and a streamed reply's token events grow to the final text."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from transduce.inference.translate import DecodeOptions
from transduce.loading import load
from transduce.serve.app import create_app
from transduce.serve.backend import load_models

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
TEXTS = ["abc", "fedcba", "cab", "ddef"]


@pytest.fixture(scope="module")
def client(exports):
    specs = [f"torch={exports['run']}", f"ct2={exports['ct2']}"]
    with TestClient(create_app(load_models(specs, threads=1))) as c:
        yield c


def _texts(reply) -> list[list[str]]:
    assert reply.status_code == 200, reply.text
    return [[h["text"] for h in r["hypotheses"]] for r in reply.json()["results"]]


@pytest.mark.parametrize("engine", ["torch", "ct2"])
def test_prefix_one_for_all_or_one_per_text(client, exports, engine):
    body = {"model": engine, "texts": TEXTS, "beam": 3, "nbest": 2}
    got = _texts(client.post("/v1/translate", json={**body, "prefix": "f"}))
    assert all(t.startswith("f") for hyps in got for t in hyps)
    per = ["a", "", "ba", "f"]
    got = _texts(client.post("/v1/translate", json={**body, "prefix": per}))
    translator = load(exports["run" if engine == "torch" else engine], engine)
    want = translator.decode(TEXTS, DecodeOptions(beam=3, nbest=2), prefixes=per)
    assert got == [[h.text for h in hyps] for hyps in want]
    assert all(t.startswith(p) for hyps, p in zip(got, per, strict=True) for t in hyps)


def test_constraints_are_met_and_refused_by_name(client):
    constraints = [["ab"], [], ["f", "d"], ["e"]]
    body = {"model": "torch", "texts": TEXTS, "beam": 4, "nbest": 2, "constraints": constraints}
    got = _texts(client.post("/v1/translate", json=body))
    assert all(p in t for hyps, ps in zip(got, constraints, strict=True) for t in hyps for p in ps)
    for bad, field in (
        ({"model": "ct2"}, "constraints"),
        ({"beam": 1, "sample": True, "nbest": 1}, "constraints"),
        ({"constraints": [["a"]]}, "constraints"),
        ({"prefix": ["a"]}, "prefix"),
    ):
        reply = client.post("/v1/translate", json={**body, **bad})
        assert reply.status_code == 422 and reply.json()["field"] == field, reply.text


def _events(reply) -> list[tuple[str, dict]]:
    assert reply.status_code == 200 and reply.headers["content-type"].startswith(
        "text/event-stream"
    )
    out = []
    for block in reply.text.strip().split("\n\n"):
        kind, data = block.split("\n")
        out.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


@pytest.mark.parametrize("options", [{}, {"sample": True, "nbest": 2, "seed": 4}])
def test_streamed_tokens_grow_into_the_results(client, options):
    body = {"model": "torch", "texts": TEXTS, **options}
    events = _events(client.post("/v1/translate", json={**body, "stream": True}))
    plain = _texts(client.post("/v1/translate", json=body))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and kinds.count("result") == len(TEXTS)
    assert kinds.index("result") > kinds.index("token")  # tokens first, as produced
    last: dict[tuple[int, int], str] = {}
    for kind, data in events:
        if kind == "token":
            key = (data["index"], data["hypothesis"])
            assert data["text"].startswith(last.get(key, ""))  # each event extends the text
            last[key] = data["text"]
    results = [d for k, d in events if k == "result"]
    assert [[h["text"] for h in r["hypotheses"]] for r in results] == plain
    for (i, j), text in last.items():
        assert plain[i][j] == text


def test_streamed_beam_search_sends_the_hypotheses_when_done(client):
    body = {"model": "torch", "texts": TEXTS, "beam": 3, "nbest": 3, "prefix": "c"}
    events = _events(client.post("/v1/translate", json={**body, "stream": True}))
    assert [k for k, _ in events] == ["result"] * len(TEXTS) + ["done"]
    got = [[h["text"] for h in d["hypotheses"]] for k, d in events if k == "result"]
    assert got == _texts(client.post("/v1/translate", json=body))


def test_a_streamed_request_decodes_in_bounded_jobs_and_is_counted(exports):
    """With --max-batch-size 3 the four texts stream as two decode-thread jobs (other
    requests take turns between them) with the plain reply's outputs and token indices of
    the whole request; the metrics count the streamed inputs and batches."""
    from transduce.serve.limits import ServeLimits

    app = create_app(
        load_models([f"torch={exports['run']}"], threads=1), ServeLimits(max_batch_size=3)
    )
    with TestClient(app) as c:
        executor = c.app.state.serve.executor
        jobs, submit = [], executor.submit
        executor.submit = lambda *a, **k: jobs.append(a[1:]) or submit(*a, **k)
        body = {"texts": TEXTS, "sample": True, "seed": 3}
        events = _events(c.post("/v1/translate", json={**body, "stream": True}))
        assert [len(span) for (span,) in jobs] == [3, 1]
        plain = _texts(c.post("/v1/translate", json=body))
        metrics = c.get("/metrics").text
    got = [[h["text"] for h in d["hypotheses"]] for k, d in events if k == "result"]
    assert got == plain
    last = {d["index"]: d["text"] for k, d in events if k == "token"}
    assert last == {i: p[0] for i, p in enumerate(plain)}
    # each job's results as it ends: a stream its deadline stops keeps what was done
    order = [(k, d["index"]) for k, d in events if k in ("token", "result")]
    assert order.index(("result", 2)) < min(i for i, e in enumerate(order) if e[1] == 3)
    assert 'transduce_inputs_decoded_total{model="torch"} 8.0' in metrics  # 4 streamed + 4


def test_a_client_that_stops_reading_its_stream_is_cut_at_the_deadline():
    """Writes to a client that never read waited for ever: its connection, decode and
    share of the in-flight body budget were held as long as it kept the socket open."""
    import asyncio
    import time

    from transduce.serve.middleware import ClientStalled
    from transduce.serve.routes.streaming import _Response

    async def events():
        yield "event: token\ndata: {}\n\n"

    async def never_drains(message) -> None:
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()  # the socket's buffer stays full

    async def receive() -> dict:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def main() -> float:
        reply = _Response(events(), time.monotonic() - 5, media_type="text/event-stream")
        started = time.monotonic()
        with pytest.raises(ClientStalled):
            await reply({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, never_drains)
        return time.monotonic() - started

    assert asyncio.run(main()) < 3  # the deadline had passed: a second's grace
