"""Per-frame ground truth: where every ball is drawn in every rendered frame, and in what state.

The renderer projects each ball centre through the clip's pinhole camera; this module keeps those numbers.
One small safetensors file per clip (``truth/<clip>.safetensors``, written beside the video) holds, for every
rendered frame ``f`` and every ball column ``b``:

    xy      float32 (F, B, 2)  ball centre in rendered-frame pixels (x right, y down; continuous coordinates
                               whose pixel ``(i, j)`` spans ``[i, i+1) x [j, j+1)``), sub-pixel exact
    radius  float32 (F, B)     projected radius in pixels
    uv      float32 (F, B, 2)  ball centre in the clip's view coordinates (``camera.View.uv``: u to the right
                               of the picture, v up it, both in [0, 1] over the playing surface), the
                               coordinates the answers' regions, pockets and cushions are named in
    state   uint8   (F, B)     GONE 0 (potted in an earlier frame), STILL 1, MOVING 2 (on the table, its
                               centre moves into or out of this frame), POTTED 3 (the frame it leaves the
                               table), OUTSIDE 4 (on the table, centre outside the picture)

and as metadata (one JSON entry) the canonical ball id of each column (``balls``, JSON; snooker reds repeat ``"red"``), the
frame size and the fps. Bytes are deterministic (safetensors has no timestamps).

The processor resizes frames without keeping the aspect ratio (bilinear/bicubic with ``align_corners=False``
maps pixel edges onto pixel edges), so a position maps into a model input of ``(height', width')`` by
``x' = x * width' / width``, ``y' = y * height' / height`` (:func:`to_model_input`); the tiny preset takes the
frames at their rendered size (identity).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save

from ..files import atomic_write_bytes

GONE, STILL, MOVING, POTTED, OUTSIDE = 0, 1, 2, 3, 4
STATES = ("gone", "still", "moving", "potted", "outside")
ON_TABLE = (STILL, MOVING, OUTSIDE)


@dataclass
class FrameTruth:
    """The per-frame ground truth of one clip (see the module docstring for the arrays)."""

    balls: list[str]
    xy: np.ndarray  # (F, B, 2) float32
    radius: np.ndarray  # (F, B) float32
    uv: np.ndarray  # (F, B, 2) float32
    state: np.ndarray  # (F, B) uint8
    width: int
    height: int
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.state.shape[0])

    def visible(self) -> np.ndarray:
        """(F, B) bool: the ball is on the table and its centre lies in the picture."""
        return (self.state == STILL) | (self.state == MOVING)

    def select(self, indices) -> FrameTruth:
        """The truth of the frames at ``indices`` (e.g. the processor's sampled frame indices)."""
        idx = np.asarray(indices, dtype=np.int64)
        return FrameTruth(
            self.balls, self.xy[idx], self.radius[idx], self.uv[idx], self.state[idx], self.width, self.height,
            self.fps,
        )  # fmt: skip


def to_model_input(xy: np.ndarray, frame_size: tuple[int, int], input_size: tuple[int, int]) -> np.ndarray:
    """Rendered-frame positions (..., 2) -> positions in a model input of ``input_size`` (height, width)
    made by the processor's resize (aspect ratio not kept)."""
    (h, w), (h2, w2) = frame_size, input_size
    return np.asarray(xy, dtype=np.float64) * np.array([w2 / w, h2 / h])


def compute(
    cam, names: list[str], radius_m: float, xyz: np.ndarray, on: np.ndarray, fps: float
) -> FrameTruth:
    """Frame truth of a rendered clip: ``xyz`` (F, B, 3) ball centres and ``on`` (F, B) as rendered by
    ``render.render_frames`` with camera ``cam``; ``names`` the canonical id of each ball column."""
    F, B = on.shape
    pix, depth = cam.project(xyz.reshape(-1, 3))
    xy = pix.reshape(F, B, 2)
    radius = cam.f * radius_m / np.maximum(depth.reshape(F, B), 1e-6)
    step = np.linalg.norm(np.diff(xyz, axis=0), axis=-1) > 1e-7  # (F-1, B) moved between frames f and f+1
    moving = np.zeros((F, B), dtype=bool)
    moving[1:] |= step
    moving[:-1] |= step
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < cam.width) & (xy[..., 1] >= 0) & (xy[..., 1] < cam.height)
    state = np.full((F, B), GONE, dtype=np.uint8)
    state[on] = STILL
    state[on & moving] = MOVING
    state[on & ~inside] = OUTSIDE
    left = ~on & np.vstack([np.ones((1, B), dtype=bool), on[:-1]])  # off now, on in the frame before
    state[left] = POTTED
    uv = np.stack(cam.view.uv(xyz[..., 0], xyz[..., 1]), axis=-1)  # (F, B, 2)
    return FrameTruth(
        list(names), xy.astype(np.float32), radius.astype(np.float32), uv.astype(np.float32), state,
        cam.width, cam.height, float(fps),
    )  # fmt: skip


def to_bytes(truth: FrameTruth) -> bytes:
    info = {
        "balls": truth.balls,
        "width": truth.width,
        "height": truth.height,
        "fps": truth.fps,
        "states": STATES,
    }
    arrays = {"xy": truth.xy, "radius": truth.radius, "uv": truth.uv, "state": truth.state}
    # one metadata entry: safetensors writes several in an order that varies between processes
    metadata = {"frame_truth": json.dumps(info, sort_keys=True)}
    return save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=metadata)


def write(path: str | Path, truth: FrameTruth) -> None:
    """Write ``truth`` to ``path`` atomically (deterministic bytes)."""
    atomic_write_bytes(Path(path), to_bytes(truth))


def read(path: str | Path) -> FrameTruth:
    """Load a clip's frame truth written by :func:`write`."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            info = json.loads((f.metadata() or {})["frame_truth"])
        arrays = load_file(str(path))
        return FrameTruth(
            list(info["balls"]),
            arrays["xy"],
            arrays["radius"],
            arrays["uv"],
            arrays["state"],
            int(info["width"]),
            int(info["height"]),
            float(info["fps"]),
        )
    except (OSError, KeyError, ValueError, SafetensorError) as e:
        raise ValueError(f"{path}: not a frame-truth file of the data engine ({e})") from e


def ball_contrast(frame: np.ndarray, xy: np.ndarray, radius: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """How far each ball's colour stands from what surrounds it in one picture: the distance (0..255 RGB
    units, Euclidean) between the mean colour of the ball's core (within 0.7 radius of its centre) and of a
    ring around it (1.6 to 2.6 radii, other balls' discs left out). ``frame`` (H, W, 3) uint8, ``xy`` (B, 2),
    ``radius`` (B,) and ``visible`` (B,) one frame of a clip's truth; NaN for a ball that is not visible or
    whose core or ring has no pixel in the picture."""
    img = np.asarray(frame, dtype=np.float32)
    H, W = img.shape[:2]
    out = np.full(len(xy), np.nan, dtype=np.float32)
    shown = np.flatnonzero(visible)
    for b in shown:
        (x, y), r = xy[b], float(radius[b])
        x0, x1 = max(int(x - 2.6 * r) - 1, 0), min(int(x + 2.6 * r) + 2, W)
        y0, y1 = max(int(y - 2.6 * r) - 1, 0), min(int(y + 2.6 * r) + 2, H)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5  # pixel centres, (h, w)
        d = np.hypot(xx - x, yy - y)
        core, ring = d <= 0.7 * r, (d >= 1.6 * r) & (d <= 2.6 * r)
        for o in shown:
            if o != b:
                ring &= np.hypot(xx - xy[o, 0], yy - xy[o, 1]) > 1.3 * radius[o]
        if core.any() and ring.any():
            window = img[y0:y1, x0:x1]
            out[b] = np.linalg.norm(window[core].mean(0) - window[ring].mean(0))
    return out
