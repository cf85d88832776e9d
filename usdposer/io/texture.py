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

    packaged = _packaged(path)
    if packaged:  # tiles inside a USDZ package: its member names
        package, inner = packaged
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


def wrapped(u: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates in [0, 1], inside (bool)) of texture coordinates ``u`` (n,) under a UsdUVTexture wrap mode:
    ``repeat`` tiles, ``mirror`` tiles flipping every other copy, ``clamp`` stretches the edge texels, ``black`` is
    black outside [0, 1] (``inside`` False there)."""
    inside = (u >= 0.0) & (u <= 1.0) if mode == "black" else np.ones(len(u), dtype=bool)
    if mode in ("clamp", "black"):
        return np.clip(u, 0.0, 1.0), inside
    if mode == "mirror":
        t = u % 2.0
        return np.where(t > 1.0, 2.0 - t, t), inside
    return u % 1.0, inside


def texels(path: str, uv: np.ndarray, wrap: tuple[str, str] = ("repeat", "repeat")) -> np.ndarray:
    """(n, 3) sRGB colours in [0, 1] at ``uv`` (n, 2) (USD's ``st``: origin bottom-left), outside [0, 1] as ``wrap``
    (wrapS, wrapT) says (:func:`wrapped`; UDIM tiles are their own wrap), NaN where the image (or the UDIM tile)
    cannot be read."""
    uv = np.asarray(uv, dtype=np.float64)
    out = np.full((len(uv), 3), np.nan)
    if UDIM in path:
        cell = np.floor(uv).astype(np.int64)
        tile = 1001 + np.clip(cell[:, 0], 0, 9) + 10 * np.clip(cell[:, 1], 0, 99)
        groups = [(int(t), tile == t) for t in np.unique(tile)]
        f, inside = uv % 1.0, np.ones(len(uv), dtype=bool)
    else:
        groups = [(None, np.ones(len(uv), dtype=bool))]
        (u, in_u), (v, in_v) = wrapped(uv[:, 0], wrap[0]), wrapped(uv[:, 1], wrap[1])
        f, inside = np.stack([u, v], 1), in_u & in_v
    for t, sel in groups:
        img = image(path if t is None else path.replace(UDIM, str(t)))
        if img is None:
            continue
        H, W = img.shape[:2]
        x = np.clip((f[sel, 0] * W).astype(np.int64), 0, W - 1)
        y = np.clip(((1 - f[sel, 1]) * H).astype(np.int64), 0, H - 1)
        out[sel] = np.where(inside[sel, None], img[y, x] / 255.0, 0.0)
    return out


def albedo(path: str, uv: np.ndarray, sampler=None) -> np.ndarray:
    """(n, 3) linear base colours at ``uv`` (n, 2) as a :class:`usdposer.types.Sampler` reads them (default: plain):
    the UVs moved by its ``uv_transform`` first (a UsdTransform2d: scaled, then turned counter-clockwise, then moved,
    as UsdPreviewSurface defines it), the texels wrapped by its ``wrap`` and made linear (sRGB decoded; ``raw`` ones
    as they are), then its ``tint`` (scale, bias) applied as UsdPreviewSurface does (``texel * scale + bias``); NaN
    where there is no texel."""
    from usdposer.types import NO_SAMPLER

    s = sampler or NO_SAMPLER
    if s.uv_transform is not None:
        (sx, sy), degrees, move = s.uv_transform
        c, si = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        uv = (np.asarray(uv, dtype=np.float64) * [sx, sy]) @ np.array([[c, -si], [si, c]]).T + move
    scale, bias = (np.asarray(t, dtype=np.float64) for t in s.tint)
    texel = texels(path, uv, s.wrap)
    return (texel if s.color_space == "raw" else texel ** 2.2) * scale + bias
