"""`make default-model`: reproduce the bundled default model from nothing, on a CPU.

Steps (each skipped when its output is already complete, so re-running resumes):

    data     train/make_data.py        9-ball, 8-ball and snooker clips with exact labels (train/val/test)
    stage0   train/stage0_towers.py    BPE tokenizer + contrastive pretraining of both towers from scratch
    stage1   train/stage1_align.py     TokenMining alignment from the feature cache (towers, LM frozen)
    stage2   train/stage2_sft.py       instruction tuning (full fine-tuning of the small LM + TokenMining)
    eval     train/evaluate.py         exact scores on the test split with majority and blind baselines
    install  copy the model files to the repo root, pick example clips, write examples/questions.json

    python train/make_default_model.py --work outputs/default [--clips 1500] [--install]

Wall time per step goes to ``<work>/timings.json``; the evaluation report to ``<work>/eval``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


def run(step: str, cmd: list[str], work: Path, timings: dict) -> None:
    print(f"\n=== {step}: {' '.join(cmd)}", flush=True)
    start = time.time()
    subprocess.run([sys.executable, *cmd], check=True, cwd=REPO_ROOT)
    timings[step] = round(time.time() - start, 1)
    (work / "timings.json").write_text(json.dumps(timings, indent=1))


def done(path: Path) -> bool:
    return (
        (path / "config.json").is_file() or (path / "report.json").is_file() or (path / "card.md").is_file()
    )


def install(work: Path, data: Path, n_examples: int) -> None:
    """Copy the trained model to the repo root and pick example clips (one per game and camera)."""
    model = work / "stage2"
    for name in MODEL_FILES:
        shutil.copy2(model / name, REPO_ROOT / name)
    for code in sorted(model.glob("*_hilight.py")):
        if code.read_bytes() != (REPO_ROOT / code.name).read_bytes():
            raise RuntimeError(
                f"{code} differs from the repo's {code.name}: the model was trained on other code"
            )
    entries = json.loads((data / "annotations_test.json").read_text())
    events = {json.loads(ln)["id"]: json.loads(ln) for ln in (data / "events.jsonl").read_text().splitlines()}
    report = json.loads((work / "eval" / "report.json").read_text())
    correct = {it["id"] for it in report["items"] if it["score"] == 1.0}
    examples_dir = REPO_ROOT / "examples"
    chosen, seen = [], set()
    for e in entries:  # clips whose every question the model answered right make a faithful demo
        clip = Path(e["video"]).stem
        camera = (
            events[clip]["camera"]["family"] if isinstance(events[clip].get("camera"), dict) else "camera"
        )
        key = (e["game"], camera)
        clip_ids = [x["id"] for x in entries if Path(x["video"]).stem == clip]
        if key in seen or not all(i in correct for i in clip_ids) or len(chosen) >= n_examples:
            continue
        seen.add(key)
        chosen.append((clip, e["game"], camera))
    questions = []
    for clip, game, camera in chosen:
        name = f"{game}_{camera}.mp4"
        shutil.copy2(data / "videos" / f"{clip}.mp4", examples_dir / name)
        for e in [x for x in entries if Path(x["video"]).stem == clip][:3]:
            q = e["conversations"][0]["value"].replace("<video>", "").strip()
            questions.append(
                {"clip": name, "question": q, "answer": e["conversations"][1]["value"], "type": e["type"]}
            )
    (examples_dir / "questions.json").write_text(json.dumps(questions, indent=1) + "\n")
    print(f"installed the model at the repo root and {len(chosen)} example clips: {[c[0] for c in chosen]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=REPO_ROOT / "outputs" / "default")
    p.add_argument("--clips", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--stage0-epochs", type=float, default=5)
    p.add_argument("--stage1-epochs", type=float, default=1)
    p.add_argument("--stage2-epochs", type=float, default=3)
    p.add_argument(
        "--install", action="store_true", help="copy the result to the repo root (the shipped model)"
    )
    p.add_argument("--examples", type=int, default=4)
    args = p.parse_args()
    work, data = args.work, args.work / "data"
    work.mkdir(parents=True, exist_ok=True)
    timings_path = work / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    ann = str(data / "annotations.json")
    if not done(data):
        run(
            "data",
            [
                str(TRAIN / "make_data.py"),
                "--out",
                str(data),
                "--clips",
                str(args.clips),
                "--seed",
                str(args.seed),
                "--games",
                GAMES,
                "--workers",
                str(args.workers),
            ],
            work,
            timings,
        )
    if not done(work / "stage0"):
        run(
            "stage0",
            [
                str(TRAIN / "stage0_towers.py"),
                "--config",
                "train/configs/tiny/stage0.yaml",
                "--captions",
                str(data / "captions.jsonl"),
                "--tokenizer_corpus",
                ann,
                "--output_dir",
                str(work / "stage0"),
                "--num_train_epochs",
                str(args.stage0_epochs),
            ],
            work,
            timings,
        )
    for stage, script, prev, epochs in (
        ("stage1", "stage1_align.py", "stage0", args.stage1_epochs),
        ("stage2", "stage2_sft.py", "stage1", args.stage2_epochs),
    ):
        if not done(work / stage):
            run(
                stage,
                [
                    str(TRAIN / script),
                    "--config",
                    f"train/configs/tiny/{stage}.yaml",
                    "--model_name_or_path",
                    str(work / prev),
                    "--train_data",
                    ann,
                    "--output_dir",
                    str(work / stage),
                    "--num_train_epochs",
                    str(epochs),
                ],
                work,
                timings,
            )
    if not done(work / "eval"):
        run(
            "eval",
            [
                str(TRAIN / "evaluate.py"),
                "--model",
                str(work / "stage2"),
                "--data",
                str(data),
                "--split",
                "test",
                "--out",
                str(work / "eval"),
            ],
            work,
            timings,
        )
    timings["total_s"] = round(sum(v for k, v in timings.items() if k != "total_s"), 1)
    timings_path.write_text(json.dumps(timings, indent=1))
    print(json.dumps(timings, indent=1))
    if args.install:
        install(work, data, args.examples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
