"""Official HiLight checkpoints -> this repo's layout, as pure functions over state dicts.

Each converter takes a plain state dict in a foreign layout and returns ``(config kwargs, state dict)`` in
ours. Key maps are explicit templates (``{}`` = layer index), read "our key <- their key(s)":

    "encoder.layers.{}.attn.qkv.weight": Rule(("...layers.{}.self_attn.q_proj.weight", ...k..., ...v...), cat)

Every source key must be consumed by the map or listed in a skip table with the reason; every target
key must be found. Anything else is a ``ConversionError`` naming the keys. Foreign files are read with
``torch.load(weights_only=True)``; a pickle that needs arbitrary code is refused.

Sources (official formats, see the fixtures README):
  CLIP-ViP   ``pretrain_clipvip_base_16.pt`` (keys ``clipmodel.*``, HF-CLIP names) + its CLIPConfig JSON
  Long-CLIP  ``longclip-*.pt`` (OpenAI-CLIP names, architecture inferred from shapes)
  TokenMining ``token_mining.bin`` / ``.pt`` (keys ``model.token_mining.*``), or inside a merged checkpoint
  LM         a merged HiLight dir (``model_type: hilight_gemma``: Gemma + TokenMining) or a plain HF LM dir
"""

from __future__ import annotations

import json
import math
import pickle
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

import hilight_train  # noqa: F401  (registers the repo root as the package `hilight`)
from hilight_train import REPO_ROOT
from hilight_train.model_folder import stop_token_ids


class ConversionError(ValueError):
    """A checkpoint does not match the expected layout (missing, unexpected or misshaped keys)."""


@dataclass(frozen=True)
class Rule:
    """Source key template(s) for one target key, and how to combine / transform the tensor(s)."""

    source: str | tuple[str, ...]
    transform: Callable[..., torch.Tensor] | None = None


def _cat(*tensors: torch.Tensor) -> torch.Tensor:
    return torch.cat(tensors, dim=0)


def _t(x: torch.Tensor) -> torch.Tensor:
    return x.t().contiguous()


def _squeeze0(x: torch.Tensor) -> torch.Tensor:
    return x[0]


KeyMap = dict[str, "str | Rule"]


# ----------------------------------------------------------------------------------------------------------
# Generic machinery


def load_torch_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a ``.pt``/``.bin`` state dict with ``weights_only=True``; refuse pickles that run code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ConversionError(
            f"Refusing to load {path}: it is not a plain tensor checkpoint and would need arbitrary code to "
            f"unpickle ({str(err).splitlines()[0]}). Only trusted files should ever be loaded without "
            "weights_only; re-save it as a dict of tensors (or safetensors) where it came from."
        ) from err
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f"{path} does not hold a flat dict of tensors (got {type(obj).__name__}).")
    return obj


def _template_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.escape(template).replace(r"\{\}", r"(\d+)") + "$")


def _layer_indices(template: str, keys: list[str]) -> list[int]:
    pattern = _template_regex(template)
    return sorted({int(m.group(1)) for k in keys if (m := pattern.match(k))})


def apply_key_map(
    state_dict: dict[str, torch.Tensor], key_map: KeyMap, skip: dict[str, str], what: str
) -> dict[str, torch.Tensor]:
    """Convert ``state_dict`` with ``key_map`` (target template -> source template(s)).

    ``skip`` maps source patterns (``{}`` = layer index, ``*`` = anything) to the reason they are dropped. Raises
    ``ConversionError`` listing source keys that are neither mapped nor skipped, and targets whose source
    is missing. Layer templates expand over the layer indices found for their first source template.
    """
    keys = list(state_dict)
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    missing: list[str] = []
    for target, rule in key_map.items():
        rule = rule if isinstance(rule, Rule) else Rule(rule)
        sources = rule.source if isinstance(rule.source, tuple) else (rule.source,)
        indices = _layer_indices(sources[0], keys) if "{}" in target else [None]
        if not indices:
            missing.append(sources[0])
        for i in indices:
            names = [s.replace("{}", str(i)) for s in sources]
            absent = [n for n in names if n not in state_dict]
            if absent:
                missing.extend(absent)
                continue
            tensors = [state_dict[n] for n in names]
            if rule.transform is not None:
                value = rule.transform(*tensors)
            elif len(tensors) == 1:
                value = tensors[0]
            else:
                raise ConversionError(f"{what}: several sources for {target} need a transform.")
            out[target.replace("{}", str(i))] = value
            used.update(names)
    skip_patterns = [
        re.compile("^" + re.escape(s).replace(r"\*", ".*").replace(r"\{\}", r"\d+") + "$") for s in skip
    ]
    unmapped = [k for k in keys if k not in used and not any(p.match(k) for p in skip_patterns)]
    if missing or unmapped:
        raise ConversionError(
            f"{what}: checkpoint does not match the expected layout.\n"
            f"  missing keys: {sorted(set(missing)) or 'none'}\n"
            f"  unmapped keys (neither converted nor listed as skipped): {sorted(unmapped) or 'none'}"
        )
    return out


def strip_prefix(state_dict: dict[str, torch.Tensor], prefixes: tuple[str, ...], what: str) -> dict:
    """Remove the first of ``prefixes`` that every key starts with; error if none does."""
    for prefix in prefixes:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix) :]: v for k, v in state_dict.items()}
    raise ConversionError(
        f"{what}: expected every key to start with one of {list(prefixes)}; first keys: {list(state_dict)[:5]}"
    )


def _layer_map(prefix_ours: str, prefix_theirs: str, names: dict[str, str | tuple[str, ...]], transform=None):
    out: KeyMap = {}
    for ours, theirs in names.items():
        key = f"{prefix_ours}.{{}}.{ours}"
        if isinstance(theirs, tuple):
            out[key] = Rule(tuple(f"{prefix_theirs}.{{}}.{t}" for t in theirs), _cat)
        else:
            out[key] = f"{prefix_theirs}.{{}}.{theirs}"
    return out


# HF-CLIP encoder layer names (CLIP-ViP vision and text) -> our TransformerBlock.
_HF_CLIP_LAYER = {
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "attn.qkv.weight": ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"),
    "attn.qkv.bias": ("self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"),
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}

# OpenAI-CLIP residual block names (Long-CLIP vision and text) -> our TransformerBlock.
_OPENAI_CLIP_LAYER = {
    "ln_1.weight": "ln_1.weight",
    "ln_1.bias": "ln_1.bias",
    "attn.qkv.weight": "attn.in_proj_weight",
    "attn.qkv.bias": "attn.in_proj_bias",
    "attn.out_proj.weight": "attn.out_proj.weight",
    "attn.out_proj.bias": "attn.out_proj.bias",
    "ln_2.weight": "ln_2.weight",
    "ln_2.bias": "ln_2.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight",
    "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight",
    "mlp.fc2.bias": "mlp.c_proj.bias",
}


# ----------------------------------------------------------------------------------------------------------
# CLIP-ViP

CLIPVIP_VISION_MAP: KeyMap = {
    "patch_embedding.weight": "vision_model.embeddings.patch_embedding.weight",
    "class_embedding": "vision_model.embeddings.class_embedding",
    "proxy_embedding": "vision_model.embeddings.added_cls",
    "position_embedding": "vision_model.embeddings.position_embedding.weight",
    "temporal_embedding": Rule(
        "vision_model.embeddings.temporal_embedding", _squeeze0
    ),  # (1, T, C) -> (T, C)
    "pre_layernorm.weight": "vision_model.pre_layrnorm.weight",  # sic: CLIP-ViP's spelling
    "pre_layernorm.bias": "vision_model.pre_layrnorm.bias",
    **_layer_map("encoder.layers", "vision_model.encoder.layers", _HF_CLIP_LAYER),
    "post_layernorm.weight": "vision_model.post_layernorm.weight",
    "post_layernorm.bias": "vision_model.post_layernorm.bias",
    "projection.weight": "visual_projection.weight",
}
CLIPVIP_TEXT_MAP: KeyMap = {
    "text_model.token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "text_model.position_embedding": "text_model.embeddings.position_embedding.weight",
    **_layer_map("text_model.encoder.layers", "text_model.encoder.layers", _HF_CLIP_LAYER),
    "text_model.final_layer_norm.weight": "text_model.final_layer_norm.weight",
    "text_model.final_layer_norm.bias": "text_model.final_layer_norm.bias",
    "text_model.projection.weight": "text_projection.weight",
    "logit_scale": "logit_scale",
}
CLIPVIP_SKIP = {
    "vision_model.embeddings.position_ids": "int64 buffer arange(197): positions are implied by token order",
    "text_model.embeddings.position_ids": "int64 buffer arange(77): positions are implied by token order",
}
CLIPVIP_TEXT_SKIP = {
    "text_model.*": "text tower not wanted (use_text_encoder=False)",
    "text_projection.weight": "text tower not wanted (use_text_encoder=False)",
    "logit_scale": "text tower not wanted (use_text_encoder=False)",
}


def clipvip_config_from_json(clip_config: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> dict:
    """HiLightVideoConfig kwargs from a CLIPConfig JSON (+ the facts the official code hard-codes, read from
    tensor shapes: proxy count from ``added_cls``, trained frame count from ``temporal_embedding``)."""
    vision = clip_config.get("vision_config") or clip_config.get("vision_config_dict")
    text = clip_config.get("text_config") or clip_config.get("text_config_dict")
    if vision is None:
        raise ConversionError(
            "CLIP-ViP config JSON has no vision_config (expected a CLIPConfig serialisation)."
        )
    sd = strip_prefix(state_dict, ("module.clipmodel.", "clipmodel."), "CLIP-ViP")
    kwargs = {
        "hidden_size": vision["hidden_size"],
        "intermediate_size": vision["intermediate_size"],
        "num_hidden_layers": vision["num_hidden_layers"],
        "num_attention_heads": vision["num_attention_heads"],
        "patch_size": vision["patch_size"],
        "image_size": vision["image_size"],
        "hidden_act": vision.get("hidden_act", "quick_gelu"),
        "layer_norm_eps": 1e-5,  # the official model ignores the JSON value and uses 1e-5 everywhere
        "projection_dim": clip_config.get("projection_dim", 512),
        "num_proxy_tokens": sd["vision_model.embeddings.added_cls"].shape[0],
        "num_frames": sd["vision_model.embeddings.temporal_embedding"].shape[1],
    }
    if text is not None and "text_model.embeddings.token_embedding.weight" in sd:
        kwargs.update(
            use_text_encoder=True,
            text_config={
                "vocab_size": text["vocab_size"],
                "hidden_size": text["hidden_size"],
                "intermediate_size": text["intermediate_size"],
                "num_hidden_layers": text["num_hidden_layers"],
                "num_attention_heads": text["num_attention_heads"],
                "max_position_embeddings": text["max_position_embeddings"],
                "eos_token_id": text.get("eos_token_id", 49407),
            },
        )
    else:
        kwargs["use_text_encoder"] = False
    return kwargs


def convert_clipvip(
    state_dict: dict[str, torch.Tensor], clip_config: dict[str, Any], include_text: bool = True
) -> tuple[dict, dict[str, torch.Tensor]]:
    """CLIP-ViP pretrain checkpoint -> (HiLightVideoConfig kwargs, ``video_tower.*`` state dict)."""
    kwargs = clipvip_config_from_json(clip_config, state_dict)
    include_text = include_text and kwargs["use_text_encoder"]
    kwargs["use_text_encoder"] = include_text
    sd = strip_prefix(state_dict, ("module.clipmodel.", "clipmodel."), "CLIP-ViP")
    key_map = {**CLIPVIP_VISION_MAP, **(CLIPVIP_TEXT_MAP if include_text else {})}
    skip = {**CLIPVIP_SKIP, **({} if include_text else CLIPVIP_TEXT_SKIP)}
    out = apply_key_map(sd, key_map, skip, "CLIP-ViP")
    if (
        len(_layer_indices("vision_model.encoder.layers.{}.mlp.fc1.weight", list(sd)))
        != kwargs["num_hidden_layers"]
    ):
        raise ConversionError(
            "CLIP-ViP: the JSON's num_hidden_layers does not match the checkpoint's layers."
        )
    return kwargs, {f"video_tower.{k}": v for k, v in out.items()}


# ----------------------------------------------------------------------------------------------------------
# Long-CLIP

LONGCLIP_VISION_MAP: KeyMap = {
    "patch_embedding.weight": "visual.conv1.weight",
    "class_embedding": "visual.class_embedding",
    "position_embedding": "visual.positional_embedding",
    "pre_layernorm.weight": "visual.ln_pre.weight",
    "pre_layernorm.bias": "visual.ln_pre.bias",
    **_layer_map("encoder.layers", "visual.transformer.resblocks", _OPENAI_CLIP_LAYER),
    "post_layernorm.weight": "visual.ln_post.weight",
    "post_layernorm.bias": "visual.ln_post.bias",
    "projection.weight": Rule("visual.proj", _t),  # x @ proj (W, D) == Linear with weight proj^T
}
LONGCLIP_TEXT_MAP: KeyMap = {
    "text_model.token_embedding.weight": "token_embedding.weight",
    "text_model.position_embedding": "positional_embedding",
    "text_model.position_embedding_res": "positional_embedding_res",
    **_layer_map("text_model.encoder.layers", "transformer.resblocks", _OPENAI_CLIP_LAYER),
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
    "text_model.projection.weight": Rule("text_projection", _t),
    "logit_scale": "logit_scale",
}
LONGCLIP_TEXT_SKIP = {
    "token_embedding.weight": "text tower not wanted (use_text_encoder=False)",
    "positional_embedding": "text tower not wanted (use_text_encoder=False)",
    "positional_embedding_res": "text tower not wanted (use_text_encoder=False)",
    "transformer.resblocks.*": "text tower not wanted (use_text_encoder=False)",
    "ln_final.weight": "text tower not wanted (use_text_encoder=False)",
    "ln_final.bias": "text tower not wanted (use_text_encoder=False)",
    "text_projection": "text tower not wanted (use_text_encoder=False)",
    "logit_scale": "text tower not wanted (use_text_encoder=False)",
}


def longclip_config_from_state_dict(sd: dict[str, torch.Tensor]) -> dict:
    """HiLightImageConfig kwargs inferred from tensor shapes, exactly as the official Long-CLIP loader does."""
    required = ["visual.conv1.weight", "visual.positional_embedding", "visual.proj", "text_projection"]
    if any(k not in sd for k in required):
        raise ConversionError(f"Long-CLIP: not an OpenAI-CLIP/Long-CLIP checkpoint (needs {required}).")
    width, _, patch, _ = sd["visual.conv1.weight"].shape
    grid = math.isqrt(sd["visual.positional_embedding"].shape[0] - 1)
    layers = len(_layer_indices("visual.transformer.resblocks.{}.attn.in_proj_weight", list(sd)))
    kwargs = {
        "hidden_size": width,
        "intermediate_size": sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        "num_hidden_layers": layers,
        "num_attention_heads": width // 64,
        "patch_size": patch,
        "image_size": patch * grid,
        "projection_dim": sd["text_projection"].shape[1],
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }
    if "ln_final.weight" in sd:
        text_width = sd["ln_final.weight"].shape[0]
        kwargs.update(
            use_text_encoder=True,
            text_config={
                "vocab_size": sd["token_embedding.weight"].shape[0],
                "hidden_size": text_width,
                "intermediate_size": sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                "num_hidden_layers": len(
                    _layer_indices("transformer.resblocks.{}.attn.in_proj_weight", list(sd))
                ),
                "num_attention_heads": text_width // 64,
                "max_position_embeddings": sd["positional_embedding"].shape[0],
                "num_short_positions": 20,  # Long-CLIP keeps the first 20 of CLIP's 77 positions
            },
        )
    return kwargs


def convert_longclip(
    state_dict: dict[str, torch.Tensor], include_text: bool = True
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Long-CLIP checkpoint -> (HiLightImageConfig kwargs, ``image_tower.*`` state dict)."""
    sd = state_dict
    if all(k.startswith("module.") for k in sd):
        sd = strip_prefix(sd, ("module.",), "Long-CLIP")
    kwargs = longclip_config_from_state_dict(sd)
    include_text = include_text and kwargs.get("use_text_encoder", False)
    kwargs["use_text_encoder"] = include_text
    key_map = {**LONGCLIP_VISION_MAP, **(LONGCLIP_TEXT_MAP if include_text else {})}
    out = apply_key_map(sd, key_map, {} if include_text else LONGCLIP_TEXT_SKIP, "Long-CLIP")
    return kwargs, {f"image_tower.{k}": v for k, v in out.items()}


# ----------------------------------------------------------------------------------------------------------
# TokenMining

TOKEN_MINING_MAP: KeyMap = {
    "video_proj.weight": "CLIP_VIP_projector.0.weight",
    "video_proj.bias": "CLIP_VIP_projector.0.bias",
    "query_expand.weight": "LongCLIP_projector.0.weight",
    "query_expand.bias": "LongCLIP_projector.0.bias",
    "query_norm.weight": "query_projector.0.weight",
    "query_norm.bias": "query_projector.0.bias",
    "query_proj.weight": "query_projector.1.weight",
    "query_proj.bias": "query_projector.1.bias",
    "key_norm.weight": "key_projector.0.weight",
    "key_norm.bias": "key_projector.0.bias",
    "key_proj.weight": "key_projector.1.weight",
    "key_proj.bias": "key_projector.1.bias",
    "value_norm.weight": "val_projector.0.weight",
    "value_norm.bias": "val_projector.0.bias",
    "value_proj.weight": "val_projector.1.weight",
    "value_proj.bias": "val_projector.1.bias",
    "output_norm.weight": "tokenizer_projector.0.weight",
    "output_norm.bias": "tokenizer_projector.0.bias",
    "output_fc1.weight": "tokenizer_projector.1.weight",
    "output_fc1.bias": "tokenizer_projector.1.bias",
    "output_fc2.weight": "tokenizer_projector.3.weight",
    "output_fc2.bias": "tokenizer_projector.3.bias",
}
TOKEN_MINING_PREFIXES = ("base_model.model.model.token_mining.", "model.token_mining.", "token_mining.")


def convert_token_mining(state_dict: dict[str, torch.Tensor]) -> tuple[dict, dict[str, torch.Tensor]]:
    """Official TokenMining weights (``model.token_mining.*``) -> (config kwargs, ``token_mining.*``)."""
    sd = strip_prefix(state_dict, TOKEN_MINING_PREFIXES, "TokenMining")
    out = apply_key_map(sd, TOKEN_MINING_MAP, {}, "TokenMining")
    kwargs = {
        "video_hidden_size": out["video_proj.weight"].shape[0],
        "image_embed_dim": out["query_norm.weight"].shape[0],
        "hidden_size": out["query_proj.weight"].shape[0],
        "queries_per_frame": out["query_expand.weight"].shape[0],
        "output_hidden_size": out["output_fc2.weight"].shape[0],
        "layer_norm_eps": 1e-5,
    }
    return kwargs, {f"token_mining.{k}": v for k, v in out.items()}


# ----------------------------------------------------------------------------------------------------------
# Language model


# Fields of the official `hilight_gemma` config.json that are not LM settings, and why they are dropped.
HILIGHT_GEMMA_SKIP_FIELDS = {
    "mm_vision_tower": "CLIP-ViP path; the tower is converted from --clipvip",
    "mm_vision_tower_aux": "Long-CLIP path; the tower is converted from --longclip",
    "architectures": "replaced by HiLightForConditionalGeneration",
    "model_type": "hilight_gemma is Gemma + HiLight; the text_config is a plain gemma config",
    "transformers_version": "written by save_pretrained",
    "torch_dtype": "storage dtype, chosen by --dtype",
    "_name_or_path": "provenance only",
    "tokenizer_model_max_length": "tokenizer setting, not an LM setting",
    "tokenizer_padding_side": "tokenizer setting, not an LM setting",
    "use_cache": "runtime option",
}


def hilight_gemma_text_config(official: dict[str, Any]) -> dict[str, Any]:
    """Gemma ``text_config`` dict from an official ``hilight_gemma`` config.json, keeping its numerics.

    transformers <= 4.38 (the official environment) ran Gemma's ``hidden_act: "gelu"`` as the exact erf
    GELU; current GemmaConfig rewrites "gelu" to the tanh approximation, so the exact function is written
    as ``"gelu_python"`` (the same erf formula). ``rope_theta`` becomes ``rope_parameters``.
    """
    cfg = {k: v for k, v in official.items() if k not in HILIGHT_GEMMA_SKIP_FIELDS}
    act = cfg.pop("hidden_activation", None) or cfg.pop("hidden_act", "gelu")
    cfg.pop("hidden_act", None)
    cfg["hidden_act"] = "gelu_python" if act == "gelu" else act
    cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": float(cfg.pop("rope_theta", 10000.0))}
    cfg.setdefault("tie_word_embeddings", True)  # Gemma's default in every version
    cfg["model_type"] = "gemma"
    return cfg


def _read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a HF checkpoint directory (single or sharded safetensors, else torch .bin)."""
    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    if single.is_file():
        return load_file(single)
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(directory / shard).items()}
    bins = sorted(directory.glob("pytorch_model*.bin"))
    if bins:
        return {k: v for b in bins for k, v in load_torch_file(b).items()}
    raise ConversionError(f"No model weights (model.safetensors / pytorch_model.bin) in {directory}.")


def has_tokenizer(directory: Path) -> bool:
    return any(
        (directory / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
    )


def convert_lm(
    weights: dict[str, torch.Tensor], lm_config: dict[str, Any]
) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """LM checkpoint -> (text_config dict, ``language_model.*`` state dict, TokenMining tensors found in it).

    The LM keeps its Hugging Face names under ``language_model.``; a merged HiLight checkpoint's
    ``model.token_mining.*`` tensors are returned separately, and any vision-tower tensors in it are an error
    (the official merged checkpoints do not contain them; convert the towers from their own files).
    """
    if lm_config.get("model_type") == "hilight_gemma":
        text_config = hilight_gemma_text_config(lm_config)
    else:
        text_config = dict(lm_config)
    token_mining = {k: v for k, v in weights.items() if ".token_mining." in f".{k}"}
    towers = [k for k in weights if re.match(r"^model\.(vision_tower|mm_projector)", k)]
    if towers:
        raise ConversionError(
            f"LM checkpoint holds vision-tower tensors the converter does not map: {towers[:5]}"
        )
    lm = {f"language_model.{k}": v for k, v in weights.items() if k not in token_mining}
    return text_config, lm, token_mining


# ----------------------------------------------------------------------------------------------------------
# Whole repo folder


# The model's code: these root files and every file they import relatively (trust_remote_code needs them all).
ROOT_CODE_FILES = ("configuration_hilight.py", "modeling_hilight.py", "processing_hilight.py")


def root_code_files() -> list[Path]:
    from transformers.dynamic_module_utils import get_relative_import_files

    files = {REPO_ROOT / name for name in ROOT_CODE_FILES if (REPO_ROOT / name).is_file()}
    for path in list(files):
        files.update(Path(f) for f in get_relative_import_files(str(path)))
    return sorted(files)


def build_config(video: dict, image: dict, token_mining: dict, text_config: dict, video_token_id: int):
    from hilight.configuration_hilight import HiLightConfig

    config = HiLightConfig(
        video_config=video,
        image_config=image,
        token_mining_config=token_mining,
        text_config=text_config,
        video_token_id=video_token_id,
        num_frames=video["num_frames"],
    )
    config.architectures = ["HiLightForConditionalGeneration"]
    return config


def check_against_model(config, state_dict: dict[str, torch.Tensor]) -> None:
    """Strict check: every key and shape the model expects, nothing else (tied weights may be absent)."""
    from hilight.modeling_hilight import HiLightForConditionalGeneration

    with torch.device("meta"):
        model = HiLightForConditionalGeneration(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    tied = set(model.get_expanded_tied_weights_keys(all_submodels=True))
    missing = sorted(k for k in expected if k not in state_dict and k not in tied)
    unexpected = sorted(k for k in state_dict if k not in expected)
    wrong = sorted(f"{k}: {tuple(v.shape)} != {expected[k]}" for k, v in state_dict.items() if k in expected
                   and tuple(v.shape) != expected[k])  # fmt: skip
    if missing or unexpected or wrong:
        raise ConversionError(
            f"Converted weights do not fit HiLightForConditionalGeneration:\n  missing: {missing or 'none'}\n"
            f"  unexpected: {unexpected or 'none'}\n  wrong shapes: {wrong or 'none'}"
        )
    for k in tied & set(state_dict):
        source = model.get_expanded_tied_weights_keys(all_submodels=True)[k]
        if not torch.equal(state_dict[k], state_dict[source]):
            raise ConversionError(f"{k} is tied to {source} by the config but differs in the checkpoint.")


def convert_official(
    clipvip: Path,
    clipvip_config: Path,
    longclip: Path,
    lm: Path,
    out: Path,
    token_mining: Path | None = None,
    video_token_id: int | None = None,
    dtype: torch.dtype = torch.float32,
    include_text_towers: bool = True,
) -> Path:
    """Convert official files into a complete Hub-style HiLight folder at ``out`` and return it."""
    from huggingface_hub import save_torch_state_dict
    from transformers import GenerationConfig

    lm = Path(lm)
    lm_config_path = lm / "config.json"
    if not lm_config_path.is_file():
        raise FileNotFoundError(f"--lm {lm} has no config.json")
    text_config, lm_sd, tm_in_lm = convert_lm(_read_weights(lm), json.loads(lm_config_path.read_text()))
    if token_mining is not None and tm_in_lm:
        raise ConversionError(f"{lm} already holds TokenMining weights; do not pass --token-mining as well.")
    if token_mining is None and not tm_in_lm:
        raise ConversionError(f"{lm} holds no TokenMining weights; pass --token-mining FILE.")
    tm_kwargs, tm_sd = convert_token_mining(load_torch_file(token_mining) if token_mining else tm_in_lm)
    video_kwargs, video_sd = convert_clipvip(
        load_torch_file(clipvip), json.loads(Path(clipvip_config).read_text()), include_text_towers
    )
    image_kwargs, image_sd = convert_longclip(load_torch_file(longclip), include_text_towers)

    tokenizer = None
    if has_tokenizer(lm):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(lm)
        from hilight.processing_hilight import VIDEO_TOKEN

        token_id = tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ConversionError(
                f"The tokenizer in {lm} has no {VIDEO_TOKEN} token. Add it as a special token (and resize the "
                "LM's embeddings) before converting; hilight_train.tokenizer builds such tokenizers."
            )
        if video_token_id is not None and video_token_id != token_id:
            raise ConversionError(
                f"--video-token-id {video_token_id} != the tokenizer's {VIDEO_TOKEN} id {token_id}."
            )
        video_token_id = token_id
    if video_token_id is None:
        raise ConversionError(f"{lm} has no tokenizer; pass --video-token-id (an id the prompts never use).")

    config = build_config(video_kwargs, image_kwargs, tm_kwargs, text_config, video_token_id)
    state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in {**video_sd, **image_sd, **tm_sd,
                  **lm_sd}.items()}  # fmt: skip
    check_against_model(config, state_dict)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config.dtype = dtype
    config.save_pretrained(out)
    save_torch_state_dict(state_dict, out, max_shard_size="5GB")
    for path in root_code_files():
        shutil.copyfile(path, out / path.name)
    generation_path = lm / "generation_config.json"
    if generation_path.is_file():
        generation = GenerationConfig.from_pretrained(lm)
    else:
        generation = GenerationConfig(
            bos_token_id=config.text_config.bos_token_id,
            eos_token_id=config.text_config.eos_token_id,
            pad_token_id=config.text_config.pad_token_id,
        )
    if tokenizer is not None:  # stop where a chat turn ends too, as Gemma's chat models do
        listed = generation.eos_token_id
        listed = [] if listed is None else [listed] if isinstance(listed, int) else list(listed)
        generation.eos_token_id = listed + [i for i in stop_token_ids(tokenizer) if i not in listed]
    generation.save_pretrained(out)
    if tokenizer is not None:
        from hilight.processing_hilight import HiLightProcessor, HiLightVideoProcessor

        processor = HiLightProcessor(
            video_processor=HiLightVideoProcessor(
                num_frames=config.num_frames,
                size={"height": config.video_config.image_size, "width": config.video_config.image_size},
            ),
            tokenizer=tokenizer,
            tokens_per_frame=config.token_mining_config.queries_per_frame,
            max_prompt_tokens=config.text_config.max_position_embeddings,
        )
        processor.save_pretrained(out)
    return out
