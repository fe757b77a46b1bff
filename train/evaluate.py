"""Exact evaluation of a HiLight model folder on a data-engine split: scores per question type with
95% bootstrap CIs over clips, beside the majority-answer and blind (shuffled-video) baselines.

    python train/evaluate.py --model DIR --data DIR [--split test] --out DIR
    python train/evaluate.py --model DIR --data DIR --conversation --baselines "" --out DIR   # chat sessions
    python train/evaluate.py --compare A/report.json B/report.json [--out DIR]

Writes report.json, report.md, accuracy.png, confusion_<type>.png and failures.jsonl to --out.
Answers are cached per item in --out, so an interrupted run resumes. Tiny check on CPU:

    python train/make_data.py --out data/tiny --clips 6 --seed 0
    python train/evaluate.py --model . --data data/tiny --split test --out eval/tiny --limit 20
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path

import torch

from hilight_train.cli import run_main
from hilight_train.evaluation import (
    load_entries,
    majority_items,
    run_answers,
    run_conversations,
    scored_items,
    shuffled_videos,
)
from hilight_train.files import atomic_write_text
from hilight_train.model_folder import int8_lm_config
from hilight_train.precision import cpu_has_fast_bf16
from hilight_train.report import (
    build_report,
    compare_reports,
    plot_confusion,
    write_report,
)
from hilight_train.scoring import BALL_IDENTITY_TYPES, DEFAULT_TIME_TOLERANCE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="Hub-style model folder (loaded with trust_remote_code)")
    p.add_argument("--data", type=Path, help="data-engine dataset folder")
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path, help="output folder (also holds the resumable answer cache)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N entries")
    p.add_argument("--baselines", default="majority,blind", help="comma list of majority, blind (or empty)")
    p.add_argument(
        "--conversation",
        action="store_true",
        help="ask every question about a clip in one chat session (seeded random order) instead of one "
        "question per prompt",
    )
    p.add_argument(
        "--dtype", choices=("auto", "bf16", "fp32", "int8"), default="auto",
        help="auto: bf16 on a CPU with bf16 instructions, else fp32 (the faster there); bf16 weights and autocast; "
        "fp32 (exact); or int8: the LM's linear layers int8 weight-only (optimum-quanto), the rest bf16",
    )  # fmt: skip
    p.add_argument(
        "--time-tolerance", type=float, default=DEFAULT_TIME_TOLERANCE, help="seconds, for pot_time"
    )
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--compare", nargs=2, type=Path, metavar=("A.json", "B.json"), help="per-type B - A differences"
    )
    args = p.parse_args(argv)
    if args.compare is None and not (args.model and args.data and args.out):
        p.error("--model, --data and --out are required (or use --compare A.json B.json)")
    return args


def compare(args: argparse.Namespace) -> int:
    a, b = (json.loads(path.read_text()) for path in args.compare)
    diffs = compare_reports(a, b, n_boot=args.n_boot, seed=args.seed)
    lines = [
        f"# {args.compare[1]} minus {args.compare[0]}",
        "",
        "| type | n | diff [95% paired CI] |",
        "|---|---|---|",
    ]
    lines += [
        f"| {t} | {d['n']} | {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] |"
        for t, d in diffs.items()
    ]
    print("\n".join(lines))
    if args.out:
        atomic_write_text(args.out / "compare.json", json.dumps(diffs, indent=1))
        atomic_write_text(args.out / "compare.md", "\n".join(lines) + "\n")
    return 0


def extras(items: list[dict]) -> dict:
    """Secondary metrics: timestamp error and caption precision/recall per type."""
    out = {}
    times = [it["abs_error"] for it in items if "abs_error" in it]
    if times:
        out["pot_time_mean_abs_error_s"] = sum(times) / len(times)
    caps = [it for it in items if it["type"] == "caption"]
    if caps:
        for key in ("precision", "recall", "f1"):
            out[f"caption_{key}"] = sum(it.get(key, 0.0) for it in caps) / len(caps)
    return out


def check_answer_cache(args: argparse.Namespace) -> None:
    """The cached answers in --out belong to one model and generation setting: refuse to mix in another."""
    settings = {"model": str(args.model.resolve()), "split": args.split, "dtype": args.dtype,
                "max_new_tokens": args.max_new_tokens, "data": str(args.data.resolve()),
                "conversation": args.conversation, "seed": args.seed}  # fmt: skip
    path = args.out / "answer_cache.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached != settings:
            changed = sorted(k for k in settings if cached.get(k) != settings[k])
            raise SystemExit(
                f"{args.out} holds answers cached with other settings ({', '.join(changed)}): "
                "use another --out, or delete it to start over"
            )
    atomic_write_text(path, json.dumps(settings, indent=1))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare:
        return compare(args)
    if args.dtype == "auto":  # resolved before the answer cache's settings record it
        args.dtype = "bf16" if cpu_has_fast_bf16() else "fp32"
    check_answer_cache(args)
    from transformers import AutoModel, AutoProcessor

    entries = load_entries(args.data, args.split)[: args.limit]
    load = {"dtype": torch.float32 if args.dtype == "fp32" else torch.bfloat16}
    if args.dtype == "int8":
        load["quantization_config"] = int8_lm_config()
    model = AutoModel.from_pretrained(args.model, trust_remote_code=True, **load).eval()
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    model.check_processor(processor)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.dtype != "fp32" else nullcontext()
    run = {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size, "desc": ""}

    with autocast:
        if args.conversation:
            answers = run_conversations(
                model, processor, entries, args.data, args.out / "predictions-conversation.jsonl", args.seed,
                args.max_new_tokens,
            )  # fmt: skip
        else:
            answers = run_answers(
                model,
                processor,
                entries,
                args.data,
                args.out / "predictions-model.jsonl",
                **(run | {"desc": "model"}),
            )
        items = scored_items(entries, answers, args.time_tolerance)
        baselines = {}
        wanted = {b for b in args.baselines.split(",") if b}
        if "blind" in wanted:
            mapping = shuffled_videos(entries, args.seed)
            blind = run_answers(
                model,
                processor,
                entries,
                args.data,
                args.out / "predictions-blind.jsonl",
                mapping,
                **(run | {"desc": "blind"}),
            )
            baselines["blind"] = scored_items(entries, blind, args.time_tolerance)
    majority_reference = None
    if "majority" in wanted:
        try:
            reference, majority_reference = load_entries(args.data, "train"), "train split"
        except (
            FileNotFoundError,
            ValueError,
        ):  # no train split: the evaluated split's own majority (optimistic)
            reference, majority_reference = entries, f"{args.split} split itself (no train split; optimistic)"
            print(f"note: the majority baseline uses the {majority_reference}", file=sys.stderr)
        baselines["majority"] = majority_items(entries, reference, args.time_tolerance)

    meta = {
        "model": str(args.model),
        "data": str(args.data),
        "split": args.split,
        "dtype": args.dtype,
        "questions": "one chat session per clip, seeded order" if args.conversation else "one per prompt",
        "time_tolerance_s": args.time_tolerance,
        "majority_reference": majority_reference,
        "n_boot": args.n_boot,
        **extras(items),
    }
    report = build_report(items, baselines, meta, n_boot=args.n_boot, seed=args.seed)
    write_report(report, args.out)
    for qtype in BALL_IDENTITY_TYPES:
        chosen = [it for it in items if it["type"] == qtype]
        if chosen:
            truth = [str(it["truth_facts"]) for it in chosen]
            pred = [str(it["parsed"]) if it["parsed"] is not None else "unparseable" for it in chosen]
            plot_confusion(truth, pred, args.out / f"confusion_{qtype}.png", f"{qtype} ({args.split})")
    print((args.out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    run_main(main)
