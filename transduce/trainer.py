"""The Trainer: teacher-forcing policy, loss, optimisation, validation, checkpoints, resume.

Nothing here knows which preset it trains: it uses ``encode``/``init_state``/``step``/
``head`` and the decoder's teacher-forced ``forward``. Under torchrun each process holds
one Trainer on its shard of the batches, and only rank 0 writes (:mod:`transduce.distributed`).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from transduce import checkpoint as ckpt
from transduce import distributed, interrupt
from transduce.config import Config, ConfigError, TrainConfig
from transduce.data.batches import Batch, ParallelData
from transduce.data.pipeline import TextPipeline
from transduce.data.vocab import EOS_ID, PAD_ID
from transduce.metrics import bleu_chrf, perplexity
from transduce.nn.models import Seq2Seq
from transduce.optim import Schedule, build_optimizer
from transduce.search import greedy


@dataclass
class RunResult:
    run_dir: Path
    best: dict[str, Any]
    last: dict[str, Any]
    steps: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    interrupted: int | None = None  # the signal that stopped the run (SIGINT, SIGTERM)


def teacher_forcing_ratio(cfg: TrainConfig, step: int) -> float:
    """Probability of feeding the gold token at ``step`` (scheduled sampling,
    Bengio et al. 2015, section 2.4: linear, exponential and inverse-sigmoid decay)."""
    top, low, k = cfg.teacher_forcing, cfg.teacher_forcing_min, cfg.teacher_forcing_k
    if cfg.teacher_forcing_schedule == "constant":
        return top
    if cfg.teacher_forcing_schedule == "linear":
        return max(low, top - (top - low) * step / k)
    if cfg.teacher_forcing_schedule == "exponential":  # k < 1 here: ratio = k ** step
        return max(low, top * k**step)
    return max(low, top * k / (k + math.exp(min(step / k, 700.0))))  # inverse sigmoid


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda: no CUDA device is available here (use cpu or auto)")
    return torch.device(name)


class Trainer:
    def __init__(
        self,
        cfg: Config,
        model: Seq2Seq,
        pipeline: TextPipeline,
        train_data: ParallelData,
        valid_data: ParallelData,
        run_dir: str | os.PathLike,
        rank: int = 0,
        world: int = 1,
        valid_refs: list[str] | None = None,
    ):
        self.cfg, self.tcfg = cfg, cfg.train
        self.device = resolve_device(cfg.train.device)
        self.model = model.to(self.device)
        self.pipeline, self.train_data, self.valid_data = pipeline, train_data, valid_data
        self.run_dir, self.rank, self.world = Path(run_dir), rank, world
        self.optimizer = build_optimizer(self.tcfg, model.parameters())
        self.valid_refs = valid_refs  # raw target text, for validation BLEU
        needs = {"exact": self.tcfg.valid_exact, "bleu": self.tcfg.valid_bleu}
        if not needs.get(self.tcfg.early_stop_metric, True):
            metric = self.tcfg.early_stop_metric
            raise ValueError(f"train.early_stop_metric={metric} needs train.valid_{metric}: true")
        total = self.tcfg.max_steps or self.tcfg.epochs * len(self._batches(0))
        self.schedule = Schedule(self.tcfg, self.optimizer, total)
        # Scheduled-sampling coins; each rank draws its own.
        self.coins = torch.Generator().manual_seed(self.tcfg.seed + 7 + 1009 * rank)
        self.step = self.epoch = self.position = 0  # position: batches done in this epoch
        self.best: dict[str, Any] | None = None
        self.stale = 0  # validations without improvement
        self.elapsed = 0.0
        self.history: list[dict[str, Any]] = []
        self.signal: int | None = None  # set when SIGINT/SIGTERM stopped the run

    # ------------------------------------------------------------------ one update

    def loss(self, batch: Batch, ratio: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Summed token cross-entropy, and the number of correct tokens (eval mode only)."""
        memory = self.model.encode(batch.src, batch.src_mask)
        state = self.model.init_state(memory)
        if ratio >= 1.0:
            features, _ = self.model.decoder(batch.tgt_in, memory, state)
            logits = self.model.head(features)  # [B, T, V]
        else:
            logits = self._scheduled_sampling(batch, memory, state, ratio)
        flat = logits.reshape(-1, logits.shape[-1]).float()
        target = batch.tgt_out.reshape(-1)
        loss = F.cross_entropy(
            flat,
            target,
            ignore_index=PAD_ID,
            label_smoothing=self.tcfg.label_smoothing if self.model.training else 0.0,
            reduction="sum",
        )
        correct = None  # accuracy only where it is reported (validation)
        if not self.model.training:
            correct = ((flat.argmax(-1) == target) & (target != PAD_ID)).sum()
        return loss, correct

    def _scheduled_sampling(self, batch: Batch, memory, state, ratio: float) -> torch.Tensor:
        """Step-by-step unroll feeding the gold token with probability ``ratio``, else the
        model's own argmax (Bengio et al. 2015)."""
        prev, steps, logits = batch.tgt_in[:, 0], batch.tgt_in.shape[1], []
        for t in range(steps):
            features, state, _ = self.model.step(prev, state, memory)
            logits.append(self.model.head(features))  # [B, V]
            if t + 1 < steps:
                gold = batch.tgt_in[:, t + 1]
                coin = torch.rand(gold.shape[0], generator=self.coins).to(gold.device) < ratio
                prev = torch.where(coin, gold, logits[-1].argmax(-1).detach())
        return torch.stack(logits, 1)

    def update(self, batch: Batch) -> tuple[float, int]:
        self.model.train()
        batch = batch.to(self.device)
        ntokens = batch.ntokens
        self.schedule.before_step(self.step)
        with self._autocast():
            loss, _ = self.loss(batch, teacher_forcing_ratio(self.tcfg, self.step))
        self.optimizer.zero_grad(set_to_none=True)
        if self.world > 1:  # gradients summed over ranks, divided by the global token count
            loss.backward()
            params = [p for p in self.model.parameters() if p.requires_grad]
            mean, ntokens = distributed.sync_gradients(params, loss, ntokens)
        else:
            (loss / max(ntokens, 1)).backward()
            mean = float(loss.detach()) / max(ntokens, 1)
        if self.tcfg.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tcfg.clip_norm)
        self.optimizer.step()
        self.step += 1
        return mean, ntokens

    def _autocast(self):
        """bf16 autocast when configured (matmuls in bf16, the loss in fp32)."""
        enabled = self.tcfg.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    # ------------------------------------------------------------------ validation

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        self.model.eval()
        loss_sum, correct, total = 0.0, 0, 0
        # Each rank scores its share of the batches; the sums are added over ranks.
        for batch in distributed.shard(
            list(self.valid_data.iter_batches(self.cfg.decode.batch_size))
        ):
            batch = batch.to(self.device)
            with self._autocast():
                loss, right = self.loss(batch, 1.0)
            loss_sum, correct = loss_sum + float(loss), correct + int(right)
            total += batch.ntokens
        loss_sum, correct, total = distributed.all_sum([loss_sum, correct, total])
        metrics = {"loss": loss_sum / max(total, 1), "acc": correct / max(total, 1)}
        metrics["ppl"] = perplexity(metrics["loss"])
        if self.tcfg.valid_exact or self.tcfg.valid_bleu:
            metrics.update(self.decode_validation())
        return metrics

    def decode_validation(self) -> dict[str, float]:
        """Greedy-decode (the first ``valid_max``) validation sources: exact match of the
        token ids, and BLEU of the detokenized text against the raw references."""
        n = len(self.valid_data)
        if self.tcfg.valid_max is not None:
            n = min(n, self.tcfg.valid_max)
        data = self.valid_data.subset(np.arange(n))
        hits, decoded = 0, {}  # decoded: example index -> text, this rank's share
        for batch in distributed.shard(list(data.iter_batches(self.cfg.decode.batch_size))):
            batch = batch.to(self.device)
            with self._autocast():
                hyp = greedy(self.model, batch.src, batch.src_mask, self.cfg.decode.max_len)
            gold = batch.tgt_out.masked_fill(batch.tgt_out == EOS_ID, PAD_ID)  # [B, T]
            width = max(hyp.tokens.shape[1], gold.shape[1])
            same = F.pad(hyp.tokens, (0, width - hyp.tokens.shape[1])) == F.pad(
                gold, (0, width - gold.shape[1])
            )
            hits += int((same.all(1) & (hyp.lengths == (gold != PAD_ID).sum(1))).sum())
            for row, i in enumerate(batch.index.tolist()):
                decoded[i] = self.pipeline.decode(hyp.tokens[row, : hyp.lengths[row]].tolist())
        hits = distributed.all_sum([hits])[0]
        for part in distributed.gather_objects(decoded):
            decoded.update(part)
        texts = [decoded[i] for i in range(n)]
        out = {}
        if self.tcfg.valid_exact:
            out["exact"] = hits / max(n, 1)
        if self.tcfg.valid_bleu:
            if self.valid_refs is None:
                raise ValueError("train.valid_bleu needs the validation references")
            out["bleu"] = float(bleu_chrf(texts, self.valid_refs[:n])["bleu"])
        return out

    def improved(self, metrics: dict[str, Any]) -> bool:
        key = self.tcfg.early_stop_metric
        if self.best is None:
            return True
        if key == "loss":
            return metrics["loss"] < self.best["loss"]
        return metrics[key] > self.best[key]

    # ------------------------------------------------------------------ loop

    def fit(self) -> RunResult:
        """Train until epochs / max_steps / max_seconds / early stopping, validating and
        checkpointing along the way. Continues from ``self.step`` after :meth:`restore`."""
        bar, meter = self._progress_bar(), _Meter()
        start, stop = time.perf_counter() - self.elapsed, False
        while not stop and self.epoch < self.tcfg.epochs:
            plan = self._batches(self.epoch)
            for idx in plan[self.position :]:
                loss, ntok = self.update(self.train_data.batch(idx))
                # Advance the position before any checkpoint, so a resumed run starts
                # exactly where this one would go on.
                self.position += 1
                end_of_epoch = self.position == len(plan)
                if end_of_epoch:
                    self.epoch, self.position = self.epoch + 1, 0
                self.elapsed = time.perf_counter() - start
                self._report(bar, meter, loss, ntok)
                stop = self._should_stop()
                saved = stop or self._validation_due(end_of_epoch)
                if saved:
                    stop = self._checkpoint() or stop
                    meter.reset()  # validation time is not training; log windows restart
                if not stop and self._interrupted():
                    if not saved:  # no validation: the state is what must not be lost
                        self._checkpoint(validate=False)
                    stop = True
                if stop:
                    break
        bar.close()
        if self.history and self.history[-1].get("step") != self.step and not self.signal:
            self._checkpoint()
        return RunResult(
            self.run_dir, self.best or {}, self.history[-1] if self.history else {},
            self.step, self.elapsed, self.history, self.signal,
        )  # fmt: skip

    def _interrupted(self) -> bool:
        """Whether SIGINT/SIGTERM asked to stop (on any rank: all ranks stop together)."""
        self.signal = interrupt.requested()
        if self.world > 1 and distributed.any_rank(self.signal is not None):
            self.signal = self.signal or int(signal.SIGTERM)
        return self.signal is not None

    def _progress_bar(self) -> tqdm:
        t = self.tcfg
        return tqdm(
            total=t.max_steps or t.epochs * len(self._batches(0)),
            initial=self.step,
            disable=not (t.progress and self.rank == 0),
            unit="step",
            dynamic_ncols=True,
            desc="train",
            mininterval=0.5 if sys.stderr.isatty() else 30.0,  # keep logs short
        )

    def _report(self, bar: tqdm, meter: _Meter, loss: float, ntok: int) -> None:
        rate = meter.add(loss, ntok)
        bar.update(1)
        bar.set_postfix(epoch=self.epoch + 1, loss=f"{loss:.3f}", tok_s=f"{rate:,.0f}",
                        refresh=False)  # fmt: skip
        if self.tcfg.log_every and self.step % self.tcfg.log_every == 0:
            lr = self.optimizer.param_groups[0]["lr"]
            self._log({"split": "train", "loss": meter.mean_loss(), "tok_s": rate, "lr": lr})
            meter.losses.clear()

    def _validation_due(self, end_of_epoch: bool) -> bool:
        every = self.tcfg.valid_every
        if every:
            return self.step % every == 0 or (end_of_epoch and self.epoch >= self.tcfg.epochs)
        return end_of_epoch

    def _batches(self, epoch: int) -> list[np.ndarray]:
        t = self.tcfg
        return self.train_data.batch_order(
            t.batch_size, t.seed, epoch, t.bucket, rank=self.rank, world=self.world,
            max_tokens=t.max_tokens, by=t.bucket_by,
        )  # fmt: skip

    def _should_stop(self) -> bool:
        t = self.tcfg
        stop = bool(
            (t.max_steps and self.step >= t.max_steps)
            or (t.max_seconds and self.elapsed >= t.max_seconds)
        )
        # Clocks differ between processes: all ranks stop when any rank's time is up.
        return distributed.any_rank(stop) if self.world > 1 and t.max_seconds else stop

    def _checkpoint(self, validate: bool = True) -> bool:
        """Validate, write metrics and a checkpoint; True when early stopping says stop.
        Without ``validate`` (an interruption) only the checkpoint is written."""
        better = False
        if validate:
            metrics = self.validate()
            record = {"split": "valid", **metrics, "seconds": round(self.elapsed, 2)}
            better = self.improved(metrics)
            if better:
                self.best = {"step": self.step, "epoch": self.epoch, **metrics}
                self.stale = 0
            else:
                self.stale += 1
            self.schedule.after_validation(better)
            self._log(record)
        state = self.state_dict()  # on every rank: it gathers the ranks' RNG states
        if self.rank == 0:
            meta = {"step": str(self.step), "epoch": str(self.epoch)}
            if self.tcfg.keep_checkpoints and validate:
                ckpt.save_weights(self.model, ckpt.step_path(self.run_dir, self.step), meta)
                ckpt.prune_steps(self.run_dir, self.tcfg.keep_checkpoints)
            ckpt.write_checkpoint(self.run_dir, self.model, state, meta, best=better)
        patience = self.tcfg.patience
        return validate and patience is not None and self.stale >= patience

    def _log(self, record: dict[str, Any]) -> None:
        record = {"step": self.step, "epoch": self.epoch, **record}
        if record["split"] == "valid":
            self.history.append(record)
            if self.rank == 0:
                shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}
                tqdm.write(" ".join(f"{k}={v}" for k, v in shown.items() if k != "split"))
        if self.rank == 0:
            with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict[str, Any]:
        state = {
            "optimizer": self.optimizer.state_dict(),
            "counters": torch.tensor([self.step, self.epoch, self.position, self.stale]),
            "elapsed": torch.tensor(self.elapsed, dtype=torch.float64),
            "best": json.dumps(self.best),
            "history": json.dumps(self.history),
            "torch_rng": torch.get_rng_state(),
            "coins_rng": self.coins.get_state(),
            "python_rng": json.dumps(random.getstate()),
            "schedule": self.schedule.state(),
        }
        if self.device.type == "cuda":  # dropout on CUDA draws from the device's generator
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if self.world > 1:  # every rank's own RNG streams, [world, n] each
            state["rank_torch_rng"] = distributed.gather_states(torch.get_rng_state())
            state["rank_coins_rng"] = distributed.gather_states(self.coins.get_state())
            if self.device.type == "cuda":
                state["rank_cuda_rng"] = distributed.gather_states(torch.cuda.get_rng_state())
        return state

    def restore(self, state: dict[str, Any]) -> None:
        saved_world = len(state["rank_torch_rng"]) if "rank_torch_rng" in state else 1
        if saved_world != self.world:
            raise ValueError(
                f"{self.run_dir}: this run was trained with {saved_world} process(es); resume "
                f"it with the same number (torchrun --nproc_per_node ...), not {self.world}"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch, self.position, self.stale = state["counters"].tolist()
        self.elapsed = float(state["elapsed"])
        self.best = json.loads(state["best"])
        self.history = json.loads(state["history"])
        torch.set_rng_state(state["torch_rng"])
        self.coins.set_state(state["coins_rng"])
        self.schedule.load(state["schedule"])
        version, internal, gauss = json.loads(state["python_rng"])
        random.setstate((version, tuple(internal), gauss))
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if self.world > 1:  # clone: a row view (storage offset) crashed set_rng_state
            torch.set_rng_state(state["rank_torch_rng"][self.rank].clone())
            self.coins.set_state(state["rank_coins_rng"][self.rank].clone())
            if "rank_cuda_rng" in state and self.device.type == "cuda":
                torch.cuda.set_rng_state(state["rank_cuda_rng"][self.rank].clone())


class _Meter:
    """Training tokens/s and mean loss since the last reset (a checkpoint)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.tokens, self.start, self.losses = 0, time.perf_counter(), []

    def add(self, loss: float, ntokens: int) -> float:
        now = time.perf_counter()
        self.tokens += ntokens
        self.losses.append(loss)
        return self.tokens / max(now - self.start, 1e-9)

    def mean_loss(self) -> float:
        return float(np.mean(self.losses)) if self.losses else float("nan")
