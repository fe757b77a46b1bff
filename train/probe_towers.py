"""Do a model's vision towers carry the answers? Linear probes on frozen tower outputs, per question type.

For every clip of a data-engine dataset the towers run once (frames from a frame cache when given); each
clip becomes one vector per representation:

    video_special   CLIP-ViP's CLS + 3 proxy tokens, concatenated       (4*Dv)
    video_frames    CLIP-ViP patch tokens averaged per frame            (T*Dv)
    image_frames    Long-CLIP per-frame embeddings                      (T*Di)
    vision_tokens   TokenMining's output averaged over its tokens       (H)
    vision_last     TokenMining's tokens of the last frame, concatenated (Q*H)

A multinomial logistic regression (AdamW, weight decay, standardised inputs) per question type with one
answer per clip is fit on the train split and scored on the test split, beside the train split's majority
answer. A probe near the majority line means the information is not linearly present in that
representation: no language model on top can read it out reliably.

    python train/probe_towers.py --model outputs/default/stage0 --data outputs/default/data \
        --frame_cache outputs/default/data/frame_cache --out outputs/default/probe.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tqdm import tqdm

from hilight_train.cli import run_main
from hilight_train.frame_cache import FrameCache
from hilight_train.precision import cpu_autocast
from hilight_train.probes import linear_probe
from hilight_train.training import load_model_and_processor

TYPES = ("ball_moved", "potted_count", "foul", "cue_rest_region", "cue_cushions_total", "first_contact")


@torch.no_grad()
def clip_features(model, processor, videos: list[str], frames: FrameCache | None, batch: int = 8):
    """{representation: (N, D)} for `videos`, bf16 autocast where the CPU has it, in order."""
    out: dict[str, list[torch.Tensor]] = {}
    for i in tqdm(range(0, len(videos), batch), desc="towers", unit="batch"):
        chunk = videos[i : i + batch]
        sources = frames.load(chunk) if frames is not None else chunk
        pixels = processor.video_processor(sources, return_tensors="pt")[
            "pixel_values_videos"
        ]  # (V, T, 3, H, W)
        with cpu_autocast():
            f = model.get_video_features(pixels, return_intermediates=True)
        h, e, v = f.video_hidden_states.float(), f.frame_embeds.float(), f.video_embeds.float()
        V, T = e.shape[:2]
        M = 1 + model.config.video_config.num_proxy_tokens  # CLS + proxies lead the CLIP-ViP tokens
        reps = {
            "video_special": h[:, :M].flatten(1),
            "video_frames": h[:, M:].reshape(V, T, -1, h.shape[-1]).mean(2).flatten(1),
            "image_frames": e.flatten(1),
            "vision_tokens": v.mean(1),
            "vision_last": v.reshape(V, T, -1, v.shape[-1])[:, -1].flatten(1),
        }
        for k, x in reps.items():
            out.setdefault(k, []).append(x)
    return {k: torch.cat(v) for k, v in out.items()}


def probe(x_train, y_train, x_test, y_test, n_classes: int, steps: int = 400, seed: int = 0) -> float:
    """Test accuracy of a weight-decayed multinomial logistic regression on standardised features."""
    logits = linear_probe(x_train, y_train, x_test, n_classes, steps=steps, seed=seed)
    return (logits.argmax(-1) == y_test).float().mean().item()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HiLight folder whose towers to probe")
    p.add_argument("--data", type=Path, required=True, help="data-engine dataset folder")
    p.add_argument("--frame_cache", type=Path, default=None, help="frame cache folder (optional)")
    p.add_argument("--train_split", default="train")
    p.add_argument("--test_split", default="test")
    p.add_argument("--out", type=Path, default=None, help="write the table (markdown) here too")
    args = p.parse_args()

    model, processor = load_model_and_processor(args.model)
    model.eval()
    frames = FrameCache(args.frame_cache, processor.video_processor) if args.frame_cache else None
    facts: dict[str, dict[str, str]] = {}
    videos: dict[str, str] = {}
    splits: dict[str, str] = {}
    for e in json.loads((args.data / "annotations.json").read_text()):
        facts.setdefault(e["clip"], {})[e["type"]] = json.dumps(e["facts"], sort_keys=True)
        videos[e["clip"]] = str(args.data / e["video"])
        splits[e["clip"]] = e["split"]
    train = sorted(c for c in facts if splits[c] == args.train_split)
    test = sorted(c for c in facts if splits[c] == args.test_split)
    feats_train = clip_features(model, processor, [videos[c] for c in train], frames)
    feats_test = clip_features(model, processor, [videos[c] for c in test], frames)

    reps = list(feats_train)
    lines = [
        f"Linear probes of `{args.model}` ({len(train)} {args.train_split} clips -> {len(test)} "
        f"{args.test_split} clips); accuracy on {args.test_split}",
        "",
        "| question type | classes | " + " | ".join(reps) + " | majority |",
        "|---|---|" + "---|" * (len(reps) + 1),
    ]
    for qtype in TYPES:
        tr = [i for i, c in enumerate(train) if qtype in facts[c]]
        te = [i for i, c in enumerate(test) if qtype in facts[c]]
        labels = sorted({facts[train[i]][qtype] for i in tr} | {facts[test[i]][qtype] for i in te})
        y_tr = torch.tensor([labels.index(facts[train[i]][qtype]) for i in tr])
        y_te = torch.tensor([labels.index(facts[test[i]][qtype]) for i in te])
        majority = (y_te == torch.bincount(y_tr, minlength=len(labels)).argmax()).float().mean().item()
        accs = [probe(feats_train[r][tr], y_tr, feats_test[r][te], y_te, len(labels)) for r in reps]
        lines.append(
            f"| {qtype} | {len(labels)} | " + " | ".join(f"{a:.3f}" for a in accs) + f" | {majority:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    run_main(main)
