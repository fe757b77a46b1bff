"""How visible each ball class is in the engine's pictures: per game and class, the colour contrast of the
ball against what surrounds it and its radius in pixels, over frames of the procedural scene stream.

A ball that differs little from the cloth, drawn a few pixels wide, is one a tower cannot find however long
it trains: this explains per-class recall of `perception_report.py` (e.g. a class found far less often than
its game's others) by the data rather than the model. Contrast: `frame_truth.ball_contrast` (core vs ring,
0..255 RGB units; 0 = the ball has the cloth's colour).

    python train/ball_contrast.py --out outputs/contrast                   # 300 scenes per game
    python train/ball_contrast.py --scenes 20 --games snooker --out /tmp/c  # quick
    python train/ball_contrast.py --out outputs/contrast --perception outputs/default/perception/report.json

Writes report.json, contrast.md and contrast.png (median contrast per class, bars in the ball's colour).
With ``--perception`` (a `perception_report.py` report.json), also the Spearman rank correlation of each
class's median contrast with the towers' per-frame presence recall of that class, over the solid pool
balls and the snooker colours (each class's contrast from the game it belongs to: 1-8 from 8-ball), and over
every class but the cue ball (stripes too: white balls with a coloured band, which a tower misses by taking
them for the solid of their colour, not for want of contrast); and recall.png, recall against contrast.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hilight_train.billiards import frame_truth as ft
from hilight_train.billiards.games import ball_look
from hilight_train.billiards.scenes import SceneStream
from hilight_train.cli import run_main
from hilight_train.files import atomic_write_text


def measure(games: list[str], scenes: int, seed: int) -> dict[str, dict[str, dict]]:
    """{game: {class: {"contrast": [...], "radius": [...]}}} over ``scenes`` one-frame scenes per game."""
    values: dict[str, dict[str, dict[str, list[float]]]] = {
        g: defaultdict(lambda: defaultdict(list)) for g in games
    }
    for game in games:
        stream = SceneStream((game,), seed=seed, frames=1)
        for i in tqdm(range(scenes), desc=game, unit="scene"):
            scene = stream[i]
            t = scene.truth
            contrast = ft.ball_contrast(scene.frames[0], t.xy[0], t.radius[0], t.visible()[0])
            for name, c, r in zip(t.balls, contrast, t.radius[0], strict=True):
                if np.isfinite(c):
                    values[game][name]["contrast"].append(float(c))
                    values[game][name]["radius"].append(float(r))
    return values


def summarise(values: dict) -> dict[str, list[dict]]:
    """Per game, one row per class (lowest median contrast first)."""
    table = {}
    for game, classes in values.items():
        rows = [
            {
                "ball": name,
                "balls": len(v["contrast"]),
                "contrast_median": float(np.median(v["contrast"])),
                "contrast_p10": float(np.percentile(v["contrast"], 10)),
                "radius_px_median": float(np.median(v["radius"])),
            }
            for name, v in classes.items()
        ]
        table[game] = sorted(rows, key=lambda r: r["contrast_median"])
    return table


def plot(table: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table), figsize=(4.5 * len(table), 5), squeeze=False)
    for ax, (game, rows) in zip(axes[0], table.items(), strict=True):
        colours = [ball_look(game, r["ball"]).colour for r in rows]
        ax.barh(
            [r["ball"] for r in rows], [r["contrast_median"] for r in rows], color=colours, edgecolor="0.3"
        )
        ax.set_title(f"{game} (radius ~{np.median([r['radius_px_median'] for r in rows]):.1f} px)")
        ax.set_xlabel("median contrast vs surroundings (0..255 RGB)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` (0-based), ties sharing their mean rank."""
    r = np.empty(len(x))
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    for v in np.unique(x):
        r[x == v] = r[x == v].mean()
    return r


def spearman(a, b) -> float:
    """Spearman's rank correlation of two equal-length sequences."""
    return float(np.corrcoef(_ranks(np.asarray(a, float)), _ranks(np.asarray(b, float)))[0, 1])


def contrast_by_class(table: dict[str, list[dict]]) -> dict[str, float]:
    """Median contrast per perception class (``perception.CLASSES``): pool balls from 8-ball (else 9-ball),
    snooker classes from snooker, the cue ball over every game."""
    out: dict[str, float] = {}
    for game in ("9ball", "8ball", "snooker"):  # later games overwrite: 8-ball has 1-15
        for r in table.get(game, []):
            if r["ball"] != "cue":
                out[r["ball"]] = r["contrast_median"]
    cue = [r["contrast_median"] for rows in table.values() for r in rows if r["ball"] == "cue"]
    if cue:
        out["cue"] = float(np.median(cue))
    return out


def recall_correlations(table: dict[str, list[dict]], perception: dict) -> dict[str, dict[str, float]]:
    """{tower: {"solids_and_colours": rho, "all_but_cue": rho, "classes": n}} from a perception report."""
    contrast = contrast_by_class(table)
    out = {}
    for tower, m in perception["cells"].items():
        recall = m["presence_recall_by_class"]
        common = [c for c in recall if c in contrast and c != "cue"]
        solids = [c for c in common if not (c.isdigit() and int(c) > 8)]
        out[tower] = {
            "solids_and_colours": spearman([contrast[c] for c in solids], [recall[c] for c in solids]),
            "all_but_cue": spearman([contrast[c] for c in common], [recall[c] for c in common]),
            "classes": len(solids),
        }
    return out


def plot_recall(table: dict[str, list[dict]], perception: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contrast = contrast_by_class(table)
    towers = perception["cells"]
    fig, axes = plt.subplots(1, len(towers), figsize=(5.5 * len(towers), 4.5), squeeze=False)
    for ax, (tower, m) in zip(axes[0], towers.items(), strict=True):
        for c, rec in m["presence_recall_by_class"].items():
            if c not in contrast:
                continue
            game = "snooker" if not c.isdigit() and c != "cue" else "8ball"
            stripe = c.isdigit() and int(c) > 8
            ax.scatter(contrast[c], rec, color=ball_look(game, c).colour, edgecolor="0.2", s=70,
                       marker="s" if stripe else "o")  # fmt: skip
            ax.annotate(c, (contrast[c], rec), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_title(f"{tower} tower (squares: stripes)")
        ax.set_xlabel("median contrast vs surroundings (0..255 RGB)")
        ax.set_ylabel("per-frame presence recall")
        ax.set_ylim(-0.03, 1.03)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", default="9ball,8ball,snooker")
    p.add_argument("--scenes", type=int, default=300, help="one-frame scenes per game")
    p.add_argument("--seed", type=int, default=0, help="the scene stream's seed")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--perception", type=Path, help="a perception_report.py report.json to correlate recall with"
    )
    args = p.parse_args()
    games = args.games.split(",")
    table = summarise(measure(games, args.scenes, args.seed))
    args.out.mkdir(parents=True, exist_ok=True)
    lines = []
    for game, rows in table.items():
        lines += [
            f"## {game}",
            "",
            "| ball | n | median contrast | 10th percentile | median radius px |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {r['ball']} | {r['balls']} | {r['contrast_median']:.1f} | {r['contrast_p10']:.1f} | "
                  f"{r['radius_px_median']:.1f} |" for r in rows]  # fmt: skip
        lines.append("")
    report = {"scenes": args.scenes, "seed": args.seed, "games": table}
    plot(table, args.out / "contrast.png")
    if args.perception:
        perception = json.loads(args.perception.read_text())
        rho = recall_correlations(table, perception)
        lines += ["Spearman rank correlation of class contrast with per-frame presence recall "
                  f"(`{args.perception}`):", "", "| tower | solids + snooker colours | all but the cue ball |",
                  "|---|---|---|"]  # fmt: skip
        lines += [f"| {t} | {r['solids_and_colours']:.2f} ({r['classes']} classes) | {r['all_but_cue']:.2f} |"
                  for t, r in rho.items()]  # fmt: skip
        plot_recall(table, perception, args.out / "recall.png")
        report["recall_correlation"] = rho
    atomic_write_text(args.out / "report.json", json.dumps(report, indent=1))
    atomic_write_text(args.out / "contrast.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    run_main(main)
