"""HiLight configuration: one composite config with typed, validated sub-configs, plus named presets.

    HiLightConfig
    ├── video_config         HiLightVideoConfig        CLIP-ViP video tower
    │   └── text_config      HiLightTowerTextConfig    its CLIP text encoder (contrastive pretraining only)
    ├── image_config         HiLightImageConfig        Long-CLIP image tower
    │   └── text_config      HiLightTowerTextConfig    its 248-token text encoder (contrastive pretraining only)
    ├── token_mining_config  HiLightTokenMiningConfig  TokenMining fusion -> vision tokens for the LM
    └── text_config          any transformers causal-LM config (Gemma in both presets)

Presets are configuration, not code: ``HiLightConfig.from_preset("paper")`` gives the official HiLight-2B
shapes, ``HiLightConfig.from_preset("tiny")`` the same architecture small enough for a 2-core CPU.
Keyword overrides merge into the preset, sub-config dicts key by key (nested dicts too):

    >>> cfg = HiLightConfig.from_preset("tiny", num_frames=8, text_config={"vocab_size": 1000})
    >>> cfg = HiLightConfig.from_preset("tiny", video_config={"text_config": {"num_hidden_layers": 1}})

The sub-configs cross-check each other in ``HiLightConfig`` (e.g. TokenMining's output width must equal the
LM's hidden size); a mismatch raises ``ValueError`` naming both fields.
"""

from __future__ import annotations

import ast
import copy
from typing import Any, ClassVar, Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

_SIMPLE_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_field_types(config: PreTrainedConfig) -> None:
    """Refuse a field of the wrong type by name (a config.json with ``"hidden_size": "abc"`` would otherwise
    fail deep inside a comparison): ``int``, ``float``, ``bool``, ``str`` fields, optional or not, and lists of
    ints."""
    for klass in type(config).__mro__:
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            if name.startswith("_") or not hasattr(config, name):
                continue
            value, kind = getattr(config, name), str(annotation).replace(" ", "")
            optional = kind.endswith("|None")
            kind = kind.removesuffix("|None")
            if value is None and optional:
                continue
            if kind in _SIMPLE_TYPES:
                ok = isinstance(value, _SIMPLE_TYPES[kind]) and (
                    kind == "bool" or not isinstance(value, bool)
                )
            elif kind == "list[int]":
                ok = isinstance(value, (list, tuple)) and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value
                )
            elif kind.startswith("Literal["):
                options = literal_options(type(config), name)
                if value not in options:
                    raise ValueError(
                        f"{type(config).__name__}.{name} must be one of {options}, got {value!r}."
                    )
                continue
            else:
                continue
            if not ok:
                raise ValueError(f"{type(config).__name__}.{name} must be of type {kind}, got {value!r}.")


def literal_options(config_class: type, name: str) -> tuple:
    """The values a ``Literal[...]`` field of a config class allows, from its annotation (one source)."""
    for klass in config_class.__mro__:
        annotation = vars(klass).get("__annotations__", {}).get(name)
        if annotation is not None:
            text = str(annotation).replace(" ", "")
            if not (text.startswith("Literal[") and text.endswith("]")):
                raise TypeError(f"{config_class.__name__}.{name} is not a Literal field")
            return ast.literal_eval(f"({text[len('Literal[') : -1]},)")
    raise AttributeError(f"{config_class.__name__} has no field {name!r}")


def _check_positive(config: PreTrainedConfig, *names: str) -> None:
    _check_field_types(config)
    for name in names:
        value = getattr(config, name)
        if value is None or value <= 0:
            raise ValueError(f"{type(config).__name__}.{name} must be a positive number, got {value!r}.")


def _check_heads(config: PreTrainedConfig, width: str, heads: str) -> None:
    if getattr(config, width) % getattr(config, heads) != 0:
        raise ValueError(
            f"{type(config).__name__}.{width} ({getattr(config, width)}) must be divisible by "
            f"{heads} ({getattr(config, heads)})."
        )


def _check_patches(config: PreTrainedConfig) -> None:
    for name in ("image_size", "image_width"):
        side = getattr(config, name)
        if side is not None and side % config.patch_size != 0:
            raise ValueError(
                f"{type(config).__name__}.{name} ({side}) must be a multiple of patch_size ({config.patch_size})."
            )
    if config.image_width is not None and config.image_width <= 0:
        raise ValueError(
            f"{type(config).__name__}.image_width must be positive or None, got {config.image_width}."
        )
    if config.patch_embed == "conv_stem":
        channels = config.stem_channels or []
        stride = config.stem_stride * 2 ** (len(channels) - 1) if channels else 0
        if any(c <= 0 for c in channels) or config.stem_stride < 2 or stride != config.patch_size:
            raise ValueError(
                f"{type(config).__name__}: a conv_stem's strides (stem_stride {config.stem_stride}, then 2 per "
                f"further conv of stem_channels={config.stem_channels}) must multiply to patch_size "
                f"({config.patch_size})."
            )


@strict
class HiLightTowerTextConfig(PreTrainedConfig):
    r"""The CLIP text encoder of a vision tower, for contrastive pretraining only (HiLight's generation path never
    uses it): a causal transformer whose output at the first end-of-text token is projected into the tower's
    joint space. Each tower config holds one as ``text_config``, as transformers' ``XCLIPConfig`` holds an
    ``XCLIPTextConfig``; the defaults are CLIP's (``HiLightImageConfig`` defaults to Long-CLIP's 248 positions).
    The MLP activation, LayerNorm epsilon and projection width are the tower's (``hidden_act``,
    ``layer_norm_eps``, ``projection_dim``).

    Args:
        vocab_size (`int`, defaults to 49408): vocabulary size.
        hidden_size (`int`, defaults to 512): width.
        intermediate_size (`int`, defaults to 2048): MLP width.
        num_hidden_layers (`int`, defaults to 12): layers (causal self-attention).
        num_attention_heads (`int`, defaults to 8): heads per layer.
        max_position_embeddings (`int`, defaults to 77): text context length (Long-CLIP's stretched one: 248).
        eos_token_id (`int`, defaults to 49407): the text embedding is read at the first occurrence of this id in
            each row (CLIP's end-of-text token).
        num_short_positions (`int`, *optional*): Long-CLIP's knowledge-preserving stretch: positions
            ``< num_short_positions`` read the original table ``position_embedding``, later ones
            ``position_embedding_res`` (20 in Long-CLIP). ``None`` = one position table (CLIP).
    """

    model_type = "hilight_tower_text"

    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    max_position_embeddings: int = 77
    eos_token_id: int = 49407
    num_short_positions: int | None = None

    def validate_shapes(self):
        _check_positive(
            self, "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "max_position_embeddings",
        )  # fmt: skip
        _check_heads(self, "hidden_size", "num_attention_heads")
        short = self.num_short_positions
        if short is not None and not 0 <= short <= self.max_position_embeddings:
            raise ValueError(
                "HiLightTowerTextConfig.num_short_positions must lie in [0, max_position_embeddings "
                f"({self.max_position_embeddings})], got {short}."
            )


# The text encoder's fields as the tower configs carried them before `text_config` (flat, `text_` prefixed).
_FLAT_TEXT_KEYS = {f"text_{name}": name for name in HiLightTowerTextConfig.__annotations__}


def _nest_text_config(config: PreTrainedConfig, kwargs: dict[str, Any]) -> None:
    """Complete a tower's ``text_config`` dict with the tower's text defaults (its ``SubConfigSpec``), and read a
    tower config of the flat form (``text_vocab_size``, ``text_hidden_size``, ... in ``kwargs``, as config.json
    files written before the nested config have them) into ``text_config``."""
    flat = {_FLAT_TEXT_KEYS[key]: kwargs.pop(key) for key in list(kwargs) if key in _FLAT_TEXT_KEYS}
    if flat and config.text_config is not None:
        raise ValueError(
            f"{type(config).__name__}: give the text encoder's fields in text_config, not both text_config and "
            f"the flat keys {sorted(f'text_{k}' for k in flat)}."
        )
    given = flat or config.text_config
    if given is None or isinstance(given, dict):
        defaults = type(config).sub_configs_defaults["text_config"].init_kwargs
        config.text_config = {**defaults, **(given or {})}
    elif not isinstance(given, HiLightTowerTextConfig):
        raise ValueError(
            f"{type(config).__name__}.text_config must be a HiLightTowerTextConfig or a dict, got "
            f"{type(given).__name__}."
        )


@strict
class HiLightVideoConfig(PreTrainedConfig):
    r"""CLIP-ViP video tower (a ViT over all frames at once) and the CLIP text encoder paired with it.

    Args:
        hidden_size (`int`, defaults to 768): width of the vision transformer.
        intermediate_size (`int`, defaults to 3072): hidden width of each MLP.
        num_hidden_layers (`int`, defaults to 12): number of pre-LN transformer layers.
        num_attention_heads (`int`, defaults to 12): attention heads per layer.
        patch_size (`int`, defaults to 16): side of the square patches (conv stride, no bias).
        image_size (`int`, defaults to 224): frame side (height) in pixels; ``(image_size // patch_size) ** 2``
            patches per square frame.
        image_width (`int`, *optional*): frame width in pixels when frames are not square (then
            ``image_size`` is the height); ``None`` = square frames of side ``image_size``.
        patch_embed (`str`, defaults to `"patch_conv"`): how pixels become patch tokens. ``"patch_conv"`` is the
            official single ``patch_size`` x ``patch_size`` convolution (pretrained and converted weights).
            ``"conv_stem"`` is a small convolutional stem for towers trained from scratch: ``len(stem_channels)``
            blocks (a patchify or 3x3 convolution + GroupNorm + ReLU, then 2x2 max pooling after the 3x3 ones)
            and a 1x1 convolution to ``hidden_size``, giving the same token grid.
        stem_channels (`list[int]`, *optional*): widths of the stem's convolutions (``conv_stem`` only);
            ``stem_stride * 2 ** (len(stem_channels) - 1)`` must equal ``patch_size``.
        stem_stride (`int`, defaults to 2): downsampling of the stem's first block (a ``stem_stride``-square
            patchify conv, or when 2 a 3x3 conv + 2x2 max pooling like the later blocks, which all halve).
        num_channels (`int`, defaults to 3): input channels.
        num_proxy_tokens (`int`, defaults to 3): learned video proxy tokens ("added_cls" in CLIP-ViP) placed
            after CLS; the leading block is ``1 + num_proxy_tokens`` tokens that attend to everything, while a
            patch token attends to the leading block and the patches of its own frame.
        num_frames (`int`, defaults to 12): number of frames the temporal embedding table was trained for;
            other frame counts interpolate it linearly along time (``align_corners=False``).
        hidden_act (`str`, defaults to `"quick_gelu"`): MLP activation, a key of ``transformers.activations.ACT2FN``.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of every LayerNorm in the tower.
        projection_dim (`int`, defaults to 512): width of the joint video-text embedding space
            (``encode_video`` / ``encode_text``), used only for contrastive pretraining.
        use_text_encoder (`bool`, defaults to `True`): build the CLIP text encoder (needed for contrastive
            pretraining only; HiLight's generation path never uses it).
        text_config (`HiLightTowerTextConfig` or `dict`, *optional*): the text encoder; defaults to CLIP's. The
            flat keys of earlier versions (``text_vocab_size``, ``text_hidden_size``, ...) are read into it.
        logit_scale_init_value (`float`, defaults to 2.6592): initial value of the learned log temperature.
    """

    model_type = "hilight_video"
    base_config_key = "video_config"
    sub_configs_defaults: ClassVar[dict[str, Any]] = {"text_config": HiLightTowerTextConfig}

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    patch_size: int = 16
    image_size: int = 224
    image_width: int | None = None
    patch_embed: Literal["patch_conv", "conv_stem"] = "patch_conv"
    stem_channels: list[int] | None = None
    stem_stride: int = 2
    num_channels: int = 3
    num_proxy_tokens: int = 3
    num_frames: int = 12
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    projection_dim: int = 512
    use_text_encoder: bool = True
    text_config: dict | PreTrainedConfig | None = None
    logit_scale_init_value: float = 2.6592

    def __post_init__(self, **kwargs):
        _nest_text_config(self, kwargs)
        super().__post_init__(**kwargs)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the frames the tower takes."""
        return self.image_size, self.image_width or self.image_size

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch rows and columns per frame."""
        return tuple(side // self.patch_size for side in self.frame_size)

    @property
    def num_patches(self) -> int:
        """Patch tokens per frame."""
        rows, cols = self.grid_size
        return rows * cols

    @property
    def num_leading_tokens(self) -> int:
        """CLS plus the proxy tokens (M)."""
        return 1 + self.num_proxy_tokens

    def validate_shapes(self):
        _check_positive(
            self, "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "patch_size",
            "image_size", "num_channels", "num_frames", "projection_dim",
        )  # fmt: skip
        if self.num_proxy_tokens < 0:
            raise ValueError(
                f"HiLightVideoConfig.num_proxy_tokens must be >= 0, got {self.num_proxy_tokens}."
            )
        _check_heads(self, "hidden_size", "num_attention_heads")
        _check_patches(self)


# Long-CLIP's text encoder: CLIP's, with the position table stretched from 77 to 248 (the first 20 kept).
_LONG_CLIP_TEXT = {"max_position_embeddings": 248, "num_short_positions": 20}


@strict
class HiLightImageConfig(PreTrainedConfig):
    r"""Long-CLIP image tower (an OpenAI-CLIP ViT applied to every frame) and its long-context text encoder.

    Args:
        hidden_size (`int`, defaults to 768): ViT width (rows of ``visual.conv1.weight`` in Long-CLIP files).
        intermediate_size (`int`, defaults to 3072): MLP width (4x the width in every CLIP).
        num_hidden_layers (`int`, defaults to 12): number of residual attention blocks.
        num_attention_heads (`int`, defaults to 12): heads per block (width // 64 in Long-CLIP).
        patch_size (`int`, defaults to 16): patch side (conv kernel and stride, no bias).
        image_size (`int`, defaults to 224): frame side (height) in pixels.
        image_width (`int`, *optional*): frame width in pixels when frames are not square (then
            ``image_size`` is the height); ``None`` = square frames of side ``image_size``.
        patch_embed (`str`, defaults to `"patch_conv"`): how pixels become patch tokens. ``"patch_conv"`` is the
            official single ``patch_size`` x ``patch_size`` convolution (pretrained and converted weights).
            ``"conv_stem"`` is a small convolutional stem for towers trained from scratch: ``len(stem_channels)``
            blocks (a patchify or 3x3 convolution + GroupNorm + ReLU, then 2x2 max pooling after the 3x3 ones)
            and a 1x1 convolution to ``hidden_size``, giving the same token grid.
        stem_channels (`list[int]`, *optional*): widths of the stem's convolutions (``conv_stem`` only);
            ``stem_stride * 2 ** (len(stem_channels) - 1)`` must equal ``patch_size``.
        stem_stride (`int`, defaults to 2): downsampling of the stem's first block (a ``stem_stride``-square
            patchify conv, or when 2 a 3x3 conv + 2x2 max pooling like the later blocks, which all halve).
        num_channels (`int`, defaults to 3): input channels.
        projection_dim (`int`, defaults to 512): output width of ``ln_post(CLS) @ proj``; these per-frame
            embeddings are TokenMining's queries.
        pooling (`str`, defaults to `"cls"`): what ``proj`` reads. ``"cls"`` is the official ``ln_post(CLS)``.
            ``"grid"`` (towers trained from scratch) keeps where things are: every patch token after ``ln_post``
            is reduced to ``grid_pool_dim`` channels, and a linear map of the whole flattened grid gives the
            pooled vector, so the frame embedding is a linear function of every cell's content.
        grid_pool_dim (`int`, defaults to 8): channels kept per cell by ``"grid"`` pooling.
        hidden_act (`str`, defaults to `"quick_gelu"`): MLP activation.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of every LayerNorm.
        use_text_encoder (`bool`, defaults to `True`): build the text encoder (contrastive pretraining only).
        text_config (`HiLightTowerTextConfig` or `dict`, *optional*): the text encoder; defaults to Long-CLIP's
            (CLIP's, with ``max_position_embeddings=248`` and ``num_short_positions=20``), which also fill the
            fields a dict leaves out. The flat keys of earlier versions (``text_vocab_size``, ...) are read
            into it.
        logit_scale_init_value (`float`, defaults to 2.6592): initial value of the learned log temperature.
    """

    model_type = "hilight_image"
    base_config_key = "image_config"
    sub_configs_defaults: ClassVar[dict[str, Any]] = {
        "text_config": SubConfigSpec(config_class=HiLightTowerTextConfig, init_kwargs=_LONG_CLIP_TEXT)
    }

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    patch_size: int = 16
    image_size: int = 224
    image_width: int | None = None
    patch_embed: Literal["patch_conv", "conv_stem"] = "patch_conv"
    stem_channels: list[int] | None = None
    stem_stride: int = 2
    num_channels: int = 3
    projection_dim: int = 512
    pooling: Literal["cls", "grid"] = "cls"
    grid_pool_dim: int = 8
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    use_text_encoder: bool = True
    text_config: dict | PreTrainedConfig | None = None
    logit_scale_init_value: float = 2.6592

    def __post_init__(self, **kwargs):
        _nest_text_config(self, kwargs)
        super().__post_init__(**kwargs)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the frames the tower takes."""
        return self.image_size, self.image_width or self.image_size

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch rows and columns per frame."""
        return tuple(side // self.patch_size for side in self.frame_size)

    @property
    def num_patches(self) -> int:
        """Patch tokens per frame."""
        rows, cols = self.grid_size
        return rows * cols

    def validate_shapes(self):
        _check_positive(
            self, "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "patch_size",
            "image_size", "num_channels", "projection_dim", "grid_pool_dim",
        )  # fmt: skip
        _check_heads(self, "hidden_size", "num_attention_heads")
        _check_patches(self)


@strict
class HiLightTokenMiningConfig(PreTrainedConfig):
    r"""TokenMining: single-head cross-attention from Long-CLIP frame queries to CLIP-ViP tokens.

    Every scalar of a frame's Long-CLIP embedding goes through ``Linear(1, queries_per_frame) + ReLU``; the
    result is re-read with a plain reshape as ``queries_per_frame`` query rows per frame (the official
    layout, see ``modeling_hilight.TokenMining``). The mined features go through
    LN -> Linear -> ReLU -> Linear -> ReLU to the LM width.

    Args:
        video_hidden_size (`int`, defaults to 768): width of the CLIP-ViP tokens (keys / values source).
        image_embed_dim (`int`, defaults to 512): width of the Long-CLIP frame embeddings (query source).
        hidden_size (`int`, defaults to 512): attention width of queries, keys and values.
        queries_per_frame (`int`, defaults to 32): vision tokens per frame; a clip of T frames gives
            ``T * queries_per_frame`` tokens for the LM (12 x 32 = 384 in the paper).
        output_hidden_size (`int`, defaults to 2048): width of the output tokens; must equal the LM's
            ``hidden_size``.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of the four LayerNorms.
        query_layout (`str`, defaults to `"official"`): how the ``Linear(1, Q)`` outputs become query rows.
            ``"official"`` re-reads them with a plain reshape, so each query row sees only
            ``image_embed_dim / queries_per_frame`` consecutive scalars of its frame (what the official
            weights expect). ``"per_query"`` transposes first, so query row ``k`` is the ``k``-th expansion of
            the whole frame embedding (every row sees every scalar); only for newly trained weights.
        fusion (`str`, defaults to `"token_mining"`): how the towers become vision tokens. HiLight is
            ``"token_mining"``. The others exist for the ablations (`train/ablations.py`), with the same number
            of vision tokens: ``"video_only"`` (CLIP-ViP only: learned queries, one set per frame, instead of
            Long-CLIP queries), ``"image_only"`` (Long-CLIP only: the queries go straight to the output MLP, no
            attention over CLIP-ViP) and ``"mlp"`` (a plain MLP projector, LLaVA style: each frame's CLIP-ViP
            patch tokens average-pooled to ``queries_per_frame`` groups, concatenated with the frame's Long-CLIP
            embedding, Linear -> GELU -> Linear).
        num_frames (`int`, defaults to 12): frames per clip; only ``"video_only"`` uses it (its learned queries).
        output_activation (`str`, defaults to `"relu"`): activation after the last output Linear. The official
            ``"relu"`` (every negative entry becomes zero); ``"none"`` keeps the sign of the vision tokens.
        output_layernorm (`bool`, defaults to `False`): a LayerNorm on the vision tokens after the output MLP,
            so their scale is set (norm about ``sqrt(output_hidden_size)``) instead of drifting in training.
            Off in the official model.
        query_residual (`bool`, defaults to `False`): add the projected queries to the mined features before the
            output MLP (``mined = attention @ v + q``), so the Long-CLIP frame embeddings reach the vision tokens
            directly and not only through which CLIP-ViP tokens they select. Off in the official model, whose
            output carries the queries only through the attention weights; on in the tiny preset.
    """

    model_type = "hilight_token_mining"
    base_config_key = "token_mining_config"

    video_hidden_size: int = 768
    image_embed_dim: int = 512
    hidden_size: int = 512
    queries_per_frame: int = 32
    output_hidden_size: int = 2048
    layer_norm_eps: float = 1e-5
    query_layout: Literal["official", "per_query"] = "official"
    fusion: Literal["token_mining", "video_only", "image_only", "mlp"] = "token_mining"
    num_frames: int = 12
    output_activation: Literal["relu", "none"] = "relu"
    output_layernorm: bool = False
    query_residual: bool = False

    def validate_shapes(self):
        _check_positive(
            self,
            "video_hidden_size",
            "image_embed_dim",
            "hidden_size",
            "queries_per_frame",
            "output_hidden_size",
        )


FUSIONS = literal_options(HiLightTokenMiningConfig, "fusion")

# Presets: plain data. Sub-config dicts are merged key by key with user overrides in `from_preset`.
_GEMMA_2B = {
    "model_type": "gemma",
    "vocab_size": 256000,
    "hidden_size": 2048,
    "intermediate_size": 16384,
    "num_hidden_layers": 18,
    "num_attention_heads": 8,
    "num_key_value_heads": 1,
    "head_dim": 256,
    # Exact erf GELU, as the official model ran it (transformers 4.38 mapped Gemma's "gelu" to exact GELU;
    # GemmaConfig now rewrites "gelu" to the tanh approximation, "gelu_python" is the same exact erf formula).
    "hidden_act": "gelu_python",
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    "bos_token_id": 2,
    "eos_token_id": 1,
    "pad_token_id": 0,
    "tie_word_embeddings": True,
}

# The tiny preset's towers: frames, patch embedding and text encoder (shared by both towers).
_TINY_FRAMES = {
    "image_size": 256,
    "image_width": 448,
    "patch_size": 32,
    "patch_embed": "conv_stem",
    "stem_channels": [24, 48, 128, 256],
    "stem_stride": 4,
}
_TINY_TEXT = {
    "vocab_size": 8192,
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "eos_token_id": 1,
}

PRESETS: dict[str, dict[str, Any]] = {
    # Official HiLight-2B shapes: CLIP-ViP B/16 (CLS + 3 proxies, 12 frames), Long-CLIP B/16 (512-d), TokenMining
    # 768/512 -> 12 x 32 = 384 tokens of width 2048, Gemma-2B.
    "paper": {
        "num_frames": 12,
        "video_config": {},
        "image_config": {},
        "token_mining_config": {},
        "text_config": _GEMMA_2B,
    },
    # Same architecture, CPU sized, for towers trained from scratch: frames kept at the data engine's
    # 448 x 256 (no resize; balls 3-8 px across stay resolvable), a convolutional stem per tower making
    # 32-px cells (8 x 14 = 112 per frame, 4 + 12 * 112 CLIP-ViP tokens), 4-layer towers of width 192 / 128
    # (Long-CLIP's frame embedding pooled from the whole grid, so TokenMining's queries know where balls are),
    # 8 queries per frame (96 vision tokens) whose scale a final LayerNorm sets, a 4-layer Gemma of width 256.
    # vocab_size is a placeholder the default-model recipe sets from its tokenizer.
    "tiny": {
        "num_frames": 12,
        "video_token_id": 6,  # <pad> <eos> <bos> <unk> <start_of_turn> <end_of_turn> <video> (training tokenizer)
        "scale_video_embeds": False,
        "video_config": {
            **_TINY_FRAMES,
            "hidden_size": 192,
            "intermediate_size": 768,
            "num_hidden_layers": 4,
            "num_attention_heads": 3,
            "projection_dim": 128,
            "text_config": _TINY_TEXT,
        },
        "image_config": {
            **_TINY_FRAMES,
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 4,
            "num_attention_heads": 2,
            "projection_dim": 128,
            "pooling": "grid",
            "text_config": _TINY_TEXT,
        },
        "token_mining_config": {
            "hidden_size": 128,
            "queries_per_frame": 8,
            "output_activation": "none",
            "output_layernorm": True,
            "query_residual": True,
        },
        "text_config": {
            **_GEMMA_2B,
            "vocab_size": 8192,
            "hidden_size": 256,
            "intermediate_size": 1024,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "head_dim": 64,
            "max_position_embeddings": 2048,
        },
    },
}

AUTO_MAP = {
    "AutoConfig": "configuration_hilight.HiLightConfig",
    "AutoModel": "modeling_hilight.HiLightForConditionalGeneration",
    "AutoModelForImageTextToText": "modeling_hilight.HiLightForConditionalGeneration",
}

_SUB_CONFIG_KEYS = ("video_config", "image_config", "token_mining_config", "text_config")


def _merged(base: Any, override: dict[str, Any]) -> dict[str, Any]:
    """``override`` merged into the dict ``base`` key by key, dicts in both recursively (a non-dict ``base``,
    e.g. a config object, is replaced)."""
    if not isinstance(base, dict):
        return override
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merged(base[key], value) if isinstance(value, dict) and key in base else value
    return merged


@strict
class HiLightConfig(PreTrainedConfig):
    r"""Configuration of [`HiLightForConditionalGeneration`]: two vision towers, TokenMining and a causal LM.

    Args:
        video_config (`HiLightVideoConfig` or `dict`, *optional*): CLIP-ViP tower; defaults to the paper shapes.
        image_config (`HiLightImageConfig` or `dict`, *optional*): Long-CLIP tower; defaults to the paper shapes.
        token_mining_config (`HiLightTokenMiningConfig` or `dict`, *optional*): TokenMining. Its
            ``video_hidden_size``, ``image_embed_dim`` and ``output_hidden_size`` must equal
            ``video_config.hidden_size``, ``image_config.projection_dim`` and ``text_config.hidden_size``.
        text_config (`PreTrainedConfig` or `dict`, *optional*): config of any causal LM that
            ``AutoModelForCausalLM.from_config`` can build (a dict needs its ``model_type``; default Gemma).
        video_token_id (`int`, *optional*): id of the ``<video>`` placeholder token (the converter and the
            presets set it; a forward with a visual input needs it). The processor expands
            each ``<video>`` into ``num_frames * token_mining_config.queries_per_frame`` copies; the model
            replaces them, in order, by the vision tokens.
        num_frames (`int`, defaults to 12): frames per clip that the processor samples and the model was
            trained on (``video_config.num_frames`` is the temporal table's length; both are 12 in the paper).
        scale_video_embeds (`bool`, defaults to `True`): multiply the vision tokens by the scale the LM's input
            embedding applies to token rows (Gemma's ``sqrt(hidden_size)``), as the official model does. Models
            whose TokenMining ends in a LayerNorm turn it off: their tokens already have the scale of text rows.
        initializer_range (`float`, defaults to 0.02): standard deviation of the normal initialisation of the
            towers' and TokenMining's linear, convolution and embedding weights (the LM initialises itself).

    Class method ``from_preset(name, **overrides)`` builds a named preset (``PRESETS``: "paper", "tiny").
    """

    model_type = "hilight"
    sub_configs_defaults: ClassVar[dict[str, Any]] = {
        "video_config": HiLightVideoConfig,
        "image_config": HiLightImageConfig,
        "token_mining_config": HiLightTokenMiningConfig,
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="gemma", init_kwargs=_GEMMA_2B),
    }

    video_config: dict | PreTrainedConfig | None = None
    image_config: dict | PreTrainedConfig | None = None
    token_mining_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    video_token_id: int | None = None
    num_frames: int = 12
    scale_video_embeds: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        # Hub loading through trust_remote_code: the root files named here are the model's code.
        kwargs["auto_map"] = {**AUTO_MAP, **(kwargs.get("auto_map") or {})}
        super().__post_init__(**kwargs)

    def to_diff_dict(self) -> dict[str, Any]:
        """transformers' diff against the defaults (what config.json holds), with each tower's ``text_config``
        diffed too: transformers diffs one level of sub-configs and would write a nested one whole."""
        out = super().to_diff_dict()
        for key in ("video_config", "image_config"):
            tower = out.get(key)
            if isinstance(tower, dict) and "text_config" in tower:
                text = getattr(self, key).text_config.to_diff_dict()
                text.pop("transformers_version", None)
                tower["text_config"] = text
        return out

    @property
    def tokens_per_video(self) -> int:
        """Vision tokens per clip of ``num_frames`` frames (384 in the paper)."""
        return self.num_frames * self.token_mining_config.queries_per_frame

    def validate_consistency(self):
        _check_field_types(self)
        tm = self.token_mining_config
        pairs = [
            ("token_mining_config.video_hidden_size", tm.video_hidden_size, "video_config.hidden_size",
             self.video_config.hidden_size),
            ("token_mining_config.image_embed_dim", tm.image_embed_dim, "image_config.projection_dim",
             self.image_config.projection_dim),
            ("token_mining_config.output_hidden_size", tm.output_hidden_size, "text_config.hidden_size",
             self.text_config.hidden_size),
        ]  # fmt: skip
        for name_a, a, name_b, b in pairs:
            if a != b:
                raise ValueError(f"HiLightConfig: {name_a} ({a}) must equal {name_b} ({b}).")
        _check_positive(self, "num_frames")
        if tm.fusion == "video_only" and tm.num_frames != self.num_frames:
            raise ValueError(
                f"HiLightConfig: fusion 'video_only' learns queries for token_mining_config.num_frames "
                f"({tm.num_frames}) frames, which must equal num_frames ({self.num_frames})."
            )
        vocab = getattr(self.text_config, "vocab_size", None)
        if self.video_token_id is not None and vocab is not None and not 0 <= self.video_token_id < vocab:
            raise ValueError(
                f"HiLightConfig.video_token_id ({self.video_token_id}) must be a token id of the LM "
                f"(0 <= id < text_config.vocab_size = {vocab})."
            )

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> HiLightConfig:
        """Build a named preset (see ``PRESETS``). Overrides of sub-configs given as dicts are merged into
        the preset's dict key by key (a dict in a dict, such as a tower's ``text_config``, is merged too);
        everything else replaces the preset value.

        The TokenMining widths that must match the towers and the LM follow them automatically unless
        overridden explicitly.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown HiLight preset {name!r}; choose one of {sorted(PRESETS)}.")
        kwargs = copy.deepcopy(PRESETS[name])
        for key, value in overrides.items():
            if key in _SUB_CONFIG_KEYS and isinstance(value, dict):
                kwargs[key] = _merged(kwargs.get(key, {}), value)
            else:
                kwargs[key] = value
        tm = kwargs["token_mining_config"]
        if isinstance(tm, dict):
            for tm_key, sub_key, field in [
                ("video_hidden_size", "video_config", "hidden_size"),
                ("image_embed_dim", "image_config", "projection_dim"),
                ("output_hidden_size", "text_config", "hidden_size"),
            ]:
                sub = kwargs[sub_key]
                value = sub.get(field) if isinstance(sub, dict) else getattr(sub, field)
                if value is not None:
                    tm.setdefault(tm_key, value)
            tm.setdefault("num_frames", kwargs.get("num_frames", 12))
        return cls(**kwargs)


__all__ = [
    "PRESETS",
    "HiLightConfig",
    "HiLightImageConfig",
    "HiLightTokenMiningConfig",
    "HiLightTowerTextConfig",
    "HiLightVideoConfig",
]
