"""HiLight model behaviour on the tiny preset (random weights, CPU, seconds): config validation, the
CLIP-ViP attention rule, TokenMining's layout, training gradients, placeholder checks, batching with left
padding, generation with cache and streamers, and the save/load round trip."""

import json

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoModel, AutoModelForImageTextToText
from transformers.generation.streamers import BaseStreamer

from hilight import modeling_hilight
from hilight.configuration_hilight import HiLightConfig, HiLightTowerTextConfig
from hilight.modeling_hilight import (
    HiLightForConditionalGeneration,
    _all_finite,
    frame_block_attention,
    interpolate_temporal,
    video_attention_mask,
)
from hilight_train.training import set_trainable_params, trainable_globs

# Config validators run under huggingface_hub's strict dataclasses, which wrap the ValueError.
CONFIG_ERRORS = (ValueError, StrictDataclassError)
FRAMES = 4  # fewer frames than the preset's 12 keeps these tests fast; the temporal table interpolates


def tiny_config(**overrides) -> HiLightConfig:
    return HiLightConfig.from_preset("tiny", num_frames=FRAMES, text_config={"vocab_size": 300}, **overrides)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = HiLightForConditionalGeneration(tiny_config()).eval()
    # Give the zero-initialised tables some signal so the tests see them.
    with torch.no_grad():
        model.video_tower.temporal_embedding.normal_(std=0.1)
        for norm in model.language_model.modules():
            if "RMSNorm" in type(norm).__name__:
                norm.weight.normal_(std=0.1)
    return model


def clip(videos: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    H, W = tiny_config().video_config.frame_size
    return torch.randn(videos, FRAMES, 3, H, W, generator=generator)  # (V, T, 3, H, W)


def prompt(model, text_ids: list[int], videos: int = 1) -> list[int]:
    """[bos] + per video (<video> x T*Q, "\n") + text, like the processor's expansion."""
    k = FRAMES * model.config.token_mining_config.queries_per_frame
    ids = [2]
    for _ in range(videos):
        ids += [model.config.video_token_id] * k + [10]
    return ids + text_ids


# --- config ------------------------------------------------------------------------------------------


def test_presets():
    paper = HiLightConfig.from_preset("paper")
    assert paper.tokens_per_video == 384
    assert (
        paper.video_config.hidden_size,
        paper.video_config.num_proxy_tokens,
        paper.video_config.num_frames,
    ) == (
        768,
        3,
        12,
    )
    assert paper.image_config.projection_dim == 512 and paper.text_config.hidden_size == 2048
    assert paper.text_config.hidden_act == "gelu_python"  # exact erf GELU, as the official Gemma ran
    tiny = HiLightConfig.from_preset("tiny", video_config={"num_hidden_layers": 2})
    assert tiny.video_config.num_hidden_layers == 2 and tiny.video_config.hidden_size == 192
    assert tiny.token_mining_config.video_hidden_size == tiny.video_config.hidden_size
    assert tiny.token_mining_config.output_hidden_size == tiny.text_config.hidden_size
    restored = HiLightConfig.from_dict(tiny.to_dict())
    assert restored.to_dict() == tiny.to_dict()
    assert tiny.auto_map["AutoModel"] == "modeling_hilight.HiLightForConditionalGeneration"


def test_config_validation():
    with pytest.raises(ValueError, match="Unknown HiLight preset"):
        HiLightConfig.from_preset("huge")
    with pytest.raises(CONFIG_ERRORS, match=r"output_hidden_size .* must equal text_config.hidden_size"):
        HiLightConfig.from_preset("tiny", token_mining_config={"output_hidden_size": 64})
    with pytest.raises(CONFIG_ERRORS, match="divisible"):
        HiLightConfig.from_preset("tiny", video_config={"num_attention_heads": 5})
    with pytest.raises(CONFIG_ERRORS, match="multiple of patch_size"):
        HiLightConfig.from_preset("tiny", image_config={"patch_size": 30})
    with pytest.raises(CONFIG_ERRORS, match="video_token_id"):
        HiLightConfig.from_preset("tiny", video_token_id=10**6)
    with pytest.raises(CONFIG_ERRORS, match="must multiply to patch_size"):
        HiLightConfig.from_preset("tiny", video_config={"stem_channels": [32, 64]})
    with pytest.raises(CONFIG_ERRORS, match="patch_embed must be one of"):
        HiLightConfig.from_preset("tiny", image_config={"patch_embed": "linear"})


def test_tower_text_encoders_are_one_nested_config():
    """Each tower holds its text encoder as `text_config` (one class, X-CLIP style): CLIP's for CLIP-ViP,
    Long-CLIP's stretched positions for the image tower, validated, merged key by key by `from_preset`, and
    saved nested."""
    tiny = HiLightConfig.from_preset("tiny", video_config={"text_config": {"num_hidden_layers": 1}})
    video, image = tiny.video_config.text_config, tiny.image_config.text_config
    assert type(video) is type(image) is HiLightTowerTextConfig
    assert (video.num_hidden_layers, video.hidden_size, image.num_hidden_layers) == (1, 128, 2)
    assert (video.max_position_embeddings, video.num_short_positions) == (77, None)
    assert (image.max_position_embeddings, image.num_short_positions) == (248, 20)
    text = HiLightForConditionalGeneration(tiny).image_tower.text_model
    assert text.position_embedding_res.shape == (248, 128) and text.num_short_positions == 20
    saved = tiny.to_diff_dict()["image_config"]
    assert (
        saved["text_config"]["max_position_embeddings"] == 248 and "return_dict" not in saved["text_config"]
    )
    assert not [key for key in saved if key.startswith("text_") and key != "text_config"]
    assert HiLightConfig.from_dict(tiny.to_diff_dict()).to_dict() == tiny.to_dict()
    with pytest.raises(CONFIG_ERRORS, match="divisible"):
        HiLightConfig.from_preset("tiny", image_config={"text_config": {"num_attention_heads": 3}})
    with pytest.raises(CONFIG_ERRORS, match=r"num_short_positions must lie in \[0, max_position_embeddings"):
        HiLightConfig.from_preset("tiny", image_config={"text_config": {"num_short_positions": 300}})
    with pytest.raises(CONFIG_ERRORS, match=r"HiLightTowerTextConfig.vocab_size must be of type int"):
        HiLightConfig.from_preset("tiny", video_config={"text_config": {"vocab_size": "big"}})
    with pytest.raises(ValueError, match="not both text_config and the flat keys"):
        HiLightConfig.from_preset("tiny", video_config={"text_vocab_size": 100})
    with pytest.raises(ValueError, match="text_config must be a HiLightTowerTextConfig or a dict"):
        HiLightConfig.from_preset("tiny", image_config={"text_config": tiny.text_config})


def _param_shapes(config: HiLightConfig) -> dict[str, torch.Size]:
    """The parameter shapes of the model a config describes."""
    return {k: v.shape for k, v in HiLightForConditionalGeneration(config).state_dict().items()}


def _flat_tower(tower: dict) -> dict:
    """A tower config dict in the form earlier versions wrote: the text encoder's fields flat, `text_` prefixed."""
    text = {f"text_{k}": v for k, v in tower.pop("text_config").items() if k != "model_type"}
    return {**tower, **text}


def test_tower_configs_of_the_flat_form_load_into_text_config(repo_root):
    """config.json files written before `text_config` (the bundled one) carry the text encoder's fields flat in
    each tower (`text_vocab_size`, ..., `text_num_short_positions`): they load into `text_config`, to the same
    model."""
    nested = tiny_config(
        video_config={"text_config": {"vocab_size": 500, "max_position_embeddings": 40}},
        image_config={"text_config": {"hidden_size": 64, "num_short_positions": 10}},
    )
    old = nested.to_diff_dict()
    old["video_config"], old["image_config"] = map(_flat_tower, (old["video_config"], old["image_config"]))
    assert old["image_config"]["text_num_short_positions"] == 10 and "text_config" not in old["video_config"]
    loaded = HiLightConfig.from_dict(old)
    assert loaded.to_dict() == nested.to_dict()
    assert not [k for k in vars(loaded.image_config) if k.startswith("text_") and k != "text_config"]
    assert _param_shapes(loaded) == _param_shapes(nested)
    bundled_file = json.loads((repo_root / "config.json").read_text())
    bundled = HiLightConfig.from_dict(bundled_file)
    for tower in ("video_config", "image_config"):
        text = getattr(bundled, tower).text_config
        for key, value in bundled_file[tower].items():
            if key.startswith("text_") and key != "text_config":
                assert getattr(text, key.removeprefix("text_")) == value, (tower, key)
    resaved = HiLightConfig.from_dict(bundled.to_diff_dict())
    with torch.device("meta"):
        assert _param_shapes(resaved) == _param_shapes(bundled)


def test_patch_embeddings_and_frame_shapes():
    """The paper keeps the official single patch conv on square frames; tiny has a conv stem on 256 x 448."""
    paper = HiLightConfig.from_preset("paper", text_config={"vocab_size": 300, "num_hidden_layers": 1})
    assert paper.video_config.frame_size == (224, 224) and paper.video_config.num_patches == 196
    tiny = tiny_config()
    assert tiny.video_config.frame_size == (256, 448) and tiny.video_config.grid_size == (8, 14)
    model = HiLightForConditionalGeneration(tiny)
    stem = model.video_tower.patch_embedding
    kinds = [type(m).__name__ for m in stem.convs]
    assert kinds[:3] == ["Conv2d", "GroupNorm", "ReLU"] and stem.convs[0].stride == (4, 4)  # patchify by 4
    assert kinds.count("MaxPool2d") == 3  # then three blocks that halve: 4 * 2**3 = 32 px cells
    features = model.get_video_features(clip(), return_intermediates=True)
    assert features.video_hidden_states.shape == (1, 4 + FRAMES * 112, 192)
    assert features.frame_embeds.shape == (1, FRAMES, 128)
    with pytest.raises(
        ValueError, match=r"expects pixel_values of shape \(videos, frames, channels, 256, 448\)"
    ):
        model.get_video_features(torch.randn(1, FRAMES, 3, 224, 224))


def test_vision_token_scale_is_configuration():
    """Official: final ReLU and the LM's embed scale on vision rows. Tiny: a final LayerNorm, no extra scale."""
    torch.manual_seed(0)
    model = HiLightForConditionalGeneration(tiny_config()).eval()
    with torch.no_grad():
        tokens = model.get_video_features(clip(2)).video_embeds  # (2, T*Q, 256)
    assert model.video_embed_scale == 1.0 and (tokens < 0).any()
    assert torch.allclose(tokens.norm(dim=-1), torch.full(tokens.shape[:2], 16.0), atol=0.1)  # sqrt(256)
    official = tiny_config(
        scale_video_embeds=True, token_mining_config={"output_activation": "relu", "output_layernorm": False}
    )
    model = HiLightForConditionalGeneration(official).eval()
    with torch.no_grad():
        tokens = model.get_video_features(clip(2)).video_embeds
    assert model.token_mining.output_layernorm is None and (tokens >= 0).all()
    assert float(model.video_embed_scale) == pytest.approx(16.0)  # Gemma's sqrt(hidden_size)


# --- towers and TokenMining --------------------------------------------------------------------------


def test_attention_rule_matches_framewise_attention():
    """One SDPA call with the boolean mask == the rule computed group by group with a loop (reference)."""
    M, T, P, D = 2, 3, 4, 8
    mask = video_attention_mask(M, T, P)
    assert mask[:M].all() and mask[:, :M].all()  # leading tokens see and are seen by everything
    assert not mask[M, M + P]  # frame-0 patch does not see frame 1
    q, k, v = torch.randn(3, 1, 1, M + T * P, D).unbind(0)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    reference = [F.scaled_dot_product_attention(q[..., :M, :], k, v)]
    for t in range(T):
        rows = slice(M + t * P, M + (t + 1) * P)
        keys = torch.cat([k[..., :M, :], k[..., rows, :]], dim=-2)
        values = torch.cat([v[..., :M, :], v[..., rows, :]], dim=-2)
        reference.append(F.scaled_dot_product_attention(q[..., rows, :], keys, values))
    assert torch.allclose(fused, torch.cat(reference, dim=-2), atol=1e-6)
    # the tower's batched form (no mask) is the same rule, with several clips and heads
    q, k, v = torch.randn(3, 2, 3, M + T * P, D, dtype=torch.float64).unbind(0)
    masked = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(frame_block_attention(q, k, v, M, T, P), masked, atol=1e-12)


def test_temporal_interpolation():
    table = torch.randn(12, 5)
    assert interpolate_temporal(table, 12) is table
    out = interpolate_temporal(table, 8)
    src = ((torch.arange(8) + 0.5) * 12 / 8 - 0.5).clamp(min=0)
    lo = src.floor().long()
    w = (src - lo)[:, None]
    assert torch.allclose(out, table[lo] * (1 - w) + table[(lo + 1).clamp(max=11)] * w, atol=1e-6)


def test_token_mining_query_layout(model):
    """Official layout: query row r of frame t, channel c = ReLU(w[k] a[t, j] + b[k]), f = r*D + c,
    j = f // Q, k = f % Q."""
    tm = model.token_mining
    Q = tm.config.queries_per_frame
    a = torch.randn(1, 2, tm.config.image_embed_dim)  # (V, T, Di)
    D = a.shape[-1]
    queries = tm.frame_queries(a)  # (1, 2*Q, D)
    w, b = tm.query_expand.weight[:, 0], tm.query_expand.bias
    for t, r, c in [(0, 0, 0), (0, 1, 5), (1, Q - 1, D - 1), (1, 3, 17)]:
        f = r * D + c
        expected = F.relu(w[f % Q] * a[0, t, f // Q] + b[f % Q])
        assert torch.allclose(queries[0, t * Q + r, c], expected, atol=1e-6)


def test_token_mining_per_query_layout():
    cfg = tiny_config(token_mining_config={"query_layout": "per_query"})
    tm = HiLightForConditionalGeneration(cfg).token_mining
    a = torch.randn(1, 2, cfg.token_mining_config.image_embed_dim)  # (V, T, Di)
    queries = tm.frame_queries(a)  # (1, 2*Q, Di)
    Q = cfg.token_mining_config.queries_per_frame
    w, b = tm.query_expand.weight[:, 0], tm.query_expand.bias
    for t, k in [(0, 0), (1, Q - 1)]:
        assert torch.allclose(queries[0, t * Q + k], F.relu(w[k] * a[0, t] + b[k]), atol=1e-6)
    with pytest.raises(CONFIG_ERRORS):
        tiny_config(token_mining_config={"query_layout": "transposed"})


def test_token_mining_query_residual():
    """`query_residual` adds the projected queries to the mined features before the output MLP; off, the
    output depends on the queries only through the attention weights (official)."""
    torch.manual_seed(0)
    on = HiLightForConditionalGeneration(
        tiny_config(token_mining_config={"query_residual": True})
    ).token_mining
    off = HiLightForConditionalGeneration(
        tiny_config(token_mining_config={"query_residual": False})
    ).token_mining
    off.load_state_dict(on.state_dict())
    cfg = on.config
    hidden = torch.randn(2, 4 + FRAMES * 6, cfg.video_hidden_size)  # (V, L, Dv)
    frames = torch.randn(2, FRAMES, cfg.image_embed_dim)  # (V, T, Di)
    with torch.no_grad():
        q = on.query_proj(on.query_norm(on.frame_queries(frames)))  # (V, T*Q, D)
        video = F.relu(on.video_proj(hidden))
        mined = off(hidden, frames)[1] @ on.value_proj(on.value_norm(video))  # attention @ v, (V, T*Q, D)
        assert torch.allclose(off(hidden, frames)[0], on.output(mined), atol=1e-5)
        assert torch.allclose(on(hidden, frames)[0], on.output(mined + q), atol=1e-5)
        assert not torch.allclose(on(hidden, frames)[0], off(hidden, frames)[0], atol=1e-3)


def test_video_features_and_cached_inputs_agree(model):
    pixels = clip(2)
    with torch.no_grad():
        feats = model.get_video_features(pixels, return_intermediates=True)
        M = 1 + model.config.video_config.num_proxy_tokens
        P = model.config.video_config.num_patches
        Q = model.config.token_mining_config.queries_per_frame
        assert feats.video_hidden_states.shape == (2, M + FRAMES * P, 192)
        assert feats.frame_embeds.shape == (2, FRAMES, 128)
        assert feats.video_embeds.shape == (2, FRAMES * Q, 256)
        assert torch.allclose(feats.token_mining_attentions.sum(-1), torch.ones(2, FRAMES * Q), atol=1e-5)
        # Long-CLIP's batched pass equals encoding frame by frame (the official loop).
        serial = torch.stack([model.image_tower.encode_image(pixels[:, t]) for t in range(FRAMES)], dim=1)
        assert torch.allclose(feats.frame_embeds, serial, atol=1e-5)
        ids = torch.tensor([prompt(model, [20, 21], videos=2)])
        a = model(input_ids=ids, pixel_values=pixels).logits
        b = model(
            input_ids=ids, video_hidden_states=feats.video_hidden_states, frame_embeds=feats.frame_embeds
        ).logits
        c = model(input_ids=ids, video_embeds=feats.video_embeds).logits
    assert torch.equal(a, b) and torch.equal(a, c)


def test_video_inputs_go_by_transformers_name_and_the_old_alias(model):
    ids = torch.tensor([prompt(model, [20, 21])])
    pixels = clip()
    with torch.no_grad():
        features = model.get_video_features(pixel_values_videos=pixels)
        assert type(features).__name__ == "HiLightVideoFeatures"  # always the output dataclass
        assert torch.equal(features.video_embeds, model.get_video_features(pixel_values=pixels).video_embeds)
        a = model(input_ids=ids, pixel_values_videos=pixels).logits
        b = model(input_ids=ids, pixel_values=pixels).logits  # the earlier key, still accepted
        with pytest.raises(ValueError, match="not both"):
            model(input_ids=ids, pixel_values_videos=pixels, pixel_values=clip(seed=1))
        out = model.generate(input_ids=ids, pixel_values_videos=pixels, max_new_tokens=2, do_sample=False)
    assert torch.equal(a, b) and out.shape == (1, ids.shape[1] + 2)


def test_initializer_range_is_configuration():
    torch.manual_seed(0)
    model = HiLightForConditionalGeneration(tiny_config(initializer_range=0.5))
    assert model.token_mining.key_proj.weight.std().item() == pytest.approx(0.5, rel=0.1)
    assert model.video_tower.encoder.layers[0].mlp.fc1.weight.std().item() == pytest.approx(0.5, rel=0.1)


def test_return_dict_false_gives_the_output_as_a_tuple(model):
    ids = torch.tensor([prompt(model, [20, 21])])
    labels = ids.clone()
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=clip(), labels=labels)
        loss, logits, *_ = model(input_ids=ids, pixel_values=clip(), labels=labels, return_dict=False)
    assert torch.equal(loss, out.loss) and torch.equal(logits, out.logits)


def test_contrastive_encoders(model):
    with torch.no_grad():
        video = model.video_tower.encode_video(clip(2), normalize=True)
        text = model.video_tower.encode_text(torch.tensor([[5, 9, 1, 0], [7, 1, 0, 0]]), normalize=True)
        frames = model.image_tower.encode_image(clip(1)[0])
        long_text = model.image_tower.encode_text(torch.tensor([[5] * 30 + [1]]))
    assert video.shape == text.shape == (2, 128)
    assert torch.allclose(video.norm(dim=-1), torch.ones(2))
    assert frames.shape == (FRAMES, 128) and long_text.shape == (1, 128)
    with pytest.raises(ValueError, match="end-of-text"):
        model.video_tower.encode_text(torch.tensor([[5, 9]]))


# --- training ----------------------------------------------------------------------------------------


def _contrastive(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    logits = logit_scale.exp() * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t()
    target = torch.arange(a.shape[0])
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def test_forward_backward_all_trainable_params_get_grads():
    torch.manual_seed(0)
    model = HiLightForConditionalGeneration(tiny_config()).train()
    names = set_trainable_params(model, ("*",))
    assert {n.split(".")[0] for n in names} == {
        "video_tower",
        "image_tower",
        "token_mining",
        "language_model",
    }
    pixels = clip(2)
    ids = torch.tensor([prompt(model, [20, 21, 1], videos=1)] * 2)
    labels = ids.masked_fill(ids == model.config.video_token_id, -100)
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels, labels=labels)
    # Stage 0 losses reach the towers' pooled heads and text encoders, which the LM path does not use.
    text = torch.tensor([[5, 9, 1], [7, 8, 1]])
    vt, it = model.video_tower, model.image_tower
    loss = out.loss + _contrastive(vt.encode_video(pixels), vt.encode_text(text), vt.logit_scale)
    loss = loss + _contrastive(it.encode_image(pixels[:, 0]), it.encode_text(text), it.logit_scale)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"


def test_stage1_trains_token_mining_only():
    torch.manual_seed(0)
    model = HiLightForConditionalGeneration(tiny_config()).train()
    names = set_trainable_params(model, *trainable_globs("stage1"))
    assert names == [n for n, _ in model.named_parameters() if n.startswith("token_mining.")]
    ids = torch.tensor([prompt(model, [20, 1])])
    model(input_ids=ids, pixel_values=clip(1), labels=ids.masked_fill(ids == 6, -100)).loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == name.startswith("token_mining."), name


# --- placeholder contract ----------------------------------------------------------------------------


def test_placeholder_mismatch_raises(model):
    ids = prompt(model, [20])
    with torch.no_grad(), pytest.raises(ValueError, match=r"placeholder tokens .* but 2 videos x"):
        model(input_ids=torch.tensor([ids]), pixel_values=clip(2))
    with torch.no_grad(), pytest.raises(ValueError, match="placeholder tokens"):
        model(input_ids=torch.tensor([ids[:-5] + ids[-1:]]), pixel_values=clip(1))  # 4 placeholders short
    with torch.no_grad(), pytest.raises(ValueError, match="no video was given"):
        model(input_ids=torch.tensor([ids]))
    with torch.no_grad(), pytest.raises(ValueError, match="exactly one visual source"):
        feats = model.get_video_features(clip(1)).video_embeds
        model(input_ids=torch.tensor([ids]), pixel_values=clip(1), video_embeds=feats)


# --- generation --------------------------------------------------------------------------------------


class _Collect(BaseStreamer):
    def __init__(self):
        self.chunks = []

    def put(self, value):
        self.chunks.append(value.clone())

    def end(self):
        self.chunks.append(None)


def test_generate_streams_and_runs_towers_once(model):
    ids = torch.tensor([prompt(model, [20, 21])])
    calls = []
    hook = model.video_tower.register_forward_hook(lambda *_: calls.append(1))
    streamer = _Collect()
    try:
        with torch.no_grad():
            out = model.generate(
                input_ids=ids, pixel_values=clip(1), max_new_tokens=5, do_sample=False, streamer=streamer
            )
    finally:
        hook.remove()
    assert len(calls) == 1  # visual inputs only on the prefill; decoding reuses the KV cache
    streamed = torch.cat([c.reshape(-1) for c in streamer.chunks[1:-1]])
    assert torch.equal(streamed, out[0, ids.shape[1] :]) and streamer.chunks[-1] is None


def test_left_padded_batch_matches_batch_size_one(model):
    rows = [prompt(model, [20, 21, 22, 23, 24, 25]), prompt(model, [30])]
    pixels = clip(2)
    single = []
    with torch.no_grad():
        for i, row in enumerate(rows):
            out = model.generate(input_ids=torch.tensor([row]), pixel_values=pixels[i : i + 1], max_new_tokens=6,
                                 do_sample=False)  # fmt: skip
            single.append(out[0, len(row) :])
        width = max(map(len, rows))
        ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        batch = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=6,
                               do_sample=False)  # fmt: skip
    for i in range(2):
        assert torch.equal(batch[i, width:], single[i]), (batch[i, width:], single[i])


def test_bf16_autocast_forward(model):
    ids = torch.tensor([prompt(model, [20])])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=ids, pixel_values=clip(1)).logits
    assert torch.isfinite(logits).all()


# --- save / load -------------------------------------------------------------------------------------


def _config_fields(config) -> dict:
    """Config as a dict without what loading itself records (dtype, source path)."""

    def strip(d):
        return {
            k: strip(v) if isinstance(v, dict) else v
            for k, v in d.items()
            if k not in ("dtype", "_name_or_path")
        }

    return strip(config.to_dict())


def test_save_load_round_trip_is_bit_identical(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "modeling_hilight.py").is_file() and (tmp_path / "configuration_hilight.py").is_file()
    assert (tmp_path / "model.safetensors").is_file()
    loaded = AutoModel.from_pretrained(tmp_path, trust_remote_code=True, dtype=torch.float32).eval()
    assert type(loaded).__name__ == "HiLightForConditionalGeneration"
    assert _config_fields(loaded.config) == _config_fields(model.config)
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype and torch.equal(ours[key], theirs[key]), key
    ids = torch.tensor([prompt(model, [20])])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, pixel_values=clip(1)).logits,
                           loaded(input_ids=ids, pixel_values=clip(1)).logits)  # fmt: skip
    lm = loaded.language_model
    assert lm.get_output_embeddings().weight is lm.get_input_embeddings().weight  # tying survives
    other = AutoModelForImageTextToText.from_pretrained(tmp_path, trust_remote_code=True, dtype=torch.float32)
    assert type(other).__name__ == "HiLightForConditionalGeneration"


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_without_a_dtype_the_model_loads_in_the_faster_dtype_of_this_cpu(tmp_path, monkeypatch, fast_bf16):
    torch.manual_seed(0)
    HiLightForConditionalGeneration(tiny_config()).to(torch.bfloat16).save_pretrained(
        tmp_path
    )  # as the bundled model
    monkeypatch.setattr(modeling_hilight, "cpu_has_fast_bf16", lambda: fast_bf16)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    loaded = HiLightForConditionalGeneration.from_pretrained(tmp_path)
    assert loaded.dtype == (torch.bfloat16 if fast_bf16 else torch.float32)  # fp32 where bf16 is emulated
    assert modeling_hilight.preferred_cpu_dtype() == loaded.dtype
    for given in (torch.bfloat16, torch.float32):  # an explicit dtype is kept either way
        assert HiLightForConditionalGeneration.from_pretrained(tmp_path, dtype=given).dtype == given
    for device_map in ("cpu", {"": "cpu"}, "auto"):  # each places every weight on the CPU here
        assert (
            HiLightForConditionalGeneration.from_pretrained(tmp_path, device_map=device_map).dtype
            == loaded.dtype
        )


def test_which_device_maps_load_every_weight_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    for on_cpu in (
        None,
        "auto",
        "cpu",
        torch.device("cpu"),
        {"": "cpu"},
        {"lm": "cpu", "towers": torch.device("cpu")},
    ):
        assert modeling_hilight._loads_on_cpu(on_cpu), on_cpu
    for elsewhere in (0, "cuda", "cuda:1", "disk", {}, {"lm": "cpu", "towers": 0}, {"": "disk"}):
        assert not modeling_hilight._loads_on_cpu(elsewhere), elsewhere
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    assert not modeling_hilight._loads_on_cpu(None) and not modeling_hilight._loads_on_cpu("auto")
    assert modeling_hilight._loads_on_cpu({"": "cpu"})


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_loading_finiteness_check_reads_every_slice(dtype):
    weights = torch.arange(10, dtype=dtype).view(2, 5)
    assert _all_finite(weights, chunk=3)
    for bad in (float("nan"), float("inf")):
        broken = weights.clone()
        broken[1, 4] = bad  # in the last, partial slice
        assert not _all_finite(broken, chunk=3) and not _all_finite(broken)
    assert _all_finite(weights.t(), chunk=3)  # non-contiguous: reshape copies
