"""Parallel, resumable generation of a dataset (used by ``train/make_data.py``)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from tqdm import tqdm

from .dataset import ClipJob, is_done, merge, plan, run_job

_STATE: dict = {}


def _init(out: str, cfg) -> None:
    _STATE["out"], _STATE["cfg"] = Path(out), cfg


def _work(job: ClipJob) -> str:
    return run_job(_STATE["out"], job, _STATE["cfg"])


def parse_shard(shard: str | None) -> tuple[int, int]:
    if not shard:
        return 0, 1
    try:
        i, n = (int(v) for v in shard.split("/"))
    except ValueError as e:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4); got {shard!r}") from e
    if not 0 <= i < n:
        raise ValueError(f"--shard i/n needs 0 <= i < n; got {shard!r}")
    return i, n


def generate(
    out: Path,
    clips: int,
    seed: int,
    games,
    cfg,
    workers: int = 1,
    shard: str | None = None,
    command: str = "",
):
    """Generate (or finish) a dataset; merges the dataset files once every clip is done."""
    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "records").mkdir(parents=True, exist_ok=True)
    jobs = plan(clips, seed, tuple(games))
    i, n = parse_shard(shard)
    mine = [j for k, j in enumerate(jobs) if k % n == i]
    todo = [j for j in mine if not is_done(out, j)]
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc="clips", unit="clip")
    if workers <= 1:
        _init(str(out), cfg)
        for job in todo:
            _work(job)
            bar.update(1)
    else:
        # chunksize 1 keeps the order of work fixed per clip; results do not depend on scheduling
        with mp.get_context("fork").Pool(workers, initializer=_init, initargs=(str(out), cfg)) as pool:
            for _ in pool.imap_unordered(_work, todo, chunksize=1):
                bar.update(1)
    bar.close()
    missing = [j for j in jobs if not is_done(out, j)]
    if missing:
        print(
            f"{len(jobs) - len(missing)}/{len(jobs)} clips finished; run the remaining shards, then re-run without --shard to merge."
        )
        return None
    return merge(out, jobs, command)
