"""Distribution shifts the data engine never produces, applied to a dataset's rendered clips.

Each shift maps a clip's decoded frames (F, H, W, 3) uint8 to new frames and the libx264 options to encode
them with; the questions, answers and facts stay the same, so the exact scores before and after compare
directly (``train/make_shifted.py`` writes the shifted dataset, ``train/evaluate.py`` scores it):

    colour    a warm colour cast and a gamma change: out = 255 * (gain * in / 255) ** gamma, per channel
    compress  strong H.264 compression (CRF 40 instead of the engine's 23): blocking, smeared small balls
    720p      upscaled to 1280x720 (bicubic; the engine renders 448x256), so the processor's resize does the
              work a camera's resolution asks of it

Deterministic: no randomness, the encoder single-threaded (``billiards.video``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .billiards.video import X264_OPTIONS

COLOUR_GAIN = (1.10, 0.97, 0.85)  # R, G, B: a warm cast
COLOUR_GAMMA = 0.8
COMPRESS_CRF = "40"
SIZE_720P = (720, 1280)  # (H, W)


def colour(frames: np.ndarray) -> np.ndarray:
    """Per-channel gain then gamma, (F, H, W, 3) uint8 -> same."""
    x = frames.astype(np.float32) / 255.0 * np.asarray(COLOUR_GAIN, dtype=np.float32)
    return np.round(255.0 * np.clip(x, 0.0, 1.0) ** COLOUR_GAMMA).astype(np.uint8)


def resize_720p(frames: np.ndarray) -> np.ndarray:
    """Bicubic resize to 1280x720, (F, H, W, 3) uint8 -> (F, 720, 1280, 3) uint8."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (F, 3, H, W)
    x = F.interpolate(x, size=SIZE_720P, mode="bicubic", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


SHIFTS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], dict[str, str]]] = {
    "colour": (colour, dict(X264_OPTIONS)),
    "compress": (lambda frames: frames, {**X264_OPTIONS, "crf": COMPRESS_CRF}),
    "720p": (resize_720p, dict(X264_OPTIONS)),
}


def shift_frames(name: str, frames: np.ndarray) -> tuple[np.ndarray, dict[str, str]]:
    """(shifted frames, libx264 options) of the shift ``name`` (one of ``SHIFTS``)."""
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; choose from {sorted(SHIFTS)}")
    transform, options = SHIFTS[name]
    return transform(frames), options
