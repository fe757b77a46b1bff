"""Feature cache: run the frozen vision towers once per clip, train every later epoch and stage from disk.

HiLight's towers (CLIP-ViP, Long-CLIP) are frozen in stages 1 and 2, so their outputs for a clip never change.
``build_feature_cache`` decodes each clip once, runs both towers, and stores

    video_hidden_states  (M + T*P, Dv)   CLIP-ViP last layer before post-LN
    frame_embeds         (T, Di)         Long-CLIP per-frame embeddings

as bfloat16 safetensors shards. ``FeatureCache.load`` returns them stacked for a batch; the model's forward
then runs TokenMining alone (``video_hidden_states=..., frame_embeds=...``).

Layout of a cache folder::

    fingerprint.json          what produced the features (see ``cache_fingerprint``)
    index.json                clip key -> shard file (written atomically after each shard)
    shard-00000.safetensors   tensors "<key>/video_hidden_states", "<key>/frame_embeds"

Clips are keyed by the SHA-256 of the video file's bytes, so renaming or moving a dataset keeps its cache and
an edited clip is never served stale features. The fingerprint holds the tower configs, a hash of the tower
weights that shape the features, the video processor config and the precision (the towers' autocast and the
storage dtype: fp32 runs never read bf16 features); opening a cache with another fingerprint
raises ``CacheMismatchError`` naming the differing fields. The language model is not part of it: a cache is
valid for every LM put on top of the same towers and processor. Building is resumable: finished shards are
kept, and a re-run computes only the missing clips.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from .files import ContentKeys, atomic_write_text

CACHE_FORMAT = "hilight-feature-cache/1"
_CONFIG_NOISE = ("transformers_version", "architectures", "_name_or_path", "dtype", "torch_dtype", "auto_map")


class CacheMismatchError(ValueError):
    """The cache was built by other towers, another tower config or another video processor config."""


class CacheMissError(KeyError):
    """A clip is not in the cache (build it with train/cache_features.py)."""


def _clean_config(config: Any) -> dict[str, Any]:
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: v for k, v in sorted(data.items()) if k not in _CONFIG_NOISE and not k.startswith("_")}


def tower_weights_hash(model: torch.nn.Module) -> str:
    """SHA-256 over the tower parameters and buffers that shape the cached features (names, shapes, fp32 bytes).

    The towers' text encoders and temperatures (contrastive pretraining only) are left out.
    """
    digest = hashlib.sha256()
    for tower_name in ("video_tower", "image_tower"):
        tower = getattr(model, tower_name)
        for name, tensor in sorted(tower.state_dict().items()):
            if name.startswith("text_model.") or name == "logit_scale":
                continue
            t = tensor.detach().to("cpu", torch.float32).contiguous()
            digest.update(f"{tower_name}.{name}:{tuple(t.shape)}".encode())
            digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def precision_of(bf16: bool, dtype: torch.dtype) -> dict[str, str]:
    """How features were computed and stored: the towers' autocast and the storage dtype."""
    return {"autocast": "bfloat16" if bf16 else "none", "storage_dtype": str(dtype).removeprefix("torch.")}


def cache_fingerprint(
    model: torch.nn.Module, processor: Any, bf16: bool = False, dtype: torch.dtype = torch.bfloat16
) -> dict[str, Any]:
    """What determines the cached features: tower configs, tower weights, video processor config, and the
    precision (``bf16`` autocast of the towers, storage ``dtype``)."""
    config = model.config
    video_processor = _clean_config(processor.video_processor)
    for key in ("processor_class", "video_processor_type", "decode_timeout", "decode_in_subprocess"):
        video_processor.pop(key, None)
    return {
        "format": CACHE_FORMAT,
        "video_config": _clean_config(config.video_config),
        "image_config": _clean_config(config.image_config),
        "tower_weights_sha256": tower_weights_hash(model),
        "video_processor": video_processor,
        "precision": precision_of(bf16, dtype),
    }


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: cache has {a!r}, model has {b!r}"]


class FeatureCache:
    """A folder of cached tower outputs, tied to one fingerprint (see the module docstring)."""

    def __init__(self, root: str | Path, fingerprint: dict[str, Any], create: bool = False):
        self.root = Path(root)
        self.fingerprint = fingerprint
        path = self.root / "fingerprint.json"
        if path.exists():
            stored = json.loads(path.read_text())
            diffs = _differences(stored, json.loads(json.dumps(fingerprint)))
            if diffs:
                raise CacheMismatchError(
                    f"feature cache {self.root} was built by another model or config; differences: "
                    + "; ".join(diffs[:8])
                    + ". Build a new cache for this model (train/cache_features.py) in another folder."
                )
        elif create:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(fingerprint, indent=1, sort_keys=True))
        else:
            raise FileNotFoundError(f"no feature cache at {self.root} (missing fingerprint.json)")
        index_path = self.root / "index.json"
        self.index: dict[str, str] = json.loads(index_path.read_text()) if index_path.exists() else {}
        self._handles: dict[str, Any] = {}
        self._keys = ContentKeys()

    @classmethod
    def for_model(
        cls,
        root: str | Path,
        model: torch.nn.Module,
        processor: Any,
        create: bool = False,
        bf16: bool = False,
        dtype: torch.dtype = torch.bfloat16,
    ):
        """Open (or with ``create=True`` start) the cache at ``root`` for this model's towers and processor,
        computed under ``bf16`` autocast or not and stored as ``dtype``."""
        return cls(root, cache_fingerprint(model, processor, bf16, dtype), create=create)

    # -- keys --------------------------------------------------------------------------------------------
    def key(self, video: str | Path) -> str:
        """SHA-256 of the file's bytes (memoised per path, size and mtime)."""
        return self._keys(video)

    def __contains__(self, video: str | Path) -> bool:
        return self.key(video) in self.index

    def missing(self, videos: Iterable[str | Path]) -> list[str]:
        """Videos (unique, in first-seen order) whose features are not cached yet."""
        seen, out = set(), []
        for video in videos:
            k = self.key(video)
            if k not in self.index and k not in seen:
                seen.add(k)
                out.append(str(video))
        return out

    # -- reading -----------------------------------------------------------------------------------------
    def _handle(self, shard: str):
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.root / shard), framework="pt")
        return self._handles[shard]

    def load(self, videos: Sequence[str | Path]) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked (stored dtype) ``video_hidden_states`` (V, M + T*P, Dv) and ``frame_embeds`` (V, T, Di)."""
        hidden, frames = [], []
        for video in videos:
            k = self.key(video)
            if k not in self.index:
                raise CacheMissError(
                    f"{video} is not in the feature cache {self.root}; run train/cache_features.py on this dataset"
                )
            handle = self._handle(self.index[k])
            hidden.append(handle.get_tensor(f"{k}/video_hidden_states"))
            frames.append(handle.get_tensor(f"{k}/frame_embeds"))
        return torch.stack(hidden), torch.stack(frames)

    # -- writing -----------------------------------------------------------------------------------------
    def write_shard(
        self, features: dict[str, tuple[torch.Tensor, torch.Tensor]], dtype: torch.dtype = torch.bfloat16
    ) -> str:
        """Store {key: (video_hidden_states, frame_embeds)} as one new shard, then update the index."""
        number = len({*self.index.values()})
        while (self.root / f"shard-{number:05d}.safetensors").exists():
            number += 1
        name = f"shard-{number:05d}.safetensors"
        tensors = {}
        for k, (hidden, frames) in features.items():
            tensors[f"{k}/video_hidden_states"] = hidden.to(dtype).contiguous()
            tensors[f"{k}/frame_embeds"] = frames.to(dtype).contiguous()
        tmp = self.root / f".{name}.tmp-{os.getpid()}"
        save_file(tensors, str(tmp), metadata={"format": "pt", "cache_format": CACHE_FORMAT})
        os.replace(tmp, self.root / name)
        self.index.update(dict.fromkeys(features, name))
        atomic_write_text(self.root / "index.json", json.dumps(self.index, indent=0, sort_keys=True))
        return name


@torch.no_grad()
def build_feature_cache(
    model: torch.nn.Module,
    processor: Any,
    videos: Iterable[str | Path],
    root: str | Path,
    batch_size: int = 4,
    clips_per_shard: int = 256,
    bf16: bool = False,
    progress: bool = True,
    dtype: torch.dtype = torch.bfloat16,
) -> FeatureCache:
    """Run both towers once on every clip that is not cached yet and store the outputs (resumable).

    Args:
        model: a ``HiLightForConditionalGeneration`` (only its towers run).
        processor: its ``HiLightProcessor`` (the video processor reads and preprocesses the clips).
        videos: video paths; duplicates are computed once.
        root: cache folder (created if needed; an existing one must have this model's fingerprint).
        batch_size: clips per tower forward.
        clips_per_shard: clips per safetensors shard (a shard is the unit of resumption).
        bf16: run the towers under bf16 autocast (faster on CPUs with AMX).
        dtype: storage dtype (bfloat16; float32 keeps the towers' fp32 outputs exactly, for parity checks).
    """
    cache = FeatureCache.for_model(root, model, processor, create=True, bf16=bf16, dtype=dtype)
    todo = cache.missing(videos)
    was_training = model.training
    model.eval()
    pending: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    bar = tqdm(total=len(todo), desc="caching tower features", unit="clip", disable=not progress)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        pixel_values = processor.video_processor(chunk, return_tensors="pt")[
            "pixel_values_videos"
        ]  # (V, T, 3, H, W)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hidden = model.video_tower(pixel_values)  # (V, M + T*P, Dv)
            frames = model.image_tower(pixel_values)  # (V, T, Di)
        for i, video in enumerate(chunk):
            pending[cache.key(video)] = (hidden[i], frames[i])
        if len(pending) >= clips_per_shard:
            cache.write_shard(pending, dtype)
            pending = {}
        bar.update(len(chunk))
    if pending:
        cache.write_shard(pending, dtype)
    bar.close()
    model.train(was_training)
    return cache


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    """Short stable id of a fingerprint (names the default cache folder of a model)."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
