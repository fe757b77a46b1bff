"""Merge a stage-2 LoRA adapter into its base model and write a Hub-style folder.

    python train/merge_lora.py --adapter outputs/tiny/stage2 --out outputs/tiny/merged
    python train/merge_lora.py --adapter outputs/sport --base outputs/base --out outputs/sport-merged

The folder holds config.json (with ``auto_map``), model.safetensors, the processor and tokenizer files and the
root code files, so ``AutoModel.from_pretrained(out, trust_remote_code=True)`` loads it with no peft installed.
The base defaults to the adapter's ``base_model_name_or_path``. TokenMining, when it trained as a peft
``modules_to_save`` copy, is written with its trained weights. Unmerged, the adapter loads with
``PeftModel.from_pretrained(base_model, adapter_dir)``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from peft import PeftModel

from hilight_train.cli import run_main
from hilight_train.training import load_model_and_processor, load_processor, save_hub_folder


def merge(adapter: str | Path, out: str | Path, base: str | Path | None = None) -> Path:
    adapter = Path(adapter)
    config_path = adapter / "adapter_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{adapter} has no adapter_config.json; pass a stage-2 --use_peft output folder"
        )
    base = base or json.loads(config_path.read_text())["base_model_name_or_path"]
    model, processor = load_model_and_processor(base)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    if (adapter / "processor_config.json").is_file():
        processor = load_processor(adapter)
    return save_hub_folder(merged, processor, out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adapter", required=True, help="stage-2 LoRA output folder (adapter_config.json)")
    p.add_argument("--out", required=True, help="merged Hub-style folder to write")
    p.add_argument("--base", default=None, help="base model folder (default: from adapter_config.json)")
    args = p.parse_args(argv)
    print(f"merged model written to {merge(args.adapter, args.out, args.base)}")


if __name__ == "__main__":
    run_main(main)
