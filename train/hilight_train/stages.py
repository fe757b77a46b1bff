"""Stage 1 (TokenMining alignment) and stage 2 (instruction tuning, LoRA optional) on TRL's SFTTrainer.

``train/stage1_align.py`` and ``train/stage2_sft.py`` are thin CLIs over ``run_sft``. Both stages keep the
vision towers frozen, so by default they train from the feature cache (``hilight_train.cache``): the towers
run once per clip before training (on the main process, resumable) and never during it.

Arguments come from three dataclasses, parsed by TRL's ``TrlParser`` from ``--config file.yaml`` and the
command line: the script's own (data, caches), TRL's ``SFTConfig`` (training) and TRL's ``ModelConfig``
(``--model_name_or_path``, ``--dtype``, ``--model_revision`` and LoRA: ``--use_peft``, ``--lora_r``, ...).

What trains (``training.trainable_globs``, checked before the first step):
- stage 1: TokenMining only;
- stage 2 with ``--use_peft``: LoRA adapters (TRL's ``get_peft_config``) on every linear layer of the LM except
  the head unless ``--lora_target_modules`` says otherwise (paper: r=64, alpha=32, dropout 0.05), plus
  TokenMining as a full trainable copy of its loaded stage-1 weights (``--train_token_mining``, peft
  ``modules_to_save``);
- stage 2 without it: the whole LM (full fine-tuning of a small LM), plus TokenMining if asked.

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
from trl import ModelConfig, SFTConfig, TrlParser

from hilight.modeling_hilight import cpu_has_fast_bf16

from .cache import build_feature_cache, cache_fingerprint, fingerprint_id
from .collator import HiLightCollator, drop_long_rows
from .frame_cache import open_frame_cache
from .health import TokenHealthCallback
from .training import (
    HiLightSFTTrainer,
    check_trainable,
    default_callbacks,
    last_checkpoint,
    load_model_and_processor,
    load_rows,
    lora_config,
    save_hub_folder,
    set_trainable_params,
    trainable_globs,
)

STAGES = ("stage1", "stage2")


@dataclass
class SFTScriptArguments:
    """Data and feature-cache arguments of stages 1 and 2 (TRL's ``SFTConfig`` and ``ModelConfig`` hold the
    rest)."""

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
    merge_orders: int = field(
        default=1,
        metadata={
            "help": "With --merge_videos: conversations per video, each in another seeded question order."
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
    """Stage-2 extras: whether TokenMining and the towers train (LoRA is TRL's ``ModelConfig.use_peft``)."""

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
    """Command-line defaults for a machine without an accelerator, each unless the command line gives it:
    ``--use_cpu true``, so configs that ask for bf16 run on the CPU (bf16 autocast) instead of failing
    TrainingArguments' GPU check; and ``--bf16 false`` on a CPU without bf16 instructions, where bf16 autocast
    is emulated and many times slower than fp32 (``--bf16 true`` keeps it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    has_accelerator = torch.cuda.is_available() or torch.backends.mps.is_available()
    if not has_accelerator and "--use_cpu" not in argv:
        argv += ["--use_cpu", "true"]
    if not has_accelerator and not cpu_has_fast_bf16() and "--bf16" not in argv:
        print(
            "this CPU has no bf16 instructions: training in fp32 (--bf16 false; --bf16 true forces bf16)",
            file=sys.stderr,
        )
        argv += ["--bf16", "false"]
    return argv


def parse_args(stage: str, argv: list[str] | None = None) -> tuple[Any, SFTConfig, ModelConfig]:
    """``--config file.yaml`` plus command-line overrides (TRL's parser) -> (script args, SFTConfig, ModelConfig)."""
    script_cls = Stage2ScriptArguments if stage == "stage2" else SFTScriptArguments
    parser = TrlParser((script_cls, SFTConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config(with_device_default(argv))
    if not model_args.model_name_or_path:
        raise SystemExit("--model_name_or_path is required (on the command line or in the --config file)")
    if not script_args.train_data:
        raise SystemExit("--train_data is required (on the command line or in the --config file)")
    if model_args.load_in_8bit or model_args.load_in_4bit:
        raise SystemExit("--load_in_8bit/--load_in_4bit (bitsandbytes) are not supported for HiLight")
    if model_args.attn_implementation:
        raise SystemExit("--attn_implementation is not supported: HiLight's LM runs PyTorch SDPA")
    if model_args.use_peft and stage != "stage2":
        raise SystemExit(f"--use_peft (LoRA) is for stage 2; {stage} trains TokenMining itself")
    return script_args, training_args, model_args


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


def _check_stage_args(stage: str, script_args: Any, model_args: ModelConfig) -> None:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if getattr(script_args, "train_towers", False):
        if script_args.use_feature_cache:
            raise SystemExit(
                "--train_towers needs --use_feature_cache false (cached features are of frozen towers)"
            )
        if model_args.use_peft:
            raise SystemExit("--train_towers is for full fine-tuning; it cannot be combined with --use_peft")


def _load_split(
    script_args: Any, training_args: SFTConfig, processor: Any, split: str | None, what: str, **kw
):
    """Rows of one split, without the ones longer than ``max_length`` (counted, never cut)."""
    types = [t for t in (script_args.question_types or "").split(",") if t]
    rows = load_rows(
        script_args.train_data,
        script_args.video_root,
        split=split,
        types=types,
        merge_videos=script_args.merge_videos,
        merge_orders=script_args.merge_orders,
        seed=training_args.seed,
        **kw,
    )
    rows, dropped = drop_long_rows(rows, processor, training_args.max_length)
    if dropped and len(rows) == 0:
        raise SystemExit(f"every {what} row is longer than max_length={training_args.max_length} tokens")
    if dropped:
        print(f"dropped {dropped} {what} rows longer than max_length={training_args.max_length} tokens")
    return rows


def _open_caches(script_args: Any, training_args: SFTConfig, model: Any, processor: Any, videos: list[str]):
    """(feature cache, frame cache): at most one of them, built on the main process first."""
    state = PartialState()
    if script_args.use_feature_cache:
        bf16 = bool(training_args.bf16)
        dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[script_args.cache_dtype]
        root = script_args.feature_cache or default_cache_dir(
            script_args.train_data, model, processor, bf16, dtype
        )
        with state.main_process_first():  # rank 0 builds; the others then find everything cached
            cache = build_feature_cache(
                model,
                processor,
                videos,
                root,
                batch_size=script_args.cache_batch_size,
                bf16=bf16,
                progress=state.is_main_process,
                dtype=dtype,
            )
        return cache, None
    if script_args.use_frame_cache:
        root = script_args.frame_cache or Path(script_args.train_data).resolve().parent / "frame_cache"
        with state.main_process_first():
            frames = open_frame_cache(root, processor.video_processor, videos, progress=state.is_main_process)
        return None, frames
    return None, None


def _model_dtype(model_args: ModelConfig) -> torch.dtype | str:
    if model_args.dtype in (None, "auto"):
        return "auto"
    return getattr(torch, model_args.dtype)


def build_trainer(
    stage: str, script_args: Any, training_args: SFTConfig, model_args: ModelConfig, callbacks=None
) -> HiLightSFTTrainer:
    """Model, data, caches, trainability and trainer for ``stage`` ("stage1" or "stage2")."""
    _check_stage_args(stage, script_args, model_args)
    training_args = _prepare_training_args(training_args)
    model, processor = load_model_and_processor(
        model_args.model_name_or_path, _model_dtype(model_args), model_args.model_revision
    )
    rows = _load_split(
        script_args, training_args, processor, script_args.split or None, "training",
        limit=script_args.max_train_samples,
    )  # fmt: skip
    eval_rows = None
    if script_args.eval_split:
        eval_rows = _load_split(script_args, training_args, processor, script_args.eval_split, "evaluation")
    videos = sorted({v for v in rows["video"] if v} | {v for v in (eval_rows or {"video": []})["video"] if v})
    cache, frames = _open_caches(script_args, training_args, model, processor, videos)

    train_token_mining = stage == "stage1" or getattr(script_args, "train_token_mining", False)
    include, exclude = trainable_globs(
        stage,
        use_peft=model_args.use_peft,
        train_token_mining=train_token_mining,
        train_towers=getattr(script_args, "train_towers", False),
    )
    peft_config = None
    if model_args.use_peft:  # peft freezes the base model and adds what trains; checked below
        set_trainable_params(model, (), allow_none=True)
        peft_config = lora_config(model, model_args, train_token_mining)
    else:
        set_trainable_params(model, include, exclude)
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
    check_trainable(trainer.model, include, exclude)
    return trainer


def run_sft(
    stage: str, script_args: Any, training_args: SFTConfig, model_args: ModelConfig, callbacks=None
) -> HiLightSFTTrainer:
    """Train ``stage`` (resuming from the last checkpoint when asked) and write the final model."""
    trainer = build_trainer(stage, script_args, training_args, model_args, callbacks)
    checkpoint = last_checkpoint(training_args.output_dir) if script_args.resume else None
    trainer.train(resume_from_checkpoint=checkpoint)
    out = Path(training_args.output_dir)
    if model_args.use_peft:
        trainer.save_model(str(out))  # adapter_config.json + adapter_model.safetensors + processor files
    else:  # every process takes part in gathering sharded weights (FSDP, ZeRO-3); the main one writes them
        state_dict = trainer.accelerator.get_state_dict(trainer.model)
        if trainer.accelerator.is_main_process:
            model = trainer.accelerator.unwrap_model(trainer.model)
            save_hub_folder(model, trainer.processing_class, out, state_dict=state_dict)
    trainer.accelerator.wait_for_everyone()
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return trainer
