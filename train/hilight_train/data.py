"""Conversation datasets in the LLaVA/HiLight JSON format, read into chat-template messages.

Accepted records (a JSON list, or JSON Lines):
- LLaVA / HiLight / Valley style: ``{"id", "video"?, "conversations": [{"from": "human"|"gpt", "value"}, ...]}``
  (``user``/``assistant`` roles are accepted too). Records from the data engine also carry ``type``,
  ``facts`` and ``split``; they are kept on the sample.
- VideoInstruct (Video-ChatGPT) style: ``{"video_id", "q", "a"}``: one question, one answer; the video is
  ``<video_id>.<ext>`` under the root.

As the official code does at training time, every ``<video>`` in a human turn is removed, the text stripped,
and the turn then starts with the video (the chat template renders it as ``<video>\\n``). Multi-turn
conversations and text-only samples (no ``video``) are supported. Video paths resolve under ``video_root``
and a path that escapes it (``..``, absolute paths, symlinks pointing outside) is refused.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import read_text

VIDEO_MARKER = "<video>"
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov")
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant"}


class DatasetFormatError(ValueError):
    """A record that is not in a supported conversation format (the message names the record)."""


@dataclass
class Sample:
    """One conversation: chat-template messages plus the video it talks about (if any)."""

    id: str
    messages: list[dict[str, Any]]
    video: Path | None = None
    type: str | None = None
    facts: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_under(root: Path, relative: str) -> Path:
    """`root / relative`, refusing any path that ends up outside `root` once resolved."""
    root = root.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise DatasetFormatError(f"video path {relative!r} escapes the dataset root {root}; refused")
    return path


def _turn_content(text: str, role: str) -> list[dict[str, Any]] | str:
    """Official training-time rule: a human turn that mentions <video> starts with the video."""
    if role != "user" or VIDEO_MARKER not in text:
        return text
    stripped = text.replace(VIDEO_MARKER, "").strip()
    return [{"type": "video"}, {"type": "text", "text": stripped}]


def _messages_from_turns(turns: list[dict[str, Any]], record_id: str) -> list[dict[str, Any]]:
    if not isinstance(turns, list) or not turns:
        raise DatasetFormatError(f"record {record_id!r}: `conversations` must be a non-empty list")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "value" not in turn or turn.get("from") not in ROLES:
            raise DatasetFormatError(
                f"record {record_id!r}, turn {i}: expected {{'from': human|gpt, 'value': str}}, got {turn!r}"
            )
        role = ROLES[turn["from"]]
        messages.append({"role": role, "content": _turn_content(str(turn["value"]), role)})
    return messages


def _find_video(root: Path, video_id: str) -> Path:
    for ext in VIDEO_EXTENSIONS:
        path = resolve_under(root, video_id + ext)
        if path.is_file():
            return path
    raise DatasetFormatError(
        f"no video file for id {video_id!r} under {root} (tried {', '.join(VIDEO_EXTENSIONS)})"
    )


def parse_record(record: dict[str, Any], video_root: Path, index: int = 0) -> Sample:
    """One JSON record -> `Sample`. Raises `DatasetFormatError` naming the record when it is malformed."""
    if not isinstance(record, dict):
        raise DatasetFormatError(f"record {index}: expected an object, got {type(record).__name__}")
    if "conversations" in record:
        record_id = str(record.get("id", index))
        messages = _messages_from_turns(record["conversations"], record_id)
        video = record.get("video")
        if video is not None and not isinstance(video, str):
            raise DatasetFormatError(
                f"record {record_id!r}: `video` must be a path string, got {type(video).__name__} {video!r}"
            )
        video = resolve_under(video_root, video) if video else None
        known = {"id", "video", "conversations", "type", "facts"}
        extra = {k: v for k, v in record.items() if k not in known}
        sample = Sample(record_id, messages, video, record.get("type"), record.get("facts"), extra)
    elif {"q", "a"} <= record.keys():
        record_id = str(record.get("id", record.get("video_id", index)))
        video = _find_video(video_root, str(record["video_id"])) if record.get("video_id") else None
        question = str(record["q"]).replace(VIDEO_MARKER, "").strip()
        user = [{"type": "video"}, {"type": "text", "text": question}] if video else question
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": str(record["a"])}]
        sample = Sample(record_id, messages, video)
    else:
        raise DatasetFormatError(
            f"record {index}: neither LLaVA-style (`conversations`) nor VideoInstruct-style (`q`, `a`); "
            f"keys are {sorted(record)}"
        )
    has_marker = any(isinstance(m["content"], list) for m in sample.messages)
    if has_marker and sample.video is None:
        raise DatasetFormatError(f"record {sample.id!r}: a turn has <video> but the record names no video")
    if sample.video is not None and not has_marker:
        # A video with no marker: the official format always has one; put it at the start of the first turn.
        first = sample.messages[0]
        first["content"] = [{"type": "video"}, {"type": "text", "text": str(first["content"]).strip()}]
    return sample


def load_samples(path: str | Path, video_root: str | Path | None = None) -> list[Sample]:
    """Read a JSON list or JSON Lines file of conversation records. `video_root` defaults to the file's folder."""
    path = Path(path)
    root = Path(video_root) if video_root is not None else path.parent
    text = read_text(path)
    try:
        records = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        )
    except json.JSONDecodeError as err:
        raise DatasetFormatError(f"{path}: not valid JSON or JSON Lines ({err})") from err
    if not isinstance(records, list):
        raise DatasetFormatError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    try:
        return [parse_record(record, root, i) for i, record in enumerate(records)]
    except DatasetFormatError as err:
        raise DatasetFormatError(f"{path}: {err}") from None


def _text_of(content: list[dict[str, Any]] | str) -> str:
    if isinstance(content, str):
        return content
    return " ".join(part["text"] for part in content if part.get("type") == "text")


def merge_by_video(samples: list[Sample], seed: int = 0) -> list[Sample]:
    """One multi-turn conversation per video: every sample about the same video, in an order shuffled per
    video (seeded), the video attached to the first user turn only — LLaVA-style multi-turn training data.

    A clip then goes through the vision towers once per step for all of its questions instead of once per
    question, which is what makes training the towers end to end affordable on a CPU. Text-only samples are
    kept as they are. Shape of the result: one ``Sample`` per distinct video, ids ``<first id>+<n-1>``.
    """
    groups: dict[Path, list[Sample]] = {}
    out: list[Sample] = []
    for s in samples:
        if s.video is None:
            out.append(s)
        else:
            groups.setdefault(s.video, []).append(s)
    for video, members in groups.items():
        order = np.random.default_rng([seed, zlib.crc32(str(video.name).encode())]).permutation(len(members))
        messages: list[dict[str, Any]] = []
        for i in order:
            for m in members[i].messages:
                if m["role"] == "user":
                    text = _text_of(m["content"])
                    first_turn = not messages
                    content = [{"type": "video"}, {"type": "text", "text": text}] if first_turn else text
                    messages.append({"role": "user", "content": content})
                else:
                    messages.append(dict(m))
        first = members[order[0]]
        sample_id = first.id if len(members) == 1 else f"{first.id}+{len(members) - 1}"
        out.append(Sample(sample_id, messages, video, None, None, dict(first.extra)))
    return out
