"""What the editing verbs (``invert``, ``interpolate``, ``ik``) share: the asset, its rig, the prior and the rig's
condition loaded once; poses named on the command line (``rest``, ``sample:I``, a time code); placing decoded poses;
the manifold path between two poses."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from usdposer.core.selection import parse_frames
from usdposer.errors import InputError


@dataclass
class Session:
    """What every editing verb loads: the asset, its rig, the prior and the rig's condition."""

    asset: object  # usdposer.io.read_skel.SkelAsset
    rig: object  # usdposer.types.Rig
    prior: object  # PosePrior
    cond: object  # RigCondition
    height: float
    model_id: str

    @cached_property
    def range_of_motion(self) -> tuple[torch.Tensor | None, str]:
        """The rig's range of motion, ``(J, 3, 2)`` Euler limits relative to rest (or None) and where they come from:
        the asset's own limits where it states them ("rig"), else limits learned from its animation of this skeleton
        (:func:`usdposer.core.limits.learn_limits`: 0.5 / 99.5 % quantiles widened by 5 degrees, at least 20 frames;
        "animation"), else none ("none"). Learned once per session."""
        from usdposer.core.limits import learn_limits
        from usdposer.core.posespace import pose_to_6d, relative_rotations

        rig = self.rig
        if rig.limits is not None and torch.isfinite(rig.limits).any():
            return rig.limits, "rig"
        clips = self.asset.clips.get(rig.skeleton_path, [])
        lim = None
        if clips:
            six = torch.cat([pose_to_6d(rig, c.pose()) for c in clips])
            lim = learn_limits(relative_rotations(rig, six.double()))
        known = lim is not None and bool(torch.isfinite(lim).any())
        return (lim, "animation") if known else (None, "none")

    @classmethod
    def open(cls, path, skeleton: str | None, checkpoint: str | None, device: str) -> Session:
        from usdposer.models.pose_prior import PosePrior, RigCondition, checkpoint_dir

        from usdposer.core.posing import character_height
        from usdposer.io.read_skel import open_rig

        asset, rig = open_rig(path, skeleton)
        prior = PosePrior.load(checkpoint, device)
        return cls(asset, rig, prior, RigCondition.from_rig(rig), character_height(rig) or 1.0,
                   str(checkpoint_dir(checkpoint)))


@dataclass
class SourcePose:
    """A pose picked out of an asset: ``six (1, J, 6)``, the Pose it came from (placement) or None, a label."""

    six: torch.Tensor
    like: object | None
    label: str
    time_code: float | None = None


def resolve_pose(s: Session, spec: str, anim: str | None) -> SourcePose:
    """A pose given as ``rest``, ``sample:I`` (the Skeleton's sample library) or a time code of the bound (or
    ``--anim``) SkelAnimation."""
    from usdposer.core.posespace import pose_to_6d
    from usdposer.types import Pose

    rig = s.rig
    spec = str(spec).strip()
    if spec == "rest":
        return SourcePose(pose_to_6d(rig, Pose.rest(rig)).float(), None, "rest")
    if spec.startswith("sample:"):
        from usdposer.io.edits import find_pose_library
        from usdposer.io.stage import open_stage
        from usdposer.io.write_skel import read_pose_library

        try:
            i = int(spec.split(":", 1)[1])
        except ValueError:
            raise InputError(f"pose {spec!r}: expected sample:INDEX, e.g. sample:3") from None
        stage = open_stage(s.asset.path)
        prim = find_pose_library(stage, rig.skeleton_path)
        if prim is None:
            raise InputError(f"pose {spec}: {s.asset.path} has no pose sample library under {rig.skeleton_path}; "
                             "run `usdposer sample` first and pass its layer")
        pose, _ = read_pose_library(prim, rig)
        if not 0 <= i < len(pose):
            raise InputError(f"pose {spec}: the library {prim.GetPath()} has samples 0..{len(pose) - 1}")
        one = pose[i:i + 1]
        return SourcePose(pose_to_6d(rig, one).float(), None, spec)
    try:
        t = float(spec)
    except ValueError:
        raise InputError(f"pose {spec!r}: expected a time code (e.g. 12), sample:INDEX or rest") from None
    clip = s.asset.clip(rig, anim)
    i = parse_frames(f"{t:g}", clip.time_codes, option=f"pose {spec} of {clip.path}:")[0]
    one = Pose(clip.rotations[i:i + 1], clip.translations[i:i + 1], clip.scales[i:i + 1])
    return SourcePose(pose_to_6d(rig, one).float(), one, f"{clip.name}@{t:g}", t)


def place(rig, six: torch.Tensor, like) -> object:
    """Poses from 6D codes, placed like ``like`` (batch 1 or B) or grounded."""
    from usdposer.core.posespace import pose_from_6d

    return pose_from_6d(rig.to(torch.float64), six.double(), ground=like is None, like=like)


def joint_error(rig, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean joint position distance (metres) between two batches of 6D poses, each pose grounded, ``(B,)``."""
    from usdposer.core.posing import joint_transforms

    pa = joint_transforms(rig.to(torch.float64), place(rig, a, None))[..., :3, 3]
    pb = joint_transforms(rig.to(torch.float64), place(rig, b, None))[..., :3, 3]
    return (pa - pb).norm(dim=-1).mean(-1)


def keyframe_indices(frames: int, k: int) -> list[int]:
    """``k`` evenly spaced frame indices of ``frames`` (first and last included)."""
    if k <= 0:
        return []
    if k > frames:
        raise InputError(f"--keyframes {k}: more keyframes than the {frames} frames written; lower it or add --frames")
    return sorted({int(round(x)) for x in np.linspace(0, frames - 1, k)})


def _clip(rig, pose, name: str, tcps: float):
    from usdposer.types import Clip

    return Clip(pose.rotations, pose.translations, pose.scales, time_codes=torch.arange(len(pose), dtype=torch.float64),
                time_codes_per_second=tcps, name=name)


def _tcps(s: Session) -> float:
    return s.asset.time_codes_per_second or 24.0


def latent_path(s: Session, a: torch.Tensor, b: torch.Tensor, frames: int, steps: int) -> tuple[torch.Tensor, ...]:
    """Invert both poses, slerp the codes, decode: ``(frames, J, 6)`` poses (the exact inputs at the ends), the
    codes, and the two endpoints' inversion errors (fractions of height)."""
    from usdposer.models.pose_prior import slerp

    z = s.prior.invert(s.cond, torch.cat([a, b]), steps=steps)
    codes = slerp(z[0], z[1], torch.linspace(0, 1, frames))  # (F, J, 6)
    six, _ = s.prior.sample(s.cond, frames, steps=steps, latents=codes)
    ends = torch.cat([a, b]).float()
    err = (joint_error(s.rig, ends, six[[0, -1]]) / s.height).tolist()
    six[0], six[-1] = a[0], b[0]
    return six, codes, err


def _take(pose, idx):
    from usdposer.types import Pose

    return Pose(pose.rotations[idx], pose.translations[idx], pose.scales[idx])


def _stage_to_world(rig, p) -> torch.Tensor:
    """Points in the asset's stage units and axes -> usdposer's world (metres, +Y up)."""
    from usdposer.io.stage import StageUnits

    return torch.from_numpy(StageUnits(rig.meters_per_unit, rig.up_axis).points(np.asarray(p, dtype=np.float64)))


def _world_to_stage(rig, p) -> torch.Tensor:
    """Inverse of :func:`_stage_to_world`."""
    from usdposer.io.stage import StageUnits

    return torch.from_numpy(StageUnits(rig.meters_per_unit, rig.up_axis).to_stage(np.asarray(p, dtype=np.float64)))
