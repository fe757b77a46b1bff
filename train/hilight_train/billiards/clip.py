"""One clip end to end: sample, simulate, judge, describe, render and encode.

``make_clip(game, seed, cfg)`` is a pure function of its arguments (all randomness comes from
``numpy.random.default_rng(seed)``, the questions' and commentary's from a second stream of the same seed),
so the same seed gives the same record, the same video bytes and the same per-frame ground truth
(``frame_truth``: where every ball is drawn in every frame), and a change of wording leaves the pictures
as they were.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import pooltool as pt
import pooltool.constants as const

from . import frame_truth
from .camera import sample_camera
from .captions import canonical_events, caption_events, make_caption
from .dataset import ENGINE_VERSION
from .games import get_game
from .qa import make_questions
from .render import BallSprites, render_background, render_frames, sample_look
from .rules import judge
from .shots import build_system, sample_shot
from .simulate import end_time, extract_events, sample_positions, simulate_shot, truncate
from .tables import make_table
from .truth import summarize


@dataclass(frozen=True)
class ClipConfig:
    """Rendering and timing options shared by all clips of a dataset."""

    width: int = 448
    height: int = 256
    fps: int = 30
    max_duration: float = 8.0  # seconds of shot; longer shots are cut here
    tail: float = 0.4  # seconds of stillness after the last ball stops
    retries: int = 2  # resample a shot this many times if it runs past max_duration
    broadcast_prob: float = 0.5
    x264_preset: str = "veryfast"  # libx264 preset: "ultrafast" encodes faster into larger files


@lru_cache(maxsize=8)
def _table(game: str) -> pt.Table:
    return make_table(game)


def _simulate(game: str, rng: np.random.Generator, cfg: ClipConfig):
    """Sample and simulate a shot.

    Shots that run past ``max_duration`` are resampled up to ``cfg.retries`` times (then cut).
    Three-cushion searches up to 80 candidate shots for the wanted outcome (a point for about half
    of the clips), judged on what the clip shows.
    """
    table = _table(game)
    want_point = bool(rng.random() < 0.5)
    tries = 80 if game == "3cushion" else cfg.retries + 1
    for attempt in range(tries):
        shot = sample_shot(game, table, rng)
        try:
            system = simulate_shot(build_system(shot, table))
        except ValueError as e:  # pooltool's quartic solver fails on rare degenerate geometry
            if attempt == tries - 1:
                raise RuntimeError(f"pooltool could not simulate any sampled {game} shot: {e}") from e
            continue
        t_end = end_time(system)
        if game == "3cushion":
            seen = truncate(system, cfg.max_duration) if t_end > cfg.max_duration else system
            ok = judge(seen, game, shot.rules)["point"] == want_point
        else:
            ok = t_end <= cfg.max_duration
        if ok or attempt == tries - 1:
            return shot, system, t_end
    raise AssertionError("unreachable")


def make_clip(game: str, seed: int, cfg: ClipConfig = ClipConfig(), timings: dict | None = None):
    """Build one clip. Returns (frames (F, H, W, 3) uint8, record dict without split/id, its
    `frame_truth.FrameTruth`)."""
    t0, c0 = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(seed)
    spec = get_game(game)
    shot, system, t_end = _simulate(game, rng, cfg)
    truncated = t_end > cfg.max_duration
    shot_t = min(t_end, cfg.max_duration)
    seen = truncate(system, shot_t) if truncated else system
    family = "broadcast" if rng.random() < cfg.broadcast_prob else "overhead"
    cam = sample_camera(family, system.table.w, system.table.l, cfg.width, cfg.height, rng)
    events = extract_events(seen, game, cam.view)
    rules = judge(seen, game, shot.rules)
    n_frames = math.ceil((shot_t + cfg.tail) * cfg.fps)
    times = np.minimum(np.arange(n_frames) / cfg.fps, shot_t)
    ids, xyz, on = sample_positions(seen, times)
    R = float(system.balls[spec.cue_id].params.R)
    cue_moving = seen.balls[spec.cue_id].history[-1].s in (const.sliding, const.rolling)
    truth = summarize(
        game, events, ids, times, xyz, on, cam.view, n_frames / cfg.fps, truncated, rules, R, cue_moving
    )
    # questions and commentary: their own stream, so wording never moves the pictures
    words = np.random.default_rng([seed, 1])
    qa = make_questions(game, truth, words)
    caption = make_caption(game, truth, words)
    look = sample_look(game, rng)
    t1, c1 = time.perf_counter(), time.process_time()
    from .games import canonical_ball

    names = [canonical_ball(game, b) for b in ids]
    bg = render_background(cam, system.table, look, _cushion_width(game), rng)
    sprites = BallSprites(game, names, cam, rng, look.blur)
    frames = render_frames(bg, cam, sprites, ids, names, R, xyz, on)
    per_frame = frame_truth.compute(cam, names, R, xyz, on, cfg.fps)
    t2, c2 = time.perf_counter(), time.process_time()
    if timings is not None:  # wall and CPU seconds per stage
        for key, value in (
            ("simulate", t1 - t0),
            ("render", t2 - t1),
            ("simulate_cpu", c1 - c0),
            ("render_cpu", c2 - c1),
        ):
            timings[key] = timings.get(key, 0.0) + value
    record = {
        "game": game,
        "seed": int(seed),
        "engine_version": ENGINE_VERSION,
        "config": asdict(cfg),
        "shot": shot.to_json(),
        "camera": {
            "family": family,
            "orientation": cam.view.k,
            "eye": [round(float(v), 5) for v in cam.eye],
            "f": round(cam.f, 4),
            "principal": [round(cam.cx, 3), round(cam.cy, 3)],
        },
        "look": look.to_json(),
        "n_frames": n_frames,
        "events": events,
        "truth": truth,
        "qa": qa,
        "caption": caption,
        "caption_facts": canonical_events(caption_events(game, truth)),
        "long_caption": long_caption(game, family, look.cloth, caption),
    }
    return frames, record, per_frame


def _cushion_width(game: str) -> float:
    return 0.0394 if game == "snooker" else 0.0508


def long_caption(game: str, family: str, cloth: str, caption: str) -> str:
    """Scene description + commentary, for frame/long-caption pretraining of the towers."""
    cam = "an overhead camera" if family == "overhead" else "a broadcast camera behind the short rail"
    table = {
        "9ball": "a pool table",
        "8ball": "a pool table",
        "snooker": "a snooker table",
        "3cushion": "a carom table without pockets",
    }[game]
    return f"A {get_game(game).display} shot on {table} with {cloth.replace('-', ' ')} cloth, seen from {cam}. {caption}"
