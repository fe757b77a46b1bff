"""Ablations: HiLight's dual towers + TokenMining against CLIP-ViP only, Long-CLIP only and a plain MLP
projector, with the same data, the same stage-0 towers, the same training steps and seeds. The comparison
the paper calls for and does not report.

    python train/ablations.py --config train/configs/ablations.yaml [--out DIR]

Per variant: a model that starts from the stage-0 towers and LM with a freshly initialised fusion (seeded
the same), stage 1, stage 2, evaluation on the test split. Then one table with 95% CIs: `ablations.md`,
`ablations.json` and `ablations.png` in the output folder. Re-running resumes finished steps.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
import yaml

from hilight_train.cli import run_main
from hilight_train.files import atomic_write_text
from hilight_train.pipeline import Recipe
from hilight_train.training import load_model_and_processor, save_hub_folder


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def init_variant(towers: Path, fusion: str, seed: int, out: Path) -> None:
    """The stage-0 model with its fusion replaced by a fresh `fusion` module; everything else is copied."""
    base, processor = load_model_and_processor(towers)
    values = base.config.to_dict()
    values["token_mining_config"] = {**values["token_mining_config"], "fusion": fusion}
    config = type(base.config).from_dict(values)  # validated like any config
    torch.manual_seed(seed)
    model = type(base)(config)  # HiLightForConditionalGeneration with the new fusion
    state = {k: v for k, v in base.state_dict().items() if not k.startswith("token_mining.")}
    state |= {
        k: v for k, v in model.state_dict().items() if k.startswith("token_mining.")
    }  # the fresh fusion
    model.load_state_dict(state)  # strict: every other weight comes from the stage-0 model
    save_hub_folder(model, processor, out)


def table(results: dict[str, dict]) -> str:
    names = list(results)
    types = sorted({t for r in results.values() for t in r["types"]})
    lines = ["| question type | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

    def cell(entry: dict | None) -> str:
        return (
            "–" if entry is None else f"{entry['accuracy']:.3f} [{entry['ci'][0]:.2f}, {entry['ci'][1]:.2f}]"
        )

    lines.append("| **overall** | " + " | ".join(cell(results[n]["overall"]) for n in names) + " |")
    for t in types:
        lines.append(f"| {t} | " + " | ".join(cell(results[n]["types"].get(t)) for n in names) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baseline = results.get("majority-answer baseline")
    names = [n for n in results if n != "majority-answer baseline"]
    acc = [results[n]["overall"]["accuracy"] for n in names]
    low = [a - results[n]["overall"]["ci"][0] for a, n in zip(acc, names, strict=True)]
    high = [results[n]["overall"]["ci"][1] - a for a, n in zip(acc, names, strict=True)]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(
        range(len(names)),
        acc,
        yerr=[low, high],
        capsize=4,
        color=["#2b7a4b"] + ["#7f8c8d"] * (len(names) - 1),
    )
    if baseline is not None:
        ax.axhline(baseline["overall"]["accuracy"], color="#c0392b", linestyle="--", label="majority answer")
        ax.legend(loc="upper right")
    ax.set_xticks(range(len(names)), names, rotation=15, ha="right")
    ax.set_ylabel("overall exact-match accuracy (95% CI)")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=Path("train/configs/ablations.yaml"))
    p.add_argument("--out", type=Path, default=None, help="overrides the config's `out`")
    args = p.parse_args()
    cfg = yaml.safe_load(args.config.read_text())
    out = (args.out or Path(cfg["out"])).resolve()  # the steps run with the repo root as working directory
    data, towers = Path(cfg["data"]).resolve(), Path(cfg["towers"]).resolve()
    if not (towers / "model.safetensors").is_file():
        raise SystemExit(f"no stage-0 model at {towers}: run stage 0 (or `make default-model`) first")
    recipe = Recipe(out / "timings.json")
    results, majority = {}, None
    for name, fusion in cfg["variants"].items():
        work = out / slug(name)
        if not (work / "init" / "model.safetensors").is_file():
            init_variant(towers, fusion, int(cfg.get("seed", 0)), work / "init")
        common = ["--train_data", data / "annotations.json", "--seed", cfg.get("seed", 0)]
        recipe.step(
            f"{name}/stage1",
            work / "stage1",
            "stage1_align.py",
            *cfg["stage1"],
            "--model_name_or_path",
            work / "init",
            "--output_dir",
            work / "stage1",
            *common,
        )
        recipe.step(
            f"{name}/stage2",
            work / "stage2",
            "stage2_sft.py",
            *cfg["stage2"],
            "--model_name_or_path",
            work / "stage1",
            "--output_dir",
            work / "stage2",
            *common,
        )
        recipe.step(
            f"{name}/eval",
            work / "eval",
            "evaluate.py",
            *cfg["evaluate"],
            "--model",
            work / "stage2",
            "--data",
            data,
            "--out",
            work / "eval",
        )
        report = json.loads((work / "eval" / "report.json").read_text())
        results[name] = {"overall": report["overall"], "types": report["types"]}
        majority = report["baselines"].get("majority")  # the same items for every variant: one column
    if majority is not None:
        results["majority-answer baseline"] = majority
    atomic_write_text(out / "ablations.json", json.dumps(results, indent=1))
    text = f"# Ablations (test split; same data, towers, steps and seeds)\n\n{table(results)}"
    atomic_write_text(out / "ablations.md", text)
    plot(results, out / "ablations.png")
    print(text)
    return 0


if __name__ == "__main__":
    run_main(main)
