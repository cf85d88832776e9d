"""Images to files: contact sheets (PNG) and videos (GIF, or MP4 through imageio-ffmpeg), each written to a temporary
name and moved into place."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def _atomic_save(out: Path, save) -> Path:
    """``save(tmp)`` into a temporary file beside ``out`` (its folder created), moved into place when it succeeds
    (``usdposer.io.stage.atomic_path``)."""
    from usdposer.errors import InputError
    from usdposer.io.stage import atomic_path

    out = Path(out)
    if out.suffix.lower() in (".usd", ".usda", ".usdc", ".usdz"):  # previews are pictures: never over an asset
        raise InputError(f"{out}: a picture cannot be written to a USD file name; choose .png, .gif or .mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        save(tmp)
    return out


def write_sheet(images: list[np.ndarray], out, labels: list[str] | None = None, columns: int | None = None) -> Path:
    from PIL import Image, ImageDraw

    h, w = images[0].shape[:2]
    cols = columns or max(1, math.ceil(math.sqrt(len(images))))
    rows = math.ceil(len(images) / cols)
    sheet = Image.new("RGB", (cols * w, rows * h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, im in enumerate(images):
        x, y = (i % cols) * w, (i // cols) * h
        sheet.paste(Image.fromarray(im), (x, y))
        draw.text((x + 4, y + 2), labels[i] if labels else str(i), fill=(30, 30, 30))
    return _atomic_save(Path(out), lambda p: sheet.save(p, format="PNG"))


def write_video(images: list[np.ndarray], out, fps: float) -> Path:
    """GIF (Pillow) or MP4 (imageio-ffmpeg, an optional dependency: a clear error names it when missing)."""
    out = Path(out)
    if out.suffix.lower() == ".gif":
        from PIL import Image

        frames = [Image.fromarray(im) for im in images]
        return _atomic_save(out, lambda p: frames[0].save(p, format="GIF", save_all=True, append_images=frames[1:],
                                                          duration=max(20, round(1000 / fps)), loop=0))
    if out.suffix.lower() in (".mp4", ".mov"):
        try:
            import imageio_ffmpeg
        except ImportError:
            from usdposer.errors import InputError

            raise InputError(f"{out}: MP4 needs imageio-ffmpeg (pip install imageio-ffmpeg); or write a .gif") from None

        def save(p: Path) -> None:
            h, w = images[0].shape[:2]
            writer = imageio_ffmpeg.write_frames(str(p), (w, h), fps=fps, macro_block_size=2, quality=7,
                                                 output_params=["-f", out.suffix.lstrip(".")])
            writer.send(None)
            for im in images:
                writer.send(np.ascontiguousarray(im))
            writer.close()

        return _atomic_save(out, save)
    from usdposer.errors import InputError

    raise InputError(f"{out}: unknown video format {out.suffix!r}; use .gif or .mp4")
