"""Data-engine throughput: clips per second at the default 448x256, 30 fps, split into stages.

    .venv/bin/python benchmarks/bench_data.py                 # 24 clips (6 per game), 2 workers
    .venv/bin/python benchmarks/bench_data.py --clips 8 --workers 1   # quick look

Stages per clip (one process, means over the clips): simulate (shot sampling with throw-corrected
aiming, pooltool simulation, events, rules, ground truth, questions, captions), render (numpy
background + ball sprites) and encode (PyAV libx264, single-threaded for identical bytes).

Baselines measured in the same run:
- renderer: a straightforward full-frame numpy compositor (every ball shaded over the whole image each
  frame, no sprite cache, no baking of still balls), on the first clips;
- encoder: libx264's default preset ("medium") instead of the engine's "veryfast";
- throughput: ``make_data``'s pipeline (generate(): workers, resumable files, merge) with 1 worker
  versus --workers workers. The goal is >= 5 clips/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from hilight_train.billiards import video
from hilight_train.billiards.clip import ClipConfig, make_clip
from hilight_train.billiards.games import GAMES, ball_look
from hilight_train.billiards.runner import generate


def naive_render(
    bg: np.ndarray, balls: list[str], game: str, pix: np.ndarray, rad: np.ndarray, on: np.ndarray
) -> np.ndarray:
    """Baseline: shade every ball over the full frame, every frame. pix (F, B, 2), rad (F, B)."""
    F, B = on.shape
    H, W = bg.shape[:2]
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    out = np.empty((F, H, W, 3), np.uint8)
    light = np.array([0.2, 0.3, -0.93])
    for i in range(F):
        frame = bg.astype(np.float32)
        for j in range(B):
            if not on[i, j]:
                continue
            r = rad[i, j]
            dx, dy = (xs - pix[i, j, 0]) / r, (ys - pix[i, j, 1]) / r
            d2 = dx**2 + dy**2
            a = np.clip(r - np.sqrt(d2) * r + 0.5, 0, 1)[..., None]
            nz = -np.sqrt(np.clip(1 - d2, 0, 1))
            lam = np.clip(dx * light[0] - dy * light[1] + nz * light[2], 0, 1)[..., None]
            col = np.asarray(ball_look(game, balls[j]).colour, np.float32) * (0.4 + 0.6 * lam) * 255
            frame = frame * (1 - a) + col * a
        out[i] = frame.astype(np.uint8)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--baseline-clips", type=int, default=2)
    args = p.parse_args()
    cfg = ClipConfig()
    make_clip("9ball", 0, cfg)  # warm-up: numba cache load, imports
    t = {"simulate": 0.0, "render": 0.0, "encode": 0.0, "encode_medium": 0.0, "render_naive": 0.0}
    cpu: dict = {}
    frames_total = 0
    naive_frames = 0
    ours_on_naive_clips = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.clips):
            game = GAMES[k % len(GAMES)]
            timings: dict = {}
            c0 = time.process_time()
            frames, rec, _ = make_clip(game, 1000 + k, cfg, timings=timings)
            t["simulate"] += timings["simulate"]
            t["render"] += timings["render"]
            cpu["simulate"] = cpu.get("simulate", 0.0) + timings["simulate_cpu"]
            cpu["render"] = cpu.get("render", 0.0) + timings["render_cpu"]
            frames_total += len(frames)
            s, sc = time.perf_counter(), time.process_time()
            video.write_mp4(Path(tmp) / "a.mp4", frames, cfg.fps)
            t["encode"] += time.perf_counter() - s
            cpu["encode"] = cpu.get("encode", 0.0) + time.process_time() - sc
            cpu["total"] = cpu.get("total", 0.0) + time.process_time() - c0
            if k < args.baseline_clips:
                s = time.perf_counter()
                video.write_mp4(
                    Path(tmp) / "b.mp4", frames, cfg.fps, options={**video.X264_OPTIONS, "preset": "medium"}
                )
                t["encode_medium"] += time.perf_counter() - s
                ours_on_naive_clips += timings["render"]
                # same number of frames and balls as the clip, balls of 5 px radius at random places
                F = len(frames)
                rng = np.random.default_rng(k)
                B = len(rec["truth"]["final"])
                pix = np.stack([rng.uniform(20, 420, (F, B)), rng.uniform(20, 230, (F, B))], axis=-1)
                rad = np.full((F, B), 5.0)
                on = np.ones((F, B), bool)
                s = time.perf_counter()
                naive_render(frames[0], ["cue"] * B, game, pix, rad, on)
                t["render_naive"] += time.perf_counter() - s
                naive_frames += F
        n = args.clips
        per = {k: t[k] / n for k in ("simulate", "render", "encode")}
        cpu_per_clip = cpu["total"] / n
        total = sum(per.values())
        print(
            f"clips: {n} ({', '.join(GAMES)}), {frames_total / n:.0f} frames/clip on average, 448x256 @ 30 fps"
        )
        print("\nper clip, one process:")
        cpu_total = sum(cpu[k] for k in per)
        for k, v in per.items():
            print(
                f"  {k:9s} {v * 1000:7.1f} ms wall ({v / total:5.1%})   {cpu[k] / n * 1000:7.1f} ms CPU ({cpu[k] / cpu_total:5.1%})"
            )
        print(f"  {'total':9s} {total * 1000:7.1f} ms wall  -> {1 / total:.2f} clips/s per core")
        print(
            f"  CPU time {cpu_per_clip * 1000:.1f} ms/clip (wall/CPU = {total / cpu_per_clip:.2f}: >1 means other jobs took the core)"
        )
        b = args.baseline_clips
        print("\nbaselines (same run):")
        print(
            f"  renderer: full-frame compositor {t['render_naive'] / b * 1000:.0f} ms/clip vs engine "
            f"{ours_on_naive_clips / b * 1000:.0f} ms/clip -> {t['render_naive'] / max(ours_on_naive_clips, 1e-9):.1f}x faster"
        )
        enc_ours = t["encode"] / n
        print(
            f"  encoder: x264 'medium' {t['encode_medium'] / b * 1000:.0f} ms/clip vs 'veryfast' "
            f"{enc_ours * 1000:.0f} ms/clip (all clips) -> {t['encode_medium'] / b / enc_ours:.2f}x"
        )
        rates, cpu_rates = {}, {}
        for w in sorted({1, args.workers}):
            out = Path(tmp) / f"ds{w}"
            r0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            s = time.perf_counter()
            generate(out, n, 5, list(GAMES), cfg, workers=w)
            rates[w] = n / (time.perf_counter() - s)
            r1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            used = sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in zip(r0, r1, strict=True))
            cpu_rates[w] = w * n / used  # what w otherwise idle cores would give
        print(
            f"\nend to end (make_data pipeline: clips + files + merge); load average now {os.getloadavg()[0]:.1f}:"
        )
        for w, r in rates.items():
            print(
                f"  workers={w}: {r:.2f} clips/s wall; CPU time {w / cpu_rates[w]:.3f} s/clip -> {cpu_rates[w]:.2f} clips/s on {w} idle core(s)"
            )
        if args.workers != 1:
            print(f"  scaling {args.workers} workers vs 1: {rates[args.workers] / rates[1]:.2f}x")
        goal = 5.0
        best = max(rates.values())
        est = cpu_rates[args.workers]
        print(
            f"\ngoal >= {goal} clips/s on 2 cores: measured {best:.2f} clips/s wall "
            f"({'met' if best >= goal else 'NOT met'}; other jobs share these cores), "
            f"{est:.2f} clips/s from CPU time on {args.workers} idle cores ({'met' if est >= goal else 'NOT met'}); "
            f"10,000 clips: {10000 / best / 60:.0f} min measured, {10000 / est / 60:.0f} min on idle cores"
        )


if __name__ == "__main__":
    main()
