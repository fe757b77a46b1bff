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
    path = official_fixtures_dir()
    if not (path / "README.md").is_file():
        raise FileNotFoundError(
            f"official reference fixtures not found at {path}; clone the repo beside `shared/` "
            "or set HILIGHT_OFFICIAL_FIXTURES"
        )
    return path
