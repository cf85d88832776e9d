"""``usdposer interpolate``: the path between two poses along the pose manifold (invert both, variance-preserving
slerp of the codes, decode), or per joint; with ``report``, both paths' plausibility side by side."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from usdposer.pipelines._base import Progress, Result, preflight
from usdposer.pipelines._session import (
    Session,
    SourcePose,
    _clip,
    _take,
    _tcps,
    keyframe_indices,
    latent_path,
    place,
    resolve_pose,
)

from usdposer.errors import InputError


@dataclass(frozen=True)
class InterpolateOptions:
    """``pose_from`` / ``pose_to``: time codes, ``sample:I`` or ``rest``; ``space``: ``latent`` (on the manifold) or
    ``joint``; ``keyframes``: K evenly spaced keyframes listed in ``usdposer:keyframes``; ``report``: per-frame
    plausibility of both paths."""

    pose_from: str = "rest"
    pose_to: str = "rest"
    frames: int = 24
    space: str = "latent"
    keyframes: int = 0
    report: bool = False
    anim: str | None = None
    checkpoint: str | None = None
    steps: int = 50
    skeleton: str | None = None
    device: str = "cpu"
    preview: str | None = None
    arguments: tuple[str, ...] = ()


def interpolate(asset: str | os.PathLike, out: str | os.PathLike, options: InterpolateOptions = InterpolateOptions(),
                progress: Progress | None = None) -> InterpolateReport:
    """``usdposer interpolate``: the path between two poses, as a bound SkelAnimation over the asset."""
    preflight([asset], out, [options.preview])
    o = options
    return _interpolate(asset, out, pose_from=o.pose_from, pose_to=o.pose_to, frames=o.frames, space=o.space,
                        keyframes=o.keyframes, report=o.report, anim=o.anim, checkpoint=o.checkpoint, steps=o.steps,
                        skeleton=o.skeleton, device=o.device, preview=o.preview, arguments=list(o.arguments))


@dataclass
class PathStats:
    """Per-frame plausibility of one path: prior score (lower is more plausible), joints outside limits, part pairs
    of the skinned mesh that cross."""

    space: str
    score: list[float]
    limit_violations: list[int] | None
    self_intersections: list[int] | None = None  # crossing part pairs per frame (None: no mesh)

    @property
    def mean_score(self) -> float:
        return float(np.mean(self.score))


@dataclass
class InterpolateReport(Result):
    """The ``usdposer interpolate --json`` contract."""

    asset: str
    output: str
    skeleton: str
    pose_from: str
    pose_to: str
    frames: int
    space: str
    animation: str
    keyframes: list[float]
    endpoint_inversion_error: list[float]
    paths: list[PathStats] = field(default_factory=list)
    preview: str | None = None
    seconds: float = 0.0


def path_stats(s: Session, six: torch.Tensor, space: str, parts=None) -> PathStats:
    """Per-frame plausibility of a path; ``parts`` (:func:`triangle_parts`) is shared between the paths of a report."""
    from usdposer.core.limits import limit_violations
    from usdposer.core.posespace import relative_rotations

    score = s.prior.score(s.cond, six).tolist()
    viol = None
    if s.rig.limits is not None and torch.isfinite(s.rig.limits).any():
        viol = limit_violations(relative_rotations(s.rig, six.double()), s.rig.limits).sum(1).tolist()
    return PathStats(space, [round(x, 5) for x in score], viol, self_intersections(s.rig, six, parts))


def triangle_parts(rig):
    """The SelfIntersection rule's part grouping of ``rig`` (float64, CPU), or None for a rig without meshes."""
    from usdposer.validate.selfintersect import TriangleParts

    return TriangleParts.from_rig(rig.to(torch.float64, "cpu")) if rig.meshes else None


def self_intersections(rig, six: torch.Tensor, parts=None) -> list[int] | None:
    """Per pose of ``six`` (N, J, 6) pose-space codes (canonical, ``usdposer.core.posespace``), the number of part pairs whose
    skinned triangles cross deeper than the SelfIntersection rule's warning depth (its exact test; rest/bind
    crossings allowed); None without meshes."""
    from usdposer.core.posing import character_height, skin
    from usdposer.validate.context import CheckOptions

    if not rig.meshes:
        return None
    parts = parts if parts is not None else triangle_parts(rig)
    rig = rig.to(torch.float64, "cpu")
    pose = place(rig, six.detach().cpu(), None)  # canonical codes -> joint-local rotations, grounded
    counts = [0] * len(six)
    floor = CheckOptions().depth * character_height(rig)  # the rule's warning depth: shallower grazes are not counted
    for c in parts.find(torch.cat(skin(rig, pose, backend="torch"), 1).float()):
        counts[c.frame] += c.depth > floor
    return counts


def joint_path(a: torch.Tensor, b: torch.Tensor, frames: int) -> torch.Tensor:
    """Per-joint slerp between two 6D poses ``(1, J, 6)`` -> ``(frames, J, 6)``."""
    from usdposer.core.rotations import quat_slerp, quat_to_6d, sixd_to_quat

    qa, qb = sixd_to_quat(a.double()), sixd_to_quat(b.double())
    s = torch.linspace(0, 1, frames, dtype=torch.float64)[:, None]  # (F, 1)
    return quat_to_6d(quat_slerp(qa.expand(frames, -1, -1), qb.expand(frames, -1, -1), s)).float()


def path_placement(rig, a: SourcePose, b: SourcePose, frames: int):
    """Root heading and translation along a path: interpolated between two animation frames, else None (grounded)."""
    if a.like is None or b.like is None:
        return None
    from usdposer.core.rotations import quat_slerp
    from usdposer.types import Pose

    s = torch.linspace(0, 1, frames, dtype=torch.float64)[:, None]  # (F, 1)
    qa, qb = a.like.rotations.double(), b.like.rotations.double()
    q = quat_slerp(qa.expand(frames, -1, -1), qb.expand(frames, -1, -1), s)
    ta, tb = a.like.translations.double(), b.like.translations.double()
    t = ta + (tb - ta) * s[:, :, None]
    return Pose(q, t, a.like.scales.double().expand(frames, -1, -1))


def _interpolate(asset, out, *, pose_from: str, pose_to: str, frames: int = 24, space: str = "latent",
                      keyframes: int = 0, report: bool = False, anim: str | None = None, checkpoint: str | None = None,
                      steps: int = 50, skeleton: str | None = None, device: str = "cpu", preview: str | None = None,
                      arguments: list[str] | None = None) -> InterpolateReport:
    """Write the path between two poses as a SkelAnimation ``usdposerInterpolation`` (bound; frame i at time code
    i): on the manifold (``space="latent"``: invert both, slerp the codes, decode) or per joint (``"joint"``)."""
    from usdposer.io.edits import set_keyframes, stamp_pose_space
    from usdposer.io.write_skel import define_pose_library, provenance, write_clip_layer

    if frames < 2:
        raise InputError(f"--frames must be at least 2 (got {frames})")
    if space not in ("latent", "joint"):
        raise InputError(f"--space {space!r}: choose latent or joint")
    t0 = time.time()
    s = Session.open(asset, skeleton, checkpoint, device)
    a, b = resolve_pose(s, pose_from, anim), resolve_pose(s, pose_to, anim)
    keys = keyframe_indices(frames, keyframes)
    six_l, codes, end_err = latent_path(s, a.six, b.six, frames, steps)
    six_j = joint_path(a.six, b.six, frames)
    six = six_l if space == "latent" else six_j
    pose = place(s.rig, six, path_placement(s.rig, a, b, frames))
    clip = _clip(s.rig, pose, "usdposerInterpolation", _tcps(s))
    anim_path = f"{s.rig.skeleton_path}/usdposerInterpolation"
    lib = f"{s.rig.skeleton_path}/InterpolationLatents"

    def author(stage):
        if keys:
            set_keyframes(stage, anim_path, [float(k) for k in keys])
        if space == "latent":
            define_pose_library(stage, lib, s.rig, pose, latents=codes.reshape(frames, -1).numpy(),
                                time_codes=list(range(frames)))
            stamp_pose_space(stage, s.rig.skeleton_path, s.model_id, lib, frames)

    prov = provenance("interpolate", arguments, checkpoint=s.model_id, steps=steps, space=space, frames=frames,
                      poseFrom=a.label, poseTo=b.label, keyframes=[float(k) for k in keys])
    outp = write_clip_layer(asset, out, s.rig, [clip], prov=prov, author=author)
    rep = InterpolateReport(str(asset), str(outp), s.rig.skeleton_path, a.label, b.label, frames, space, anim_path,
                            [float(k) for k in keys], [round(e, 6) for e in end_err])
    if report:
        parts = triangle_parts(s.rig)  # built once for both paths
        rep.paths = [path_stats(s, six_l, "latent", parts), path_stats(s, six_j, "joint", parts)]
    if preview:
        from usdposer.render.preview import contact_sheet

        show = keys or keyframe_indices(frames, min(frames, 12))
        contact_sheet(s.rig, _take(pose, show), preview)
        rep.preview = str(preview)
    rep.seconds = time.time() - t0
    return rep
