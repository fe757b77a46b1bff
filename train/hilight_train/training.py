"""What the HiLight training scripts share: data rows, model/processor I/O, trainability checks, the TRL
trainer subclass, atomic checkpoints, JSONL logs and the loss-curve PNG.

- Data: ``load_rows`` reads LLaVA/HiLight or VideoInstruct files through ``hilight_train.data`` into a
  ``datasets.Dataset`` of ``{"id", "messages_json", "video"}`` rows; ``HiLightCollator`` tokenizes them.
- What trains is decided in one place, ``trainable_globs`` (parameter-name globs per stage), applied by
  ``set_trainable_params`` and checked by ``check_trainable`` once peft has wrapped the model, so a stage can
  never train a part it should not.
- ``HiLightSFTTrainer`` is TRL's ``SFTTrainer`` with HiLight's loss (token-level cross-entropy over the
  labelled tokens, normalised by the tokens of the whole global batch, so gradient accumulation and DDP give
  the same update as one big batch) and checkpoints that appear atomically (written to a staging folder,
  then renamed). ``HiLightTrainer`` is the plain ``transformers.Trainer`` with the same checkpoints (stage 0).
- Resuming: the Trainer's checkpoints hold optimizer, scheduler, RNG states and the data position; the
  collators draw no random numbers; so a killed run resumed from its last checkpoint ends where an
  uninterrupted run ends (tests/test_train.py checks it).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import Trainer, TrainerCallback
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
from trl import SFTTrainer

import hilight_train
from hilight.modeling_hilight import HiLightForConditionalGeneration
from hilight.processing_hilight import HiLightProcessor

from .data import Sample, load_samples, merge_by_video

LOG_FILE = "log.jsonl"
LOSS_CURVE_FILE = "loss_curve.png"

# ---------------------------------------------------------------------------------------------------- data


def rows_from_samples(samples: Iterable[Sample]) -> Dataset:
    """``datasets.Dataset`` of ``{"id", "messages_json", "video"}`` (video "" for text-only samples)."""
    rows = {"id": [], "messages_json": [], "video": []}
    for s in samples:
        rows["id"].append(s.id)
        rows["messages_json"].append(json.dumps(s.messages))
        rows["video"].append(str(s.video) if s.video is not None else "")
    if not rows["id"]:
        raise ValueError("no training samples (check the data file and the split)")
    return Dataset.from_dict(rows)


def load_rows(
    path: str | Path,
    video_root: str | Path | None = None,
    split: str | None = None,
    types: Iterable[str] | None = None,
    limit: int | None = None,
    merge_videos: bool = False,
    seed: int = 0,
    merge_orders: int = 1,
) -> Dataset:
    """Training rows from a conversation file, optionally one ``split`` and some question ``types`` only;
    with ``merge_videos`` one multi-turn conversation per video (``hilight_train.data.merge_by_video``), or
    ``merge_orders`` of them, each in its own seeded question order (so each question type also comes first,
    as in a one-question prompt, for some clips)."""
    samples = load_samples(path, video_root)
    if split:
        samples = [s for s in samples if s.extra.get("split", split) == split]
    if types:
        wanted = set(types)
        samples = [s for s in samples if s.type in wanted]
    if limit is not None:
        samples = samples[:limit]
    if merge_orders < 1:
        raise ValueError(f"merge_orders must be at least 1, got {merge_orders}")
    if merge_videos:
        merged = [merge_by_video(samples, seed)]
        for k in range(1, merge_orders):  # the same conversations in other orders, ids told apart by "#k"
            merged.append(
                [dataclasses.replace(s, id=f"{s.id}#{k}") for s in merge_by_video(samples, seed + k)]
            )
        samples = [s for group in merged for s in group]
    return rows_from_samples(samples)


# ---------------------------------------------------------------------------------------------- model I/O


def load_model_and_processor(
    path: str | Path, dtype: torch.dtype = torch.float32, revision: str | None = None
) -> tuple[HiLightForConditionalGeneration, HiLightProcessor]:
    """A Hub-style HiLight folder (or Hub id) -> model (fp32 unless ``dtype`` says otherwise) and processor,
    with the repo's model code."""
    model = HiLightForConditionalGeneration.from_pretrained(str(path), dtype=dtype, revision=revision)
    processor = load_processor(path, revision)
    model.check_processor(processor)
    return model, processor


def load_processor(path: str | Path, revision: str | None = None) -> HiLightProcessor:
    """The processor of a HiLight folder (or of a LoRA output folder, which holds one too)."""
    # The folder's tokenizer loading reads its config.json, whose auto_map names the HiLight classes; the
    # code that runs is this repo's own, so trusting it is safe.
    return HiLightProcessor.from_pretrained(str(path), trust_remote_code=True, revision=revision)


def save_hub_folder(model: Any, processor: Any, out: str | Path, state_dict: dict | None = None) -> Path:
    """Write a folder that loads with ``AutoModel/AutoProcessor.from_pretrained(out, trust_remote_code=True)``:
    config.json (with ``auto_map``), model.safetensors, processor and tokenizer files, and the root code files.
    ``state_dict`` replaces the model's own tensors (the consolidated weights of a sharded run)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if state_dict is not None:  # gathered tensors share no storage: drop the tied copies (lm_head) by name
        tied = getattr(model, "all_tied_weights_keys", None) or {}
        state_dict = {k: v for k, v in state_dict.items() if k not in tied}
    model.save_pretrained(out, state_dict=state_dict)
    processor.save_pretrained(out)
    for source in sorted(hilight_train.REPO_ROOT.glob("*_hilight.py")):  # the model's code, as on the Hub
        shutil.copyfile(source, out / source.name)
    return out


# ----------------------------------------------------------------------------------------- trainability


# Parameter-name globs. The towers' text encoders and temperatures serve contrastive pretraining only.
TOWERS = ("video_tower.*", "image_tower.*")
TOWER_TEXT = ("*.text_model.*", "*.logit_scale")
_PEFT = "base_model.model."  # where peft puts the wrapped model's parameters


def trainable_globs(
    stage: str, *, use_peft: bool = False, train_token_mining: bool = True, train_towers: bool = False
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What trains in ``stage``, decided here and nowhere else: (include, exclude) globs over parameter names
    (peft's wrapped names for LoRA). A parameter trains iff it matches an include glob and no exclude glob.

    - ``contrastive`` (stage 0, CLIP-style): both towers with their text encoders;
    - ``perception`` (stage 0 on the engine's labels): both towers' vision parts;
    - ``stage1``: TokenMining;
    - ``stage2``: the LM (or, with ``use_peft``, its LoRA adapters), TokenMining if ``train_token_mining``
      (under LoRA as peft's full trainable copy), both towers' vision parts if ``train_towers``.
    """
    if stage == "contrastive":
        return TOWERS, ()
    if stage == "perception":
        return TOWERS, TOWER_TEXT
    if stage == "stage1":
        return ("token_mining.*",), ()
    if stage != "stage2":
        raise ValueError(f"unknown stage {stage!r}")
    if use_peft:
        if train_towers:
            raise ValueError("training the towers is full fine-tuning; it cannot be combined with LoRA")
        include = (f"{_PEFT}language_model.*.lora_A.*", f"{_PEFT}language_model.*.lora_B.*")
        if train_token_mining:
            include += (f"{_PEFT}token_mining.modules_to_save.*",)
        return include, ()
    include = ("language_model.*",) + (("token_mining.*",) if train_token_mining else ())
    return include + (TOWERS if train_towers else ()), TOWER_TEXT


def _trains(name: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in include) and not any(
        fnmatch.fnmatchcase(name, g) for g in exclude
    )


def set_trainable_params(
    model: torch.nn.Module, include: Iterable[str], exclude: Iterable[str] = (), allow_none: bool = False
) -> list[str]:
    """``requires_grad`` of every parameter from the globs (see `trainable_globs`); returns the trainable
    names. Raises when nothing would train, unless ``allow_none`` (the base model under LoRA)."""
    include, exclude = tuple(include), tuple(exclude)
    for name, param in model.named_parameters():
        param.requires_grad_(_trains(name, include, exclude))
    names = trainable_parameter_names(model)
    if not names and not allow_none:
        raise RuntimeError(f"nothing would train: no parameter matches {include} (excluding {exclude})")
    return names


def check_trainable(model: torch.nn.Module, include: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Raise unless exactly the parameters the globs select require grad (after peft has wrapped the model,
    for instance); returns their names."""
    include, exclude = tuple(include), tuple(exclude)
    wrong = [
        (name, param.requires_grad)
        for name, param in model.named_parameters()
        if param.requires_grad != _trains(name, include, exclude)
    ]
    if wrong:
        stray = [n for n, trains in wrong if trains]
        missing = [n for n, trains in wrong if not trains]
        raise RuntimeError(
            f"trainable parameters differ from {include} (excluding {exclude}): "
            f"{len(stray)} would train that must not, e.g. {stray[:3]}; {len(missing)} would not, e.g. {missing[:3]}"
        )
    names = trainable_parameter_names(model)
    if not names:
        raise RuntimeError(f"nothing would train: no parameter matches {include}")
    return names


def trainable_parameter_names(model: torch.nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


def lm_linear_target_regex(model: HiLightForConditionalGeneration) -> str:
    """peft ``target_modules`` regex: every ``nn.Linear`` of the language model except its output head.

    Only modules under ``language_model.`` match, so the towers and TokenMining never get adapters."""
    head = model.get_output_embeddings()
    leaves = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.language_model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not head
        }
    )
    if not leaves:
        raise ValueError("the language model has no nn.Linear layers to adapt")
    head_names = [n for n, m in model.language_model.named_modules() if m is head]
    if head_names and head_names[0].rsplit(".", 1)[-1] in leaves:
        raise ValueError(f"the output head's name {head_names[0]!r} collides with an adapted layer name")
    return rf"language_model\..*\.({'|'.join(leaves)})"


def lora_config(model: HiLightForConditionalGeneration, model_args: Any, train_token_mining: bool = True):
    """Stage 2's LoRA from TRL's ``ModelConfig`` (``use_peft``, ``lora_r``, ``lora_alpha``, ``lora_dropout``, ...)
    through TRL's ``get_peft_config``. Unless given there, the targets are the paper's (every LM linear layer
    except the head) and TokenMining trains as a full copy (peft ``modules_to_save``: it starts from the
    loaded stage-1 weights, never re-initialised)."""
    from trl import get_peft_config

    args = dataclasses.replace(
        model_args,
        use_peft=True,
        lora_target_modules=model_args.lora_target_modules or lm_linear_target_regex(model),
        lora_modules_to_save=model_args.lora_modules_to_save
        or (["token_mining"] if train_token_mining else None),
    )
    return get_peft_config(args)


# ----------------------------------------------------------------------------------------------- loss


def causal_lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Sum of next-token cross-entropies (fp32) over labelled tokens / ``num_items_in_batch`` (default: this
    batch's labelled tokens). logits (B, S, V), labels (B, S) with -100 = ignore."""
    shift_logits = logits[:, :-1].float().flatten(0, 1)  # (B*(S-1), V)
    shift_labels = labels[:, 1:].flatten().to(shift_logits.device)  # (B*(S-1),)
    total = F.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else (shift_labels != -100).sum()
    return total / torch.as_tensor(count, device=total.device).clamp(min=1)


# -------------------------------------------------------------------------------------- checkpoints


class AtomicCheckpointMixin:
    """Checkpoints appear atomically: the Trainer writes ``.staging/checkpoint-N`` (model, optimizer, scheduler,
    RNG states of every rank, trainer state), then the main process renames it to ``checkpoint-N``. A run killed
    mid-save leaves only a staging folder, which resuming ignores."""

    def _save_checkpoint(self, model, trial):
        run_dir = Path(self._get_output_dir(trial=trial))
        staging_root = run_dir / ".staging"
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        final = run_dir / name
        output_dir, save_total_limit = self.args.output_dir, self.args.save_total_limit
        if self.args.should_save and (staging_root / name).exists():
            shutil.rmtree(staging_root / name)
        self.accelerator.wait_for_everyone()
        # The Trainer derives the checkpoint folder from args.output_dir; point it at the staging area.
        self.args.output_dir, self.args.save_total_limit = str(staging_root), None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir, self.args.save_total_limit = output_dir, save_total_limit
        # The Trainer recorded the best checkpoint under the staging name: it is the final folder.
        if self.state.best_model_checkpoint == str(staging_root / name):
            self.state.best_model_checkpoint = str(final)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging_root / name, final)
            self.state.save_to_json(str(final / TRAINER_STATE_NAME))  # the state with the final paths
            for leftover in staging_root.glob("*.md"):  # TRL writes its model card beside the checkpoints
                os.replace(leftover, run_dir / leftover.name)
            self._rotate_finished_checkpoints(run_dir)
        self.accelerator.wait_for_everyone()

    def _rotate_finished_checkpoints(self, run_dir: Path) -> None:
        """Keep the ``save_total_limit`` newest checkpoints, and the best one (as the Trainer does: with a limit
        of 1 and a best that is not the newest, both stay)."""
        limit = self.args.save_total_limit
        if not limit:
            return
        found = sorted(
            (p for p in run_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p.name.split("-")[-1].isdigit()),
            key=lambda p: int(p.name.split("-")[-1]),
        )
        best = Path(self.state.best_model_checkpoint) if self.state.best_model_checkpoint else None
        best = best if best in found else None
        newest = [p for p in found if p != best][-max(limit - (best is not None), 1) :]
        for old in found:
            if old != best and old not in newest:
                shutil.rmtree(old)


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest finished ``checkpoint-N`` in ``output_dir`` (staging folders are ignored), or None."""
    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


class HiLightSFTTrainer(AtomicCheckpointMixin, SFTTrainer):
    """TRL's SFTTrainer with HiLight's loss and atomic checkpoints (see the module docstring).

    The loss is computed from the model's logits rather than TRL's fused LM head, which expects the text
    backbone as the model's ``base_model``; HiLight puts vision tokens in front of it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = True  # compute_loss normalises by num_items_in_batch itself

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        outputs = model(**inputs, use_cache=False)
        loss = causal_lm_loss(outputs.logits, labels, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # DDP averages gradients over ranks
        return (loss, outputs) if return_outputs else loss


class HiLightTrainer(AtomicCheckpointMixin, Trainer):
    """``transformers.Trainer`` with atomic checkpoints (stage 0; the model returns its own loss). Other scalar
    entries of the model's output dict (loss components) are averaged over the logging interval and logged
    beside the loss."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._component_sums: dict[str, tuple[float, int]] = {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if isinstance(outputs, dict) and model.training:
            for key, value in outputs.items():
                if key != "loss" and isinstance(value, torch.Tensor) and value.numel() == 1:
                    total, count = self._component_sums.get(key, (0.0, 0))
                    self._component_sums[key] = (total + float(value), count + 1)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:
            for key, (total, count) in self._component_sums.items():
                logs[key] = round(total / count, 4)
            self._component_sums = {}
        super().log(logs, *args, **kwargs)


# ----------------------------------------------------------------------------------------- callbacks


class JsonlLogCallback(TrainerCallback):
    """Append every Trainer log (loss, learning rate, grad norm, ...) to ``output_dir/log.jsonl``.

    On resume, lines logged after the checkpoint step by the interrupted run are dropped first, so the file
    reads as one uninterrupted run."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.start = time.time()

    def _path(self, args) -> Path:
        return self.path if self.path is not None else Path(args.output_dir) / LOG_FILE

    def on_train_begin(self, args, state, control, **kwargs):
        path = self._path(args)
        if not state.is_world_process_zero or not path.exists():
            return
        kept = [
            ln
            for ln in path.read_text().splitlines()
            if ln.strip() and json.loads(ln)["step"] <= state.global_step
        ]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(ln + "\n" for ln in kept))
        os.replace(tmp, path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        path = self._path(args)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time() - self.start, 3)}
        record.update(
            {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in logs.items()}
        )
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def plot_loss_curve(log_path: str | Path, png_path: str | Path, title: str = "training loss") -> Path | None:
    """Loss against step from a ``log.jsonl``, written atomically as a PNG; None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_path, png_path = Path(log_path), Path(png_path)
    if not log_path.exists():
        return None
    points = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
    train = [(p["step"], p["loss"]) for p in points if p.get("loss") is not None]
    evals = [(p["step"], p["eval_loss"]) for p in points if p.get("eval_loss") is not None]
    if not train and not evals:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    if train:
        ax.plot(*zip(*train, strict=True), label="train", color="tab:blue")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval", color="tab:orange")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = png_path.with_name(f".{png_path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path


class LossCurveCallback(TrainerCallback):
    """Redraw ``output_dir/loss_curve.png`` from ``log.jsonl`` at every checkpoint and at the end."""

    def __init__(self, title: str = "training loss"):
        self.title = title

    def _draw(self, args, state):
        if state.is_world_process_zero:
            plot_loss_curve(
                Path(args.output_dir) / LOG_FILE, Path(args.output_dir) / LOSS_CURVE_FILE, self.title
            )

    def on_save(self, args, state, control, **kwargs):
        self._draw(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self._draw(args, state)


def default_callbacks(title: str) -> list[TrainerCallback]:
    """JSONL log + loss curve (the Trainer's own tqdm bar is the progress display)."""
    return [JsonlLogCallback(), LossCurveCallback(title)]
