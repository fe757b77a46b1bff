"""Small synthetic videos for the processing tests, written with PyAV (decord cannot write).

Every frame encodes its own index: frame ``i`` is filled with a grey level that moves by a large step
per frame, plus a moving bright square, so a test can tell which frame was decoded even after lossy
compression.
"""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# (container suffix, codec, pixel format) for the formats the tests cover.
FORMATS = {
    "h264_mp4": (".mp4", "libx264", "yuv420p"),
    "vp9_webm": (".webm", "libvpx-vp9", "yuv420p"),
    "mjpeg_avi": (".avi", "mjpeg", "yuvj420p"),
}


def frame_level(index: int) -> int:
    """Grey level painted into frame ``index`` (cycles through 8 well-separated levels)."""
    return 16 + 28 * (index % 8)


def synthetic_frame(index: int, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3] frame whose mean grey level identifies ``index``."""
    frame = np.full((height, width, 3), frame_level(index), dtype=np.uint8)
    size = max(2, min(height, width) // 8)
    top = (index * 3) % max(1, height - size)
    left = (index * 5) % max(1, width - size)
    frame[top : top + size, left : left + size] = 250
    return frame


def write_video(
    path: Path,
    num_frames: int,
    fmt: str = "h264_mp4",
    fps: int = 10,
    height: int = 64,
    width: int = 96,
    timestamps: list[float] | None = None,
    gop: int | None = None,
    faststart: bool = False,
) -> Path:
    """Write ``num_frames`` synthetic frames to ``path`` and return it.

    ``timestamps`` (seconds, increasing) gives each frame its own presentation time, which makes a
    variable-frame-rate stream; otherwise frames are ``1 / fps`` apart.
    """
    suffix, codec, pix_fmt = FORMATS[fmt]
    path = Path(path)
    if path.suffix != suffix:
        raise ValueError(f"{fmt} needs a {suffix} path, got {path.name}")
    options = {"movflags": "+faststart"} if faststart else {}
    time_base = Fraction(1, 1000) if timestamps is not None else Fraction(1, fps)
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if gop is not None:
            stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "tune": "zerolatency"} | (
                {"keyint": str(gop)} if gop else {}
            )
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(i, height, width), format="rgb24")
            frame.pts = round(timestamps[i] * 1000) if timestamps is not None else i
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An .mp4 (AAC) with an audio stream and no video stream."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        samples = int(seconds * rate)
        t = np.arange(samples) / rate
        pcm = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]  # (1 channel, S)
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(pcm[:, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
