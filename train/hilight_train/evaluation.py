"""Run a Hub-style HiLight model over a data-engine split and score every answer exactly.

Work is cached per item in ``<out>/predictions-<run>.jsonl`` (one line per answered question, flushed
as it goes), so an interrupted evaluation resumes where it stopped. Each clip's video is read and
encoded once, and its vision tokens are reused by every question about it.

Runs:
- ``model``: the model on its own clip;
- ``blind``: the same model on a *shuffled* video: every question gets the clip of another question's
  clip of the same game (a fixed derangement), so it sees a real table but not this shot;
- ``majority``: no model: the most common true facts of the type in the train split (the split itself
  when the dataset has no train split), scored like an answer;
- ``conversation``: the model with every question about a clip asked in one chat session, in a seeded
  random order (``run_conversations``), scored the same way as one question per prompt.
"""

from __future__ import annotations

import json
import os
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import resolve_under
from .files import read_json, read_text
from .scoring import DEFAULT_TIME_TOLERANCE, compare_facts, majority_facts, score_answer


def load_entries(data_dir: Path, split: str) -> list[dict[str, Any]]:
    """Entries of one split (``annotations_<split>.json``, else ``annotations.json`` filtered by split)."""
    per_split = data_dir / f"annotations_{split}.json"
    path = per_split if per_split.is_file() else data_dir / "annotations.json"
    if not path.is_file():
        raise FileNotFoundError(f"{data_dir} has no annotations.json: not a data-engine dataset folder")
    entries = read_json(path)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of entries, got {type(entries).__name__}")
    entries = [e for e in entries if isinstance(e, dict) and e.get("split", split) == split]
    if not entries:
        raise ValueError(f"{path} has no entries for split {split!r}")
    for e in entries:
        e.setdefault("clip", Path(e["video"]).stem)
    return entries


def question_of(entry: dict[str, Any]) -> str:
    """The question text of a single-turn entry, without the ``<video>`` marker."""
    return entry["conversations"][0]["value"].replace("<video>", "").strip()


def shuffled_videos(entries: list[dict[str, Any]], seed: int = 0) -> dict[str, str]:
    """clip -> the video of another clip of the same game (a derangement within each game)."""
    by_game: dict[str, list[tuple[str, str]]] = defaultdict(list)
    seen = set()
    for e in entries:
        if e["clip"] not in seen:
            seen.add(e["clip"])
            by_game[e.get("game", "")].append((e["clip"], e["video"]))
    rng = np.random.default_rng(seed)
    mapping = {}
    for clips in by_game.values():
        order = rng.permutation(len(clips))
        for i, j in enumerate(order):  # a cyclic shift of a random order: nobody keeps its own video
            mapping[clips[j][0]] = clips[order[(i + 1) % len(order)]][1] if len(clips) > 1 else clips[j][1]
    return mapping


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """Answers already computed by an earlier (possibly interrupted) run. A torn last line is dropped."""
    done = {}
    if path.is_file():
        for line in read_text(path).splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[row["id"]] = row
    return done


def drop_torn_tail(path: Path) -> None:
    """Cut a last line left unfinished by an interrupted write, so new lines append cleanly."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with path.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)


class VideoFeatureCache:
    """Vision tokens per video path, computed once (LRU-bounded so long runs stay in memory)."""

    def __init__(self, model, processor, data_dir: Path, max_items: int = 64):
        self.model, self.processor, self.data_dir, self.max_items = model, processor, data_dir, max_items
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @torch.inference_mode()
    def __call__(self, video: str) -> torch.Tensor:
        if video not in self._cache:
            path = resolve_under(self.data_dir, video)
            pixel_values = self.processor.video_processor(videos=str(path), return_tensors="pt")[
                "pixel_values_videos"
            ]
            self._cache[video] = self.model.get_video_features(pixel_values).video_embeds[0]  # (K, H)
            if len(self._cache) > self.max_items:
                self._cache.popitem(last=False)
        self._cache.move_to_end(video)
        return self._cache[video]


@torch.inference_mode()
def generate_answers(
    model,
    processor,
    items: list[tuple[dict[str, Any], str]],
    features: VideoFeatureCache,
    max_new_tokens: int,
    batch_size: int,
) -> Iterator[tuple[str, str]]:
    """(id, answer) for (entry, video) pairs, greedy, in left-padded batches."""
    tok = processor.tokenizer
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        embeds = [features(video) for _, video in batch]  # each (K, H)
        prompts = []
        for (entry, _), emb in zip(batch, embeds, strict=True):
            messages = [
                {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question_of(entry)}]}
            ]
            prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
            prompts.append(prompt.replace(processor.video_token, processor.video_token * emb.shape[0]))
        inputs = tok(prompts, return_tensors="pt", padding=True, padding_side="left")
        out = model.generate(
            **inputs, video_embeds=torch.stack(embeds), max_new_tokens=max_new_tokens, do_sample=False
        )
        texts = tok.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        for (entry, _), text in zip(batch, texts, strict=True):
            yield entry["id"], text.strip()


def run_answers(
    model,
    processor,
    entries: list[dict[str, Any]],
    data_dir: Path,
    cache_path: Path,
    video_of: dict[str, str] | None = None,
    max_new_tokens: int = 96,
    batch_size: int = 8,
    desc: str = "answering",
) -> dict[str, str]:
    """id -> answer for every entry, resuming from (and appending to) `cache_path`."""
    drop_torn_tail(cache_path)
    done = read_cache(cache_path)
    todo = [e for e in entries if e["id"] not in done]
    todo.sort(key=lambda e: e["clip"])  # questions about one clip together: its features stay cached
    items = [(e, (video_of or {}).get(e["clip"], e["video"])) for e in todo]
    features = VideoFeatureCache(model, processor, data_dir)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        cache_path.open("a") as f,
        tqdm(total=len(entries), initial=len(entries) - len(todo), desc=desc) as bar,
    ):
        for item_id, answer in generate_answers(
            model, processor, items, features, max_new_tokens, batch_size
        ):
            f.write(json.dumps({"id": item_id, "answer": answer}) + "\n")
            f.flush()
            os.fsync(f.fileno())
            done[item_id] = {"id": item_id, "answer": answer}
            bar.update(1)
    return {e["id"]: done[e["id"]]["answer"] for e in entries}


def conversation_order(entries: list[dict[str, Any]], seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """clip -> its entries in a seeded random order (the same order for the same seed, in any process)."""
    by_clip: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        by_clip[e["clip"]].append(e)
    order = {}
    for clip, chosen in by_clip.items():
        rng = np.random.default_rng([seed, zlib.crc32(clip.encode("utf-8"))])
        order[clip] = [chosen[i] for i in rng.permutation(len(chosen))]
    return order


def run_conversations(
    model,
    processor,
    entries: list[dict[str, Any]],
    data_dir: Path,
    cache_path: Path,
    seed: int = 0,
    max_new_tokens: int = 96,
    desc: str = "conversations",
) -> dict[str, str]:
    """id -> answer, every question about a clip asked in one chat session (``model.chat`` with
    ``session=``: the video once, then follow-ups), in a seeded random order (`conversation_order`). Resumes
    per clip: a conversation's answers are appended to ``cache_path`` when it ends."""
    drop_torn_tail(cache_path)
    done = read_cache(cache_path)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with cache_path.open("a") as f, tqdm(total=len(entries), desc=desc) as bar:
        for chosen in conversation_order(entries, seed).values():
            if all(e["id"] in done for e in chosen):
                bar.update(len(chosen))
                continue
            session, rows = None, []
            for e in chosen:
                video = str(resolve_under(data_dir, e["video"])) if session is None else None
                with torch.inference_mode():
                    answer, session = model.chat(
                        processor, video, question_of(e), session=session, max_new_tokens=max_new_tokens,
                        do_sample=False,
                    )  # fmt: skip
                rows.append({"id": e["id"], "answer": answer.strip(), "turn": len(rows)})
                bar.update(1)
            f.write("".join(json.dumps(r) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
            done.update({r["id"]: r for r in rows})
    return {e["id"]: done[e["id"]]["answer"] for e in entries}


def scored_items(
    entries: list[dict[str, Any]], answers: dict[str, str], time_tolerance: float = DEFAULT_TIME_TOLERANCE
) -> list[dict[str, Any]]:
    """Report items (see `report.py`) for model answers."""
    items = []
    for e in entries:
        answer = answers[e["id"]]
        scored = score_answer(e["type"], e["facts"], answer, time_tolerance)
        items.append(_item(e, answer, scored))
    return items


def majority_items(
    entries: list[dict[str, Any]],
    reference: list[dict[str, Any]],
    time_tolerance: float = DEFAULT_TIME_TOLERANCE,
) -> list[dict[str, Any]]:
    """Report items for the majority-answer baseline (facts compared directly, nothing to parse)."""
    majority = majority_facts(reference)
    items = []
    for e in entries:
        facts = majority.get(e["type"])
        scored = {"parsed": facts, **compare_facts(e["type"], e["facts"], facts, time_tolerance)}
        items.append(_item(e, json.dumps(facts), scored))
    return items


def _item(entry: dict[str, Any], answer: str, scored: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": entry["id"],
        "clip": entry["clip"],
        "type": entry["type"],
        "game": entry.get("game"),
        "question": question_of(entry),
        "truth": entry["conversations"][1]["value"],
        "truth_facts": entry["facts"],
        "answer": answer,
        **scored,
    }
