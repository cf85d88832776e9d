"""Forward kinematics over a kinematic tree (parents before children), and TRS (de)composition.

Column-vector convention: ``world[j] = world[parent[j]] @ local[j]`` and ``local = T @ R @ S``, which is UsdSkel's
row-vector ``scale * rotate * translate`` transposed. Pure torch; differentiable; any float dtype.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from usdposer.core.rotations import matrix_to_quat, quat_to_matrix

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor

    from usdposer.types import Pose


def compose_trs(
    t: Float[Tensor, "... 3"], q: Float[Tensor, "... 4"], s: Float[Tensor, "... 3"] | None = None
) -> Float[Tensor, "... 4 4"]:
    """``T @ R @ S`` as 4x4 matrices from translations, (w, x, y, z) quaternions and per-axis scales.

    Like ``UsdSkel.MakeTransform``, the quaternion is used as given (not renormalised), so values read from USD
    compose to exactly what USD computes.
    """
    R = quat_to_matrix(q, normalize=False)  # (..., 3, 3)
    if s is not None:
        R = R * s[..., None, :]  # scale columns: R @ diag(s)
    top = torch.cat([R, t[..., :, None]], dim=-1)  # (..., 3, 4)
    bottom = torch.zeros(*t.shape[:-1], 1, 4, dtype=t.dtype, device=t.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)  # (..., 4, 4)


def decompose_trs(
    m: Float[Tensor, "... 4 4"],
) -> tuple[Float[Tensor, "... 3"], Float[Tensor, "... 4"], Float[Tensor, "... 3"]]:
    """Inverse of :func:`compose_trs` for matrices without shear.

    A negative determinant is carried by negating all three scales (UsdSkel's convention for mirrored joints).
    """
    t = m[..., :3, 3]
    A = m[..., :3, :3]
    s = A.norm(dim=-2)  # (..., 3) column norms
    sign = torch.where(torch.linalg.det(A) < 0, -1.0, 1.0).to(A)[..., None]  # (..., 1)
    s = s * sign
    safe = torch.where(s.abs() < 1e-30, torch.ones_like(s), s)
    R = A / safe[..., None, :]  # (..., 3, 3)
    return t, matrix_to_quat(R), s


CLOSED_FORM_BACKWARD = True  # False: plain autograd through the levels everywhere (bench/ik.py --plain-fk)


@lru_cache(maxsize=256)
def _levels(parents: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """Joints grouped by depth: ((joint indices, parent indices), ...) for depth 1, 2, ..."""
    depth = []
    for j, p in enumerate(parents):
        assert p < j, f"joint {j} has parent {p}: parents must come before children"
        depth.append(0 if p < 0 else depth[p] + 1)
    levels = []
    for d in range(1, (max(depth) if depth else 0) + 1):
        idx = tuple(j for j in range(len(parents)) if depth[j] == d)
        levels.append((idx, tuple(parents[j] for j in idx)))
    return tuple(levels)


@lru_cache(maxsize=256)
def _level_plan(parents: tuple[int, ...]) -> tuple[list[int], list[tuple[list[int], list[int]]], list[int]]:
    """How :func:`forward_kinematics` walks a tree level by level: the roots, then per depth its joints and each
    one's parent's position within the previous depth's list, and the permutation that puts the concatenated
    levels back in joint order. Parents after their children fail :func:`_levels`' assertion (and are not cached)."""
    roots = [j for j, p in enumerate(parents) if p < 0]
    order, prev, steps = list(roots), {j: i for i, j in enumerate(roots)}, []
    for idx, pidx in _levels(parents):
        steps.append((list(idx), [prev[p] for p in pidx]))
        prev = {j: i for i, j in enumerate(idx)}
        order += idx
    inverse = [0] * len(order)
    for k, j in enumerate(order):
        inverse[j] = k
    return roots, steps, inverse


def forward_kinematics(
    local: Float[Tensor, "B J 4 4"], parents: Int[Tensor, " J"] | tuple[int, ...] | list[int]
) -> Float[Tensor, "B J 4 4"]:
    """Skeleton-space joint transforms from parent-relative ones.

    Joints of equal depth are composed in one batched matmul, so the cost is ``depth`` matmuls, not ``J``. Where a
    gradient is wanted and every local transform is invertible, the backward pass is :class:`_ClosedFormFK`'s: a
    handful of whole-skeleton ops instead of ``depth`` levels of them (a vmapped Jacobian, as Gauss-Newton takes in
    guided IK, runs every op of the backward once per residual row); :func:`forward_kinematics_levels` is the plain
    autograd reference it is tested against.

    Args:
        local: ``(B, J, 4, 4)`` parent-relative transforms (roots: skeleton-space).
        parents: ``(J,)`` parent index per joint, -1 for roots; ``parents[j] < j``.

    Returns:
        ``(B, J, 4, 4)`` skeleton-space transforms ``world[j] = world[parents[j]] @ local[j]``.
    """
    par = tuple(int(p) for p in (parents.tolist() if torch.is_tensor(parents) else parents))
    assert local.shape[-3:] == (len(par), 4, 4), f"local {tuple(local.shape)} vs {len(par)} joints"
    if not par:
        return local
    if CLOSED_FORM_BACKWARD and local.requires_grad and bool((torch.linalg.det(local.detach()[..., :3, :3]).abs() > 1e-12).all()):
        return _ClosedFormFK.apply(local, par)
    return forward_kinematics_levels(local, par)


def forward_kinematics_levels(local: Float[Tensor, "B J 4 4"], par: tuple[int, ...]) -> Float[Tensor, "B J 4 4"]:
    """:func:`forward_kinematics` level by level, differentiated by plain autograd (the reference). Each level reads
    only the level above it and the levels are joined once at the end, so that the backward pass moves ``depth``
    small tensors, not ``depth`` copies of the whole skeleton."""
    roots, steps, inverse = _level_plan(par)
    dev = local.device
    level = local.index_select(-3, torch.tensor(roots, device=dev))
    levels = [level]
    for idx, ppos in steps:
        level = level.index_select(-3, torch.tensor(ppos, device=dev)) @ local.index_select(-3, torch.tensor(
            idx, device=dev))  # (B, n, 4, 4)
        levels.append(level)
    return torch.cat(levels, -3).index_select(-3, torch.tensor(inverse, device=dev))


@lru_cache(maxsize=256)
def _subtrees(par: tuple[int, ...]) -> Tensor:
    """``(J, J)`` float64: ``[k, i] = 1`` where joint ``i`` is ``k`` or below it."""
    A = torch.zeros(len(par), len(par), dtype=torch.float64)
    for i in range(len(par)):
        k = i
        while k >= 0:
            A[k, i] = 1.0
            k = par[k]
    return A


class _ClosedFormFK(torch.autograd.Function):
    """Forward kinematics whose backward is closed-form. With ``G_i = G_k M_ki`` for every ``i`` at or below ``k``,
    the adjoint of ``local_k`` is ``G_p(k)^T (sum_{i in subtree(k)} dG_i G_i^T) G_k^-T``: one product per joint, one
    ``(J, J)`` subtree sum, two more products (roots: ``G_p = I``). Needs invertible transforms
    (:func:`forward_kinematics` falls back to the levels where a joint is scaled to nothing). Vmappable, so
    ``torch.func.jacrev`` batches it over residual rows."""

    generate_vmap_rule = True

    @staticmethod
    def forward(local: Tensor, par: tuple[int, ...]) -> Tensor:
        return forward_kinematics_levels(local, par)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.par = inputs[1]
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (G,) = ctx.saved_tensors  # (B, J, 4, 4)
        par = ctx.par
        eye = torch.eye(4, dtype=G.dtype, device=G.device)
        Gp = torch.where(torch.tensor([p < 0 for p in par], device=G.device)[:, None, None], eye,
                         G.index_select(-3, torch.tensor([max(p, 0) for p in par], device=G.device)))
        below = torch.einsum("ki,...ixy->...kxy", _subtrees(par).to(G), grad @ G.mT)  # (..., J, 4, 4)
        return Gp.mT @ below @ torch.linalg.inv(G).mT, None


def pose_local_transforms(pose: Pose) -> Float[Tensor, "B J 4 4"]:
    """``(B, J, 4, 4)`` local transforms of a Pose."""
    return compose_trs(pose.translations, pose.rotations, pose.scales)


def skinning_transforms(
    world: Float[Tensor, "B J 4 4"], bind_world: Float[Tensor, "J 4 4"]
) -> Float[Tensor, "B J 4 4"]:
    """``world @ inverse(bind)``: maps bind-pose skeleton-space points to posed skeleton space."""
    return world @ torch.linalg.inv(bind_world)  # (B, J, 4, 4)


def joint_positions(world: Float[Tensor, "B J 4 4"]) -> Float[Tensor, "B J 3"]:
    return world[..., :3, 3]
