"""Contact sheet of a generated clip: frames with event markers, to check a clip against its labels.

python train/contact_sheet.py --data data/billiards --clip train-000000-9ball --out sheet.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hilight_train.billiards.contact_sheet import contact_sheet, load_record
from hilight_train.cli import run_main


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset folder written by make_data.py")
    p.add_argument("--clip", required=True, help="clip id, e.g. train-000000-9ball")
    p.add_argument("--out", default=None, help="PNG path (default: <data>/sheets/<clip>.png)")
    p.add_argument("--tiles", type=int, default=12)
    args = p.parse_args(argv)
    record = load_record(args.data, args.clip)
    video = Path(args.data) / record["video"]
    if not video.exists():
        p.error(f"video not found: {video}")
    out = args.out or Path(args.data) / "sheets" / f"{args.clip}.png"
    print(contact_sheet(video, record, out, n_tiles=args.tiles))


if __name__ == "__main__":
    run_main(main)
