"""Per-stage latency of HiLight on this CPU: paper preset (random weights) in fp32 and bf16, plus the tiny preset.

    .venv/bin/python benchmarks/bench_model.py                   # paper preset, LM of Gemma-2B width, 2 layers
    .venv/bin/python benchmarks/bench_model.py --lm-layers 18    # the full Gemma-2B depth (~10 GB in fp32)
    .venv/bin/python benchmarks/bench_model.py --repeats 1 --dtypes bf16   # quick look

Stages (one clip of 12 frames at 224 px): CLIP-ViP tower (per-frame attention blocks, and as it ran before:
one attention call over all 2,356 tokens under the (L, L) rule mask); Long-CLIP tower (one batched pass); TokenMining;
LM prefill of 384 vision + 40 text tokens (KV cache on, logits of the last position only); one decoding
step with the cache (mean over --decode-steps). The baseline named for the Long-CLIP ratio is the official
per-frame loop (12 calls of one frame each), measured in the same run.

The LM has Gemma-2B's real shapes (width 2048, 8 heads, 1 KV head, head_dim 256, MLP 16384, vocab 256000)
but, by default, only --lm-layers decoder layers, to fit memory shared with other jobs. Time inside the
decoder layers is measured with hooks, so the table also prints an 18-layer extrapolation (non-layer time +
layer time x 18 / lm_layers), clearly labelled as such. Timings are medians of --repeats after one warm-up.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from _baselines import masked_video_tower
from _timing import timed as timed_seconds

import hilight_train  # noqa: F401  (registers the repo root as the package `hilight`)
from hilight.configuration_hilight import HiLightConfig
from hilight.modeling_hilight import HiLightForConditionalGeneration

GEMMA_2B_LAYERS = 18


def timed(fn, repeats: int) -> float:
    """Median wall time in ms of ``fn()`` after one warm-up call."""
    return timed_seconds(fn, repeats) * 1000


class LayerClock:
    """Accumulates wall time spent inside the LM's decoder layers (forward pre/post hooks)."""

    def __init__(self, layers):
        self.total = 0.0
        self._start = 0.0
        self.handles = []
        for layer in layers:
            self.handles.append(layer.register_forward_pre_hook(self._pre))
            self.handles.append(layer.register_forward_hook(self._post))

    def _pre(self, *_):
        self._start = time.perf_counter()

    def _post(self, *_):
        self.total += (time.perf_counter() - self._start) * 1000


def layer_fraction(clock: LayerClock, fn) -> float:
    """Share of one call of ``fn`` spent inside the decoder layers."""
    clock.total = 0.0
    start = time.perf_counter()
    fn()
    return clock.total / ((time.perf_counter() - start) * 1000)


def bench_paper(dtype: torch.dtype, lm_layers: int, repeats: int, decode_steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    config = HiLightConfig.from_preset(
        "paper",
        video_token_id=7,
        video_config={"use_text_encoder": False},
        image_config={"use_text_encoder": False},
        text_config={"num_hidden_layers": lm_layers},
    )
    model = HiLightForConditionalGeneration(config).eval().to(dtype)
    pixels = torch.randn(1, 12, 3, 224, 224).to(dtype)  # (V, T, 3, H, W)
    lm = model.language_model
    results: dict[str, float] = {}
    with torch.inference_mode():
        hidden = model.video_tower(pixels)
        frames = model.image_tower(pixels)
        results["CLIP-ViP tower"] = timed(lambda: model.video_tower(pixels), repeats)
        results["CLIP-ViP, one masked call (before)"] = timed(
            lambda: masked_video_tower(model.video_tower, pixels), repeats
        )
        results["Long-CLIP tower (batched)"] = timed(lambda: model.image_tower(pixels), repeats)
        results["Long-CLIP per-frame loop (official)"] = timed(
            lambda: torch.stack([model.image_tower.encode_image(pixels[:, t]) for t in range(12)], dim=1),
            repeats,
        )
        results["TokenMining"] = timed(lambda: model.token_mining(hidden, frames), repeats)

        ids = torch.randint(10, 1000, (1, 424))
        ids[:, 1:385] = config.video_token_id
        video = model.token_mining(hidden, frames)[0]
        embeds = model.embed_inputs(ids, video)  # (1, 424, 2048)
        clock = LayerClock(lm.model.layers)

        def prefill():
            return lm(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)

        results["LM prefill 384+40"] = timed(prefill, repeats)
        results["  of which decoder layers"] = results["LM prefill 384+40"] * layer_fraction(clock, prefill)

        cache = prefill().cache
        token = torch.tensor([[42]])

        def decode():
            return lm(input_ids=token, cache=cache, use_cache=True)  # the cache grows as in generation

        results["LM per generated token"] = timed(decode, decode_steps)
        results["  of which decoder layers (token)"] = results["LM per generated token"] * layer_fraction(
            clock, decode
        )
        for handle in clock.handles:
            handle.remove()
    for stage, layers_key in [("LM prefill 384+40", "  of which decoder layers"),
                              ("LM per generated token", "  of which decoder layers (token)")]:  # fmt: skip
        rest = results[stage] - results[layers_key]
        results[f"{stage}, extrapolated to {GEMMA_2B_LAYERS} layers"] = (
            rest + results[layers_key] * GEMMA_2B_LAYERS / lm_layers
        )
    return results


def bench_tiny(dtype: torch.dtype, repeats: int) -> float:
    """One clip through the tiny preset: both towers + TokenMining + a 96+40 token prefill."""
    torch.manual_seed(0)
    config = HiLightConfig.from_preset("tiny")
    model = HiLightForConditionalGeneration(config).eval().to(dtype)
    pixels = torch.randn(1, config.num_frames, 3, *config.video_config.frame_size).to(
        dtype
    )  # (V, T, 3, H, W)
    ids = torch.randint(10, 1000, (1, config.tokens_per_video + 40))
    ids[:, 1 : 1 + config.tokens_per_video] = config.video_token_id
    with torch.inference_mode():
        return timed(
            lambda: model(input_ids=ids, pixel_values=pixels, use_cache=True, logits_to_keep=1), repeats
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lm-layers", type=int, default=2, help="decoder layers of the Gemma-2B-shaped LM")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decode-steps", type=int, default=8)
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    names = args.dtypes.split(",")
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{args.threads} threads; paper preset, random weights, LM = Gemma-2B shapes with "
          f"{args.lm_layers} of {GEMMA_2B_LAYERS} layers")  # fmt: skip
    table = {
        name: bench_paper(dtypes[name], args.lm_layers, args.repeats, args.decode_steps) for name in names
    }
    tiny = {name: bench_tiny(dtypes[name], max(args.repeats, 5)) for name in names}
    stages = list(next(iter(table.values())))
    width = max(map(len, stages)) + 2
    print(f"\n{'stage (ms, median)':<{width}}" + "".join(f"{n:>12}" for n in names)
          + ("   bf16 speed-up" if len(names) == 2 else ""))  # fmt: skip
    for stage in stages:
        row = [table[n][stage] for n in names]
        ratio = f"   x{row[0] / row[1]:.2f}" if len(row) == 2 else ""
        print(f"{stage:<{width}}" + "".join(f"{v:>12.1f}" for v in row) + ratio)
    for name in names:
        r = table[name]
        print(f"{name}: CLIP-ViP frame blocks vs one masked call: "
              f"x{r['CLIP-ViP, one masked call (before)'] / r['CLIP-ViP tower']:.2f} faster")  # fmt: skip
        print(f"{name}: Long-CLIP batched pass vs official per-frame loop: "
              f"x{r['Long-CLIP per-frame loop (official)'] / r['Long-CLIP tower (batched)']:.2f} faster")  # fmt: skip
    for name in names:
        print(
            f"tiny preset, one clip (towers + TokenMining + prefill of 96+40 tokens), {name}: {tiny[name]:.1f} ms"
        )


if __name__ == "__main__":
    main()
