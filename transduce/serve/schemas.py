"""Request and response bodies of the HTTP API (pydantic): what ``/docs`` shows.

Decoding options mirror ``transduce translate``'s flags; unknown keys are rejected by name,
so a misspelt option is an error rather than silently ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_BEAM = 32  # beam size and n-best list length accepted per request
MAX_OUTPUT_LEN = 1000  # the largest max_len a request may ask for
MAX_ATTENTION_CELLS = 4_000_000  # attention weights one reply may carry (about 30 MB of JSON)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TranslateRequest(_Body):
    model: str | None = Field(None, description="model name (default: the first model served)")
    texts: list[Any] = Field(
        min_length=1,
        description="inputs: strings, or objects with the model's input fields "
        '(e.g. {"question": ..., "document": ...}) for a multi-input model',
    )
    beam: int = Field(1, ge=1, le=MAX_BEAM, description="beam size (1: greedy)")
    nbest: int = Field(1, ge=1, le=MAX_BEAM, description="hypotheses (or samples) per input")
    length_penalty: float = Field(0.0, ge=0, le=10, description="GNMT length penalty alpha")
    normalize: bool = Field(False, description="rank beams by log-probability per token")
    no_repeat_ngram: int = Field(0, ge=0, le=100)
    sample: bool = Field(False, description="sample instead of searching")
    temperature: float = Field(1.0, gt=0, le=100)
    top_k: int = Field(0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = Field(None, ge=0, lt=2**63, description="sampling seed")
    max_len: int | None = Field(None, ge=1, le=MAX_OUTPUT_LEN, description="output length cap")
    max_len_ratio: float | None = Field(None, gt=0, le=100)
    return_attention: bool = Field(False, description="attention matrix per hypothesis")
    return_tokens: bool = Field(False, description="source and output tokens")


class Hypothesis(BaseModel):
    text: str
    score: float = Field(description="ranking score (length-penalised log-probability)")
    logprob: float | None = Field(None, description="sum of token log-probabilities")
    tokens: list[str] | None = None
    attention: list[list[float]] | None = Field(
        None, description="[output tokens][source tokens] attention weights"
    )


class TranslationResult(BaseModel):
    src_tokens: list[str] | None = None
    hypotheses: list[Hypothesis]


class TranslateResponse(BaseModel):
    model: str
    results: list[TranslationResult] = Field(description="one per input, in input order")
    decode_ms: float = Field(description="time from queueing to results, milliseconds")


class SeriesInput(_Body):
    id: str | int = Field(description="series name, echoed back")
    values: list[float] = Field(min_length=1, description="the history, oldest first")
    timestamps: list[str | float] | None = Field(
        None,
        description="one per value (ISO 8601 or numbers, evenly spaced); the forecast "
        "steps continue them",
    )


class ForecastRequest(_Body):
    model: str | None = None
    series: list[SeriesInput] = Field(min_length=1)


class SeriesForecast(BaseModel):
    id: str | int
    values: list[float]
    timestamps: list[str | float] | None = None


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
