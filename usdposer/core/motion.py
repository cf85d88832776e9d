"""How physical an animation looks, from the rig and a clip alone (for ``usdposer track`` reports and ``usdposer check``).

On the skinned hull points (``usdposer.core.posing.hull_points``: the convex-hull vertices of each joint's dominant
vertices, a superset of every pose's extremes) in world (metres, +Y up, ground y = 0), per frame t:

    penetration      max(0, -min_p y_p(t))                         depth of the lowest point below the ground
    contact          points with y_p(t) < eps and y_p(t+1) < eps    (eps = ``contact_eps`` heights)
    skating          mean over contact points of |xz_p(t+1) - xz_p(t)| fps    horizontal speed while in contact
    uprightness      angle between the main body's rest up direction carried by its rotation, and +Y (the main body:
                     the first joint that is the largest influence of a vertex, e.g. the hips under a scene root)
    jitter           mean |a_{t+1} - 2 a_t + a_{t-1}| over joints and axes, a_t the joint rotations relative to rest as
                     rotation vectors (degrees per frame^2: high for a trembling clip, about 0 for a smooth one)
    root travel      horizontal distance of the main joint from the first frame to the last (heights)
    root drift       vertical change of the main joint from the first frame to the last (% of height: sinking or
                     floating away)
    tracking error   mean joint distance to a reference clip relative to the main joint (root-aligned MPJPE: the pose,
                     whatever the root did; a physical body walking where its reference walked in place, or standing
                     on the ground where its reference sank into it, still tracks it); ``tracking_drift`` is the main
                     joint's own mean distance to the reference's

Lengths are reported in % of the character's height, speeds in heights per second, angles in degrees.
Shapes: F frames, P hull points, J joints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from usdposer.types import Clip, Pose, Rig


@dataclass
class MotionMetrics:
    frames: int
    penetration_mean: float  # % of height, mean over frames
    penetration_max: float  # % of height
    skating: float  # heights / s, mean horizontal speed of the points in contact
    contact_fraction: float  # frames with at least one point in contact
    upright_mean: float  # degrees of tilt of the root's rest up axis
    upright_max: float
    jitter: float = 0.0  # degrees per frame^2
    root_travel: float = 0.0  # heights
    root_drift: float = 0.0  # % of height
    tracking_error: float | None = None  # % of height, mean joint distance to the reference, main joints aligned
    tracking_error_max: float | None = None
    tracking_drift: float | None = None  # % of height, mean distance of the main joint to the reference's

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def world_hull(rig: Rig, pose: Pose, max_points: int = 2048) -> Tensor:
    """(F, P, 3) skinned hull points in world (or the joints, for a rig without meshes)."""
    from usdposer.core.kinematics import skinning_transforms
    from usdposer.core.posing import hull_points, joint_transforms
    from usdposer.core.skinning import linear_blend_skinning

    rig = rig.to(torch.float64)
    skel = joint_transforms(rig, pose)
    world = rig.skel_to_world @ skel
    P, I, W = hull_points(rig, max_points=max_points)
    if not len(P):
        return world[..., :3, 3]
    return linear_blend_skinning(P, I, W, skinning_transforms(world, rig.bind_world), backend="torch")


def ground_penetration(points: Tensor) -> Tensor:
    """(F,) depth of the lowest point below y = 0 (points (F, P, 3))."""
    return torch.relu(-points[..., 1].amin(-1))


def contact_slide(points: Tensor, fps: float, eps: float, ground: float = 0.0) -> tuple[Tensor, Tensor]:
    """Per frame step of ``points`` (F, P, 3): (the summed horizontal speed of the points within ``eps`` of the ground
    at both ends (F - 1,), how many there are (F - 1,)). ``foot_skating`` and ``check``'s FootSkating rule share it."""
    y = points[..., 1] - ground
    contact = (y[:-1] < eps) & (y[1:] < eps)  # (F - 1, P)
    step = (points[1:, :, [0, 2]] - points[:-1, :, [0, 2]]).norm(dim=-1) * fps  # (F - 1, P)
    return (step * contact).sum(-1), contact.sum(-1)


def skating_per_frame(points: Tensor, fps: float, eps: float, height: float, ground: float = 0.0) -> Tensor:
    """(F,) the mean horizontal speed of the points in contact over the step into each frame (heights per second; 0
    for the first frame and for steps with no contact). ``check``'s FootSkating rule and the dataset filter share it."""
    slide, n = contact_slide(points, fps, eps, ground)
    speed = torch.where(n > 0, slide / n.clamp(min=1), torch.zeros_like(slide))
    return torch.cat([torch.zeros(1, dtype=speed.dtype), speed]) / height


def foot_skating(points: Tensor, fps: float, eps: float) -> tuple[float, float]:
    """(mean horizontal speed of the points within ``eps`` of the ground at both ends of a frame step, fraction of
    frames with a contact)."""
    if len(points) < 2:
        return 0.0, float((points[..., 1] < eps).any(-1).float().mean()) if len(points) else 0.0
    slide, n = contact_slide(points, fps, eps)
    speed = float(slide.sum() / n.sum()) if n.sum() else 0.0
    return speed, float((points[..., 1] < eps).any(-1).float().mean())


def main_joint(rig: Rig) -> int:
    """The first joint that is the largest influence of some vertex (the hips of a rig under a scene root), else the
    first root."""
    best = None
    for m in rig.meshes:
        owner = m.joint_indices.gather(1, m.joint_weights.argmax(1, keepdim=True))[:, 0]
        if len(owner):
            j = int(owner.min())
            best = j if best is None else min(best, j)
    return rig.roots[0] if best is None else best


def root_tilt(rig: Rig, pose: Pose) -> Tensor:
    """(F,) degrees between +Y and the main joint's rest up direction (the world +Y at rest, expressed in its frame)
    carried by the pose."""
    from usdposer.core.posing import joint_transforms
    from usdposer.types import Pose as P

    rig = rig.to(torch.float64)
    r = main_joint(rig)
    world = rig.skel_to_world @ joint_transforms(rig, pose)
    rest = rig.skel_to_world @ joint_transforms(rig, P.rest(rig))
    R0 = rest[0, r, :3, :3]
    up_local = torch.linalg.solve(R0, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    up = world[:, r, :3, :3] @ up_local
    up = up / up.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return torch.rad2deg(torch.acos(up[:, 1].clamp(-1.0, 1.0)))


def motion_metrics(rig: Rig, clip: Clip, reference: Clip | None = None, *, contact_eps: float = 0.02) -> MotionMetrics:
    """The metrics of the module docstring for ``clip`` (and its tracking error against ``reference``)."""
    from usdposer.core.posing import character_height, joint_transforms
    from usdposer.types import Pose

    rig = rig.to(torch.float64)
    h = character_height(rig) or 1.0
    pose = Pose(clip.rotations.double(), clip.translations.double(), clip.scales.double())
    pts = world_hull(rig, pose)
    pen = ground_penetration(pts) / h * 100
    fps = clip.fps if len(clip) > 1 else 24.0
    skate, contact = foot_skating(pts, fps, contact_eps * h)
    tilt = root_tilt(rig, pose)
    jit = jitter(rig, pose)
    main = (rig.skel_to_world @ joint_transforms(rig, pose))[:, main_joint(rig), :3, 3]  # (F, 3)
    travel = float((main[-1, [0, 2]] - main[0, [0, 2]]).norm() / h)
    sink = float((main[-1, 1] - main[0, 1]) / h * 100)
    err = err_max = drift = None
    if reference is not None:
        ref = Pose(reference.rotations.double(), reference.translations.double(), reference.scales.double())
        a = (rig.skel_to_world @ joint_transforms(rig, pose))[..., :3, 3]
        b = (rig.skel_to_world @ joint_transforms(rig, ref))[..., :3, 3]
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
        r = main_joint(rig)
        shift = b[:, r:r + 1] - a[:, r:r + 1]  # (F, 1, 3)
        d = (a + shift - b).norm(dim=-1) / h * 100  # (F, J)
        err, err_max = float(d.mean()), float(d.max())
        drift = float(shift[:, 0].norm(dim=-1).mean() / h * 100)
    return MotionMetrics(frames=len(clip), penetration_mean=float(pen.mean()), penetration_max=float(pen.max()),
                         skating=skate / h, contact_fraction=contact, upright_mean=float(tilt.mean()),
                         upright_max=float(tilt.max()), jitter=jit, root_travel=travel, root_drift=sink,
                         tracking_error=err, tracking_error_max=err_max, tracking_drift=drift)


def jitter(rig: Rig, pose: Pose) -> float:
    """Mean absolute second difference of the joint rotations relative to rest, as rotation vectors (degrees per
    frame^2; module docstring). 0 for fewer than 3 frames."""
    per_frame = jitter_per_frame(rig, pose)
    return float(per_frame[1:-1].mean()) if len(per_frame) >= 3 else 0.0


def jitter_per_frame(rig: Rig, pose: Pose) -> Tensor:
    """The jitter of each frame t (mean over joints and axes of |a_{t+1} - 2 a_t + a_{t-1}|, degrees per frame^2);
    NaN at the first and last frame, which have no second difference. -> (F,) float64."""
    import math

    from usdposer.core.kinematics import decompose_trs
    from usdposer.core.rotations import quat_conjugate, quat_multiply, quat_to_axis_angle

    q = pose.rotations.double()
    out = torch.full((len(q),), float("nan"), dtype=torch.float64)
    if len(q) < 3:
        return out
    _, q_rest, _ = decompose_trs(rig.rest_local.double())
    a = quat_to_axis_angle(quat_multiply(quat_conjugate(q_rest).expand_as(q), q))  # (F, J, 3)
    out[1:-1] = (a[2:] - 2 * a[1:-1] + a[:-2]).abs().mean((1, 2)) * 180 / math.pi
    return out


def rotation_acceleration(q: Tensor) -> Tensor:
    """Per frame and joint, how abruptly the frame-to-frame rotation changes: the angle of ``d_{t+1} d_t^-1`` with
    ``d_t = q_t q_{t-1}^-1`` (degrees per frame^2; quaternions, so no wrap at 180 degrees as rotation vectors have).
    q: (F, J, 4) local rotations (w, x, y, z) -> (F, J), NaN at the first and last frame."""
    from usdposer.core.rotations import quat_angle, quat_conjugate, quat_multiply

    out = torch.full(q.shape[:-1], float("nan"), dtype=q.dtype)
    if len(q) < 3:
        return out
    d = quat_multiply(q[1:], quat_conjugate(q[:-1]))  # (F-1, J, 4)
    out[1:-1] = torch.rad2deg(quat_angle(d[1:], d[:-1]))
    return out

