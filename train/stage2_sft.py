"""Stage 2: instruction tuning with TRL's SFTTrainer: LoRA on the LM (``--use_peft`` and the other LoRA fields
of TRL's ``ModelConfig``; paper r=64, alpha=32, dropout 0.05) or full fine-tuning of a small LM; TokenMining
keeps training from its stage-1 weights (``--train_token_mining``, default true). Towers stay frozen and are
read from the feature cache.

    python train/stage2_sft.py --config train/configs/tiny/stage2.yaml \
        --model_name_or_path outputs/tiny/stage1 --train_data data/billiards/annotations.json \
        --output_dir outputs/tiny/stage2
    python train/stage2_sft.py --config train/configs/paper/stage2.yaml ...   # the paper's recipe (LoRA)
    python train/merge_lora.py --adapter outputs/paper/stage2 --out outputs/paper/merged

Any config key can be overridden on the command line. Re-running resumes from the last checkpoint.
"""

from hilight_train.cli import run_main
from hilight_train.stages import parse_args, run_sft


def main(argv: list[str] | None = None) -> None:
    run_sft("stage2", *parse_args("stage2", argv))


if __name__ == "__main__":
    run_main(main)
