"""Request and response bodies of the HTTP API (pydantic): what ``/docs`` shows.

The decoding options of :class:`TranslateRequest` are generated from
:class:`transduce.inference.decoding.DecodeOptions` (as ``transduce translate``'s flags are), with
the
caps a server adds (``http_le`` in a field's metadata); unknown keys are rejected by name, so
a misspelt option is an error rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import re
import typing
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    FailFast,
    Field,
    StrictFloat,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from transduce.errors import OptionError
from transduce.inference.decoding import DecodeOptions, check_rules, option_fields


# A list validated to its first wrong item: one error, not one per item (a list of 2 M
# wrong items took pydantic and FastAPI 15 s to report)
class _FailFast(FailFast):
    __hash__ = object.__hash__  # pydantic's is unhashable: it could not sit in a union


T = TypeVar("T")
FastList = Annotated[list[T], _FailFast()]

MAX_ATTENTION_CELLS = 4_000_000  # attention weights one reply may carry (about 30 MB of JSON)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _TranslateBody(_Body):
    """What a translation request holds besides its decoding options (generated below)."""

    model: str | None = Field(None, description="model name (default: the first model served)")
    texts: list[Any] = Field(
        min_length=1,
        description="inputs: strings, or objects with the model's input fields "
        '(e.g. {"question": ..., "document": ...}) for a multi-input model',
    )
    return_tokens: bool = Field(False, strict=True, description="source and output tokens")
    prefix: str | FastList[str] | None = Field(
        None,
        description='target prefix: one for every text, or one per text ("" for none); '
        "the outputs start with it, and decoding continues after it",
    )
    constraints: FastList[FastList[str]] | None = Field(
        None,
        description="terminology constraints: per text, the target phrases every output "
        "must contain (beam search with dynamic beam allocation; [] for none)",
    )
    stream: bool = Field(
        False,
        strict=True,
        description="answer with server-sent events: 'token' events (the text so far, for "
        "greedy decoding and sampling), one 'result' per text as its chunk of texts is "
        "done, then 'done'",
    )

    def decode_options(self) -> DecodeOptions:
        """The request's :class:`DecodeOptions`; a bad combination is an OptionError
        naming the request field (:func:`transduce.inference.decoding.check_rules`).
        Checked and built once per combination of values: most requests repeat a few."""
        values = _option_values(self)  # one C call: a generator of getattr was ~5 % of a
        # one-sentence request's time in a worker under load (py-spy)
        try:
            return _options(values)
        except TypeError:  # an unhashable value: checked and built uncached
            return _options.__wrapped__(values)

    @model_validator(mode="after")
    def _rules(self) -> _TranslateBody:
        try:
            self.decode_options()
        except OptionError as err:  # a 422 naming the field, as a bad value of it is
            error = PydanticCustomError("decode_options", err.message)
            detail = InitErrorDetails(type=error, loc=(err.field,), input=getattr(self, err.field))
            raise ValidationError.from_exception_data(type(self).__name__, [detail]) from None
        return self


@functools.lru_cache(maxsize=1024)
def _options(values: tuple) -> DecodeOptions:
    """DecodeOptions of a request's option values (in HTTP_FIELDS order), checked by rule
    (frozen: one instance serves every request with these values)."""
    given = {f.name: v for (f, _), v in zip(HTTP_FIELDS, values, strict=True)}
    full = {f.name: given.get(f.name, f.default) for f in option_fields()}
    check_rules(full, http_name, lambda n: f"{http_name(n)}={full[n]!r}")
    return DecodeOptions(**given)


def _request_field(f: dataclasses.Field, kind: Any) -> tuple[Any, Any]:
    """A request field from a DecodeOptions field: its type, default (``http_default``
    where a request differs), bounds with the server's caps over them, and help."""
    meta = f.metadata
    bounds = {k: meta[k] for k in ("ge", "gt", "le", "lt") if k in meta}
    bounds |= {k: meta["http_" + k] for k in ("ge", "gt", "le", "lt") if "http_" + k in meta}
    text = re.sub(r"--([a-z-]+)", lambda m: m.group(1).replace("-", "_"), meta["help"])
    default = meta.get("http_default", f.default)
    # integers and switches as JSON writes them: true was beam 1, "yes" a switch
    strict = kind in (int, bool, int | None, bool | None)
    return kind, Field(default, description=text, strict=strict or None, **bounds)


HTTP_FIELDS = [
    (f, f.metadata.get("http", f.name))
    for f in option_fields()
    if f.metadata.get("http", f.name) is not None
]
_HINTS = typing.get_type_hints(DecodeOptions)
_option_values = operator.attrgetter(*(name for _, name in HTTP_FIELDS))  # -> a tuple
assert len(HTTP_FIELDS) > 1  # (attrgetter of one name returns the value, not a tuple)


def http_name(field: str) -> str:
    """The request's name for the DecodeOptions field ``field`` (``alpha`` ->
    ``length_penalty``)."""
    return next((name for f, name in HTTP_FIELDS if f.name == field), field)


TranslateRequest = create_model(
    "TranslateRequest",
    __base__=_TranslateBody,
    __doc__="A translation request: inputs and decoding options (those of DecodeOptions).",
    **{name: _request_field(f, _HINTS[f.name]) for f, name in HTTP_FIELDS},
)


class Hypothesis(BaseModel):
    text: str
    score: float = Field(description="ranking score (length-penalised log-probability)")
    logprob: float | None = Field(None, description="sum of token log-probabilities")
    tokens: list[str] | None = None
    attention: list[list[float]] | None = Field(
        None, description="[output tokens][source tokens] attention weights"
    )


class ScoreRequest(_Body):
    """Given targets to score: ``targets[i]`` as a translation of ``texts[i]``."""

    model: str | None = Field(None, description="model name (default: the first text model)")
    texts: FastList[str] = Field(min_length=1, description="sources")
    targets: FastList[str] = Field(min_length=1, description="one target per source")


class PairScoreResult(BaseModel):
    logprob: float | None = Field(
        description="log-probability of the target and </s> (null: an empty source, skipped)"
    )
    normalized: float | None = Field(description="logprob per token (</s> counted)")
    tokens: list[str] = Field(description="the target's tokens, then </s>")
    per_token: list[float] = Field(description="the log-probability of each token")


class ScoreResponse(BaseModel):
    model: str
    results: list[PairScoreResult] = Field(description="one per pair, in order")
    decode_ms: float


class TranslationResult(BaseModel):
    src_tokens: list[str] | None = None
    hypotheses: list[Hypothesis]


class TranslateResponse(BaseModel):
    model: str
    results: list[TranslationResult] = Field(description="one per input, in input order")
    decode_ms: float = Field(description="time from queueing to results, milliseconds")


class SeriesInput(_Body):
    id: str | int = Field(description="series name, echoed back")
    values: FastList[float] = Field(min_length=1, description="the history, oldest first")
    timestamps: FastList[str | float] | None = Field(
        None,
        description="one per value (ISO 8601 or numbers, evenly spaced); the forecast "
        "steps continue them",
    )
    covariates: dict[str, FastList[float]] | None = Field(
        None,
        description="for a model trained with covariates (GET /v1/models: covariates): "
        "each one over the history by name, one value per history value",
    )
    future: dict[str, FastList[float]] | None = Field(
        None,
        description="the future-known covariates (GET /v1/models: future_covariates) over "
        "the forecast steps, at least horizon values each",
    )


class ForecastRequest(_Body):
    model: str | None = None
    series: list[SeriesInput] = Field(min_length=1)
    level: list[StrictFloat] = Field(  # "80" is not a level (the CLI refuses it)
        default_factory=list,
        max_length=8,
        description="prediction-interval levels in percent (e.g. [80, 95]): conformal "
        "intervals calibrated in the run (Forecaster.forecast_intervals)",
    )
    interval_method: Literal["conformal", "normalized"] = Field(
        "conformal",
        description="conformal: the run's calibration, one band per step for every series; "
        "normalized: each series' band scaled by the model's errors on its own last "
        "horizons (the series needs two horizons of history at least; runs trained "
        "with levels and no covariates)",
    )


class SeriesForecast(BaseModel):
    id: str | int
    values: list[float]
    timestamps: list[str | float] | None = None
    intervals: dict[str, list[float]] | None = Field(
        None, description='"lo-80", "hi-80", ...: the bounds at each requested level'
    )


class ForecastResponse(BaseModel):
    model: str
    horizon: int
    forecasts: list[SeriesForecast]
    decode_ms: float


class ModelInfo(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str
    kind: str = Field(description="text or series")
    engine: str = Field("torch", description="torch, onnx or ct2")
    preset: str
    cell: str | None = None
    parameters: int | None = Field(None, description="weights, where known (not for exports)")
    vocab: dict[str, int] | None = None
    tokenizers: dict[str, str] | None = None
    input_fields: list[str]
    horizon: int | None = None
    lookback: int | None = None
    period: int | None = None
    levels: list[str] | None = Field(
        None,
        description="interval levels (percent) the run's calibration gives finite "
        "bounds for: what /v1/forecast's level answers",
    )
    normalized_levels: list[str] | None = Field(
        None,
        description="levels of the run's normalized calibration: /v1/forecast with "
        '"interval_method": "normalized" (bands scaled to each series)',
    )
    covariates: list[str] | None = Field(
        None, description="a series model's covariates: each series gives them over its history"
    )
    future_covariates: list[str] | None = Field(
        None, description="those also needed over the forecast steps (a series' future)"
    )
    members: list[str] | None = Field(None, description="an ensemble's run directories")
    unsupported_options: list[str] = Field(
        [], description="request options this model's engine refuses (422)"
    )
    export: dict[str, Any] | None = Field(None, description="an export's source run and form")
    training: dict[str, Any] = Field(description="steps trained, best validation record")
    decoding_defaults: dict[str, Any]


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class BatchStats(BaseModel):
    calls: int = Field(description="batched decode calls made")
    items: int = Field(description="inputs decoded by them")


class LiveResponse(BaseModel):
    status: str = Field(description="alive: the process answers")


class HealthResponse(BaseModel):
    status: str = Field(description="ok once every model is loaded; loading or failed: 503")
    models: list[str]
    batches: dict[str, BatchStats]


class ErrorResponse(BaseModel):
    field: str = Field(description="the offending field, e.g. texts[2] or beam")
    error: str
    errors: list[dict[str, str]] | None = Field(None, description="every problem found")
