"""Training machinery on the tiny preset (4 frames of 64 px) and a handful of data-engine clips.

Covers the collator against the official trained spans, the feature cache (fingerprint, equality with
running the towers), a few steps of stages 0, 1 and 2 (LoRA and full), the overfit check, frozen parameters
bit for bit, resume equality, LoRA save/load/merge equality, DDP equality (2 gloo processes) and configs.
"""

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerCallback

from hilight.modeling_hilight import HiLightForConditionalGeneration
from hilight_train import stages
from hilight_train.cache import CacheMismatchError, CacheMissError, FeatureCache, build_feature_cache
from hilight_train.collator import IGNORE_INDEX, HiLightCollator, encode_conversation
from hilight_train.data import parse_record
from hilight_train.stages import build_trainer, default_cache_dir, parse_args, run_sft, with_device_default
from hilight_train.training import (
    HiLightTrainer,
    check_trainable,
    lm_linear_target_regex,
    load_model_and_processor,
    load_processor,
    load_rows,
    set_trainable_params,
    trainable_globs,
)

sys.path.insert(0, str(Path(__file__).parent))
from _train_utils import free_port, sft_argv

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and the machine is shared


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _losses(out: Path) -> list[float]:
    return [json.loads(ln)["loss"] for ln in (out / "log.jsonl").read_text().splitlines() if '"loss"' in ln]


# ------------------------------------------------------------------------------------------- collator


@pytest.mark.parametrize("index", [0, 1])
def test_collator_trains_exactly_the_official_spans(base_dir, official_dir, engine_data, index):
    _, processor = load_model_and_processor(base_dir)
    conversation = json.loads((official_dir / "prompt" / "prompts.json").read_text())["conversations"][index]
    video = sorted((engine_data / "videos").iterdir())[0]
    record = {"id": "x", "video": video.name, "conversations": conversation["raw_conversation"]}
    sample = parse_record(record, engine_data / "videos")
    item = encode_conversation(processor, sample.messages)
    ids, labels = item["input_ids"], item["labels"]
    tok = processor.tokenizer
    assert ids[0] == tok.bos_token_id and labels[0] == IGNORE_INDEX
    per_video = processor.video_processor.num_frames * processor.tokens_per_frame
    assert ids.count(processor.video_token_id) == per_video and item["num_videos"] == 1
    runs, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    runs += [current] if current else []
    spans = conversation["label_masking"]["spans"]
    assert [tok.decode(r) for r in runs] == [s["text"] for s in spans if s["trained"]]
    untrained = tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab == IGNORE_INDEX])
    expected = "<bos>" + "".join(s["text"] for s in spans if not s["trained"])
    assert untrained.replace("<video>" * per_video, "<video>") == expected


def test_collator_left_and_right_padding_give_the_same_loss(base_dir, annotations, tmp_path):
    model, processor = load_model_and_processor(base_dir)
    rows = load_rows(annotations, limit=3).to_list()
    rows.append({"id": "text", "messages_json": json.dumps([
        {"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "A text-only answer."}]), "video": ""})  # fmt: skip
    cache = build_feature_cache(
        model, processor, [r["video"] for r in rows if r["video"]], tmp_path, progress=False
    )
    losses = {}
    for side in ("left", "right"):
        batch = HiLightCollator(processor, cache, padding_side=side)(rows)
        assert batch["video_hidden_states"].shape[0] == 3 and batch["input_ids"].shape[0] == 4
        with torch.no_grad():
            losses[side] = model(**batch).loss
    torch.testing.assert_close(losses["left"], losses["right"], rtol=1e-5, atol=1e-5)
    bad = dict(rows[0], video="")
    with pytest.raises(ValueError, match="placeholders"):
        HiLightCollator(processor, cache)([bad])


# ---------------------------------------------------------------------------------------------- cache


def test_feature_cache_stores_tower_outputs_and_refuses_other_models(base_dir, engine_data, tmp_path):
    model, processor = load_model_and_processor(base_dir)
    videos = sorted(str(p) for p in (engine_data / "videos").iterdir())[:3]
    cache = build_feature_cache(model, processor, videos + videos[:1], tmp_path, batch_size=2, progress=False)
    hidden, frames = cache.load(videos)
    assert hidden.dtype == torch.bfloat16 and (tmp_path / "fingerprint.json").exists()
    with torch.no_grad():
        pixel_values = processor.video_processor(videos, return_tensors="pt")["pixel_values_videos"]
        feats = model.get_video_features(pixel_values, return_intermediates=True)
    torch.testing.assert_close(hidden.float(), feats.video_hidden_states, rtol=1e-2, atol=2e-2)
    torch.testing.assert_close(frames.float(), feats.frame_embeds, rtol=1e-2, atol=2e-2)
    assert cache.missing(videos) == []  # a re-run computes nothing
    FeatureCache.for_model(tmp_path, model, processor)  # same model: accepted
    # fp32 runs never read bf16 features
    with pytest.raises(CacheMismatchError, match=r"precision\.autocast"):
        FeatureCache.for_model(tmp_path, model, processor, bf16=True)
    with pytest.raises(CacheMismatchError, match=r"precision\.storage_dtype"):
        FeatureCache.for_model(tmp_path, model, processor, dtype=torch.float32)
    folders = {default_cache_dir(tmp_path / "a.json", model, processor, bf16) for bf16 in (False, True)}
    assert len(folders) == 2  # and the default folders of the two precisions differ
    with torch.no_grad():
        model.video_tower.encoder.layers[0].mlp.fc1.weight[0, 0] += 1.0
    with pytest.raises(CacheMismatchError, match="tower_weights_sha256"):
        FeatureCache.for_model(tmp_path, model, processor)
    model2, processor2 = load_model_and_processor(base_dir)
    processor2.video_processor.num_frames = 6
    with pytest.raises(CacheMismatchError, match="num_frames"):
        FeatureCache.for_model(tmp_path, model2, processor2)
    with pytest.raises(CacheMissError):
        cache.load([sorted((engine_data / "videos").iterdir())[-1]])


# --------------------------------------------------------------------------------------------- stages


def test_stage1_trains_token_mining_only_from_the_cache(base_dir, annotations, tmp_path):
    out = tmp_path / "s1"
    argv = sft_argv(
        base_dir,
        annotations,
        out,
        max_train_samples=4,
        max_steps=4,
        feature_cache=tmp_path / "cache",
        save_steps=2,
        save_total_limit=1,
        bf16="true",
        use_cpu="true",
    )  # fmt: skip  (bf16 autocast on CPU)
    trainer = build_trainer("stage1", *parse_args("stage1", argv))
    model = trainer.model
    before = _state(model)

    def refuse(*_):
        raise AssertionError("a tower ran during cached training")

    hooks = [model.video_tower.register_forward_hook(refuse), model.image_tower.register_forward_hook(refuse)]
    trainer.train()
    for h in hooks:
        h.remove()
    after = _state(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("token_mining.") for k in changed)
    for k in before:
        if not k.startswith("token_mining."):
            assert torch.equal(before[k], after[k]), k  # frozen: bit for bit
    assert len(_losses(out)) == 4 and (out / "loss_curve.png").stat().st_size > 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]  # save_total_limit=1
    assert not list((out / ".staging").glob("checkpoint-*"))
    # vision-token health at the start, at every log and at the end, on one fixed batch
    health = [json.loads(x) for x in (out / "token_health.jsonl").read_text().splitlines()]
    assert health[0]["when"] == "start" and health[-1]["when"] == "end" and len(health) >= 3
    first = health[0]
    assert first["clips"] >= 1 and first["vision_norm"] > 0 and first["text_norm"] > 0
    assert 0 <= first["zero_fraction"] <= 1
    # the spread is over distinct clips: rows of one clip repeated do not count as agreement
    assert (first["clip_spread"] > 0) if first["clips"] >= 2 else math.isnan(first["clip_spread"])
    assert health[-1]["step"] == 4 > first["step"] == 0  # measured before and after the 4 training steps


class _Drifting(torch.nn.Module):
    """y = w * x, trained towards targets the evaluation disagrees with: eval loss grows, the best is the first."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(-1.0))

    def forward(self, x, labels):
        return {"loss": ((self.w * x - labels) ** 2).mean()}


def test_best_checkpoint_is_a_final_folder_and_survives_rotation(tmp_path):
    from transformers import TrainingArguments

    rows = [{"x": torch.tensor([1.0]), "labels": torch.tensor([1.0])}] * 8
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, learning_rate=0.2, num_train_epochs=3,
        eval_strategy="steps", eval_steps=2, save_steps=2, save_total_limit=1, load_best_model_at_end=True,
        metric_for_best_model="eval_loss", report_to="none", use_cpu=True, prediction_loss_only=True,
        remove_unused_columns=False, disable_tqdm=True,
    )  # fmt: skip
    evals = [{"x": torch.tensor([1.0]), "labels": torch.tensor([-1.0])}] * 2
    trainer = HiLightTrainer(model=_Drifting(), args=args, train_dataset=rows, eval_dataset=evals)
    trainer.train()
    best = Path(trainer.state.best_model_checkpoint)
    assert best == tmp_path / "checkpoint-2", best  # not the staging folder it was written in
    # Rotation kept the best beside the newest during training; at the end the Trainer drops the newest
    # (save_total_limit=1 with a different best): only the best remains, with its state naming itself.
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2"]
    saved = json.loads((best / "trainer_state.json").read_text())
    assert saved["best_model_checkpoint"] == str(best)
    assert trainer.model.w.item() == load_file(best / "model.safetensors")["w"].item()  # the best is loaded


def test_stage2_overfits_a_fixed_batch(base_dir, annotations, tmp_path):
    argv = sft_argv(base_dir, annotations, tmp_path / "o", max_train_samples=2, max_steps=15, learning_rate=3e-3,
                    warmup_steps=0, feature_cache=tmp_path / "cache", save_strategy="no",
                    eval_split="val", eval_strategy="steps", eval_steps=15)  # fmt: skip
    run_sft("stage2", *parse_args("stage2", argv))
    losses = _losses(tmp_path / "o")
    assert len(losses) == 15 and losses[-1] < 0.5 * losses[0], losses
    evals = [
        json.loads(x) for x in (tmp_path / "o" / "log.jsonl").read_text().splitlines() if "eval_loss" in x
    ]
    assert len(evals) == 1 and evals[0]["step"] == 15 and evals[0]["eval_loss"] > 0


def test_cache_training_equals_training_with_towers(base_dir, annotations, tmp_path):
    weights = {}
    for name, extra in {
        "towers": {"use_feature_cache": "false"},
        "cache_fp32": {"feature_cache": tmp_path / "c32", "cache_dtype": "float32"},
        "cache_bf16": {"feature_cache": tmp_path / "c16"},
    }.items():
        argv = sft_argv(
            base_dir,
            annotations,
            tmp_path / name,
            max_train_samples=4,
            max_steps=3,
            save_strategy="no",
            **extra,
        )
        trainer = run_sft("stage1", *parse_args("stage1", argv))
        weights[name] = _state(trainer.model.token_mining)
        weights[name + "_losses"] = torch.tensor(_losses(tmp_path / name))
    for k, v in weights["towers"].items():
        torch.testing.assert_close(weights["cache_fp32"][k], v, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weights["cache_fp32_losses"], weights["towers_losses"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weights["cache_bf16_losses"], weights["towers_losses"], rtol=2e-2, atol=2e-2)


class _Crash(TrainerCallback):
    """Kill the run (an exception, as a crash would) right after the step-N checkpoint."""

    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step + 1:
            raise KeyboardInterrupt("simulated crash")


def test_lora_resume_equals_uninterrupted_and_merge_equals_adapter(base_dir, annotations, tmp_path):
    common = {"max_train_samples": 6, "max_steps": 6, "save_steps": 2, "gradient_accumulation_steps": 2,
              "feature_cache": tmp_path / "cache", "use_peft": "true", "lora_r": 8, "lora_alpha": 16}  # fmt: skip
    full = run_sft(
        "stage2", *parse_args("stage2", sft_argv(base_dir, annotations, tmp_path / "full", **common))
    )
    resumed_dir = tmp_path / "resumed"
    argv = sft_argv(base_dir, annotations, resumed_dir, **common)
    with pytest.raises(KeyboardInterrupt):
        run_sft("stage2", *parse_args("stage2", argv), callbacks=[_Crash(4)])
    assert (resumed_dir / "checkpoint-4").exists() and not (resumed_dir / "checkpoint-6").exists()
    resumed = run_sft("stage2", *parse_args("stage2", argv))
    a = {k: v for k, v in full.model.state_dict().items() if "lora_" in k or "modules_to_save" in k}
    b = {k: v for k, v in resumed.model.state_dict().items() if "lora_" in k or "modules_to_save" in k}
    assert a.keys() == b.keys() and any("token_mining.modules_to_save" in k for k in a)
    for k in a:
        assert torch.equal(b[k], a[k]), k  # bit for bit
    assert [json.loads(x)["step"] for x in (resumed_dir / "log.jsonl").read_text().splitlines()][:6] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]

    # LoRA targets the LM only; TokenMining starts from the loaded weights (not re-initialised).
    names = [n for n, p in full.model.named_parameters() if p.requires_grad]
    assert all(".language_model." in n for n in names if "lora_" in n)
    base, processor = load_model_and_processor(base_dir)
    trainer = build_trainer(
        "stage2", *parse_args("stage2", sft_argv(base_dir, annotations, tmp_path / "x", **common))
    )
    for k, v in base.token_mining.state_dict().items():
        torch.testing.assert_close(
            trainer.model.base_model.model.token_mining.modules_to_save["default"].state_dict()[k],
            v,
            rtol=0,
            atol=0,
        )

    # Unmerged adapter (peft) vs merged Hub-style folder (AutoModel + trust_remote_code).
    from peft import PeftModel
    from transformers import AutoModel

    adapter_model = PeftModel.from_pretrained(base, str(tmp_path / "full")).eval()
    subprocess.run([sys.executable, str(REPO / "train" / "merge_lora.py"), "--adapter", str(tmp_path / "full"),
                    "--out", str(tmp_path / "merged")], check=True, cwd=REPO)  # fmt: skip
    merged = AutoModel.from_pretrained(str(tmp_path / "merged"), trust_remote_code=True).eval()
    assert (tmp_path / "merged" / "modeling_hilight.py").exists()
    rows = load_rows(annotations, limit=2).to_list()
    batch = HiLightCollator(processor)(rows)
    batch.pop("labels")
    with torch.no_grad():
        torch.testing.assert_close(
            merged(**batch).logits, adapter_model(**batch).logits, rtol=1e-4, atol=1e-4
        )


def test_stage2_full_finetune_and_stage0_towers(base_dir, annotations, engine_data, tmp_path):
    out = tmp_path / "s2"
    argv = sft_argv(base_dir, annotations, out, max_train_samples=4, max_steps=2, save_strategy="no",
                    feature_cache=tmp_path / "cache", train_token_mining="false")  # fmt: skip
    trainer = run_sft("stage2", *parse_args("stage2", argv))
    base, _ = load_model_and_processor(base_dir)
    trained, _ = load_model_and_processor(out)
    for name in ("video_tower", "image_tower", "token_mining"):
        for k, v in getattr(base, name).state_dict().items():
            assert torch.equal(getattr(trained, name).state_dict()[k], v), f"{name}.{k}"
    assert not torch.equal(base.language_model.model.layers[0].mlp.up_proj.weight,
                           trained.language_model.model.layers[0].mlp.up_proj.weight)  # fmt: skip
    assert trainer.state.global_step == 2

    import stage0_towers  # train/ is on sys.path (pytest's pythonpath)

    out0 = tmp_path / "s0"
    argv0 = sft_argv(None, None, out0, max_steps=2, per_device_train_batch_size=3, save_strategy="no")[4:]
    stage0_towers.main(
        ["--captions", str(engine_data / "captions.jsonl"), "--model_name_or_path", str(base_dir), *argv0]
    )
    tuned = HiLightForConditionalGeneration.from_pretrained(str(out0))
    assert not torch.equal(tuned.video_tower.class_embedding, base.video_tower.class_embedding)
    assert not torch.equal(
        tuned.image_tower.text_model.token_embedding.weight,
        base.image_tower.text_model.token_embedding.weight,
    )
    assert tuned.video_tower.logit_scale.item() != base.video_tower.logit_scale.item()
    assert torch.equal(tuned.token_mining.output_fc1.weight, base.token_mining.output_fc1.weight)
    assert all(
        json.loads(x)["loss"] > 0 for x in (out0 / "log.jsonl").read_text().splitlines() if '"loss"' in x
    )


def test_ddp_two_gloo_processes_match_one_process(base_dir, annotations, tmp_path):
    cache = tmp_path / "cache"
    worker = str(REPO / "tests" / "_train_utils.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "train")}
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    subprocess.run([sys.executable, worker, str(base_dir), annotations, str(cache), str(single), "4", "3"],
                   check=True, env=env, cwd=REPO)  # fmt: skip
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
    ]
    subprocess.run([*torchrun, worker, str(base_dir), annotations, str(cache), str(ddp), "2", "3"],
                   check=True, env=env, cwd=REPO)  # fmt: skip
    one = load_file(single / "token_mining_rank0.safetensors")
    r0, r1 = (
        load_file(ddp / "token_mining_rank0.safetensors"),
        load_file(ddp / "token_mining_rank1.safetensors"),
    )
    for k in one:
        assert torch.equal(r0[k], r1[k]), k
        torch.testing.assert_close(r0[k], one[k], rtol=1e-4, atol=1e-5)
    base, _ = load_model_and_processor(base_dir)
    assert not torch.equal(one["output_fc1.weight"], base.token_mining.output_fc1.weight)


# -------------------------------------------------------------------------------------------- configs


TRAINER_CONFIGS = sorted(  # the accelerate launch configs are tested in test_sharded.py
    p
    for p in (REPO / "train" / "configs").rglob("*.yaml")
    if p.stem != "ablations" and p.parent.name != "accelerate"
)


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_training_on_a_cpu_without_bf16_instructions_defaults_to_fp32(monkeypatch, fast_bf16):
    monkeypatch.setattr(stages, "cpu_has_fast_bf16", lambda: fast_bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    _, args, _ = parse_args("stage2", ["--config", str(REPO / "train/configs/tiny/stage2.yaml"),
                                       "--model_name_or_path", "m", "--train_data", "d.json", "--output_dir", "o"])  # fmt: skip
    assert (
        args.use_cpu and args.bf16 == fast_bf16
    )  # the config asks for bf16; emulated bf16 is slower than fp32
    forced = with_device_default(["--bf16", "true"])
    assert (
        forced.count("--bf16") == 1 and forced[forced.index("--bf16") + 1] == "true"
    )  # the command line wins


@pytest.mark.parametrize("path", TRAINER_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_config_parses_with_overrides(path, tmp_path):
    rel = path.relative_to(REPO / "train" / "configs")
    required = ["--output_dir", str(tmp_path), "--learning_rate", "0.123"]
    if path.stem == "stage0":
        import stage0_towers
        from transformers import TrainingArguments
        from trl import TrlParser

        parser = TrlParser((stage0_towers.Stage0Arguments, TrainingArguments))
        argv = with_device_default(["--config", str(path), "--captions", "c.jsonl", *required])
        args, training_args = parser.parse_args_and_config(argv)
    elif path.stem == "stage0_perception":
        import stage0_perception
        from transformers import TrainingArguments
        from trl import TrlParser

        parser = TrlParser((stage0_perception.PerceptionArguments, TrainingArguments))
        argv = with_device_default(["--config", str(path), "--tokenizer_corpus", "a.json", *required])
        args, training_args = parser.parse_args_and_config(argv)
        assert args.scenes > 0 and args.scene_frames
    else:
        stage = "stage1" if path.stem == "stage1" else "stage2"
        args, training_args, model_args = parse_args(
            stage, ["--config", str(path), "--model_name_or_path", "m", "--train_data", "d.json", *required]
        )
        assert model_args.model_name_or_path == "m"
    assert training_args.learning_rate == 0.123  # the command line overrides the file
    assert training_args.lr_scheduler_type == "cosine" and training_args.warmup_steps > 0
    assert not training_args.gradient_checkpointing  # TRL's default is on: every config turns it off
    if rel.parts[0] == "paper":  # the official scripts' optimiser settings
        official = {"stage1": (20, 5, 1e-4), "stage2": (3, 5, 1e-3)}[path.stem]
        got = (training_args.num_train_epochs, training_args.per_device_train_batch_size)
        assert (*got, float(yaml.safe_load(path.read_text())["learning_rate"])) == official
        assert training_args.warmup_steps == 0.002 and training_args.max_length == 2048
    if (rel.parts[0] == "paper" and path.stem == "stage2") or path.stem == "new_sport_lora":
        assert (model_args.use_peft, model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout) == (
            True, 64, 32, 0.05,
        )  # fmt: skip
        assert args.train_token_mining


def test_what_trains_is_decided_by_one_rule_per_stage(base_dir):
    model, _ = load_model_and_processor(base_dir)
    groups = lambda names: {n.split(".")[0] for n in names}  # noqa: E731
    names = set_trainable_params(model, *trainable_globs("stage1"))
    assert groups(names) == {"token_mining"}
    names = set_trainable_params(
        model, *trainable_globs("stage2", train_token_mining=False, train_towers=True)
    )
    assert groups(names) == {"language_model", "video_tower", "image_tower"}
    assert not [
        n for n in names if ".text_model." in n or n.endswith("logit_scale")
    ]  # contrastive-only parts
    names = set_trainable_params(model, *trainable_globs("contrastive"))
    assert any(".text_model." in n for n in names) and groups(names) == {"video_tower", "image_tower"}
    set_trainable_params(model, *trainable_globs("perception"))
    assert groups(check_trainable(model, *trainable_globs("perception"))) == {"video_tower", "image_tower"}
    model.language_model.requires_grad_(True)  # something else unfrozen: the check names it
    with pytest.raises(RuntimeError, match=r"would train that must not, e.g. \['language_model"):
        check_trainable(model, *trainable_globs("perception"))
    with pytest.raises(RuntimeError, match="nothing would train"):
        set_trainable_params(model, ("no_such_part.*",))
    with pytest.raises(ValueError, match="cannot be combined with LoRA"):
        trainable_globs("stage2", use_peft=True, train_towers=True)
    assert lm_linear_target_regex(model).startswith(r"language_model\.")


def test_cache_features_cli_caches_every_clip_of_a_dataset(base_dir, engine_data, tmp_path):
    import cache_features

    cache_features.main(
        ["--model", str(base_dir), "--data", str(engine_data / "captions.jsonl"), "--out", str(tmp_path)]
    )
    clips = len((engine_data / "captions.jsonl").read_text().splitlines())
    assert len(json.loads((tmp_path / "index.json").read_text())) == clips


# ------------------------------------------------------------------------------- frame cache, towers e2e


def test_frame_cache_gives_the_processors_pixels_exactly(base_dir, engine_data, tmp_path):
    from hilight_train.frame_cache import FrameCache, FrameCacheMismatchError, open_frame_cache

    video_processor = load_processor(base_dir).video_processor
    videos = sorted(str(p) for p in (engine_data / "videos").glob("*.mp4"))[:4]
    cache = open_frame_cache(tmp_path / "fc", video_processor, videos, workers=2, progress=False)
    assert cache.missing(videos) == [] and len(list((tmp_path / "fc").glob("*.npy"))) == 4
    from_files = video_processor(videos, return_tensors="pt")["pixel_values_videos"]
    from_cache = video_processor(cache.load(videos), return_tensors="pt")["pixel_values_videos"]
    assert from_cache.shape == from_files.shape and torch.equal(from_cache, from_files)
    other = copy.deepcopy(video_processor)
    other.num_frames = video_processor.num_frames + 1
    with pytest.raises(FrameCacheMismatchError, match="num_frames"):
        FrameCache(tmp_path / "fc", other)
    fresh = FrameCache(tmp_path / "fc2", video_processor)  # a clip not cached yet is decoded on demand
    assert torch.equal(
        video_processor(fresh.load(videos[:1]), return_tensors="pt")["pixel_values_videos"], from_files[:1]
    )


def test_merge_by_video_makes_one_conversation_per_clip(annotations):
    from hilight_train.data import load_samples, merge_by_video

    samples = [s for s in load_samples(annotations) if s.extra.get("split") == "train"]
    merged = merge_by_video(samples, seed=0)
    assert len(merged) == len({s.video for s in samples}) < len(samples)

    def pairs(messages):
        texts = [
            m["content"] if isinstance(m["content"], str) else m["content"][-1]["text"] for m in messages
        ]
        return sorted(zip(texts[0::2], texts[1::2], strict=True))

    for m in merged:
        members = [s for s in samples if s.video == m.video]
        assert [x["role"] for x in m.messages] == ["user", "assistant"] * len(members)
        assert isinstance(m.messages[0]["content"], list) and m.messages[0]["content"][0] == {"type": "video"}
        assert all(isinstance(x["content"], str) for x in m.messages[1:])  # the video comes once
        assert pairs(m.messages) == sorted(p for s in members for p in pairs(s.messages))
    again = merge_by_video(samples, seed=0)
    assert [m.messages for m in again] == [m.messages for m in merged]
    reseeded = merge_by_video(samples, seed=1)
    assert [m.messages for m in reseeded] != [m.messages for m in merged]


def test_merge_orders_give_each_clip_conversations_in_other_orders(annotations):
    from hilight_train.training import load_rows

    one = load_rows(annotations, split="train", merge_videos=True, seed=0)
    three = load_rows(annotations, split="train", merge_videos=True, seed=0, merge_orders=3)
    assert len(three) == 3 * len(one) and len(set(three["id"])) == len(three)
    assert three["messages_json"][: len(one)] == one["messages_json"]  # the first order is merge_videos' own
    for k in (1, 2):
        block = three.select(range(k * len(one), (k + 1) * len(one)))
        assert block["video"] == one["video"]
        assert sorted(block["messages_json"]) != sorted(one["messages_json"])  # another question order
    with pytest.raises(ValueError, match="merge_orders"):
        load_rows(annotations, split="train", merge_videos=True, merge_orders=0)


def test_stage2_trains_the_towers_end_to_end_from_the_frame_cache(base_dir, annotations, tmp_path):
    out = tmp_path / "e2e"
    argv = sft_argv(base_dir, annotations, out, max_train_samples=12, max_steps=2, save_strategy="no",
                    use_feature_cache="false", use_frame_cache="true", frame_cache=tmp_path / "fc",
                    merge_videos="true", train_towers="true", max_length=4096)  # fmt: skip
    trainer = run_sft("stage2", *parse_args("stage2", argv))
    assert trainer.state.global_step == 2 and len(list((tmp_path / "fc").glob("*.npy"))) >= 1
    base, _ = load_model_and_processor(base_dir)
    trained, _ = load_model_and_processor(out)
    changed = {
        "video_tower.patch_embedding.proj.weight": True,  # the tiny preset's conv stem
        "image_tower.patch_embedding.proj.weight": True,
        "token_mining.output_fc1.weight": True,
        "language_model.model.layers.0.mlp.up_proj.weight": True,
        "video_tower.text_model.token_embedding.weight": False,  # contrastive-only parts stay as they were
        "image_tower.text_model.token_embedding.weight": False,
        "video_tower.logit_scale": False,
    }
    base_state, trained_state = base.state_dict(), trained.state_dict()
    for name, should_change in changed.items():
        assert (not torch.equal(base_state[name], trained_state[name])) == should_change, name

    with pytest.raises(SystemExit, match="use_feature_cache false"):
        build_trainer(
            "stage2", *parse_args("stage2", sft_argv(base_dir, annotations, out, train_towers="true"))
        )


def test_tower_probe_features_and_linear_probe(base_dir, engine_data):
    from probe_towers import clip_features, probe  # train/ is on sys.path

    model, processor = load_model_and_processor(base_dir)
    videos = sorted(str(p) for p in (engine_data / "videos").glob("*.mp4"))[:3]
    feats = clip_features(model.eval(), processor, videos, None, batch=2)
    T, Dv = model.config.num_frames, model.config.video_config.hidden_size
    assert feats["video_special"].shape == (3, (1 + model.config.video_config.num_proxy_tokens) * Dv)
    assert feats["video_frames"].shape == (3, T * Dv)
    assert feats["image_frames"].shape == (3, T * model.config.image_config.projection_dim)
    assert feats["vision_tokens"].shape == (3, model.config.text_config.hidden_size)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 16, generator=g)
    y = (x[:, 3] > 0).long()  # linearly separable: the probe finds it
    assert probe(x[:300], y[:300], x[300:], y[300:], 2) > 0.95
    noise = torch.randint(0, 2, (400,), generator=g)  # labels unrelated to x: no better than chance
    assert probe(x[:300], noise[:300], x[300:], noise[300:], 2) < 0.7


def test_export_drops_only_the_tower_text_encoders_and_casts(base_dir, tmp_path):
    from hilight_train.model_folder import export_inference_folder

    export_inference_folder(base_dir, tmp_path / "export")
    full = load_file(str(base_dir / "model.safetensors"))
    slim = load_file(str(tmp_path / "export" / "model.safetensors"))
    dropped = {k for k in full if ".text_model." in k or k.endswith("logit_scale")}
    assert dropped and set(slim) == set(full) - dropped
    assert all(v.dtype == torch.bfloat16 for v in slim.values())
    assert all(torch.equal(slim[k], full[k].to(torch.bfloat16)) for k in slim)
    model = HiLightForConditionalGeneration.from_pretrained(str(tmp_path / "export"))
    assert model.video_tower.text_model is None and model.image_tower.text_model is None


def test_recipe_runs_an_in_process_step_once_and_times_it(tmp_path):
    from hilight_train.pipeline import DONE, Recipe

    calls = []

    def make(folder):
        folder.mkdir()
        calls.append(folder)

    recipe = Recipe(tmp_path / "timings.json")
    recipe.call("export", tmp_path / "out", make, tmp_path / "out")
    again = Recipe(tmp_path / "timings.json")  # a re-run resumes: the finished step is skipped
    again.call("export", tmp_path / "out", make, tmp_path / "out")
    assert calls == [tmp_path / "out"] and (tmp_path / "out" / DONE).is_file()
    assert "export" in json.loads((tmp_path / "timings.json").read_text())


def test_a_script_step_runs_once_and_a_rerun_skips_it(tmp_path):
    from hilight_train.pipeline import DONE, Recipe

    out, script = tmp_path / "data", "make_data.py"
    common = ["--out", out, "--seed", 0, "--games", "9ball", "--workers", 1, "--width", 64, "--height", 48]
    recipe = Recipe(tmp_path / "timings.json")
    recipe.step("data", out, script, *common, "--clips", 2)
    first, events = (out / DONE).read_text(), (out / "events.jsonl").stat().st_mtime_ns
    again = Recipe(tmp_path / "timings.json")  # resumed: the step is done, its script does not run again
    again.step("data", out, script, *common, "--clips", 2)
    records = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert len(records) == 2 and (out / DONE).read_text() == first and "--clips 2" in first
    assert (out / "events.jsonl").stat().st_mtime_ns == events
    assert set(json.loads((tmp_path / "timings.json").read_text())) == {"data"}
