"""The new-sport demonstration: LoRA-fine-tune a HiLight model on three-cushion carom, a game it never saw,
and measure before and after on three-cushion and on the billiards test split it was trained for.

Steps (each skipped when its output is complete, so re-running resumes):

    data        train/make_data.py --games 3cushion          clips, questions, answers of the new sport
    before      train/evaluate.py on the base model           three-cushion test split, before
    lora        train/stage2_sft.py (new_sport_lora.yaml)     LoRA adapter on the three-cushion train split
    merged      train/merge_lora.py                           a standalone folder with the adapter merged
    after       train/evaluate.py on the merged model         three-cushion test split, after
    billiards   train/evaluate.py on the merged model         the base model's billiards test split, with
                                                              the adapter (compare with the base's report)

    python train/new_sport_demo.py --base . --billiards-data outputs/default/data \
        --billiards-report outputs/default/eval/report.json --work outputs/new_sport

The table (markdown) goes to ``<work>/table.md`` and is printed; wall times to ``<work>/timings.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hilight_train.cli import run_main
from hilight_train.pipeline import Recipe

REPO_ROOT = Path(__file__).resolve().parents[1]


def _overall(report: Path) -> tuple[float, float, float, int]:
    o = json.loads(report.read_text())["overall"]
    return o["accuracy"], o["ci"][0], o["ci"][1], o["n"]


def _cell(report: Path) -> str:
    acc, lo, hi, n = _overall(report)
    return f"{acc:.3f} [{lo:.3f}, {hi:.3f}] (n={n})"


def table(work: Path, billiards_report: Path) -> str:
    rows = [
        "| test split | base model | base + three-cushion LoRA |",
        "|---|---|---|",
        f"| three-cushion (new sport) | {_cell(work / 'before' / 'report.json')} | "
        f"{_cell(work / 'after' / 'report.json')} |",
        f"| billiards (9-ball, 8-ball, snooker) | {_cell(billiards_report)} | "
        f"{_cell(work / 'billiards' / 'report.json')} |",
    ]
    return "\n".join(rows) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, default=REPO_ROOT, help="base HiLight folder (default: this repo)")
    p.add_argument("--billiards-data", type=Path, required=True, help="the base model's billiards dataset")
    p.add_argument("--billiards-report", type=Path, required=True, help="the base model's report.json on it")
    p.add_argument("--work", type=Path, default=REPO_ROOT / "outputs" / "new_sport")
    p.add_argument("--clips", type=int, default=400)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--epochs", type=float, default=5)
    args = p.parse_args()
    work = args.work.resolve()
    base = args.base.resolve()
    data = work / "data"
    recipe = Recipe(work / "timings.json")
    # fmt: off
    recipe.step("data", data, "make_data.py", "--out", data, "--clips", args.clips, "--seed", args.seed,
                "--games", "3cushion", "--workers", 2)
    recipe.step("before", work / "before", "evaluate.py", "--model", base, "--data", data, "--split", "test",
                "--out", work / "before")
    recipe.step("lora", work / "lora", "stage2_sft.py", "--config", "train/configs/new_sport_lora.yaml",
                "--model_name_or_path", base, "--train_data", data / "annotations.json", "--split", "train",
                "--output_dir", work / "lora", "--num_train_epochs", args.epochs)
    recipe.step("merged", work / "merged", "merge_lora.py", "--adapter", work / "lora", "--base", base,
                "--out", work / "merged")
    recipe.step("after", work / "after", "evaluate.py", "--model", work / "merged", "--data", data,
                "--split", "test", "--out", work / "after")
    recipe.step("billiards", work / "billiards", "evaluate.py", "--model", work / "merged",
                "--data", args.billiards_data.resolve(), "--split", "test", "--out", work / "billiards",
                "--baselines", "")
    # fmt: on
    text = table(work, args.billiards_report.resolve())
    (work / "table.md").write_text(text)
    print(text + f"wall time of all steps: {recipe.total_seconds:.0f} s ({json.dumps(recipe.timings)})")
    return 0


if __name__ == "__main__":
    run_main(main)
