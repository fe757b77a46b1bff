"""Stage 0 perception step: the tiny preset's conv stems computing in channels-last memory vs NCHW.

One training step of `train/stage0_perception.py` (both towers and the perception heads, bf16 autocast or fp32,
forward + backward + AdamW) on a fixed batch of stream scenes, with the stems' `memory_format` set to
NCHW (the baseline: PyTorch's default layout) and to channels-last (the model's default), measured in turn
in the same run; plus the two stems' forward alone. Same weights, same batch.

    python benchmarks/bench_stage0.py                      # 16 rows x 3 frames, 2 threads, 5 steps per layout
    python benchmarks/bench_stage0.py --rows 4 --steps 2   # quick
    python benchmarks/bench_stage0.py --dtype fp32         # the layouts in fp32 (CPUs without bf16 instructions)

Prints seconds per step per layout and the ratio NCHW / channels-last.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from _timing import timed

from hilight_train.billiards.scenes import SceneStream
from hilight_train.model_folder import init_model_folder
from hilight_train.perception import SceneDataset, TowerPerceptionModel, collate, heads_for


def stems(model) -> list:
    return [model.video_tower.patch_embedding, model.image_tower.patch_embedding]


def stage0_setup(rows: int, frames: int):
    """A fresh tiny model, its perception network, an AdamW and a fixed batch of ``rows`` stream scenes."""
    torch.manual_seed(0)
    texts = ["The cue ball hit the 3-ball, which dropped in the top-left pocket. No foul."] * 20
    model, processor = init_model_folder(
        None, texts, preset="tiny", vocab_size=300
    )  # the towers are what count
    vc = model.config.video_config
    stream = SceneStream(("9ball", "8ball", "snooker"), seed=1, frames=frames, width=vc.frame_size[1],
                         height=vc.frame_size[0])  # fmt: skip
    batch = collate([SceneDataset(stream, processor.video_processor, vc.grid_size, rows)[i]
                     for i in range(rows)])  # fmt: skip
    net = TowerPerceptionModel(model.video_tower, model.image_tower, heads_for(model)).train()
    return model, net, torch.optim.AdamW(net.parameters(), lr=1e-4), batch


def train_step(net, optimizer, batch: dict, bf16: bool = True) -> None:
    """One stage-0 step: forward (bf16 autocast or fp32) + backward + AdamW."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = net(**batch)["loss"]
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=16)
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16", help="bf16 autocast or fp32")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, net, optimizer, batch = stage0_setup(args.rows, args.frames)
    vc = model.config.video_config
    pixels = batch["pixel_values"]
    bf16 = args.dtype == "bf16"
    step = partial(train_step, net, optimizer, batch, bf16)

    def stems_forward() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for stem in stems(model):
                stem(pixels.flatten(0, 1))

    layouts = {"NCHW": torch.contiguous_format, "channels-last": torch.channels_last}
    results: dict[str, dict[str, float]] = {}
    for name, fmt in layouts.items():
        for stem in stems(model):
            stem.memory_format = fmt
        results[name] = {"step": timed(step, args.steps), "stems": timed(stems_forward, args.steps)}
    base, new = results["NCHW"], results["channels-last"]
    print(f"tiny preset, {args.rows} rows x {args.frames} frames of {tuple(vc.frame_size)}, "
          f"{args.threads} threads, {'bf16 autocast' if bf16 else 'fp32'}, median of {args.steps}")  # fmt: skip
    print("| layout | train step | both stems forward |")
    print("|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['step']:.3f} s | {r['stems'] * 1e3:.0f} ms |")
    print(
        f"| NCHW / channels-last | {base['step'] / new['step']:.2f}x | {base['stems'] / new['stems']:.2f}x |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
