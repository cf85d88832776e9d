"""BVH (Biovision hierarchy) motion capture -> UsdSkel.

The skeleton comes from the joints' OFFSETs (the rest pose has every rotation at zero), the motion from the
channels: ``Xposition``-style channels set the joint's local translation (replacing its OFFSET), rotation channels
compose in the order listed (``Zrotation Yrotation Xrotation`` is ``R = Rz Ry Rx`` acting on column vectors).
``End Site`` blocks carry no rotation and are dropped. BVH has no units: CMU-style files (a skeleton 10 to 50
units tall) are read at 0.056444 m per unit (the CMU conversion's scale, 1/0.45 inches), centimetre-sized ones
(50 to 300) at 0.01, others at 1 m; ``meters_per_unit`` overrides the guess.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from usdposer.core.rotations import axis_angle_to_quat, quat_to_matrix
from usdposer.errors import InputError

if TYPE_CHECKING:
    from usdposer.io.rig_stage import RigData

CMU_METERS_PER_UNIT = 0.0254 / 0.45


@dataclass
class BvhJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)


@dataclass
class Bvh:
    """joints parents-first; ``motion`` (T, C) raw channel values; ``frame_time`` seconds."""

    joints: list[BvhJoint]
    motion: np.ndarray
    frame_time: float

    @property
    def parents(self) -> np.ndarray:
        return np.array([j.parent for j in self.joints], dtype=np.int64)


MAX_JOINTS = 10_000
MAX_FRAMES = 10_000_000
_CHANNELS = {f"{a}{k}" for a in "XYZ" for k in ("position", "rotation")}


def parse_bvh(path: str | os.PathLike) -> Bvh:
    """Parse a BVH file; raises InputError naming what is wrong (and the line, in the motion)."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    head, sep, motion_text = text.partition("MOTION")
    if not text.lstrip().startswith("HIERARCHY"):
        raise InputError(f"{path}: not a BVH file (it must start with HIERARCHY)")
    if not sep:
        raise InputError(f"{path}: BVH ended early (no MOTION section); the file is truncated")
    joints = _parse_hierarchy(path, head.split()[1:])
    return _parse_motion(path, joints, motion_text)


def _number(path: Path, token: str, what: str, kind=float):
    try:
        v = kind(token)
    except ValueError:
        raise InputError(f"{path}: {what} {token!r} is not a number; fix the file") from None
    if not np.isfinite(v):
        raise InputError(f"{path}: {what} is {token}; fix the file")
    return v


def _parse_hierarchy(path: Path, tokens: list[str]) -> list[BvhJoint]:
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise InputError(f"{path}: BVH ended early; the file is truncated")
        pos += 1
        return tokens[pos - 1]

    joints: list[BvhJoint] = []
    names: set[str] = set()
    stack: list[int] = []
    in_end_site = 0
    while pos < len(tokens):
        tok = take()
        if tok in ("ROOT", "JOINT"):
            if in_end_site or (tok == "ROOT") != (not stack):
                raise InputError(f"{path}: {tok} in the wrong place (a ROOT inside a joint, a JOINT outside the ROOT "
                                 "or inside an End Site); fix the hierarchy")
            name = take()
            if name in names:
                raise InputError(f"{path}: joint {name!r} appears twice in the hierarchy; rename one")
            names.add(name)
            joints.append(BvhJoint(name, stack[-1] if stack else -1, np.zeros(3)))
            if len(joints) > MAX_JOINTS:
                raise InputError(f"{path}: more than {MAX_JOINTS:,} joints; this is not a character")
            if take() != "{":
                raise InputError(f"{path}: expected '{{' after {tok} {name}")
            stack.append(len(joints) - 1)
        elif tok == "End":
            take()  # "Site"
            if take() != "{" or not stack:
                raise InputError(f"{path}: expected '{{' after End Site, inside a joint")
            in_end_site += 1
        elif tok == "OFFSET":
            if not stack:
                raise InputError(f"{path}: OFFSET outside a joint; fix the hierarchy")
            values = np.array([_number(path, take(), "an OFFSET value") for _ in range(3)])
            if not in_end_site:
                joints[stack[-1]].offset = values
        elif tok == "CHANNELS":
            if not stack or in_end_site:
                raise InputError(f"{path}: CHANNELS outside a joint (or in an End Site); fix the hierarchy")
            n = _number(path, take(), "a CHANNELS count", int)
            if not 0 <= n <= 12:
                raise InputError(f"{path}: joint {joints[stack[-1]].name} declares {n} channels (0 to 12 are possible)")
            chans = [take() for _ in range(n)]
            bad = [c for c in chans if c[:1].upper() + c[1:].lower() not in _CHANNELS]
            if bad:
                raise InputError(f"{path}: unknown channel {bad[0]!r} on joint {joints[stack[-1]].name} "
                                 "(Xposition ... Zrotation are known)")
            joints[stack[-1]].channels = chans
        elif tok == "}":
            if in_end_site:
                in_end_site -= 1
            elif stack:
                stack.pop()
            else:
                raise InputError(f"{path}: unbalanced '}}' in the BVH hierarchy; fix the file")
        else:
            raise InputError(f"{path}: unexpected token {tok!r} in the BVH hierarchy")
    if stack or in_end_site:
        raise InputError(f"{path}: BVH ended early (unclosed joints before MOTION); the file is truncated")
    if not joints:
        raise InputError(f"{path}: the BVH hierarchy has no joints")
    return joints


def _parse_motion(path: Path, joints: list[BvhJoint], text: str) -> Bvh:
    lines = text.splitlines()
    header = [ln.split() for ln in lines[:4]]
    k = 0
    while k < len(header) and not header[k]:
        k += 1
    if k >= len(header) or header[k][:1] != ["Frames:"] or len(header[k]) != 2:
        raise InputError(f"{path}: expected 'Frames: N' after MOTION; the file is truncated or malformed")
    frames = _number(path, header[k][1], "the frame count", int)
    if frames < 1:
        raise InputError(f"{path}: the motion has no frames (Frames: {frames}); export at least one frame")
    if frames > MAX_FRAMES:
        raise InputError(f"{path}: Frames: {frames} is more than {MAX_FRAMES:,}; the file is corrupt")
    if k + 1 >= len(header) or header[k + 1][:2] != ["Frame", "Time:"] or len(header[k + 1]) != 3:
        raise InputError(f"{path}: expected 'Frame Time: SECONDS' after 'Frames:'")
    frame_time = _number(path, header[k + 1][2], "the frame time")
    if frame_time < 0 or 0 < frame_time < 1e-3:
        raise InputError(f"{path}: Frame Time {frame_time:g} s is not a frame time (1 ms or more, or 0 for "
                         "unknown); fix the file")
    C = sum(len(j.channels) for j in joints)
    first = k + 2
    rows = []
    for n, line in enumerate(lines[first:], start=first):
        vals = line.split()
        if not vals:
            continue
        if len(rows) == frames:
            raise InputError(f"{path}: more motion lines than the {frames} frames announced (line {n + 1} of the "
                             "motion); fix 'Frames:'")
        if len(vals) != C:
            last = not any(ln.split() for ln in lines[n + 1:])
            if last and len(vals) < C:
                raise InputError(f"{path}: the last motion line has {len(vals)} of {C} values; the file is truncated")
            raise InputError(f"{path}: motion line {n + 1} has {len(vals)} values but the hierarchy declares {C} "
                             "channels; the channels would shift, fix the file")
        rows.append(vals)
    if len(rows) < frames:
        raise InputError(f"{path}: {frames} frames of {C} channels announced but only {len(rows)} present; the file "
                         "is truncated")
    try:
        motion = np.asarray(rows, dtype=np.float64).reshape(frames, C)
    except ValueError as exc:
        raise InputError(f"{path}: the motion has a value that is not a number ({exc}); fix the file") from None
    if not np.isfinite(motion).all():
        raise InputError(f"{path}: the motion has NaN or infinite values")
    return Bvh(joints, motion, frame_time)


def _axis_rotation(axis: str, angles_deg: np.ndarray) -> np.ndarray:
    """(T,) degrees -> (T, 3, 3) rotation about X, Y or Z."""
    aa = torch.zeros(len(angles_deg), 3, dtype=torch.float64)
    aa[:, "XYZ".index(axis)] = torch.from_numpy(np.radians(np.asarray(angles_deg, dtype=np.float64)))
    return quat_to_matrix(axis_angle_to_quat(aa)).numpy()


def local_transforms(bvh: Bvh) -> np.ndarray:
    """(T, J, 4, 4) joint-local transforms of every frame, column-vector convention, file units."""
    T, J = len(bvh.motion), len(bvh.joints)
    out = np.tile(np.eye(4), (T, J, 1, 1))
    col = 0
    for j, joint in enumerate(bvh.joints):
        R = np.tile(np.eye(3), (T, 1, 1))
        t = np.tile(joint.offset, (T, 1))
        has_pos = False
        for ch in joint.channels:
            v = bvh.motion[:, col]
            col += 1
            kind = ch[1:].lower()
            if kind == "rotation":
                R = R @ _axis_rotation(ch[0].upper(), v)
            elif kind == "position":
                if not has_pos:
                    t, has_pos = np.zeros((T, 3)), True
                t[:, "XYZ".index(ch[0].upper())] = v
            else:
                raise InputError(f"unknown BVH channel {ch!r} on joint {joint.name}")
        out[:, j, :3, :3], out[:, j, :3, 3] = R, t
    return out


def guess_meters_per_unit(bvh: Bvh) -> float:
    """Metres per file unit from the rest skeleton's height (see the module docstring)."""
    parents = bvh.parents
    world = np.zeros((len(parents), 3))
    for j, p in enumerate(parents):
        world[j] = bvh.joints[j].offset + (world[p] if p >= 0 else 0.0)
    height = float(np.ptp(world, axis=0).max())
    if 10.0 <= height < 50.0:
        return CMU_METERS_PER_UNIT
    if 50.0 <= height < 300.0:
        return 0.01
    return 1.0


def bvh_to_rig(path: str | os.PathLike, meters_per_unit: float | None = None, clip_name: str | None = None) -> RigData:
    """Parse ``path`` into a :class:`usdposer.io.rig_stage.RigData` (one clip, no mesh, Y up)."""
    from usdposer.core.kinematics import decompose_trs
    from usdposer.io.rig_stage import ClipData, RigData, SkeletonData
    from usdposer.io.write_skel import unique_names

    path = Path(path)
    bvh = parse_bvh(path)
    names = unique_names([j.name for j in bvh.joints])
    tokens: list[str] = []
    for j, joint in enumerate(bvh.joints):
        tokens.append(names[j] if joint.parent < 0 else f"{tokens[joint.parent]}/{names[j]}")
    J = len(bvh.joints)
    rest_local = np.tile(np.eye(4), (J, 1, 1))
    rest_local[:, :3, 3] = np.stack([j.offset for j in bvh.joints])
    bind = np.zeros_like(rest_local)
    for j, p in enumerate(bvh.parents):
        bind[j] = rest_local[j] if p < 0 else bind[p] @ rest_local[j]
    local = local_transforms(bvh)
    t, q, s = (x.numpy() for x in decompose_trs(torch.from_numpy(local)))
    fps = 1.0 / bvh.frame_time if bvh.frame_time > 0 else 24.0
    clip = ClipData(clip_name or path.stem, t, q, s, [float(i) for i in range(len(local))])
    mpu = meters_per_unit or guess_meters_per_unit(bvh)
    tcps = float(round(fps)) if abs(fps - round(fps)) < 1e-2 else fps
    return RigData(name=path.stem, skeletons=[SkeletonData(tokens, rest_local, bind, clips=[clip])], up_axis="Y",
                   meters_per_unit=mpu, time_codes_per_second=tcps)
