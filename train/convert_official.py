"""Convert official HiLight checkpoints into a Hub-style HiLight folder (code, config, safetensors, tokenizer).

    python train/convert_official.py --clipvip pretrain_clipvip_base_16.pt \
        --clipvip-config clipvip-vision_config.json --longclip longclip-B.pt \
        --lm HILIGHT_MERGED_DIR_OR_HF_LM_DIR [--token-mining token_mining.bin] --out outputs/hilight-converted

The result loads with ``AutoModel.from_pretrained(out, trust_remote_code=True)``. ``--token-mining`` is needed
only when the LM directory does not hold TokenMining (a plain HF LM). Without a tokenizer in the LM
directory, pass ``--video-token-id`` (an id that the prompts never use). See hilight_train/convert.py.
"""

import argparse
from pathlib import Path

import torch

from hilight_train.cli import run_main
from hilight_train.convert import convert_official

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clipvip", type=Path, required=True, help="CLIP-ViP checkpoint (.pt)")
    parser.add_argument("--clipvip-config", type=Path, required=True, help="CLIP-ViP CLIPConfig JSON")
    parser.add_argument("--longclip", type=Path, required=True, help="Long-CLIP checkpoint (longclip-*.pt)")
    parser.add_argument("--token-mining", type=Path, help="token_mining.bin / .pt (if --lm lacks it)")
    parser.add_argument("--lm", type=Path, required=True, help="merged HiLight dir or plain HF LM dir")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--video-token-id", type=int, help="<video> id when the LM dir has no tokenizer")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="storage dtype")
    parser.add_argument(
        "--no-text-towers", action="store_true", help="drop the towers' text encoders (pretraining only)"
    )
    args = parser.parse_args(argv)
    out = convert_official(
        clipvip=args.clipvip,
        clipvip_config=args.clipvip_config,
        longclip=args.longclip,
        lm=args.lm,
        out=args.out,
        token_mining=args.token_mining,
        video_token_id=args.video_token_id,
        dtype=DTYPES[args.dtype],
        include_text_towers=not args.no_text_towers,
    )
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    run_main(main)
