"""fp32 vs bf16 on this CPU: why the model and the training scripts pick the dtype by the CPU's instructions.

On CPUs with bf16 instructions (x86 AVX-512 BF16 or AMX) PyTorch's bf16 matrix products run natively and
beat fp32; elsewhere (e.g. AVX2-only CPUs) they are emulated. Measured in turn in one run, same inputs:
a 1024^3 matrix product (GFLOP/s), and one stage-0 training step of the tiny preset (forward + backward +
AdamW on a fixed batch of stream scenes, `bench_stage0.py`'s) in fp32 and under bf16 autocast.

    python benchmarks/bench_dtype.py                  # 4 rows x 3 frames, 2 threads, median of 2 steps
    python benchmarks/bench_dtype.py --rows 16 --steps 3

(the bundled model's answer per dtype: `bench_answer.py`)
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import torch
from _timing import timed
from bench_stage0 import stage0_setup, train_step

from hilight.modeling_hilight import cpu_has_fast_bf16, preferred_cpu_dtype


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    n = 1024
    gemm = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        gemm[dtype] = 2 * n**3 / timed(lambda a=a, b=b: a @ b, 5) / 1e9
    _, net, optimizer, batch = stage0_setup(args.rows, 3)
    step = {
        bf16: timed(partial(train_step, net, optimizer, batch, bf16), args.steps) for bf16 in (False, True)
    }
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 instructions: {cpu_has_fast_bf16()}, "
          f"preferred dtype {preferred_cpu_dtype()}; {args.threads} threads")  # fmt: skip
    print("| | fp32 | bf16 | bf16 / fp32 time |")
    print("|---|---|---|---|")
    f32, b16 = gemm[torch.float32], gemm[torch.bfloat16]
    print(f"| {n}^3 matrix product | {f32:.1f} GFLOP/s | {b16:.1f} GFLOP/s | {f32 / b16:.2f}x |")
    print(f"| stage-0 step, {args.rows} rows x 3 frames | {step[False]:.2f} s | {step[True]:.2f} s | "
          f"{step[True] / step[False]:.2f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
