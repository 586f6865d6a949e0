"""The translate fast path answers exactly as the FastAPI route does: the same request sent
as plain ``application/json`` (fast path) and with a charset parameter (the route) gets the
same status and body, valid or not; the fast path is really taken for the valid ones."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from transduce.serve.app import create_app
from transduce.serve.backend import load_models
from transduce.serve.fastpath import FastTranslate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BODIES = [
    {"texts": ["αβγ"]},
    {"texts": ["αβγ", "δεζηθ", ""], "beam": 3, "nbest": 2, "return_tokens": True},
    {"texts": ["γγαβ"], "return_attention": True, "max_len": 12},
    {"texts": ["αβ"], "sample": True, "seed": 3, "nbest": 2},
    {"texts": ["αβ"], "prefix": "β"},
]
# refused by validation: the fast path hands them to the route
EARLY = [
    {"texts": []},
    {"texts": ["αβ"], "beam": 0},
    {"texts": ["αβ"], "bem": 2},
    {"texts": ["αβ"], "sample": True, "beam": 4},
    [1, 2],
]
# valid in shape, refused by the route's own checks: the fast path answers them itself
LATE = [{"texts": ["αβ"], "model": "nope"}, {"texts": ["α" * 5000]}, {"texts": [1]}]


def fast_path(app) -> FastTranslate:
    node = app.front  # the server's layers, in front of FastAPI's
    while not isinstance(node, FastTranslate):
        node = node.app
    return node


@pytest.fixture(scope="module")
def client(text_run):
    with TestClient(create_app(load_models([str(text_run)]))) as c:
        yield c


def post(client, body, content_type: str):
    got = client.post(
        "/v1/translate", content=json.dumps(body), headers={"content-type": content_type}
    )
    reply = got.json()
    if isinstance(reply, dict):
        reply.pop("decode_ms", None)
    return got.status_code, reply


@pytest.mark.parametrize("body", BODIES + EARLY + LATE)
def test_fast_path_and_route_answer_alike(client, body):
    fast = fast_path(client.app)
    before = fast.answered
    quick = post(client, body, "application/json")
    taken = fast.answered - before
    routed = post(client, body, "application/json; charset=utf-8")
    assert fast.answered - before == taken  # the charset sends it the FastAPI way
    assert quick == routed
    assert taken == (0 if body in EARLY else 1)
    assert (quick[0] == 200) == (body in BODIES), quick


def test_fast_path_counts_and_tags_like_the_route(client):
    client.post("/v1/translate", json={"texts": ["αβ"]}, headers={"X-Request-ID": "fast-1"})
    got = client.post("/v1/translate", json={"texts": ["αβ"]}, headers={"X-Request-ID": "fast-2"})
    assert got.headers["x-request-id"] == "fast-2"
    metrics = client.get("/metrics").text.splitlines()
    counted = [
        float(x.rsplit(" ", 1)[1])
        for x in metrics
        if x.startswith("transduce_requests_total{")
        and 'route="/v1/translate"' in x
        and 'status="200"' in x
    ]
    assert counted and counted[0] >= 2


def test_a_model_failure_is_the_same_json_500_on_both_paths(text_run):
    """The fast path runs in front of FastAPI's error handling: a model that fails still
    gets the route's JSON 500 (not uvicorn's plain text), counted as a 500."""
    models = load_models([str(text_run)])

    def broken(items, options):
        raise RuntimeError("the engine fell over")

    for model in models.values():
        model.decode = broken  # before create_app: the batcher holds the method
    with TestClient(create_app(models), raise_server_exceptions=False) as c:
        fast = fast_path(c.app)
        replies = []
        for content_type in ("application/json", "application/json; charset=utf-8"):
            before = fast.answered
            got = c.post(
                "/v1/translate",
                content=json.dumps({"texts": ["αβ"]}),
                headers={"content-type": content_type},
            )
            replies.append((fast.answered - before, got.status_code, got.json()))
        assert [r[0] for r in replies] == [1, 0]  # the first went the fast way
        assert replies[0][1:] == replies[1][1:]
        status, body = replies[0][1:]
        assert status == 500 and body["field"] == "body" and "RuntimeError" in str(body)
        metrics = c.get("/metrics").text
        assert 'route="/v1/translate",status="500"} 2.0' in metrics
