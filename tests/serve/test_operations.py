"""Operations: Prometheus metrics count what happened, request ids round-trip, readiness
flips only once models are loaded, every client mistake of the hardening sweep is a 4xx,
and a request whose caller gave up is dropped from the batcher."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from transduce.serve.app import create_app
from transduce.serve.backend import load_models
from transduce.serve.batcher import MicroBatcher
from transduce.serve.limits import ServeLimits

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def models(text_run, series_run):
    return load_models([str(text_run), f"fc={series_run}"])


def samples(client: TestClient) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_requests_inputs_and_batches(models):
    with TestClient(create_app(models)) as c:
        for i in range(5):
            assert c.post("/v1/translate", json={"texts": ["αβγ"] * (i + 1)}).status_code == 200
        assert c.post("/v1/translate", json={"texts": []}).status_code == 422
        m = samples(c)
        route = ("route", "/v1/translate")
        ok = m[("transduce_requests_total", (("method", "POST"), route, ("status", "200")))]
        bad = m[("transduce_requests_total", (("method", "POST"), route, ("status", "422")))]
        assert (ok, bad) == (5, 1)
        assert m[("transduce_inputs_decoded_total", (("model", "greek"),))] == 15
        calls = c.app.state.batchers["greek"].calls
        assert m[("transduce_batch_size_count", (("model", "greek"),))] == calls
        assert m[("transduce_batch_size_sum", (("model", "greek"),))] == 15
        assert m[("transduce_request_seconds_count", (route,))] == 6
        assert m[("transduce_queue_depth", (("model", "greek"),))] == 0
        assert m[("transduce_ready", ())] == 1


def test_request_ids_round_trip(models):
    with TestClient(create_app(models)) as c:
        got = c.get("/health", headers={"X-Request-ID": "abc-123"})
        assert got.headers["x-request-id"] == "abc-123"
        fresh = {c.get("/health/live").headers["x-request-id"] for _ in range(3)}
        assert len(fresh) == 3 and all(len(x) == 32 for x in fresh)
        odd = c.get("/health", headers={"X-Request-ID": "a b\tc" * 50})  # not echoed as is
        assert odd.headers["x-request-id"] != "a b\tc" * 50


def test_the_schema_carries_the_package_version(models):
    import transduce

    with TestClient(create_app(models)) as c:
        info = c.get("/openapi.json").json()["info"]
        assert info["version"] == transduce.__version__
        paths = c.get("/openapi.json").json()["paths"]
        assert {"/health/live", "/health/ready", "/metrics", "/v1/models"} <= paths.keys()


def test_ready_flips_only_after_loading(models):
    release = threading.Event()

    def loader():
        release.wait(30)
        return models

    app = create_app(loader=loader, names=list(models))
    with TestClient(app) as c:
        assert c.get("/health/live").status_code == 200
        assert c.get("/health/ready").status_code == 503
        refused = c.post("/v1/translate", json={"texts": ["αβ"]})
        assert refused.status_code == 503 and refused.json()["field"] == "model"
        release.set()
        for _ in range(200):
            if c.get("/health/ready").status_code == 200:
                break
            time.sleep(0.02)
        assert c.get("/health/ready").json()["status"] == "ok"
        assert c.get("/health").status_code == 200
        assert c.post("/v1/translate", json={"texts": ["αβ"]}).status_code == 200


def test_a_failed_load_is_never_ready(models):
    def loader():
        raise ValueError("vocab.src.json: damaged")

    with TestClient(create_app(loader=loader, names=["x"])) as c:
        for _ in range(100):
            if c.get("/health").json()["status"] != "loading":
                break
            time.sleep(0.02)
        got = c.get("/health/ready")
        assert got.status_code == 503 and got.json()["status"] == "failed"


@pytest.fixture(scope="module")
def client(models):
    with TestClient(create_app(models, ServeLimits(max_errors=5))) as c:
        yield c


FORECAST_BAD = [
    (["9999-12-31T22:00", "9999-12-31T23:00"], "year 9999"),
    (["2024-01-01T00:00+00:00", "2024-01-01T01:00"], "time zone"),
    (["2024-01-01T02:00", "2024-01-01T01:00"], "increase"),
    ([1.0, "2024-01-01"], "mixes"),
    ([1e308, 1.7e308], "overflow"),
    ([3.0, 3.0], "increase"),
    (["2024-01-01T00:00", "2024-01-01T01:00", "2024-01-01T03:00"], "comes 2:00:00 after"),
    (["2024-01-01", "2024-02-01", "2024-04-01"], "comes 2 month(s) after the one before"),
    ([1, 2, 4], "a gap or an irregular step"),
]


@pytest.mark.parametrize(("stamps", "why"), FORECAST_BAD)
def test_forecast_timestamps_are_4xx(client, stamps, why):
    body = {"series": [{"id": "a", "values": [5.0] * len(stamps), "timestamps": stamps}]}
    got = client.post("/v1/forecast", json=body)
    assert got.status_code == 422 and got.json()["field"] == "series[0].timestamps", got.text
    assert why in got.json()["error"]


CONTINUED = [
    (["2024-01-01", "2024-02-01"], ["2024-03-01T00:00:00", "2024-04-01T00:00:00"]),
    (["2024-01-31", "2024-02-29"], ["2024-03-31T00:00:00", "2024-04-30T00:00:00"]),
    (["2024-01-04", "2024-01-05", "2024-01-08"], ["2024-01-09T00:00:00", "2024-01-10T00:00:00"]),
    (["2024-01-11T09:00", "2024-01-12T09:00"], ["2024-01-13T09:00:00", "2024-01-14T09:00:00"]),
    ([0.5, 1.0, 1.5], [2.0, 2.5]),
    (["2023-01-28", "2023-02-28"], ["2023-03-28T00:00:00", "2023-04-28T00:00:00"]),  # not ends
    (["2024-01-05", "2024-01-08"], ["2024-01-09T00:00:00", "2024-01-10T00:00:00"]),  # Fri, Mon
    (
        ["2024-03-30T00:00+01:00", "2024-03-31T00:00+01:00", "2024-04-01T00:00+02:00"],
        ["2024-04-02T00:00:00+02:00", "2024-04-03T00:00:00+02:00"],  # daily across DST
    ),
]


@pytest.mark.parametrize(("stamps", "after"), CONTINUED)
def test_forecast_timestamps_continue_by_the_calendar(client, stamps, after):
    """Months by months (the 31st by month ends), business days over the weekend."""
    body = {"series": [{"id": "a", "values": [5.0] * len(stamps), "timestamps": stamps}]}
    got = client.post("/v1/forecast", json=body)
    assert got.status_code == 200, got.text
    assert got.json()["forecasts"][0]["timestamps"][:2] == after


def test_lone_surrogates_are_4xx(client):
    raw = b'{"texts": ["ab\\ud800c"], "return_tokens": true}'
    got = client.post("/v1/translate", content=raw, headers={"content-type": "application/json"})
    assert got.status_code == 422 and got.json()["field"] == "texts[0]"
    raw = b'{"series": [{"id": "\\udfff", "values": [1, 2]}]}'
    got = client.post("/v1/forecast", content=raw, headers={"content-type": "application/json"})
    assert got.status_code == 422 and got.json()["field"] == "series[0].id"
    raw = b'{"texts": ["ab"], "model": "\\ud800"}'
    got = client.post("/v1/translate", content=raw, headers={"content-type": "application/json"})
    assert got.status_code == 404


def test_hundreds_of_thousands_of_keys_cost_little(client):
    body = {"texts": ["αβ"], **{f"k{i}": 1 for i in range(300_000)}}
    raw = json.dumps(body).encode()
    start = time.perf_counter()
    got = client.post("/v1/translate", content=raw, headers={"content-type": "application/json"})
    took = time.perf_counter() - start
    assert got.status_code == 422 and got.json()["field"] == "body"
    assert len(got.content) < 1000 and took < 3, (len(got.content), took)
    few = client.post("/v1/translate", json={"texts": ["αβ"], **{f"k{i}": 1 for i in range(50)}})
    assert few.status_code == 422 and len(few.json()["errors"]) == 5  # --max-errors
    assert "49 more" in few.json()["error"]


def test_a_million_bad_values_cost_little(client):
    body = {"series": [{"id": k, "values": [1.0] * 9000 + ["x"] * 999} for k in range(80)]}
    start = time.perf_counter()
    got = client.post("/v1/forecast", json=body)
    assert time.perf_counter() - start < 3 and got.status_code == 422
    assert got.json()["field"] == "series[0].values[9000]" and len(got.content) < 1000
    many = client.post("/v1/translate", json={"texts": [[1]] * 5000})
    assert many.status_code == 422 and many.json()["field"] == "texts"


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("/v1/translate", {"texts": ["ab"], "beam": 4, "constraints": [[1] * 400_000]},
         "constraints"),
        ("/v1/translate", {"texts": ["ab"], "prefix": [1] * 400_000}, "prefix"),
        ("/v1/score", {"texts": ["ab"], "targets": [1] * 400_000}, "targets"),
        ("/v1/forecast", {"series": [{"id": "a", "values": [1, 2],
                                      "timestamps": [None] * 400_000}]}, "series[0]"),
        ("/v1/forecast", {"series": [{"id": "a", "values": [1, 2],
                                      "timestamps": [None] * 5_000}]}, "series[0]"),
    ],
)  # fmt: skip
def test_a_long_list_of_wrong_items_anywhere_costs_little(client, route, body, field):
    """Lists without a cap (constraints, a prefix list, targets, timestamps) took 20-45 s
    of the event loop and 2-3 GB to report 2 M wrong items, one error each."""
    start = time.perf_counter()
    got = client.post(route, json=body)
    assert time.perf_counter() - start < 3 and got.status_code == 422, got.text[:200]
    assert got.json()["field"].startswith(field) and len(got.content) < 2000


def test_compute_budget_names_the_field(client):
    got = client.post(
        "/v1/translate", json={"texts": ["αβ"], "beam": 32, "max_len": 1000, "nbest": 1}
    )
    assert got.status_code == 200  # 32,000 units: within the default 100,000
    big = {"texts": ["αβ"] * 8, "beam": 32, "max_len": 1000}
    got = client.post("/v1/translate", json=big)
    assert got.status_code == 422 and got.json()["field"] == "max_len"
    assert "100,000" in got.json()["error"]
    wide = client.post("/v1/translate", json={"texts": ["αβ"] * 200, "beam": 32, "max_len": 20})
    assert wide.status_code == 422 and wide.json()["field"] == "texts"
    # one input a batch cannot split: beam x (max_len + 8) x characters over 1,500,000
    long = client.post(
        "/v1/translate", json={"texts": ["α", "α" * 2000], "beam": 4, "max_len": 300}
    )
    assert long.status_code == 422 and long.json()["field"] == "beam"
    assert "texts[1]" in long.json()["error"] and "--max-batch-work" in long.json()["error"]


def test_models_survive_a_damaged_metrics_file(text_run, tmp_path):
    run = shutil.copytree(text_run, tmp_path / "greek")
    models = load_models([str(run)])
    (run / "metrics.jsonl").write_text(
        '[1]\n3\n{"step": "x", "split": "valid", "loss": "y"}\n'
        '{"step": 5}\n\xff\n1' + "0" * 5000 + "\n"
    )
    with TestClient(create_app(models)) as c:
        got = c.get("/v1/models")
        assert got.status_code == 200 and got.json()["models"][0]["training"]["steps"] == 5
        (run / "metrics.jsonl").unlink()
        (run / "metrics.jsonl").mkdir()  # unreadable: the summary is lost, not the reply
        assert c.get("/v1/models").status_code == 200


def test_a_cancelled_request_is_dropped_within_one_batch():
    """The caller of a 10-item request gives up after its first batch: no more of its
    items are decoded, and the next request is served."""
    seen: list[list[int]] = []
    release = threading.Event()

    def decode(items, options):
        seen.append(list(items))
        release.wait(5)
        return items

    async def main() -> None:
        batcher = MicroBatcher(decode, ThreadPoolExecutor(1), max_batch_size=2, max_wait_ms=0)
        task = asyncio.ensure_future(batcher.submit(list(range(10)), "o"))
        while not seen:
            await asyncio.sleep(0.01)
        task.cancel()
        release.set()
        assert await batcher.submit([99], "o") == [99]
        await batcher.close()

    asyncio.run(main())
    assert seen == [[0, 1], [99]]


def test_batches_are_bounded_in_work():
    """Items whose cost fills the budget go one batch each; cheap ones share."""
    sizes: list[int] = []

    def decode(items, options):
        sizes.append(len(items))
        return items

    async def main() -> None:
        b = MicroBatcher(
            decode, ThreadPoolExecutor(1), 64, 0, cost=lambda x, o: len(x), max_cost=10
        )
        assert await b.submit(["x" * 8, "x" * 8, "x" * 30, "y", "y"], None) == [
            "x" * 8,
            "x" * 8,
            "x" * 30,
            "y",
            "y",
        ]

    asyncio.run(main())
    assert sizes == [1, 1, 1, 2]


def test_a_given_up_batch_stops_between_decoding_steps(models):
    """The served torch model checks before every step's output projection: once the
    batch's requests are all given up, the search stops there instead of at max_len."""
    from transduce.inference.translate import DecodeOptions
    from transduce.serve.batcher import DecodeCancelled, _decode_batch

    model = models["greek"]
    checks = [0]

    def stop() -> bool:
        checks[0] += 1
        return checks[0] > 3

    with pytest.raises(DecodeCancelled):
        _decode_batch(model.decode, ["αβγδεζηθ" * 5], DecodeOptions(beam=2, max_len=50), stop)
    assert checks[0] == 4  # three steps ran, the fourth was refused
    checks[0] = -(10**6)  # never stops: the same decode completes
    full = _decode_batch(model.decode, ["αβγδεζηθ" * 5], DecodeOptions(beam=2, max_len=50), stop)
    assert checks[0] + 10**6 > 4 and full[0][0].out_tokens


def test_forecast_intervals_bracket_the_point_forecast(client, series_run):
    body = {
        "model": "fc",
        "series": [{"id": "a", "values": [50.0 + (i % 6) * 10 for i in range(30)]}],
    }
    got = client.post("/v1/forecast", json={**body, "level": [50, 80]})
    if not (series_run / "normalized.json").exists():  # trained without interval levels
        norm = client.post(
            "/v1/forecast", json={**body, "level": [80], "interval_method": "normalized"}
        )
        assert norm.status_code == 422 and norm.json()["field"] == "interval_method"
    if not (series_run / "conformal.json").exists():  # a run without calibration
        assert got.status_code == 422 and got.json()["field"] == "level"
        return
    assert got.status_code == 200, got.text
    f = got.json()["forecasts"][0]
    assert set(f["intervals"]) == {"lo-50", "hi-50", "lo-80", "hi-80"}
    for k, v in enumerate(f["values"]):
        assert f["intervals"]["lo-80"][k] <= f["intervals"]["lo-50"][k] <= v
        assert v <= f["intervals"]["hi-50"][k] <= f["intervals"]["hi-80"][k]
    odd = client.post("/v1/forecast", json={**body, "level": [50, 99.9]})  # not calibrated
    assert odd.status_code == 422 and odd.json()["field"] == "level[1]"
    near = client.post("/v1/forecast", json={**body, "level": [50, 79.9999999]})  # was "80"
    assert near.status_code == 422 and near.json()["field"] == "level[1]"
    twice = client.post("/v1/forecast", json={**body, "level": [80, 80.0, 50]})
    assert set(twice.json()["forecasts"][0]["intervals"]) == set(f["intervals"])
    wide = client.post("/v1/forecast", json={**body, "level": [99]})  # few windows: no bound
    assert wide.status_code == 200 or wide.json()["field"] == "level"
    plain = client.post("/v1/forecast", json=body).json()["forecasts"][0]
    assert plain["values"] == pytest.approx(f["values"]) and plain["intervals"] is None
    bad = client.post("/v1/forecast", json={**body, "level": [100]})
    assert bad.status_code == 422 and bad.json()["field"] == "level[0]"


def test_the_server_imports_no_torch():
    """Routes, middleware, metrics and the runner load without torch (exports serve from
    a torch-free install); torch comes in only with a torch model."""
    import subprocess
    import sys

    code = (
        "import sys, transduce.serve.app, transduce.serve.command, transduce.serve.server; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_long_prefix_counts_in_an_inputs_work(client):
    """A 1,800-character prefix at beam 32 on a one-character text was counted as that
    text alone: decoded on the event loop, it held every client for 69 s."""
    said = client.post("/v1/translate", json={"texts": ["αβγ"]}).json()
    piece = said["results"][0]["hypotheses"][0]["text"].replace(" ", "") or "α"
    prefix = (piece * 2000)[:1800]
    got = client.post("/v1/translate", json={"texts": ["α"], "beam": 32, "prefix": prefix})
    assert got.status_code == 422 and got.json()["field"] == "prefix", got.json()
    assert "1800-character prefix" in got.json()["error"]
    short = client.post("/v1/translate", json={"texts": ["α"], "beam": 2, "prefix": piece[:3]})
    assert short.status_code == 200


def test_paths_cannot_write_log_lines_and_docs_are_labelled(models):
    """A %0a in the path wrote a forged access-log line; /openapi.json counted as
    "unmatched"; /v1/score blamed texts[0] for a bad target."""
    forged = "/v1/models%0a7a943dc4 POST /v1/translate 200 3.1 ms"
    access, records = logging.getLogger("transduce.serve.access"), []
    handler, level = logging.Handler(), access.level
    handler.emit = records.append  # the server's own set-up may stop propagation
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        with TestClient(create_app(models)) as c:
            assert c.get(forged).status_code == 404
            assert c.get("/openapi.json").status_code == 200
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = [r.getMessage() for r in records]
    assert len(lines) == 2 and "\\x0a7a943dc4" in lines[0] and "\n" not in lines[0]
    with TestClient(create_app(models)) as c:
        c.get("/openapi.json")
        m = samples(c)
        json_route = ("route", "/openapi.json")
        assert m[("transduce_requests_total", (("method", "GET"), json_route, ("status", "200")))]
        bad = c.post("/v1/score", json={"texts": ["αβ"], "targets": ["α" * 2001]})
        assert bad.status_code == 422 and bad.json()["field"] == "targets[0]"


def test_405s_say_allow_heads_are_answered_and_defaults_round_trip(models):
    """405 replies lacked the Allow header (RFC 9110), HEAD probes got 405, and the
    decoding defaults /v1/models shows (``alpha``) were a 422 when sent back."""
    with TestClient(create_app(models)) as c:
        wrong = c.delete("/health")
        allowed = set(wrong.headers["allow"].split(", "))
        assert wrong.status_code == 405 and "GET" in allowed
        assert c.get("/v1/translate").headers["allow"] == "POST"
        assert c.head("/health/live").status_code == 200
        assert c.head("/health/ready").status_code == 200
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # two operations of one id: an invalid schema
            schema = c.get("/openapi.json").json()
        assert set(schema["paths"]["/health/live"]) == {"get"}
        described = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        shown = described["greek"]["decoding_defaults"]
        assert "alpha" not in shown and shown["return_attention"] is False
        sent = {k: v for k, v in shown.items() if v is not None}
        again = c.post("/v1/translate", json={"model": "greek", "texts": ["αβ"], **sent})
        assert again.status_code == 200, again.text


def test_a_nan_value_is_named_as_such(client):
    body = '{"model": "fc", "series": [{"id": "a", "values": [1.0, NaN, 3.0]}]}'
    got = client.post("/v1/forecast", content=body, headers={"Content-Type": "application/json"})
    assert got.status_code == 422 and got.json()["field"] == "series[0].values[1]"
    assert "NaN" in got.json()["error"]  # it said "beyond ±1e15"


def test_options_are_taken_as_json_writes_them_and_the_body_must_be_json(client):
    """ "beam": true was beam 1 and "stream": "yes" streamed; a JSON body sent as
    text/plain or gzip got "valid dictionary" (422) or "not valid JSON" (400)."""
    cases = [({"beam": True}, "beam"), ({"stream": "yes"}, "stream"), ({"beam": "2"}, "beam")]
    for extra, field in [*cases, ({"return_tokens": 1}, "return_tokens")]:
        got = client.post("/v1/translate", json={"texts": ["ab"], **extra})
        assert got.status_code == 422 and got.json()["field"] == field, got.text
    raw = json.dumps({"texts": ["ab"]}).encode()
    for headers in ({"content-type": "text/plain"}, {"content-type": "multipart/form-data"}):
        got = client.post("/v1/translate", content=raw, headers=headers)
        assert got.status_code == 415 and "send application/json" in got.json()["error"]
    import gzip

    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    got = client.post("/v1/translate", content=gzip.compress(raw), headers=headers)
    assert got.status_code == 415 and "Content-Encoding" in got.json()["error"]
    ok = client.post("/v1/translate", content=raw, headers={"content-type": "application/json"})
    assert ok.status_code == 200
