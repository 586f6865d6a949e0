"""What one request to ``transduce serve`` may ask for (kept light: the CLI imports it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for (``transduce serve`` flags of the same names).

    ``max_compute`` bounds a translation's decoding work, counted as texts x beam (or
    n-best samples) x output length cap. ``max_batch_work`` bounds one batched decode:
    the micro-batcher splits work into batches whose items' :func:`batch_work` sums to at
    most this, and an input whose own work is over it is refused (a batch cannot split an
    input), so one batch -- and so the wait of any other request -- stays short however
    large the admissible request is (about 1 s for the demo model on one core).
    """

    max_texts: int = 256  # inputs (or series) per request
    max_chars: int = 2000  # characters per input (all fields together)
    max_values: int = 10000  # values per series
    max_body_kb: int = 4096  # request body size
    max_inflight_kb: int = 16384  # bodies handled at once (503 with Retry-After beyond)
    max_batch_size: int = 64  # inputs per batched decode
    max_wait_ms: float = 5.0  # how long a batch waits to fill
    max_compute: int = 100_000  # texts x beam x max_len per request
    max_batch_work: int = 1_500_000  # one batch's (and so one input's) work, see batch_work
    decode_timeout_s: float = 60.0  # a request's decode is cancelled after this long
    max_errors: int = 20  # validation errors reported in one reply
    max_keys: int = 1000  # JSON object keys (all levels) in one request body


def compute_cost(texts: int, beam: int, nbest: int, sample: bool, max_len: int) -> int:
    """A translation's decoding work in ``max_compute`` units: hypotheses kept per text
    (the beam, or the n-best samples drawn) x output steps, summed over texts."""
    return texts * (nbest if sample else beam) * max_len


def batch_work(chars: int, beam: int, nbest: int, sample: bool, max_len: int) -> int:
    """One input's decoding work: each hypothesis attends over the whole source at each
    of up to ``max_len`` steps, plus a few steps' worth for encoding it and copying its
    memory to every hypothesis."""
    return (nbest if sample else beam) * (max_len + 8) * max(chars, 1)


def item_work(
    chars: int,
    beam: int,
    nbest: int,
    sample: bool,
    max_len: int,
    prefix: int = 0,
    phrases: int = 0,
) -> int:
    """:func:`batch_work` of an input with a target ``prefix`` of that many characters and
    that many constraint ``phrases``: the forced prefix adds its steps, and each step then
    attends over it too (a 1,800-character prefix at beam 32 had held a server for 69 s
    while counted as a one-character input); constrained search weighs each phrase's
    candidates at every step."""
    return batch_work(chars + prefix, beam, nbest, sample, max_len + prefix) * (1 + phrases)


def spans(costs: list[int], most: int, limit: int | None) -> list[range]:
    """Consecutive items in chunks of at most ``most`` items and ``limit`` summed work (an
    item over it alone has a chunk to itself), as the micro-batcher cuts its batches: what
    a streamed or scored request decodes as one job on the decode thread."""
    out, first, spent = [], 0, 0
    for i, work in enumerate(costs):
        over = limit is not None and spent + work > limit
        if i > first and (over or i - first == most):
            out.append(range(first, i))
            first, spent = i, 0
        spent += work
    out.append(range(first, len(costs)))
    return out
