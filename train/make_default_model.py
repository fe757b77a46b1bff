"""`make default-model`: reproduce the bundled default model from nothing, on a CPU.

Steps (each skipped when its output is already complete, so re-running resumes):

    data     train/make_data.py        9-ball, 8-ball and snooker clips with exact labels (train/val/test)
    stage0   train/stage0_perception.py  BPE tokenizer + perception: both towers from scratch on the procedural
                                       scene stream and the dataset's train clips, from their exact per-frame
                                       labels (heads dropped afterwards)
    percept  train/perception_report.py  what the frozen towers see, on the dataset's train/test clips
    stage1   train/stage1_align.py     TokenMining alignment from the feature cache (towers, LM frozen); skipped
                                       by default (``--stage1-epochs 0``): with the random LM of a from-scratch
                                       model it aligns nothing and erases what the vision tokens carry
    stage2   train/stage2_sft.py       instruction tuning: full fine-tuning of the small LM on whole-clip
                                       conversations, TokenMining frozen (``train/configs/tiny/stage2.yaml``)
    export   the shipped form of stage 2: bf16 weights, the towers' text encoders (stage 0 only) dropped
    heldout  train/make_data.py + evaluate.py  exact scores of the exported model, with majority and blind
                                       baselines, on the test split of a dataset of another seed
                                       (``--heldout_seed``), which no training step saw: the headline scores
    eval     train/evaluate.py         the same on the training dataset's own test split; then the held-out
                                       questions in one chat session per clip (``--conversation``) and under
                                       each shift of ``train/make_shifted.py`` (colour, compress, 720p)
    install  copy the exported model to the repo root, pick example clips, write examples/questions.json

    python train/make_default_model.py --work outputs/default [--clips 4500] [--install]
    # continue from a model's towers, LM and tokenizer instead of nothing (e.g. the installed one):
    python train/make_default_model.py --work outputs/next --towers-from . --stage0-scenes 8000

Wall time per step goes to ``<work>/timings.json``; the held-out evaluation report to ``<work>/eval_heldout``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from hilight_train.cli import run_main
from hilight_train.model_folder import export_inference_folder
from hilight_train.pipeline import Recipe
from hilight_train.shifts import SHIFTS

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN = REPO_ROOT / "train"
GAMES = "9ball,8ball,snooker"
# The shipped model: everything a Hub user downloads besides the root code files (already at the root).
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "processor_config.json",
)


# What the demo asks about each example clip (the first three of these the clip has questions for).
DEMO_TYPES = ("potted_balls", "foul_reason", "first_contact", "cue_after_contact", "potted_count", "foul")


def install(work: Path, data: Path, n_examples: int) -> None:
    """Copy the exported model to the repo root and pick example clips (one per game and camera)."""
    model = work / "final"
    for name in MODEL_FILES:
        shutil.copy2(model / name, REPO_ROOT / name)
    for code in sorted(model.glob("*_hilight.py")):
        if code.read_bytes() != (REPO_ROOT / code.name).read_bytes():
            raise RuntimeError(
                f"{code} differs from the repo's {code.name}: the model was trained on other code"
            )
    entries = json.loads((data / "annotations_test.json").read_text())
    events = {json.loads(ln)["id"]: json.loads(ln) for ln in (data / "events.jsonl").read_text().splitlines()}
    examples_dir = REPO_ROOT / "examples"
    for old in examples_dir.glob("*.mp4"):  # the Space lists every clip here: keep only this install's
        old.unlink()
    # a fixed rule that never looks at the model's answers: per game and camera, the first test clip in file order
    by_key: dict[tuple[str, str], str] = {}
    for clip in dict.fromkeys(Path(e["video"]).stem for e in entries):
        by_key.setdefault((events[clip]["game"], events[clip]["camera"]["family"]), clip)
    # every game first (cameras alternating), then the other cameras
    keys = sorted(by_key)
    games = sorted({game for game, _ in keys})
    first = [
        [k for k in keys if k[0] == g][i % len([k for k in keys if k[0] == g])] for i, g in enumerate(games)
    ]
    order = (first + [k for k in keys if k not in first])[:n_examples]
    chosen = [(by_key[k], *k) for k in order]
    questions = []
    for clip, game, camera in chosen:
        name = f"{game}_{camera}.mp4"
        shutil.copy2(data / "videos" / f"{clip}.mp4", examples_dir / name)
        for e in sorted(
            (x for x in entries if Path(x["video"]).stem == clip and x["type"] in DEMO_TYPES),
            key=lambda x: DEMO_TYPES.index(x["type"]),
        )[:3]:
            q = e["conversations"][0]["value"].replace("<video>", "").strip()
            questions.append(
                {
                    "clip": name,
                    "question": q,
                    "answer": e["conversations"][1]["value"],
                    "type": e["type"],
                    "facts": e["facts"],
                }
            )
    (examples_dir / "questions.json").write_text(json.dumps(questions, indent=1) + "\n")
    print(f"installed the model at the repo root and {len(chosen)} example clips: {[c[0] for c in chosen]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=REPO_ROOT / "outputs" / "default")
    p.add_argument(
        "--clips", type=int, default=4500, help="clips of the dataset (80%% train) stages 0 and 2 read"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--heldout-clips", type=int, default=1500, help="clips of the held-out dataset (10%% test)"
    )
    p.add_argument(
        "--heldout_seed", type=int, default=7919, help="seed of the held-out evaluation dataset (not --seed)"
    )
    p.add_argument(
        "--stage0-scenes", type=int, default=16000,
        help="training rows of stage 0 (scenes + clips; 16 per step: 1,000 steps)",
    )  # fmt: skip
    p.add_argument(
        "--towers-from", type=Path, default=None,
        help="a HiLight folder (e.g. the installed model, '.') whose towers, LM and tokenizer stage 0 continues "
        "from, instead of a fresh model: its perception steps add to those the folder's towers had",
    )  # fmt: skip
    p.add_argument(
        "--stage1-epochs",
        type=float,
        default=0,
        help="0 skips stage 1 (the default: its frozen LM is random here, see the README), stage 2 starts from stage 0",
    )
    p.add_argument(
        "--stage2-epochs", type=float, default=1.5,
        help="passes over the train clips' conversations (each clip in merge_orders=3 orders)",
    )  # fmt: skip
    p.add_argument(
        "--install", action="store_true", help="copy the result to the repo root (the shipped model)"
    )
    p.add_argument("--examples", type=int, default=4)
    args = p.parse_args()
    if args.heldout_seed == args.seed:
        p.error("--heldout_seed must differ from --seed: the held-out dataset must be one training never saw")
    work = args.work.resolve()  # the steps run with the repo root as working directory
    data = work / "data"
    heldout = work / f"data_seed{args.heldout_seed}"
    ann = data / "annotations.json"
    recipe = Recipe(work / "timings.json")
    # fmt: off
    recipe.step("data", data, "make_data.py", "--out", data, "--clips", args.clips, "--seed", args.seed,
                "--games", GAMES, "--workers", args.workers)
    start = ("--model_name_or_path", args.towers_from.resolve()) if args.towers_from else ("--tokenizer_corpus", ann)
    recipe.step("stage0", work / "stage0", "stage0_perception.py", "--config",
                "train/configs/tiny/stage0_perception.yaml", *start, "--output_dir", work / "stage0",
                "--scenes", args.stage0_scenes, "--clips_data", data)
    recipe.step("percept", work / "perception", "perception_report.py", "--model", work / "stage0", "--data", data,
                "--max_train_clips", 600, "--max_test_clips", 150, "--cnn_steps", 200, "--out", work / "perception")
    stage2_start = work / "stage0"
    if args.stage1_epochs > 0:
        recipe.step("stage1", work / "stage1", "stage1_align.py", "--config", "train/configs/tiny/stage1.yaml",
                    "--model_name_or_path", work / "stage0", "--train_data", ann, "--output_dir", work / "stage1",
                    "--num_train_epochs", args.stage1_epochs)
        stage2_start = work / "stage1"
    recipe.step("stage2", work / "stage2", "stage2_sft.py", "--config", "train/configs/tiny/stage2.yaml",
                "--model_name_or_path", stage2_start, "--train_data", ann, "--output_dir", work / "stage2",
                "--num_train_epochs", args.stage2_epochs)
    recipe.call("export", work / "final", export_inference_folder, work / "stage2", work / "final")
    # a dataset of a seed no step above used: the headline scores, first
    recipe.step("heldout_data", heldout, "make_data.py", "--out", heldout, "--clips", args.heldout_clips, "--seed",
                args.heldout_seed, "--games", GAMES, "--workers", args.workers)
    recipe.step("heldout_eval", work / "eval_heldout", "evaluate.py", "--model", work / "final", "--data", heldout,
                "--split", "test", "--out", work / "eval_heldout")
    recipe.step("eval", work / "eval", "evaluate.py", "--model", work / "final", "--data", data,
                "--split", "test", "--out", work / "eval")
    # the same questions asked in one chat session per clip, and under shifts the engine never produces
    recipe.step("conversation_eval", work / "eval_heldout_conversation", "evaluate.py", "--model", work / "final",
                "--data", heldout, "--split", "test", "--conversation", "--baselines", "",
                "--out", work / "eval_heldout_conversation")
    for shift in SHIFTS:
        shifted = work / f"{heldout.name}_{shift}"
        recipe.step(f"shift_{shift}", shifted, "make_shifted.py", "--data", heldout, "--split", "test", "--shift",
                    shift, "--out", shifted, "--workers", args.workers)
        recipe.step(f"shift_{shift}_eval", work / f"eval_heldout_{shift}", "evaluate.py", "--model", work / "final",
                    "--data", shifted, "--split", "test", "--baselines", "majority", "--out", work / f"eval_heldout_{shift}")
    # fmt: on
    print(f"wall time of all steps: {recipe.total_seconds:.0f} s ({json.dumps(recipe.timings)})")
    if args.install:
        install(work, data, args.examples)
    return 0


if __name__ == "__main__":
    run_main(main)
