"""Run the frozen towers once per clip and store their outputs (bf16 safetensors shards + fingerprint).

    python train/cache_features.py --model outputs/tiny/stage0 --data data/billiards/annotations.json
    python train/cache_features.py --model outputs/tiny/stage0 --data data/billiards/captions.jsonl --out cache/

Stages 1 and 2 build or complete the cache themselves before training (same default folder:
``<data folder>/feature_cache/<fingerprint id>``); this command does it ahead of time, e.g. on a bigger
machine. Re-running resumes; a cache folder built by other towers or another processor config is refused.
See ``hilight_train/cache.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hilight_train.cache import build_feature_cache
from hilight_train.cli import run_main
from hilight_train.data import load_samples, resolve_under
from hilight_train.stages import default_cache_dir
from hilight_train.training import load_model_and_processor


def videos_of(path: Path, video_root: Path | None) -> list[str]:
    """Video paths named by a conversation file or a captions.jsonl."""
    if path.suffix == ".jsonl" and "caption" in path.read_text().split("\n", 1)[0]:
        root = video_root or path.parent
        return [
            str(resolve_under(root, json.loads(ln)["video"]))
            for ln in path.read_text().splitlines()
            if ln.strip()
        ]
    return [str(s.video) for s in load_samples(path, video_root) if s.video is not None]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="Hub-style HiLight folder whose towers run")
    p.add_argument("--data", required=True, help="conversation JSON(L) or captions.jsonl")
    p.add_argument("--video_root", default=None)
    p.add_argument("--out", default=None, help="cache folder (default: <data folder>/feature_cache/<id>)")
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--bf16", action="store_true", help="run the towers under bf16 autocast")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, processor = load_model_and_processor(args.model)
    data = Path(args.data)
    out = args.out or default_cache_dir(data, model, processor, bf16=args.bf16)
    videos = videos_of(data, Path(args.video_root) if args.video_root else None)
    cache = build_feature_cache(model, processor, videos, out, batch_size=args.batch_size, bf16=args.bf16)
    print(f"{len(cache.index)} clips cached in {out}")


if __name__ == "__main__":
    run_main(main)
