"""Stage 0: contrastive pretraining of the CLIP-ViP and Long-CLIP towers (InfoNCE, learnable temperature) on
the data engine's captions.jsonl, with transformers' Trainer. Needed by the tiny preset, whose towers start
from scratch; the paper preset loads pretrained towers instead (train/convert_official.py).

    python train/stage0_towers.py --config train/configs/tiny/stage0.yaml \
        --captions data/billiards/captions.jsonl --output_dir outputs/tiny/stage0
    torchrun --nproc_per_node 2 train/stage0_towers.py --config ...      # DDP (gloo on CPU)

``--frame_cache DIR`` decodes every clip once and trains each epoch from the stored frames (stage 0 runs the
towers every step, so decoding would otherwise be paid every epoch).

Without ``--model_name_or_path`` a fresh ``--preset`` model is built (``--model_overrides`` JSON merges into
the preset) with a BPE tokenizer trained on the dataset's text; it is saved to ``<output_dir>/init`` first, so
a resumed run starts from the same weights and tokenizer. The result is a Hub-style folder in ``output_dir``
(the whole model; only the towers changed). Re-running the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState
from transformers import TrainingArguments
from trl import TrlParser

from hilight_train.cli import run_main
from hilight_train.contrastive import (
    TowerContrastiveModel,
    collator_for,
    initial_model,
    load_caption_rows,
)
from hilight_train.frame_cache import open_frame_cache
from hilight_train.stages import with_device_default
from hilight_train.training import (
    HiLightTrainer,
    default_callbacks,
    last_checkpoint,
    save_hub_folder,
    set_trainable_params,
    trainable_globs,
)


@dataclass
class Stage0Arguments:
    captions: str | None = field(default=None, metadata={"help": "captions.jsonl from train/make_data.py."})
    video_root: str | None = field(
        default=None, metadata={"help": "Video folder (default: the file's folder)."}
    )
    split: str | None = field(default="train", metadata={"help": "Keep this split only ('' = all)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use the first N clips only."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "Start from this HiLight folder."})
    preset: str = field(
        default="tiny", metadata={"help": "Preset of a fresh model (no --model_name_or_path)."}
    )
    model_overrides: str | None = field(default=None, metadata={"help": "JSON dict merged into the preset."})
    vocab_size: int = field(default=2048, metadata={"help": "BPE vocabulary of a fresh model's tokenizer."})
    tokenizer_corpus: str | None = field(
        default=None, metadata={"help": "Comma list of extra files whose text trains the tokenizer."}
    )
    frame_cache: str | None = field(
        default=None,
        metadata={
            "help": "Frame cache folder: decode each clip once and read its frames from there every epoch "
            "(hilight_train.frame_cache; the same pixel values)."
        },
    )
    resume: bool = field(default=True, metadata={"help": "Continue from the last checkpoint in output_dir."})


def main(argv: list[str] | None = None) -> HiLightTrainer:
    args, training_args = TrlParser((Stage0Arguments, TrainingArguments)).parse_args_and_config(
        with_device_default(argv)
    )
    if not args.captions:
        raise SystemExit("--captions is required (captions.jsonl from train/make_data.py)")
    training_args.remove_unused_columns = False
    output_dir = Path(training_args.output_dir)
    model, processor = initial_model(
        args.model_name_or_path, output_dir / "init", [args.captions, *(args.tokenizer_corpus or "").split(",")],
        args.preset, json.loads(args.model_overrides) if args.model_overrides else {}, training_args.seed,
        args.vocab_size,
    )  # fmt: skip
    set_trainable_params(model, *trainable_globs("contrastive"))  # both towers with their text encoders
    rows = load_caption_rows(args.captions, args.video_root, args.split or None, args.max_train_samples)
    frames = None
    if args.frame_cache:
        with PartialState().main_process_first():
            frames = open_frame_cache(
                args.frame_cache,
                processor.video_processor,
                rows["video"],
                progress=PartialState().is_main_process,
            )
    trainer = HiLightTrainer(
        model=TowerContrastiveModel(model.video_tower, model.image_tower),
        args=training_args,
        train_dataset=rows,
        data_collator=collator_for(model, processor, frames),
        callbacks=default_callbacks("HiLight stage 0 (tower InfoNCE)"),
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(output_dir) if args.resume else None)
    if trainer.accelerator.is_main_process:
        save_hub_folder(model, processor, output_dir)
    trainer.accelerator.wait_for_everyone()
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return trainer


if __name__ == "__main__":
    run_main(main)
