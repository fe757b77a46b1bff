"""Probes and controls for what a representation carries: a linear probe on frozen features, and a small
CNN trained from scratch on the same frames (the control a from-scratch tower is measured against).

Both train with a fixed seed and report accuracy on held-out rows; ``multilabel=True`` trains one sigmoid
per class (e.g. "ball class k moved") instead of a softmax over classes.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from .precision import cpu_autocast


def _loss(logits: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, y.float()) if multilabel else F.cross_entropy(logits, y)


def linear_probe(
    x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, n_out: int, steps: int = 400,
    seed: int = 0, multilabel: bool = False,
) -> torch.Tensor:  # fmt: skip
    """Test logits (N_test, n_out) of a weight-decayed linear model fit on standardised features."""
    torch.manual_seed(seed)
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-5
    x_train, x_test = (x_train - mu) / sd, (x_test - mu) / sd
    head = nn.Linear(x_train.shape[1], n_out)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(steps):
        opt.zero_grad()
        _loss(head(x_train), y_train, multilabel).backward()
        opt.step()
    with torch.no_grad():
        return head(x_test)


def cnn_classifier(n_out: int, in_channels: int = 3) -> nn.Module:
    """A 3-layer convolutional control (about 60k parameters) + a linear head."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 5, stride=2, padding=2), nn.ReLU(),  # (N, 32, H/2, W/2)
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),  # (N, 64, H/4, W/4)
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),  # (N, 64, H/8, W/8)
        nn.AdaptiveMaxPool2d((3, 3)), nn.Flatten(),  # (N, 576)
        nn.Linear(64 * 9, n_out),
    )  # fmt: skip


def train_classifier(
    model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, steps: int,
    lr: float, batch: int, seed: int, multilabel: bool = False,
) -> tuple[torch.Tensor, dict]:  # fmt: skip
    """Train ``model`` on images (bf16 autocast where the CPU has it, AdamW + one-cycle); returns test logits
    and a summary."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    start, losses = time.time(), []
    for _ in range(steps):
        idx = torch.randint(0, len(x_train), (batch,))
        with cpu_autocast():
            loss = _loss(model(x_train[idx].float()), y_train[idx], multilabel)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    with torch.no_grad(), cpu_autocast():
        logits = torch.cat([model(x_test[i : i + 64].float()).float() for i in range(0, len(x_test), 64)])
    tail = losses[-max(1, steps // 10) :]
    return logits, {"final_train_loss": sum(tail) / len(tail), "seconds": time.time() - start}
