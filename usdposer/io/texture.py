"""Base-colour texels at UVs, for the rasteriser and AKD's Gaussians: one image, or UDIM tiles (a path with
``<UDIM>``: the tile of UV (u, v) is ``1001 + floor(u) + 10 floor(v)``, as Mari, Substance and every film renderer
number them). Images are decoded once (a few kept as uint8). A texture inside a USDZ package (``fox.usdz[tex/a.png]``,
the path OpenUSD resolves to) is read through OpenUSD's asset resolver."""

from __future__ import annotations

import functools
import io
import os

import numpy as np

UDIM = "<UDIM>"


@functools.lru_cache(maxsize=16)
def image(path: str) -> np.ndarray | None:
    """(H, W, 3) uint8 sRGB pixels of an image file (or a packaged one), or None where it cannot be read."""
    data = read_bytes(path)
    if data is None:
        return None
    try:
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError):
        return None


def read_bytes(path: str) -> bytes | None:
    """The bytes of an image file, or of one inside a USDZ package (``pkg.usdz[inner.png]``), or None."""
    if _packaged(path):
        from pxr import Ar

        asset = Ar.GetResolver().OpenAsset(Ar.ResolvedPath(path))
        return bytes(asset.GetBuffer()) if asset else None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def file_name(path: str) -> str:
    """The image's own file name (inside its package for a packaged one)."""
    packaged = _packaged(path)
    return os.path.basename(packaged[1] if packaged else path)


def _packaged(path: str) -> tuple[str, str] | None:
    """(package, path inside it) of a packaged path (``pkg.usdz[inner.png]``), or None."""
    if not (path.endswith("]") and "[" in path):
        return None
    package, inner = path[:-1].rsplit("[", 1)
    return package, inner


def readable(path: str | None) -> bool:
    """Whether ``path`` names an image file, packaged or not (for a UDIM path: whether any of its tiles exists).
    Cheap: a file that exists but does not decode draws as missing texels later."""
    if not path:
        return False
    if UDIM in path:
        return bool(_tiles(path))
    packaged = _packaged(path)
    if packaged:
        return packaged[1] in _members(packaged[0])
    return os.path.isfile(path)


@functools.lru_cache(maxsize=16)
def _members(package: str) -> frozenset[str]:
    """The file names in a USDZ package (a zip archive), empty where it cannot be read."""
    import zipfile

    try:
        with zipfile.ZipFile(package) as z:
            return frozenset(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return frozenset()


@functools.lru_cache(maxsize=16)
def _tiles(path: str) -> tuple[int, ...]:
    import glob
    import re

    if _packaged(path):  # tiles inside a USDZ package: its member names
        package, inner = _packaged(path)
        head, tail = inner.split(UDIM, 1)
        names = [f"{package}[{n}]" for n in _members(package)]
        head, tail = f"{package}[{head}", f"{tail}]"
    else:
        head, tail = path.split(UDIM, 1)
        names = glob.glob(glob.escape(head) + "[0-9][0-9][0-9][0-9]" + glob.escape(tail))
    found = []
    for f in names:
        m = re.fullmatch(re.escape(head) + r"(\d{4})" + re.escape(tail), f)
        if m:
            found.append(int(m.group(1)))
    return tuple(sorted(found))


def texels(path: str, uv: np.ndarray) -> np.ndarray:
    """(n, 3) sRGB colours in [0, 1] at ``uv`` (n, 2) (USD's ``st``: origin bottom-left, wrapping), NaN where the
    image (or the UDIM tile) cannot be read."""
    uv = np.asarray(uv, dtype=np.float64)
    out = np.full((len(uv), 3), np.nan)
    if UDIM in path:
        cell = np.floor(uv).astype(np.int64)
        tile = 1001 + np.clip(cell[:, 0], 0, 9) + 10 * np.clip(cell[:, 1], 0, 99)
        groups = [(int(t), tile == t) for t in np.unique(tile)]
    else:
        groups = [(None, np.ones(len(uv), dtype=bool))]
    for t, sel in groups:
        img = image(path if t is None else path.replace(UDIM, str(t)))
        if img is None:
            continue
        f = uv[sel] % 1.0
        H, W = img.shape[:2]
        x = np.clip((f[:, 0] * W).astype(np.int64), 0, W - 1)
        y = np.clip(((1 - f[:, 1]) * H).astype(np.int64), 0, H - 1)
        out[sel] = img[y, x] / 255.0
    return out



def albedo(path: str, uv: np.ndarray, tint=((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)), uv_transform=None) -> np.ndarray:
    """(n, 3) linear base colours at ``uv`` (n, 2), moved by ``uv_transform`` first (a UsdTransform2d's (scale,
    rotation in degrees, translation): scaled, then turned counter-clockwise, then moved, as UsdPreviewSurface defines
    it): the sRGB texels made linear, then the UsdUVTexture's ``tint`` (scale, bias) applied as UsdPreviewSurface does
    (``texel * scale + bias``); NaN where there is no texel."""
    if uv_transform is not None:
        (sx, sy), degrees, move = uv_transform
        c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        uv = (np.asarray(uv, dtype=np.float64) * [sx, sy]) @ np.array([[c, -s], [s, c]]).T + move
    scale, bias = (np.asarray(t, dtype=np.float64) for t in tint)
    return texels(path, uv) ** 2.2 * scale + bias
