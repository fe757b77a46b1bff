"""The ablation fusions: same number of vision tokens as TokenMining, trainable, and validated."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError

from hilight.configuration_hilight import HiLightConfig
from hilight.modeling_hilight import HiLightForConditionalGeneration, LearnedQueryMining, MLPProjector

FRAMES = 4


def tiny(fusion: str, **token_mining) -> HiLightConfig:
    return HiLightConfig.from_preset(
        "tiny",
        num_frames=FRAMES,
        text_config={"vocab_size": 300},
        token_mining_config={"fusion": fusion, **token_mining},
    )


@pytest.mark.parametrize("fusion", ["token_mining", "video_only", "image_only", "mlp"])
def test_every_fusion_gives_the_same_tokens_and_trains(fusion):
    torch.manual_seed(0)
    model = HiLightForConditionalGeneration(tiny(fusion))
    pixel_values = torch.randn(2, FRAMES, 3, *model.config.video_config.frame_size)
    tokens = model.get_video_features(pixel_values).video_embeds
    assert tokens.shape == (2, FRAMES * 8, 256)
    tokens.float().square().mean().backward()
    grads = [p.grad for p in model.token_mining.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("fusion", ["token_mining", "video_only", "image_only", "mlp"])
def test_every_fusion_reads_cached_tower_outputs(fusion):
    """Training from the feature cache passes the towers' outputs (stored in another dtype) instead of pixels;
    every fusion gives the same logits either way."""
    torch.manual_seed(0)
    model = HiLightForConditionalGeneration(tiny(fusion)).eval()
    pixel_values = torch.randn(1, FRAMES, 3, *model.config.video_config.frame_size)
    ids = torch.tensor([[2] + [model.config.video_token_id] * model.config.tokens_per_video + [10, 20]])
    with torch.no_grad():
        features = model.get_video_features(pixel_values)
        from_pixels = model(input_ids=ids, pixel_values_videos=pixel_values).logits
        from_cache = model(
            input_ids=ids,
            video_hidden_states=features.video_hidden_states.double(),
            frame_embeds=features.frame_embeds.double(),
        ).logits
    torch.testing.assert_close(from_cache, from_pixels)


def test_video_only_ignores_long_clip_and_image_only_ignores_clip_vip():
    torch.manual_seed(0)
    video_states, frames = torch.randn(1, 4 + FRAMES * 49, 192), torch.randn(1, FRAMES, 128)
    video_only = HiLightForConditionalGeneration(tiny("video_only")).token_mining
    image_only = HiLightForConditionalGeneration(tiny("image_only")).token_mining
    assert isinstance(video_only, LearnedQueryMining)
    torch.testing.assert_close(video_only(video_states, frames)[0], video_only(video_states, frames * 3)[0])
    assert not torch.allclose(video_only(video_states, frames)[0], video_only(video_states * 3, frames)[0])
    torch.testing.assert_close(image_only(video_states, frames)[0], image_only(video_states * 3, frames)[0])


def test_mlp_projector_pools_each_frame_separately():
    torch.manual_seed(0)
    mlp = HiLightForConditionalGeneration(tiny("mlp")).token_mining
    assert isinstance(mlp, MLPProjector)
    video_states, frames = torch.randn(1, 4 + FRAMES * 49, 192), torch.randn(1, FRAMES, 128)
    changed = video_states.clone()
    changed[:, 4 + 49 : 4 + 2 * 49] += 1.0  # frame 1's patches only
    a, b = mlp(video_states, frames)[0], mlp(changed, frames)[0]
    per_frame = (a - b).abs().reshape(FRAMES, 8, -1).amax(dim=(1, 2))
    assert per_frame[1] > 0 and per_frame[[0, 2, 3]].max() == 0
    changed = video_states.clone()
    changed[:, :4] += 1.0  # leading tokens are dropped
    torch.testing.assert_close(mlp(changed, frames)[0], a)


def test_fusion_config_is_validated():
    with pytest.raises((ValueError, StrictDataclassError), match="fusion must be one of"):
        tiny("attention")
    with pytest.raises((ValueError, StrictDataclassError), match="video_only"):
        tiny("video_only", num_frames=12)
    model = HiLightForConditionalGeneration(tiny("video_only"))
    with pytest.raises(ValueError, match="built for 4 frames"):
        model.get_video_features(torch.randn(1, 6, 3, *model.config.video_config.frame_size))


def test_variant_starts_from_the_same_towers_and_lm_with_a_fresh_fusion(tiny_model_dir, tmp_path):
    from ablations import init_variant  # train/ablations.py (train/ is on the test path)

    from hilight_train.training import load_model_and_processor

    init_variant(tiny_model_dir, "mlp", seed=0, out=tmp_path / "mlp")
    base, _ = load_model_and_processor(tiny_model_dir)
    variant, processor = load_model_and_processor(tmp_path / "mlp")
    assert isinstance(variant.token_mining, MLPProjector)
    assert variant.config.token_mining_config.fusion == "mlp"
    base_state, variant_state = base.state_dict(), variant.state_dict()
    shared = [k for k in base_state if not k.startswith("token_mining.")]
    assert shared and all(torch.equal(base_state[k], variant_state[k]) for k in shared)
    assert processor.tokens_per_frame == base.config.token_mining_config.queries_per_frame


def test_ablation_table_lists_every_variant_and_type():
    from ablations import table

    entry = {"accuracy": 0.5, "ci": [0.4, 0.6]}
    results = {"A": {"overall": entry, "types": {"foul": entry}}, "B": {"overall": entry, "types": {}}}
    text = table(results)
    assert text.splitlines()[0] == "| question type | A | B |"
    assert "| foul | 0.500 [0.40, 0.60] | – |" in text


def test_ablations_config_names_valid_fusions_and_stage_arguments(repo_root, tmp_path):
    import yaml

    from hilight.configuration_hilight import FUSIONS
    from hilight_train.stages import parse_args

    cfg = yaml.safe_load((repo_root / "train" / "configs" / "ablations.yaml").read_text())
    assert set(cfg["variants"].values()) == set(FUSIONS)  # every fusion, HiLight's included
    for stage in ("stage1", "stage2"):
        argv = [
            *cfg[stage],
            "--model_name_or_path",
            "m",
            "--train_data",
            "d.json",
            "--output_dir",
            str(tmp_path),
        ]
        _, training_args, _ = parse_args(stage, argv)
        assert training_args.max_steps > 0  # the same step budget for every variant
