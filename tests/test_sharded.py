"""Sharded training on CPU: FSDP2 over 2 gloo processes equals 1 process, resumes exactly, and its weights
gather into a Hub-style folder; the accelerate configs of train/configs/accelerate/ are ones accelerate takes.

The worker (tests/_fsdp_worker.py) shards as train/configs/accelerate/fsdp.yaml asks (accelerate itself
shards only on accelerator devices). DeepSpeed cannot run here (accelerate takes it only with CUDA-class
devices, and it is not a dependency): its configs are checked as accelerate parses them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from _train_utils import free_port

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "train" / "configs" / "accelerate"
WORKER = str(REPO / "tests" / "_fsdp_worker.py")


def _run(nproc: int, base_dir: Path, annotations: str, cache: Path, out: Path, steps: int, stop_after=0):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "train")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
           str(free_port()), WORKER, str(base_dir), annotations, str(cache), str(out), str(steps), str(stop_after)]  # fmt: skip
    subprocess.run(cmd, check=True, env=env, cwd=REPO, timeout=600)


def _final(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "final" / "model.safetensors"))


@pytest.fixture(scope="module")
def runs(base_dir, annotations, tmp_path_factory):
    """One process (unsharded), 2 FSDP processes, and 2 FSDP processes stopped after 2 of 4 steps and rerun."""
    root = tmp_path_factory.mktemp("sharded")
    cache = root / "cache"
    _run(1, base_dir, annotations, cache, root / "one", 4)  # builds the feature cache the others read
    _run(2, base_dir, annotations, cache, root / "fsdp", 4)
    _run(2, base_dir, annotations, cache, root / "resumed", 4, stop_after=2)
    stopped = not (root / "resumed" / "final").exists()
    _run(2, base_dir, annotations, cache, root / "resumed", 4, stop_after=2)
    return root, stopped


def test_two_fsdp_processes_train_as_one_process(runs, base_dir):
    root, _ = runs
    one, fsdp = (json.loads((root / r / "losses.json").read_text()) for r in ("one", "fsdp"))
    # the LM's blocks and TokenMining are sharded; the frozen towers stay whole (the config's ignored modules)
    assert "token_mining" in fsdp["sharded_blocks"]
    assert any(n.startswith("language_model.") for n in fsdp["sharded_blocks"])
    assert not any("tower" in n for n in fsdp["sharded_blocks"]) and one["sharded_blocks"] == []
    # The same global batches and loss normalisation: only the order of float sums differs (the ranks' halves
    # are reduced separately), so losses and weights agree to fp32 rounding over 4 SGD steps.
    assert len(one["losses"]) == len(fsdp["losses"]) == 4
    torch.testing.assert_close(
        torch.tensor(fsdp["losses"]), torch.tensor(one["losses"]), rtol=1e-5, atol=1e-5
    )
    a, b = _final(root / "one"), _final(root / "fsdp")
    assert a.keys() == b.keys()
    start = load_file(str(base_dir / "model.safetensors"))
    moved = [
        k for k in a if k.startswith(("language_model.", "token_mining.")) and not torch.equal(a[k], start[k])
    ]
    assert moved  # training changed the weights, and the sharded run changed them the same way
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)


def test_a_killed_fsdp_run_resumes_to_the_same_weights(runs):
    root, stopped = runs
    assert stopped  # the first run of "resumed" ended after step 2 with a sharded checkpoint only
    assert (root / "resumed" / "dcp" / "state.json").is_file()
    uninterrupted, resumed = _final(root / "fsdp"), _final(root / "resumed")
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    losses = [json.loads((root / r / "losses.json").read_text())["losses"] for r in ("fsdp", "resumed")]
    assert losses[0] == losses[1]


def test_the_gathered_folder_loads_as_a_model(runs):
    from hilight_train.training import load_model_and_processor

    root, _ = runs
    model, _ = load_model_and_processor(root / "fsdp" / "final")
    state = _final(root / "fsdp")
    assert torch.equal(model.token_mining.output_fc1.weight, state["token_mining.output_fc1.weight"])


@pytest.mark.parametrize("name", ["fsdp", "zero2", "zero3"])
def test_accelerate_takes_the_sharding_configs(name, monkeypatch):
    """Each config goes through accelerate's own launch-argument validation and environment; the FSDP one
    then builds accelerate's FSDP2 plugin (DeepSpeed's plugin needs deepspeed installed and a CUDA device)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    path = CONFIGS / f"{name}.yaml"
    config = yaml.safe_load(path.read_text())
    args = launch_command_parser().parse_args(["--config_file", str(path), "train/stage2_sft.py"])
    args, defaults, _ = _validate_launch_command(args)
    assert args.num_processes == config["num_processes"] and args.mixed_precision == "bf16"
    if name == "fsdp":
        env = prepare_multi_gpu_env(args)
        assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
        assert plugin.ignored_modules == config["fsdp_config"]["fsdp_ignored_modules"]
        assert plugin.auto_wrap_policy is transformer_auto_wrap_policy  # wraps model._no_split_modules
        assert plugin.state_dict_type.name == "SHARDED_STATE_DICT"
    else:  # what `accelerate launch` does before it starts DeepSpeed's launcher
        assert args.use_deepspeed and not args.cpu
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        _, env = prepare_deepspeed_cmd_env(args)
        assert env["ACCELERATE_USE_DEEPSPEED"] == "true"
        assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == str(config["deepspeed_config"]["zero_stage"])
