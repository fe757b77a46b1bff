"""Contact sheet: a PNG grid of a clip's frames with its events marked, to check labels by eye.

Each tile is one frame (evenly spaced over the clip, plus every frame where an event happens);
tiles with events get a coloured border and the event list (time, type, balls, pocket/cushion) is
printed under it. Reads the clip with PyAV and the labels from the clip's record or events.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

EVENT_COLOURS = {"strike": "tab:blue", "ball_ball": "tab:orange", "cushion": "tab:green", "pocket": "tab:red"}


def read_frames(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames (F, H, W, 3) uint8 and the frame rate of a video."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
    return np.stack(frames), fps


def event_label(e: dict) -> str:
    t = f"{e['t']:.2f}s"
    if e["type"] == "strike":
        return f"{t} strike"
    if e["type"] == "ball_ball":
        return f"{t} {e['ball']}-{e['other']}"
    if e["type"] == "cushion":
        return f"{t} {e['ball']} {e['cushion']} cushion"
    return f"{t} {e['ball']} -> {e['pocket']}"


def load_record(dataset: str | Path, clip_id: str) -> dict:
    """A clip's record (records/<id>.json, else its events.jsonl line)."""
    dataset = Path(dataset)
    rec = dataset / "records" / f"{clip_id}.json"
    if rec.exists():
        return json.loads(rec.read_text(encoding="utf-8"))
    ev = dataset / "events.jsonl"
    if ev.exists():
        for line in ev.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["id"] == clip_id:
                return r
    raise FileNotFoundError(f"no record for clip {clip_id!r} in {dataset}")


def contact_sheet(video: str | Path, record: dict, out: str | Path, n_tiles: int = 12, cols: int = 4) -> Path:
    """Write a PNG contact sheet of a clip with its events; returns the PNG path."""
    frames, fps = read_frames(video)
    F = len(frames)
    picks = {int(i) for i in np.linspace(0, F - 1, n_tiles).round()}
    by_frame: dict[int, list[dict]] = {}
    for e in record["events"]:
        k = min(round(e["t"] * fps), F - 1)
        by_frame.setdefault(k, []).append(e)
    key_frames = sorted(by_frame, key=lambda k: (-len(by_frame[k]), k))[: max(0, 2 * n_tiles - len(picks))]
    tiles = sorted(picks | set(key_frames))
    rows = int(np.ceil(len(tiles) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.2, rows * 2.35))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, k in zip(axes, tiles, strict=False):
        ax.imshow(frames[k])
        evs = by_frame.get(k, [])
        title = f"frame {k}  t={k / fps:.2f}s"
        ax.set_title(title, fontsize=7)
        if evs:
            colour = EVENT_COLOURS.get(evs[0]["type"], "black")
            for side in ax.spines.values():
                side.set_edgecolor(colour)
                side.set_linewidth(3)
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("\n".join(event_label(e) for e in evs[:4]), fontsize=6, color=colour)
    truth = record.get("truth", {})
    head = f"{record.get('id', '')}  {record.get('game', '')}  {record.get('shot', {}).get('kind', '')}  camera={record.get('camera', {}).get('family', '')}"
    summary = (
        f"potted={[p['ball'] + '@' + p['pocket'] for p in truth.get('potted', [])]}  first={truth.get('first_contact')}  "
        f"rules={truth.get('rules', {}).get('reason') or ('point' if truth.get('rules', {}).get('point') else 'legal/no point')}"
    )
    fig.suptitle(
        head + "\n" + summary + ("\n" + record["caption"] if "caption" in record else ""), fontsize=8
    )
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
