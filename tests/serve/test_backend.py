"""Model specs, loading by kind and engine, ensembles, and the training summary of
``/v1/models``. Exported models (conftest's tiny transformer, exported to ONNX and
CTranslate2) answer as the runtime does; options CTranslate2 cannot honour get a 4xx."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from transduce.config import ConfigError
from transduce.inference.translate import DecodeOptions
from transduce.loading import load as load_runtime
from transduce.serve.app import create_app
from transduce.serve.backend import TextModel, load_models, parse_model_specs
from transduce.serve.describe import training_summary

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WORDS = ["abc", "fedcba", "", "bbad", "e"]


def test_model_specs_name_runs_by_folder_or_given_name(text_run, series_run):
    specs = parse_model_specs([str(text_run), f"fc={series_run}"])
    assert specs == {text_run.name: [text_run], "fc": [series_run]}
    with pytest.raises(ConfigError, match="given twice"):
        parse_model_specs([f"a={text_run}", f"a={series_run}"])
    with pytest.raises(ConfigError, match="not a transduce run"):
        parse_model_specs([f"a={text_run / 'nothing'}"])


def test_plus_joins_ensemble_members(text_run, series_run):
    specs = parse_model_specs([f"e={text_run}+{text_run}", f"{series_run}+{series_run}"])
    assert specs == {"e": [text_run, text_run], "fc+fc": [series_run, series_run]}
    with pytest.raises(ConfigError, match="nothing is not a transduce run"):
        parse_model_specs([f"e={text_run}+{text_run / 'nothing'}"])
    with pytest.raises(ConfigError, match="mixes text and forecasting"):
        load_models([f"e={text_run}+{series_run}"])


def test_kinds_follow_the_config(text_run, series_run):
    models = load_models([f"t={text_run}", f"s={series_run}"])
    assert (models["t"].kind, models["s"].kind) == ("text", "series")
    assert models["t"].decode(["αβ"], DecodeOptions())[0][0].text
    assert models["s"].decode([np.arange(1.0, 20.0)])[0].shape == (6,)


def test_training_summary_takes_the_best_record_and_skips_a_cut_line(tmp_path):
    rows = [
        {"split": "train", "step": 5, "loss": 3.0},
        {"split": "valid", "step": 5, "loss": 2.0, "bleu": 10.0, "seconds": 1.0},
        {"split": "valid", "step": 10, "loss": 2.5, "bleu": 12.0, "seconds": 2.0},
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"split": "valid", "ste'
    (tmp_path / "metrics.jsonl").write_text(text, encoding="utf-8")
    by_loss = training_summary(tmp_path, "loss")
    assert by_loss == {"steps": 10, "best": {"step": 5, "loss": 2.0, "bleu": 10.0}}
    assert training_summary(tmp_path, "bleu")["best"]["step"] == 10
    assert training_summary(tmp_path / "none", "loss") == {}


@pytest.fixture(scope="module")
def export_client(exports):
    specs = [f"{e}={exports[e]}" for e in ("onnx", "ct2")]
    with TestClient(create_app(load_models(specs, threads=1))) as c:
        yield c


def hypotheses(results) -> list[list[tuple]]:
    return [[(h.text, h.score, h.logprob, h.out_tokens) for h in hyps] for hyps in results]


def served(reply: dict) -> list[list[tuple]]:
    return [
        [(h["text"], h["score"], h["logprob"], h["tokens"]) for h in r["hypotheses"]]
        for r in reply["results"]
    ]


@pytest.mark.parametrize("engine", ["onnx", "ct2"])
@pytest.mark.parametrize("beam", [1, 3])
def test_exported_model_answers_as_the_runtime(export_client, exports, engine, beam):
    nbest = 2 if beam > 1 else 1
    body = {"model": engine, "texts": WORDS, "beam": beam, "nbest": nbest, "return_tokens": True}
    reply = export_client.post("/v1/translate", json=body)
    assert reply.status_code == 200, reply.text
    direct = load_runtime(str(exports[engine]), threads=1).decode(
        WORDS, DecodeOptions(beam=beam, nbest=nbest, attention=False)
    )
    assert served(reply.json()) == hypotheses(direct)
    assert any(h[0][0] for h in hypotheses(direct))  # something non-empty to compare


def test_onnx_export_returns_attention_as_the_runtime(export_client, exports):
    body = {"model": "onnx", "texts": ["abc", "dcbaf"], "return_attention": True}
    reply = export_client.post("/v1/translate", json=body).json()
    direct = load_runtime(str(exports["onnx"]), threads=1).decode(["abc", "dcbaf"], DecodeOptions())
    for r, hyps in zip(reply["results"], direct, strict=True):
        want = np.round(hyps[0].attention.astype(np.float64), 4).tolist()
        assert r["hypotheses"][0]["attention"] == want and r["src_tokens"] == hyps[0].src_tokens


def test_exported_models_are_described(export_client, exports):
    info = {m["name"]: m for m in export_client.get("/v1/models").json()["models"]}
    for engine in ("onnx", "ct2"):
        m = info[engine]
        assert (m["engine"], m["preset"], m["kind"]) == (engine, "transformer", "text")
        assert m["vocab"]["source"] > 6 and m["vocab"]["target"] > 6
        assert m["decoding_defaults"]["max_len"] == 12 and m["decoding_defaults"]["beam"] == 1
        assert m["export"]["source_run"] == str(exports["run"]) and m["parameters"] is None
    assert info["ct2"]["unsupported_options"] == [
        "length_penalty",
        "return_attention",
        "constraints",
    ]
    assert info["onnx"]["unsupported_options"] == []


@pytest.mark.parametrize(
    ("option", "field"),
    [
        ({"beam": 2, "length_penalty": 0.6}, "length_penalty"),
        ({"return_attention": True}, "return_attention"),
    ],
)
def test_options_ct2_cannot_honour_get_a_4xx_naming_them(export_client, option, field):
    reply = export_client.post("/v1/translate", json={"model": "ct2", "texts": ["abc"], **option})
    assert reply.status_code == 422 and reply.json()["field"] == field
    assert "CTranslate2" in reply.json()["error"]
    onnx = export_client.post("/v1/translate", json={"model": "onnx", "texts": ["abc"], **option})
    assert onnx.status_code == 200  # the same option is fine on the onnx engine
    again = export_client.post("/v1/translate", json={"model": "ct2", "texts": ["abc"]})
    assert again.status_code == 200 and again.json()["results"][0]["hypotheses"]


def test_engine_flag_must_match_every_model(exports):
    with pytest.raises(ConfigError, match="is an onnx export"):
        load_models([str(exports["onnx"])], engine="torch")
    with pytest.raises(ConfigError, match="training run; export it first"):
        load_models([str(exports["run"])], engine="ct2")
    assert load_models([f"x={exports['ct2']}"], engine="ct2")["x"].engine == "ct2"
    with pytest.raises(ConfigError, match="ensembles are of training runs"):
        load_models([f"e={exports['run']}+{exports['onnx']}"])


def test_ensemble_of_one_serves_as_the_single_model(text_run):
    models = load_models([f"single={text_run}", f"twice={text_run}+{text_run}"])
    models["one"] = TextModel.load_ensemble("one", [text_run])
    body = {"texts": ["αβγ", "δεζηθ", "", "ζ"], "beam": 3, "nbest": 2, "return_attention": True}
    with TestClient(create_app(models)) as client:
        replies = {
            name: client.post("/v1/translate", json={**body, "model": name}).json()
            for name in ("single", "one", "twice")
        }
        info = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert replies["one"]["results"] == replies["single"]["results"]
    texts = [[h["text"] for h in r["hypotheses"]] for r in replies["single"]["results"]]
    twice = [[h["text"] for h in r["hypotheses"]] for r in replies["twice"]["results"]]
    assert twice == texts  # two identical members average to the same distribution
    assert info["twice"]["members"] == [str(text_run)] * 2 and info["single"]["members"] is None
    assert info["twice"]["parameters"] == 2 * info["single"]["parameters"]


def test_forecast_ensemble_is_the_median_of_its_members(series_run):
    models = load_models([f"single={series_run}", f"ens={series_run}+{series_run}"])
    history = [np.arange(1.0, 30.0), np.linspace(5.0, 9.0, 25)]
    single, ens = models["single"].decode(history), models["ens"].decode(history)
    for a, b in zip(single, ens, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert models["ens"].describe()["decoding_defaults"] == {"combine": "median"}


def test_a_given_up_batch_stops_between_an_onnx_exports_steps(exports):
    """An ONNX export's search checks before each decoder step (as a torch run does before
    each output projection): once every request of the batch is given up, it stops there."""
    from transduce.serve.backend import ExportedModel
    from transduce.serve.batcher import DecodeCancelled, _decode_batch

    model = ExportedModel.load("onnx", exports["onnx"], threads=1)
    ExportedModel("again", exports["onnx"], model.translator)  # wrapping twice: one check
    checks = [0]

    def stop() -> bool:
        checks[0] += 1
        return checks[0] > 1

    options = DecodeOptions(beam=1, max_len=40)  # greedy: one step a token (and </s>)
    with pytest.raises(DecodeCancelled):
        _decode_batch(model.decode, ["abcdef"], options, stop)
    assert checks[0] == 2  # one step ran, the second was refused
    checks[0] = -(10**6)  # never stops: the same decode completes like the runtime's own
    full = _decode_batch(model.decode, ["abcdef"], options, stop)
    direct = load_runtime(str(exports["onnx"]), threads=1).decode(["abcdef"], options)
    assert full[0][0].text == direct[0][0].text
    n = len(full[0][0].out_tokens)
    assert checks[0] + 10**6 in (n, n + 1)  # one check a step, wrapped once


def test_a_prefix_past_ct2s_position_table_is_a_422_and_seeds_repeat(export_client):
    """A 1,030-character prefix was a 500 (CTranslate2 raised past its 1,024 positions),
    and a seeded sample differed at every request on CTranslate2."""
    long = export_client.post(
        "/v1/translate", json={"model": "ct2", "texts": ["abc"], "prefix": "a" * 1030}
    )
    assert long.status_code == 422 and long.json()["field"] == "prefix"
    assert "decoder holds at most 1,022" in long.json()["error"]
    onnx = export_client.post(
        "/v1/translate", json={"model": "onnx", "texts": ["abc"], "prefix": "a" * 1030}
    )
    assert onnx.status_code in (200, 422) and onnx.json().get("field") != "prefix"
    seeded = {"model": "ct2", "texts": ["abcabc", "cab"], "sample": True, "seed": 3}
    seeded["temperature"] = 3.0
    replies = [export_client.post("/v1/translate", json=seeded).json() for _ in range(3)]
    assert replies[0]["results"] == replies[1]["results"] == replies[2]["results"]


def test_a_score_target_past_ct2s_position_table_is_a_422(export_client):
    body = {"model": "ct2", "texts": ["abc", "abc"], "targets": ["a", "a" * 1030]}
    got = export_client.post("/v1/score", json=body)
    assert got.status_code == 422 and got.json()["field"] == "targets[1]", got.text


def test_a_seeded_ct2_sample_never_decodes_on_the_event_loop(exports):
    """It loads a translator first (runtime/ct2.py): inline, it stalled every client."""
    from transduce.inference.decoding import DecodeOptions
    from transduce.serve.state import _within_defaults

    models = load_models([f"c={exports['ct2']}", f"o={exports['onnx']}"], threads=1)
    seeded = DecodeOptions(sample=True, seed=3)
    assert not _within_defaults(models["c"])(seeded)
    assert _within_defaults(models["c"])(DecodeOptions(sample=True))
    assert _within_defaults(models["o"])(seeded)
