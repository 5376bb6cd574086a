"""Train a classification head on an encoder (or on fixed features): the fine-tuning loop.

Like the embedding engine, this is where devices, precision and memory are handled: bf16 autocast on
CUDA (fp32 on CPU), out-of-memory back-off that halves the batch size and retries the failed batch
(callers measure peak memory around it with PeakMemory). The budget is fixed and
recorded: AdamW (lr, weight decay), ``epochs`` at most, early stopping when the inner-validation loss
has not improved for ``patience`` epochs, the best epoch's weights restored. Every random draw (head
initialisation, dropout, batch order) follows ``seed``, so a CPU run is reproducible bit for bit.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.adapters._base import Prepared
from scfm_bench.embed.engine import autocast, forward_context, is_oom, run_batches
from scfm_bench.exceptions import CellFailed

log = logging.getLogger(__name__)


class TrainBudget(BaseModel):
    """The same for every model of a run (scFM heads, LoRA, full fine-tuning and the MLP baselines)."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(10, ge=1, description="Most training epochs (scANVI: scVI pre-training and scANVI epochs each).")
    lr: float = Field(3e-4, gt=0, description="AdamW learning rate.")
    batch_size: int = Field(32, ge=1, description="Cells per step (halved on out-of-memory; the final size is recorded).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    patience: int = Field(3, ge=1, description="Stop after this many epochs without a lower inner-validation loss.")
    head_hidden: int = Field(128, ge=1, description="Hidden units of the head (one hidden layer, ReLU, dropout).")
    head_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout before the head's output layer.")


@dataclass
class FitResult:
    net: Any  # the trained classifier (encoder, if any, + head), best epoch's weights
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: train_loss, val_loss
    info: dict[str, Any] = field(default_factory=dict)


def build_classifier(in_dim: int, n_classes: int, budget: TrainBudget, *, body=None,
                     forward: Callable[[Any, Any], Any] | None = None, seed: int = 0):
    """``head(forward(body, batch))``, or ``head(batch)`` on features without a body. The head is a
    one-hidden-layer MLP initialised from ``seed``."""
    import torch
    from torch import nn

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body
            torch.manual_seed(seed)
            self.head = nn.Sequential(nn.Linear(in_dim, budget.head_hidden), nn.ReLU(), nn.Dropout(budget.head_dropout),
                                      nn.Linear(budget.head_hidden, n_classes))

        def forward(self, batch):
            if self.body is None:
                return self.head(batch.to(self.head[0].weight.device).float())
            return self.head(forward(self.body, batch).float())

    return Classifier()


def feature_items(X: np.ndarray) -> tuple[list[np.ndarray], Callable]:
    """Rows of a feature matrix as items, and their collate (a float32 tensor)."""
    import torch

    X = np.ascontiguousarray(X, dtype=np.float32)
    return list(X), lambda rows: torch.from_numpy(np.stack(rows))


def infer(fn: Callable, name: str, items: Sequence, collate: Callable, idx: np.ndarray, *, batch_size: int, device: str,
          precision: str = "auto", lengths: Sequence[int] | None = None) -> np.ndarray:
    """``fn(collate(batch))`` over ``items[idx]`` without gradients: the embedding engine's batching and
    OOM back-off (rows in ``idx`` order)."""
    prep = Prepared(dataset=[items[i] for i in idx], collate=collate, n_cells=len(idx),
                    lengths=None if lengths is None else [lengths[i] for i in idx])
    with forward_context(device, precision):
        return run_batches(SimpleNamespace(key=name, embed_batch=fn), prep, batch_size, advance=lambda n: None)


def fit_classifier(net, items: Sequence, collate: Callable, y: np.ndarray, train: np.ndarray, val: np.ndarray, *,
                   budget: TrainBudget, device: str, seed: int, name: str, precision: str = "auto",
                   lengths: Sequence[int] | None = None) -> FitResult:
    """Train the parameters of ``net`` that require gradients on ``items[train]`` (class codes ``y``),
    early-stopping on the cross-entropy of ``items[val]``."""
    import torch
    import torch.nn.functional as F

    net.to(device)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=budget.lr, weight_decay=budget.weight_decay)
    target = torch.as_tensor(y, dtype=torch.long, device=device)
    order_rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    batch_size, history = budget.batch_size, []
    best, best_state, best_epoch, waited = np.inf, None, 0, 0
    t0 = time.perf_counter()
    for epoch in range(1, budget.epochs + 1):
        net.train()
        order = train[torch.randperm(len(train), generator=order_rng).numpy()]
        pos, total = 0, 0.0
        while pos < len(order):
            idx = order[pos : pos + batch_size]
            try:
                with autocast(device, precision) as used:
                    logits = net(collate([items[i] for i in idx]))
                loss = F.cross_entropy(logits.float(), target[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            except Exception as exc:
                if not is_oom(exc) or batch_size <= 1:
                    raise
                opt.zero_grad(set_to_none=True)  # the failed step changed no weight
                batch_size = max(1, len(idx) // 2)
                log.warning("%s: out of memory while training; retrying with batch size %d", name, batch_size)
                _empty_cache()
                continue
            pos += len(idx)
            total += float(loss.detach()) * len(idx)
        net.eval()
        logits = infer(net, name, items, collate, val, batch_size=batch_size, device=device, precision=precision,
                       lengths=lengths)
        val_loss = float(F.cross_entropy(torch.from_numpy(logits).float(), torch.as_tensor(y[val], dtype=torch.long)))
        history.append({"epoch": epoch, "train_loss": total / len(train), "val_loss": val_loss})
        log.info("%s: epoch %d train loss %.4f, validation loss %.4f", name, epoch, total / len(train), val_loss)
        if val_loss < best:
            best, best_epoch, waited = val_loss, epoch, 0
            best_state = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
        else:
            waited += 1
            if waited >= budget.patience:
                break
    if best_state is None:
        raise CellFailed(f"model {name!r}: the validation loss was not finite in any epoch (training diverged); "
                         f"lower budget.lr.")
    net.load_state_dict(best_state, strict=False)
    info = {"epochs_run": len(history), "best_epoch": best_epoch, "best_val_loss": best, "batch_size_final": batch_size,
            "precision": used, "device": device, "train_s": time.perf_counter() - t0,
            "trainable_params": int(sum(p.numel() for p in params)), "total_params": int(sum(p.numel() for p in net.parameters()))}
    return FitResult(net, history, info)


def _empty_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
