"""Bootstrap confidence intervals over clips, for exact per-question-type scores.

Questions about the same clip are not independent, so the resampling unit is the clip: each bootstrap
replicate draws clips with replacement and takes every item of every drawn clip. The interval is the
percentile interval of the replicated mean (95% by default).

    scores: per-item values in [0, 1] (1 = correct)          shape (N,)
    clips:  per-item clip ids (any hashable)                 length N
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def _clip_sums(scores: Sequence[float], clips: Sequence[Hashable]) -> tuple[list, np.ndarray, np.ndarray]:
    """Per-clip sum of scores and item count, clips in first-seen order."""
    if len(scores) != len(clips):
        raise ValueError(f"{len(scores)} scores but {len(clips)} clip ids")
    order: dict[Hashable, int] = {}
    for clip in clips:
        order.setdefault(clip, len(order))
    idx = np.fromiter((order[c] for c in clips), dtype=np.int64, count=len(clips))
    sums = np.bincount(idx, weights=np.asarray(scores, dtype=np.float64), minlength=len(order))  # (C,)
    counts = np.bincount(idx, minlength=len(order)).astype(np.float64)  # (C,)
    return list(order), sums, counts


def bootstrap_ci(
    scores: Sequence[float],
    clips: Sequence[Hashable],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean, low, high): the item mean and its clip-bootstrap percentile interval."""
    if len(scores) == 0:
        return float("nan"), float("nan"), float("nan")
    _, sums, counts = _clip_sums(scores, clips)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sums), size=(n_boot, len(sums)))  # (n_boot, C)
    means = sums[draws].sum(1) / counts[draws].sum(1)  # (n_boot,)
    alpha = (1.0 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(sums.sum() / counts.sum()), float(low), float(high)


def paired_bootstrap_diff(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    clips: Sequence[Hashable],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(diff, low, high) of mean(B) - mean(A) on the same items, resampling clips jointly for both."""
    if len(scores_a) != len(scores_b):
        raise ValueError(f"paired scores differ in length: {len(scores_a)} vs {len(scores_b)}")
    diff = np.asarray(scores_b, dtype=np.float64) - np.asarray(scores_a, dtype=np.float64)
    return bootstrap_ci(diff, clips, n_boot=n_boot, level=level, seed=seed)
