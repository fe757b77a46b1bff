"""Peak memory of loading the paper preset (all 18 LM layers) and answering one question, per load path.

    .venv/bin/python benchmarks/bench_memory.py                  # builds outputs/bench/paper_hub once (~5.4 GB)
    .venv/bin/python benchmarks/bench_memory.py --no-answer      # loading only

The model is the paper preset with a Gemma-2B-shaped LM (width 2048, 18 layers, vocab 256000) and seeded
random weights, saved once as a Hub-style bf16 folder (`bench_paper.py`'s, shared). Each load path runs in a fresh Python process (peak
RSS is per process), then, unless ``--no-answer``, encodes a random 12-frame clip and generates 8 tokens
after a 36-token question (384 vision tokens), so the peak includes the towers' and the prefill's
activations. Baseline: the fp32 load followed by ``.to(torch.bfloat16)``, the way a bf16 process was built
before ``dtype=`` loading was measured (its fp32 copy is the peak).
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "train"))
from bench_paper import FOLDER, GEMMA_2B_LAYERS, make_folder  # noqa: E402  (the same seeded model folder)

import hilight_train  # noqa: E402, F401  (registers the repo root as the package `hilight`)
from hilight.modeling_hilight import HiLightForConditionalGeneration  # noqa: E402

PATHS = {
    "fp32 load, then .to(bf16) (baseline)": {"dtype": "float32", "cast": "bfloat16"},
    "from_pretrained(dtype=torch.bfloat16)": {"dtype": "bfloat16", "cast": None},
    "from_pretrained(dtype=torch.float32)": {"dtype": "float32", "cast": None},
}


def measure(folder: Path, dtype: str, cast: str | None, answer: bool) -> dict:
    """Runs in a fresh process: load time, peak RSS after loading and after one answer (GB)."""
    torch.set_num_threads(2)
    start = time.perf_counter()
    model = HiLightForConditionalGeneration.from_pretrained(folder, dtype=getattr(torch, dtype)).eval()
    if cast:
        model = model.to(getattr(torch, cast))
    loaded = time.perf_counter() - start
    result = {
        "load_s": loaded,
        "peak_after_load_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    result["weights_gb"] = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
    if answer:
        torch.manual_seed(0)
        pixels = torch.randn(1, 12, 3, 224, 224)  # (V, T, 3, H, W); the towers cast to their dtype
        ids = torch.randint(10, 1000, (1, 420))
        ids[:, 1:385] = model.config.video_token_id
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(input_ids=ids, pixel_values_videos=pixels, max_new_tokens=8, do_sample=False)
        result["answer_s"] = time.perf_counter() - start
    result["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--no-answer", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one load path, in a child process
    args = parser.parse_args()
    if args.measure:
        spec = json.loads(args.measure)
        print(json.dumps(measure(args.folder, spec["dtype"], spec["cast"], not args.no_answer)))
        return
    make_folder(args.folder, GEMMA_2B_LAYERS)
    print(f"{'load path':<40} {'load s':>7} {'weights GB':>11} {'peak after load GB':>19} {'peak GB':>8} "
          f"{'answer s':>9} {'peak vs baseline':>17}")  # fmt: skip
    baseline = None
    for name, spec in PATHS.items():
        cmd = [sys.executable, __file__, "--folder", str(args.folder), "--measure", json.dumps(spec)]
        if args.no_answer:
            cmd.append("--no-answer")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        baseline = baseline or r["peak_gb"]
        print(f"{name:<40} {r['load_s']:>7.1f} {r['weights_gb']:>11.2f} {r['peak_after_load_gb']:>19.2f} "
              f"{r['peak_gb']:>8.2f} {r.get('answer_s', float('nan')):>9.1f} {r['peak_gb'] / baseline:>16.2f}x",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
