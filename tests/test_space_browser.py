"""End to end in a real browser: the Space served by `python space/app.py` on a free local port, driven by
Playwright in headless Debian Chromium. Pick an example clip, see its sampled frames, ask a question and
watch the answer stream in, open the explain view, then upload a corrupt file and see the error message.
Screenshots go to test-artifacts/ (gitignored).

    .venv/bin/python -m pytest -m browser tests/test_space_browser.py

Needs `/usr/bin/chromium` (Debian: `apt-get install chromium`; override with HILIGHT_CHROMIUM) and the
`playwright` Python package (requirements-dev.txt); Playwright's own browser download is not used.
Every wait is bounded and the server is always stopped.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _chat_utils import build_tiny_model, write_clip, write_corrupt

import hilight_train

pytestmark = pytest.mark.browser

REPO_ROOT = hilight_train.REPO_ROOT
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = os.environ.get("HILIGHT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT = 180  # s: imports, model load, first page
STEP_TIMEOUT_MS = 60_000  # per browser wait
STATUS = "#status [data-testid=markdown]"  # the status text without Gradio's progress overlay


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Space exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(
        f"the Space did not answer within {SERVER_START_TIMEOUT} s:\n{log.read_text()[-3000:]}"
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@contextlib.contextmanager
def _serve(folder: Path, examples: Path, root: Path):
    """The Space (`space/app.py`) on `folder`'s model and `examples`' clips, on a free local port."""
    port = _free_port()
    env = {
        **os.environ,
        "HILIGHT_MODEL": str(folder),
        "HILIGHT_EXAMPLES": str(examples),
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "2",
    }
    log = root / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "space" / "app.py")],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_until_serving(url, process, log)
        yield {"url": url, "root": root, "examples": examples}
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("space")
    folder = build_tiny_model(root / "model")
    examples = root / "examples"
    write_clip(examples / "break_shot.mp4", seed=0)
    write_clip(examples / "corner_pot.mp4", seed=1)
    with _serve(folder, examples, root) as served:
        yield served


@pytest.fixture(scope="module")
def bundled_server(tmp_path_factory):
    """The Space as a Hub user starts it: the bundled default model at the repo root and its example clips."""
    with _serve(REPO_ROOT, REPO_ROOT / "examples", tmp_path_factory.mktemp("bundled")) as served:
        yield served


@pytest.fixture
def page():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set HILIGHT_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=STEP_TIMEOUT_MS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def _wait_status(page, text: str) -> str:
    page.wait_for_function(
        "([sel, text]) => (document.querySelector(sel)?.innerText ?? '').includes(text)",
        arg=[STATUS, text],
        timeout=STEP_TIMEOUT_MS,
    )
    return page.inner_text(STATUS)


RECORD_ANSWERS = """() => {
    window.__answers = [];
    const chat = document.querySelector('#chat');
    new MutationObserver(() => {
        const bots = chat.querySelectorAll('.bot, [data-testid=bot]');
        if (bots.length) window.__answers.push(bots[bots.length - 1].innerText.trim());
    }).observe(chat, {subtree: true, childList: true, characterData: true});
}"""


def test_space_in_a_browser(server, page, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(server["url"], timeout=STEP_TIMEOUT_MS)
    assert "Upload a clip or pick an example" in _wait_status(page, "Upload a clip")

    # Pick an example: the clip is decoded and encoded, its sampled frames appear.
    page.get_by_text("break_shot.mp4").first.click()
    status = _wait_status(page, "loaded")
    assert "break_shot.mp4" in status
    page.wait_for_function("document.querySelectorAll('#frames img').length >= 4", timeout=STEP_TIMEOUT_MS)

    # Ask: the answer grows piece by piece in the chat.
    page.evaluate(RECORD_ANSWERS)
    page.fill("#question textarea", "Which balls were potted?")
    page.click("#ask")
    status = _wait_status(page, "Answered")
    seen = [text for text in page.evaluate("window.__answers") if text and text != "Loading content"]
    final = page.locator("#chat .bot, #chat [data-testid=bot]").last.inner_text().strip()
    assert final, "no answer text in the chat"
    growing = [t for t in dict.fromkeys(seen) if final.startswith(t)]
    assert len(growing) >= 2, f"the answer did not stream: saw {seen!r}"
    assert "Which balls were potted?" in page.inner_text("#chat")
    page.screenshot(path=str(ARTIFACTS / "space_answer.png"), full_page=True)

    # A follow-up reuses the encoded clip and the cache.
    page.fill("#question textarea", "Was it a foul?")
    page.press("#question textarea", "Enter")
    page.wait_for_function(
        "([sel, previous]) => { const s = document.querySelector(sel)?.innerText ?? '';"
        " return s !== previous && s.includes('Answered'); }",
        arg=[STATUS, status],
        timeout=STEP_TIMEOUT_MS,
    )
    assert page.locator("#chat .bot, #chat [data-testid=bot]").count() >= 2
    assert " 0 reused" not in page.inner_text(STATUS)

    # Explain: attention overlays on the frames, with what they show.
    page.get_by_text("Explain: where did the last answer look?").click()
    page.click("#explain")
    page.wait_for_function("document.querySelectorAll('#overlay img').length >= 4", timeout=STEP_TIMEOUT_MS)
    assert "TokenMining" in page.inner_text("#explanation")
    page.screenshot(path=str(ARTIFACTS / "space_explain.png"), full_page=True)

    # A corrupt upload: a clear message on the page, and the app keeps serving.
    corrupt = write_corrupt(tmp_path / "corrupt.mp4", source=server["examples"] / "corner_pot.mp4")
    page.locator("#clip button[aria-label='Clear']").click()
    _wait_status(page, "Upload a clip")
    page.locator("input[type=file]").first.set_input_files(str(corrupt))
    status = _wait_status(page, "Cannot use")
    assert "corrupt.mp4" in status and "truncated" in status
    page.screenshot(path=str(ARTIFACTS / "space_corrupt_upload.png"), full_page=True)
    with urllib.request.urlopen(server["url"], timeout=10) as response:
        assert response.status == 200


def test_the_bundled_model_answers_in_the_space(bundled_server, page):
    """The first example clip and its first question of `examples/questions.json` (the install's fixed
    rule): the Space gives the answer the Python API gives (fp32, greedy, as the Space runs by default), screenshotted
    for the README (`docs/`)."""
    import torch
    from transformers import AutoModel, AutoProcessor

    ARTIFACTS.mkdir(exist_ok=True)
    first = json.loads((REPO_ROOT / "examples" / "questions.json").read_text())[0]
    model = AutoModel.from_pretrained(str(REPO_ROOT), trust_remote_code=True, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(str(REPO_ROOT), trust_remote_code=True)
    expected, _ = model.chat(
        processor, str(REPO_ROOT / "examples" / first["clip"]), first["question"], max_new_tokens=64
    )
    page.goto(bundled_server["url"], timeout=STEP_TIMEOUT_MS)
    _wait_status(page, "Upload a clip")
    page.get_by_text(first["clip"]).first.click()
    assert first["clip"] in _wait_status(page, "loaded")
    page.fill("#question textarea", first["question"])
    page.click("#ask")
    _wait_status(page, "Answered")
    answer = page.locator("#chat .bot, #chat [data-testid=bot]").last.inner_text().strip()
    assert answer == expected.strip()
    page.screenshot(path=str(ARTIFACTS / "bundled_answer.png"), full_page=True)
