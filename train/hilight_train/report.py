"""Evaluation reports: `report.json`, `report.md`, PNG charts and a failures file.

Input is a list of scored items, one per question (see `hilight_train.scoring`):

    {"id", "clip", "type", "question", "truth", "answer", "score" (0..1), "parsed" (facts or None)}

and optional baselines, each a list of items with the same ids. Every accuracy carries a 95% bootstrap
interval over clips (`hilight_train.stats`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from .files import atomic_write_text
from .stats import bootstrap_ci, paired_bootstrap_diff


def summarize(items: list[dict[str, Any]], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """{"overall": {...}, "types": {type: {...}}}, each with n, accuracy, ci and the unparseable count."""

    def entry(group: list[dict[str, Any]]) -> dict[str, Any]:
        acc, low, high = bootstrap_ci(
            [it["score"] for it in group], [it["clip"] for it in group], n_boot, seed=seed
        )
        unparseable = sum(it["parsed"] is None for it in group)
        return {"n": len(group), "accuracy": acc, "ci": [low, high], "unparseable": unparseable}

    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        by_type[it["type"]].append(it)
    return {"overall": entry(items), "types": {t: entry(g) for t, g in sorted(by_type.items())}}


def build_report(
    items: list[dict[str, Any]],
    baselines: dict[str, list[dict[str, Any]]] | None = None,
    meta: dict[str, Any] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The full report dict: meta, overall, per-type entries (with their baselines) and the scored items."""
    report: dict[str, Any] = {"meta": dict(meta or {}), **summarize(items, n_boot, seed)}
    report["baselines"] = {}
    for name, base_items in (baselines or {}).items():
        summary = summarize(base_items, n_boot, seed)
        report["baselines"][name] = summary
        for qtype, entry in report["types"].items():
            if qtype in summary["types"]:
                entry.setdefault("baselines", {})[name] = summary["types"][qtype]
    report["items"] = items
    return report


def _fmt(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "–"
    return f"{entry['accuracy']:.3f} [{entry['ci'][0]:.3f}, {entry['ci'][1]:.3f}]"


def report_markdown(report: dict[str, Any]) -> str:
    """A table per question type: n, accuracy with CI, and each baseline with its CI."""
    names = sorted(report["baselines"])
    head = "| type | n | accuracy [95% CI] | unparseable | " + " | ".join(names) + " |"
    lines = [f"# Evaluation: {report['meta'].get('model', 'model')}", ""]
    for key, value in sorted(report["meta"].items()):
        lines.append(f"- {key}: {value}")
    lines += ["", head, "|" + "---|" * (4 + len(names))]
    rows = [("**overall**", report["overall"], {n: report["baselines"][n]["overall"] for n in names})]
    rows += [(t, e, e.get("baselines", {})) for t, e in report["types"].items()]
    for name, entry, bases in rows:
        cells = [name, str(entry["n"]), _fmt(entry), str(entry["unparseable"])]
        cells += [_fmt(bases.get(n)) for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_accuracy(report: dict[str, Any], path: Path) -> None:
    """Bar chart of accuracy per type with CI whiskers, baselines as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    types = list(report["types"])
    acc = np.array([report["types"][t]["accuracy"] for t in types])
    low = np.array([report["types"][t]["ci"][0] for t in types])
    high = np.array([report["types"][t]["ci"][1] for t in types])
    x = np.arange(len(types))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(types) + 2), 4.5))
    ax.bar(x, acc, color="#2b7a4b", label="model")
    ax.errorbar(x, acc, yerr=[acc - low, high - acc], fmt="none", ecolor="black", capsize=3)
    for marker, name in zip("o^sv", sorted(report["baselines"]), strict=False):
        ys = [report["types"][t].get("baselines", {}).get(name, {}).get("accuracy", np.nan) for t in types]
        ax.scatter(
            x, ys, marker=marker, color="#c0392b" if marker == "o" else "#34495e", zorder=3, label=name
        )
    ax.set_xticks(x, types, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (95% bootstrap CI over clips)")
    ax.set_title(f"overall {report['overall']['accuracy']:.3f}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_confusion(labels_true: list[str], labels_pred: list[str], path: Path, title: str) -> None:
    """Confusion matrix (rows: truth, columns: answer) for ball-identity questions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    classes = sorted(set(labels_true) | set(labels_pred), key=lambda s: (len(s), s))
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=int)  # (truth, answer)
    for t, p in zip(labels_true, labels_pred, strict=True):
        counts[index[t], index[p]] += 1
    fig, ax = plt.subplots(figsize=(1 + 0.45 * len(classes), 1 + 0.45 * len(classes)))
    ax.imshow(counts, cmap="Greens")
    for (i, j), c in np.ndenumerate(counts):
        if c:
            ax.text(j, i, str(c), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("answer")
    ax.set_ylabel("truth")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: Path, n_failures: int = 50) -> None:
    """report.json, report.md, accuracy.png and failures.jsonl (worst-scored items first) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=1, default=str))
    atomic_write_text(out_dir / "report.md", report_markdown(report))
    plot_accuracy(report, out_dir / "accuracy.png")
    worst = sorted(report["items"], key=lambda it: (it["score"], it["parsed"] is not None, it["id"]))
    worst = [it for it in worst if it["score"] < 1][:n_failures]
    fields = ("id", "type", "clip", "question", "truth", "answer", "score")
    text = "".join(json.dumps({k: it.get(k) for k in fields}) + "\n" for it in worst)
    atomic_write_text(out_dir / "failures.jsonl", text)


def compare_reports(
    report_a: dict[str, Any], report_b: dict[str, Any], n_boot: int = 2000, seed: int = 0
) -> dict:
    """Per-type B - A accuracy differences with paired-bootstrap CIs, on the items both reports scored."""
    a_items = {it["id"]: it for it in report_a["items"]}
    shared = [it for it in report_b["items"] if it["id"] in a_items]
    if not shared:
        raise ValueError("the two reports share no item ids: they were not run on the same data")
    by_type: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for it in shared:
        by_type[it["type"]].append((a_items[it["id"]], it))
        by_type["overall"].append((a_items[it["id"]], it))

    def diff(pairs: list[tuple[dict, dict]]) -> dict[str, Any]:
        d, low, high = paired_bootstrap_diff(
            [a["score"] for a, _ in pairs],
            [b["score"] for _, b in pairs],
            [b["clip"] for _, b in pairs],
            n_boot,
            seed=seed,
        )
        return {"n": len(pairs), "diff": d, "ci": [low, high]}

    return {t: diff(p) for t, p in sorted(by_type.items())}
