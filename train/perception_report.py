"""Perception report: do a model's frozen towers see the balls? Measured on a data-engine dataset's clips.

For every clip of the train and test splits the processor samples the frames (as the model sees them), the
per-frame truth (``truth/<clip>.safetensors``) gives the exact labels of those frames, and the towers run once.

- From the perception heads of stage 0 (``perception_heads.safetensors`` beside the model): ball-cell
  precision / recall / F1 of the patch tokens of each tower (a cell predicts every ball class whose centre
  lies in it), per-frame ball presence F1 (a class is present when any cell predicts it) and its recall per
  class, and cue-ball cell accuracy (the cell with the highest cue score is the cue ball's), on the test
  split's sampled frames; counting with the frame head (a frame's visible balls, exactly; the balls that
  left the table as the first minus the last sampled frame's count). A cell predicts a class, and a frame
  shows it, when the head's score passes a threshold chosen on the ``--threshold_split`` clips (val; never
  the scored ones) for the best ball-cell and presence F1 there; the figures at 0.5 come beside them.
- Linear probes of the frozen tower outputs, fit on the train split and scored on the test split, for
  ``cue_rest_region``, ``potted_count``, ``potted_balls`` (answers of the dataset's questions) and
  ``ball_moved`` (for every ball class on the table in a clip's first frame: did a ball of it move), beside
  the train majority and a CNN control (``hilight_train.probes.cnn_classifier``) trained from scratch on the
  same clips' first and last sampled frames.
- ``cells.png``: predicted vs true ball cells on the last sampled frame of the first test clips.

    python train/perception_report.py --model outputs/default/stage0 --data outputs/default/data \
        --out outputs/default/perception
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file
from tqdm import tqdm

from hilight_train.billiards import frame_truth as ft
from hilight_train.cli import run_main
from hilight_train.files import atomic_write_text, read_json
from hilight_train.perception import (
    CLASSES,
    MAX_POTTED,
    ClipTruthDataset,
    K,
    PerceptionHeads,
    dataset_clips,
    heads_for,
    tower_outputs,
)
from hilight_train.precision import cpu_autocast
from hilight_train.probes import cnn_classifier, linear_probe, train_classifier
from hilight_train.training import load_model_and_processor

FACTS = ("cue_rest_region", "potted_count", "potted_balls")


def load_clips(data: Path, split: str) -> list[dict]:
    """Clips of a split: id, video, truth file, answers per question type, and the summary truth."""
    clips = {e["id"]: {**e, "facts": {}} for e in dataset_clips(data, split)}
    for entry in read_json(data / f"annotations_{split}.json"):
        clips[entry["clip"]]["facts"][entry["type"]] = json.dumps(entry["facts"], sort_keys=True)
    return [clips[k] for k in sorted(clips)]


@torch.no_grad()
def run(model, heads: PerceptionHeads, processor, data: Path, clips: list[dict], batch: int = 4) -> dict:
    """Tower features, head scores, targets and CNN inputs for ``clips`` (bf16 autocast where the CPU has it)."""
    grid = model.config.video_config.grid_size
    M = model.config.video_config.num_leading_tokens
    out: dict[str, list] = {}
    dataset = ClipTruthDataset(data, clips, processor.video_processor, grid, model.config.num_frames)
    for i in tqdm(range(0, len(clips), batch), desc="towers", unit="batch"):
        chunk = [dataset[j] for j in range(i, min(i + batch, len(clips)))]
        targets = [{k: v for k, v in row.items() if k != "pixel_values"} for row in chunk]
        pixel_values = torch.stack([row["pixel_values"] for row in chunk])  # (V, T, 3, H, W)
        with cpu_autocast():
            scores = tower_outputs(model.video_tower, model.image_tower, heads, pixel_values)
        hidden, embeds = scores["video_hidden_states"], scores["frame_embeds"]  # (V, M + T*P, Dv), (V, T, Di)
        T = embeds.shape[1]
        rows = {
            "video_special": hidden[:, :M].float().flatten(1),
            "video_frames": hidden[:, M:].float().unflatten(1, (T, -1)).mean(2).flatten(1),
            "image_frames": embeds.float().flatten(1),
            "count_scores": scores["counts"].float(),  # (V, T, K) the frame head's visible balls per class
            "video_cells": scores["video_cells"].float().sigmoid(),
            "image_cells": scores["image_cells"].float().sigmoid(),
            "cnn_input": torch.cat(
                [pixel_values[:, 0], pixel_values[:, -1]], dim=1
            ).bfloat16(),  # (V, 6, H, W)
            **{k: torch.stack([t[k] for t in targets]) for k in targets[0]},
        }
        for k, v in rows.items():
            out.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in out.items()}


def cell_metrics(
    scores: torch.Tensor, cells: torch.Tensor, cell_threshold: float = 0.5, presence_threshold: float = 0.5
) -> dict:
    """Ball-cell and per-frame presence P/R/F1 and cue-cell accuracy; scores/cells (N, T, P, K). A cell
    predicts a class when its score exceeds ``cell_threshold``; a frame shows a class when any of its cells'
    scores exceeds ``presence_threshold``."""

    def prf(pred, true):
        tp = (pred & true).sum().item()
        p, r = tp / max(pred.sum().item(), 1), tp / max(true.sum().item(), 1)
        return {"precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-12)}

    true = cells > 0.5
    cue_true = true[..., 0]  # (N, T, P)
    has_cue = cue_true.any(-1)  # (N, T)
    hit = cue_true.gather(-1, scores[..., 0].argmax(-1, keepdim=True))[..., 0]  # (N, T)
    present, seen = scores.amax(2) > presence_threshold, true.any(2)  # (N, T, K)
    by_class = (present & seen).sum((0, 1)) / seen.sum((0, 1)).clamp(min=1)  # (K,)
    return {
        "thresholds": {"cells": cell_threshold, "presence": presence_threshold},
        "cells": prf(scores > cell_threshold, true),
        "presence": prf(present, seen),
        "presence_recall_by_class": {c: round(by_class[k].item(), 3) for k, c in enumerate(CLASSES)},
        "cue_cell_accuracy": hit[has_cue].float().mean().item(),
        "frames": int(true.shape[0] * true.shape[1]),
    }


THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 1.0, 0.05))


def chosen_thresholds(scores: torch.Tensor, cells: torch.Tensor) -> tuple[float, float]:
    """The score thresholds (cells, presence) of ``THRESHOLDS`` with the best ball-cell and presence F1 on
    these frames (a split the report does not score). The cell heads learn with positives weighted
    (``perception.POS_WEIGHT``), so their scores overstate the odds of a ball by that factor and 0.5 is not
    their even-odds point."""
    rows = [cell_metrics(scores, cells, t, t) for t in THRESHOLDS]
    best_cells = max(range(len(rows)), key=lambda i: rows[i]["cells"]["f1"])
    best_presence = max(range(len(rows)), key=lambda i: rows[i]["presence"]["f1"])
    return THRESHOLDS[best_cells], THRESHOLDS[best_presence]


def count_metrics(test: dict) -> dict:
    """Counting from the frame head's per-class counts (Long-CLIP frame embeddings): how often a sampled frame's
    visible balls are counted exactly, and how often the first minus the last sampled frame's count gives the
    balls that left the table (the clip target, capped like it), beside that target's majority."""
    total = test["count_scores"].sum(-1).round()  # (N, T)
    true_total = test["counts"].sum(-1)
    left = (total[:, 0] - total[:, -1]).clamp(0, MAX_POTTED)
    potted = test["potted_count"]
    return {
        "frame_count_exact": (total == true_total).float().mean().item(),
        "potted_from_counts": (left == potted).float().mean().item(),
        "potted_majority": (potted == potted.mode().values).float().mean().item(),
    }


def moved_pairs(feats: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(clip index, class) of every ball class on the table in a clip's first sampled frame."""
    first = feats["counts"][:, 0] > 0  # (N, K)
    return first.nonzero(as_tuple=True)


def probe_table(
    train: dict, test: dict, clips_train: list[dict], clips_test: list[dict], cnn_steps: int
) -> list[dict]:
    reps = {
        "video_special": ["video_special"],
        "video_frames": ["video_frames"],
        "image_frames": ["image_frames"],
        "towers (all)": ["video_special", "video_frames", "image_frames"],
    }
    rows = []
    facts = [(f, None) for f in FACTS] + [("ball_moved", "multilabel")]
    for fact, kind in facts:
        if kind is None:
            tr = [i for i, c in enumerate(clips_train) if fact in c["facts"]]
            te = [i for i, c in enumerate(clips_test) if fact in c["facts"]]
            if not tr or not te:
                print(f"{fact}: no questions in both splits, not probed")
                continue
            labels = sorted(
                {clips_train[i]["facts"][fact] for i in tr} | {clips_test[i]["facts"][fact] for i in te}
            )
            y_tr = torch.tensor([labels.index(clips_train[i]["facts"][fact]) for i in tr])
            y_te = torch.tensor([labels.index(clips_test[i]["facts"][fact]) for i in te])
            majority = (y_te == torch.bincount(y_tr, minlength=len(labels)).argmax()).float().mean().item()

            def score(logits, y_te=y_te):
                return (logits.argmax(-1) == y_te).float().mean().item()

            n_out, multilabel, y_fit = len(labels), False, y_tr
        else:
            tr, te = list(range(len(clips_train))), list(range(len(clips_test)))
            y_fit = train["moved"]  # (N, K) every class
            rows_te, cls_te = moved_pairs(test)
            y_pairs = test["moved"][rows_te, cls_te]
            rows_tr, cls_tr = moved_pairs(train)
            prior = train["moved"][rows_tr, cls_tr].float().mean().item()
            majority = (y_pairs == float(prior > 0.5)).float().mean().item()

            def score(logits, rows_te=rows_te, cls_te=cls_te, y_pairs=y_pairs):
                return ((logits[rows_te, cls_te] > 0) == (y_pairs > 0.5)).float().mean().item()

            n_out, multilabel, labels = K, True, CLASSES
        result = {
            "fact": fact,
            "classes": len(labels),
            "train": len(tr),
            "test": len(te),
            "majority": majority,
        }
        for name, keys in reps.items():
            x_tr = torch.cat([train[k][tr] for k in keys], 1)
            x_te = torch.cat([test[k][te] for k in keys], 1)
            result[name] = score(linear_probe(x_tr, y_fit, x_te, n_out, multilabel=multilabel))
        cnn = cnn_classifier(n_out, in_channels=6)
        logits, _ = train_classifier(
            cnn, train["cnn_input"][tr], y_fit, test["cnn_input"][te], cnn_steps, 3e-3, 32, 0, multilabel
        )
        result["cnn control"] = score(logits)
        rows.append(result)
        print(json.dumps(result))
    return rows


def draw_cells(
    data: Path,
    clips: list[dict],
    test: dict,
    grid: tuple[int, int],
    processor,
    out: Path,
    n: int = 4,
    threshold: float = 0.5,
):
    """PNG: the last sampled frame of the first ``n`` test clips; true ball centres as circles, each predicted
    (cell, class) of the CLIP-ViP patch tokens (score above ``threshold``) as a label in its cell, green when
    right, red when wrong."""
    gh, gw = grid
    panels = []
    for i, clip in enumerate(clips[:n]):
        frames, meta = processor.video_processor.load(str(data / clip["video"]))
        image = Image.fromarray(np.asarray(frames[-1])).convert("RGB")
        W, H = image.size
        draw = ImageDraw.Draw(image)
        for r in range(1, gh):
            draw.line([(0, r * H / gh), (W, r * H / gh)], fill=(90, 90, 90))
        for c in range(1, gw):
            draw.line([(c * W / gw, 0), (c * W / gw, H)], fill=(90, 90, 90))
        truth = ft.read(data / clip["frame_truth"]).select(meta.frames_indices[-1:])
        for b in np.nonzero(truth.visible()[0])[0]:
            x, y = truth.xy[0, b]
            rad = max(float(truth.radius[0, b]) + 2, 4)
            draw.ellipse([x - rad, y - rad, x + rad, y + rad], outline=(255, 255, 255))
        pred, true = test["video_cells"][i, -1] > threshold, test["cells"][i, -1] > 0.5  # (P, K)
        for p, k in zip(*pred.nonzero(as_tuple=True), strict=True):
            r, c = divmod(int(p), gw)
            colour = (60, 230, 60) if true[p, k] else (255, 60, 60)
            slot = int(pred[p, :k].sum())
            draw.text((c * W / gw + 2, r * H / gh + 1 + 10 * slot), CLASSES[int(k)], fill=colour)
        for p, k in zip(*(true & ~pred).nonzero(as_tuple=True), strict=True):
            r, c = divmod(int(p), gw)
            draw.text(
                (c * W / gw + 2, (r + 1) * H / gh - 11), f"missed {CLASSES[int(k)]}", fill=(255, 200, 0)
            )
        panels.append(np.asarray(image))
    Image.fromarray(np.concatenate(panels, axis=0)).save(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HiLight folder (stage 0 output) whose towers to measure")
    p.add_argument(
        "--heads",
        type=Path,
        default=None,
        help="perception heads (default: <model>/perception_heads.safetensors)",
    )
    p.add_argument("--data", type=Path, required=True, help="data-engine dataset folder (with truth/)")
    p.add_argument("--train_split", default="train")
    p.add_argument("--test_split", default="test")
    p.add_argument(
        "--threshold_split",
        default="val",
        help="split whose clips choose the cell and presence score thresholds ('' keeps 0.5)",
    )
    p.add_argument("--max_threshold_clips", type=int, default=150)
    p.add_argument("--max_train_clips", type=int, default=None)
    p.add_argument("--max_test_clips", type=int, default=None)
    p.add_argument("--cnn_steps", type=int, default=600)
    p.add_argument("--out", type=Path, required=True, help="folder for report.json, report.md and cells.png")
    args = p.parse_args()

    model, processor = load_model_and_processor(args.model)
    model.eval()
    heads = heads_for(model)
    heads.load_state_dict(load_file(str(args.heads or Path(args.model) / "perception_heads.safetensors")))
    clips_train = load_clips(args.data, args.train_split)[: args.max_train_clips]
    clips_test = load_clips(args.data, args.test_split)[: args.max_test_clips]
    train = run(model, heads, processor, args.data, clips_train)
    test = run(model, heads, processor, args.data, clips_test)
    towers = ("video", "image")
    at_half = {tower: cell_metrics(test[f"{tower}_cells"], test["cells"]) for tower in towers}
    cells = at_half
    if args.threshold_split:  # the thresholds come from clips the report does not score
        clips_val = load_clips(args.data, args.threshold_split)[: args.max_threshold_clips]
        if not clips_val:
            raise SystemExit(f"{args.data}: no {args.threshold_split} clips to choose the thresholds on")
        val = run(model, heads, processor, args.data, clips_val)
        chosen = {t: chosen_thresholds(val[f"{t}_cells"], val["cells"]) for t in towers}
        cells = {t: cell_metrics(test[f"{t}_cells"], test["cells"], *chosen[t]) for t in towers}
    probes = probe_table(train, test, clips_train, clips_test, args.cnn_steps)
    args.out.mkdir(parents=True, exist_ok=True)
    counts = count_metrics(test)
    report = {
        "model": str(args.model),
        "data": str(args.data),
        "cells": cells,  # at the thresholds chosen on --threshold_split (0.5 without one)
        "cells_at_0.5": at_half,
        "counts": counts,
        "probes": probes,
    }
    atomic_write_text(args.out / "report.json", json.dumps(report, indent=1))
    grid = model.config.video_config.grid_size
    threshold = cells["video"]["thresholds"]["cells"]
    draw_cells(args.data, clips_test, test, grid, processor, args.out / "cells.png", threshold=threshold)
    lines = [
        f"Perception of `{args.model}` on `{args.data}` ({len(clips_train)} {args.train_split} / {len(clips_test)} "
        f"{args.test_split} clips, {cells['video']['frames']} test frames)",
        "",
        "| tower | thresholds (cells / presence) | ball-cell P | R | F1 | presence P | R | F1 | cue-cell accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for tower in towers:
        for m in [at_half[tower], cells[tower]] if args.threshold_split else [at_half[tower]]:
            t, c, pr = m["thresholds"], m["cells"], m["presence"]
            lines.append(
                f"| {tower} | {t['cells']:.2f} / {t['presence']:.2f} | {c['precision']:.3f} | "
                f"{c['recall']:.3f} | {c['f1']:.3f} | {pr['precision']:.3f} | {pr['recall']:.3f} | {pr['f1']:.3f} | "
                f"{m['cue_cell_accuracy']:.3f} |"
            )
    lines += [
        "",
        "Per-frame presence recall by class (a class is seen in a frame when any cell predicts it):",
        "",
        "| tower | " + " | ".join(CLASSES) + " |",
        "|---|" + "---|" * K,
    ]
    for tower, m in cells.items():
        lines.append(
            f"| {tower} | " + " | ".join(f"{v:.2f}" for v in m["presence_recall_by_class"].values()) + " |"
        )
    lines += [
        "",
        f"Counting with the frame head: a frame's visible balls exactly {counts['frame_count_exact']:.3f}; balls that "
        f"left the table (first minus last sampled frame) {counts['potted_from_counts']:.3f} (majority "
        f"{counts['potted_majority']:.3f}).",
    ]
    cols = ["video_special", "video_frames", "image_frames", "towers (all)", "cnn control", "majority"]
    lines += [
        "",
        "| fact | classes | test | " + " | ".join(cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for r in probes:
        lines.append(
            f"| {r['fact']} | {r['classes']} | {r['test']} | "
            + " | ".join(f"{r[c]:.3f}" for c in cols)
            + " |"
        )
    text = "\n".join(lines) + "\n"
    atomic_write_text(args.out / "report.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    run_main(main)
