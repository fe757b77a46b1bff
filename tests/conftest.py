"""Shared test fixtures. Tests never reach the network: the Hub is forced offline."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import hilight_train  # registers the repo root as the package `hilight`

REPO_ROOT = hilight_train.REPO_ROOT


def official_fixtures_dir() -> Path:
    """The official reference fixtures: `shared/reference/official` beside the repo, or $HILIGHT_OFFICIAL_FIXTURES."""
    override = os.environ.get("HILIGHT_OFFICIAL_FIXTURES")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "reference" / "official"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def official_dir() -> Path:
    """The fixtures folder; parity tests skip with the reason when it is absent (a clone from the Hub), and
    fail instead when ``HILIGHT_REQUIRE_OFFICIAL_FIXTURES=1`` (CI sets it: there the fixtures must exist)."""
    path = official_fixtures_dir()
    if not (path / "README.md").is_file():
        reason = (
            f"official reference fixtures not found at {path} (they live beside the repo, not in it); "
            "clone the repo beside `shared/` or set HILIGHT_OFFICIAL_FIXTURES"
        )
        if os.environ.get("HILIGHT_REQUIRE_OFFICIAL_FIXTURES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A 6-clip data-engine dataset (9-ball, 8-ball, snooker; train/val/test), made once per session."""
    from hilight_train.billiards.clip import ClipConfig
    from hilight_train.billiards.runner import generate

    out = tmp_path_factory.mktemp("billiards")
    generate(out, 6, 0, ["9ball", "8ball", "snooker"], ClipConfig(), workers=1, command="tests")
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_dataset) -> Path:
    """A random-weight tiny-preset model folder (tokenizer trained on the tiny dataset's text), saved once."""
    import json

    from hilight_train.model_folder import init_model_folder

    entries = json.loads((tiny_dataset / "annotations.json").read_text())
    texts = [turn["value"] for e in entries for turn in e["conversations"]]
    out = tmp_path_factory.mktemp("tiny_model")
    init_model_folder(out, texts, preset="tiny", vocab_size=400, seed=0)
    return out


@pytest.fixture(scope="session")
def engine_data(tmp_path_factory) -> Path:
    """8 small clips (9-ball and three-cushion) from the data engine, with annotations and captions."""
    from hilight_train.billiards.clip import ClipConfig
    from hilight_train.billiards.runner import generate

    out = tmp_path_factory.mktemp("train_data")
    cfg = ClipConfig(width=128, height=96, fps=10, max_duration=2.0)
    generate(out, 8, 1, ["9ball", "3cushion"], cfg, workers=1, command="tests")
    return out


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory, engine_data) -> Path:
    """A random-weight tiny model cut for tests (4 frames of 64 x 96 px), tokenizer from `engine_data`'s text."""
    import json
    import sys

    from hilight_train.model_folder import init_model_folder
    from hilight_train.training import save_hub_folder

    sys.path.insert(0, str(Path(__file__).parent))
    from _train_utils import OVERRIDES

    entries = json.loads((engine_data / "annotations.json").read_text())
    texts = [t["value"].replace("<video>", "") for e in entries for t in e["conversations"]]
    texts += [
        json.loads(ln)["long_caption"] for ln in (engine_data / "captions.jsonl").read_text().splitlines()
    ]
    out = tmp_path_factory.mktemp("base")
    model, processor = init_model_folder(None, texts, preset="tiny", vocab_size=600, seed=0, **OVERRIDES)
    save_hub_folder(model, processor, out)
    return out


@pytest.fixture(scope="session")
def annotations(engine_data) -> str:
    return str(engine_data / "annotations.json")
