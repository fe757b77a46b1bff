"""bf16 where the CPU computes it natively: the measuring and probing code's autocast."""

from __future__ import annotations

import torch

from hilight.modeling_hilight import cpu_has_fast_bf16


def cpu_autocast(enabled: bool = True) -> torch.autocast:
    """bf16 autocast on a CPU with bf16 instructions; off elsewhere, where bf16 products are emulated and fp32
    is the faster dtype (``cpu_has_fast_bf16``)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled and cpu_has_fast_bf16())
