"""The bundled default model at the repo root: it loads three ways (the repo folder, a copy of it, and an offline
Hub cache as "motern/hilight"), every way gives the same answers, and `make demo` answers the example clips.

Each load runs in a fresh Python process, as a user's would: the Hub cache location and HF_HUB_OFFLINE are read
when huggingface_hub is imported.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from make_default_model import MODEL_FILES  # train/ is on sys.path (pytest's pythonpath)

REPO = Path(__file__).resolve().parents[1]
HUB_ID = "motern/hilight"
# What a Hub user downloads: the model files `make default-model` installs and the root code files (auto_map
# points at the latter).
SHIPPED = (
    *MODEL_FILES,
    "configuration_hilight.py",
    "modeling_hilight.py",
    "processing_hilight.py",
    "video_reading_hilight.py",
    "chat_hilight.py",
)
MAX_SHIPPED_BYTES = 25 * 1024 * 1024

# Loads a model the way the README's usage snippet does, answers the example questions greedily and prints the
# answers and the first logits as JSON.
PROBE = r"""
import json, sys, torch
from transformers import AutoModel, AutoProcessor
source, examples = sys.argv[1], sys.argv[2]
model = AutoModel.from_pretrained(source, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(source, trust_remote_code=True)
out = {"class": type(model).__name__, "module": type(model).__module__, "answers": [], "logits": [], "generated": [],
       "end_of_turn": processor.tokenizer.convert_tokens_to_ids("<end_of_turn>")}
for item in json.load(open(f"{examples}/questions.json"))[:3]:
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": item["question"]}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, videos=f"{examples}/{item['clip']}", return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits[0, -1].float()
        ids = model.generate(**inputs, max_new_tokens=48, do_sample=False)
    out["logits"].append(logits[:8].tolist())
    out["generated"].append(ids[0, inputs["input_ids"].shape[1]:].tolist())
    out["answers"].append(processor.batch_decode(ids[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0])
print(json.dumps(out))
"""


def _probe(source: str, env_extra: dict[str, str] | None = None, cwd: Path | None = None) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env_extra or {})}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, source, str(REPO / "examples")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd or REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def from_repo() -> dict:
    return _probe(str(REPO))


def test_the_shipped_model_is_complete_and_small():
    missing = [name for name in SHIPPED if not (REPO / name).is_file()]
    assert not missing, f"the default model is not installed at the repo root: {missing} (make default-model)"
    total = sum((REPO / name).stat().st_size for name in SHIPPED)
    assert total <= MAX_SHIPPED_BYTES, f"shipped model files take {total / 2**20:.1f} MB (limit 25 MB)"
    config = json.loads((REPO / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_hilight.HiLightForConditionalGeneration"
    assert config["text_config"]["model_type"] == "gemma"
    tokenizer_config = json.loads((REPO / "tokenizer_config.json").read_text())
    assert "<video>" in json.dumps(tokenizer_config) + (REPO / "tokenizer.json").read_text()
    clips = sorted((REPO / "examples").glob("*.mp4"))
    assert 3 <= len(clips) <= 5 and all(c.stat().st_size < 2 * 2**20 for c in clips)
    games = {c.stem.split("_")[0] for c in clips}
    cameras = {c.stem.split("_")[1] for c in clips}
    assert len(games) >= 3 and len(cameras) >= 2, (games, cameras)


def test_loads_from_the_repo_folder(from_repo):
    assert from_repo["class"] == "HiLightForConditionalGeneration"
    assert from_repo["module"].startswith("transformers_modules.")  # the folder's own code, via auto_map
    assert len(from_repo["answers"]) == 3 and all(a.strip() for a in from_repo["answers"])


def test_plain_generate_stops_at_the_end_of_the_turn(from_repo):
    """`model.generate` with the shipped generation config ends each answer at its `<end_of_turn>`, as the chat
    session does (the template follows it with a newline and `<eos>`, which must not be generated)."""
    for ids in from_repo["generated"]:
        assert from_repo["end_of_turn"] in ids, ids
        assert ids.index(from_repo["end_of_turn"]) == len(ids) - 1, ids


def test_loads_from_a_copy_of_the_repo(from_repo, tmp_path):
    copy = tmp_path / "somewhere" / "hilight"
    copy.mkdir(parents=True)
    for name in SHIPPED:
        shutil.copy2(REPO / name, copy / name)
    got = _probe(str(copy), cwd=tmp_path)
    assert got["answers"] == from_repo["answers"] and got["logits"] == from_repo["logits"]


def _hub_cache(root: Path) -> Path:
    """A Hub cache holding this repo as "motern/hilight", laid out as huggingface_hub writes it (blobs,
    snapshots/<commit> of symlinks, refs/main)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = root / ("models--" + HUB_ID.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    for i, name in enumerate(SHIPPED):
        blob = repo_dir / "blobs" / f"blob{i:04d}"
        shutil.copy2(REPO / name, blob)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return root


def test_loads_as_motern_hilight_from_an_offline_hub_cache(from_repo, tmp_path):
    """The design card's own line, `from_pretrained("motern/hilight", trust_remote_code=True)`, resolved from
    the Hub cache with HF_HUB_OFFLINE=1."""
    hub = _hub_cache(tmp_path / "hub")
    got = _probe(HUB_ID, {"HF_HUB_CACHE": str(hub), "HF_HOME": str(tmp_path / "home")}, cwd=tmp_path)
    assert got["answers"] == from_repo["answers"] and got["logits"] == from_repo["logits"]


def test_readme_usage_snippet_runs_as_written(tmp_path):
    """The first Python block of the README's usage section, unchanged, from the repo folder (its example
    clip path is relative to it), with "motern/hilight" served by the offline Hub cache."""
    readme = (REPO / "README.md").read_text()
    usage = readme[readme.index("## Usage in Python") :]
    snippet = usage[
        usage.index("```python") + len("```python") : usage.index("```", usage.index("```python") + 9)
    ]
    assert 'from_pretrained("motern/hilight", trust_remote_code=True)' in snippet
    hub = _hub_cache(tmp_path / "hub")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "HF_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=300, env=env, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "the snippet printed no answer"


def test_demo_answers_every_example_question():
    questions = json.loads((REPO / "examples" / "questions.json").read_text())
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("    model: ") == len(questions) >= 6
    assert result.stdout.count("    truth: ") == len(questions)
    for item in questions:
        assert f"Q: {item['question']}" in result.stdout
