"""Rig + Pose -> joint transforms and skinned points (the glue every verb uses; pure torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from usdposer.core.kinematics import forward_kinematics, pose_local_transforms, skinning_transforms
from usdposer.core.skinning import linear_blend_skinning, skin_vectors

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

    from usdposer.types import Pose, Rig

    BlendWeights = tuple[tuple[str, ...], Float[Tensor, "B S"]]  # blend-shape channel tokens, weights per pose


def joint_transforms(rig: Rig, pose: Pose) -> Float[Tensor, "B J 4 4"]:
    """Skeleton-space joint transforms of every pose in the batch."""
    return forward_kinematics(pose_local_transforms(pose), rig.parents)


def skin(rig: Rig, pose: Pose, backend: str = "auto", shapes: BlendWeights | None = None) -> list[Float[Tensor, "B V 3"]]:
    """Skinned points of every mesh of ``rig`` for every pose, in skeleton space (metres); with ``shapes`` (the
    blend-shape weights of each pose), each mesh's blend shapes are added before skinning, as UsdSkel does."""
    S = skinning_transforms(joint_transforms(rig, pose), rig.bind_world.to(pose.rotations))
    out = []
    for m in rig.meshes:
        P = linear_blend_skinning(m.points.to(S), m.joint_indices, m.joint_weights.to(S), S, backend=backend)
        D = blend_displacements(m, shapes) if shapes is not None else None
        out.append(P if D is None else P + skin_vectors(D.to(S), m.joint_indices, m.joint_weights.to(S), S))
    return out


def blend_displacements(mesh, shapes: BlendWeights) -> Float[Tensor, "B V 3"] | None:
    """Bind-pose displacements (B, V, 3) of ``mesh``'s blend shapes under ``shapes``' weights (channels matched by
    token; a channel the weights do not name stays 0), or None where none applies. No inbetweens (``info`` says so)."""
    names, W = shapes
    cols = {t: k for k, t in enumerate(names)}
    used = [(cols[t], off) for t, off in zip(mesh.blend_shapes, mesh.blend_offsets) if t in cols]
    if not used:
        return None
    D = torch.zeros(W.shape[0], mesh.num_points, 3, dtype=torch.float64)
    for k, (index, offsets) in used:
        D[:, index] += W[:, k, None, None].double() * offsets[None].double()
    return D


def character_height(rig: Rig) -> float:
    """Extent along +Y of the rest-pose skinned points (or of the rest joints for a rig without meshes), metres."""
    from usdposer.types import Pose

    pose = Pose.rest(rig)
    pts = [p[0] for p in skin(rig, pose, backend="torch")] or [joint_transforms(rig, pose)[0, :, :3, 3]]
    allp = torch.cat(pts)
    return float(allp[:, 1].max() - allp[:, 1].min()) if len(allp) else 0.0


def hull_points(rig: Rig, max_points: int = 4096) -> tuple[Float[Tensor, "P 3"], Tensor, Float[Tensor, "P K"]]:
    """A small set of skinned points that contains the extremes of the mesh in any pose (for the ground): for every
    joint, the convex-hull vertices of the bind-pose points it dominates. Returns (points, joint indices, weights)
    ready for :func:`linear_blend_skinning`; empty for a rig without meshes. Over ``max_points``, a fixed subsample."""
    import numpy as np
    from scipy.spatial import ConvexHull, QhullError

    pts, idx, wts = [], [], []
    K = max((m.num_influences for m in rig.meshes), default=1)
    for m in rig.meshes:
        P = m.points.double().numpy()
        dominant = m.joint_indices.gather(1, m.joint_weights.argmax(1, keepdim=True))[:, 0].numpy()
        keep = []
        for j in np.unique(dominant):
            sel = np.nonzero(dominant == j)[0]
            if len(sel) > 8:
                try:
                    sel = sel[ConvexHull(P[sel]).vertices]
                except (QhullError, ValueError):
                    pass  # flat or degenerate part: keep all of its points
            keep.append(sel)
        keep = torch.from_numpy(np.concatenate(keep)) if keep else torch.zeros(0, dtype=torch.long)
        pad = K - m.num_influences
        pts.append(m.points[keep].double())
        idx.append(torch.nn.functional.pad(m.joint_indices[keep].long(), (0, pad)))
        wts.append(torch.nn.functional.pad(m.joint_weights[keep].double(), (0, pad)))
    if not pts:
        return torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, 1, dtype=torch.float64)
    P, I, W = torch.cat(pts), torch.cat(idx), torch.cat(wts)
    if len(P) > max_points:
        sel = torch.randperm(len(P), generator=torch.Generator().manual_seed(0))[:max_points]
        P, I, W = P[sel], I[sel], W[sel]
    return P, I, W


def rest_world(rig: Rig, pose: Pose | None = None) -> tuple[Float[Tensor, "J 4 4"], list[Float[Tensor, "V 3"]]]:
    """The rig at rest (or in ``pose``, batch 1) in its (converted) world: joint transforms (J, 4, 4) and every
    mesh's skinned points (V_m, 3), float64 (what a mesh looks like when its skeleton is taken away). The bind pose, the
    one a mesh was modelled in: :func:`usdposer.core.posespace.reference_world`."""
    from usdposer.types import Pose

    rig = rig.to(torch.float64)
    if pose is None:
        pose = Pose.rest(rig)
    else:
        pose = Pose(pose.rotations.double(), pose.translations.double(), pose.scales.double())
    S = rig.skel_to_world
    with torch.no_grad():
        X = S @ joint_transforms(rig, pose)[0]
        pts = [p[0] @ S[:3, :3].T + S[:3, 3] for p in skin(rig, pose, backend="torch")]
    return X, pts


def tree_roots(rig: Rig) -> list[int]:
    """The root of each joint's tree (a skeleton may be a forest)."""
    return roots_of(rig.parents.tolist())


def roots_of(parents: list[int]) -> list[int]:
    """The root of each joint's tree, given parent indices that come before their children."""
    top = []
    for j, p in enumerate(parents):
        top.append(j if p < 0 else top[p])
    return top


def main_root(rig: Rig, top: list[int] | None = None) -> int:
    """The root of the skeleton forest's largest tree: the character's body (the other roots are IK targets, props).
    ``top``: :func:`tree_roots`, when the caller has it."""
    top = tree_roots(rig) if top is None else top
    return max(rig.roots, key=top.count)


def held_positions(G: Float[Tensor, "B J 4 4"], attached: list[tuple[int, int, Tensor]]) -> Float[Tensor, "B A 3"]:
    """Where each attached secondary root ``(root, joint, offset)`` (:func:`root_attachments`) is held by its joint in
    skeleton-space transforms ``G``: ``G_joint offset`` (differentiable)."""
    return torch.stack([G[:, j, :3, :3] @ off.to(G) + G[:, j, :3, 3] for _, j, off in attached], 1)


def attach_roots(rig: Rig, pose: Pose, attached: list[tuple[int, int, Tensor]]) -> Pose:
    """``pose`` (B frames) with every attached secondary root ``(root, joint, offset)`` (:func:`root_attachments`)
    moved to where its joint holds it (:func:`held_positions`; differentiable; the roots' rotations are kept)."""
    from usdposer.types import Pose

    if not attached:
        return pose
    held = held_positions(joint_transforms(rig, pose), attached)  # skeleton space, where a root's translation lives
    trans = pose.translations.clone()
    trans[:, [r for r, _, _ in attached]] = held
    return Pose(pose.rotations, trans, pose.scales)


def root_attachments(rig: Rig, pose: Pose, reach: float) -> list[tuple[int, int, Tensor]]:
    """Secondary roots of a skeleton forest attached to the main tree: ``(root, joint, offset (3,))`` for every root
    (except the main tree's, the one with most joints) that lies, in the rest pose, within ``reach`` x the
    character's height of a skinned joint of the main tree (the nearest; the rest pose, not ``pose``, chooses it, since a
    posed limb may pass another, a kicking hoof the tail), ``offset`` the root's position in that joint's frame in
    ``pose`` (one frame). A solved IK rig's targets sit on the limb ends they drive, so the attachment holds in every
    frame of its clips."""
    from usdposer.types import Pose

    roots = rig.roots
    if len(roots) < 2:
        return []
    top = tree_roots(rig)
    main = main_root(rig, top)
    rest = joint_transforms(rig, Pose.rest(rig))[0]
    G = joint_transforms(rig, pose)[0]  # (J, 4, 4) skeleton space
    at = rest[:, :3, 3]  # skeleton space, where the height is measured
    from usdposer.core.posespace import deforming_joints

    # the main tree's joints that carry skin: an end site or socket moves nothing (another tool may add them) and
    # would hand the root a lever of its own
    members = torch.tensor([top[j] == main for j in range(rig.num_joints)]) & deforming_joints(rig)
    h = character_height(rig) or 1.0
    out = []
    for r in roots:
        if r == main:
            continue
        d = (at - at[r]).norm(dim=-1).masked_fill(~members, float("inf"))
        j = int(d.argmin())
        if float(d[j]) <= reach * h:  # the root's origin in the joint's frame (joint frames may carry scale)
            out.append((r, j, (torch.linalg.inv(G[j]) @ G[r, :, 3])[:3]))
    return out
