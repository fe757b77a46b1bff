"""Can a vision tower trained from scratch learn a fact that one frame shows? A controlled comparison.

The fact is where the cue ball comes to rest (``cue_rest_region``, 9 regions of the picture), which the
clip's last frame shows. Two models see the same last frames (the processor's pixels), the same train/test
clips, batch size, steps, optimiser and schedule:

    tower   the preset's Long-CLIP image tower (a ViT), fresh weights, + a linear head on its embedding
    cnn     a 3-layer convolutional control (about 60k parameters) + a linear head

If the control learns the fact and the tower does not, the limit is the tower's learning from scratch at this
data size and step budget, not the data or the labels.

    python train/learnability.py --data outputs/default/data --frame_cache outputs/default/data/frame_cache
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from hilight_train.cli import run_main
from hilight_train.frame_cache import FrameCache
from hilight_train.model_folder import HiLightConfig, HiLightForConditionalGeneration, HiLightVideoProcessor
from hilight_train.probes import cnn_classifier, train_classifier

FACT = "cue_rest_region"


class TowerClassifier(nn.Module):
    def __init__(self, config: HiLightConfig, n_classes: int):
        super().__init__()
        # the model's own initialisation of a fresh tower (its parameters are initialised by post_init)
        self.tower = HiLightForConditionalGeneration(config).image_tower
        self.head = nn.Linear(config.image_config.projection_dim, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, classes)
        return self.head(self.tower.encode_image(images))


def last_frames(
    data: Path, split: str, video_processor: HiLightVideoProcessor, frames: FrameCache | None
) -> tuple[torch.Tensor, list[str]]:
    """Processor pixels of every clip's last sampled frame (N, 3, H, W) and its fact (JSON text)."""
    entries = [e for e in json.loads((data / f"annotations_{split}.json").read_text()) if e["type"] == FACT]
    videos = [str(data / e["video"]) for e in entries]
    sources = frames.load(videos) if frames is not None else [video_processor.load(v)[0] for v in videos]
    pixels = video_processor([s[-1:] for s in sources], num_frames=1, return_tensors="pt")
    return pixels["pixel_values_videos"][:, 0], [json.dumps(e["facts"]) for e in entries]


def train_and_score(model, x_tr, y_tr, x_te, y_te, steps: int, lr: float, batch: int, seed: int) -> dict:
    logits, summary = train_classifier(model, x_tr, y_tr, x_te, steps, lr, batch, seed)
    return {"test_accuracy": (logits.argmax(-1) == y_te).float().mean().item(), **summary}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="data-engine dataset folder")
    p.add_argument("--frame_cache", type=Path, default=None, help="frame cache folder (optional)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--patch_size", type=int, default=None, help="override the tower's patch size")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--tower_lr", type=float, default=3e-4)
    p.add_argument("--cnn_lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    image_config = {"patch_size": args.patch_size} if args.patch_size else {}
    config = HiLightConfig.from_preset(args.preset, image_config={**image_config, "use_text_encoder": False})
    height, width = config.image_config.frame_size
    video_processor = HiLightVideoProcessor(
        num_frames=config.num_frames, size={"height": height, "width": width}
    )
    frames = FrameCache(args.frame_cache, video_processor) if args.frame_cache else None
    x_tr, f_tr = last_frames(args.data, "train", video_processor, frames)
    x_te, f_te = last_frames(args.data, "test", video_processor, frames)
    labels = sorted(set(f_tr) | set(f_te))
    y_tr = torch.tensor([labels.index(f) for f in f_tr])
    y_te = torch.tensor([labels.index(f) for f in f_te])
    majority = (y_te == torch.bincount(y_tr, minlength=len(labels)).argmax()).float().mean().item()
    torch.manual_seed(args.seed)
    models = {
        "tower": (TowerClassifier(config, len(labels)), args.tower_lr),
        "cnn": (cnn_classifier(len(labels)), args.cnn_lr),
    }
    print(
        f"{FACT}: {len(labels)} classes, {len(x_tr)} train / {len(x_te)} test clips, majority {majority:.3f}"
    )
    for name, (model, lr) in models.items():
        params = sum(p.numel() for p in model.parameters())
        r = train_and_score(model, x_tr, y_tr, x_te, y_te, args.steps, lr, args.batch, args.seed)
        print(
            f"{name:5s} ({params / 1e6:.2f} M params, lr {lr:g}): test accuracy {r['test_accuracy']:.3f}, "
            f"train loss over the last 10% {r['final_train_loss']:.3f} (chance {torch.log(torch.tensor(len(labels))):.3f}), "
            f"{r['seconds']:.0f} s"
        )
    return 0


if __name__ == "__main__":
    run_main(main)
