"""Perception: dense targets from the engine's per-frame ground truth, and the small heads that learn them.

Stage 0 of towers trained from scratch teaches them to see (``train/stage0_perception.py``). Every target
comes from a `FrameTruth` (a stream scene's or a dataset clip's sampled frames), on the towers' token grid
of ``(gh, gw)`` cells and the class vocabulary ``CLASSES`` (canonical ball ids; snooker reds are one class):

    cells        (T, gh*gw, K)  class k has a ball centre in cell c            patch tokens of both towers
    counts       (T, K)         visible balls per class                         Long-CLIP frame embedding
    regions      (T, K, 9)      class k has a ball in view region r (3 x 3)     Long-CLIP frame embedding
    cue_xy       (T, 2)         cue-ball centre / (W, H), cue_present (T,)      Long-CLIP frame embedding
    cue_region   (T,)           view region of the cue ball, 9 = not visible    Long-CLIP frame embedding
    ball_cell    (T, MAX_BALLS)  cell of each visible ball (-1: padding)         patch tokens of both towers
    ball_class   (T, MAX_BALLS)  its class: the cell logits at a ball's cell are also a K-way choice
    potted       (K,)           a ball of class k left the table in the clip    CLIP-ViP CLS + proxy tokens
    moved        (K,)           a ball of class k moved (or left the table)     CLIP-ViP CLS + proxy tokens
    potted_count ()             balls that left the table, capped at 8          CLIP-ViP CLS + proxy tokens
    final_cue_region ()         view region of the cue ball in the last frame   CLIP-ViP CLS + proxy tokens

The heads are linear (a LayerNorm in front where the tower's output is not normalised), so what they read
is linearly present in the towers; they are dropped at export, like the towers' text encoders.

Shape legend: V clips, T frames, P = gh*gw cells, K classes, Dv / Wi tower widths, Di frame-embedding width.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .billiards import frame_truth as ft

CLASSES = ("cue", *(str(i) for i in range(1, 16)), "red", "yellow", "green", "brown", "blue", "pink", "black")
CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}
K = len(CLASSES)
REGIONS = 9  # the 3 x 3 view regions of camera.REGIONS, row-major from the top-left
MAX_POTTED = 8
MAX_BALLS = 22  # the most balls a frame can show (snooker: 15 reds, 6 colours, the cue ball)
# Positives are rare (a frame has a few balls in ~100 cells x 23 classes): weighting them in the binary
# cross-entropies lets the heads and towers leave the all-negative start.
POS_WEIGHT = 5.0


def view_region(uv: np.ndarray) -> np.ndarray:
    """Region index (..., ) of view coordinates (..., 2), as `camera.View.region_name` names them."""
    u, v = uv[..., 0], uv[..., 1]
    col = np.where(u < 1 / 3, 0, np.where(u > 2 / 3, 2, 1))
    row = np.where(v > 2 / 3, 0, np.where(v < 1 / 3, 2, 1))
    return row * 3 + col


def frame_targets(truth: ft.FrameTruth, grid: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per-frame targets (see the module docstring) of the frames in ``truth``."""
    gh, gw = grid
    T = truth.state.shape[0]
    cls = np.array([CLASS_INDEX.get(b, -1) for b in truth.balls], dtype=np.int64)  # (B,)
    vis = truth.visible() & (cls >= 0)[None]  # (T, B)
    col = np.clip((truth.xy[..., 0] / truth.width * gw).astype(np.int64), 0, gw - 1)  # (T, B)
    row = np.clip((truth.xy[..., 1] / truth.height * gh).astype(np.int64), 0, gh - 1)
    cell = row * gw + col
    region = view_region(truth.uv)  # (T, B)
    cells = np.zeros((T, gh * gw, K), dtype=np.float32)
    counts = np.zeros((T, K), dtype=np.float32)
    regions = np.zeros((T, K, REGIONS), dtype=np.float32)
    cue_xy = np.zeros((T, 2), dtype=np.float32)
    cue_present = np.zeros(T, dtype=np.float32)
    cue_region = np.full(T, REGIONS, dtype=np.int64)
    cue_cell = np.full(T, -1, dtype=np.int64)
    t_idx, b_idx = np.nonzero(vis)
    cells[t_idx, cell[t_idx, b_idx], cls[b_idx]] = 1.0
    ball_cell = np.full((T, MAX_BALLS), -1, dtype=np.int64)
    ball_class = np.full((T, MAX_BALLS), -1, dtype=np.int64)
    slot = np.cumsum(vis, axis=1)[t_idx, b_idx] - 1  # the k-th visible ball of its frame
    ball_cell[t_idx, slot], ball_class[t_idx, slot] = cell[t_idx, b_idx], cls[b_idx]
    np.add.at(counts, (t_idx, cls[b_idx]), 1.0)
    regions[t_idx, cls[b_idx], region[t_idx, b_idx]] = 1.0
    for t, b in zip(t_idx, b_idx, strict=True):
        if cls[b] == 0:
            cue_xy[t] = truth.xy[t, b] / np.array([truth.width, truth.height])
            cue_present[t] = 1.0
            cue_region[t] = region[t, b]
            cue_cell[t] = cell[t, b]
    return {
        "cells": cells, "counts": counts, "regions": regions, "cue_xy": cue_xy, "cue_present": cue_present,
        "cue_region": cue_region, "cue_cell": cue_cell, "ball_cell": ball_cell, "ball_class": ball_class,
    }  # fmt: skip


def clip_targets(truth: ft.FrameTruth) -> dict[str, np.ndarray]:
    """Clip-level targets from every frame of a clip (not only the sampled ones)."""
    cls = np.array([CLASS_INDEX.get(b, -1) for b in truth.balls], dtype=np.int64)
    left = (truth.state == ft.POTTED).any(0) & (cls >= 0)  # (B,)
    moved = ((truth.state == ft.MOVING) | (truth.state == ft.POTTED)).any(0) & (cls >= 0)
    potted = np.zeros(K, dtype=np.float32)
    potted[cls[left]] = 1.0
    moved_k = np.zeros(K, dtype=np.float32)
    moved_k[cls[moved]] = 1.0
    last = frame_targets(truth.select([truth.num_frames - 1]), (1, 1))
    return {
        "potted": potted,
        "moved": moved_k,
        "potted_count": np.int64(min(int(left.sum()), MAX_POTTED)),
        "final_cue_region": np.int64(last["cue_region"][0]),
    }


class PerceptionHeads(nn.Module):
    """Linear heads on the towers' outputs (dropped at export)."""

    def __init__(self, video_width: int, image_width: int, embed_dim: int, num_leading: int):
        super().__init__()
        self.video_cells = nn.Sequential(nn.LayerNorm(video_width), nn.Linear(video_width, K))
        self.image_cells = nn.Sequential(nn.LayerNorm(image_width), nn.Linear(image_width, K))
        self.frame = nn.Linear(embed_dim, K + K * REGIONS + 2 + 1 + REGIONS + 1)
        self.clip = nn.Sequential(
            nn.LayerNorm(num_leading * video_width),
            nn.Linear(num_leading * video_width, 2 * K + MAX_POTTED + 1 + REGIONS + 1),
        )

    def split_frame(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        counts, regions, cue_xy, cue_present, cue_region = x.split([K, K * REGIONS, 2, 1, REGIONS + 1], -1)
        return {
            "counts": counts, "regions": regions.unflatten(-1, (K, REGIONS)), "cue_xy": cue_xy,
            "cue_present": cue_present[..., 0], "cue_region": cue_region,
        }  # fmt: skip

    def split_clip(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        potted, moved, count, region = x.split([K, K, MAX_POTTED + 1, REGIONS + 1], -1)
        return {"potted": potted, "moved": moved, "potted_count": count, "final_cue_region": region}


def tower_outputs(
    video_tower: nn.Module, image_tower: nn.Module, heads: PerceptionHeads, pixels: torch.Tensor
):
    """Head outputs of clips (V, T, 3, H, W): {name: logits}, with the cell logits of both towers
    (V, T, P, K) and the frame-embedding and clip heads split into their targets; plus the towers' own
    outputs ``video_hidden_states`` (V, M + T*P, Dv) and ``frame_embeds`` (V, T, Di)."""
    V, T = pixels.shape[:2]
    M = video_tower.config.num_leading_tokens
    hidden = video_tower(pixels)  # (V, M + T*P, Dv), what TokenMining reads
    P = (hidden.shape[1] - M) // T
    tokens = image_tower.forward_features(pixels.flatten(0, 1))  # (V*T, 1 + P, Wi)
    embeds = image_tower.projection(image_tower.pool(tokens))  # (V*T, Di) = encode_image
    out = {
        "video_hidden_states": hidden,
        "frame_embeds": embeds.unflatten(0, (V, T)),
        "video_cells": heads.video_cells(hidden[:, M:]).view(V, T, P, K),
        "image_cells": heads.image_cells(tokens[:, 1:]).view(V, T, P, K),
    }
    out.update({k: v.unflatten(0, (V, T)) for k, v in heads.split_frame(heads.frame(embeds)).items()})
    out.update(heads.split_clip(heads.clip(hidden[:, :M].flatten(1))))
    return out


def ball_identity_loss(
    cell_logits: torch.Tensor, ball_cell: torch.Tensor, ball_class: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of each visible ball's class among all K, from the cell logits (V, T, P, K) at its cell
    (ball_cell / ball_class (V, T, MAX_BALLS), -1 = padding): where the per-class binary losses let similar
    classes (a solid and the stripe of its colour) both fire, this makes them compete."""
    index = ball_cell.clamp(min=0)[..., None].expand(
        -1, -1, -1, cell_logits.shape[-1]
    )  # (V, T, MAX_BALLS, K)
    logits = cell_logits.gather(2, index)  # (V, T, MAX_BALLS, K)
    target = torch.where(ball_cell >= 0, ball_class, -100)
    if not (target >= 0).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.flatten(0, 2), target.flatten(), ignore_index=-100)


def perception_losses(
    out: dict[str, torch.Tensor], y: dict[str, torch.Tensor], id_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """One loss per target. The cell losses (the dense targets every tower token learns from) are summed over
    classes and averaged over cells; the region, potted and moved losses are averaged over classes too, so that
    the per-frame and per-clip summaries do not outweigh the cells in the shared tower weights. The ball
    identity losses (`ball_identity_loss`, on both towers' cell logits) count ``id_weight`` times (0: off)."""
    out = {k: v.float() for k, v in out.items() if k not in ("video_hidden_states", "frame_embeds")}
    ids = {
        f"{tower}_ids": id_weight * ball_identity_loss(out[f"{tower}_cells"], y["ball_cell"], y["ball_class"])
        for tower in ("video", "image")
        if id_weight and "ball_cell" in y
    }

    def bce(logits, target, reduction="mean"):
        weight = torch.full((logits.shape[-1],), POS_WEIGHT, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, target, reduction=reduction, pos_weight=weight)

    present = y["cue_present"]
    return {
        **ids,
        "video_cells": bce(out["video_cells"], y["cells"], reduction="none").sum(-1).mean(),
        "image_cells": bce(out["image_cells"], y["cells"], reduction="none").sum(-1).mean(),
        "counts": F.smooth_l1_loss(out["counts"], y["counts"]),
        "regions": bce(out["regions"], y["regions"], reduction="none").mean((-1, -2)).mean(),
        "cue_xy": ((out["cue_xy"] - y["cue_xy"]) ** 2).sum(-1).mul(present).sum()
        / present.sum().clamp(min=1)
        * 10,
        "cue_present": F.binary_cross_entropy_with_logits(out["cue_present"], present),
        "cue_region": F.cross_entropy(out["cue_region"].flatten(0, 1), y["cue_region"].flatten()),
        "potted": bce(out["potted"], y["potted"], reduction="none").mean(),
        "moved": bce(out["moved"], y["moved"], reduction="none").mean(),
        "potted_count": F.cross_entropy(out["potted_count"], y["potted_count"]),
        "final_cue_region": F.cross_entropy(out["final_cue_region"], y["final_cue_region"]),
    }


class TowerPerceptionModel(nn.Module):
    """Both towers of a HiLight model under the perception targets (shares the towers' modules)."""

    def __init__(
        self, video_tower: nn.Module, image_tower: nn.Module, heads: PerceptionHeads, id_weight: float = 1.0
    ):
        super().__init__()
        self.video_tower = video_tower
        self.image_tower = image_tower
        self.heads = heads
        self.id_weight = id_weight

    def forward(self, pixel_values: torch.Tensor, **targets: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = tower_outputs(self.video_tower, self.image_tower, self.heads, pixel_values)
        losses = perception_losses(outputs, targets, self.id_weight)
        return {"loss": sum(losses.values()), **{k: v.detach() for k, v in losses.items()}}


HEADS_FILE = "perception_heads.safetensors"


def heads_for(model: Any, folder: Any = None) -> PerceptionHeads:
    """Perception heads sized for a HiLight model's towers: fresh, or those a stage-0 ``folder`` saved beside its
    towers (``perception_heads.safetensors``), so a run that continues from a stage-0 model keeps its heads."""
    vc, ic = model.config.video_config, model.config.image_config
    heads = PerceptionHeads(vc.hidden_size, ic.hidden_size, ic.projection_dim, vc.num_leading_tokens)
    path = Path(folder) / HEADS_FILE if folder is not None else None
    if path is not None and path.is_file():
        state, expected = load_file(str(path)), heads.state_dict()
        wrong = sorted(set(state) ^ set(expected)) or [
            k for k in expected if state[k].shape != expected[k].shape
        ]
        if wrong:
            raise ValueError(f"{path}: heads do not fit this model's towers (first mismatch: {wrong[0]})")
        heads.load_state_dict(state)
    return heads


@dataclass
class SceneDataset(torch.utils.data.Dataset):
    """Stream scenes as training rows: ``pixel_values`` (T, 3, H, W) from the processor's transform, plus the
    frame and clip targets on ``grid``."""

    stream: Any  # billiards.scenes.SceneStream
    video_processor: Any
    grid: tuple[int, int]
    size: int

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        scene = self.stream[int(index)]
        row = {"pixel_values": self.video_processor.transform(scene.frames)}
        row.update(targets_of(scene.truth, self.grid, scene.truth))
        return row


@dataclass
class ClipTruthDataset(torch.utils.data.Dataset):
    """Rendered clips of a data-engine dataset as training rows, like ``SceneDataset``'s: ``num_frames`` frames
    of each clip (the official sampling) and the targets from its ``truth/`` file. Real engine clips carry what
    the stream lacks (racks, fast shots, the dataset's cameras and looks)."""

    root: Any  # dataset folder (a Path)
    clips: list[dict[str, Any]]  # events.jsonl records with "video" and "frame_truth"
    video_processor: Any
    grid: tuple[int, int]
    num_frames: int

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clip = self.clips[int(index)]
        frames, meta = self.video_processor.load(  # our own dataset: decoded in process (no fork per clip)
            str(self.root / clip["video"]), num_frames=self.num_frames, decode_in_subprocess=False
        )
        whole = ft.read(self.root / clip["frame_truth"])
        row = {"pixel_values": self.video_processor.transform(frames)}
        row.update(targets_of(whole.select(meta.frames_indices), self.grid, whole))
        return row


def dataset_clips(root: Any, split: str = "train") -> list[dict[str, Any]]:
    """The ``events.jsonl`` records of a data-engine dataset's ``split``, in file order; raises naming the
    first clip without per-frame truth (``truth/``, written by the engine since its frame-truth release)."""
    from .files import read_text

    events = [json.loads(line) for line in read_text(root / "events.jsonl").splitlines() if line.strip()]
    clips = [e for e in events if e.get("split") == split]
    missing = [c["id"] for c in clips if not c.get("frame_truth")]
    if missing:
        raise ValueError(f"{root}: clip {missing[0]} has no per-frame truth (truth/); regenerate the dataset")
    return clips


@dataclass
class InterleavedDataset(torch.utils.data.Dataset):
    """Row i comes from ``second`` when i % every == every - 1 (cycling through it), else from ``first``: a fixed,
    seekable mix (every=2 alternates; the length stays ``first``'s)."""

    first: Any
    second: Any
    every: int

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = int(index)
        if self.every and index % self.every == self.every - 1:
            return self.second[(index // self.every) % len(self.second)]
        return self.first[index - (index // self.every if self.every else 0)]


def targets_of(
    sampled: ft.FrameTruth, grid: tuple[int, int], whole: ft.FrameTruth
) -> dict[str, torch.Tensor]:
    """Frame targets of the sampled frames and clip targets of the whole clip, as tensors."""
    rows = {**frame_targets(sampled, grid), **clip_targets(whole)}
    return {k: torch.as_tensor(v) for k, v in rows.items() if k != "cue_cell"}


def collate(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
