"""Text in, n-best texts out: the one wrapper every engine's translator shares.

:class:`TextDecoder` does what does not depend on the engine: the input length limit, empty
inputs, batching for streamed output, the options the engine refuses, and the ``translate``
/ ``translate_full`` / ``iter_decode`` API. An engine supplies its ``pipeline`` (text <->
tokens), its decoding ``defaults`` and :meth:`TextDecoder._decode_live`. Engines whose search
is :mod:`transduce.inference.searchcore` (torch, onnx) share :class:`SearchDecoder` and supply only
their array ops, model and batching. No torch is imported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from transduce.data.vocab import UNK
from transduce.errors import DataError, OptionError
from transduce.inference.calls import check_options, check_targets, check_texts, say_unmet
from transduce.inference.decoding import DecodeOptions, Translation, search_rows
from transduce.inference.scoring import PairScore, target_batch, teacher_forced
from transduce.inference.searchcore import BOS_ID, EOS_ID, PAD_ID
from transduce.inference.searchrules import limit_inputs

log = logging.getLogger("transduce.translate")

Prefixes = list[str] | None  # per input: the target text its outputs start with ("" none)
Constraints = list[list[str]] | None  # per input: target phrases its outputs contain


class TextSides(Protocol):
    """What a decoder needs of its text pipeline (``TextPipeline``, the runtime's
    ``Pipeline``): source tokens (fields packed), both vocabularies, the output tokenizer."""

    src_vocab: Any
    tgt_vocab: Any
    tgt_tok: Any

    def src_tokens(self, text: str) -> list[str]: ...


class TextDecoder:
    """``decode(texts, options)`` -> up to ``options.nbest`` translations per input, best
    first, in input order. Empty input gives one empty output; unknown symbols map to
    ``<unk>``; a source over ``max_input_len`` tokens is truncated, skipped (empty output)
    or refused, with a warning naming its line (``first_line`` numbers ``texts[0]``)."""

    engine = ""  # its name in transduce.engines (what it cannot honour is declared there)
    pipeline: TextSides
    defaults: dict[str, Any]  # decode.*: max_len, max_len_ratio, batch_size, max_input_len, ...

    def check(
        self, options: DecodeOptions, name: Callable[[str], str] = str, explicit: bool = False
    ) -> None:
        """Refuse, by name, an option this engine cannot honour (``Engine.refuses``). A
        ``best_effort`` option (attention) is refused only when asked for ``explicit``-ly
        (an HTTP ``return_attention``); otherwise the results just lack it."""
        from transduce.engines import get
        from transduce.inference.decoding import option_fields

        soft = {f.name for f in option_fields() if f.metadata.get("best_effort")}
        for field, why in get(self.engine).refuses.items():
            if not hasattr(options, field):  # an input (constraints): see check_inputs
                continue
            if getattr(options, field) and (explicit or field not in soft):
                raise OptionError(name(field), f"{name(field)}: {why}")
        if self.positions and options.max_input_len and options.max_input_len > self.positions:
            field = name("max_input_len")
            raise OptionError(
                field,
                f"{field}: {options.max_input_len}: this model reads at most "
                f"{self.positions} source tokens (its position table)",
            )

    def check_inputs(
        self, o: DecodeOptions, constraints: Constraints, name: Callable[[str], str] = str
    ) -> None:
        """Refuse, by name, constraints where they cannot apply: with sampling, or on an
        engine that declares it cannot honour them."""
        from transduce.engines import get

        if not constraints or not any(constraints):
            return
        if o.sample:
            raise OptionError(
                name("constraints"),
                f"{name('constraints')}: constraints need beam search, not {name('sample')}",
            )
        why = get(self.engine).refuses.get("constraints")
        if why:
            raise OptionError(name("constraints"), f"{name('constraints')}: {why}")

    def decode(
        self,
        texts: list[str],
        options: DecodeOptions | None = None,
        first_line: int = 1,
        *,
        prefixes: Prefixes = None,
        constraints: Constraints = None,
        on_token: Callable[[int, int, str], None] | None = None,
    ) -> list[list[Translation]]:
        """``prefixes``: per input, a target text every output starts with (decoding is
        forced through its tokens, then searches on); ``constraints``: per input, target
        phrases every output contains (beam search with dynamic beam allocation);
        ``on_token(input, hypothesis, text so far)``: called as greedy decoding and sampling
        produce each token (on the engines that run our search), for streaming."""
        texts = check_texts(texts)
        o = check_options(options)
        self.check(o)
        self.check_inputs(o, constraints)
        check_targets(len(texts), prefixes, constraints)
        tokens = limit_inputs(
            [self.pipeline.src_tokens(t) if t.strip() else [] for t in texts],
            o.max_input_len or self.defaults.get("max_input_len"),
            o.on_long_input or self.defaults.get("on_long_input") or "truncate",
            first_line,
        )
        live = [i for i, t in enumerate(tokens) if t]
        results = [[Translation("", [], [], 0.0, None, 0.0)] for _ in texts]
        args = [[tokens[i] for i in live], [texts[i] for i in live], o]
        if prefixes is not None or constraints is not None or on_token is not None:
            pre, cons = self._targets(live, prefixes, constraints, first_line)
            told = None if on_token is None else lambda p, j, text: on_token(live[p], j, text)
            args.append((pre, cons, told))  # an engine without them takes none of them
        found = self._decode_live(*args)
        for i, hyps in zip(live, found, strict=True):
            results[i] = hyps
        if constraints is not None:
            tok = self.pipeline.tgt_tok
            wanted = [[tok.encode(p) for p in c if p.strip()] for c in constraints]
            say_unmet(results, wanted, first_line)
        return results

    def _targets(self, live: list[int], prefixes: Prefixes, constraints: Constraints, first: int):
        """Target tokens of the live inputs' prefixes and constraint phrases: (prefixes,
        constraints), each None when not given. A prefix or phrase with a token outside the
        target vocabulary (never produced; forced, ``<unk>``) is refused, naming its input
        line."""
        tok = self.pipeline.tgt_tok
        pre = None if prefixes is None else [tok.encode(prefixes[i] or "") for i in live]
        for i in live if prefixes is not None else ():
            if (too_long := self.prefix_overflow(prefixes[i] or "")) is not None:
                raise DataError("<prefixes>", first + i, too_long)
            unknown = self.unproducible(prefixes[i] or "")
            if unknown is not None:
                raise DataError(
                    "<prefixes>",
                    first + i,
                    f"{unknown!r} is not in the target vocabulary: the output would begin "
                    "with <unk> there",
                )
        if constraints is None:
            return pre, None
        out = []
        for i in live:
            for phrase in filter(str.strip, constraints[i]):
                unknown = self.unproducible(phrase)
                if unknown is not None:
                    raise DataError(
                        "<constraints>",
                        first + i,
                        f"{unknown!r} is not in the target vocabulary, so no output can contain it",
                    )
            out.append([tok.encode(p) for p in constraints[i] if p.strip()])
        return pre, out

    # a position table the model cannot read past (CTranslate2's; an ONNX transformer's
    # learned one), and so the target tokens a prefix and a scored target may hold: None,
    # no bound (set by hold_positions)
    positions: int | None = None
    max_prefix: int | None = None
    max_target: int | None = None

    def hold_positions(self, positions: int) -> None:
        """Keep sources, prefixes, scored targets and outputs within a position table of
        ``positions`` rows (the decoder's: ``<s>``, then the output), where CTranslate2 and
        onnxruntime raised past it; the default ``max_input_len`` stays within it."""
        self.positions = positions
        self.max_prefix, self.max_target = positions - 2, positions - 1
        most = self.defaults.get("max_input_len") or positions
        self.defaults = {**self.defaults, "max_input_len": min(most, positions)}

    def prefix_overflow(self, prefix: str) -> str | None:
        """Why ``prefix`` is too long for this engine, or None."""
        return self._too_long(prefix, self.max_prefix)

    def target_overflow(self, target: str) -> str | None:
        """Why ``target`` is too long to score on this engine, or None."""
        return self._too_long(target, self.max_target)

    def _too_long(self, text: str | list[str], most: int | None) -> str | None:
        """Why ``text`` (or its target tokens) runs past ``most`` target tokens, or None."""
        if most is None:
            return None
        n = len(text if isinstance(text, list) else self.pipeline.tgt_tok.encode(text))
        return (
            None
            if n <= most
            else f"{n:,} target tokens: this model's decoder holds at most {most:,}"
        )

    def unproducible(self, phrase: str) -> str | None:
        """The first token of a target ``phrase`` outside the target vocabulary (no output
        can contain the phrase), or None."""
        stoi = self.pipeline.tgt_vocab.stoi
        return next((t for t in self.pipeline.tgt_tok.encode(phrase) if t not in stoi), None)

    def iter_decode(
        self,
        texts: list[str],
        options: DecodeOptions | None = None,
        *,
        prefixes: Prefixes = None,
        constraints: Constraints = None,
    ) -> Iterator[list[list[Translation]]]:
        """:meth:`decode`, one batch of inputs at a time, in input order: a caller that
        writes each part as it comes loses at most one batch to a crash."""
        size = (options and options.batch_size) or self.defaults["batch_size"]
        for start in range(0, len(texts), size):
            part = slice(start, start + size)
            yield self.decode(
                texts[part],
                options,
                first_line=start + 1,
                prefixes=None if prefixes is None else prefixes[part],
                constraints=None if constraints is None else constraints[part],
            )

    def score(
        self, texts: list[str], targets: list[str], options: DecodeOptions | None = None
    ) -> list[PairScore]:
        """The model's log-probability of each ``targets[i]`` given ``texts[i]``, teacher
        forced in batches (see :mod:`transduce.inference.scoring`). A pair with an empty source is
        skipped: ``logprob`` None."""
        texts = check_texts(texts)
        targets = check_texts(targets, "targets")
        if len(texts) != len(targets):
            raise ValueError(f"{len(texts)} sources but {len(targets)} targets")
        o = check_options(options)
        tokens = limit_inputs(
            [self.pipeline.src_tokens(t) if t.strip() else [] for t in texts],
            o.max_input_len or self.defaults.get("max_input_len"),
            o.on_long_input or self.defaults.get("on_long_input") or "truncate",
        )
        out = [PairScore(None, [], []) for _ in texts]
        live = [i for i, t in enumerate(tokens) if t]
        tgt = [self.pipeline.tgt_tok.encode(targets[i]) for i in live]
        for i, t in zip(live, tgt, strict=True):
            if (why := self._too_long(t, self.max_target)) is not None:
                raise DataError("<targets>", i + 1, why)
        tgt = self._as_unknown(tgt, [i + 1 for i in live])
        found = self._score_live([tokens[i] for i in live], [texts[i] for i in live], tgt, o)
        for i, res in zip(live, found, strict=True):
            out[i] = res
        return out

    def _as_unknown(self, targets: list[list[str]], lines: list[int]) -> list[list[str]]:
        """Target tokens outside the vocabulary as ``<unk>``, which is what the model scores
        for them (they were shown as written, their log-probabilities ``<unk>``'s), with
        one warning counting them."""
        stoi = self.pipeline.tgt_vocab.stoi
        unknown = [(n, t) for n, toks in zip(lines, targets, strict=True) for t in toks]
        unknown = [(n, t) for n, t in unknown if t not in stoi]
        if not unknown:
            return targets
        pairs = len({n for n, _ in unknown})
        log.warning(
            "score: %d target token(s) in %d pair(s) are not in the target vocabulary and "
            "are scored as %s (the first: pair %d, %r)",
            len(unknown), pairs, UNK, *unknown[0],
        )  # fmt: skip
        return [[t if t in stoi else UNK for t in toks] for toks in targets]

    def _score_live(self, tokens, texts, targets, o: DecodeOptions) -> list[PairScore]:
        """The engine's part of :meth:`score`: non-empty sources, target tokens."""
        raise NotImplementedError

    def translate_full(
        self, texts: list[str], options: DecodeOptions | None = None, **targets: Any
    ) -> list[Translation]:
        """The best translation per input, with tokens, score and attention (``targets``:
        ``prefixes``/``constraints`` as in :meth:`decode`)."""
        return [hyps[0] for hyps in self.decode(texts, options, **targets)]

    def translate(
        self, texts: list[str], options: DecodeOptions | None = None, **targets: Any
    ) -> list[str]:
        return [t.text for t in self.translate_full(texts, options, **targets)]

    def output_limits(self, o: DecodeOptions) -> tuple[int, float | None]:
        """(max_len, max_len_ratio): the options', else the model's defaults (within a
        position table: :meth:`hold_positions`)."""
        ratio = o.max_len_ratio if o.max_len_ratio is not None else self.defaults["max_len_ratio"]
        max_len = o.max_len or self.defaults["max_len"]
        return (min(max_len, self.positions - 1) if self.positions else max_len), ratio

    def _decode_live(
        self, tokens: list[list[str]], texts: list[str], o: DecodeOptions, extras=(None, None, None)
    ) -> list[list[Translation]]:
        """The engine's part: n-best lists for non-empty token lists (``texts``: their
        inputs), in order; ``extras``: their (prefix tokens, constraint phrases' tokens,
        ``on_token`` by position in ``tokens``), each None when not given."""
        raise NotImplementedError

    def _text(
        self,
        src_tokens: list[str],
        out_tokens: list[str],
        score: float,
        logprob: float | None,
        attention: np.ndarray | None,
    ) -> Translation:
        text = self.pipeline.tgt_tok.decode(out_tokens)
        return Translation(text, src_tokens, list(out_tokens), score, attention, logprob)


class SearchDecoder(TextDecoder):
    """A :class:`TextDecoder` searching with :mod:`transduce.inference.searchcore` over ``ops``
    (torch tensors or numpy arrays) and a ``model`` with the step contract."""

    ops: Any
    model: Any

    def _decode_live(self, tokens, texts, o, extras=(None, None, None)):
        out: list[list[Translation]] = [[] for _ in tokens]
        ids = [self.pipeline.src_vocab.encode(t) for t in tokens]
        vocab, (prefixes, constraints, on_token) = self.pipeline.tgt_vocab, extras
        for idx, src, mask in self._batches(ids, o.batch_size or self.defaults["batch_size"]):
            src, mask = self._sources(src, mask, [texts[i] for i in idx], o)
            prefix = None
            if prefixes is not None:
                rows = [vocab.encode(prefixes[i]) for i in idx]
                padded = np.zeros((len(rows), max(1, *map(len, rows))), dtype=np.int64)
                for r, p in enumerate(rows):
                    padded[r, : len(p)] = p
                prefix = (
                    self.ops.tensor(padded.tolist(), "int", src),
                    self.ops.tensor([len(p) for p in rows], "int", src),
                )
            cons = None
            if constraints is not None:
                cons = [[vocab.encode(p) for p in constraints[i]] for i in idx]
            limits = self.output_limits(o)
            step = None if on_token is None else self._streamer(idx, o, on_token)
            rows = search_rows(self.ops, self.model, src, mask, o, *limits, prefix, cons, step)
            for row, hyps in enumerate(rows):
                out[idx[row]] = [self._result(tokens[idx[row]], *h) for h in hyps]
        return out

    def _streamer(self, idx: list[int], o: DecodeOptions, on_token):
        """The search's ``on_step`` for a batch (rows ``idx``): each row's text so far."""
        per = o.nbest if o.sample else 1
        made: dict[int, list[int]] = {}

        def on_step(rows, tokens) -> None:
            for r, tok in zip(rows.tolist(), tokens.tolist(), strict=True):
                if tok == EOS_ID:
                    continue
                made.setdefault(r, []).append(tok)
                out = self.pipeline.tgt_vocab.decode(made[r])
                on_token(idx[r // per], r % per, self.pipeline.tgt_tok.decode(out))

        return on_step

    def _score_live(self, tokens, texts, targets, o):
        out: list[PairScore] = [PairScore(None, [], []) for _ in tokens]
        ids = [self.pipeline.src_vocab.encode(t) for t in tokens]
        vocab = self.pipeline.tgt_vocab
        for idx, src, mask in self._batches(ids, o.batch_size or self.defaults["batch_size"]):
            src, mask = self._sources(src, mask, [texts[i] for i in idx], o)
            gold = target_batch([vocab.encode(targets[i]) for i in idx], EOS_ID)
            logp = teacher_forced(
                self.ops, self.model, src, mask, self.ops.tensor(gold.tolist(), "int", src)
            )
            for row, i in enumerate(idx):
                n = len(targets[i]) + 1
                per = logp[row, :n].tolist()
                out[i] = PairScore(float(sum(per)), [*targets[i], "</s>"], per)
        return out

    def _batches(self, ids: list[list[int]], size: int):
        """Length-sorted padded batches: (positions in ``ids``, src ``[b, S]``, mask)."""
        order = np.argsort([len(x) for x in ids], kind="stable")
        for i in range(0, len(order), size):
            idx = order[i : i + size]
            src = np.full((len(idx), max(len(ids[j]) for j in idx)), PAD_ID, dtype=np.int64)
            for row, j in enumerate(idx):
                src[row, : len(ids[j])] = ids[j]
            yield idx.tolist(), src, src != PAD_ID

    def _sources(self, src, mask, texts: list[str], o: DecodeOptions):
        """What search reads for a batch (whose rows hold ``texts``): its ids and mask.
        An ensemble packs its members' own tokenizations here."""
        return src, mask

    def _result(self, src_tokens: list[str], ids, score, logprob, att) -> Translation:
        out_tokens = self.pipeline.tgt_vocab.decode(ids)
        if att is not None:
            # Keep the rows of the tokens that decode() kept (it drops <pad> and <s>).
            kept = [i for i, t in enumerate(ids[: len(att)]) if t not in (PAD_ID, BOS_ID)]
            att = self.ops.to_numpy(att)[kept][: len(out_tokens), : len(src_tokens)]
        return self._text(src_tokens, out_tokens, score, logprob, att)
