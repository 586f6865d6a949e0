"""``POST /v1/score``: per pair the same log-probabilities as the Python API (which equal the
training loss, tests/test_decode_targets.py), on torch, ONNX and CTranslate2 models; bad
requests are 422 naming the field, and the compute budget applies."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from transduce.loading import load
from transduce.serve.app import create_app
from transduce.serve.backend import load_models
from transduce.serve.limits import ServeLimits

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
TEXTS = ["abc", "fedcba", "", "cab"]
TARGETS = ["cba", "abcdef", "x", "abc"]


@pytest.fixture(scope="module")
def client(exports):
    specs = [f"torch={exports['run']}", f"onnx={exports['onnx']}", f"ct2={exports['ct2']}"]
    with TestClient(create_app(load_models(specs, threads=1))) as c:
        yield c


@pytest.mark.parametrize("engine", ["torch", "onnx", "ct2"])
def test_scores_equal_the_python_api(client, exports, engine):
    reply = client.post("/v1/score", json={"model": engine, "texts": TEXTS, "targets": TARGETS})
    assert reply.status_code == 200, reply.text
    got = reply.json()["results"]
    want = load(exports[engine if engine != "torch" else "run"], engine).score(TEXTS, TARGETS)
    assert len(got) == len(TEXTS) and got[2]["logprob"] is None  # an empty source: skipped
    for g, w in zip(got, want, strict=True):
        if w.logprob is not None:
            assert g["logprob"] == pytest.approx(w.logprob, abs=1e-5)
            assert g["tokens"] == w.tokens and len(g["per_token"]) == len(g["tokens"])
            assert g["normalized"] == pytest.approx(w.logprob / len(w.tokens), abs=1e-5)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"texts": ["abc"], "targets": ["a", "b"]}, "targets"),
        ({"texts": ["abc"]}, "targets"),
        ({"texts": [1], "targets": ["a"]}, "texts[0]"),
        ({"texts": ["abc"], "targets": ["a"], "beam": 2}, "beam"),
        ({"model": "none", "texts": ["abc"], "targets": ["a"]}, "model"),
    ],
)
def test_bad_requests_name_the_field(client, body, field):
    reply = client.post("/v1/score", json=body)
    assert reply.status_code in (404, 422) and reply.json()["field"] == field, reply.text


def test_the_compute_budget_applies(exports):
    limits = ServeLimits(max_compute=50)
    with TestClient(create_app(load_models([str(exports["run"])]), limits)) as c:
        reply = c.post("/v1/score", json={"texts": ["abc"] * 10, "targets": ["cbacba"] * 10})
        assert reply.status_code == 422 and reply.json()["field"] == "targets"
        assert "--max-compute" in reply.json()["error"]
        assert c.post("/v1/score", json={"texts": ["abc"], "targets": ["cba"]}).status_code == 200


def test_scoring_runs_in_bounded_chunks_with_the_same_scores(exports):
    """Chunks of at most --max-batch-size pairs and --max-batch-work, one executor job each
    (other requests' batches take turns between them), give the scores of one call; a pair
    over the per-batch work by itself is refused by name."""
    want = load(exports["run"], "torch").score(TEXTS, TARGETS)
    limits = ServeLimits(max_batch_size=2, max_batch_work=60)  # "fedcba"/"abcdef": 15 x 6
    with TestClient(create_app(load_models([str(exports["run"])]), limits)) as c:
        reply = c.post("/v1/score", json={"texts": TEXTS, "targets": TARGETS})
        assert reply.status_code == 422 and reply.json()["field"] == "texts[1]", reply.text
        jobs = []
        executor = c.app.state.serve.executor
        submit = executor.submit
        executor.submit = lambda *a, **k: jobs.append(len(a[1])) or submit(*a, **k)
        texts, targets = TEXTS[::2] + TEXTS[3:], TARGETS[::2] + TARGETS[3:]
        reply = c.post("/v1/score", json={"texts": texts, "targets": targets})
        assert reply.status_code == 200, reply.text
    assert jobs == [2, 1]  # "abc"/"cba" 12 x 3 = 36, "" / "x", then "cab"/"abc" 36
    wanted = [want[0], want[2], want[3]]
    for g, w in zip(reply.json()["results"], wanted, strict=True):
        assert (g["logprob"] is None) == (w.logprob is None)
        if w.logprob is not None:
            assert g["logprob"] == pytest.approx(w.logprob, abs=1e-5)
