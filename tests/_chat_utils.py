"""Helpers for the chat, Space and browser tests (and benchmarks/bench_chat.py): a tiny random-weight
HiLight model folder saved the Hub way, and small synthetic billiards-like clips written with PyAV.

The model folder is what the bundled default model will look like (config, safetensors, tokenizer,
processor, the root code files) with random weights; loading it back with `trust_remote_code=True` runs
exactly the files a Hub user gets.
"""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from hilight_train.model_folder import init_model_folder

SENTENCES = [
    "Which balls were potted?",
    "The 8-ball was potted in the corner pocket.",
    "Was it a foul? No foul: the cue ball hit the 3-ball first.",
    "Describe the shot. The cue ball rolled up the table and the red ball dropped.",
    "How many balls moved? Three balls moved.",
]


def build_tiny_model(path: Path, num_frames: int = 4, seed: int = 0, **overrides) -> Path:
    """Save a random tiny-preset HiLight (model + tokenizer + processor) to `path` and return it.

    The LM's matrices and TokenMining get a larger random init than the default (std 0.2 / 0.1) so that
    greedy answers vary with the video and the question instead of repeating one token: tests that compare
    answers then compare something."""
    path = Path(path)
    model, processor = init_model_folder(
        None, SENTENCES * 40, preset="tiny", vocab_size=300, seed=seed, num_frames=num_frames, **overrides
    )
    tokenizer = processor.tokenizer
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        model.video_tower.temporal_embedding.normal_(std=0.1, generator=generator)
        for name, param in model.language_model.named_parameters():
            if param.ndim == 2 and "embed" not in name:
                param.normal_(std=0.2, generator=generator)
        for param in model.token_mining.parameters():
            if param.ndim == 2:
                param.normal_(std=0.1, generator=generator)
    # A random LM emits template tokens and raw bytes that a trained one would not: keep its answers to
    # printable ASCII pieces (and the stop tokens), so that pages and tests show readable text.
    keep = {tokenizer.convert_tokens_to_ids(t) for t in ("<eos>", "<end_of_turn>")}

    def readable(i: int) -> bool:
        text = tokenizer.decode([i])
        return i in keep or (i not in tokenizer.all_special_ids and text.isascii() and text.isprintable())

    model.generation_config.suppress_tokens = [i for i in range(len(tokenizer)) if not readable(i)]
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def billiards_frame(index: int, height: int, width: int, seed: int) -> np.ndarray:
    """uint8 (H, W, 3): green cloth, brown cushions, a few coloured balls that move with `index`."""
    rng = np.random.default_rng(seed)
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:] = (40, 30, 20)
    border = max(2, height // 12)
    frame[border:-border, border:-border] = (20, 110 + 10 * (seed % 3), 50)
    yy, xx = np.mgrid[0:height, 0:width]
    radius = max(2, height // 16)
    for _ in range(4):
        colour = rng.integers(60, 255, size=3)
        y0, x0 = rng.uniform(0.25, 0.75) * height, rng.uniform(0.2, 0.8) * width
        vy, vx = rng.uniform(-1.5, 1.5, size=2)
        y = np.clip(y0 + vy * index, border + radius, height - border - radius)
        x = np.clip(x0 + vx * index, border + radius, width - border - radius)
        frame[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = colour
    return frame


def write_clip(
    path: Path, num_frames: int = 24, fps: int = 12, height: int = 96, width: int = 128, seed: int = 0
) -> Path:
    """Write a short H.264 MP4 of a synthetic table with moving balls (decord reads it; browsers play it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"preset": "ultrafast"}
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(billiards_frame(i, height, width, seed), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_corrupt(path: Path, source: Path | None = None) -> Path:
    """A file named like a video that is not one: the first half of a real clip (truncated MP4), or text."""
    path = Path(path)
    data = Path(source).read_bytes()[: Path(source).stat().st_size // 2] if source else b"not a video\n" * 50
    path.write_bytes(data)
    return path
