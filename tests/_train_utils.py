"""Helpers for tests/test_train.py. Run as a script (under torchrun) it trains stage 1 for a few steps and
saves each rank's TokenMining weights, so the DDP test can compare ranks with each other and with one process.

    torchrun --nproc_per_node 2 tests/_train_utils.py MODEL DATA CACHE OUT PER_DEVICE_BATCH STEPS
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

# The tiny preset, cut for tests: 4 frames of 64 x 96 px.
FRAMES_64 = {"image_size": 64, "image_width": 96}
OVERRIDES = {"num_frames": 4, "video_config": FRAMES_64, "image_config": FRAMES_64}


def free_port() -> int:
    """A TCP port free on this machine now (for torchrun's rendezvous)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sft_argv(model_dir, data, out, **overrides) -> list[str]:
    """Command-line arguments of a small fp32 stage run (overrides as --key value)."""
    args = {
        "model_name_or_path": model_dir,
        "train_data": data,
        "output_dir": out,
        "per_device_train_batch_size": 2,
        "max_steps": 3,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 1,
        "logging_steps": 1,
        "save_steps": 100,
        "bf16": "false",
        "activation_checkpointing": "false",
        "report_to": "none",
        "seed": 0,
        "dataloader_pin_memory": "false",
        "disable_tqdm": "true",
    }
    args.update(overrides)
    argv = []
    for key, value in args.items():
        argv += [f"--{key}", str(value)]
    return argv


def main() -> None:
    import torch
    from safetensors.torch import save_file

    from hilight_train.stages import build_trainer, parse_args

    model_dir, data, cache, out, batch, steps = sys.argv[1:7]
    torch.set_num_threads(1)
    argv = sft_argv(
        model_dir,
        data,
        out,
        per_device_train_batch_size=batch,
        max_steps=steps,
        feature_cache=cache,
        max_train_samples=4,
        resume="false",
        save_strategy="no",
    )
    trainer = build_trainer("stage1", *parse_args("stage1", argv))
    trainer.train()
    rank = trainer.args.process_index
    model = trainer.accelerator.unwrap_model(trainer.model)
    state = {k: v.detach().contiguous() for k, v in model.token_mining.state_dict().items()}
    save_file(state, str(Path(out) / f"token_mining_rank{rank}.safetensors"))


if __name__ == "__main__":
    main()
