"""The HTTP API: every route, results equal to the CLI's, every bad input answered with a 4xx
naming the field (and the next request served), concurrent requests batched."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from transduce.commands.cli import main
from transduce.serve.app import create_app
from transduce.serve.backend import load_models
from transduce.serve.limits import ServeLimits

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WORDS = ["αβγ", "δεζηθ", "", "γγαβ", "ζ"]


@pytest.fixture(scope="module")
def models(text_run, qa_run, series_run):
    return load_models([str(text_run), f"qa={qa_run}", f"fc={series_run}"])


@pytest.fixture(scope="module")
def client(models):
    with TestClient(create_app(models)) as c:
        yield c


def cli_jsonl(run, lines: list[str], flags: list[str], tmp_path, capsys) -> list[dict]:
    src = tmp_path / "in.txt"
    src.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    capsys.readouterr()
    argv = ["-q", "translate", "--model", str(run), "--input", str(src), "--format", "jsonl"]
    assert main(argv + flags) == 0
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def test_health_and_models(client, qa_run):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["models"] == ["greek", "qa", "fc"]
    info = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert info["greek"]["kind"] == "text" and info["fc"]["kind"] == "series"
    assert info["qa"]["input_fields"] == ["question", "document"]
    assert info["greek"]["vocab"]["source"] > 8 and info["greek"]["parameters"] > 0
    assert info["greek"]["training"]["steps"] > 0 and "loss" in info["greek"]["training"]["best"]
    assert info["fc"]["horizon"] == 6
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/v1/translate", "/v1/forecast"}
    page = client.get("/")
    assert page.status_code == 200 and "heatmap" in page.text
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//|url\(|@import", page.text)


@pytest.mark.parametrize(
    "flags",
    [
        {"beam": 3, "nbest": 2, "length_penalty": 0.6},
        {"sample": True, "nbest": 2, "seed": 7, "top_k": 3},
        {},
    ],
    ids=["beam", "sample", "greedy"],
)
def test_translate_equals_cli(client, text_run, tmp_path, capsys, flags):
    body = {"texts": WORDS, "return_attention": True, **flags}
    got = client.post("/v1/translate", json=body)
    assert got.status_code == 200, got.text
    cli_flags = []
    for k, v in flags.items():
        cli_flags += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    want = cli_jsonl(text_run, WORDS, cli_flags, tmp_path, capsys)
    results = got.json()["results"]
    assert got.json()["model"] == "greek" and len(results) == len(WORDS)
    for res, ref in zip(results, want, strict=True):
        assert [h["text"] for h in res["hypotheses"]] == [h["text"] for h in ref["hypotheses"]]
        for h, r in zip(res["hypotheses"], ref["hypotheses"], strict=True):
            assert h["score"] == pytest.approx(r["score"], abs=1e-5)
            assert h["tokens"] == r["tokens"]
            if r["attention"] is not None:
                assert np.allclose(h["attention"], r["attention"], atol=2e-4)
        assert res["src_tokens"] == ref["src_tokens"]


def test_two_input_model_equals_cli(client, qa_run, tmp_path, capsys):
    items = [{"question": "abc", "document": "xyz"}, {"question": "ca b", "document": "zz\ty"}]
    got = client.post("/v1/translate", json={"model": "qa", "texts": items})
    assert got.status_code == 200, got.text
    want = cli_jsonl(qa_run, ["abc\txyz", "ca b\tzz y"], [], tmp_path, capsys)
    assert [r["hypotheses"][0]["text"] for r in got.json()["results"]] == [
        w["hypotheses"][0]["text"] for w in want
    ]


def test_forecast_equals_cli(client, series_run, tmp_path, capsys):
    hist = [[50 + 10 * ((i + k) % 6) for i in range(30)] for k in range(3)]
    path = tmp_path / "hist.csv"
    path.write_text(
        "V1,"
        + ",".join(f"V{i + 2}" for i in range(30))
        + "\n"
        + "".join(f"S{k}," + ",".join(str(v) for v in h) + "\n" for k, h in enumerate(hist)),
        encoding="utf-8",
    )
    args = [
        "-q",
        "forecast",
        "--model",
        str(series_run),
        "--input",
        str(path),
        "--output",
        str(tmp_path / "fc.csv"),
    ]
    assert main(args) == 0
    rows = list(csv.reader(io.StringIO((tmp_path / "fc.csv").read_text())))[1:]
    stamps = [f"2024-03-01T{h:02d}:00" for h in range(24)] + [
        f"2024-03-02T0{h}:00" for h in range(6)
    ]
    body = {
        "series": [{"id": f"S{k}", "values": h, "timestamps": stamps} for k, h in enumerate(hist)]
    }
    got = client.post("/v1/forecast", json=body).json()
    assert got["horizon"] == 6 and [f["id"] for f in got["forecasts"]] == ["S0", "S1", "S2"]
    for f, row in zip(got["forecasts"], rows, strict=True):
        assert f["values"] == pytest.approx([float(v) for v in row[1:]], rel=1e-5)
    assert got["forecasts"][0]["timestamps"][:2] == ["2024-03-02T06:00:00", "2024-03-02T07:00:00"]


BAD = [
    ({"texts": []}, 422, "texts"),
    ({"texts": ["αβ", 3]}, 422, "texts[1]"),
    ({"texts": "αβ"}, 422, "texts"),
    ({}, 422, "texts"),
    ({"texts": ["αβ"], "beam": 0}, 422, "beam"),
    ({"texts": ["αβ"], "top_p": 2}, 422, "top_p"),
    ({"texts": ["αβ"], "max_len": -1}, 422, "max_len"),
    ({"texts": ["αβ"], "temperature": 0}, 422, "temperature"),
    ({"texts": ["αβ"], "sample": True, "temperature": 1e-38}, 422, "temperature"),  # overflows
    ({"texts": ["αβ"], "sample": True, "top_p": 1e-46}, 422, "top_p"),  # 0 in float32
    ({"texts": ["αβ"], "beam": 2, "constraints": [["中"]]}, 422, "constraints[0]"),
    (
        {"texts": ["αβ", "γ"], "beam": 2, "constraints": [[], ["α", "中"]]},
        422,
        "constraints[1]",
    ),
    ({"texts": ["αβ"], "beam": 2, "nbest": 3}, 422, "nbest"),
    ({"texts": ["αβ"], "beem": 2}, 422, "beem"),
    ({"texts": ["αβ"], "model": "nope"}, 404, "model"),
    ({"texts": ["αβ"], "model": "fc"}, 422, "model"),
    ({"texts": [{"text": "αβ"}]}, 422, "texts[0]"),
    ({"model": "qa", "texts": [{"question": "ab"}]}, 422, "texts[0].document"),
    ({"model": "qa", "texts": ["ab\tcd"]}, 422, "texts[0]"),
    ({"model": "qa", "texts": [{"question": "a", "document": 1}]}, 422, "texts[0].document"),
    ({"model": "qa", "texts": [{"question": "a", "document": "b", "x": ""}]}, 422, "texts[0].x"),
]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('"beam": 2, "constraints": [["\\ud800"], []]', "constraints[0]"),
        ('"prefix": "\\ud800"', "prefix"),
        ('"prefix": ["", "a\\ud800"]', "prefix[1]"),
    ],
)
def test_a_lone_surrogate_constraint_or_prefix_is_refused_by_name(client, extra, field):
    body = ('{"texts": ["αβ", "γ"], ' + extra + "}").encode()
    got = client.post("/v1/translate", content=body, headers={"Content-Type": "application/json"})
    assert got.status_code == 422 and got.json()["field"] == field, got.text


@pytest.mark.parametrize(("body", "status", "field"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_translate_requests_name_the_field(client, body, status, field):
    got = client.post("/v1/translate", json=body)
    assert got.status_code == status, got.text
    assert got.json()["field"] == field and got.json()["error"]
    ok = client.post("/v1/translate", json={"texts": ["αβγ"]})  # the server keeps serving
    assert ok.status_code == 200 and ok.json()["results"][0]["hypotheses"][0]["text"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [(b'{"texts": ["\xff\xfe"]}', 400), (b"not json", 400), (b'{"texts": [', 400)],
    ids=["utf8", "not-json", "cut"],
)
def test_unreadable_bodies_are_400(client, raw, status):
    got = client.post("/v1/translate", content=raw, headers={"content-type": "application/json"})
    assert got.status_code == status and got.json()["field"] == "body"
    assert client.post("/v1/translate", json={"texts": ["αβ"]}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"series": []}, "series"),
        ({"series": [{"id": "a", "values": []}]}, "series[0].values"),
        ({"series": [{"id": "a", "values": [1, "x"]}]}, "series[0].values[1]"),
        ({"series": [{"id": "a", "values": [5, 0, 7]}]}, "series[0].values"),  # log scaling
        (
            {"series": [{"id": "a", "values": [5, 6]}, {"id": "b", "values": [-2]}]},
            "series[1].values",
        ),
        ({"series": [{"id": "a", "values": [1, 2], "timestamps": [1]}]}, "series[0].timestamps"),
        ({"series": [{"values": [1, 2]}]}, "series[0].id"),
        ({"model": "greek", "series": [{"id": "a", "values": [1, 2]}]}, "model"),
        # the CLI refuses both: a value its scaling overflows, a level written as text
        ({"series": [{"id": "a", "values": [5, 1e300, 7]}]}, "series[0].values[1]"),
        ({"series": [{"id": "a", "values": [5, 6, 7]}], "level": ["80"]}, "level[0]"),
    ],
)
def test_bad_forecast_requests_name_the_field(client, body, field):
    got = client.post("/v1/forecast", json=body)
    assert 400 <= got.status_code < 500 and got.json()["field"] == field, got.text
    ok = client.post("/v1/forecast", json={"series": [{"id": 1, "values": [5, 6, 7]}]})
    assert ok.status_code == 200 and len(ok.json()["forecasts"][0]["values"]) == 6


def test_limits_are_enforced(models):
    limits = ServeLimits(max_texts=3, max_chars=5, max_body_kb=1, max_values=10)
    with TestClient(create_app(models, limits)) as c:
        assert c.post("/v1/translate", json={"texts": ["α"] * 4}).json()["field"] == "texts"
        assert c.post("/v1/translate", json={"texts": ["αβγδεζ"]}).json()["field"] == "texts[0]"
        assert (
            c.post("/v1/translate", json={"texts": ["α"] * 2, "beam": 2, "nbest": 2}).json()[
                "field"
            ]
            == "nbest"
        )
        big = c.post("/v1/translate", json={"texts": ["α" * 2000]})
        assert big.status_code == 413 and big.json()["field"] == "body"
        many = {"series": [{"id": "a", "values": list(range(1, 12))}]}
        assert c.post("/v1/forecast", json=many).json()["field"] == "series[0].values"
        assert c.post("/v1/translate", json={"texts": ["αβγ"]}).status_code == 200


def test_a_text_longer_than_the_model_reads_is_refused_not_truncated(client):
    # the model reads 1,024 source tokens (decode.max_input_len); the CLI truncates with a
    # warning, a server would answer for a part of the text as if for all of it
    long = "αβγ" * 350  # 1,050 characters, 1,050 tokens: within max_chars (2,000)
    got = client.post("/v1/translate", json={"texts": ["αβγ", long]})
    assert got.status_code == 422 and got.json()["field"] == "texts[1]", got.text
    assert "1,050 source tokens: this model reads at most 1,024" in got.json()["error"]
    scored = client.post("/v1/score", json={"texts": [long], "targets": ["x"]})
    assert scored.status_code == 422 and scored.json()["field"] == "texts[0]", scored.text
    assert client.post("/v1/translate", json={"texts": ["αβγ" * 341]}).status_code == 200


def test_a_prefix_outside_the_target_vocabulary_is_refused(client):
    got = client.post("/v1/translate", json={"texts": ["αβ", "γ"], "prefix": ["α", "€"]})
    assert got.status_code == 422 and got.json()["field"] == "prefix[1]", got.text
    assert "not in the target vocabulary" in got.json()["error"]
    one = client.post("/v1/translate", json={"texts": ["αβ"], "prefix": "€"})
    assert one.status_code == 422 and one.json()["field"] == "prefix", one.text


def test_concurrent_requests_share_batched_decodes(models):
    """N clients at once: fewer decode calls than N, each client gets its own answer."""
    app = create_app(models, ServeLimits(max_wait_ms=50))
    batcher = app.state.batchers["greek"]
    words = [w for w in ["αβ", "βγδ", "γδεζ", "δε", "εζηθ", "ζη", "ηθα", "θαβγ"] * 2]

    async def run() -> list[dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            replies = await asyncio.gather(
                *(c.post("/v1/translate", json={"texts": [w]}) for w in words)
            )
        return [r.json() for r in replies]

    before = batcher.calls
    replies = asyncio.run(run())
    calls = batcher.calls - before
    assert 1 <= calls < len(words)
    alone = models["greek"].translator.translate(words)
    assert [r["results"][0]["hypotheses"][0]["text"] for r in replies] == alone


def test_unbounded_bodies_and_attention_are_refused(models):
    with TestClient(create_app(models)) as c:
        chunks = (b'{"texts": ["' + b"a" * 100 + b'"]}' for _ in range(1))
        got = c.post("/v1/translate", content=chunks, headers={"content-type": "application/json"})
        assert got.status_code == 411 and got.json()["field"] == "body"  # no Content-Length
        long = ["α" * 1900] * 8
        body = {"texts": long, "beam": 4, "nbest": 4, "max_len": 1000, "return_attention": True}
        got = c.post("/v1/translate", json=body)
        assert got.status_code == 422 and got.json()["field"] == "return_attention"
        assert c.post("/v1/translate", json={"texts": ["αβγ"]}).status_code == 200
