"""Multi-step recipes (the default model, the ablations): each step is a script run in a child process,
skipped when it finished before (a sentinel file its output folder gets once the script exits 0), and timed
into a JSON file, so an interrupted recipe resumes (the scripts themselves resume from checkpoints)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import REPO_ROOT

DONE = ".step-done"


def is_complete(path: Path) -> bool:
    """The step that writes `path` finished: its script exited 0 (the sentinel is written only then)."""
    return (path / DONE).is_file()


class Recipe:
    """Runs steps in order; wall time per step goes to `timings_path`."""

    def __init__(self, timings_path: Path):
        self.timings_path = timings_path
        timings_path.parent.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = (
            json.loads(timings_path.read_text()) if timings_path.is_file() else {}
        )

    def step(self, name: str, output: Path, script: str, *args: object) -> None:
        """Run `train/<script> args...` unless `output` is already complete."""
        cmd = [sys.executable, str(REPO_ROOT / "train" / script), *map(str, args)]
        self._run(name, output, " ".join(cmd), lambda: subprocess.run(cmd, check=True, cwd=REPO_ROOT))

    def call(self, name: str, output: Path, function: Callable[..., object], *args: object) -> None:
        """Run `function(*args)` in this process unless `output` is already complete (a quick step)."""
        what = f"{function.__name__}({', '.join(map(str, args))})"
        self._run(name, output, what, lambda: function(*args))

    def _run(self, name: str, output: Path, what: str, run: Callable[[], object]) -> None:
        done = output / DONE
        if done.is_file():
            print(f"=== {name}: done earlier ({output})", flush=True)
            return
        print(f"\n=== {name}: {what}", flush=True)
        start = time.time()
        run()
        done.write_text(what + "\n")
        self.timings[name] = round(time.time() - start, 1)
        self.timings_path.write_text(json.dumps(self.timings, indent=1))

    @property
    def total_seconds(self) -> float:
        return round(sum(self.timings.values()), 1)
