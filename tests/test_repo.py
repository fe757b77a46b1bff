"""The repository frame: the model card, the root-file import rule, install files and the demo's refusal."""

import ast
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard

ROOT_MODEL_FILES = (
    "configuration_hilight.py",
    "modeling_hilight.py",
    "processing_hilight.py",
    "video_reading_hilight.py",
    "chat_hilight.py",
)


def test_readme_is_a_valid_model_card(repo_root):
    card = ModelCard.load(repo_root / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "video-text-to-text"
    assert data["license"]
    assert "billiards" in data["tags"]
    # The two setup commands come first, before any other usage.
    text = card.text
    assert text.index("make demo") < text.index("from transformers import")
    assert "make test" in text


@pytest.mark.parametrize("name", ROOT_MODEL_FILES)
def test_root_model_files_import_only_each_other_and_packages(repo_root, name):
    """trust_remote_code downloads the root files alone: they may not import train/ or tests/."""
    path = repo_root / name
    if not path.exists():
        pytest.skip(f"{name} is not in the repo yet")
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            assert f"{node.module}.py" in ROOT_MODEL_FILES, (
                f"{name} imports .{node.module} (not a root model file)"
            )
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module]
        for module in modules:
            top = module.split(".")[0]
            assert top not in {"hilight_train", "train", "tests", "hilight"}, f"{name} imports {module}"


def test_requirements_keep_torch_a_range(repo_root):
    """Users elsewhere bring their own torch build (CUDA): only the Makefile pins the CPU build."""
    for req in ("requirements.txt", "space/requirements.txt"):
        lines = [ln.strip() for ln in (repo_root / req).read_text().splitlines()]
        torch_lines = [ln for ln in lines if ln.startswith("torch")]
        assert torch_lines and all("==" not in ln for ln in torch_lines), req
    assert "torch==2.13.0" in (repo_root / "Makefile").read_text()


def test_ci_runs_the_readme_test_command(repo_root):
    ci = (repo_root / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make test" in (repo_root / "README.md").read_text()


def test_demo_refuses_without_a_model(repo_root, tmp_path):
    """With no weights in the model folder, the demo names what is missing and gives no answer."""
    result = subprocess.run(
        [sys.executable, str(repo_root / "examples" / "demo.py"), "--model", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "model.safetensors" in result.stderr
    assert "model:" not in result.stdout
