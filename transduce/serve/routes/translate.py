"""``POST /v1/translate``: texts through a text model's micro-batcher."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from transduce.serve import schemas as s
from transduce.serve.backend import ServedModel, TextItem, UnsupportedOption
from transduce.serve.errors import ApiError, SafeJSONResponse
from transduce.serve.limits import ServeLimits, compute_cost, item_work
from transduce.serve.routes.common import (
    ERRORS,
    BoundedState,
    arrived,
    decode_or_give_up,
    translation_result,
    unicode_text,
)
from transduce.serve.routes.streaming import streamed, targeted
from transduce.serve.state import ServeState

router = APIRouter(tags=["translate"])


@router.post(
    "/v1/translate",
    response_model=s.TranslateResponse,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def translate(body: s.TranslateRequest, request: Request, state: BoundedState) -> Any:
    return await answer(body, request, state)


async def answer(body: s.TranslateRequest, request: Request, state: ServeState) -> Any:
    """A validated translation request's reply (the route's, and the fast path's:
    :mod:`transduce.serve.fastpath`)."""
    arrived(request)
    limits = state.limits
    name, model = pick(state.models, body.model, "text")
    texts = check_texts(body.texts, model.fields, limits)
    if len(texts) * body.nbest > limits.max_texts:
        raise ApiError(422, "nbest", f"texts x nbest is over {limits.max_texts}")
    if body.return_attention:
        _check_attention_size(texts, body, model.max_len)
    _check_compute(len(texts), body, model.max_len, limits.max_compute)
    options = body.decode_options()  # its cross-option rules ran in validation (422)
    try:
        model.check(options)  # before queueing: a refused option never joins a batch
    except UnsupportedOption as err:
        raise ApiError(422, err.field, err.message) from None
    items = targeted(texts, body, model, options, limits)
    _check_input_work(items, body, model.max_len, limits.max_batch_work)
    check_input_tokens(texts, model)  # last: the one check that tokenizes
    if body.stream:
        return streamed(request, state, name, model, items, options, body)
    # seeded draws depend on the batch; constrained search runs on its inputs alone
    mergeable = not (body.sample and body.seed is not None) and not body.constraints
    start = time.perf_counter()
    work = state.batchers[name].submit(items, options, mergeable)
    hyps = await decode_or_give_up(request, state, name, work)
    ms = (time.perf_counter() - start) * 1000
    results = [translation_result(h, body) for h in hyps]
    # rendered as it stands (the shape of s.TranslateResponse, which /docs shows)
    return SafeJSONResponse({"model": name, "results": results, "decode_ms": round(ms, 3)})


def pick(models: dict[str, ServedModel], name: str | None, kind: str) -> tuple[str, Any]:
    """The model a request names (default: the first of its kind); 404 or 422 otherwise."""
    if name is None:
        name = next((n for n, m in models.items() if m.kind == kind), next(iter(models)))
    if name not in models:
        shown = name[:80].encode("ascii", "backslashreplace").decode()
        raise ApiError(404, "model", f"no model {shown!r}; serving: {', '.join(models)}")
    model = models[name]
    if model.kind != kind:
        route = "/v1/forecast" if model.kind == "series" else "/v1/translate"
        raise ApiError(422, "model", f"{name!r} is a {model.kind} model: use {route}")
    return name, model


def check_texts(
    texts: list[Any], fields: tuple[str, ...], limits: ServeLimits, name: str = "texts"
) -> list[str]:
    """The inputs as the translator reads them (several fields: tab-joined, in order);
    ``name``: the request's field (``targets`` for /v1/score's)."""
    if len(texts) > limits.max_texts:
        raise ApiError(422, name, f"{len(texts)} {name}: at most {limits.max_texts}")
    out = []
    for i, item in enumerate(texts):
        where = f"{name}[{i}]"
        if len(fields) == 1:
            if not isinstance(item, str):
                raise ApiError(422, where, "must be a string")
            text = unicode_text(item, where)
        else:
            text = _joined_fields(item, fields, where)
        if len(text) > limits.max_chars:
            raise ApiError(422, where, f"{len(text)} characters: at most {limits.max_chars}")
        out.append(text)
    return out


def check_input_tokens(texts: list[str], model: Any) -> None:
    """A text longer than the model reads (``decode.max_input_len`` source tokens) is a
    422 naming it: ``transduce translate`` truncates it with a warning, but a server's
    warning reaches no client, which would get the translation of a part as if whole. Only
    texts that could be that long are tokenized (no tokenizer makes more than four tokens
    of a character: byte fallback)."""
    translator = getattr(model, "translator", None)
    limit = (getattr(translator, "defaults", None) or {}).get("max_input_len")
    if not limit:
        return
    for i, text in enumerate(texts):
        if 4 * len(text) + 2 <= limit or not text.strip():
            continue
        n = len(translator.pipeline.src_tokens(text))
        if n > limit:
            raise ApiError(
                422,
                f"texts[{i}]",
                f"{n:,} source tokens: this model reads at most {limit:,} "
                "(decode.max_input_len); split the text",
            )


def _joined_fields(item: Any, fields: tuple[str, ...], where: str) -> str:
    if not isinstance(item, dict):
        raise ApiError(422, where, f"this model reads fields {', '.join(fields)}: give an object")
    extra = sorted(set(item) - set(fields))
    if extra:
        shown = extra[0][:80].encode("ascii", "backslashreplace").decode()
        raise ApiError(422, f"{where}.{shown}", f"unknown field; expected {', '.join(fields)}")
    for f in fields:
        if f not in item:
            raise ApiError(422, f"{where}.{f}", "missing field")
        if not isinstance(item[f], str):
            raise ApiError(422, f"{where}.{f}", "must be a string")
        unicode_text(item[f], f"{where}.{f}")
    # as the training records were packed: each field on one line, tab-joined
    return "\t".join(" ".join(item[f].split()) for f in fields)


def _check_compute(n: int, body: s.TranslateRequest, default_len: int, budget: int) -> None:
    """texts x beam (or samples) x max_len within the per-request budget; the field
    named is the one whose value is the largest factor the client chose."""
    max_len = body.max_len or default_len
    cost = compute_cost(n, body.beam, body.nbest, body.sample, max_len)
    if cost <= budget:
        return
    width = body.nbest if body.sample else body.beam
    field = "nbest" if body.sample else "beam"
    if width == 1 or (body.max_len is not None and max_len >= width and max_len >= n):
        field = "max_len"
    if n > width and n > max_len:
        field = "texts"
    raise ApiError(
        422,
        field,
        f"texts x {'nbest' if body.sample else 'beam'} x max_len = "
        f"{n} x {width} x {max_len} = {cost:,} is over this server's budget of "
        f"{budget:,} (--max-compute): lower {field} or split the request",
    )


def _check_input_work(items: list[str], body: s.TranslateRequest, default_len: int, limit: int):
    """One input's work (:func:`item_work`, its prefix and constraints counted): a batch
    cannot split an input, so this bounds how long any other request can wait behind one
    batch."""
    width = body.nbest if body.sample else body.beam
    max_len = body.max_len or default_len

    def work(x: str) -> int:
        prefix, phrases = len(getattr(x, "prefix", "")), len(getattr(x, "constraints", ()))
        return item_work(len(x), body.beam, body.nbest, body.sample, max_len, prefix, phrases)

    heaviest = max(range(len(items)), key=lambda i: work(items[i]))
    item = items[heaviest]
    if (spent := work(item)) <= limit:
        return
    prefix, phrases = getattr(item, "prefix", ""), getattr(item, "constraints", ())
    kept = "nbest" if body.sample else "beam"  # hypotheses kept per text
    if prefix and work(TextItem(str(item), "", phrases)) <= limit:
        field = "prefix" if isinstance(body.prefix, str) else f"prefix[{heaviest}]"
        detail = f"with its {len(prefix)}-character prefix"
    elif phrases and work(TextItem(str(item), prefix, ())) <= limit:
        field, detail = f"constraints[{heaviest}]", f"with its {len(phrases)} phrase(s)"
    else:
        field = kept if width > 1 else ("max_len" if body.max_len else f"texts[{heaviest}]")
        detail = (
            f"{kept} x (max_len + 8) x source characters = {width} x {max_len + 8} x {len(item)}"
        )
    raise ApiError(
        422,
        field,
        f"texts[{heaviest}] {detail}: {spent:,} is over this server's {limit:,} per input "
        f"(--max-batch-work): lower {kept if width > 1 else 'beam'} or max_len, or send a "
        "shorter text or prefix",
    )


def _check_attention_size(texts: list[str], body: s.TranslateRequest, default_len: int) -> None:
    """Bound the attention matrices a reply may carry (a token is at most one character
    here, plus one for the end)."""
    rows = body.max_len or default_len
    cells = body.nbest * rows * sum(len(t) + 1 for t in texts)
    if cells > s.MAX_ATTENTION_CELLS:
        raise ApiError(
            422,
            "return_attention",
            f"the attention matrices could reach {cells:,} "
            f"weights (at most {s.MAX_ATTENTION_CELLS:,}): send fewer or shorter "
            "texts, or lower nbest or max_len",
        )
