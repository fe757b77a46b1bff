"""Stage 0, perception: teach both towers from scratch where every ball is, from the engine's exact labels.

Each training row is a fresh scene of the procedural stream (``hilight_train.billiards.scenes``: random
layouts, cameras and looks, rendered with exact per-frame truth; item ``i`` is a pure function of the stream
seed and ``i``), so a run sees ``--scenes`` distinct clips without storing any. The targets and the linear
heads that read them are in ``hilight_train.perception``; the heads are saved beside the model
(``perception_heads.safetensors``, for ``train/perception_report.py``) and are not part of it.

    python train/stage0_perception.py --config train/configs/tiny/stage0_perception.yaml \
        --tokenizer_corpus data/billiards/annotations.json --output_dir outputs/tiny/stage0_perception
    # a tiny CPU smoke run: --scenes 16 --per_device_train_batch_size 2 --model_overrides '{"num_frames": 4}'

Without ``--model_name_or_path`` a fresh ``--preset`` model is built with a BPE tokenizer trained on
``--tokenizer_corpus`` (saved to ``<output_dir>/init`` first). The result is a Hub-style folder in
``output_dir`` (the whole model; only the towers changed). Re-running the same command resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from safetensors.torch import save
from transformers import TrainingArguments
from trl import TrlParser

from hilight_train.billiards.scenes import SceneStream
from hilight_train.cli import run_main
from hilight_train.contrastive import initial_model
from hilight_train.files import atomic_write_bytes
from hilight_train.perception import (
    HEADS_FILE,
    ClipTruthDataset,
    InterleavedDataset,
    SceneDataset,
    TowerPerceptionModel,
    collate,
    dataset_clips,
    heads_for,
)
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
class PerceptionArguments:
    games: str = field(default="9ball,8ball,snooker", metadata={"help": "Comma list of games to render."})
    scenes: int = field(default=40000, metadata={"help": "Distinct stream scenes (clips) to train on."})
    stream_seed: int = field(default=1000, metadata={"help": "Seed of the scene stream."})
    clips_data: str | None = field(
        default=None,
        metadata={
            "help": "A data-engine dataset (with truth/) whose train-split clips are mixed into the stream."
        },
    )
    clips_every: int = field(
        default=2, metadata={"help": "With --clips_data, every n-th row is a dataset clip (2: half of them)."}
    )
    scene_frames: int | None = field(
        default=None,
        metadata={
            "help": "Frames per scene (default: the model's num_frames). Fewer frames give more distinct scenes "
            "per step at the same cost; CLIP-ViP interpolates its temporal table to any frame count."
        },
    )
    id_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the ball-identity losses (each visible ball's class among all; 0: off)."
        },
    )
    model_name_or_path: str | None = field(default=None, metadata={"help": "Start from this HiLight folder."})
    preset: str = field(default="tiny", metadata={"help": "Preset of a fresh model."})
    model_overrides: str | None = field(default=None, metadata={"help": "JSON dict merged into the preset."})
    vocab_size: int = field(default=2048, metadata={"help": "BPE vocabulary of a fresh model's tokenizer."})
    tokenizer_corpus: str | None = field(
        default=None, metadata={"help": "Comma list of files whose text trains a fresh model's tokenizer."}
    )
    resume: bool = field(default=True, metadata={"help": "Continue from the last checkpoint in output_dir."})


def main(argv: list[str] | None = None) -> HiLightTrainer:
    args, training_args = TrlParser((PerceptionArguments, TrainingArguments)).parse_args_and_config(
        with_device_default(argv)
    )
    if not args.model_name_or_path and not args.tokenizer_corpus:
        raise SystemExit("a fresh model needs --tokenizer_corpus (e.g. the dataset's annotations.json)")
    training_args.remove_unused_columns = False
    output_dir = Path(training_args.output_dir)
    model, processor = initial_model(
        args.model_name_or_path, output_dir / "init", (args.tokenizer_corpus or "").split(","), args.preset,
        json.loads(args.model_overrides) if args.model_overrides else {}, training_args.seed, args.vocab_size,
    )  # fmt: skip
    set_trainable_params(model, *trainable_globs("perception"))  # the towers' vision parts (+ the heads)
    vc = model.config.video_config
    height, width = vc.frame_size
    stream = SceneStream(
        tuple(args.games.split(",")), seed=args.stream_seed, frames=args.scene_frames or model.config.num_frames,
        width=width, height=height,
    )  # fmt: skip
    dataset = SceneDataset(stream, processor.video_processor, vc.grid_size, args.scenes)
    if args.clips_data:
        root = Path(args.clips_data)
        clips = dataset_clips(root, "train")
        if not clips:
            raise SystemExit(f"{root}: no train-split clips")
        frames = args.scene_frames or model.config.num_frames
        clip_rows = ClipTruthDataset(root, clips, processor.video_processor, vc.grid_size, frames)
        dataset = InterleavedDataset(dataset, clip_rows, args.clips_every)
    heads = heads_for(model, args.model_name_or_path)  # a stage-0 folder's own heads when it has them
    trainer = HiLightTrainer(
        model=TowerPerceptionModel(model.video_tower, model.image_tower, heads, args.id_weight),
        args=training_args,
        train_dataset=dataset,
        data_collator=collate,
        callbacks=default_callbacks("HiLight stage 0 (perception)"),
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(output_dir) if args.resume else None)
    if trainer.accelerator.is_main_process:
        save_hub_folder(model, processor, output_dir)
        heads_state = {k: v.contiguous() for k, v in heads.state_dict().items()}
        atomic_write_bytes(output_dir / HEADS_FILE, save(heads_state))
    trainer.accelerator.wait_for_everyone()
    return trainer


if __name__ == "__main__":
    run_main(main)
