"""HiLight (arXiv 2407.07325): a video-language model with two vision towers fused by TokenMining.

    pixel_values (V, T, 3, H, W) ─┬─► CLIPViPVideoTower ─► hidden states before post-LN (V, M + T*P, Dv)
                                  └─► LongCLIPImageTower ─► per-frame ln_post(CLS) @ proj (V, T, Di)
                                                 │
    TokenMining: queries from the frame embeddings, keys/values from the CLIP-ViP tokens ─► (V, T*Q, H)
                                                 │
    input_ids with T*Q `<video>` tokens per clip ─► masked_scatter ─► causal LM (any HF causal LM) ─► logits

What is notable here:
- CLIP-ViP's attention rule (the M leading tokens = CLS + proxies see everything; a patch token sees the
  leading tokens and its own frame) is two `scaled_dot_product_attention` calls without a mask: the leading
  queries against all keys, and every frame's patch queries against its own keys, batched over frames
  (`frame_block_attention`; no Python loop, no (L, L) mask, T times fewer patch scores). The temporal embedding is linearly interpolated for other frame counts.
- Long-CLIP encodes all frames of all clips in one batched pass (the official code loops frame by frame).
- TokenMining reproduces the official query layout exactly (see `TokenMining`), so official weights give
  official numbers; `train/convert_official.py` converts official checkpoints to this file's layout.
- Vision tokens are spliced where the LM's token embeddings are, and any scale the LM's input embedding
  applies to token rows (Gemma's sqrt(hidden_size)) is applied to them too, as in the official model.
- No dtype casts in forward: run fp32 for parity, or bf16 (weights or autocast) for speed on CPU. The only
  conversion aligns the vision tokens with the dtype of the LM's embeddings before the splice.
- What trains is not decided here: the training code's one rule (`train/hilight_train/training.py`,
  `trainable_globs` / `set_trainable_params`) selects parameters by name per stage.

Shape legend: V videos (clips) in a batch, T frames per clip, P patches per frame, M leading tokens
(1 CLS + proxies), Dv / Di widths of the video tower / Long-CLIP embedding, Q queries per frame,
H LM hidden size, B batch rows of text, S text length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_hilight import (
    HiLightConfig,
    HiLightImageConfig,
    HiLightTokenMiningConfig,
    HiLightVideoConfig,
)

# ----------------------------------------------------------------------------------------------------------
# Outputs


def _all_finite(t: torch.Tensor, chunk: int = 1 << 22) -> bool:
    """`torch.isfinite(t).all()` over slices of ``chunk`` elements: the check's temporaries stay small (on a
    whole bf16 tensor they would be several times its size)."""
    if type(t) is not torch.Tensor and hasattr(t, "dequantize"):  # a quantized weight (e.g. torchao's int8)
        t = t.dequantize()
    flat = t.detach().reshape(-1)  # a view of a contiguous tensor
    return all(bool(torch.isfinite(flat[i : i + chunk]).all()) for i in range(0, flat.numel(), chunk))


def _one_video_input(pixel_values_videos: torch.Tensor | None, pixel_values: torch.Tensor | None):
    """`pixel_values_videos` (transformers' name for video inputs) or its alias `pixel_values`, not both."""
    if (
        pixel_values_videos is not None
        and pixel_values is not None
        and pixel_values_videos is not pixel_values
    ):
        raise ValueError("pass the clips once: pixel_values_videos or its alias pixel_values, not both")
    return pixel_values_videos if pixel_values_videos is not None else pixel_values


@dataclass
class HiLightVideoFeatures(ModelOutput):
    """What `get_video_features` returns.

    Args:
        video_embeds: vision tokens for the LM, (V, T*Q, H).
        video_hidden_states: CLIP-ViP last-layer hidden states before post-LN, (V, M + T*P, Dv).
        frame_embeds: Long-CLIP per-frame embeddings, (V, T, Di).
        token_mining_attentions: TokenMining softmax weights, (V, T*Q, M + T*P).
    """

    video_embeds: torch.FloatTensor | None = None
    video_hidden_states: torch.FloatTensor | None = None
    frame_embeds: torch.FloatTensor | None = None
    token_mining_attentions: torch.FloatTensor | None = None


@dataclass
class HiLightCausalLMOutputWithPast(CausalLMOutputWithPast):
    """Causal-LM output plus the vision tokens spliced into this forward (None on decoding steps).

    Args:
        video_embeds: (V, T*Q, H) vision tokens used in this forward.
    """

    video_embeds: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------
# Shared transformer pieces (pre-LN blocks as in CLIP; q|k|v fused into one Linear)


class Attention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (queries scaled by head_dim**-0.5)."""

    def __init__(self, width: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        frame_blocks: tuple[int, int, int] | None = None,
    ):
        B, L, C = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.num_heads, C // self.num_heads)  # (B, L, 3, nh, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, L, hd)
        if frame_blocks is None:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, is_causal=is_causal
            )  # (B, nh, L, hd)
        else:
            y = frame_block_attention(q, k, v, *frame_blocks)
        return self.out_proj(y.transpose(1, 2).reshape(B, L, C))  # (B, L, C)


def frame_block_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_leading: int, num_frames: int, num_patches: int
) -> torch.Tensor:
    """CLIP-ViP's attention rule without an (L, L) mask: the M leading tokens' queries attend to every key;
    the patch queries of frame t attend to the leading keys and frame t's keys, all frames in one batched
    call. Exactly the masked attention of `video_attention_mask`, with T times fewer patch scores.
    q, k, v (B, nh, M + T*P, hd) -> (B, nh, M + T*P, hd)."""
    M, T, P = num_leading, num_frames, num_patches
    B, nh, _, hd = q.shape
    leading = F.scaled_dot_product_attention(q[:, :, :M], k, v)  # (B, nh, M, hd)
    frame_keys = [
        torch.cat([t[:, :, None, :M].expand(B, nh, T, M, hd), t[:, :, M:].unflatten(2, (T, P))], dim=3)
        for t in (k, v)
    ]  # 2 x (B, nh, T, M + P, hd)
    patches = F.scaled_dot_product_attention(
        q[:, :, M:].unflatten(2, (T, P)), *frame_keys
    )  # (B, nh, T, P, hd)
    return torch.cat([leading, patches.flatten(2, 3)], dim=2)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int, act: str):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = ACT2FN[act]
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(GradientCheckpointingLayer):
    """x + attn(ln_1(x)); x + mlp(ln_2(x))."""

    def __init__(self, width: int, num_heads: int, hidden: int, act: str, eps: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.attn = Attention(width, num_heads)
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, hidden, act)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        frame_blocks: tuple[int, int, int] | None = None,
    ):
        x = x + self.attn(self.ln_1(x), attn_mask=attn_mask, is_causal=is_causal, frame_blocks=frame_blocks)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, num_heads: int, hidden: int, act: str, eps: float):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerBlock(width, num_heads, hidden, act, eps) for _ in range(layers)
        )

    @classmethod
    def vision_encoder(cls, config: HiLightVideoConfig | HiLightImageConfig) -> Transformer:
        """The image/video encoder of a tower config."""
        return cls(
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
            config.intermediate_size,
            config.hidden_act,
            config.layer_norm_eps,
        )

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        frame_blocks: tuple[int, int, int] | None = None,
    ):
        for layer in self.layers:
            x = layer(x, attn_mask=attn_mask, is_causal=is_causal, frame_blocks=frame_blocks)
        return x


class TextEncoder(nn.Module):
    """CLIP text transformer (causal), pooled at the first end-of-text token and projected.

    With `num_short_positions` set it is Long-CLIP's text encoder: positions below it read
    `position_embedding`, the others `position_embedding_res`.
    """

    def __init__(
        self,
        vocab_size: int,
        width: int,
        layers: int,
        num_heads: int,
        hidden: int,
        max_positions: int,
        act: str,
        eps: float,
        projection_dim: int,
        eos_token_id: int,
        num_short_positions: int | None = None,
    ):
        super().__init__()
        self.eos_token_id = eos_token_id
        self.num_short_positions = num_short_positions
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Parameter(torch.empty(max_positions, width))
        if num_short_positions is not None:
            self.position_embedding_res = nn.Parameter(torch.empty(max_positions, width))
        self.encoder = Transformer(width, layers, num_heads, hidden, act, eps)
        self.final_layer_norm = nn.LayerNorm(width, eps=eps)
        self.projection = nn.Linear(width, projection_dim, bias=False)

    @classmethod
    def from_tower_config(cls, config: HiLightVideoConfig | HiLightImageConfig) -> TextEncoder:
        """The text encoder of a tower config: its `text_config`, with the tower's activation, LayerNorm epsilon
        and projection width (Long-CLIP's when `text_config.num_short_positions` is set)."""
        text = config.text_config
        return cls(
            text.vocab_size,
            text.hidden_size,
            text.num_hidden_layers,
            text.num_attention_heads,
            text.intermediate_size,
            text.max_position_embeddings,
            config.hidden_act,
            config.layer_norm_eps,
            config.projection_dim,
            text.eos_token_id,
            num_short_positions=text.num_short_positions,
        )

    def positions(self, length: int) -> torch.Tensor:
        """Position table for `length` tokens, (length, width)."""
        if length > self.position_embedding.shape[0]:
            raise ValueError(
                f"Text of {length} tokens exceeds the text encoder's context of "
                f"{self.position_embedding.shape[0]} tokens; truncate it."
            )
        if self.num_short_positions is None:
            return self.position_embedding[:length]
        n = min(self.num_short_positions, length)
        return torch.cat([self.position_embedding[:n], self.position_embedding_res[n:length]])

    def forward(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """Projected text embeddings (B, projection_dim) of token ids (B, L)."""
        is_eos = input_ids == self.eos_token_id  # (B, L)
        if not bool(is_eos.any(-1).all()):
            raise ValueError(
                f"Every text row must contain the end-of-text token id {self.eos_token_id}; the embedding is "
                "read at its first occurrence."
            )
        x = self.token_embedding(input_ids) + self.positions(input_ids.shape[1])  # (B, L, C)
        x = self.final_layer_norm(self.encoder(x, is_causal=True))  # (B, L, C)
        pooled = x[torch.arange(x.shape[0], device=x.device), is_eos.int().argmax(-1)]  # (B, C)
        return self.projection(pooled)  # (B, D)


def _maybe_normalize(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    return F.normalize(x, dim=-1) if normalize else x


# ----------------------------------------------------------------------------------------------------------
# Patch embedding


class ConvStem(nn.Module):
    """Patch embedding for towers trained from scratch: a first `first_stride`-square patchify conv (or, when
    `first_stride` is 2, a downsampling block like the others), then blocks of a 3x3 conv + GroupNorm + ReLU +
    2x2 max pooling, then a 1x1 conv to the tower width: (N, 3, H, W) -> (N, C, H/p, W/p) with
    p = first_stride * 2**(n-1), the token grid of a patch-p conv. A single large-patch conv learns too slowly
    to see balls a few pixels wide; max pooling keeps a small ball's evidence where strided convs average it
    away."""

    def __init__(self, in_channels: int, width: int, channels: list[int], first_stride: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        for i, out in enumerate(channels):
            patchify = i == 0 and first_stride != 2
            if patchify:
                conv = nn.Conv2d(in_channels, out, kernel_size=first_stride, stride=first_stride, bias=False)
            else:  # 3x3 conv, then 2x2 max pooling below: a small ball's evidence survives the downsampling
                conv = nn.Conv2d(in_channels, out, kernel_size=3, padding=1, bias=False)
            layers += [conv, nn.GroupNorm(math.gcd(8, out), out), nn.ReLU()]
            if not patchify:
                layers.append(nn.MaxPool2d(2))
            in_channels = out
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Conv2d(in_channels, width, kernel_size=1)
        # the layout the stem computes in: CPU convolution and max-pooling kernels are fastest on channels-last
        # (NHWC) memory (benchmarks/bench_stage0.py); NCHW gives the same values up to summation order
        self.memory_format = torch.channels_last

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.contiguous(memory_format=self.memory_format)
        return self.proj(self.convs(x))  # (N, C, h, w)


def patch_embedding(config: HiLightVideoConfig | HiLightImageConfig, width: int) -> nn.Module:
    """The tower's pixels -> patch-token map, (N, 3, H, W) -> (N, width, H/p, W/p) (`config.patch_embed`)."""
    if config.patch_embed == "conv_stem":
        return ConvStem(config.num_channels, width, list(config.stem_channels), config.stem_stride)
    return nn.Conv2d(
        config.num_channels, width, kernel_size=config.patch_size, stride=config.patch_size, bias=False
    )


# ----------------------------------------------------------------------------------------------------------
# CLIP-ViP video tower


def video_attention_mask(num_leading: int, num_frames: int, num_patches: int, device=None) -> torch.Tensor:
    """CLIP-ViP's attention rule as a boolean mask (True = may attend), (L, L) with L = M + T*P.

    The M leading tokens attend to all tokens; a patch token of frame t attends to the leading tokens
    and to the patches of frame t.
    """
    frame = torch.cat(
        [
            torch.full((num_leading,), -1, device=device),
            torch.arange(num_frames, device=device).repeat_interleave(num_patches),
        ]
    )  # (L,) frame index, -1 for leading tokens
    leading = frame == -1
    return (frame[:, None] == frame[None, :]) | leading[:, None] | leading[None, :]  # (L, L)


def interpolate_temporal(table: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Linear interpolation of a (T0, C) temporal table to (T, C) along time (align_corners=False)."""
    if table.shape[0] == num_frames:
        return table
    out = F.interpolate(table.t()[None], size=num_frames, mode="linear", align_corners=False)  # (1, C, T)
    return out[0].t()  # (T, C)


class CLIPVisionTower(nn.Module):
    """What both towers share, split as timm splits its encoders: a ViT over patch tokens with a CLS token
    (patch embedding, positions, pre-LN, encoder, post-LN, projection); `forward_features` gives the
    last-layer tokens, `encode_*` pooled and projected embeddings; the CLIP text encoder (contrastive
    pretraining only) gives `encode_text`."""

    tower_name: str = "CLIP"

    def __init__(self, config: HiLightVideoConfig | HiLightImageConfig):
        super().__init__()
        self.config = config
        W = config.hidden_size
        self.patch_embedding = patch_embedding(config, W)
        self.class_embedding = nn.Parameter(torch.empty(W))
        self.position_embedding = nn.Parameter(torch.empty(config.num_patches + 1, W))
        self.pre_layernorm = nn.LayerNorm(W, eps=config.layer_norm_eps)
        self.encoder = Transformer.vision_encoder(config)
        self.post_layernorm = nn.LayerNorm(W, eps=config.layer_norm_eps)
        self.add_pooling_layers()
        self.projection = nn.Linear(W, config.projection_dim, bias=False)
        self.text_model = None
        if config.use_text_encoder:
            self.text_model = TextEncoder.from_tower_config(config)
            self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))

    def add_pooling_layers(self) -> None:
        """Layers of a tower's pooling besides post-LN (none by default)."""

    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Patch embeddings (N, P, W) of images (N, 3, H, W)."""
        return self.patch_embedding(images).permute(0, 2, 3, 1).flatten(1, 2)  # (N, h, w, W) -> (N, P, W)

    def checked_clips(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Clips (V, T, 3, H, W) of the tower's frame size as finite floats, cast to the tower's dtype (a
        bf16/fp16 tower takes fp32 pixels)."""
        size = self.config.frame_size
        if pixel_values.ndim != 5 or tuple(pixel_values.shape[-2:]) != tuple(size):
            raise ValueError(
                f"{self.tower_name} expects pixel_values of shape (videos, frames, channels, {size[0]}, "
                f"{size[1]}), got {tuple(pixel_values.shape)}."
            )
        if not pixel_values.is_floating_point() or not torch.isfinite(pixel_values).all():
            raise ValueError("pixel_values must be finite floating-point values (NaN, inf or integers given)")
        return pixel_values.to(self.class_embedding.dtype)

    def encode_text(self, input_ids: torch.LongTensor, normalize: bool = False) -> torch.Tensor:
        """Projected text embedding (B, projection_dim) from the tower's CLIP text encoder."""
        if self.text_model is None:
            raise ValueError(
                f"This {self.tower_name} tower was built without a text encoder (use_text_encoder=False)."
            )
        return _maybe_normalize(self.text_model(input_ids), normalize)


class CLIPViPVideoTower(CLIPVisionTower):
    """CLIP-ViP: a ViT over all patches of all frames, with CLS + learned proxy tokens and a temporal embedding.

    `forward_features(pixel_values)` (and `forward`) return the last layer's hidden states before post-LN (what
    HiLight uses); `encode_video` / `encode_text` give the joint embeddings for contrastive pretraining.
    """

    tower_name = "CLIP-ViP"

    def __init__(self, config: HiLightVideoConfig):
        super().__init__(config)
        C = config.hidden_size
        self.proxy_embedding = nn.Parameter(torch.empty(config.num_proxy_tokens, C))
        self.temporal_embedding = nn.Parameter(torch.empty(config.num_frames, C))

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Token embeddings before pre-LN, (V, M + T*P, C)."""
        V, T = pixel_values.shape[:2]
        x = self.patch_tokens(pixel_values.flatten(0, 1))  # (V*T, P, C)
        P, C = x.shape[1:]
        temporal = interpolate_temporal(self.temporal_embedding, T)  # (T, C)
        x = x.view(V, T, P, C) + temporal[None, :, None, :] + self.position_embedding[1:]  # (V, T, P, C)
        leading = torch.cat([self.class_embedding[None], self.proxy_embedding]) + self.position_embedding[0]
        leading = leading.expand(V, -1, -1)  # (V, M, C)
        return torch.cat([leading, x.reshape(V, T * P, C)], dim=1)  # (V, M + T*P, C)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Last-layer hidden states before post-LN, (V, M + T*P, C), of clips (V, T, 3, H, W)."""
        pixel_values = self.checked_clips(pixel_values)
        T = pixel_values.shape[1]
        x = self.pre_layernorm(self.embed(pixel_values))  # (V, L, C)
        blocks = (self.config.num_leading_tokens, T, self.config.num_patches)
        return self.encoder(x, frame_blocks=blocks)  # (V, L, C), attention by `frame_block_attention`

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`forward_features`: what TokenMining reads, (V, M + T*P, C)."""
        return self.forward_features(pixel_values)

    def encode_video(self, pixel_values: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Pooled, projected clip embedding (V, projection_dim): post_layernorm(CLS) @ projection."""
        pooled = self.post_layernorm(self.forward_features(pixel_values)[:, 0])  # (V, C)
        return _maybe_normalize(self.projection(pooled), normalize)


# ----------------------------------------------------------------------------------------------------------
# Long-CLIP image tower


class LongCLIPImageTower(CLIPVisionTower):
    """Long-CLIP's image encoder (an OpenAI-CLIP ViT) applied to every frame, plus its 248-token text encoder.

    `forward_features(images)` gives an image's last-layer tokens, `encode_image` its pooled embedding,
    `forward(pixel_values)` the per-frame embeddings of clips (what TokenMining queries with)."""

    tower_name = "Long-CLIP"

    def add_pooling_layers(self) -> None:
        if self.config.pooling == "grid":
            W = self.config.hidden_size
            self.grid_reduce = nn.Linear(W, self.config.grid_pool_dim)
            self.grid_mix = nn.Linear(self.config.num_patches * self.config.grid_pool_dim, W)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """What the projection reads, (N, W), from last-layer tokens (N, 1 + P, W): ln_post(CLS), or with
        `config.pooling="grid"` a linear map of every cell's ln_post token reduced to a few channels."""
        if self.config.pooling == "grid":
            cells = self.grid_reduce(self.post_layernorm(tokens[:, 1:]))  # (N, P, g)
            return self.grid_mix(cells.flatten(1))  # (N, W)
        return self.post_layernorm(tokens[:, 0])  # (N, W)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Last-layer tokens (N, 1 + P, W) of images (N, 3, H, W)."""
        x = self.patch_tokens(images)  # (N, P, W)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)  # (N, 1, W)
        x = torch.cat([cls, x], dim=1) + self.position_embedding  # (N, 1 + P, W)
        return self.encoder(self.pre_layernorm(x))  # (N, 1 + P, W)

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """pool(tokens) @ proj, (N, D), of images (N, 3, H, W) (official: ln_post(CLS) @ proj); no L2
        normalisation unless asked."""
        return _maybe_normalize(self.projection(self.pool(self.forward_features(images))), normalize)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Per-frame embeddings (V, T, D) of clips (V, T, 3, H, W), all frames in one batched pass."""
        pixel_values = self.checked_clips(pixel_values)
        V, T = pixel_values.shape[:2]
        return self.encode_image(pixel_values.flatten(0, 1)).view(V, T, -1)  # (V, T, D)


# ----------------------------------------------------------------------------------------------------------
# TokenMining


def expand_frame_queries(
    query_expand: nn.Linear, frame_embeds: torch.Tensor, config: HiLightTokenMiningConfig
) -> torch.Tensor:
    """TokenMining's query rows (V, T*Q, Di) from frame embeddings (V, T, Di): every scalar through
    Linear(1, Q) + ReLU, laid out by `config.query_layout` (see `TokenMining`)."""
    V, T, Di = frame_embeds.shape
    expanded = F.relu(query_expand(frame_embeds.unsqueeze(-1)))  # (V, T, Di, Q)
    if config.query_layout == "per_query":
        expanded = expanded.transpose(-1, -2)  # (V, T, Q, Di): row k = k-th expansion of every scalar
    return expanded.reshape(V, T * config.queries_per_frame, Di)  # (V, T*Q, Di)


def add_output_layers(module: nn.Module, config: HiLightTokenMiningConfig) -> None:
    """The output MLP's layers, under TokenMining's (official) names: LN, Linear D -> H, Linear H -> H, and the
    optional final LayerNorm."""
    D, H, eps = config.hidden_size, config.output_hidden_size, config.layer_norm_eps
    module.output_norm = nn.LayerNorm(D, eps=eps)
    module.output_fc1 = nn.Linear(D, H)
    module.output_fc2 = nn.Linear(H, H)
    module.output_layernorm = nn.LayerNorm(H, eps=eps) if config.output_layernorm else None


def vision_token_output(module: nn.Module, mined: torch.Tensor) -> torch.Tensor:
    """LN -> Linear -> ReLU -> Linear -> ReLU (official; the last activation and a final LayerNorm are
    `config.output_activation` / `config.output_layernorm`) with `module`'s output layers, (V, K, D) -> (V, K, H)."""
    x = module.output_fc2(F.relu(module.output_fc1(module.output_norm(mined))))  # (V, K, H)
    if module.config.output_activation == "relu":
        x = F.relu(x)
    return x if module.output_layernorm is None else module.output_layernorm(x)


class TokenMining(nn.Module):
    """Single-head cross-attention: Long-CLIP frame queries mine CLIP-ViP tokens into LM-width vision tokens.

    Official math (all LayerNorm eps from the config, 1e-5):
      1. video = ReLU(Linear(Dv, Dv)(video_hidden_states)) over all M + T*P tokens.
      2. Each scalar a[v, t, j] of the frame embeddings goes through Linear(1, Q) + ReLU, giving (V, T, Di, Q);
         this is re-read with a PLAIN reshape (no transpose) as (V, T*Q, Di). Query row r of frame t, channel
         c therefore holds ReLU(w[k] * a[v, t, j] + b[k]) with f = r*Di + c, j = f // Q, k = f % Q: a row sees
         Di / Q consecutive scalars of its frame. This layout is what the official weights were trained with;
         `query_layout="per_query"` is the alternative where row k holds ReLU(w[k] * a[v, t, :] + b[k]).
      3. q = Linear(LN(queries)), k = Linear(LN_k(video)), v = Linear(LN_v(video)), width D.
      4. attention = softmax(nan_to_num(q @ k^T / sqrt(D))) over all CLIP-ViP tokens; mined = attention @ v
         (+ q with `config.query_residual`, not official).
      5. out = ReLU(Linear(H, H)(ReLU(Linear(D, H)(LN(mined))))).
    """

    def __init__(self, config: HiLightTokenMiningConfig, queries: nn.Module | None = None):
        super().__init__()
        self.config = config
        Dv, Di, D = config.video_hidden_size, config.image_embed_dim, config.hidden_size
        eps = config.layer_norm_eps
        self.video_proj = nn.Linear(Dv, Dv)
        # Queries from the Long-CLIP frame embeddings (official), or from a given module (frame_embeds -> rows).
        self.queries = queries
        self.query_expand = nn.Linear(1, config.queries_per_frame) if queries is None else None
        self.query_norm = nn.LayerNorm(Di, eps=eps)
        self.query_proj = nn.Linear(Di, D)
        self.key_norm = nn.LayerNorm(Dv, eps=eps)
        self.key_proj = nn.Linear(Dv, D)
        self.value_norm = nn.LayerNorm(Dv, eps=eps)
        self.value_proj = nn.Linear(Dv, D)
        add_output_layers(self, config)

    def output(self, mined: torch.Tensor) -> torch.Tensor:
        """The output MLP (`vision_token_output`), (V, K, D) -> (V, K, H)."""
        return vision_token_output(self, mined)

    def frame_queries(self, frame_embeds: torch.Tensor) -> torch.Tensor:
        """Query rows (V, T*Q, Di) from frame embeddings (V, T, Di), in `config.query_layout`."""
        if self.queries is not None:
            return self.queries(frame_embeds)
        return expand_frame_queries(self.query_expand, frame_embeds, self.config)

    def forward(
        self, video_hidden_states: torch.Tensor, frame_embeds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Vision tokens (V, T*Q, H) and attention weights (V, T*Q, L) from CLIP-ViP tokens (V, L, Dv) and
        Long-CLIP frame embeddings (V, T, Di)."""
        if video_hidden_states.shape[0] != frame_embeds.shape[0]:
            raise ValueError(
                f"video_hidden_states has {video_hidden_states.shape[0]} videos but frame_embeds has "
                f"{frame_embeds.shape[0]}."
            )
        video = F.relu(self.video_proj(video_hidden_states))  # (V, L, Dv)
        q = self.query_proj(self.query_norm(self.frame_queries(frame_embeds)))  # (V, T*Q, D)
        k = self.key_proj(self.key_norm(video))  # (V, L, D)
        v = self.value_proj(self.value_norm(video))  # (V, L, D)
        scores = q @ (k.transpose(1, 2) / math.sqrt(q.shape[-1]))  # (V, T*Q, L)
        attn = torch.nan_to_num(scores).softmax(dim=-1)  # (V, T*Q, L)
        mined = attn @ v  # (V, T*Q, D)
        if self.config.query_residual:
            mined = mined + q
        return self.output(mined), attn  # (V, T*Q, H)


class LearnedQueries(nn.Module):
    """Ablation "CLIP-ViP only"'s queries: one learned set of Q per frame position in place of the Long-CLIP
    queries (`frame_embeds` only gives the shape). Needs clips of `config.num_frames` frames."""

    def __init__(self, config: HiLightTokenMiningConfig):
        super().__init__()
        self.num_frames = config.num_frames
        self.weight = nn.Parameter(
            torch.randn(config.num_frames * config.queries_per_frame, config.image_embed_dim)
        )

    def forward(self, frame_embeds: torch.Tensor) -> torch.Tensor:
        V, T, _ = frame_embeds.shape
        if self.num_frames != T:
            raise ValueError(f"fusion 'video_only' was built for {self.num_frames} frames, got {T}.")
        return self.weight.unsqueeze(0).expand(V, -1, -1)  # (V, T*Q, Di)


class LearnedQueryMining(TokenMining):
    """Ablation "CLIP-ViP only": TokenMining's attention and output over CLIP-ViP tokens, queried by
    `LearnedQueries` instead of the Long-CLIP frame embeddings."""

    def __init__(self, config: HiLightTokenMiningConfig):
        super().__init__(config, queries=LearnedQueries(config))


class QueryOnlyFusion(nn.Module):
    """Ablation "Long-CLIP only": TokenMining's Long-CLIP queries through its query projection and output MLP,
    with no attention over CLIP-ViP tokens (which are ignored)."""

    def __init__(self, config: HiLightTokenMiningConfig):
        super().__init__()
        self.config = config
        self.query_expand = nn.Linear(1, config.queries_per_frame)
        self.query_norm = nn.LayerNorm(config.image_embed_dim, eps=config.layer_norm_eps)
        self.query_proj = nn.Linear(config.image_embed_dim, config.hidden_size)
        add_output_layers(self, config)

    def forward(
        self, video_hidden_states: torch.Tensor, frame_embeds: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        queries = expand_frame_queries(self.query_expand, frame_embeds, self.config)  # (V, T*Q, Di)
        return vision_token_output(self, self.query_proj(self.query_norm(queries))), None  # (V, T*Q, H)


class MLPProjector(nn.Module):
    """Ablation "plain MLP projector": per frame, CLIP-ViP patch tokens average-pooled into Q groups, each
    concatenated with the frame's Long-CLIP embedding, then Linear -> GELU -> Linear to the LM width."""

    def __init__(self, config: HiLightTokenMiningConfig, num_leading: int):
        super().__init__()
        self.config = config
        self.num_leading = num_leading
        width = config.video_hidden_size + config.image_embed_dim
        self.fc1 = nn.Linear(width, config.output_hidden_size)
        self.fc2 = nn.Linear(config.output_hidden_size, config.output_hidden_size)

    def forward(
        self, video_hidden_states: torch.Tensor, frame_embeds: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        V, T, Di = frame_embeds.shape
        Q = self.config.queries_per_frame
        patches = video_hidden_states[:, self.num_leading :]  # (V, T*P, Dv): the leading tokens are dropped
        patches = patches.reshape(V * T, -1, patches.shape[-1]).transpose(1, 2)  # (V*T, Dv, P)
        pooled = F.adaptive_avg_pool1d(patches, Q).transpose(1, 2).reshape(V, T, Q, -1)  # (V, T, Q, Dv)
        frames = frame_embeds.unsqueeze(2).expand(V, T, Q, Di)  # (V, T, Q, Di)
        x = torch.cat([pooled, frames], dim=-1).reshape(V, T * Q, -1)  # (V, T*Q, Dv + Di)
        return self.fc2(F.gelu(self.fc1(x))), None  # (V, T*Q, H)


def build_fusion(config: HiLightTokenMiningConfig, num_leading: int) -> nn.Module:
    """The module that turns tower outputs into vision tokens: TokenMining, or an ablation (`config.fusion`).
    `num_leading` is the number of CLIP-ViP leading tokens (CLS + proxies), which the MLP projector drops."""
    if config.fusion == "mlp":
        return MLPProjector(config, num_leading)
    return {"token_mining": TokenMining, "video_only": LearnedQueryMining, "image_only": QueryOnlyFusion}[
        config.fusion
    ](config)


# ----------------------------------------------------------------------------------------------------------
# Precision on the CPU


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has the bf16 matrix instructions PyTorch's bf16 products run on (x86 AVX-512 BF16 or
    AMX). Without them (AVX2-only x86 CPUs, and, conservatively, every other CPU) bf16 products are emulated
    and many times slower than fp32, so fp32 is the fast dtype there."""
    checks = (
        getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )
    return any(check is not None and check() for check in checks)


def preferred_cpu_dtype() -> torch.dtype:
    """The faster dtype for running a model on this CPU: bf16 where it has bf16 instructions, else fp32."""
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


def _loads_on_cpu(device_map: Any) -> bool:
    """Whether `from_pretrained(..., device_map=device_map)` leaves every weight on the CPU.

    `None` and accelerate's strategies ("auto", "balanced", ...) place on the CPU only where there is no
    accelerator; a dict (module name -> device) counts when every device in it is the CPU; an int is an
    accelerator's index."""
    if isinstance(device_map, dict):
        return bool(device_map) and all(_loads_on_cpu(d) for d in device_map.values())
    if device_map is None or device_map in ("auto", "balanced", "balanced_low_0", "sequential"):
        return not torch.accelerator.is_available()
    if isinstance(device_map, (str, torch.device)):
        try:
            return torch.device(device_map).type == "cpu"
        except RuntimeError:  # not a device name ("disk", a typo): transformers reports it
            return False
    return False


# ----------------------------------------------------------------------------------------------------------
# The model


class HiLightPreTrainedModel(PreTrainedModel):
    config_class = HiLightConfig
    config: HiLightConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ("TransformerBlock", "TokenMining")
    _supports_sdpa = True  # the LM's; the towers always run PyTorch SDPA (exact, and CLIP-ViP's frame blocks)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=std)
        if isinstance(module, CLIPVisionTower):
            width = module.class_embedding.shape[0]
            init.normal_(module.class_embedding, std=width**-0.5)
            init.normal_(module.position_embedding, std=std)
            if isinstance(module, CLIPViPVideoTower):
                init.normal_(module.proxy_embedding, std=width**-0.5)
                init.zeros_(module.temporal_embedding)  # CLIP-ViP starts without temporal information
            if module.text_model is not None:
                init.constant_(module.logit_scale, module.config.logit_scale_init_value)
        elif isinstance(module, LearnedQueries):
            init.normal_(module.weight, std=1.0)
        elif isinstance(module, TextEncoder):
            init.normal_(module.position_embedding, std=0.01)
            if module.num_short_positions is not None:
                init.normal_(module.position_embedding_res, std=0.01)


class HiLightForConditionalGeneration(HiLightPreTrainedModel, GenerationMixin):
    """HiLight: CLIP-ViP + Long-CLIP towers, TokenMining, and a causal LM built from `config.text_config`.

    Forward takes `input_ids` (with `<video>` placeholders already expanded to T*Q tokens per clip),
    `attention_mask` (left padding for batched generation) and at most one visual source:
    `pixel_values` (V, T, 3, H, W), or cached tower outputs `video_hidden_states` (V, M + T*P, Dv) together
    with `frame_embeds` (V, T, Di), or ready vision tokens `video_embeds` (V, T*Q, H).
    """

    _VISUAL_INPUTS = (
        "pixel_values_videos",
        "pixel_values",
        "video_hidden_states",
        "frame_embeds",
        "video_embeds",
    )

    def __init__(self, config: HiLightConfig):
        super().__init__(config)
        self.video_tower = CLIPViPVideoTower(config.video_config)
        self.image_tower = LongCLIPImageTower(config.image_config)
        self.token_mining = build_fusion(config.token_mining_config, config.video_config.num_leading_tokens)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()

    # --- embeddings plumbing for transformers utilities (resize, tying, PEFT) ---
    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any):
        """As `PreTrainedModel.from_pretrained`, but strict: a tensor missing from the checkpoint, one the model
        does not have, a shape that differs, or a non-finite weight is an error naming it (transformers would
        only warn, and the model would answer from random or broken weights).

        Without a `dtype`, the model loads in its config's dtype (bf16 for the bundled model) except on a CPU
        without bf16 instructions (`cpu_has_fast_bf16`), where it loads in fp32, the faster dtype there; an
        explicit `dtype` is always kept."""
        wants_info = kwargs.pop("output_loading_info", False)
        source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        no_dtype = kwargs.get("dtype") is None and kwargs.get("torch_dtype") is None
        if no_dtype and _loads_on_cpu(kwargs.get("device_map")) and not cpu_has_fast_bf16():
            kwargs["dtype"] = torch.float32  # a bf16 checkpoint would run emulated bf16 products here
        try:
            model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        except Exception as exc:
            if type(exc).__name__ != "SafetensorError":  # safetensors' own error type, raised from Rust
                raise
            raise ValueError(
                f"the weights in {source} are not a readable safetensors file (truncated or corrupt: {exc}); "
                "download or export the model again"
            ) from None
        problems = [
            f"{kind.replace('_', ' ')}: {', '.join(sorted(map(str, keys))[:8])}"
            + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")
            for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")
            if (keys := list(info.get(kind) or []))
        ]
        broken = [
            name for name, t in model.state_dict().items()
            if t.is_floating_point() and t.device.type != "meta" and not _all_finite(t)
        ]  # fmt: skip
        if broken:
            problems.append(f"non-finite values in: {', '.join(broken[:8])}")
        if problems:
            raise ValueError(f"the checkpoint in {source} does not fit this model: " + "; ".join(problems))
        return (model, info) if wants_info else model

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    # --- vision ---
    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor | None = None,
        return_intermediates: bool = True,
        pixel_values: torch.Tensor | None = None,
    ) -> HiLightVideoFeatures:
        """`HiLightVideoFeatures` of clips (V, T, 3, H, W): the vision tokens (V, T*Q, H) in `video_embeds`, and
        the CLIP-ViP hidden states, the Long-CLIP frame embeddings (cache those two to skip the frozen towers
        later) and the TokenMining attention weights. `pixel_values` is accepted as an alias of
        `pixel_values_videos`; `return_intermediates` is kept for callers of earlier versions (the full output
        is always returned).

        Pixels are cast to the towers' dtype, so a model loaded in bf16/fp16 takes the processor's fp32 output;
        they must be finite (ValueError otherwise)."""
        pixel_values = _one_video_input(pixel_values_videos, pixel_values)
        if pixel_values is None:
            raise ValueError("get_video_features needs pixel_values_videos (V, T, 3, H, W)")
        video_hidden_states = self.video_tower(pixel_values)  # (V, M + T*P, Dv)
        frame_embeds = self.image_tower(pixel_values)  # (V, T, Di)
        video_embeds, attn = self.token_mining(video_hidden_states, frame_embeds)  # (V, T*Q, H)
        return HiLightVideoFeatures(
            video_embeds=video_embeds,
            video_hidden_states=video_hidden_states,
            frame_embeds=frame_embeds,
            token_mining_attentions=attn,
        )

    def _check_length(self, inputs: torch.Tensor | None, cache) -> None:
        """Refuse, before any tower runs, a sequence longer than the LM's position table."""
        limit = getattr(self.config.text_config, "max_position_embeddings", None)
        if inputs is None or limit is None:
            return
        past = cache.get_seq_length() if cache is not None else 0
        if past + inputs.shape[1] > limit:
            raise ValueError(
                f"the sequence is {past + inputs.shape[1]} tokens ({past} cached + {inputs.shape[1]} new); the "
                f"language model has {limit} positions (max_position_embeddings): shorten the prompt"
            )

    def check_processor(self, processor: Any) -> None:
        """Raise ValueError naming every setting in which ``processor`` disagrees with this model: frames per
        video, frame size and vision tokens per frame (a processor from another folder would feed the
        model clips it was not trained on, or the wrong number of vision tokens, without an error)."""
        video_processor = getattr(processor, "video_processor", processor)
        size = getattr(video_processor, "size", None) or {}
        size = size if isinstance(size, dict) else dict(size)
        height, width = self.config.video_config.frame_size
        pairs = [
            ("num_frames", getattr(video_processor, "num_frames", None), self.config.num_frames),
            ("size", (size.get("height"), size.get("width")), (height, width)),
        ]
        if hasattr(processor, "tokens_per_frame"):
            queries = self.config.token_mining_config.queries_per_frame
            pairs.append(("tokens_per_frame", processor.tokens_per_frame, queries))
        differ = [f"{name}: processor {got!r}, model {want!r}" for name, got, want in pairs if got != want]
        if differ:
            raise ValueError(
                "the processor does not match the model (" + "; ".join(differ) + "); load both from the same "
                "folder"
            )

    def _resolve_video_embeds(self, pixel_values, video_hidden_states, frame_embeds, video_embeds):
        given = [
            name
            for name, value in [
                ("pixel_values", pixel_values),
                (
                    "video_hidden_states/frame_embeds",
                    video_hidden_states if video_hidden_states is not None else frame_embeds,
                ),
                ("video_embeds", video_embeds),
            ]
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"Pass exactly one visual source, got {' and '.join(given)}.")
        if (video_hidden_states is None) != (frame_embeds is None):
            raise ValueError("Cached tower outputs need both `video_hidden_states` and `frame_embeds`.")
        if pixel_values is not None:
            return self.get_video_features(pixel_values).video_embeds
        if video_hidden_states is not None:
            # cached features may be stored in another dtype than the fusion's (any of them: TokenMining or
            # an ablation, whose layers differ)
            dtype = next(self.token_mining.parameters()).dtype
            return self.token_mining(video_hidden_states.to(dtype), frame_embeds.to(dtype))[0]
        return video_embeds

    @property
    def video_embed_scale(self) -> torch.Tensor | float:
        """Scale the LM's input embedding applies to token rows (Gemma: sqrt(hidden_size)), else 1.0.

        The official HiLight spliced vision tokens before Gemma multiplied every input row by
        sqrt(hidden_size); newer transformers scale inside the embedding module, so the vision tokens get
        the same factor here (unless `config.scale_video_embeds` is off)."""
        scale = getattr(self.get_input_embeddings(), "embed_scale", None)
        return 1.0 if scale is None or not self.config.scale_video_embeds else scale

    def embed_inputs(
        self,
        input_ids: torch.LongTensor,
        video_embeds: torch.Tensor | None = None,
        require_video: bool = True,
    ) -> torch.Tensor:
        """LM input embeddings (B, S, H): token embeddings with the `<video>` rows replaced, in order, by
        the vision tokens (V, K, H). Raises ValueError unless #placeholders == V * K (when `require_video`
        is False, placeholders without vision tokens are embedded as ordinary tokens)."""
        inputs_embeds = self.get_input_embeddings()(input_ids)  # (B, S, H)
        video_token_id = self.config.video_token_id
        if video_token_id is None:
            if video_embeds is not None:
                raise ValueError("config.video_token_id is not set, so the <video> tokens cannot be found.")
            return inputs_embeds
        mask = input_ids == video_token_id  # (B, S)
        n_placeholders = int(mask.sum())
        if video_embeds is None:
            if n_placeholders and require_video:
                raise ValueError(
                    f"The text has {n_placeholders} <video> placeholder tokens (id {video_token_id}) but no "
                    "video was given; pass pixel_values, video_hidden_states + frame_embeds, or video_embeds."
                )
            return inputs_embeds
        V, K, _ = video_embeds.shape
        if n_placeholders != V * K:
            raise ValueError(
                f"The text has {n_placeholders} <video> placeholder tokens (id {video_token_id}) but {V} videos "
                f"x {K} tokens = {V * K} vision tokens were given. Each <video> must be expanded to {K} "
                "placeholder tokens (the processor does this) and each needs exactly one video."
            )
        scale = self.video_embed_scale
        video = video_embeds.to(inputs_embeds.dtype)  # align for masked_scatter (autocast / bf16 towers)
        video = video * (scale.to(video.dtype) if isinstance(scale, torch.Tensor) else scale)
        return inputs_embeds.masked_scatter(mask.unsqueeze(-1), video)  # (B, S, H)

    # --- forward / generation ---
    @can_return_tuple  # return_dict=False (argument or config) gives the output's non-None fields as a tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_hidden_states: torch.Tensor | None = None,
        frame_embeds: torch.Tensor | None = None,
        video_embeds: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache=None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        pixel_values: torch.Tensor | None = None,
        **kwargs,
    ) -> HiLightCausalLMOutputWithPast:
        """Run the LM on text with spliced vision tokens.

        Args:
            input_ids: (B, S) token ids with T*Q `<video>` tokens per clip.
            attention_mask: (B, S) 1 for tokens, 0 for (left) padding.
            position_ids: (B, S); when omitted on a prefill they follow the attention mask (left padding
                starts each row at position 0).
            pixel_values_videos: (V, T, 3, H, W) normalised frames, the processor's key (`pixel_values`, the
                key of earlier versions, is accepted as an alias).
            video_hidden_states, frame_embeds: cached tower outputs (V, M + T*P, Dv) and (V, T, Di).
            video_embeds: (V, T*Q, H) ready vision tokens.
            inputs_embeds: (B, S, H) LM input embeddings instead of `input_ids` (no visual source then).
            cache: the LM's KV cache (`past_key_values` is accepted as an alias).
            labels: (B, S) next-token targets, -100 to ignore; shifted inside the LM's loss.
            use_cache, logits_to_keep, **kwargs: passed to the LM.
        """
        cache = cache if cache is not None else kwargs.pop("past_key_values", None)
        pixel_values = _one_video_input(pixel_values_videos, pixel_values)
        self._check_length(input_ids if input_ids is not None else inputs_embeds, cache)
        visual = self._resolve_video_embeds(pixel_values, video_hidden_states, frame_embeds, video_embeds)
        prefill = cache is None or cache.get_seq_length() == 0
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("Pass input_ids (or inputs_embeds).")
            inputs_embeds = self.embed_inputs(input_ids, visual, require_video=prefill)
        elif visual is not None:
            raise ValueError(
                "A visual input needs input_ids (to find the <video> tokens), not inputs_embeds."
            )
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2 and prefill:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, S)
        out = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
        return HiLightCausalLMOutputWithPast(
            loss=out.loss,
            logits=out.logits,
            cache=out.cache,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            video_embeds=visual,
        )

    def prepare_inputs_for_generation(self, *args, is_first_iteration: bool | None = False, **kwargs):
        """As the base class, but visual inputs only go to the prefill step (decoding steps reuse the cache)."""
        model_inputs = super().prepare_inputs_for_generation(
            *args, is_first_iteration=is_first_iteration, **kwargs
        )
        if not is_first_iteration and model_inputs.get("use_cache", True):
            for name in self._VISUAL_INPUTS:
                model_inputs.pop(name, None)
        return model_inputs

    # --- conversation (chat_hilight.py): each video encoded once, the KV cache kept across turns ---
    def start_chat(self, processor, system: str | None = None, **generation_kwargs):
        """A `HiLightChatSession` on this model: `session.ask(question, video=...)`, `session.stream(...)`,
        `session.explain()`. `generation_kwargs` are the session's defaults (greedy unless told)."""
        from .chat_hilight import HiLightChatSession

        return HiLightChatSession(self, processor, system=system, **generation_kwargs)

    def chat(
        self, processor, video=None, question: str = "", history=None, session=None, **generation_kwargs
    ):
        """One conversation turn, `answer, session = model.chat(processor, "clip.mp4", "Which balls were
        potted?")`; pass `session=session` for a follow-up (it reuses the video's vision tokens and the KV
        cache), or `history=` (chat-template messages) to start from a past conversation."""
        from .chat_hilight import chat

        return chat(self, processor, video, question, history=history, session=session, **generation_kwargs)


HiLightConfig.register_for_auto_class()
HiLightForConditionalGeneration.register_for_auto_class("AutoModel")

__all__ = [
    "CLIPViPVideoTower",
    "HiLightCausalLMOutputWithPast",
    "HiLightForConditionalGeneration",
    "HiLightPreTrainedModel",
    "HiLightVideoFeatures",
    "LongCLIPImageTower",
    "TokenMining",
]
