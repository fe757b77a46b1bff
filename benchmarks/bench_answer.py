"""Warm answer time of the bundled default model: one question about an example clip, from the file to the
whole answer, in fp32 and bf16 (follow-ups in a session: `bench_chat.py`).

    .venv/bin/python benchmarks/bench_answer.py                 # the model at the repo root, 2 threads
    .venv/bin/python benchmarks/bench_answer.py --model outputs/default/final --threads 1 --repeats 7

Per example clip of `examples/questions.json` (its first question): `model.chat(processor, clip, question)`
(decode + both towers + TokenMining + prefill + greedy decoding to the end of the answer). One warm-up
answer per clip, then the median of --repeats. The baseline of the ratio is fp32 in the same run.
"""

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

import torch
from transformers import AutoModel, AutoProcessor

REPO_ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=REPO_ROOT)
    p.add_argument("--examples", type=Path, default=REPO_ROOT / "examples")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    questions = json.loads((args.examples / "questions.json").read_text())
    by_clip: dict[str, str] = {}
    for q in questions:
        by_clip.setdefault(q["clip"], q["question"])
    processor = AutoProcessor.from_pretrained(str(args.model), trust_remote_code=True)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        model = AutoModel.from_pretrained(str(args.model), trust_remote_code=True, dtype=dtype).eval()
        for clip, question in by_clip.items():
            answer = partial(model.chat, processor, str(args.examples / clip), question)
            rows.append((str(dtype).removeprefix("torch."), clip, timed(answer, args.repeats)))
    print(f"threads {args.threads}, median of {args.repeats} after one warm-up, seconds per whole answer\n")
    print("| dtype | clip | first question (from the file) |")
    print("|---|---|---|")
    for dtype, clip, t in rows:
        print(f"| {dtype} | {clip} | {t:.3f} |")
    fp32 = statistics.median(t for d, _, t in rows if d == "float32")
    bf16 = statistics.median(t for d, _, t in rows if d == "bfloat16")
    print(f"\nmedian over clips: fp32 {fp32:.3f} s, bf16 {bf16:.3f} s (fp32 / bf16 = {fp32 / bf16:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
