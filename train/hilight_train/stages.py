"""Stage 1 (TokenMining alignment) and stage 2 (instruction tuning, LoRA optional) on TRL's SFTTrainer.

``train/stage1_align.py`` and ``train/stage2_sft.py`` are thin CLIs over ``run_sft``. Both stages keep the
vision towers frozen, so by default they train from the feature cache (``hilight_train.cache``): the towers
run once per clip before training (on the main process, resumable) and never during it.

What trains (checked by ``assert_trainable_only`` before the first step):
- stage 1: TokenMining only;
- stage 2 with ``--lora``: LoRA adapters on every linear layer of the LM except the head (paper: r=64,
  alpha=32, dropout 0.05), plus TokenMining as a full trainable copy of its loaded stage-1 weights
  (``--train_token_mining``, peft ``modules_to_save``);
- stage 2 without ``--lora``: the whole LM (full fine-tuning of a small LM), plus TokenMining if asked.

Outputs in ``output_dir``: checkpoints (atomic), ``log.jsonl``, ``loss_curve.png``, and the final model: a
Hub-style folder (stage 1, full fine-tuning) or a peft adapter folder (LoRA; ``train/merge_lora.py`` merges
it into a Hub-style folder).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from trl import SFTConfig, TrlParser

from .cache import build_feature_cache, cache_fingerprint, fingerprint_id
from .collator import HiLightCollator, drop_long_rows
from .frame_cache import open_frame_cache
from .health import TokenHealthCallback
from .training import (
    HiLightSFTTrainer,
    assert_trainable_only,
    default_callbacks,
    freeze_tower_text_encoders,
    last_checkpoint,
    load_model_and_processor,
    load_rows,
    lora_config,
    save_hub_folder,
)

STAGES = ("stage1", "stage2")


@dataclass
class SFTScriptArguments:
    """Model, data and feature-cache arguments of stages 1 and 2 (TRL's ``SFTConfig`` holds the rest)."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Hub-style HiLight folder or Hub id to start from."}
    )
    train_data: str | None = field(
        default=None, metadata={"help": "Conversation file (LLaVA/HiLight JSON or VideoInstruct q/a)."}
    )
    video_root: str | None = field(
        default=None,
        metadata={"help": "Folder the video paths are relative to (default: the file's folder)."},
    )
    split: str | None = field(
        default="train", metadata={"help": "Keep records of this split only ('' = all)."}
    )
    question_types: str | None = field(
        default=None, metadata={"help": "Comma list of record `type`s to keep (default: all)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use the first N samples only."})
    eval_split: str | None = field(
        default=None,
        metadata={
            "help": "Split of the same file to evaluate the loss on (with --eval_strategy steps|epoch)."
        },
    )
    use_feature_cache: bool = field(
        default=True,
        metadata={
            "help": "Train from cached tower outputs (false: run the towers every step, the official way)."
        },
    )
    feature_cache: str | None = field(
        default=None,
        metadata={"help": "Cache folder (default: <train_data folder>/feature_cache/<fingerprint id>)."},
    )
    cache_batch_size: int = field(
        default=4, metadata={"help": "Clips per tower forward when building the cache."}
    )
    use_frame_cache: bool = field(
        default=False,
        metadata={
            "help": "When the towers run (no feature cache): read decoded frames from a frame cache instead of "
            "decoding the files every step (the same pixel values; hilight_train.frame_cache)."
        },
    )
    frame_cache: str | None = field(
        default=None, metadata={"help": "Frame cache folder (default: <train_data folder>/frame_cache)."}
    )
    merge_videos: bool = field(
        default=False,
        metadata={
            "help": "One multi-turn conversation per video (all its questions, seeded order): the towers run "
            "once per clip per step instead of once per question."
        },
    )
    cache_dtype: str = field(
        default="bfloat16",
        metadata={"help": "Storage dtype of cached features: bfloat16 or float32 (parity)."},
    )
    resume: bool = field(
        default=True, metadata={"help": "Continue from the last finished checkpoint in output_dir, if any."}
    )


@dataclass
class Stage2ScriptArguments(SFTScriptArguments):
    """Stage-2 extras: LoRA (paper defaults) or full fine-tuning, and whether TokenMining trains."""

    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of the whole LM."})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank (paper: 64)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (paper: 32)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (paper: 0.05)."})
    train_token_mining: bool = field(
        default=True, metadata={"help": "Keep training TokenMining (from its loaded stage-1 weights)."}
    )
    train_towers: bool = field(
        default=False,
        metadata={
            "help": "Also train both vision towers (their vision parts) end to end. Not in the paper (its towers "
            "are pretrained and frozen); for towers trained from scratch. Needs --use_feature_cache false."
        },
    )


def with_device_default(argv: list[str] | None) -> list[str]:
    """Add ``--use_cpu true`` on a machine without an accelerator (unless given), so configs that ask for
    bf16 run on CPU (bf16 autocast) instead of failing TrainingArguments' GPU check."""
    argv = list(sys.argv[1:] if argv is None else argv)
    has_accelerator = torch.cuda.is_available() or torch.backends.mps.is_available()
    if not has_accelerator and "--use_cpu" not in argv:
        argv += ["--use_cpu", "true"]
    return argv


def parse_args(stage: str, argv: list[str] | None = None) -> tuple[Any, SFTConfig]:
    """``--config file.yaml`` plus command-line overrides (TRL's parser) -> (script args, SFTConfig)."""
    script_cls = Stage2ScriptArguments if stage == "stage2" else SFTScriptArguments
    parser = TrlParser((script_cls, SFTConfig))
    script_args, training_args = parser.parse_args_and_config(with_device_default(argv))
    for name in ("model_name_or_path", "train_data"):
        if not getattr(script_args, name):
            raise SystemExit(f"--{name} is required (on the command line or in the --config file)")
    return script_args, training_args


def _prepare_training_args(args: SFTConfig) -> SFTConfig:
    # Rows are {"id", "messages_json", "video"}: the HiLight collator tokenizes them, TRL must not.
    args.remove_unused_columns = False
    args.dataset_kwargs = {**(args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    return args


def default_cache_dir(
    train_data: str | Path,
    model: Any,
    processor: Any,
    bf16: bool = False,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """``<data folder>/feature_cache/<fingerprint id>``: one folder per towers, processor and precision."""
    fingerprint = cache_fingerprint(model, processor, bf16, dtype)
    return Path(train_data).resolve().parent / "feature_cache" / fingerprint_id(fingerprint)


def build_trainer(
    stage: str, script_args: Any, training_args: SFTConfig, callbacks=None
) -> HiLightSFTTrainer:
    """Model, data, cache, trainability and trainer for ``stage`` ("stage1" or "stage2")."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    training_args = _prepare_training_args(training_args)
    train_towers = getattr(script_args, "train_towers", False)
    if train_towers and script_args.use_feature_cache:
        raise SystemExit(
            "--train_towers needs --use_feature_cache false (cached features are of frozen towers)"
        )
    if train_towers and script_args.lora:
        raise SystemExit("--train_towers is for full fine-tuning; it cannot be combined with --lora")
    model, processor = load_model_and_processor(script_args.model_name_or_path)
    types = [t for t in (script_args.question_types or "").split(",") if t]
    rows = load_rows(
        script_args.train_data,
        script_args.video_root,
        split=script_args.split or None,
        types=types,
        limit=script_args.max_train_samples,
        merge_videos=script_args.merge_videos,
        seed=training_args.seed,
    )
    rows, dropped = drop_long_rows(rows, processor, training_args.max_length)
    if dropped:
        if len(rows) == 0:
            raise SystemExit(
                f"every training row is longer than max_length={training_args.max_length} tokens"
            )
        print(f"dropped {dropped} training rows longer than max_length={training_args.max_length} tokens")
    eval_rows = None
    if script_args.eval_split:
        eval_rows = load_rows(
            script_args.train_data,
            script_args.video_root,
            split=script_args.eval_split,
            types=types,
            merge_videos=script_args.merge_videos,
            seed=training_args.seed,
        )
        eval_rows, dropped = drop_long_rows(eval_rows, processor, training_args.max_length)
        if dropped:
            print(
                f"dropped {dropped} evaluation rows longer than max_length={training_args.max_length} tokens"
            )
    all_videos = sorted(
        {v for v in rows["video"] if v} | {v for v in (eval_rows or {"video": []})["video"] if v}
    )
    cache = frames = None
    if script_args.use_feature_cache:
        bf16 = bool(training_args.bf16)
        dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[script_args.cache_dtype]
        root = script_args.feature_cache or default_cache_dir(
            script_args.train_data, model, processor, bf16, dtype
        )
        with PartialState().main_process_first():  # rank 0 builds; the others then find everything cached
            cache = build_feature_cache(
                model,
                processor,
                all_videos,
                root,
                batch_size=script_args.cache_batch_size,
                bf16=bf16,
                progress=PartialState().is_main_process,
                dtype=dtype,
            )
    elif script_args.use_frame_cache:
        root = script_args.frame_cache or Path(script_args.train_data).resolve().parent / "frame_cache"
        with PartialState().main_process_first():
            frames = open_frame_cache(
                root, processor.video_processor, all_videos, progress=PartialState().is_main_process
            )

    peft_config = None
    model.set_trainable(video_tower=False, image_tower=False, token_mining=False, language_model=False)
    if stage == "stage1":
        model.set_trainable(token_mining=True)
        assert_trainable_only(model, ["token_mining."])
    elif script_args.lora:
        model.set_trainable(token_mining=False)
        peft_config = lora_config(
            model,
            r=script_args.lora_r,
            alpha=script_args.lora_alpha,
            dropout=script_args.lora_dropout,
            train_token_mining=script_args.train_token_mining,
        )
    else:
        model.set_trainable(language_model=True, token_mining=script_args.train_token_mining)
        allowed = ["language_model."] + (["token_mining."] if script_args.train_token_mining else [])
        if train_towers:
            model.set_trainable(video_tower=True, image_tower=True)
            freeze_tower_text_encoders(model)
            allowed += ["video_tower.", "image_tower."]
        names = assert_trainable_only(model, allowed)
        stray = [n for n in names if ".text_model." in n or n.endswith("logit_scale")]
        if stray:
            raise RuntimeError(f"tower text encoders would train in stage 2: {stray[:5]}")

    trainer = HiLightSFTTrainer(
        model=model,
        args=training_args,
        data_collator=HiLightCollator(processor, cache, frames, max_length=training_args.max_length),
        train_dataset=rows,
        eval_dataset=eval_rows,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=(callbacks or []) + default_callbacks(f"HiLight {stage}") + [TokenHealthCallback()],
    )
    if peft_config is not None:
        allowed = ["lora_A.", "lora_B."] + (
            ["token_mining.modules_to_save."] if script_args.train_token_mining else []
        )
        names = assert_trainable_only(trainer.model, allowed)
        stray = [n for n in names if "lora_" in n and ".language_model." not in n]
        if stray:
            raise RuntimeError(f"LoRA adapters outside the language model: {stray[:5]}")
    return trainer


def run_sft(stage: str, script_args: Any, training_args: SFTConfig, callbacks=None) -> HiLightSFTTrainer:
    """Train ``stage`` (resuming from the last checkpoint when asked) and write the final model."""
    trainer = build_trainer(stage, script_args, training_args, callbacks)
    checkpoint = last_checkpoint(training_args.output_dir) if script_args.resume else None
    trainer.train(resume_from_checkpoint=checkpoint)
    out = Path(training_args.output_dir)
    if getattr(script_args, "lora", False):
        trainer.save_model(str(out))  # adapter_config.json + adapter_model.safetensors + processor files
    elif trainer.accelerator.is_main_process:
        save_hub_folder(trainer.accelerator.unwrap_model(trainer.model), trainer.processing_class, out)
    trainer.accelerator.wait_for_everyone()
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return trainer
