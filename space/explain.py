"""TokenMining attention overlays: where an answer drew on the video, drawn on the sampled frames.

    python space/explain.py --model DIR_OR_HUB_ID --video clip.mp4 --question "Which balls were potted?" \
        --out overlay.png [--max-new-tokens 64] [--method answer-attention|uniform]

What the overlay shows (computed by `HiLightChatSession.explain`, chat_hilight.py in the model repo):
for the answer's tokens, the language model's attention to each of the clip's vision tokens (mean over
layers, heads and the positions that produced the answer), normalised over that clip's vision tokens and
multiplied by TokenMining's attention from each vision token to CLIP-ViP's tokens. That gives a
distribution over CLIP-ViP's tokens; its patch part is drawn here, one square per CLIP-ViP patch (e.g. a
7 x 7 grid for the tiny preset, 14 x 14 for the paper's ViT-B/16), stretched over the whole frame because
the model sees each frame resized to a square without keeping its aspect. Colours use one scale per clip
(the hottest patch of any frame = full colour), so frames can be compared. The remainder of the mass went
to CLIP-ViP's leading tokens (CLS + video proxies), which have no place in the image; the caption gives
that share. With `--method uniform` every vision token counts the same: TokenMining's attention alone,
independent of the question and the answer.

The functions here need numpy, Pillow and matplotlib only; the Space imports them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

COLORMAP = "inferno"


def overlay_frame(frame: np.ndarray, grid: np.ndarray, vmax: float, alpha: float = 0.55) -> np.ndarray:
    """uint8 (H, W, 3) frame with a (gh, gw) heatmap blended on top, one flat square per patch.

    `vmax` is the value drawn at full colour (values are clipped to [0, vmax]); the blend weight grows
    with the value, so patches the answer ignored keep the frame visible."""
    frame = np.asarray(frame, dtype=np.uint8)
    height, width = frame.shape[:2]
    scaled = np.clip(np.asarray(grid, dtype=np.float64) / max(vmax, 1e-12), 0.0, 1.0)  # (gh, gw)
    colours = colormaps[COLORMAP](scaled)[..., :3]  # (gh, gw, 3) in [0, 1]
    rows = np.minimum((np.arange(height) * grid.shape[0]) // height, grid.shape[0] - 1)  # patch row per pixel
    cols = np.minimum((np.arange(width) * grid.shape[1]) // width, grid.shape[1] - 1)
    colour = colours[rows[:, None], cols[None, :]]  # (H, W, 3)
    weight = alpha * (0.25 + 0.75 * scaled[rows[:, None], cols[None, :]])[..., None]  # (H, W, 1)
    blended = (1 - weight) * frame / 255.0 + weight * colour
    return np.clip(blended * 255 + 0.5, 0, 255).astype(np.uint8)


def overlay_frames(frames: np.ndarray, heatmap: np.ndarray, alpha: float = 0.55) -> list[np.ndarray]:
    """Overlays for a clip: frames uint8 (T, H, W, 3), heatmap (T, gh, gw) -> T uint8 images, one scale."""
    if len(frames) != len(heatmap):
        raise ValueError(f"{len(frames)} frames but a heatmap for {len(heatmap)} frames")
    vmax = float(np.max(heatmap)) if np.size(heatmap) else 1.0
    return [overlay_frame(f, h, vmax, alpha) for f, h in zip(frames, heatmap, strict=True)]


def frame_captions(heatmap: np.ndarray, timestamps: list[float] | None) -> list[str]:
    """Per frame: its number, its time and the share of the clip's patch mass it received."""
    total = float(np.sum(heatmap)) or 1.0
    captions = []
    for i, grid in enumerate(heatmap):
        when = f" · {timestamps[i]:.2f} s" if timestamps else ""
        captions.append(f"frame {i + 1}{when} · {100 * float(np.sum(grid)) / total:.0f}%")
    return captions


def describe(explanation: Any) -> str:
    """Markdown that says what the overlay shows, with the explanation's numbers."""
    lines = [
        f"**Explained answer** (turn {explanation.turn + 1}): “{explanation.answer.strip() or '(empty)'}”",
        "",
    ]
    if explanation.method == "uniform":
        lines.append(
            "Colour = TokenMining attention from all of the clip's vision tokens (weighted equally) to each "
            "CLIP-ViP patch; it does not depend on the question."
        )
    else:
        lines.append(
            "Colour = how much each CLIP-ViP patch contributed to the vision tokens the answer attended to: "
            "the language model's attention from the answer to each vision token (mean over layers, heads "
            "and answer tokens) × TokenMining's attention from that vision token to the patch."
        )
    lines.append(
        "One square per patch of the frame as the model saw it (resized to a square); one colour scale per "
        "clip (hottest patch = full colour)."
    )
    for i, video in enumerate(explanation.videos):
        parts = [
            f"- **{video.name}**: {100 * (1 - explanation.leading_share[i]):.0f}% of the mass on patches"
        ]
        parts.append(f", {100 * explanation.leading_share[i]:.0f}% on CLS/proxy tokens (not drawn)")
        if explanation.video_share is not None:
            parts.append(
                f"; {100 * explanation.video_share[i]:.0f}% of the answer's attention went to this clip"
            )
        lines.append("".join(parts))
    return "\n".join(lines)


def overlay_sheet(explanation: Any, thumb_width: int = 256, columns: int = 4) -> Image.Image:
    """A contact sheet (PIL image) of every explained clip: overlays with captions, clip by clip."""
    tiles: list[tuple[Image.Image, str]] = []
    for video, heatmap in zip(explanation.videos, explanation.heatmaps, strict=True):
        captions = frame_captions(heatmap, video.timestamps)
        for image, caption in zip(overlay_frames(video.frames, heatmap), captions, strict=True):
            tile = Image.fromarray(image)
            height = max(1, round(tile.height * thumb_width / tile.width))
            tiles.append(
                (tile.resize((thumb_width, height), Image.Resampling.NEAREST), f"{video.name} {caption}")
            )
    header = 40
    caption_height = 18
    tile_height = max(t.height for t, _ in tiles) + caption_height
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * thumb_width, header + rows * tile_height), "white")
    draw = ImageDraw.Draw(sheet)
    title = f"Q: {explanation.question}  A: {explanation.answer.strip()}"
    draw.text((6, 4), title[:160], fill="black")
    draw.text((6, 20), f"method: {explanation.method} (see space/explain.py for what is drawn)", fill="gray")
    for i, (tile, caption) in enumerate(tiles):
        x, y = (i % columns) * thumb_width, header + (i // columns) * tile_height
        sheet.paste(tile, (x, y))
        draw.text((x + 4, y + tile.height + 2), caption[:48], fill="black")
    return sheet


def write_overlay_png(
    model: Any,
    processor: Any,
    video: Any,
    question: str,
    out: Path,
    method: str = "answer-attention",
    **generation_kwargs: Any,
) -> tuple[str, Any]:
    """Ask `question` about `video`, explain the answer and write the overlay sheet to `out` (PNG).
    Returns (answer, explanation)."""
    session = model.start_chat(processor, **generation_kwargs)
    answer = session.ask(question, video=video)
    explanation = session.explain(method=method)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    overlay_sheet(explanation).save(out, format="PNG")
    return answer, explanation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", required=True, help="model folder or Hub id (loaded with trust_remote_code)"
    )
    parser.add_argument("--video", required=True, type=Path)
    parser.add_argument("--question", required=True)
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--method", choices=["answer-attention", "uniform"], default="answer-attention")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(args.model, trust_remote_code=True, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    try:
        answer, explanation = write_overlay_png(
            model,
            processor,
            args.video,
            args.question,
            args.out,
            args.method,
            max_new_tokens=args.max_new_tokens,
        )
    except ValueError as exc:  # unreadable video, empty question...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"answer: {answer}")
    print(describe(explanation))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
