"""What one request to ``transduce serve`` may ask for (kept light: the CLI imports it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for (``transduce serve`` flags of the same names)."""

    max_texts: int = 256  # inputs (or series) per request
    max_chars: int = 2000  # characters per input (all fields together)
    max_values: int = 10000  # values per series
    max_body_kb: int = 4096  # request body size
    max_batch_size: int = 64  # inputs per batched decode
    max_wait_ms: float = 5.0  # how long a batch waits to fill
