"""Training throughput: stage 1/2 steps from the feature cache vs running the towers every step.

Baseline (the official way): every step decodes the clips with decord and runs CLIP-ViP + Long-CLIP, then
TokenMining and the LM. Cached: every step reads the towers' stored outputs (bf16 safetensors) and runs
TokenMining and the LM only. Same model, same batch (same clips and conversations), same machine, bf16
autocast as in training, forward + backward + optimizer step. A third row runs the towers on frames that
were decoded once, to show how much of the gap is decoding and how much is the towers.

    python benchmarks/bench_train.py                     # tiny preset, 8 engine clips, batch 4
    python benchmarks/bench_train.py --steps 20 --threads 2 --batch 8

Recorded on the 2-core dev machine (shared, 1 thread): stage 1 6.8x, stage 2 (LoRA r=64) 6.1x.

Prints samples/s per stage and path and the ratio cached / towers-every-step (goal: >= 5x).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from hilight_train.billiards.clip import ClipConfig
from hilight_train.billiards.runner import generate
from hilight_train.cache import build_feature_cache
from hilight_train.collator import HiLightCollator
from hilight_train.model_folder import init_model_folder
from hilight_train.training import (
    causal_lm_loss,
    load_rows,
    lora_config,
    set_trainable_params,
    trainable_globs,
)


def make_model(stage: str, model, processor):
    set_trainable_params(model, *trainable_globs("stage1"))
    if stage == "stage2":
        from peft import get_peft_model
        from trl import ModelConfig

        paper_lora = ModelConfig(use_peft=True, lora_r=64, lora_alpha=32, lora_dropout=0.05)
        model = get_peft_model(model, lora_config(model, paper_lora))  # + the TokenMining copy
    params = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.AdamW(params, lr=1e-4)


def step(model, optimizer, batch) -> None:
    batch = dict(batch)
    labels = batch.pop("labels")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = causal_lm_loss(model(**batch, use_cache=False).logits, labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def samples_per_second(model, optimizer, rows, make_batch, steps: int) -> float:
    step(model, optimizer, make_batch(rows))  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step(model, optimizer, make_batch(rows))  # the batch is built inside the timed loop, as in training
    return steps * len(rows) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=10)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=2, help="interleaved repeats per path; the best is kept")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steady numbers on a shared CPU)")
    p.add_argument("--workdir", default=None, help="reuse data/cache here (default: a temporary folder)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_train_"))
    data = work / "data"
    if not (data / "annotations.json").exists():
        generate(
            data, args.clips, 0, ["9ball", "8ball", "snooker", "3cushion"], ClipConfig(), command="bench"
        )
    entries = json.loads((data / "annotations.json").read_text())
    texts = [t["value"].replace("<video>", "") for e in entries for t in e["conversations"]]
    model, processor = init_model_folder(None, texts, preset="tiny", vocab_size=2048, seed=0)
    rows = load_rows(data / "annotations.json", split="").to_list()
    by_clip = {}
    for r in rows:
        by_clip.setdefault(r["video"], r)
    rows = list(by_clip.values())[: args.batch]  # one question per clip: `batch` distinct clips
    cache = build_feature_cache(model, processor, [r["video"] for r in rows], work / "cache", progress=False)
    cached = HiLightCollator(processor, cache)
    towers = HiLightCollator(processor)
    decoded = towers(rows)  # frames decoded once, towers still run each step
    print(
        f"tiny preset: {model.config.num_frames} frames of {model.config.video_config.image_size} px, "
        f"{model.config.tokens_per_video} vision tokens/clip; batch {len(rows)}; {args.threads} threads; bf16 autocast"
    )
    for stage in ("stage1", "stage2"):
        m, opt = make_model(stage, *init_model_folder(None, texts, preset="tiny", vocab_size=2048, seed=0))
        m.train()
        paths = {
            "towers every step (decode + towers)": lambda r: towers(r),
            "towers every step (pre-decoded frames)": lambda r: decoded,
            "feature cache": lambda r: cached(r),
        }
        best = dict.fromkeys(paths, 0.0)
        for _ in range(args.repeats):
            for name, make_batch in paths.items():
                best[name] = max(best[name], samples_per_second(m, opt, rows, make_batch, args.steps))
        base = best["towers every step (decode + towers)"]
        for name, value in best.items():
            print(f"  {stage}  {name:40s} {value:8.2f} samples/s   x{value / base:5.2f}")
        print(
            f"  {stage}  ratio feature cache / official (decode + towers every step): {best['feature cache'] / base:.1f}x"
        )


if __name__ == "__main__":
    main()
