"""Frame cache: decode each clip's sampled frames once, train every epoch from disk.

Every step that runs the towers (stage 0, and stage 2 with ``--train_towers``) would otherwise decode its
clips again, every epoch (a cost comparable to the tiny towers' own step; see ``benchmarks/RESULTS.md``). The
frame cache stores what ``HiLightVideoProcessor.load`` returns for a clip — the sampled RGB frames, uint8
``(T, H, W, 3)`` at the file's own resolution — so a cached clip goes through exactly the same transform
(resize, normalise) as a clip read from disk: the pixel values are bit-identical
(tests/test_train.py::test_frame_cache_gives_the_processors_pixels_exactly).

Layout of a cache folder::

    fingerprint.json     the sampling settings that produced the frames (num_frames, do_sample_frames)
    <sha256>.npy         one clip's frames, keyed by the SHA-256 of the video file's bytes

Files are written atomically, so an interrupted build keeps every finished clip and a re-run decodes only the
missing ones. Opening a folder built with other sampling settings raises ``FrameCacheMismatchError``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .files import ContentKeys, atomic_write_text

FRAME_CACHE_FORMAT = "hilight-frame-cache/1"


class FrameCacheMismatchError(ValueError):
    """The folder holds frames sampled with other settings than the video processor's."""


def frame_fingerprint(video_processor: Any) -> dict[str, Any]:
    """What decides which frames of a file are kept: the sampling settings of the video processor."""
    return {
        "format": FRAME_CACHE_FORMAT,
        "num_frames": int(video_processor.num_frames),
        "do_sample_frames": bool(video_processor.do_sample_frames),
    }


class FrameCache:
    """Decoded, sampled frames of clips in a folder (see the module docstring)."""

    def __init__(self, root: str | Path, video_processor: Any):
        self.root = Path(root)
        self.video_processor = video_processor
        fingerprint = frame_fingerprint(video_processor)
        path = self.root / "fingerprint.json"
        if path.exists():
            stored = json.loads(path.read_text())
            if stored != fingerprint:
                raise FrameCacheMismatchError(
                    f"frame cache {self.root} holds frames sampled with {stored}, the video processor samples "
                    f"{fingerprint}; use another folder for these settings"
                )
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(fingerprint, indent=1, sort_keys=True))
        self.key = ContentKeys()  # SHA-256 of the file's bytes, memoised per path, size and mtime

    def _file(self, video: str | Path) -> Path:
        return self.root / f"{self.key(video)}.npy"

    def missing(self, videos: Iterable[str | Path]) -> list[str]:
        """Videos (unique by content, first-seen order) whose frames are not cached yet."""
        seen, out = set(), []
        for video in videos:
            k = self.key(video)
            if k not in seen and not (self.root / f"{k}.npy").exists():
                seen.add(k)
                out.append(str(video))
        return out

    def _decode_one(self, video: str) -> None:
        frames, _ = self.video_processor.load(video)  # (T, H, W, 3) uint8, the processor's own sampling
        frames = np.ascontiguousarray(np.asarray(frames, dtype=np.uint8))
        target = self._file(video)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.{id(frames)}.tmp.npy")
        np.save(tmp, frames)
        os.replace(tmp, target)

    def build(self, videos: Iterable[str | Path], workers: int = 2, progress: bool = True) -> FrameCache:
        """Decode every missing clip (``workers`` at a time; each decode runs in the processor's own child
        process when ``decode_in_subprocess`` is on, so threads suffice) and store its frames."""
        todo = self.missing(videos)
        if not todo:
            return self
        with ThreadPoolExecutor(max(1, workers)) as pool:
            jobs = pool.map(self._decode_one, todo)
            for _ in tqdm(jobs, total=len(todo), desc="frame cache", unit="clip", disable=not progress):
                pass
        return self

    def load(self, videos: Sequence[str | Path]) -> list[np.ndarray]:
        """Cached frames of ``videos``, each uint8 (T, H, W, 3); a clip not cached yet is decoded now."""
        out = []
        for video in videos:
            path = self._file(video)
            if not path.exists():
                self._decode_one(str(video))
            out.append(np.load(path))
        return out


def open_frame_cache(
    root: str | Path,
    video_processor: Any,
    videos: Iterable[str | Path] = (),
    workers: int = 2,
    progress: bool = True,
) -> FrameCache:
    """Open the cache at ``root`` for this video processor and decode the ``videos`` it is missing."""
    return FrameCache(root, video_processor).build(videos, workers=workers, progress=progress)
