"""FSDP2 worker for tests/test_sharded.py: stage 2 of a tiny model, sharded over gloo processes on CPU.

    torchrun --nproc_per_node 2 tests/_fsdp_worker.py MODEL DATA CACHE OUT STEPS [STOP_AFTER]

accelerate shards a model only on accelerator devices (with ``distributed_type: FSDP`` on a CPU machine it
runs DDP), so this worker applies what ``train/configs/accelerate/fsdp.yaml`` asks accelerate for on GPUs, as
accelerate applies it: ``fully_shard`` on every module whose class is in ``model._no_split_modules`` (the
transformer-based auto-wrap: the towers' and the LM's blocks and TokenMining), then on the root, with the
parameters of the modules the config's ``fsdp_ignored_modules`` names left whole. Everything else is the
project's: `build_trainer` gives the model with stage 2's trainable parameters, the rows, the collator over
the feature cache, and the loss (`compute_loss`, normalised by the global batch's labelled tokens).

Each step takes the next 4 rows; rank r of W trains on its 4 / W of them. Every ``STOP_AFTER`` steps the
sharded model and optimizer are saved with torch.distributed.checkpoint (``OUT/dcp``) and, when the run
was asked to stop there, it exits as if killed; a rerun resumes from ``OUT/dcp``. At the end the weights are
consolidated (full state dict on rank 0) into a Hub-style folder ``OUT/final``, and ``OUT/losses.json`` holds
each step's global loss.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from _train_utils import sft_argv

ROWS_PER_STEP = 4


CONFIG = Path(__file__).resolve().parents[1] / "train" / "configs" / "accelerate" / "fsdp.yaml"


def shard(model, mesh) -> list[str]:
    """``fully_shard`` the model's no-split blocks, then the root, leaving the ignored modules' parameters
    whole (the config's regex over module names); returns the names of the blocks that hold sharded ones."""
    import re

    import yaml
    from torch.distributed.fsdp import fully_shard

    fsdp = yaml.safe_load(CONFIG.read_text())["fsdp_config"]
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    ignored_names = re.compile(fsdp["fsdp_ignored_modules"])
    ignored = {p for n, m in model.named_modules() if ignored_names.fullmatch(n) for p in m.parameters()}
    names = set(model._no_split_modules)
    blocks = [(n, m) for n, m in model.named_modules() if type(m).__name__ in names]
    options = {
        "mesh": mesh,
        "reshard_after_forward": fsdp["fsdp_reshard_after_forward"],
        "ignored_params": ignored,
    }
    for _, module in reversed(blocks):  # inner blocks before the modules that hold them
        fully_shard(module, **options)
    fully_shard(model, **options)
    return [n for n, m in blocks if any(p not in ignored for p in m.parameters())]


def main() -> None:
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_state_dict,
        set_state_dict,
    )
    from torch.distributed.device_mesh import init_device_mesh

    from hilight_train.stages import build_trainer, parse_args
    from hilight_train.training import save_hub_folder

    model_dir, data, cache, out = sys.argv[1:5]
    steps = int(sys.argv[5])
    stop_after = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    out = Path(out)
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    argv = sft_argv(
        model_dir, data, out, feature_cache=cache, max_train_samples=ROWS_PER_STEP * steps, resume="false",
        save_strategy="no", train_token_mining="true",
    )  # fmt: skip
    trainer = build_trainer("stage2", *parse_args("stage2", argv))
    model, rows, collate = trainer.model, trainer.train_dataset, trainer.data_collator
    model.train()
    sharded = shard(model, mesh) if world > 1 else []  # one process: the plain model, the reference
    # SGD with momentum: the update is linear in the gradients, so sharded and unsharded runs differ only by the
    # rounding of the gradient sums (Adam would turn the rounding noise of gradients that are zero by symmetry,
    # e.g. TokenMining's key biases under softmax, into full-size steps); momentum is optimizer state to resume.
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    start, losses = 0, []
    if (out / "dcp" / "state.json").is_file():  # resume: the sharded model + optimizer, and where they were
        model_state, optim_state = get_state_dict(model, optimizer)
        dcp.load({"model": model_state, "optim": optim_state}, checkpoint_id=str(out / "dcp"))
        set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optim_state)
        saved = json.loads((out / "dcp" / "state.json").read_text())
        start, losses = saved["step"], saved["losses"]
    per_rank = ROWS_PER_STEP // world
    for step in range(start, steps):
        first = step * ROWS_PER_STEP + rank * per_rank
        batch = collate([rows[i] for i in range(first, first + per_rank)])
        labelled = torch.tensor(float((batch["labels"][:, 1:] != -100).sum()))
        dist.all_reduce(labelled)  # the global batch's labelled tokens
        loss = trainer.compute_loss(model, batch, num_items_in_batch=labelled)
        # compute_loss scales by the process count (gradients are averaged over ranks, as under DDP)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        total = loss.detach() / world
        dist.all_reduce(total)
        losses.append(float(total))
        if stop_after and (step + 1) % stop_after == 0 and step + 1 < steps:
            model_state, optim_state = get_state_dict(model, optimizer)
            dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(out / "dcp"))
            if rank == 0:
                state = {"step": step + 1, "losses": losses}
                (out / "dcp" / "state.json").write_text(json.dumps(state))
            dist.barrier()
            if start == 0:  # the first run stops here, as if killed; the rerun goes on
                dist.destroy_process_group()
                return
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        unsharded = type(trainer.accelerator.unwrap_model(model)).from_pretrained(model_dir)
        save_hub_folder(unsharded, trainer.processing_class, out / "final", state_dict=full)
        (out / "losses.json").write_text(json.dumps({"losses": losses, "sharded_blocks": sharded}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
