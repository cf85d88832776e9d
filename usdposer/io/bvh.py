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


def parse_bvh(path: str | os.PathLike) -> Bvh:
    """Parse a BVH file; raises InputError naming the line that is wrong."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    tokens = text.split()
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise InputError(f"{path}: BVH ended early; the file is truncated")
        pos += 1
        return tokens[pos - 1]

    if take() != "HIERARCHY":
        raise InputError(f"{path}: not a BVH file (it must start with HIERARCHY)")
    joints: list[BvhJoint] = []
    stack: list[int] = []
    in_end_site = 0
    while True:
        tok = take()
        if tok in ("ROOT", "JOINT"):
            name = take()
            joints.append(BvhJoint(name, stack[-1] if stack else -1, np.zeros(3)))
            if take() != "{":
                raise InputError(f"{path}: expected '{{' after {tok} {name}")
            stack.append(len(joints) - 1)
        elif tok == "End":
            take()  # "Site"
            if take() != "{":
                raise InputError(f"{path}: expected '{{' after End Site")
            in_end_site += 1
        elif tok == "OFFSET":
            values = np.array([float(take()) for _ in range(3)])
            if not in_end_site:
                joints[stack[-1]].offset = values
        elif tok == "CHANNELS":
            n = int(take())
            joints[stack[-1]].channels = [take() for _ in range(n)]
        elif tok == "}":
            if in_end_site:
                in_end_site -= 1
            else:
                stack.pop()
        elif tok == "MOTION":
            break
        else:
            raise InputError(f"{path}: unexpected token {tok!r} in the BVH hierarchy")
    if not joints:
        raise InputError(f"{path}: the BVH hierarchy has no joints")
    if take() != "Frames:":
        raise InputError(f"{path}: expected 'Frames:' after MOTION")
    frames = int(take())
    if take() != "Frame" or take() != "Time:":
        raise InputError(f"{path}: expected 'Frame Time:'")
    frame_time = float(take())
    C = sum(len(j.channels) for j in joints)
    values = tokens[pos:pos + frames * C]
    if len(values) < frames * C:
        raise InputError(f"{path}: {frames} frames of {C} channels announced but only {len(values) // max(C, 1)} "
                         "present; the file is truncated")
    motion = np.asarray(values, dtype=np.float64).reshape(frames, C)
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
