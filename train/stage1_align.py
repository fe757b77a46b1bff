"""Stage 1: align TokenMining (towers and LM frozen) with TRL's SFTTrainer, from cached tower features.

    python train/stage1_align.py --config train/configs/tiny/stage1.yaml \
        --model_name_or_path outputs/tiny/stage0 --train_data data/billiards/annotations.json \
        --output_dir outputs/tiny/stage1
    torchrun --nproc_per_node 2 train/stage1_align.py --config ...       # DDP (gloo on CPU)
    accelerate launch --num_processes 2 train/stage1_align.py --config ...

Any config key can be overridden on the command line (``--learning_rate 1e-3 --max_steps 50``). Re-running
the same command resumes from the last checkpoint in ``--output_dir``. See ``hilight_train/stages.py``.
"""

from hilight_train.cli import run_main
from hilight_train.stages import parse_args, run_sft


def main(argv: list[str] | None = None) -> None:
    run_sft("stage1", *parse_args("stage1", argv))


if __name__ == "__main__":
    run_main(main)
