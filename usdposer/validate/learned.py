"""Joint limits learned from a dataset's poses (``usdposer limits learn``), in swing-twist form, as a JSON file
that ``usdposer check --limits`` matches to rigs by their joint names.

File layout (angles in degrees, ``null`` = unknown)::

    {"format": "usdposer-limits/1", "quantile": q, "pad_deg": p,
     "characters": [{"id", "source", "poses", "joints": [tokens], "axes": [[x, y, z]],
                     "swing_twist": [[twist_lo, twist_hi, swing_max]], "euler_xyz": [[[lo, hi] x 3]]}]}
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from usdposer.errors import InputError, real

FORMAT = "usdposer-limits/1"


def _deg(t: torch.Tensor) -> list:
    return [[None if math.isnan(v) else round(math.degrees(v), 4) for v in row] for row in t.reshape(len(t), -1).tolist()]


def learn_from_dataset(dataset: str | os.PathLike, *, quantile: float = 0.005, pad_deg: float = 5.0,
                       min_poses: int = 20, splits: tuple[str, ...] = ("train", "val", "heldout")) -> dict:
    """Learn swing-twist (and per-axis Euler) limits for every character of a dataset. Roots stay unlimited (their
    rotation is the character's heading and tilt, not a joint's range)."""
    from usdposer.core.limits import learn_limits, learn_swing_twist, twist_axes
    from usdposer.io.dataset import load_dataset

    chars = load_dataset(dataset, splits)
    if not chars:
        raise InputError(f"{dataset}: no characters in splits {', '.join(splits)}")
    out = {"format": FORMAT, "quantile": quantile, "pad_deg": pad_deg, "min_poses": min_poses, "characters": []}
    for ch in chars:
        R = ch.relative_rotations(ch.poses)  # (N, J, 3, 3) joint-local, relative to rest
        axes = twist_axes(ch.rest_local.double(), ch.parents.long())
        st = learn_swing_twist(R, axes, quantile, pad_deg, min_poses)  # (J, 3)
        eu = learn_limits(R, quantile, pad_deg, min_poses)  # (J, 3, 2)
        roots = ch.parents < 0
        st[roots], eu[roots] = math.nan, math.nan
        out["characters"].append({
            "id": ch.id, "source": ch.source, "poses": len(ch.poses), "joints": list(ch.joints),
            "axes": [[round(v, 6) for v in a] for a in axes.tolist()], "swing_twist": _deg(st),
            "euler_xyz": [[row[i:i + 2] for i in (0, 2, 4)] for row in _deg(eu)],
        })
    return out


def write_limits(data: dict, out: str | os.PathLike) -> Path:
    from usdposer.io.stage import atomic_path

    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    return out


def read_limits(path: str | os.PathLike) -> dict:
    """Load a limits file; raises InputError naming the fix."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable limits file ({exc}); create one with `usdposer limits learn`") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: not a usdposer limits file (format {FORMAT}); create one with `usdposer limits learn`")
    _check_characters(data.get("characters", []), path)
    return data


def _check_characters(characters, path) -> None:
    """Each character: ``joints`` text, ``axes`` a finite (J, 3) and ``swing_twist`` a (J, 3) of numbers or null;
    else one InputError about the file (a corrupt limits file was reported as the checked asset's error)."""
    fix = "the file was edited or is corrupt; learn it again with `usdposer limits learn`"
    if not isinstance(characters, list):
        raise InputError(f"{path}: \"characters\" is not a list; {fix}")
    for i, ch in enumerate(characters):
        joints = ch.get("joints") if isinstance(ch, dict) else None
        if not isinstance(joints, list) or not all(isinstance(j, str) for j in joints):
            raise InputError(f"{path}: characters[{i}] has no list of joint names; {fix}")
        for key, finite in (("axes", True), ("swing_twist", False)):
            rows = ch.get(key)
            ok = isinstance(rows, list) and len(rows) == len(joints) and all(
                isinstance(r, list) and len(r) == 3 and all(
                    (v is None and not finite) or (real(v) and (math.isfinite(v) or not finite)) for v in r) for r in rows)
            if not ok:
                raise InputError(f"{path}: characters[{i}].{key} is not {len(joints)} rows of three "
                                 f"{'finite numbers' if finite else 'numbers or null'}; {fix}")


def _leaf(token: str) -> str:
    return token.rsplit("/", 1)[-1]


def limits_for(data: dict, rig) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(twist axes (J, 3), swing-twist limits (J, 3) radians, NaN unknown) of the first character whose joints equal
    the rig's (as tokens, else as leaf names, in order); None when none matches."""
    leaves = [_leaf(j) for j in rig.joints]
    for ch in data.get("characters", []):
        if list(ch["joints"]) == list(rig.joints) or [_leaf(j) for j in ch["joints"]] == leaves:
            lim = torch.tensor([[math.nan if v is None else math.radians(v) for v in row] for row in ch["swing_twist"]],
                               dtype=torch.float64)
            return torch.tensor(ch["axes"], dtype=torch.float64), lim
    return None
