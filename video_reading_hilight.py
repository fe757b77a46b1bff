"""HiLight's video reader: defended decoding of untrusted files into the frames the processor samples.

What is notable:

- Cheap pure-Python checks first (file exists, container signature, container size fields that reveal
  truncation: MP4 boxes, the Matroska Segment, the AVI RIFF size; decord would otherwise silently sample a
  truncated WebM/AVI as if its surviving part were the whole video).
- Then decord decodes, in process by default, or with ``decode_in_subprocess`` in a forked child process
  with a timeout, so a decoder that hangs or crashes on a hostile file costs an exception, not the caller's
  process (the Space decodes uploads so). What decord cannot read (tiny
  frames, AV1 in Matroska, GIF, some rotated clips) PyAV reads with the same sampling, display rotation
  applied.
- Each failure has its own exception class (all subclass ``VideoReadError``, a ``ValueError``), with FFmpeg's
  numeric error codes put in words.
- Frames are sampled by the official HiLight rule (``official_frame_indices``) unless the caller passes
  its own rule (``sample_indices_fn``, as transformers' ``load_video`` takes it: the video processor's
  ``sample_frames``); ``HiLightVideoMetadata`` carries every sampled frame's real timestamp.

This file is remote code beside ``processing_hilight.py`` (a relative import), with no dependency on
transformers beyond its ``VideoMetadata``.

Shape legend: T frames, H x W pixels, C = 3 (RGB).
"""

import faulthandler
import io
import math
import os
import pickle
import re
import select
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers.video_utils import VideoMetadata

# ----------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------


class VideoReadError(ValueError):
    """Base class of every error raised while reading a video. The message names the input and the fix."""


class VideoNotFoundError(VideoReadError, FileNotFoundError):
    """The path does not exist."""


class NotAVideoError(VideoReadError):
    """The input is not a video container (text, an image, random bytes, an empty file, a directory...)."""


class CorruptVideoError(VideoReadError):
    """The container or the stream is truncated or damaged."""


class NoVideoStreamError(VideoReadError):
    """The container is readable but holds no video stream (e.g. audio only)."""


class NoDecodableFramesError(VideoReadError):
    """The video stream has no frame that can be decoded."""


class VideoTooLargeError(VideoReadError):
    """The video exceeds the configured limits on frame size or duration."""


class VideoDecodeTimeoutError(VideoReadError, TimeoutError):
    """Decoding took longer than ``decode_timeout`` seconds; the decoder process was killed."""


class VideoDecoderCrashedError(CorruptVideoError):
    """The decoder process died (e.g. a segmentation fault inside the native decoder)."""


# ----------------------------------------------------------------------------------------------------------
# Metadata
# ----------------------------------------------------------------------------------------------------------


@dataclass
class HiLightVideoMetadata(VideoMetadata):
    """transformers' ``VideoMetadata`` plus the presentation time of every sampled frame.

    ``timestamps`` returns the decoder's real timestamps (correct for variable frame rate), not
    ``index / fps``. ``duration`` is the end time of the last frame in seconds; ``fps`` is decord's
    average frame rate; ``width`` / ``height`` are the decoded frame size.
    """

    frame_timestamps: list[float] | None = None

    @property
    def timestamps(self) -> list[float]:
        if self.frame_timestamps is not None:
            return list(self.frame_timestamps)
        return super().timestamps


def official_frame_indices(total_num_frames: int, num_frames: int) -> np.ndarray:
    """The official HiLight rule: ``linspace(0, n - 1, T)`` truncated to int (repeats when n < T)."""
    if total_num_frames < 1:
        raise NoDecodableFramesError("cannot sample frames from a video with 0 frames")
    return np.linspace(0, total_num_frames - 1, num_frames).astype(int)


# ----------------------------------------------------------------------------------------------------------
# Cheap checks before decoding (pure Python, a few small reads)
# ----------------------------------------------------------------------------------------------------------


class _ByteSource:
    """Random access to the bytes of a path or of an in-memory buffer, for the container checks."""

    def __init__(self, name: str, path: Path | None = None, data: bytes | None = None):
        self.name, self.path, self.data = name, path, data
        self.size = path.stat().st_size if path is not None else len(data)

    def read_at(self, offset: int, length: int) -> bytes:
        if self.data is not None:
            return bytes(self.data[offset : offset + length])
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(length)


_IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"BM": "a BMP image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive",
}


def _sniff_container(head: bytes) -> str | None:
    """Name of the container family announced by the first bytes, or None when unknown."""
    if head[4:8] == b"ftyp" or head[4:8] in (b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")):
        return "asf"
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "mpeg-ps"
    if head[:1] == b"\x47" and head[188:189] == b"\x47":  # two 188-byte transport packets
        return "mpeg-ts"
    if head.startswith(b"YUV4MPEG2"):
        return "y4m"
    if head.startswith(b"GIF8"):
        return "gif"
    if head.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")):
        return "elementary-stream"
    return None


def _check_mp4_boxes(src: _ByteSource) -> None:
    """Walk the top-level ISO-BMFF boxes: a box running past the end of file means truncation."""
    offset, seen = 0, []
    while offset < src.size and len(seen) < 10_000:
        header = src.read_at(offset, 16)
        if len(header) < 8:
            raise CorruptVideoError(
                f"{src.name}: truncated MP4/MOV: {len(header)} stray bytes after the last box"
            )
        size, kind = struct.unpack(">I4s", header[:8])
        kind = kind.decode("latin-1")
        if size == 1:
            if len(header) < 16:
                raise CorruptVideoError(f"{src.name}: truncated MP4/MOV inside the header of box '{kind}'")
            size = struct.unpack(">Q", header[8:16])[0]
        elif size == 0:  # the box extends to the end of the file
            size = src.size - offset
        if size < 8:
            raise CorruptVideoError(
                f"{src.name}: damaged MP4/MOV: box '{kind}' at byte {offset} has size {size}"
            )
        if offset + size > src.size:
            raise CorruptVideoError(
                f"{src.name}: truncated MP4/MOV: box '{kind}' ends at byte {offset + size} but the file has "
                f"{src.size} bytes (an interrupted download or recording?)"
            )
        seen.append(kind)
        offset += size
    if "moov" not in seen:
        raise CorruptVideoError(
            f"{src.name}: incomplete MP4/MOV: no 'moov' box (the index players need); top-level boxes: {seen}. "
            "A recording that was not finalised looks like this."
        )
    if "mdat" not in seen and "moof" not in seen:
        raise CorruptVideoError(
            f"{src.name}: MP4/MOV header only: no 'mdat' box, the media data is missing (top-level boxes: {seen})"
        )


def _read_ebml_vint(src: _ByteSource, offset: int) -> tuple[int, int, bool]:
    """(value, length in bytes, is_unknown_size) of the EBML variable-size integer at ``offset``."""
    first = src.read_at(offset, 1)
    if not first or first[0] == 0:
        raise CorruptVideoError(f"{src.name}: damaged Matroska/WebM header at byte {offset}")
    length = 9 - first[0].bit_length()
    raw = src.read_at(offset, length)
    if len(raw) < length:
        raise CorruptVideoError(f"{src.name}: truncated Matroska/WebM header")
    value = raw[0] & (0xFF >> length)
    for byte in raw[1:]:
        value = (value << 8) | byte
    return value, length, value == (1 << (7 * length)) - 1


def _check_matroska_sizes(src: _ByteSource) -> None:
    """The EBML header and the Segment element declare their sizes: more than the file has = truncation."""
    size, length, _ = _read_ebml_vint(src, 4)
    offset = 4 + length + size  # end of the EBML header element
    if src.read_at(offset, 4) != b"\x18\x53\x80\x67":
        raise CorruptVideoError(
            f"{src.name}: truncated or damaged Matroska/WebM: no Segment after the header"
        )
    size, length, unknown = _read_ebml_vint(src, offset + 4)
    end = offset + 4 + length + size
    if not unknown and end > src.size:
        raise CorruptVideoError(
            f"{src.name}: truncated Matroska/WebM: the Segment ends at byte {end} but the file has {src.size} bytes"
        )


def _check_avi_size(src: _ByteSource) -> None:
    """The RIFF header declares the size of the first RIFF chunk: more than the file has = truncation."""
    riff_size = struct.unpack("<I", src.read_at(4, 4))[0]
    if riff_size + 8 > src.size:
        raise CorruptVideoError(
            f"{src.name}: truncated AVI: the RIFF header declares {riff_size + 8} bytes but the file has {src.size}"
        )


def _check_container(src: _ByteSource) -> str:
    """Reject what is obviously not a video, or obviously truncated, before any native decoder sees it."""
    if src.size == 0:
        raise NotAVideoError(f"{src.name}: empty input (0 bytes), not a video")
    head = src.read_at(0, 192)
    container = _sniff_container(head)
    if container is None:
        for signature, what in _IMAGE_SIGNATURES.items():
            if head.startswith(signature):
                raise NotAVideoError(f"{src.name}: this is {what}, not a video")
        raise NotAVideoError(
            f"{src.name}: not a recognised video container (MP4/MOV, Matroska/WebM, AVI, FLV, Ogg, ASF, MPEG-PS/TS, "
            f"Y4M, GIF, raw H.264/HEVC); first bytes: {head[:16].hex()}"
        )
    checks: dict[str, Callable[[_ByteSource], None]] = {
        "mp4": _check_mp4_boxes,
        "matroska": _check_matroska_sizes,
        "avi": _check_avi_size,
    }
    if container in checks:
        checks[container](src)
    return container


# ----------------------------------------------------------------------------------------------------------
# Decoding with decord, optionally in a forked child process with a timeout
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _DecodeRequest:
    """Everything the decoder needs; ``source`` is a path string or the bytes of the file."""

    name: str
    source: str | bytes
    num_frames: int | None
    max_frame_pixels: int | None
    max_duration: float | None
    sample_indices_fn: Callable[..., Any] | None = None  # (metadata=VideoMetadata) -> frame indices
    quiet: bool = False

    def indices(self, total: int, fps: float | None, duration: float | None) -> np.ndarray:
        """Frames to keep of ``total``: the caller's rule (``sample_indices_fn(metadata=...)``, as transformers'
        ``load_video`` calls it) or the official one with ``num_frames`` (every frame when None)."""
        if self.sample_indices_fn is None:
            return official_frame_indices(total, self.num_frames if self.num_frames is not None else total)
        metadata = VideoMetadata(total_num_frames=total, fps=fps or None, duration=duration)
        indices = np.asarray(self.sample_indices_fn(metadata=metadata), dtype=np.int64).reshape(-1)
        if indices.size == 0 or indices.min() < 0 or indices.max() >= total:
            raise ValueError(
                f"{self.name}: the frame sampling rule gave indices outside 0..{total - 1}: {indices.tolist()[:8]}"
            )
        return indices


_DECORD_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+?:\d+: ")


# FFmpeg error codes that decord reports as bare numbers (AVERROR tags), in words.
_FFMPEG_ERRORS = {
    "1094995529": "invalid data in the stream",  # AVERROR_INVALIDDATA
    "541478725": "unexpected end of file",  # AVERROR_EOF
}
_FFMPEG_CODE = re.compile(r"(?:failed with|error code) -?(\d{6,})")


def _first_line(exc: BaseException) -> str:
    """decord's message without its source-location prefixes, FFmpeg's numeric error codes in words, shortened."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = _DECORD_LOG_PREFIX.sub("", text)
    text = _FFMPEG_CODE.sub(
        lambda m: f"failed: {_FFMPEG_ERRORS.get(m.group(1), 'FFmpeg error ' + m.group(1))}", text
    )
    return text[:300] if text else type(exc).__name__


def _decode_with_decord(request: _DecodeRequest) -> tuple[np.ndarray, dict[str, Any]]:
    """Open, check limits, sample by the official rule and decode. Returns (uint8 [T, H, W, 3], metadata)."""
    import decord

    if request.quiet:  # FFmpeg's own log lines would repeat what the exception says
        decord.logging.set_level(decord.logging.QUIET)
    uri = io.BytesIO(request.source) if isinstance(request.source, bytes) else request.source
    try:
        reader = decord.VideoReader(uri, ctx=decord.cpu(0))
    except (decord.DECORDError, RuntimeError) as exc:
        message = str(exc)
        if "cannot find video stream" in message:
            raise NoVideoStreamError(f"{request.name}: the container has no video stream") from None
        if "avfilter_graph_create_filter" in message:
            # FFmpeg never learned the pixel format: not a single frame of the stream could be decoded.
            raise NoDecodableFramesError(
                f"{request.name}: the video stream has no decodable frame (empty or cut-off stream)"
            ) from None
        raise CorruptVideoError(
            f"{request.name}: decord cannot read this video: {_first_line(exc)}"
        ) from None
    total = len(reader)
    if total < 1:
        raise NoDecodableFramesError(f"{request.name}: the video stream has no frames")
    fps = float(reader.get_avg_fps())
    try:
        duration = float(reader.get_frame_timestamp(total - 1)[1])
    except (decord.DECORDError, RuntimeError, IndexError):
        duration = total / fps if fps > 0 else 0.0
    if request.max_duration is not None and duration > request.max_duration:
        raise VideoTooLargeError(
            f"{request.name}: {duration:.1f} s long, above the limit max_duration={request.max_duration} s; "
            "trim the clip or raise max_duration in the video processor config"
        )
    indices = request.indices(total, fps, duration)
    try:
        # The first sampled frame alone first: it gives the frame size before a whole batch is allocated.
        first = reader.get_batch([int(indices[0])]).asnumpy()  # (1, H, W, 3)
        height, width = first.shape[1:3]
        if request.max_frame_pixels is not None and height * width > request.max_frame_pixels:
            raise VideoTooLargeError(
                f"{request.name}: frames are {width}x{height} = {height * width} pixels, above the limit "
                f"max_frame_pixels={request.max_frame_pixels}; downscale the clip or raise the limit"
            )
        rest = reader.get_batch([int(i) for i in indices[1:]]).asnumpy() if len(indices) > 1 else first[:0]
    except (decord.DECORDError, RuntimeError) as exc:
        raise CorruptVideoError(f"{request.name}: damaged video stream: {_first_line(exc)}") from None
    frames = np.concatenate([first, rest], axis=0)  # (T, H, W, 3)
    if frames.shape[0] != len(indices) or frames.ndim != 4 or frames.shape[-1] != 3:
        raise CorruptVideoError(f"{request.name}: decoder returned frames of shape {frames.shape}")
    timestamps = reader.get_frame_timestamp([int(i) for i in indices])[:, 0]
    metadata = {
        "total_num_frames": int(total),
        "fps": fps,
        "duration": duration,
        "width": int(width),
        "height": int(height),
        "video_backend": "decord",
        "frames_indices": [int(i) for i in indices],
        "frame_timestamps": [float(t) for t in timestamps],
    }
    return frames, metadata


def _decode_with_pyav(request: _DecodeRequest) -> tuple[np.ndarray, dict[str, Any]]:
    """The fallback decoder (PyAV, FFmpeg's own API) for what decord cannot read (tiny frames, GIF, some
    codecs): counts the frames, then decodes the official indices as RGB, turned upright by the stream's
    display rotation. Same outputs as ``_decode_with_decord``."""
    import av

    def frames_of(container):
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return stream, container.decode(stream)

    def open_container():
        uri = io.BytesIO(request.source) if isinstance(request.source, bytes) else request.source
        container = av.open(uri, metadata_errors="ignore")
        if not container.streams.video:
            container.close()
            raise NoVideoStreamError(f"{request.name}: the container has no video stream")
        return container

    try:
        with open_container() as container:  # pass 1: count the frames (decode without conversion)
            stream, frames = frames_of(container)
            total, last_time, first_size = 0, 0.0, None
            for frame in frames:
                total += 1
                last_time = float(frame.time or 0.0)
                first_size = first_size or (frame.height, frame.width)
                if request.max_duration is not None and last_time > request.max_duration:
                    raise VideoTooLargeError(
                        f"{request.name}: longer than the limit max_duration={request.max_duration} s; trim the "
                        "clip or raise max_duration in the video processor config"
                    )
            rate = stream.average_rate or stream.guessed_rate
        if total == 0:
            raise NoDecodableFramesError(f"{request.name}: the video stream has no decodable frame")
        height, width = first_size
        if request.max_frame_pixels is not None and height * width > request.max_frame_pixels:
            raise VideoTooLargeError(
                f"{request.name}: frames are {width}x{height} = {height * width} pixels, above the limit "
                f"max_frame_pixels={request.max_frame_pixels}; downscale the clip or raise the limit"
            )
        indices = request.indices(total, float(rate) if rate else None, last_time)
        wanted = {int(i) for i in indices}
        picked: dict[int, np.ndarray] = {}
        times: dict[int, float] = {}
        with open_container() as container:  # pass 2: convert the sampled frames
            for i, frame in enumerate(frames_of(container)[1]):
                if i in wanted:
                    rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3)
                    turns = round((frame.rotation or 0) / 90) % 4  # counterclockwise quarter turns
                    picked[i] = np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb
                    times[i] = float(frame.time or 0.0)
                if i >= indices[-1]:
                    break
    except VideoReadError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise CorruptVideoError(f"{request.name}: the video cannot be decoded: {_first_line(exc)}") from None
    if len(picked) != len(wanted):
        raise CorruptVideoError(f"{request.name}: the stream ended after {len(picked)} of the sampled frames")
    out = np.stack([picked[int(i)] for i in indices])  # (T, H, W, 3)
    fps = float(rate) if rate else 0.0
    metadata = {
        "total_num_frames": int(total),
        "fps": fps,
        "duration": last_time + (1 / fps if fps else 0.0),
        "width": int(out.shape[2]),
        "height": int(out.shape[1]),
        "video_backend": "pyav",
        "frames_indices": [int(i) for i in indices],
        "frame_timestamps": [times[int(i)] for i in indices],
    }
    return out, metadata


def _decode(request: _DecodeRequest) -> tuple[np.ndarray, dict[str, Any]]:
    """decord first (the official reader, bit-exact with the official frames); PyAV (when installed) for
    streams decord cannot read. A video neither can read raises decord's error."""
    try:
        return _decode_with_decord(request)
    except (CorruptVideoError, NoDecodableFramesError, NoVideoStreamError) as decord_error:
        try:
            import av  # noqa: F401
        except ImportError:
            raise decord_error from None
        try:
            return _decode_with_pyav(request)
        except (CorruptVideoError, NoDecodableFramesError, NoVideoStreamError):
            raise decord_error from None


def _read_exact(fd: int, size: int, deadline: float) -> bytearray | None:
    """Read exactly ``size`` bytes from ``fd`` before ``deadline``; None on EOF, TimeoutError on time-out."""
    buffer = bytearray(size)
    view, filled = memoryview(buffer), 0
    while filled < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        count = os.readv(fd, [view[filled:]])
        if count == 0:
            return None
        filled += count
    return buffer


def _send_result(fd: int, payload: Any) -> None:
    """Child side: pickle ``payload`` with its array buffers out of band and write it to ``fd``.

    Layout: u64 pickle length, u64 buffer count, u64 length per buffer, the pickle, the raw buffers. Array
    bytes go straight from the array's memory to the pipe (no copy inside the pickle).
    """
    buffers: list[pickle.PickleBuffer] = []
    meta = pickle.dumps(payload, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    header = struct.pack(f"<QQ{len(raws)}Q", len(meta), len(raws), *(raw.nbytes for raw in raws))
    with os.fdopen(fd, "wb") as pipe:
        for chunk in (header, meta, *raws):
            pipe.write(chunk)


def _receive_result(fd: int, deadline: float) -> Any:
    """Parent side of ``_send_result``; raises EOFError if the child died before sending everything."""
    counts = _read_exact(fd, 16, deadline)
    if counts is None:
        raise EOFError
    meta_size, num_buffers = struct.unpack("<QQ", counts)
    sizes = _read_exact(fd, 8 * num_buffers, deadline) if num_buffers else bytearray()
    meta = _read_exact(fd, meta_size, deadline)
    if sizes is None or meta is None:
        raise EOFError
    buffers = []
    for size in struct.unpack(f"<{num_buffers}Q", sizes):
        buffer = _read_exact(fd, size, deadline) if size else bytearray()
        if buffer is None:
            raise EOFError
        buffers.append(buffer)
    return pickle.loads(meta, buffers=buffers)


def _run_in_child(function: Callable[[], Any], timeout: float | None, name: str) -> Any:
    """Run ``function`` in a forked child; return its result or re-raise its exception in this process.

    A child that hangs is killed after ``timeout`` seconds (``VideoDecodeTimeoutError``); a child that dies
    (segfault, out of memory) becomes ``VideoDecoderCrashedError``. The child shares the parent's memory
    copy-on-write (nothing to import or load), and array results travel out of band through a pipe (its cost
    is in ``benchmarks/RESULTS.md``). ``read_video(..., decode_in_subprocess=True)`` uses it.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into the caller's code
        exit_code = 0
        try:
            os.close(read_fd)
            faulthandler.disable()  # a crash is reported by the parent; no traceback dump from the child
            try:
                payload = ("ok", function())
            except BaseException as exc:
                payload = ("error", exc)
            try:
                pickle.dumps(payload, protocol=5, buffer_callback=lambda _: None)
            except Exception as exc:
                payload = ("error", CorruptVideoError(f"{name}: unpicklable decoder result: {exc!r}"))
            _send_result(write_fd, payload)
        except BaseException:
            exit_code = 1
        finally:
            os._exit(exit_code)
    os.close(write_fd)
    reaped = False
    try:
        deadline = time.monotonic() + (timeout if timeout is not None else math.inf)
        try:
            result = _receive_result(read_fd, deadline)
        except EOFError:
            result = None
        except TimeoutError:
            raise VideoDecodeTimeoutError(
                f"{name}: decoding took more than decode_timeout={timeout} s; the decoder was stopped. "
                "The file may be damaged, or raise decode_timeout for very long videos."
            ) from None
        _, status = os.waitpid(pid, 0)
        reaped = True
        if result is None:
            if os.WIFSIGNALED(status):
                cause = f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
            else:
                cause = f"exited with code {os.WEXITSTATUS(status)}"
            raise VideoDecoderCrashedError(
                f"{name}: the video decoder process {cause}; the file is probably damaged"
            )
        kind, value = result
        if kind == "error":
            raise value
        return value
    finally:
        os.close(read_fd)
        if not reaped:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def read_video(
    video: "str | os.PathLike | bytes | bytearray | memoryview | io.IOBase",
    num_frames: int | None = 12,
    max_frame_pixels: int | None = 7680 * 4320,
    max_duration: float | None = 3600.0,
    decode_timeout: float | None = 120.0,
    decode_in_subprocess: bool = False,
    sample_indices_fn: Callable[..., Any] | None = None,
) -> tuple[np.ndarray, HiLightVideoMetadata]:
    """Decode ``num_frames`` frames of a video file by the official HiLight rule (or ``sample_indices_fn``'s).

    Args:
        video: a path, the bytes of a file, or a binary file object (read to its end).
        num_frames: T; ``None`` decodes every frame.
        sample_indices_fn: ``fn(metadata=VideoMetadata(total_num_frames, fps, duration)) -> indices`` instead of
            the official rule (the convention of transformers' ``load_video``); a video processor passes its
            ``sample_frames``.
        max_frame_pixels / max_duration: limits; above them ``VideoTooLargeError``. ``None`` = no limit.
        decode_timeout: seconds before the decoder is stopped (only with ``decode_in_subprocess``).
        decode_in_subprocess: decode in a forked child process (POSIX), so a hang or a crash of the native
            decoder raises an exception here instead of taking the process down; for untrusted files.

    Returns:
        (uint8 numpy array [T, H, W, 3] RGB, ``HiLightVideoMetadata``).
    """
    if isinstance(video, (bytes, bytearray, memoryview)):
        data = bytes(video)
        src, source = _ByteSource(f"<{len(data)} bytes>", data=data), data
    elif hasattr(video, "read"):
        data = video.read()
        if not isinstance(data, bytes):
            raise TypeError(
                f"file objects must be opened in binary mode ('rb'); got {type(data).__name__} from read()"
            )
        name = getattr(video, "name", None)
        src, source = _ByteSource(f"<file object {name or ''}>".replace(" >", ">"), data=data), data
    elif isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if str(video).startswith(("http://", "https://")):
            raise VideoNotFoundError(
                f"{video}: URLs are not fetched; download the file and pass its path or bytes"
            )
        if not path.exists():
            raise VideoNotFoundError(f"{path}: no such file")
        if path.is_dir():
            raise NotAVideoError(f"{path}: is a directory, not a video file")
        src, source = _ByteSource(str(path), path=path), str(path)
    else:
        raise TypeError(
            "a video is a path, bytes, a binary file object, or decoded frames [T, H, W, 3]; "
            f"got {type(video).__name__}"
        )
    _check_container(src)
    request = _DecodeRequest(
        name=src.name,
        source=source,
        num_frames=num_frames,
        max_frame_pixels=max_frame_pixels,
        max_duration=max_duration,
        sample_indices_fn=sample_indices_fn,
    )
    if decode_in_subprocess and hasattr(os, "fork"):
        import decord  # noqa: F401  (import before forking: the child must not import under a lock)

        request.quiet = True  # only the child's log level changes
        frames, metadata = _run_in_child(lambda: _decode(request), decode_timeout, src.name)
    else:
        frames, metadata = _decode(request)
    return frames, HiLightVideoMetadata(**metadata)


# ----------------------------------------------------------------------------------------------------------
