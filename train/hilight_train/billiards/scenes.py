"""A procedural stream of short rendered scenes with exact per-frame labels, for teaching towers to see.

Perception needs no physics: a scene is a random ball layout on a random table, camera and look (the
engine's own samplers and renderer), shown for ``frames`` frames during which some balls glide to new
places and some run into a pocket and disappear. Every frame comes with its `frame_truth.FrameTruth`, so
the labels are exact, and item ``i`` of a stream is a pure function of ``(seed, i)``: the stream is
deterministic and seekable, and a training run can see hundreds of thousands of distinct scenes without
storing any.

Layouts mix the situations a detector must get right: balls anywhere, along the cushions, in clusters and
touching pairs, and next to the pockets. Motion is a smooth glide (not simulated physics): it is there to
give clip-level labels (which balls moved, which disappeared) and motion blur-free moving balls.

    stream = SceneStream(("9ball", "8ball", "snooker"), seed=0)
    scene = stream[12345]        # .frames (T, H, W, 3) uint8, .truth FrameTruth, .game
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pooltool as pt

from . import frame_truth
from .camera import sample_camera
from .games import canonical_ball, get_game
from .render import BallSprites, render_background, render_frames, sample_look
from .tables import make_table

LAYOUT_MODES = ("anywhere", "cushion", "cluster", "touching", "pocket")
LAYOUT_WEIGHTS = (0.45, 0.15, 0.15, 0.1, 0.15)


@dataclass(frozen=True)
class Scene:
    game: str
    frames: np.ndarray  # (T, H, W, 3) uint8
    truth: frame_truth.FrameTruth


@lru_cache(maxsize=8)
def _table_and_radius(game: str) -> tuple[pt.Table, float]:
    params = pt.BallParams.default(game_type=pt.GameType(get_game(game).pooltool_game))
    return make_table(game), float(params.R)


def _cushion_width(game: str) -> float:
    return 0.0394 if game == "snooker" else 0.0508


def _free(p: np.ndarray, placed: list[np.ndarray], R: float) -> bool:
    return all(np.hypot(*(p - q)) >= 2 * R + 1e-4 for q in placed)


def _candidate(mode: str, table: pt.Table, R: float, placed: list[np.ndarray], rng) -> np.ndarray:
    w, l = table.w, table.l  # noqa: E741
    if mode == "cushion":
        gap = R * rng.uniform(1.0, 2.5)
        side = int(rng.integers(4))
        along = rng.uniform(R, (l if side < 2 else w) - R)
        return np.array([[gap, along], [w - gap, along], [along, gap], [along, l - gap]][side])
    if mode in ("cluster", "touching") and placed:
        q = placed[int(rng.integers(len(placed)))]
        d = 2 * R + (1e-3 if mode == "touching" else R * rng.uniform(0.2, 2.0))
        a = rng.uniform(0, 2 * np.pi)
        return q + d * np.array([np.cos(a), np.sin(a)])
    if mode == "pocket" and table.pockets:
        pocket = list(table.pockets.values())[int(rng.integers(len(table.pockets)))]
        c = np.asarray(pocket.center[:2], dtype=np.float64)
        toward = np.array([w / 2, l / 2]) - c
        toward /= np.linalg.norm(toward)
        a = rng.normal(0, 0.5)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        return c + rot @ toward * R * rng.uniform(2.0, 5.0)
    return np.array([rng.uniform(R, w - R), rng.uniform(R, l - R)])


def sample_layout(game: str, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Pooltool ball ids and table positions (B, 2) of a random layout (no overlaps, all on the cloth)."""
    spec = get_game(game)
    table, R = _table_and_radius(game)
    objects = list(spec.ball_ids)
    n = int(rng.integers(1, len(objects) + 1))
    ids = [objects[k] for k in sorted(rng.choice(len(objects), size=n, replace=False))]
    if rng.random() < 0.92:
        ids = [spec.cue_id, *ids]
    placed: list[np.ndarray] = []
    kept: list[str] = []
    for bid in ids:
        for _ in range(20):
            mode = LAYOUT_MODES[int(rng.choice(len(LAYOUT_MODES), p=LAYOUT_WEIGHTS))]
            p = _candidate(mode, table, R, placed, rng)
            if R <= p[0] <= table.w - R and R <= p[1] <= table.l - R and _free(p, placed, R):
                placed.append(p)
                kept.append(bid)
                break
    return kept, np.array(placed).reshape(-1, 2)


def _smooth(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3 - 2 * s)


def sample_motion(
    game: str, ids: list[str], start: np.ndarray, frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Positions xyz (T, B, 3) and on-table flags (T, B): each ball stays, glides to a free spot, or runs
    into a pocket and is gone from the frame it arrives."""
    table, R = _table_and_radius(game)
    B = len(ids)
    xy = np.repeat(start[None], frames, axis=0)  # (T, B, 2)
    on = np.ones((frames, B), dtype=bool)
    ends = [p.copy() for p in start]
    pockets = [np.asarray(p.center[:2], dtype=np.float64) for p in table.pockets.values()]
    for j in range(B):
        u = rng.random()
        pot_p = 0.18 if pockets and ids[j] != get_game(game).cue_id else (0.03 if pockets else 0.0)
        if u < 0.5 or frames < 2:
            continue
        a = int(rng.integers(0, frames - 1))
        b = int(rng.integers(a + 1, frames))
        s = _smooth((np.arange(frames) - a) / (b - a))[:, None]  # (T, 1) 0 -> 1 between frames a and b
        if u < 0.5 + pot_p:
            target = pockets[int(rng.integers(len(pockets)))]
            xy[:, j] = start[j] + s * (target - start[j])
            on[b:, j] = False
            ends[j] = np.array([np.inf, np.inf])
            continue
        others = [ends[k] for k in range(B) if k != j]
        for _ in range(20):
            target = np.array([rng.uniform(R, table.w - R), rng.uniform(R, table.l - R)])
            if _free(target, others, R):
                xy[:, j] = start[j] + s * (target - start[j])
                ends[j] = target
                break
    xyz = np.concatenate([xy, np.full((frames, B, 1), R)], axis=-1)
    return xyz, on


def make_scene(game: str, seed: int, frames: int = 12, width: int = 448, height: int = 256) -> Scene:
    """One scene (deterministic in ``seed``): rendered frames and their exact truth."""
    rng = np.random.default_rng(seed)
    table, R = _table_and_radius(game)
    ids, start = sample_layout(game, rng)
    xyz, on = sample_motion(game, ids, start, frames, rng)
    family = "broadcast" if rng.random() < 0.5 else "overhead"
    cam = sample_camera(family, table.w, table.l, width, height, rng)
    look = sample_look(game, rng)
    names = [canonical_ball(game, b) for b in ids]
    background = render_background(cam, table, look, _cushion_width(game), rng)
    sprites = BallSprites(game, names, cam, rng, look.blur)
    pictures = render_frames(background, cam, sprites, ids, names, R, xyz, on)
    return Scene(game, pictures, frame_truth.compute(cam, names, R, xyz, on, fps=float(frames)))


class SceneStream:
    """Item ``i`` = `make_scene` of game ``games[i % len(games)]`` with a seed from ``SeedSequence(seed, i)``:
    deterministic, seekable, unbounded (``len`` is ``size``, for samplers that need one)."""

    def __init__(
        self, games: tuple[str, ...], seed: int = 0, frames: int = 12, width: int = 448, height: int = 256,
        size: int = 10**7,
    ):  # fmt: skip
        for g in games:
            get_game(g)
        self.games, self.seed, self.frames, self.width, self.height, self.size = (
            tuple(games), seed, frames, width, height, size,
        )  # fmt: skip

    def __len__(self) -> int:
        return self.size

    def scene_seed(self, index: int) -> int:
        ss = np.random.SeedSequence(entropy=self.seed, spawn_key=(index,))
        return int(ss.generate_state(1, dtype=np.uint64)[0])

    def __getitem__(self, index: int) -> Scene:
        if not 0 <= index < self.size:
            raise IndexError(f"scene {index} out of range [0, {self.size})")
        game = self.games[index % len(self.games)]
        return make_scene(game, self.scene_seed(index), self.frames, self.width, self.height)
