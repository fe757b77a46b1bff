"""H.264 mp4 writing with PyAV, byte-for-byte deterministic.

libx264 runs single-threaded (``threads=1``, no sliced threads) with a fixed preset and CRF, and
the container gets no creation time, so the same frames always give the same bytes. Files are
written to a temporary name and renamed into place (atomic).
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

X264_OPTIONS = {"preset": "veryfast", "crf": "23", "threads": "1", "sliced-threads": "0"}


def write_mp4(path: str | Path, frames: np.ndarray, fps: int, options: dict | None = None) -> None:
    """Write frames (F, H, W, 3) uint8 RGB as H.264 yuv420p mp4, atomically."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (F, H, W, 3); got {frames.dtype} {frames.shape}")
    _, H, W, _ = frames.shape
    if H % 2 or W % 2:
        raise ValueError(f"H.264 yuv420p needs even width and height; got {W}x{H}")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with av.open(str(tmp), mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.thread_count = 1
        stream.options = dict(X264_OPTIONS if options is None else options)
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
