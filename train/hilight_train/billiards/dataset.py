"""Dataset writer: plan clips, generate them in parallel (resumable), merge into dataset files.

Layout of a dataset folder::

    videos/<clip>.mp4         H.264 clips
    truth/<clip>.safetensors  per-frame ground truth: every ball's position, projected radius and state in
                              every rendered frame (``frame_truth``)
    records/<clip>.json       everything about one clip (written last, atomically: its presence
                              marks the clip finished, so re-running skips it)
    annotations.json          all entries (LLaVA/HiLight conversation format + type, facts, split)
    annotations_<split>.json  the same entries per split
    events.jsonl              full ground truth per clip (shot parameters and seed included)
    captions.jsonl            clip -> caption and long caption (tower pretraining)
    card.md                   counts and majority-answer baselines

Splits: clip ``k`` of split ``s`` takes its seed from ``SeedSequence(seed, spawn_key=(s, k))``,
so train, val and test come from disjoint random streams; every entry carries ``split`` and the
per-split files hold the same entries. Games alternate within a split (``games[k % len(games)]``).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_write_text
from .games import GAMES

# What a clip's record holds, by version: "2" asks every clip the same question types whatever was potted, and
# draws the wording from its own random stream. Records of another version are made again.
ENGINE_VERSION = "2"
SPLITS = ("train", "val", "test")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
CAPTION_QUESTIONS = (
    "Describe the shot.",
    "Commentate on this shot.",
    "What happened in this clip?",
    "Give a short commentary of the shot.",
)


@dataclass(frozen=True)
class ClipJob:
    clip_id: str
    split: str
    index: int
    game: str
    seed: int


def clip_seed(seed: int, split: str, index: int) -> int:
    """64-bit clip seed from the dataset seed, split and index (disjoint streams per split)."""
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(SPLIT_CODES[split], index))
    return int(ss.generate_state(1, dtype=np.uint64)[0])


def split_sizes(n: int, val: float = 0.1, test: float = 0.1) -> dict[str, int]:
    n_val, n_test = round(n * val), round(n * test)
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def plan(
    n_clips: int, seed: int, games: tuple[str, ...] = GAMES, val: float = 0.1, test: float = 0.1
) -> list[ClipJob]:
    """All clips of a dataset, in a fixed order."""
    for g in games:
        if g not in GAMES:
            raise ValueError(f"unknown game {g!r}; choose from {', '.join(GAMES)}")
    jobs = []
    for split, n in split_sizes(n_clips, val, test).items():
        for k in range(n):
            game = games[k % len(games)]
            jobs.append(ClipJob(f"{split}-{k:06d}-{game}", split, k, game, clip_seed(seed, split, k)))
    return jobs


def is_done(out: Path, job: ClipJob) -> bool:
    """The clip's files are all there and its record was made by this engine version from this seed (a record
    of another version or seed is made again)."""
    if not all(
        (out / sub / f"{job.clip_id}{ext}").exists()
        for sub, ext in (("records", ".json"), ("videos", ".mp4"), ("truth", ".safetensors"))
    ):
        return False
    record = json.loads((out / "records" / f"{job.clip_id}.json").read_text(encoding="utf-8"))
    return record.get("engine_version") == ENGINE_VERSION and record.get("seed") == job.seed


def run_job(out: Path, job: ClipJob, cfg, timings: dict | None = None) -> str:
    """Generate one clip (video and frame truth first, then its record); skip it if already finished."""
    if is_done(out, job):
        return job.clip_id
    from . import frame_truth
    from .clip import make_clip  # imported in the worker (pooltool and numba load there)
    from .video import X264_OPTIONS, write_mp4

    frames, record, truth = make_clip(job.game, job.seed, cfg, timings=timings)
    import time

    t = time.perf_counter()
    write_mp4(
        out / "videos" / f"{job.clip_id}.mp4", frames, cfg.fps, {**X264_OPTIONS, "preset": cfg.x264_preset}
    )
    if timings is not None:
        timings["encode"] = timings.get("encode", 0.0) + time.perf_counter() - t
    frame_truth.write(out / "truth" / f"{job.clip_id}.safetensors", truth)
    record = {
        "id": job.clip_id,
        "split": job.split,
        "index": job.index,
        "video": f"videos/{job.clip_id}.mp4",
        "frame_truth": f"truth/{job.clip_id}.safetensors",
        **record,
    }
    atomic_write_text(out / "records" / f"{job.clip_id}.json", json.dumps(record))
    return job.clip_id


def entries_of(record: dict, rng_seed: int) -> list[dict]:
    """Annotation entries of a clip: its questions, then one caption entry."""
    rng = np.random.default_rng(rng_seed)
    base = {"video": record["video"], "split": record["split"], "clip": record["id"], "game": record["game"]}
    out = []
    for j, qa in enumerate(record["qa"]):
        out.append({
            "id": f"{record['id']}-q{j:02d}",
            **base,
            "conversations": [{"from": "human", "value": "<video>\n" + qa["question"]}, {"from": "gpt", "value": qa["answer"]}],
            "type": qa["type"],
            "facts": qa["facts"],
        })  # fmt: skip
    q = CAPTION_QUESTIONS[int(rng.integers(len(CAPTION_QUESTIONS)))]
    out.append({
        "id": f"{record['id']}-caption",
        **base,
        "conversations": [{"from": "human", "value": "<video>\n" + q}, {"from": "gpt", "value": record["caption"]}],
        "type": "caption",
        "facts": record["caption_facts"],
    })  # fmt: skip
    return out


def merge(out: Path, jobs: list[ClipJob], command: str = "") -> dict:
    """Write annotations, events, captions and the card from finished clip records."""
    records = []
    for job in jobs:
        p = out / "records" / f"{job.clip_id}.json"
        records.append(json.loads(p.read_text(encoding="utf-8")))
    entries = []
    for rec in records:
        entries.extend(entries_of(rec, rec["seed"] % (2**32)))
    atomic_write_text(out / "annotations.json", json.dumps(entries, indent=1))
    for split in SPLITS:
        atomic_write_text(
            out / f"annotations_{split}.json",
            json.dumps([e for e in entries if e["split"] == split], indent=1),
        )
    ev_keys = (
        "id",
        "split",
        "game",
        "seed",
        "engine_version",
        "video",
        "frame_truth",
        "n_frames",
        "config",
        "shot",
        "camera",
        "look",
        "events",
        "truth",
    )
    atomic_write_text(
        out / "events.jsonl", "".join(json.dumps({k: r[k] for k in ev_keys}) + "\n" for r in records)
    )
    atomic_write_text(
        out / "captions.jsonl",
        "".join(
            json.dumps(
                {
                    "id": r["id"],
                    "video": r["video"],
                    "split": r["split"],
                    "caption": r["caption"],
                    "long_caption": r["long_caption"],
                }
            )
            + "\n"
            for r in records
        ),
    )
    stats = card_stats(records, entries)
    atomic_write_text(out / "card.md", render_card(stats, command))
    return stats


def _key(facts) -> str:
    return json.dumps(facts, sort_keys=True)


def card_stats(records: list[dict], entries: list[dict]) -> dict:
    """Counts per split/game/type/answer and majority baselines."""
    by_type: dict[str, Counter] = defaultdict(Counter)
    train_by_type: dict[str, Counter] = defaultdict(Counter)
    test_by_type: dict[str, list] = defaultdict(list)
    for e in entries:
        k = _key(e["facts"])
        by_type[e["type"]][k] += 1
        if e["split"] == "train":
            train_by_type[e["type"]][k] += 1
        else:
            test_by_type[e["type"]].append(k)
    majority = {}
    for t, c in sorted(by_type.items()):
        top, n = c.most_common(1)[0]
        total = sum(c.values())
        held = test_by_type.get(t, [])
        train_top = train_by_type[t].most_common(1)[0][0] if train_by_type.get(t) else None
        majority[t] = {
            "entries": total,
            "distinct_answers": len(c),
            "majority_answer": top,
            "majority_acc": n / total,
            "train_majority_on_val_test": (sum(k == train_top for k in held) / len(held))
            if held and train_top
            else None,
            "top_answers": c.most_common(6),
        }
    return {
        "clips": len(records),
        "entries": len(entries),
        "splits": Counter(r["split"] for r in records),
        "games": Counter(r["game"] for r in records),
        "split_game": Counter(f"{r['split']}/{r['game']}" for r in records),
        "shot_kinds": Counter(f"{r['game']}/{r['shot']['kind']}" for r in records),
        "cameras": Counter(r["camera"]["family"] for r in records),
        "truncated": sum(r["truth"]["truncated"] for r in records),
        "types": majority,
    }


def render_card(stats: dict, command: str = "") -> str:
    lines = [
        "# Synthetic billiards clips (HiLight data engine)",
        "",
        "Physics from pooltool, frames rendered by the engine, exact questions, answers and commentary from the",
        "simulated events. Facts schema: `train/hilight_train/billiards/parse.py` (module docstring).",
        "",
    ]
    if command:
        lines += ["Generated with:", "", f"    {command}", ""]
    lines += [
        f"- clips: {stats['clips']}, annotation entries: {stats['entries']}",
        f"- splits (clips): {dict(stats['splits'])} — every entry has a `split` field; `annotations_<split>.json` hold the same entries per split; splits use disjoint seed streams",
        f"- games: {dict(stats['games'])}",
        f"- cameras: {dict(stats['cameras'])}",
        f"- shots cut at the maximum duration: {stats['truncated']}",
        "",
        "## Per-frame ground truth",
        "",
        "`truth/<clip>.safetensors` (safetensors, deterministic bytes; read with",
        "`hilight_train.billiards.frame_truth.read`) holds for every rendered frame and every ball: `xy` the centre",
        "in rendered-frame pixels (float32, sub-pixel exact), `radius` the projected radius in pixels, `uv` the",
        "view coordinates the answers name regions in, and `state` (0 gone, 1 still, 2 moving, 3 potted in this",
        "frame, 4 centre outside the picture); its metadata names each ball column (canonical ids) and the frame",
        "size. The processor's frames are `frames_indices` of these; a position maps into a resized model input by",
        "`x * width' / width, y * height' / height` (`frame_truth.to_model_input`).",
        "",
        "## Clips per split and game",
        "",
        "| split/game | clips |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in sorted(stats["split_game"].items())]
    lines += ["", "## Shot kinds", "", "| game/kind | clips |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(stats["shot_kinds"].items())]
    lines += [
        "",
        "## Question types and majority-answer baselines",
        "",
        "`majority` = accuracy of always giving the most common answer (all splits); `train-majority on val+test` =",
        "the train split's most common answer scored on val and test.",
        "",
        "| type | entries | distinct answers | majority answer | majority | train-majority on val+test |",
        "|---|---|---|---|---|---|",
    ]
    for t, m in stats["types"].items():
        held = "" if m["train_majority_on_val_test"] is None else f"{m['train_majority_on_val_test']:.3f}"
        ans = m["majority_answer"] if len(m["majority_answer"]) < 40 else m["majority_answer"][:37] + "..."
        lines.append(
            f"| {t} | {m['entries']} | {m['distinct_answers']} | `{ans}` | {m['majority_acc']:.3f} | {held} |"
        )
    lines += ["", "## Answer counts (most common answers per type)", ""]
    for t, m in stats["types"].items():
        if t == "caption":
            continue
        tops = ", ".join(f"`{a}`: {n}" for a, n in m["top_answers"])
        lines.append(f"- **{t}**: {tops}")
    return "\n".join(lines) + "\n"
