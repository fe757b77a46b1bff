"""Stage 0: contrastive pretraining of the two vision towers from scratch (the tiny preset has no pretrained
towers to download), as CLIP-ViP and Long-CLIP were trained:

- CLIP-ViP on (clip, caption) pairs: ``encode_video`` (pooled CLS of all frames) vs ``encode_text``;
- Long-CLIP on (frame, long caption) pairs: ``encode_image`` of one frame per clip vs the 248-token text
  encoder on the long caption. The frame is ``crc32(clip id) % T``: fixed per clip, so the collator draws no
  random numbers and resumed runs see exactly the same batches.

Each pair set gets the symmetric InfoNCE loss (cross-entropy over cosine similarities in both directions) with
the tower's learnable temperature ``logit_scale`` (clamped at ln 100 as in CLIP); the stage loss is their sum.
Negatives are the other pairs of the same (per-device) batch. ``new_model`` builds a fresh model and trains a
BPE tokenizer on the dataset's text, which the towers' text encoders and the LM share.

Shape legend: V clips, T frames, L text tokens, D joint embedding width.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import PartialState
from datasets import Dataset
from torch import nn

from hilight.modeling_hilight import HiLightForConditionalGeneration

from .data import resolve_under
from .model_folder import init_model_folder
from .training import load_model_and_processor, save_hub_folder

MAX_LOGIT_SCALE = math.log(100.0)


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of matched rows: a, b (N, D) L2-normalised; learnable log temperature."""
    logits = a @ b.t() * logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()  # (N, N)
    target = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


class TowerContrastiveModel(nn.Module):
    """Both towers of a HiLight model under their contrastive objectives (shares the towers' modules)."""

    def __init__(self, video_tower: nn.Module, image_tower: nn.Module):
        super().__init__()
        self.video_tower = video_tower
        self.image_tower = image_tower

    def forward(
        self,
        pixel_values: torch.Tensor,
        caption_ids: torch.LongTensor,
        long_caption_ids: torch.LongTensor,
        frame_index: torch.LongTensor,
        **kwargs,
    ) -> dict[str, torch.Tensor]:
        """pixel_values (V, T, 3, H, W), caption ids (V, L1), long caption ids (V, L2), frame_index (V,)."""
        video = self.video_tower.encode_video(pixel_values, normalize=True)  # (V, D)
        text = self.video_tower.encode_text(caption_ids, normalize=True)  # (V, D)
        video_loss = info_nce(video.float(), text.float(), self.video_tower.logit_scale)
        frames = pixel_values[torch.arange(pixel_values.shape[0]), frame_index]  # (V, 3, H, W)
        image = self.image_tower.encode_image(frames, normalize=True)  # (V, D)
        long_text = self.image_tower.encode_text(long_caption_ids, normalize=True)  # (V, D)
        image_loss = info_nce(image.float(), long_text.float(), self.image_tower.logit_scale)
        return {
            "loss": video_loss + image_loss,
            "video_loss": video_loss.detach(),
            "image_loss": image_loss.detach(),
        }


def load_caption_rows(
    path: str | Path,
    video_root: str | Path | None = None,
    split: str | None = "train",
    limit: int | None = None,
) -> Dataset:
    """Rows ``{"id", "video", "caption", "long_caption"}`` from the data engine's ``captions.jsonl``."""
    path = Path(path)
    root = Path(video_root) if video_root is not None else path.parent
    rows = {"id": [], "video": [], "caption": [], "long_caption": []}
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        record = json.loads(line)
        missing = {"id", "video", "caption", "long_caption"} - record.keys()
        if missing:
            raise ValueError(f"{path}, line {i + 1}: missing {sorted(missing)}")
        if split and record.get("split", split) != split:
            continue
        rows["id"].append(str(record["id"]))
        rows["video"].append(str(resolve_under(root, record["video"])))
        rows["caption"].append(record["caption"])
        rows["long_caption"].append(record["long_caption"])
    if limit is not None:
        rows = {k: v[:limit] for k, v in rows.items()}
    if len(rows["id"]) < 2:
        raise ValueError(
            f"{path}: contrastive training needs at least 2 captioned clips, found {len(rows['id'])}"
        )
    return Dataset.from_dict(rows)


@dataclass
class ContrastiveCollator:
    """Decode clips with the processor's video processor; tokenize captions for the towers' text encoders
    (text + end-of-text, truncated to each encoder's context, right-padded with the pad id)."""

    processor: Any
    video_text_length: int
    image_text_length: int
    eos_token_id: int
    frame_cache: Any = None  # a FrameCache: decoded frames from disk instead of decoding the files

    def _ids(self, texts: list[str], length: int) -> torch.LongTensor:
        tok = self.processor.tokenizer
        rows = [
            [*tok(t, add_special_tokens=False)["input_ids"][: length - 1], self.eos_token_id] for t in texts
        ]
        out = torch.full((len(rows), max(map(len, rows))), tok.pad_token_id, dtype=torch.long)  # (V, L)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r)
        return out

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        videos = [r["video"] for r in rows]
        sources = self.frame_cache.load(videos) if self.frame_cache is not None else videos
        pixel_values = self.processor.video_processor(sources, return_tensors="pt")[
            "pixel_values_videos"
        ]  # (V, T, 3, H, W)
        T = pixel_values.shape[1]
        return {
            "pixel_values": pixel_values,
            "caption_ids": self._ids([r["caption"] for r in rows], self.video_text_length),
            "long_caption_ids": self._ids([r["long_caption"] for r in rows], self.image_text_length),
            "frame_index": torch.tensor([zlib.crc32(r["id"].encode()) % T for r in rows]),
        }


def collator_for(
    model: HiLightForConditionalGeneration, processor: Any, frame_cache: Any = None
) -> ContrastiveCollator:
    vt, it = model.config.video_config.text_config, model.config.image_config.text_config
    if vt.eos_token_id != it.eos_token_id:
        raise ValueError(
            "the two towers' text encoders must share the end-of-text id (they share a tokenizer)"
        )
    vocab = len(processor.tokenizer)
    if vocab > min(vt.vocab_size, it.vocab_size):
        raise ValueError(
            f"the tokenizer has {vocab} tokens but the towers' text encoders have "
            f"{vt.vocab_size}/{it.vocab_size}; train a smaller tokenizer or enlarge the towers' "
            "text_config.vocab_size"
        )
    return ContrastiveCollator(
        processor,
        vt.max_position_embeddings,
        it.max_position_embeddings,
        vt.eos_token_id,
        frame_cache,
    )


def new_model(
    preset: str,
    texts: list[str],
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    vocab_size: int = 2048,
) -> tuple[HiLightForConditionalGeneration, Any]:
    """A freshly initialised HiLight model of ``preset`` (``overrides`` merged in) and its processor, with a
    BPE tokenizer trained on ``texts`` (see ``hilight_train.model_folder.init_model_folder``)."""
    return init_model_folder(
        None, texts, preset=preset, vocab_size=vocab_size, seed=seed, **(overrides or {})
    )


def dataset_texts(*paths: str | Path) -> list[str]:
    """Every question, answer and caption in conversation JSON files and captions.jsonl files (tokenizer corpus)."""
    texts: list[str] = []
    for path in paths:
        path = Path(path)
        raw = path.read_text()
        records = (
            json.loads(raw)
            if raw.lstrip().startswith("[")
            else [json.loads(x) for x in raw.splitlines() if x.strip()]
        )
        for r in records:
            texts += [str(t["value"]).replace("<video>", "") for t in r.get("conversations", [])]
            texts += [str(r[k]) for k in ("caption", "long_caption", "q", "a") if k in r]
    return texts


def initial_model(
    model_name_or_path: str | None,
    init_dir: Path,
    corpus: list[str],
    preset: str,
    overrides: dict[str, Any],
    seed: int,
    vocab_size: int,
) -> tuple[HiLightForConditionalGeneration, Any]:
    """Where a stage-0 run starts: the given model folder, or a fresh ``preset`` model whose BPE tokenizer is
    trained on the text of ``corpus`` (files), saved to ``init_dir`` once (by the main process) so a resumed
    run starts from the same weights and tokenizer."""
    if model_name_or_path:
        return load_model_and_processor(model_name_or_path)
    state = PartialState()
    if state.is_main_process and not (init_dir / "config.json").exists():
        model, processor = new_model(
            preset, dataset_texts(*[p for p in corpus if p]), overrides, seed=seed, vocab_size=vocab_size
        )
        save_hub_folder(model, processor, init_dir)
    state.wait_for_everyone()
    return load_model_and_processor(init_dir)
