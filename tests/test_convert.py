"""Official checkpoints -> our folder -> AutoModel (trust_remote_code) reproduces every official fixture.

The fixture folder is converted once per module through the CLI (train/convert_official.py) and loaded
with ``AutoModel.from_pretrained(folder, trust_remote_code=True)`` in fp32. Official input_ids use -200 for
the video; here it becomes 384 copies of VIDEO_ID (unused by the fixture prompts).
"""

import json
import math
import os

import convert_official
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel
from transformers.activations import ACT2FN

from hilight_train.convert import (
    ConversionError,
    Rule,
    apply_key_map,
    convert_token_mining,
    hilight_gemma_text_config,
    load_torch_file,
)

VIDEO_ID = 255  # fixture vocab is 256; no fixture prompt or generated id uses 255
TOL = 1e-4
# The LM's fp32 logits depend on the CPU's GEMM summation order: the fixture's own logits lie up to 7e-5 from
# a float64 run of the same LM on the same inputs, and stock transformers Gemma on another CPU (AVX-512, no
# AMX) lies 9e-5 from it on the other side, so two correct fp32 runs can differ by about twice the fixture's
# rounding error.
LOGITS_TOL = 2e-4


@pytest.fixture(scope="module")
def converted(official_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    convert_official.main(
        [
            "--clipvip", str(official_dir / "clipvip/pretrain_clipvip_base_16.pt"),
            "--clipvip-config", str(official_dir / "clipvip/clipvip-vision_config.json"),
            "--longclip", str(official_dir / "longclip/longclip-B.pt"),
            "--lm", str(official_dir / "full"),
            "--video-token-id", str(VIDEO_ID),
            "--out", str(out),
        ]
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def model(converted):
    model, info = AutoModel.from_pretrained(
        converted, trust_remote_code=True, dtype=torch.float32, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


@pytest.fixture(scope="module")
def frames(official_dir):
    return load_file(official_dir / "processor/frames.safetensors")["pixel_values"][
        None
    ]  # (1, 12, 3, 224, 224)


@pytest.fixture(scope="module")
def features(model, frames):
    with torch.no_grad():
        return model.get_video_features(frames, return_intermediates=True)


@pytest.fixture(scope="module")
def expected(official_dir):
    return load_file(official_dir / "full/expected.safetensors")


def expand_placeholder(input_ids: torch.Tensor, tokens: int) -> torch.Tensor:
    """Official -200 placeholder -> `tokens` copies of VIDEO_ID (what our processor writes)."""
    rows = []
    for row in input_ids.tolist():
        rows.append([t for i in row for t in ([VIDEO_ID] * tokens if i == -200 else [i])])
    return torch.tensor(rows)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


# --- the converted folder ----------------------------------------------------------------------------


def test_folder_is_hub_style(converted):
    for name in ("config.json", "model.safetensors", "generation_config.json", "configuration_hilight.py",
                 "modeling_hilight.py"):  # fmt: skip
        assert (converted / name).is_file(), name
    config = json.loads((converted / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_hilight.HiLightForConditionalGeneration"
    assert config["auto_map"]["AutoConfig"] == "configuration_hilight.HiLightConfig"
    assert config["text_config"]["hidden_act"] == "gelu_python"  # exact erf GELU survives GemmaConfig
    loaded = AutoConfig.from_pretrained(converted, trust_remote_code=True)
    assert loaded.text_config.hidden_act == "gelu_python"
    assert loaded.video_token_id == VIDEO_ID and loaded.tokens_per_video == 384
    weights = load_file(converted / "model.safetensors")
    assert any(k.startswith("video_tower.") for k in weights) and any(
        k.startswith("image_tower.") for k in weights
    )


# --- fixture parity ----------------------------------------------------------------------------------


def test_clipvip_hidden_states(official_dir, features):
    ref = load_file(official_dir / "clipvip/expected_last_hidden_state.safetensors")["last_hidden_state"]
    assert max_diff(features.video_hidden_states, ref) <= TOL


def test_longclip_frame_embeds(official_dir, features):
    ref = load_file(official_dir / "longclip/expected_frame_features.safetensors")["frame_features"]
    assert max_diff(features.frame_embeds, ref) <= TOL


def test_token_mining(official_dir, model, features):
    ref = load_file(official_dir / "token_mining/expected_video_tokens.safetensors")["video_tokens"]
    assert max_diff(features.video_embeds, ref) <= TOL
    # Also from the official tower outputs alone (TokenMining in isolation).
    h = load_file(official_dir / "clipvip/expected_last_hidden_state.safetensors")["last_hidden_state"]
    f = load_file(official_dir / "longclip/expected_frame_features.safetensors")["frame_features"]
    with torch.no_grad():
        assert max_diff(model.token_mining(h, f)[0], ref) <= TOL


def test_spliced_inputs_embeds(model, features, expected):
    ids = expand_placeholder(expected["input_ids"], 384)
    with torch.no_grad():
        embeds = model.embed_inputs(ids, features.video_embeds)
    # Official inputs_embeds are raw table rows; Gemma scales every row (vision tokens too) by sqrt(2048).
    scale = model.video_embed_scale
    assert scale.dtype == torch.float32 and scale.item() == pytest.approx(math.sqrt(2048))
    assert max_diff(embeds / scale, expected["inputs_embeds"]) <= TOL


def test_logits_fp32(model, frames, expected):
    ids = expand_placeholder(expected["input_ids"], 384)
    with torch.no_grad():
        logits = model(input_ids=ids, pixel_values=frames).logits
    assert max_diff(logits, expected["logits_fp32"]) <= LOGITS_TOL
    # The official fp16 splice is not emulated (no casts in forward): only argmax agreement is expected.
    assert torch.equal(logits.argmax(-1), expected["logits_official"].argmax(-1))


def test_greedy_generation(model, frames, expected):
    ids = expand_placeholder(expected["input_ids"], 384)
    with torch.no_grad():
        out = model.generate(input_ids=ids, pixel_values=frames, max_new_tokens=8, do_sample=False)
    assert torch.equal(out[:, ids.shape[1] :], expected["generated_ids_fp32"])


def test_eight_frames_interpolate_temporal_embedding(model, frames, features, expected):
    """8 frames of the same video (a subset of the 12 fixture frames): the temporal table is linearly
    interpolated (align_corners=False), Long-CLIP stays per frame, and the whole model runs end to end."""
    index = torch.linspace(0, 11, 8).long()
    frames8 = frames[:, index]  # (1, 8, 3, 224, 224)
    tower = model.video_tower
    table = tower.temporal_embedding.detach()  # (12, 768)
    # Linear interpolation by hand: source coordinate (i + 0.5) * 12 / 8 - 0.5, clamped, then lerp.
    src = ((torch.arange(8) + 0.5) * 12 / 8 - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=11)
    hi = (lo + 1).clamp(max=11)
    w = (src - lo).unsqueeze(-1)
    manual = table[lo] * (1 - w) + table[hi] * w  # (8, 768)
    with torch.no_grad():
        embedded = tower.embed(frames8)  # (1, 4 + 8*196, 768)
        patches = tower.patch_embedding(frames8[0]).flatten(2).transpose(1, 2)  # (8, 196, 768)
        temporal_seen = embedded[0, 4:].view(8, 196, 768) - patches - tower.position_embedding[1:]
        assert (temporal_seen - manual[:, None]).abs().max().item() < 1e-5
        assert torch.allclose(
            F.interpolate(table.t()[None], size=8, mode="linear", align_corners=False)[0].t(),
            manual,
            atol=1e-6,
        )
        feats = model.get_video_features(frames8, return_intermediates=True)
        assert feats.video_hidden_states.shape == (1, 4 + 8 * 196, 768)
        assert feats.frame_embeds.shape == (1, 8, 512)
        assert feats.video_embeds.shape == (1, 8 * 32, 2048)
        assert feats.token_mining_attentions.shape == (1, 8 * 32, 4 + 8 * 196)
        # Long-CLIP encodes frames independently: the 8 rows equal the 12-frame rows at those indices.
        assert max_diff(feats.frame_embeds, features.frame_embeds[:, index]) <= 1e-5
        ids = expand_placeholder(expected["input_ids"], 8 * 32)
        out = model.generate(input_ids=ids, pixel_values=frames8, max_new_tokens=4, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 4)
    assert torch.isfinite(feats.video_hidden_states).all()


def test_exact_gelu_mapping():
    cfg = hilight_gemma_text_config({"model_type": "hilight_gemma", "hidden_act": "gelu", "hidden_size": 8})
    assert cfg["hidden_act"] == "gelu_python" and cfg["model_type"] == "gemma"
    x = torch.linspace(-6, 6, 1001)
    assert torch.allclose(ACT2FN[cfg["hidden_act"]](x), F.gelu(x), atol=1e-6)
    assert (ACT2FN["gelu_pytorch_tanh"](x) - F.gelu(x)).abs().max() > 1e-4  # the default would differ


# --- strictness and safety ---------------------------------------------------------------------------


def test_key_map_is_strict():
    sd = {"a.0.w": torch.zeros(1), "a.1.w": torch.ones(1), "extra": torch.zeros(1)}
    with pytest.raises(ConversionError, match=r"unmapped keys.*extra"):
        apply_key_map(sd, {"b.{}.w": "a.{}.w"}, {}, "test")
    out = apply_key_map(sd, {"b.{}.w": "a.{}.w"}, {"extra": "why it is skipped"}, "test")
    assert set(out) == {"b.0.w", "b.1.w"}
    with pytest.raises(ConversionError, match=r"missing keys.*c"):
        apply_key_map(sd, {"b.{}.w": "a.{}.w", "c2": "c"}, {"extra": "why"}, "test")
    cat = apply_key_map(sd, {"q": Rule(("a.0.w", "a.1.w"), lambda *t: torch.cat(t))}, {"extra": "why"}, "t")
    assert torch.equal(cat["q"], torch.tensor([0.0, 1.0]))


def test_token_mining_checkpoint_missing_key_is_an_error(official_dir):
    sd = load_torch_file(official_dir / "token_mining/token_mining.bin")
    sd.pop("model.token_mining.key_projector.1.bias")
    with pytest.raises(ConversionError, match=r"key_projector\.1\.bias"):
        convert_token_mining(sd)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_malicious_pickle_is_refused(tmp_path, official_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "longclip-evil.pt"
    torch.save({"visual.conv1.weight": torch.zeros(1), "payload": _Exploit()}, bad)
    with pytest.raises(ConversionError, match="arbitrary code"):
        load_torch_file(bad)
    with pytest.raises(ConversionError, match="arbitrary code"):
        convert_official.main(
            [
                "--clipvip", str(official_dir / "clipvip/pretrain_clipvip_base_16.pt"),
                "--clipvip-config", str(official_dir / "clipvip/clipvip-vision_config.json"),
                "--longclip", str(bad),
                "--lm", str(official_dir / "full"),
                "--video-token-id", str(VIDEO_ID),
                "--out", str(tmp_path / "out"),
            ]
        )  # fmt: skip
    assert not (tmp_path / "pwned.txt").exists()


def test_plain_lm_with_tokenizer_writes_processor(official_dir, tmp_path):
    """A plain HF LM dir with a tokenizer (+ --token-mining): tokenizer and processor files are written
    and the model's video_token_id is the tokenizer's <video> id."""
    from transformers import GemmaConfig, GemmaForCausalLM

    from hilight.processing_hilight import HiLightProcessor
    from hilight_train.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["Which balls were potted? The 8-ball was potted."] * 20, vocab_size=300)
    lm_config = GemmaConfig(
        vocab_size=len(tokenizer), hidden_size=2048, intermediate_size=16, num_hidden_layers=1,
        num_attention_heads=1, num_key_value_heads=1, head_dim=32,
    )  # fmt: skip
    lm_dir = tmp_path / "lm"
    GemmaForCausalLM(lm_config).save_pretrained(lm_dir)
    tokenizer.save_pretrained(lm_dir)
    out = tmp_path / "out"
    convert_official.main(
        [
            "--clipvip", str(official_dir / "clipvip/pretrain_clipvip_base_16.pt"),
            "--clipvip-config", str(official_dir / "clipvip/clipvip-vision_config.json"),
            "--longclip", str(official_dir / "longclip/longclip-B.pt"),
            "--token-mining", str(official_dir / "token_mining/token_mining.bin"),
            "--lm", str(lm_dir),
            "--no-text-towers",
            "--out", str(out),
        ]
    )  # fmt: skip
    config = AutoConfig.from_pretrained(out, trust_remote_code=True)
    assert config.video_token_id == tokenizer.convert_tokens_to_ids("<video>")
    assert not config.video_config.use_text_encoder and not config.image_config.use_text_encoder
    assert (out / "processing_hilight.py").is_file()
    processor = HiLightProcessor.from_pretrained(out)
    assert processor.tokens_per_frame == 32 and processor.video_token_id == config.video_token_id
    model = AutoModel.from_pretrained(out, trust_remote_code=True, dtype=torch.float32)
    assert model.video_tower.text_model is None


def test_loads_from_hub_cache_layout_offline(converted, tmp_path, monkeypatch):
    """The converted folder, placed as a Hub cache snapshot, loads by repo id with HF_HUB_OFFLINE=1."""
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "hub" / "models--motern--hilight"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(converted, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    model = AutoModel.from_pretrained(
        "motern/hilight", cache_dir=tmp_path / "hub", trust_remote_code=True, dtype=torch.float32
    )
    assert type(model).__name__ == "HiLightForConditionalGeneration"
    assert model.config.video_token_id == VIDEO_ID
