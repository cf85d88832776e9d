"""Sparse-handle IK objectives on the pose space's 6D poses, and the damped-least-squares baseline. Pure torch.

A pose is ``six (B, J, 6)``: the pose space's canonical codes (:mod:`usdposer.core.posespace`). The objective places it
in the world the way the written pose will be placed (grounded at the reference X/Z, or at a source pose's root
heading and translation) and sums :class:`~usdposer.core.energy.Energy` terms on it:

    E(six) = w_h sum_h ||p_h(six) - target_h||^2 / height^2        handles and pins
           + w_l ||limit_residual(R_rel(six))||^2                    joint limits (when the rig has them)
           + w_g ||max(0, -y_hull(six))||^2 / height^2               ground (when the pose is not grounded)
           + w_i ||capsule_residual(six)||^2                      self-intersection proxy (rigs with meshes)

Positions are in usdposer's world: metres, +Y up (the pipelines convert stage units at the edge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from usdposer.core.energy import GROUND_POINTS, Energy, ground_residual, largest, position_residual, total_energy
from usdposer.core.limits import limit_residual, limit_violations
from usdposer.core.rotations import axis_angle_to_quat, matrix_to_6d, quat_to_matrix, sixd_to_matrix
from usdposer.errors import InputError

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

    from usdposer.types import Pose, Rig

KINDS = ("position", "pin")


@dataclass(frozen=True)
class Handle:
    """One sparse constraint as the user gives it: ``joint`` should reach ``target`` (world space, the stage's units
    and up axis) with ``weight``; ``kind="pin"`` keeps the joint where it is in the source pose (target unused)."""

    joint: str
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    weight: float = 1.0
    kind: str = "position"
    root_joint: str = ""


def parse_handle(spec: str) -> Handle:
    """``"JOINT=x,y,z[:weight]"`` -> :class:`Handle` (joint names may contain ``:``; the last ``=`` splits)."""
    if "=" not in spec:
        raise InputError(f"--handle {spec!r}: expected JOINT=x,y,z[:weight], e.g. --handle LeftHand=0.3,1.2,0.1")
    joint, rest = spec.rsplit("=", 1)
    coords, _, weight = rest.partition(":")
    try:
        xyz = tuple(float(v) for v in coords.split(","))
        w = float(weight) if weight else 1.0
    except ValueError:
        raise InputError(f"--handle {spec!r}: x,y,z and weight must be numbers, e.g. LeftHand=0.3,1.2,0.1:2") from None
    if len(xyz) != 3:
        raise InputError(f"--handle {spec!r}: the target needs three coordinates x,y,z (got {len(xyz)})")
    if not all(math.isfinite(v) for v in (*xyz, w)):
        raise InputError(f"--handle {spec!r}: target and weight must be finite numbers (got NaN or inf)")
    if w <= 0:
        raise InputError(f"--handle {spec!r}: the weight must be positive (got {w})")
    return Handle(joint.strip(), xyz, w)  # type: ignore[arg-type]


def joint_of(rig: Rig, name: str, what: str = "handle") -> int:
    """Index of a joint by token or unique leaf name, or an :class:`InputError` listing the joints."""
    try:
        return rig.joint_index(name)
    except KeyError:
        names = ", ".join(rig.joint_names[:40]) + (" ..." if rig.num_joints > 40 else "")
        raise InputError(f"{what} names unknown joint {name!r}; use a joint of {rig.skeleton_path}: {names}") from None


def chain(rig: Rig, end: int, root: int | None = None) -> list[int]:
    """Joints from ``root`` (default: the end joint's skeleton root) down to ``end``, inclusive."""
    par = rig.parents.tolist()
    path = [end]
    while par[path[-1]] >= 0 and path[-1] != root:
        path.append(par[path[-1]])
    if root is not None and path[-1] != root:
        raise InputError(f"{rig.joints[root]} is not an ancestor of {rig.joints[end]}; choose a root joint above it")
    return path[::-1]


@dataclass
class Posed:
    """A batch of placed poses: the 6D pose ``(B, J, 6)``, world joint positions ``(B, J, 3)``, joint-local rotations
    relative to rest ``(B, J, 3, 3)`` (what limits are stated in) and the heights of the ground proxy points ``(B, P)``
    (the joints' for a rig without meshes; only the ``GROUND_POINTS`` lowest of a larger hull, lowest first: the rest
    reach neither the grounding nor the ground term)."""

    six: Tensor
    positions: Tensor
    R_rel: Tensor
    hull_y: Tensor


class PoseObjective:
    """The guided-IK energy (module docstring) of one rig, callable on ``six (B, J, 6)`` -> ``(B,)``.

    Args:
        rig: the rig.
        joints: ``(H,)`` joint index of every handle and pin.
        targets: ``(H, 3)`` targets in world metres, +Y up.
        weights: ``(H,)`` handle weights.
        like: a Pose (batch 1) whose root heading and translation place every pose (no grounding); None grounds the
            pose at the reference X/Z like ``usdposer sample``.
        limit_weight, ground_weight: weights of the joint-limit and ground terms (limits from ``rig.limits``).
        intersection_weight: weight of the smooth self-intersection proxy (bone capsules, ``validate.proxy``).
    """

    def __init__(self, rig: Rig, joints: Tensor, targets: Tensor, weights: Tensor, *, like: Pose | None = None,
                 limit_weight: float = 0.1, ground_weight: float = 1.0, intersection_weight: float = 1.0):
        from usdposer.core.posespace import ride_offsets, root_heading
        from usdposer.core.posing import character_height, hull_points
        from usdposer.types import Pose

        self.rig = rig.to(torch.float64)
        self.height = character_height(self.rig) or 1.0
        self.joints, self.targets, self.weights = joints.long(), targets.double(), weights.double()
        self.hull = hull_points(self.rig, max_points=1024)
        self.bind_inv = torch.linalg.inv(self.rig.bind_world)  # (J, 4, 4)
        self.roots = self.rig.roots
        self.heading = None
        if like is not None:
            like = Pose(like.rotations[:1].double(), like.translations[:1].double(), like.scales[:1].double())
            self.heading = root_heading(self.rig, like)  # (1, R, 4) the model roots' heading
        self.like = like
        self.riding = ride_offsets(self.rig, like)  # a skeleton forest's hoof roots on their legs (None: no forest)
        self.limits = self.rig.limits
        terms = [Energy("handles", lambda s: position_residual(s.positions, self.joints, self.targets, self.weights,
                                                               self.height))]
        if self.limits is not None and torch.isfinite(self.limits).any() and limit_weight > 0:
            terms.append(Energy("limits", lambda s: largest(limit_residual(s.R_rel, self.limits), 16), limit_weight))
        if like is not None and ground_weight > 0 and len(self.hull[0]):
            terms.append(Energy("ground", lambda s: ground_residual(s.hull_y, self.height), ground_weight))
        if self.rig.meshes and intersection_weight > 0:
            from usdposer.core.proxy import CapsuleProxy

            proxy = CapsuleProxy.from_rig(self.rig)
            if len(proxy.pairs):
                terms.append(Energy("intersection", lambda s: proxy.largest(s.positions, self.height, 16),
                                    intersection_weight))
        self.terms = terms

    # ------------------------------------------------------------------------------------------- placing a pose
    def pose(self, six: Float[Tensor, "B J 6"]) -> Posed:
        """Place a batch of 6D poses in the world (differentiable)."""
        from usdposer.core.posespace import world_and_relative
        from usdposer.core.skinning import skinned_heights

        six = six.double()
        skel, rel = world_and_relative(self.rig, six, self.heading, self.like, self.riding)  # (B, J, 4, 4), (B, J, 3, 3)
        world = self.rig.skel_to_world @ skel  # (B, J, 4, 4)
        pos = world[..., :3, 3]  # (B, J, 3)
        P, I, W = self.hull
        if len(P):
            M = world @ self.bind_inv  # (B, J, 4, 4) bind-pose skeleton space -> posed world
            if len(P) > GROUND_POINTS:
                # only the lowest points reach the energy (the grounding's minimum, the ground term's deepest):
                # find them without a graph, then skin just those with one
                with torch.no_grad():
                    low = skinned_heights(P, I, W, M).topk(GROUND_POINTS, 1, largest=False)  # (B, k)
                hull_y = skinned_heights(P, I, W, M, low.indices) if torch.is_grad_enabled() else low.values
            else:
                hull_y = skinned_heights(P, I, W, M)  # (B, P)
        else:
            hull_y = pos[..., 1]
        if self.like is None:  # ground: lowest point at y = 0
            low = hull_y.min(1).values  # (B,)
            pos = pos - torch.stack([torch.zeros_like(low), low, torch.zeros_like(low)], -1)[:, None]
            hull_y = hull_y - low[:, None]
        return Posed(six, pos, rel, hull_y)

    def __call__(self, six: Float[Tensor, "B J 6"]) -> Float[Tensor, " B"]:
        return total_energy(self.terms, self.pose(six))

    def residuals(self, six: Float[Tensor, "B J 6"], terms: list[Energy] | None = None) -> Float[Tensor, "B R"]:
        """Every term's (default: all of them) residual times ``sqrt(weight)``, stacked: ``||residuals||^2`` is the
        energy."""
        s = self.pose(six)
        return torch.cat([math.sqrt(t.weight) * t.residual(s) for t in (self.terms if terms is None else terms)], 1)

    # ------------------------------------------------------------------------------------------- metrics
    @torch.no_grad()
    def handle_errors(self, six: Float[Tensor, "B J 6"]) -> Float[Tensor, "B H"]:
        """Distance of every handle's joint to its target, metres."""
        return (self.pose(six).positions[:, self.joints] - self.targets).norm(dim=-1)

    @torch.no_grad()
    def violations(self, six: Float[Tensor, "B J 6"], limits: Tensor | None = None) -> Tensor | None:
        """``(B, J)`` joints outside ``limits`` (default the rig's) by more than 1 degree, or None without limits."""
        lim = self.limits if limits is None else limits
        if lim is None or not torch.isfinite(lim).any():
            return None
        from usdposer.core.posespace import relative_rotations

        return limit_violations(relative_rotations(self.rig, six.double()), lim)

    def check_reachable(self, names: list[str], roots: list[int | None]) -> None:
        """Raise an :class:`InputError` for a handle farther from its chain's first joint than the chain is long."""
        from usdposer.core.posespace import IDENTITY_6D

        rest = torch.tensor(IDENTITY_6D, dtype=torch.float64).expand(1, self.rig.num_joints, 6)
        pos = self.pose(rest).positions[0]  # (J, 3) where the rest pose stands
        par = self.rig.parents.tolist()
        for h, (name, root) in enumerate(zip(names, roots)):
            path = chain(self.rig, int(self.joints[h]), root)
            length = sum(float((pos[j] - pos[par[j]]).norm()) for j in path[1:])
            slack = 0.01 * self.height
            if par[path[0]] < 0 and self.like is None:
                slack += float(pos[path[0], 1])  # a grounded root may crouch down to the ground
            dist = float((self.targets[h] - pos[path[0]]).norm())
            if dist > length + slack:
                raise InputError(
                    f"handle {name}: target is {dist:.3f} m from {self.rig.joint_names[path[0]]} but the chain "
                    f"{self.rig.joint_names[path[0]]} -> {self.rig.joint_names[path[-1]]} reaches only "
                    f"{length + slack:.3f} m; move the target closer")


def dls_ik(objective: PoseObjective, six0: Float[Tensor, "B J 6"], *, iterations: int = 100,
           damping: float = 0.05, tol: float = 1e-5) -> Float[Tensor, "B J 6"]:
    """Plain damped-least-squares IK on the handle residuals only (no prior, no limits): the baseline.

    Every joint gets an axis-angle increment ``theta`` on top of its current rotation; each iteration solves
    ``dtheta = -J^T (J J^T + lambda^2 I)^-1 r`` with ``J = dr/dtheta`` by autograd (Buss 2004).
    """
    handles = [t for t in objective.terms if t.name == "handles"]
    out = []
    for b in range(six0.shape[0]):
        R = sixd_to_matrix(six0[b:b + 1].double())  # (1, J, 3, 3)
        for _ in range(iterations):

            def residual(theta, R=R):
                dR = quat_to_matrix(axis_angle_to_quat(theta.reshape(1, -1, 3)))  # (1, J, 3, 3)
                return objective.residuals(matrix_to_6d(R @ dR), handles)[0]

            theta = torch.zeros(R.shape[1] * 3, dtype=torch.float64)
            r = residual(theta)
            if float(r.norm()) < tol:
                break
            Jm = torch.func.jacrev(residual)(theta)  # (Rr, 3J)
            A = Jm @ Jm.T + damping**2 * torch.eye(len(r), dtype=torch.float64)
            dtheta = -Jm.T @ torch.linalg.solve(A, r)
            R = R @ quat_to_matrix(axis_angle_to_quat(dtheta.reshape(1, -1, 3)))
        out.append(matrix_to_6d(R))
    return torch.cat(out).to(six0.dtype)

