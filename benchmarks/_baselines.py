"""Code paths the model no longer takes, kept as the baselines benchmarks compare against.

Needs `train/` on the import path (as every benchmark puts it)."""

import torch

import hilight_train  # noqa: F401  (registers the repo root as the package `hilight`)
from hilight.modeling_hilight import video_attention_mask


def masked_video_tower(tower, pixels: torch.Tensor) -> torch.Tensor:
    """CLIP-ViP as it ran before the frame blocks: one attention call over all tokens under the (L, L) rule
    mask. pixels (V, T, 3, H, W) -> hidden states (V, L, C), L = leading + T * patches."""
    pixels = tower.checked_clips(pixels)
    x = tower.pre_layernorm(tower.embed(pixels))  # (V, L, C)
    M, T, P = tower.config.num_leading_tokens, pixels.shape[1], tower.config.num_patches
    return tower.encoder(x, attn_mask=video_attention_mask(M, T, P, x.device))  # (V, L, C)
