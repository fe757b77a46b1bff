"""A shifted copy of one split of a data-engine dataset: the same questions and facts, the clips re-encoded
under a shift the engine never produces (``hilight_train/shifts.py``: colour, compress, 720p).

    python train/make_shifted.py --data data/billiards --split test --shift colour --out data/billiards_colour
    python train/evaluate.py --model . --data data/billiards_colour --split test --out eval/colour

The output folder holds ``videos/`` (same names), ``annotations_<split>.json`` and, when the source has
one, ``annotations_train.json`` (text only: the majority baseline of the evaluation keeps its reference).
Re-running resumes: finished clips are kept (each written atomically).
"""

from __future__ import annotations

import argparse
import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

from tqdm.auto import tqdm

from hilight_train.billiards.video import write_mp4
from hilight_train.cli import run_main
from hilight_train.data import resolve_under
from hilight_train.evaluation import load_entries
from hilight_train.files import atomic_write_text
from hilight_train.shifts import SHIFTS, shift_frames


def shift_clip(shift: str, source: Path, target: Path) -> None:
    """Decode every frame of ``source``, apply ``shift`` and write ``target`` (atomically)."""
    from hilight.processing_hilight import read_video  # the package `hilight` is registered by hilight_train

    frames, meta = read_video(source, num_frames=None, decode_in_subprocess=False)
    shifted, options = shift_frames(shift, frames)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(target, shifted, round(meta.fps), options)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="data-engine dataset folder")
    p.add_argument("--split", default="test")
    p.add_argument("--shift", required=True, choices=sorted(SHIFTS))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--workers", type=int, default=1, help="clips re-encoded in parallel (one process each)")
    args = p.parse_args(argv)
    if args.out.resolve() == args.data.resolve():
        p.error("--out must differ from --data (the shifted clips would replace the originals)")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    entries = load_entries(args.data, args.split)
    videos = list(dict.fromkeys(e["video"] for e in entries))
    todo = [(resolve_under(args.data, rel), resolve_under(args.out, rel)) for rel in videos]
    todo = [(source, target) for source, target in todo if not target.is_file()]
    bar = tqdm(total=len(videos), initial=len(videos) - len(todo), desc=f"{args.shift} clips", unit="clip")
    jobs = (shift_clip, repeat(args.shift), [s for s, _ in todo], [t for _, t in todo])
    with ProcessPoolExecutor(args.workers) as pool:  # its processes start only when asked for work
        for _ in (pool.map if args.workers > 1 else map)(*jobs):
            bar.update()
    bar.close()
    atomic_write_text(args.out / f"annotations_{args.split}.json", json.dumps(entries, indent=1))
    train = args.data / "annotations_train.json"
    if train.is_file() and args.split != "train":
        shutil.copyfile(train, args.out / "annotations_train.json")
    atomic_write_text(
        args.out / "card.md",
        f"# {args.data.name}, {args.split} split, shift `{args.shift}`\n\n"
        f"{len(videos)} clips of `{args.data.name}` re-encoded by `train/make_shifted.py --shift {args.shift}` "
        "(see `train/hilight_train/shifts.py`); questions, answers and facts unchanged.\n",
    )
    print(f"wrote {len(videos)} {args.shift} clips and {len(entries)} entries to {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
