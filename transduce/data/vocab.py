"""Token <-> id mapping with the seeds' ``mask_zero`` convention: ``<pad>`` is id 0."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


class Vocab:
    """An ordered token list; ids 0-3 are ``<pad> <s> </s> <unk>``."""

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}")
        self.itos = list(tokens)
        self.stoi = {tok: i for i, tok in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("duplicate tokens in vocabulary")

    @classmethod
    def build(
        cls, sequences: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Most frequent first (ties alphabetical, so the result is deterministic)."""
        return cls.from_counts(Counter(tok for seq in sequences for tok in seq), min_freq, max_size)

    @classmethod
    def from_counts(
        cls, counts: Counter[str], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """:meth:`build` from token counts (merged over chunks of a large corpus)."""
        counts = Counter(counts)
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls([*SPECIALS, *ranked])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        get = self.stoi.get
        return [get(tok, UNK_ID) for tok in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to the first ``</s>``, without ``<pad>`` and ``<s>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                out.append(self.itos[i])
        return out

    def to_json(self) -> str:
        return json.dumps({"tokens": self.itos}, ensure_ascii=False, indent=0)

    def save(self, path: str | os.PathLike) -> None:
        from transduce.engine.checkpoint import atomic_write_text

        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        """Read a saved vocabulary; a missing, truncated or foreign file is one DataError."""
        from transduce.config import cut
        from transduce.data.lines import read_capped
        from transduce.errors import DataError

        raw = read_capped(path, what="vocabulary")  # bounded: /dev/zero stops at the cap
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise DataError(path, None, f"not a readable vocabulary ({cut(str(err))})") from None
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(path, None, 'not a vocabulary (expected {"tokens": [strings]})')
        try:
            return cls(tokens)
        except ValueError as err:
            raise DataError(path, None, f"not a vocabulary: {err}") from None
