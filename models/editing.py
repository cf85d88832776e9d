"""Editing on the pose manifold, asset in and layer out: ``invert``, ``interpolate``, ``ik`` and ``ik --replay``.

Each function reads a USD asset, runs the pose prior (:mod:`usdposer.models.pose_prior`) and writes a layer over the
asset (``write_clip_layer``: temporary file, then moved into place; the asset is never modified). They return a
report dataclass, the ``--json`` contract of the verb.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from usdposer.errors import InputError
from usdposer.selection import default_output, parse_frames  # noqa: F401  (re-exported for the commands)

SUCCESS_FRACTION = 0.015  # a handle counts as reached within 1.5% of the character's height


# ------------------------------------------------------------------------------------------------ shared pieces
@dataclass
class Session:
    """What every editing verb loads: the asset, its rig, the prior and the rig's condition."""

    asset: object  # usdposer.io.read_skel.SkelAsset
    rig: object  # usdposer.types.Rig
    prior: object  # PosePrior
    cond: object  # RigCondition
    height: float
    model_id: str

    @classmethod
    def open(cls, path, skeleton: str | None, checkpoint: str | None, device: str) -> Session:
        from usdposer.models.pipelines import open_rig
        from usdposer.models.pose_prior import DEFAULT_CHECKPOINT, PosePrior, RigCondition

        from usdposer.posing import character_height

        asset, rig = open_rig(path, skeleton)
        prior = PosePrior.load(checkpoint, device)
        return cls(asset, rig, prior, RigCondition.from_rig(rig), character_height(rig) or 1.0,
                   str(checkpoint or DEFAULT_CHECKPOINT))


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
    from usdposer.rigfeatures import pose_to_6d
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
        one = Pose(pose.rotations[i:i + 1], pose.translations[i:i + 1], pose.scales[i:i + 1])
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
    from usdposer.rigfeatures import pose_from_6d

    return pose_from_6d(rig.to(torch.float64), six.double(), ground=like is None, like=like)


def joint_error(rig, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean joint position distance (metres) between two batches of 6D poses, each pose grounded, ``(B,)``."""
    from usdposer.posing import joint_transforms

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


# ------------------------------------------------------------------------------------------------ invert
@dataclass
class InvertReport:
    """The ``usdposer invert --json`` contract; errors are fractions of the character's height."""

    asset: str
    output: str
    skeleton: str
    animation: str
    frames: int
    steps: int
    refine: int
    checkpoint: str
    library: str
    reconstruction: str
    height_m: float
    mean_error: float
    max_error: float
    errors: list[float] = field(default_factory=list)
    seconds: float = 0.0
    preview: str | None = None


def invert_asset(asset, out, *, anim: str | None = None, frames: str | None = None, checkpoint: str | None = None,
                 steps: int = 50, refine: int = 3, skeleton: str | None = None, device: str = "cpu",
                 arguments: list[str] | None = None, progress=None, preview: str | None = None) -> InvertReport:
    """DDIM-invert an animation's poses into latent codes (layout B library ``<Skeleton>/PoseLatents`` with each
    pose's reconstruction error as its score) and write the decoded poses as ``usdposerReconstruction`` (not bound)."""
    from usdposer.io.edits import stamp_pose_space
    from usdposer.io.write_skel import define_pose_library, provenance, write_clip_layer
    from usdposer.rigfeatures import pose_to_6d
    from usdposer.types import Pose

    t0 = time.time()
    s = Session.open(asset, skeleton, checkpoint, device)
    clip = s.asset.clip(s.rig, anim)
    idx = parse_frames(frames, clip.time_codes)
    src = Pose(clip.rotations[idx], clip.translations[idx], clip.scales[idx])
    six = pose_to_6d(s.rig, src).float()
    # 1. invert, 2. decode the latents again, 3. compare where the joints land
    latents = s.prior.invert(s.cond, six, steps=steps, refine=refine, progress=progress)
    rec, _ = s.prior.sample(s.cond, len(latents), steps=steps, latents=latents)
    err = (joint_error(s.rig, six, rec) / s.height).float()
    decoded = place(s.rig, rec, src)
    tc = clip.time_codes[idx]
    from usdposer.types import Clip

    rec_clip = Clip(decoded.rotations, decoded.translations, decoded.scales, time_codes=tc.double(),
                    time_codes_per_second=clip.time_codes_per_second, name="usdposerReconstruction")
    lib = f"{s.rig.skeleton_path}/PoseLatents"

    def author(stage):
        prim = define_pose_library(stage, lib, s.rig, src, latents=latents.reshape(len(idx), -1).numpy(),
                                   scores=err.numpy(), time_codes=tc.tolist())
        prim.SetCustomDataByKey("usdposer:scores", "reconstruction error (mean joint distance / character height)")
        prim.SetCustomDataByKey("usdposer:source", clip.path)
        stamp_pose_space(stage, s.rig.skeleton_path, s.model_id, lib, len(idx), sampler="ddim")

    prov = provenance("invert", arguments, checkpoint=s.model_id, steps=steps, refine=refine, animation=clip.path)
    outp = write_clip_layer(asset, out, s.rig, [rec_clip], prov=prov, bind=None, author=author)
    if preview:  # source over decoded, pose by pose (at most 8)
        from usdposer.preview import contact_sheet

        show = list(range(0, len(idx), max(1, -(-len(idx) // 8))))
        both = Pose(torch.cat([src.rotations[show].double(), decoded.rotations[show].double()]),
                    torch.cat([src.translations[show].double(), decoded.translations[show].double()]),
                    torch.cat([src.scales[show].double(), decoded.scales[show].double()]))
        labels = [f"{float(tc[i]):g} source" for i in show] + [f"{float(tc[i]):g} decoded" for i in show]
        contact_sheet(s.rig, both, preview, columns=len(show), labels=labels)
    return InvertReport(str(asset), str(outp), s.rig.skeleton_path, clip.path, len(idx), steps, refine, s.model_id,
                        lib, f"{s.rig.skeleton_path}/usdposerReconstruction", s.height, float(err.mean()),
                        float(err.max()), [round(float(e), 6) for e in err], time.time() - t0, preview)


# ------------------------------------------------------------------------------------------------ interpolate
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
class InterpolateReport:
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
    from usdposer.rigfeatures import relative_rotations

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
    """Per pose of ``six`` (N, J, 6) pose-space codes (canonical, ``usdposer.rigfeatures``), the number of part pairs whose
    skinned triangles cross deeper than the SelfIntersection rule's warning depth (its exact test; rest/bind
    crossings allowed); None without meshes."""
    from usdposer.posing import character_height, skin
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


def interpolate_asset(asset, out, *, pose_from: str, pose_to: str, frames: int = 24, space: str = "latent",
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
        from usdposer.preview import contact_sheet

        show = keys or keyframe_indices(frames, min(frames, 12))
        contact_sheet(s.rig, _take(pose, show), preview)
        rep.preview = str(preview)
    rep.seconds = time.time() - t0
    return rep


def _take(pose, idx):
    from usdposer.types import Pose

    return Pose(pose.rotations[idx], pose.translations[idx], pose.scales[idx])


# ------------------------------------------------------------------------------------------------ ik
@dataclass
class IKReport:
    """The ``usdposer ik --json`` contract. Errors are fractions of the character's height."""

    asset: str
    output: str
    skeleton: str
    pose_from: str
    handles: list[dict]
    candidates: int
    chosen: int
    seed: int
    steps: int
    strength: float
    handle_errors: list[float]
    mean_handle_error: float
    prior_score: float
    limit_violations: int | None
    frames: int
    keyframes: list[float]
    animation: str
    constraints: str
    height_m: float
    replay_max_angle_deg: float | None = None
    preview: str | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def _stage_to_world(rig, p) -> torch.Tensor:
    from usdposer.io.stage import axis_matrix

    C = torch.tensor(axis_matrix(rig.up_axis)[:3, :3], dtype=torch.float64)
    return (torch.as_tensor(p, dtype=torch.float64) * rig.meters_per_unit) @ C.T


def _world_to_stage(rig, p) -> torch.Tensor:
    from usdposer.io.stage import axis_matrix

    C = torch.tensor(axis_matrix(rig.up_axis)[:3, :3], dtype=torch.float64)
    return (torch.as_tensor(p, dtype=torch.float64) @ C) / rig.meters_per_unit


EDIT_STRENGTH = 0.8  # share of the noise schedule re-run when editing a pose


@dataclass
class IKSolution:
    """Candidates of one guided solve: six ``(n, J, 6)``, their starting codes ``(n, J, 6)``, handle errors ``(n, H)``
    (fractions of height), prior scores ``(n,)``, which reached every handle, and the chosen index."""

    six: torch.Tensor
    latents: torch.Tensor
    errors: torch.Tensor
    scores: torch.Tensor
    reached: torch.Tensor
    chosen: int


def solve_ik(prior, cond, obj, start: torch.Tensor, *, n: int, steps: int, strength: float = EDIT_STRENGTH,
             edit: bool = False, generator: torch.Generator | None = None, progress=None) -> IKSolution:
    """Guided IK candidates under ``obj`` (a :class:`usdposer.ik.PoseObjective`).

    ``edit``: every candidate starts from ``start (1, J, 6)`` inverted to ``strength`` of the schedule, all but the
    first with a little fresh noise (``usdposer ik --from``). Otherwise the first candidate edits ``start`` (the rest
    pose) the same way and the others are sampled from pure noise. Nudges stop once every handle is within about
    0.4% of the height, so that met constraints leave the prior's pose alone. The chosen candidate reaches every
    handle within 1.5% of the height and has the lowest prior score (or, if none reaches, the smallest error).
    """
    H = len(obj.joints)
    tol = float(obj.weights.sum()) * 0.004**2
    J = start.shape[1]
    z0 = prior.invert(cond, start, steps=steps, strength=strength)
    k = n if edit else 1
    z_edit = z0.expand(k, -1, -1).clone()
    z_edit[1:] += 0.3 * torch.randn(z_edit[1:].shape, generator=generator)
    six = prior.guided_sample(cond, obj.residuals, z_edit, steps=steps, strength=strength, tol=tol, progress=progress)
    latents = z_edit
    if n > k:
        z_noise = torch.randn(n - k, J, 6, generator=generator)
        six = torch.cat([six, prior.guided_sample(cond, obj.residuals, z_noise, steps=steps, tol=tol)])
        latents = torch.cat([latents, z_noise])
    err = (obj.handle_errors(six) / obj.height).float().reshape(n, H)
    score = prior.score(cond, six)
    ok = err.max(1).values < SUCCESS_FRACTION
    chosen = int(torch.where(ok, score, score + 1e6 * (1 + err.max(1).values)).argmin())
    return IKSolution(six, latents, err, score, ok, chosen)


def ik_asset(asset, out, *, handles: list, pins: list[str] = (), pose_from: str | None = None,
             anim: str | None = None, n: int = 4, seed: int = 0, steps: int = 50, strength: float | None = None,
             frames: int = 1, keyframes: int = 0, checkpoint: str | None = None, skeleton: str | None = None,
             device: str = "cpu", preview: str | None = None, arguments: list[str] | None = None,
             progress=None) -> IKReport:
    """IK on the manifold: energy-guided DDIM under sparse handles (and pins), from noise or from an existing pose
    after inversion; ``n`` candidates, the most plausible one that reaches every handle is written.

    ``handles`` are :class:`usdposer.ik.Handle` (targets in the stage's world space and units). The layer holds the
    pose (``usdposerIK``; with ``frames > 1`` the manifold path from the start pose to it), the candidates with
    their codes and prior scores (``<Skeleton>/IKCandidates``) and the handles as ``IKHandleAPI`` constraint prims
    (``<Skeleton>/IKHandles``) from which ``usdposer ik --replay`` re-runs the edit. See :func:`solve_ik`.
    """
    from usdposer.ik import Handle, PoseObjective, joint_of
    from usdposer.io.edits import define_ik_handles, set_keyframes, stamp_pose_space
    from usdposer.io.write_skel import define_pose_library, provenance, write_clip_layer

    if not handles:
        raise InputError("give at least one --handle JOINT=x,y,z (pins alone keep the pose as it is)")
    if n < 1 or frames < 1:
        raise InputError(f"-n and --frames must be at least 1 (got {n}, {frames})")
    t0 = time.time()
    s = Session.open(asset, skeleton, checkpoint, device)
    rig = s.rig
    start = resolve_pose(s, pose_from or "rest", anim)
    strength = EDIT_STRENGTH if strength is None else strength
    # 1. resolve handles (joint names, units) and pins (where the joint is in the start pose)
    handles = list(handles) + [Handle(p, kind="pin") for p in pins]
    idx = [joint_of(rig, h.joint, "--pin" if h.kind == "pin" else "--handle") for h in handles]
    roots = [joint_of(rig, h.root_joint, "rootJoint") if h.root_joint else None for h in handles]
    weights = torch.tensor([h.weight for h in handles], dtype=torch.float64)
    obj = PoseObjective(rig, torch.tensor(idx), torch.zeros(len(idx), 3), weights, like=start.like)
    start_pos = obj.pose(start.six.double()).positions[0]  # (J, 3)
    targets = torch.stack([start_pos[j] if h.kind == "pin" else _stage_to_world(rig, h.target)
                           for h, j in zip(handles, idx)])
    obj.targets = targets
    obj.check_reachable([h.joint for h in handles], roots)
    # 2.-3. guided sampling from noise and from the start pose inverted part way; pick the most plausible that
    # reaches every handle
    g = torch.Generator().manual_seed(seed)
    sol = solve_ik(s.prior, s.cond, obj, start.six, n=n, steps=steps, strength=strength, edit=bool(pose_from),
                   generator=g, progress=progress)
    six, z, err, score, ok, chosen = sol.six, sol.latents, sol.errors, sol.scores, sol.reached, sol.chosen
    # 4. the written animation: the pose, or the manifold path from the start pose to it
    if frames > 1:
        path, _, _ = latent_path(s, start.six, six[chosen:chosen + 1], frames, steps)
    else:
        path = six[chosen:chosen + 1]
    pose = place(rig, path, start.like)
    keys = keyframe_indices(len(path), keyframes)
    clip = _clip(rig, pose, "usdposerIK", _tcps(s))
    anim_path, lib, cons = (f"{rig.skeleton_path}/{x}" for x in ("usdposerIK", "IKCandidates", "IKHandles"))
    cand_pose = place(rig, six, start.like)
    stored = [{"joint": rig.joints[j], "root_joint": rig.joints[r] if r is not None else "", "kind": h.kind,
               "weight": h.weight, "target": _world_to_stage(rig, targets[k]).tolist()}
              for k, (h, j, r) in enumerate(zip(handles, idx, roots))]

    def author(stage):
        define_ik_handles(stage, cons, stored)
        define_pose_library(stage, lib, rig, cand_pose, latents=z.reshape(n, -1).numpy(), scores=score.numpy())
        stamp_pose_space(stage, rig.skeleton_path, s.model_id, lib, n)
        if keys:
            set_keyframes(stage, anim_path, [float(k) for k in keys])

    prov = provenance("ik", arguments, seed=seed, checkpoint=s.model_id, steps=steps, strength=strength,
                      candidates=n, chosen=chosen, frames=frames, keyframes=[float(k) for k in keys],
                      poseFrom=pose_from or "", animation=anim or "", skeleton=rig.skeleton_path)
    outp = write_clip_layer(asset, out, rig, [clip], prov=prov, author=author)
    viol = obj.violations(six[chosen:chosen + 1])
    rep = IKReport(str(asset), str(outp), rig.skeleton_path, start.label, stored, n, chosen, seed, steps, strength,
                   [round(float(e), 6) for e in err[chosen]], float(err[chosen].mean()), float(score[chosen]),
                   None if viol is None else int(viol.sum()), len(path), [float(k) for k in keys], anim_path, cons,
                   s.height)
    from usdposer.models.plausibility import familiarity_warning

    unfamiliar = familiarity_warning(s.prior, s.cond, scores=score)
    if unfamiliar:
        rep.warnings.append(unfamiliar)
    if not bool(ok[chosen]):
        rep.warnings.append(f"no candidate reached every handle within {SUCCESS_FRACTION:.1%} of the height "
                            f"(best max error {float(err[chosen].max()):.2%}); try -n 8 or move the targets")
    if preview:
        from usdposer.preview import contact_sheet

        contact_sheet(rig, _take(cand_pose, [chosen] + [i for i in range(n) if i != chosen]), preview)
        rep.preview = str(preview)
    rep.seconds = time.time() - t0
    return rep


def replay_ik(layer: str | os.PathLike, out, *, device: str = "cpu", preview: str | None = None,
              arguments: list[str] | None = None, progress=None) -> IKReport:
    """Re-run the edit stored in an ``ik`` layer from its constraint prims and settings, and report how far the new
    pose is from the stored one (``replay_max_angle_deg``; 0 up to float noise with the same seed and checkpoint)."""
    from pxr import Sdf

    from usdposer.core.rotations import quat_angle
    from usdposer.ik import Handle
    from usdposer.io.edits import find_ik_handles, read_ik_handles
    from usdposer.io.read_skel import read_asset
    from usdposer.io.stage import open_stage

    sdf = Sdf.Layer.FindOrOpen(str(layer))
    if sdf is None:
        raise InputError(f"{layer}: cannot be opened as a USD layer")
    prov = dict(sdf.customLayerData.get("usdposer", {}))
    if prov.get("verb") != "ik" or not sdf.subLayerPaths:
        raise InputError(f"{layer}: not a layer written by `usdposer ik` (no ik provenance); pass the ik output")
    source = Sdf.ComputeAssetPathRelativeToLayer(sdf, sdf.subLayerPaths[0])
    stage = open_stage(layer)
    skel = prov.get("skeleton") or prov.get("sourceSkeleton")
    prim = find_ik_handles(stage, skel)
    if prim is None:
        raise InputError(f"{layer}: no IKHandleAPI constraint prim under {skel}")
    stored = read_ik_handles(prim)
    handles = [Handle(h["joint"], h["target"], h["weight"], "position", h["root_joint"])
               for h in stored if h["kind"] == "position"]
    pins = [h["joint"] for h in stored if h["kind"] == "pin"]
    ckpt = prov.get("checkpoint")
    from usdposer.models.pose_prior import DEFAULT_CHECKPOINT

    rep = ik_asset(source, out, handles=handles, pins=pins, pose_from=prov.get("poseFrom") or None,
                   anim=prov.get("animation") or None, n=int(prov.get("candidates", 4)), seed=int(prov.get("seed", 0)),
                   steps=int(prov.get("steps", 50)), strength=float(prov.get("strength", 1.0)),
                   frames=int(prov.get("frames", 1)), keyframes=len(list(prov.get("keyframes", []))),
                   checkpoint=None if ckpt in (None, "", str(DEFAULT_CHECKPOINT)) else ckpt, skeleton=skel,
                   device=device, preview=preview, arguments=arguments, progress=progress)
    old = read_asset(layer)
    new = read_asset(rep.output)
    rig_old, rig_new = old.rig(skel), new.rig(skel)
    qa = old.clip(rig_old, "usdposerIK").rotations[-1]
    qb = new.clip(rig_new, "usdposerIK").rotations[-1]
    rep.replay_max_angle_deg = float(quat_angle(qa, qb).max() * 180 / math.pi)
    return rep
