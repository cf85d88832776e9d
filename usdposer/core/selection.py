"""Selecting frames and naming outputs: the small conventions every verb shares."""

from __future__ import annotations

import math
from pathlib import Path

from usdposer.errors import InputError


def parse_frames(spec: str | None, time_codes, option: str = "--frames") -> list[int]:
    """Frame indices of ``time_codes`` selected by ``spec``: None (all), ``A:B`` (time codes A..B inclusive),
    ``A:B:S`` (every S-th), ``T`` or ``T1,T2,...``."""
    tc = time_codes.tolist()
    if spec is None:
        return list(range(len(tc)))
    check_frames_spec(spec, option)
    if not tc:
        raise InputError(f"{option} {spec}: the clip has no frames")
    spec = spec.strip()
    try:
        if ":" in spec:
            parts = [float(p) if p else None for p in spec.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            lo = -math.inf if parts[0] is None else parts[0]
            hi = math.inf if parts[1] is None else parts[1]
            step = int(parts[2]) if len(parts) == 3 and parts[2] is not None else 1
            if step < 1:
                raise ValueError
            idx = [i for i, t in enumerate(tc) if lo - 1e-6 <= t <= hi + 1e-6][::step]
        else:
            want = [float(p) for p in spec.split(",") if p.strip()]
            idx = []
            for w in want:
                near = [i for i, t in enumerate(tc) if abs(t - w) < 1e-6]
                if not near:
                    raise InputError(f"{option} {spec}: no frame at time code {w:g}; the clip has time codes "
                                     f"{tc[0]:g}..{tc[-1]:g}")
                idx.append(near[0])
    except InputError:
        raise
    except ValueError:
        raise InputError(f"{option} {spec!r}: expected A:B, A:B:STEP or T1,T2,... (time codes)") from None
    if not idx:
        raise InputError(f"{option} {spec}: selects no frame; the clip has time codes {tc[0]:g}..{tc[-1]:g}")
    return idx


def check_frames_spec(spec: str | None, option: str = "--frames") -> str | None:
    """The syntax of a frame selection (A:B, A:B:STEP, T1,T2,...; finite numbers, A <= B, STEP >= 1), checked before
    anything is loaded. Returns ``spec``."""
    if spec is None:
        return None
    bad = InputError(f"{option} {spec!r}: expected A:B, A:B:STEP or T1,T2,... (finite time codes, A <= B, STEP >= 1)")
    try:
        if ":" in spec:
            parts = [float(p) if p.strip() else None for p in spec.strip().split(":")]
            if len(parts) not in (2, 3) or any(p is not None and not math.isfinite(p) for p in parts):
                raise bad
            if parts[0] is not None and parts[1] is not None and parts[0] > parts[1]:
                raise bad
            if len(parts) == 3 and (parts[2] is None or parts[2] < 1 or parts[2] != int(parts[2])):
                raise bad
        else:
            values = [float(p) for p in spec.split(",") if p.strip()]
            if not values or not all(math.isfinite(v) for v in values):
                raise bad
    except ValueError:
        raise bad from None
    return spec


def default_output(asset, suffix: str) -> str:
    p = Path(asset)
    return str(p.with_name(f"{p.stem}.{suffix}.usdc"))


def unique_stems(paths) -> list[str]:
    """One folder name per path, its file stem, numbered where two share one: ``a/fox.glb``, ``b/fox.glb`` ->
    ``fox``, ``fox-2`` (``batch`` and ``harvest`` give every asset its own folder)."""
    out: list[str] = []
    for p in paths:
        base = Path(p).stem
        name, n = base, 1
        while name in out:
            n += 1
            name = f"{base}-{n}"
        out.append(name)
    return out


def parse_size(size: str, option: str = "--size") -> tuple[int, int]:
    """``WxH`` as (width, height), each between 16 and 8192 pixels."""
    from usdposer.errors import InputError

    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise InputError(f"{option} {size!r}: expected WxH, e.g. 512x512") from None
    if w < 16 or h < 16 or w > 8192 or h > 8192:
        raise InputError(f"{option} {size}: width and height must be between 16 and 8192")
    return w, h
