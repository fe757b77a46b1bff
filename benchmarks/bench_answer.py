"""Answer time of the bundled default model: one question about an example clip, from the file to the whole
answer, warm per inference path, and cold (follow-ups in a session: `bench_chat.py`).

    .venv/bin/python benchmarks/bench_answer.py                 # the model at the repo root, 2 threads
    .venv/bin/python benchmarks/bench_answer.py --model outputs/default/final --threads 1 --repeats 7

Per example clip of `examples/questions.json` (its first question): `model.chat(processor, clip, question)`
(decode + both towers + TokenMining + prefill + greedy decoding to the end of the answer). One warm-up
answer per clip, then the median of --repeats. Paths: fp32 (the baseline of the ratios), bf16 with the conv
stems in NCHW memory (how they ran before channels-last), bf16 (the config's dtype), bf16 with the LM int8
weight-only (`int8_lm_config`, optimum-quanto), and the default (no dtype given: the
model's own choice, bf16 on a CPU with bf16 instructions, else fp32). Cold: a fresh Python process that
imports transformers, loads the model from the folder and answers the first question (`make demo`'s first
answer), timed from its start to its exit, median of --repeats, with dtype=bfloat16 and with the default in
turn.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch
from transformers import AutoModel, AutoProcessor

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "train"))
from _timing import timed  # noqa: E402

from hilight.modeling_hilight import cpu_has_fast_bf16  # noqa: E402
from hilight_train.model_folder import int8_lm_config  # noqa: E402  (registers the root as `hilight`)

COLD = """
import sys, torch
from transformers import AutoModel, AutoProcessor
torch.set_num_threads(int(sys.argv[3]))
dtype = {} if sys.argv[5] == "default" else {"dtype": getattr(torch, sys.argv[5])}
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True, **dtype).eval()
processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
print(model.chat(processor, sys.argv[2], sys.argv[4])[0])
"""


def load(folder: str, path: str):
    if path == "default":  # no dtype: the model's own choice for this CPU
        return AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    kwargs = {"dtype": torch.float32 if path == "fp32" else torch.bfloat16}
    if path == "bf16 + int8 LM":
        kwargs["quantization_config"] = int8_lm_config()
    model = AutoModel.from_pretrained(folder, trust_remote_code=True, **kwargs).eval()
    if path == "bf16, NCHW stems":
        for stem in (model.video_tower.patch_embedding, model.image_tower.patch_embedding):
            stem.memory_format = torch.contiguous_format
    return model


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
    paths = ("fp32", "bf16, NCHW stems", "bf16", "bf16 + int8 LM", "default")
    rows = []
    for path in paths:
        model = load(str(args.model), path)
        if path == "default":
            default_dtype = str(model.dtype).removeprefix("torch.")
        for clip, question in by_clip.items():
            answer = partial(model.chat, processor, str(args.examples / clip), question)
            rows.append((path, clip, timed(answer, args.repeats)))
    clip, question = next(iter(by_clip.items()))
    cold_cmd = [
        sys.executable,
        "-c",
        COLD,
        str(args.model),
        str(args.examples / clip),
        str(args.threads),
        question,
    ]
    cold: dict[str, list[float]] = {"bfloat16": [], "default": []}
    for _ in range(args.repeats):
        for dtype, times in cold.items():  # in turn
            start = time.perf_counter()
            subprocess.run([*cold_cmd, dtype], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 instructions: {cpu_has_fast_bf16()}; "
          f"the default path loaded in {default_dtype}")  # fmt: skip
    print(f"threads {args.threads}, median of {args.repeats} after one warm-up, seconds per whole answer\n")
    print("| path | " + " | ".join(by_clip) + " | median | vs fp32 |")
    print("|---|" + "---|" * (len(by_clip) + 2))
    medians = {p: statistics.median(t for q, _, t in rows if q == p) for p in paths}
    for path in paths:
        times = " | ".join(f"{t:.3f}" for q, _, t in rows if q == path)
        print(f"| {path} | {times} | {medians[path]:.3f} | {medians['fp32'] / medians[path]:.2f}x |")
    print(
        f"\ncold (fresh process: imports, load, first answer on {clip}), median: "
        + ", ".join(f"{dtype} {statistics.median(t):.2f} s" for dtype, t in cold.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
