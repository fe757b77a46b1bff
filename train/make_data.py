"""Generate a synthetic billiards dataset: clips, questions, answers, commentary.

    python train/make_data.py --out data/billiards --clips 1000 --seed 0 --workers 2
    python train/make_data.py --out data/tiny --clips 8 --seed 1 --games 9ball,3cushion   # tiny CPU run

Re-running the same command resumes: finished clips are skipped. ``--shard i/n`` generates every
n-th clip starting at i (run all shards, then once without ``--shard`` to merge). The same seed and
engine version give identical annotations and identical video bytes. See
``hilight_train/billiards/dataset.py`` for the folder layout and splits.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from hilight_train.billiards.clip import ClipConfig
from hilight_train.billiards.games import GAMES
from hilight_train.billiards.runner import generate
from hilight_train.cli import run_main


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="dataset folder")
    p.add_argument("--clips", type=int, required=True, help="total clips over train/val/test (80/10/10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--games", default=",".join(GAMES), help=f"comma list from {','.join(GAMES)}")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--shard", default=None, help="i/n: only clips k with k %% n == i")
    p.add_argument("--width", type=int, default=448)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--max-duration", type=float, default=8.0, help="seconds; longer shots are cut")
    p.add_argument(
        "--x264-preset", default="veryfast", help="libx264 preset (ultrafast: faster, larger files)"
    )
    args = p.parse_args(argv)
    if args.clips < 1:
        p.error("--clips must be >= 1")
    games = [g.strip() for g in args.games.split(",") if g.strip()]
    unknown = [g for g in games if g not in GAMES]
    if unknown:
        p.error(f"unknown games {unknown}; choose from {', '.join(GAMES)}")
    if args.width % 2 or args.height % 2:
        p.error("--width and --height must be even (H.264 yuv420p)")
    cfg = ClipConfig(
        width=args.width,
        height=args.height,
        fps=args.fps,
        max_duration=args.max_duration,
        x264_preset=args.x264_preset,
    )
    command = "python train/make_data.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    stats = generate(
        args.out, args.clips, args.seed, games, cfg, workers=args.workers, shard=args.shard, command=command
    )
    if stats:
        print(f"wrote {stats['clips']} clips, {stats['entries']} entries to {args.out}")


if __name__ == "__main__":
    run_main(main)
