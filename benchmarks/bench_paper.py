"""Inference at the paper's shape on a CPU, every stage of one answer, each inference path against a baseline.

    .venv/bin/python benchmarks/bench_paper.py                 # builds outputs/bench/paper_hub once (~5.4 GB)
    .venv/bin/python benchmarks/bench_paper.py --repeats 1 --paths bf16 bf16-int8   # quick look
    .venv/bin/python benchmarks/bench_paper.py --lm-layers 2 --repeats 1            # a smoke run

The model is the paper preset (CLIP-ViP-B/16 and Long-CLIP-B/16, TokenMining, a Gemma-2B-shaped LM with all 18
layers and its 256,000-token vocabulary) with seeded random weights, saved once as a Hub-style bf16 folder
with a small tokenizer, so each path loads it the way a user does. Each path runs in a fresh process (peak
RSS is per process) on the same clip (12 frames of a 320x240 H.264 clip) and question (the chat template's
prompt: 384 vision tokens and the question's), greedy, with the stop tokens suppressed so every answer has --new-tokens tokens.

Paths:
    baseline    how the code ran before this benchmark's changes: fp32 load then `.to(bfloat16)`, the clip
                decoded in a forked child, CLIP-ViP's attention as one masked call over all tokens
    bf16        `from_pretrained(dtype=torch.bfloat16)`, decoded in process, CLIP-ViP per-frame blocks
    bf16-int8   bf16, the LM's linear layers int8 weight-only (`hilight_train.model_folder.int8_lm_config`:
                transformers' `QuantoConfig`, optimum-quanto; towers, TokenMining and the tied output head
                stay bf16)
    fp32        `from_pretrained(dtype=torch.float32)`, the exact path

Stages: decode + preprocess (the processor on the file), each tower, TokenMining, prefill of the 420 tokens;
time to first token of a first answer from the file (`model.chat`, a fresh session) and of a follow-up
question in that session (one new token each); per generated token ((time of N tokens - time of 1) / (N - 1));
peak RSS. The bf16
GEMM peak of the machine (a 2048^3 matrix product) is measured in each process, and the prefill's rate is
given as a fraction of it. Medians of --repeats after one warm-up. Every figure is printed as a ratio to the
baseline path measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "train"))
sys.path.insert(0, str(REPO_ROOT / "tests"))
from _baselines import masked_video_tower  # noqa: E402
from _chat_utils import SENTENCES, write_clip  # noqa: E402
from _timing import timed  # noqa: E402

import hilight_train  # noqa: E402, F401  (registers the repo root as the package `hilight`)
from hilight.configuration_hilight import HiLightConfig  # noqa: E402
from hilight.modeling_hilight import HiLightForConditionalGeneration  # noqa: E402
from hilight.processing_hilight import HiLightProcessor, HiLightVideoProcessor  # noqa: E402
from hilight_train.model_folder import int8_lm_config  # noqa: E402

FOLDER = REPO_ROOT / "outputs" / "bench" / "paper_hub"
QUESTIONS = ("Which balls were potted?", "Was it a foul?")
GEMMA_2B_LAYERS = 18
PATHS = {
    "baseline": {"dtype": "float32", "cast": "bfloat16", "fork": True, "masked": True, "int8": False},
    "bf16": {"dtype": "bfloat16", "cast": None, "fork": False, "masked": False, "int8": False},
    "bf16-int8": {"dtype": "bfloat16", "cast": None, "fork": False, "masked": False, "int8": True},
    "fp32": {"dtype": "float32", "cast": None, "fork": False, "masked": False, "int8": False},
}


def make_folder(folder: Path, lm_layers: int) -> None:
    """The paper preset with seeded random weights (built in bf16), a small tokenizer and its processor."""
    if (folder / "config.json").exists():
        return
    from hilight_train.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(SENTENCES * 40, vocab_size=300)
    torch.manual_seed(0)
    config = HiLightConfig.from_preset(
        "paper",
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        video_config={"use_text_encoder": False},
        image_config={"use_text_encoder": False},
        text_config={"num_hidden_layers": lm_layers},
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = HiLightForConditionalGeneration(config).eval()
    finally:
        torch.set_default_dtype(previous)
    model.config.dtype = "bfloat16"
    # a random LM may stop at once: no stop tokens, so every answer is as long as asked
    model.generation_config.suppress_tokens = tokenizer.convert_tokens_to_ids(["<eos>", "<end_of_turn>"])
    processor = HiLightProcessor(
        HiLightVideoProcessor(num_frames=config.num_frames),
        tokenizer,
        tokens_per_frame=config.token_mining_config.queries_per_frame,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    print(
        f"saved {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters to {folder}", flush=True
    )


def gemm_peak(dtype: torch.dtype, repeats: int) -> float:
    """GFLOP/s of a 2048^3 matrix product in ``dtype``."""
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    return 2 * 2048**3 / timed(lambda: a @ b, max(repeats, 5)) / 1e9


def measure(folder: Path, clip: Path, spec: dict, repeats: int, new_tokens: int) -> dict:
    """Runs in a fresh process: every stage of one path (seconds), peak RSS (GB)."""
    torch.set_num_threads(2)
    kwargs = {"dtype": getattr(torch, spec["dtype"])}
    if spec["int8"]:
        kwargs["quantization_config"] = int8_lm_config()
    start = time.perf_counter()
    model = HiLightForConditionalGeneration.from_pretrained(folder, **kwargs).eval()
    if spec["cast"]:
        model = model.to(getattr(torch, spec["cast"]))
    r = {"load": time.perf_counter() - start}
    processor = HiLightProcessor.from_pretrained(folder, trust_remote_code=True)
    processor.video_processor.decode_in_subprocess = spec["fork"]
    dtype = model.video_tower.class_embedding.dtype
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTIONS[0]}]}],
        add_generation_prompt=True, tokenize=False,
    )  # fmt: skip
    with torch.inference_mode():
        r["decode + preprocess"] = timed(
            lambda: processor(text=text, videos=[str(clip)], return_tensors="pt"), repeats
        )
        inputs = processor(text=text, videos=[str(clip)], return_tensors="pt")
        ids = inputs["input_ids"]  # (1, S): the vision tokens' placeholders expanded
        r["prompt tokens"] = ids.shape[1]
        pixels = inputs["pixel_values_videos"]
        video_tower = masked_video_tower if spec["masked"] else (lambda tower, px: tower(px))
        r["CLIP-ViP"] = timed(lambda: video_tower(model.video_tower, pixels), repeats)
        r["Long-CLIP"] = timed(lambda: model.image_tower(pixels), repeats)
        hidden, frames = model.video_tower(pixels), model.image_tower(pixels)
        r["TokenMining"] = timed(lambda: model.token_mining(hidden, frames), repeats)
        embeds = model.embed_inputs(ids, model.token_mining(hidden, frames)[0])  # (1, S, 2048)
        lm = model.language_model
        r["prefill"] = timed(lambda: lm(inputs_embeds=embeds, logits_to_keep=1), repeats)

        def generate(n: int) -> None:
            lm.generate(inputs_embeds=embeds, max_new_tokens=n, min_new_tokens=n, do_sample=False)

        r["per generated token"] = (
            timed(lambda: generate(new_tokens), 1) - timed(lambda: generate(1), 1)
        ) / (new_tokens - 1)

    def first_and_follow_up() -> tuple[float, float]:
        session = model.start_chat(processor)
        start = time.perf_counter()
        session.ask(QUESTIONS[0], video=str(clip), max_new_tokens=1)
        first = time.perf_counter() - start
        start = time.perf_counter()
        session.ask(QUESTIONS[1], max_new_tokens=1)
        return first, time.perf_counter() - start

    first_and_follow_up()  # warm-up
    turns = [first_and_follow_up() for _ in range(repeats)]
    r["first answer, time to first token"] = statistics.median(t[0] for t in turns)
    r["follow-up, time to first token"] = statistics.median(t[1] for t in turns)
    r["peak RSS GB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    flops = 2 * sum(p.numel() for p in lm.model.layers.parameters()) * ids.shape[1]  # the layers' GEMMs
    r["prefill share of GEMM peak"] = flops / r["prefill"] / 1e9 / gemm_peak(dtype, repeats)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--paths", nargs="*", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument(
        "--lm-layers", type=int, default=GEMMA_2B_LAYERS, help="decoder layers (Gemma-2B: 18)"
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one path, in a child process
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        r = measure(args.folder, args.clip, PATHS[args.measure], args.repeats, args.new_tokens)
        print(json.dumps(r))
        return
    if args.lm_layers != GEMMA_2B_LAYERS and args.folder == FOLDER:
        args.folder = FOLDER.with_name(f"{FOLDER.name}_{args.lm_layers}_layers")
    make_folder(args.folder, args.lm_layers)
    paths = ["baseline", *[p for p in args.paths if p != "baseline"]]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip.mp4", num_frames=120, fps=30, height=240, width=320)
        for name in paths:
            cmd = [sys.executable, __file__, "--folder", str(args.folder), "--clip", str(clip), "--measure", name,
                   "--repeats", str(args.repeats), "--new-tokens", str(args.new_tokens)]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()
            results[name] = json.loads(out[-1])
            print(f"{name}: {json.dumps(results[name])}", flush=True)
    base = results["baseline"]
    print(
        f"\npaper preset, {args.lm_layers} LM layers, 2 threads, median of {args.repeats}; (ratio to the baseline)"
    )
    print("| stage | " + " | ".join(paths) + " |")
    print("|---|" + "---|" * len(paths))
    for stage in base:
        cells = []
        for name in paths:
            v = results[name][stage]
            plain = "share" in stage or "tokens" in stage or "GB" in stage
            shown = f"{v:.3g}" if plain else (f"{v:.2f} s" if v >= 1 else f"{v * 1e3:.0f} ms")
            ratio = "" if name == "baseline" or (plain and "GB" not in stage) else f" ({v / base[stage]:.2f})"
            cells.append(shown + ratio)
        print(f"| {stage} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
