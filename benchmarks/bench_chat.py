"""Time to first token in a conversation: a chat session vs the naive path that redoes everything per turn.

    .venv/bin/python benchmarks/bench_chat.py                       # tiny preset + paper towers (2 LM layers)
    .venv/bin/python benchmarks/bench_chat.py --configs tiny --repeats 5
    .venv/bin/python benchmarks/bench_chat.py --configs paper --lm-layers 18   # Gemma-2B depth (~10 GB fp32)

Measured (random weights, fp32, one 10 s 640x360 H.264 clip, greedy):
- session, first question: `session.ask(q1, video=clip)`: decode + both towers + TokenMining + prefill.
- session, follow-up: `session.ask(q2)` on the same clip: only the new turn's tokens are prefilled.
- naive (baseline), first question and follow-up: what the official demo does on every turn: the processor decodes the clip
  again and tokenizes the whole conversation, `generate` runs both towers again and prefills the whole
  conversation from scratch.
Time to first token = from the call until the first generated token reaches a streamer. The ratio is
naive follow-up / session follow-up (goal: >= 10x). Medians of --repeats after one warm-up.

Configs: "tiny" is the tiny preset (12 frames, 96 vision tokens); "paper" has the paper's towers and
TokenMining (12 x 32 = 384 vision tokens of width 2048) and an LM with Gemma-2B's width but --lm-layers
layers and a 300-token vocabulary (the test tokenizer), to fit the memory shared with other jobs.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers.generation.streamers import BaseStreamer

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "train"))
sys.path.insert(0, str(REPO_ROOT / "tests"))
from _chat_utils import SENTENCES, write_clip  # noqa: E402

import hilight_train  # noqa: E402, F401  (registers the repo root as the package `hilight`)
from hilight.configuration_hilight import HiLightConfig  # noqa: E402
from hilight.modeling_hilight import HiLightForConditionalGeneration  # noqa: E402
from hilight.processing_hilight import HiLightProcessor, HiLightVideoProcessor  # noqa: E402
from hilight_train.tokenizer import train_tokenizer  # noqa: E402

QUESTIONS = ("Which balls were potted?", "Was it a foul?")
FIRST_ANSWER_TOKENS = 16


class FirstToken(BaseStreamer):
    """Records when the first generated token arrives (generate's first `put` is the prompt)."""

    def __init__(self):
        self.puts = 0
        self.at: float | None = None

    def put(self, value):
        self.puts += 1
        if self.puts == 2 and self.at is None:
            self.at = time.perf_counter()

    def end(self):
        pass


def make_model(preset: str, lm_layers: int) -> tuple[HiLightForConditionalGeneration, HiLightProcessor]:
    tokenizer = train_tokenizer(SENTENCES * 40, vocab_size=300)
    text = {"vocab_size": len(tokenizer)}
    if preset == "paper":
        text["num_hidden_layers"] = lm_layers
    config = HiLightConfig.from_preset(preset, video_token_id=6, text_config=text)
    torch.manual_seed(0)
    model = HiLightForConditionalGeneration(config).eval()
    # Keep answers going (a random LM may stop at once): no stop tokens for this timing run.
    model.generation_config.suppress_tokens = tokenizer.convert_tokens_to_ids(["<eos>", "<end_of_turn>"])
    processor = HiLightProcessor(
        HiLightVideoProcessor(num_frames=config.num_frames),
        tokenizer,
        tokens_per_frame=config.token_mining_config.queries_per_frame,
    )
    return model, processor


def naive_turn(model, processor, messages, clip) -> float:
    """The official demo's turn: decode, tokenize everything, towers + full prefill. Returns TTFT in s."""
    start = time.perf_counter()
    template = [
        {
            "role": m["role"],
            "content": [{"type": "video"} if p["type"] == "video" else p for p in m["content"]]
            if isinstance(m["content"], list)
            else m["content"],
        }
        for m in messages
    ]
    text = processor.apply_chat_template(template, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=text, videos=[str(clip)], return_tensors="pt")
    inputs.pop("video_metadata", None)
    streamer = FirstToken()
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=2, do_sample=False, streamer=streamer)
    return streamer.at - start


def session_turns(model, processor, clip) -> tuple[float, float, list]:
    """TTFT of the first question and of the follow-up in a fresh session; and the conversation so far."""
    session = model.start_chat(processor)
    streamer = FirstToken()
    start = time.perf_counter()
    session.ask(QUESTIONS[0], video=clip, streamer=streamer, max_new_tokens=FIRST_ANSWER_TOKENS)
    first = streamer.at - start
    messages = [*session.messages, {"role": "user", "content": QUESTIONS[1]}]
    streamer = FirstToken()
    start = time.perf_counter()
    session.ask(QUESTIONS[1], streamer=streamer, max_new_tokens=2)
    follow_up = streamer.at - start
    assert session.tower_calls == 1 and session.last_stats.encoded_videos == 0
    return first, follow_up, messages


def bench(name: str, model, processor, clip, repeats: int) -> dict:
    session_turns(model, processor, clip)  # warm-up
    firsts, follow_ups, messages = [], [], None
    for _ in range(repeats):
        first, follow_up, messages = session_turns(model, processor, clip)
        firsts.append(first)
        follow_ups.append(follow_up)
    naive_turn(model, processor, messages, clip)  # warm-up
    naive = [naive_turn(model, processor, messages, clip) for _ in range(repeats)]
    naive_first = [naive_turn(model, processor, messages[:1], clip) for _ in range(repeats)]
    row = {
        "config": name,
        "session_first_ms": 1000 * statistics.median(firsts),
        "session_follow_up_ms": 1000 * statistics.median(follow_ups),
        "naive_follow_up_ms": 1000 * statistics.median(naive),
        "naive_first_ms": 1000 * statistics.median(naive_first),
    }
    row["ratio"] = row["naive_follow_up_ms"] / row["session_follow_up_ms"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", default=["tiny", "paper"], choices=["tiny", "paper"])
    parser.add_argument("--lm-layers", type=int, default=2, help="LM layers of the paper config")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip.mp4", num_frames=300, fps=30, height=360, width=640)
        for name in args.configs:
            model, processor = make_model(name, args.lm_layers)
            label = name if name == "tiny" else f"paper towers, LM {args.lm_layers} layers"
            rows.append(bench(label, model, processor, clip, args.repeats))
            del model
    print(
        f"time to first token, median of {args.repeats} (torch threads: {args.threads}); baseline = naive path"
    )
    header = ["config", "naive 1st q", "session 1st q", "naive follow-up", "session follow-up", "speed-up"]
    print(f"{header[0]:32} " + " ".join(f"{h:>17}" for h in header[1:]))
    for r in rows:
        times = [
            r[k] for k in ("naive_first_ms", "session_first_ms", "naive_follow_up_ms", "session_follow_up_ms")
        ]
        print(f"{r['config']:32} " + " ".join(f"{t:>14.1f} ms" for t in times) + f" {r['ratio']:>16.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
