"""Vision-token health: is TokenMining's output something a language model can read?

Measured on one fixed batch of training rows, at the start and end of a stage and at every log:

    vision_norm      mean L2 norm of the vision rows as the LM receives them (after any embed scale)
    text_norm        mean L2 norm of the batch's text-token embeddings (the scale the LM was built for)
    zero_fraction    share of exact zeros in the vision rows (a final ReLU can kill most of them)
    clip_spread      per token and channel, the standard deviation across the batch's distinct clips,
                     averaged and divided by the mean vision-row norm: ~0 means every clip gets the same
                     tokens (collapse); NaN when the batch holds one clip only

A healthy model keeps ``vision_norm`` within a small factor of ``text_norm``, few zeros, and a spread
that does not collapse towards 0 while training.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import TrainerCallback

from hilight.modeling_hilight import _one_video_input

from .precision import cpu_autocast

VISUAL_KEYS = ("pixel_values", "video_hidden_states", "frame_embeds", "video_embeds")


@torch.no_grad()
def token_health(model, batch: dict) -> dict[str, float]:
    """The health measures (module docstring) of ``model`` on a collated training batch."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    visual = {k: batch.get(k) for k in VISUAL_KEYS}
    visual["pixel_values"] = _one_video_input(batch.get("pixel_values_videos"), batch.get("pixel_values"))
    with cpu_autocast(enabled=next(base.parameters()).dtype == torch.float32):
        tokens = base._resolve_video_embeds(*(visual[k] for k in VISUAL_KEYS))  # (V, K, H)
    if tokens is None:
        raise ValueError("the batch has no visual input to measure the vision tokens on")
    scale = base.video_embed_scale
    rows = tokens.float() * (float(scale) if not isinstance(scale, torch.Tensor) else scale.float())
    ids = batch["input_ids"]
    text = ids[ids != base.config.video_token_id]
    text_rows = base.get_input_embeddings()(text).float()  # (N, H), with the LM's own embed scale
    norm = rows.norm(dim=-1).mean()
    distinct = torch.unique(rows.flatten(1), dim=0)  # questions about the same clip share its tokens
    spread = distinct.std(dim=0).mean() / norm if distinct.shape[0] > 1 else torch.tensor(float("nan"))
    return {
        "vision_norm": float(norm),
        "text_norm": float(text_rows.norm(dim=-1).mean()),
        "zero_fraction": float((rows == 0).float().mean()),
        "clip_spread": float(spread),
        "clips": int(distinct.shape[0]),
    }


class TokenHealthCallback(TrainerCallback):
    """Log `token_health` on the first training batch at the start, at every log and at the end of training,
    into ``output_dir/token_health.jsonl``."""

    def __init__(self):
        self.batch = None

    def _measure(self, args, state, model, when: str) -> None:
        if self.batch is None or model is None or not state.is_world_process_zero:
            return
        was_training = model.training
        model.eval()
        health = {"step": state.global_step, "when": when, **token_health(model, self.batch)}
        model.train(was_training)
        path = Path(args.output_dir) / "token_health.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(health) + "\n")

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        if train_dataloader is not None and self.batch is None:
            self.batch = next(iter(train_dataloader))
            self.batch = {k: v.to("cpu") if isinstance(v, torch.Tensor) else v for k, v in self.batch.items()}
        self._measure(args, state, model, "start")

    def on_log(self, args, state, control, model=None, **kwargs):
        self._measure(args, state, model, "log")

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self._measure(args, state, model, "end")
