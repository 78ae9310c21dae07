"""Encode: stream RGB frames into an MP4 a browser plays.

H.264 (libx264), yuv420p, faststart, constant quality (CRF). imageio-ffmpeg
ships its own ffmpeg binary, so nothing has to be installed by hand. Frames
are streamed to ffmpeg one at a time. yuv420p needs even sides, so an odd
width or height is padded by repeating the last column or row. The video is
written to a temporary file and renamed into place only when complete.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from . import atomic
from .cache import entry_error
from .errors import UserError


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    return (size[0] + size[0] % 2, size[1] + size[1] % 2)


def pad_even(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return img
    return np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def prepare(path: Path) -> None:
    """Make sure the video can be written to ``path`` (its folder exists and
    is writable, the name is not a folder) and remove the hidden temporary
    videos of encoders killed earlier. Render calls it before any training."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise entry_error(e, path.parent) from None
    if not os.access(path.parent, os.W_OK):
        raise UserError("cannot write here", str(path.parent), "choose a writable folder with --out")
    if path.is_dir():
        raise UserError("a folder is in the way of a file zoomreel writes", str(path), "remove or rename that folder and run again")
    atomic.sweep(path.parent)  # leftovers of an encoder killed earlier


def write_mp4(path: Path, frames: Iterable[np.ndarray], size: tuple[int, int], fps: int, crf: int = 18) -> int:
    """Encode frames (H, W, 3 uint8 each) to ``path``; returns the frame count."""
    import imageio_ffmpeg

    path = Path(path)
    prepare(path)
    W, H = even_size(size)
    # imageio-ffmpeg starts ffmpeg with fork+exec; JAX warns about any fork,
    # but nothing runs in the child before exec.
    warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
    n = 0
    with atomic.replacing(path, ".mp4", on_error=entry_error) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (W, H),
            fps=fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            quality=None,
            macro_block_size=2,
            output_params=["-crf", str(int(crf)), "-preset", "medium", "-movflags", "+faststart"],
        )
        try:
            writer.send(None)
            for img in frames:
                writer.send(pad_even(np.ascontiguousarray(img, dtype=np.uint8)))
                n += 1
        except BaseException:
            _close(writer)
            raise
        writer.close()
    return n


def _close(writer) -> None:
    try:
        writer.close()
    except BaseException:
        pass


def probe(path: Path) -> dict:
    """Decoded properties of a video: frames, size, fps, codec (for tests and info)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = gen.__next__()
    n = sum(1 for _ in gen)
    return {"frames": n, "size": tuple(meta["size"]), "fps": meta["fps"], "codec": meta.get("codec", "")}
