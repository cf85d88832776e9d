"""What the pose-space model sees of a rig and of a pose (pure torch; no pxr, no models).

* :func:`joint_features` ``(J, F)``: per joint, the rest pose (position relative to the root and bone vector to the
  parent, both divided by the character's height; depth; child count; root flag), the mesh (skin-weighted vertex
  statistics in the joint's rest frame: weight share, mean offset, spread) and semantics (the joint name split into
  lower-case words, hashed character 3-grams in 32 buckets; left / right / centre side).
* :func:`tree_distance` ``(J, J)``: hops between joints in the skeleton tree (the attention bias's input).
* :func:`pose_to_6d` / :func:`pose_from_6d`: a pose as joint-local rotations relative to the rest pose in the 6D
  continuous representation ``(B, J, 6)``. The root keeps its tilt and loses its heading (rotation about +Y), which
  is arbitrary; translations stay at rest and the root is placed afterwards so the lowest point touches the ground.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING

import torch

from usdposer.core.kinematics import decompose_trs, forward_kinematics
from usdposer.core.rotations import (
    quat_conjugate,
    quat_multiply,
    quat_normalize,
    quat_to_6d,
    quat_to_matrix,
    sixd_to_matrix,
    sixd_to_quat,
)

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor

    from usdposer.types import Pose, Rig

NAME_BUCKETS = 32
FEATURE_DIM = 3 + 3 + 3 + 7 + NAME_BUCKETS + 3
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def name_words(name: str) -> list[str]:
    """``"mixamorig:LeftUpLeg"`` -> ``["mixamorig", "left", "up", "leg"]`` (camel case, digits and separators split)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [w for w in re.split(r"[^A-Za-z]+", spaced.lower()) if w]


def name_side(name: str) -> int:
    """-1 left, +1 right, 0 centre or unknown, from the joint name (``L_``, ``_R``, ``Left``, ``right``...)."""
    words = name_words(name)
    if "left" in words or "l" in words or re.search(r"(^|[_.\-])L($|[_.\-0-9])", name):
        return -1
    if "right" in words or "r" in words or re.search(r"(^|[_.\-])R($|[_.\-0-9])", name):
        return 1
    return 0


def name_hash(name: str, buckets: int = NAME_BUCKETS) -> Float[Tensor, " buckets"]:
    """Hashed character 3-grams of the name's words (side words removed), L2-normalised."""
    v = torch.zeros(buckets)
    for w in name_words(name):
        if w in ("left", "right", "l", "r", "mixamorig", "def", "bip", "jnt", "joint", "bone"):
            continue
        padded = f"^{w}$"
        for i in range(len(padded) - 2):
            v[zlib.crc32(padded[i:i + 3].encode()) % buckets] += 1.0
    n = v.norm()
    return v / n if n > 0 else v


def tree_distance(parents: Int[Tensor, " J"]) -> Int[Tensor, "J J"]:
    """Number of edges on the tree path between every pair of joints (separate roots: J)."""
    J = len(parents)
    par = parents.tolist()
    depth = [0] * J
    root = list(range(J))
    for j, p in enumerate(par):
        if p >= 0:
            depth[j], root[j] = depth[p] + 1, root[p]
    D = torch.full((J, J), J, dtype=torch.long)
    for a in range(J):
        # walk a's ancestors with their distance
        anc = {}
        x, d = a, 0
        while x >= 0:
            anc[x] = d
            x, d = par[x], d + 1
        for b in range(J):
            if root[a] != root[b]:
                continue
            y, e = b, 0
            while y not in anc:
                y, e = par[y], e + 1
            D[a, b] = anc[y] + e
    return D


def joint_features(rig: Rig, height: float | None = None) -> Float[Tensor, "J F"]:
    """Per-joint conditioning features (see the module docstring), float32."""
    from usdposer.posing import character_height

    J = rig.num_joints
    rest_world = forward_kinematics(rig.rest_local.double()[None], rig.parents)[0]  # (J, 4, 4)
    h = height or character_height(rig) or float(rest_world[:, 1, 3].max() - rest_world[:, 1, 3].min()) or 1.0
    pos = rest_world[:, :3, 3]
    origin = pos[rig.roots[0]]
    par = rig.parents.tolist()
    bone = torch.stack([pos[j] - pos[p] if p >= 0 else torch.zeros(3, dtype=pos.dtype) for j, p in enumerate(par)])
    depth = torch.zeros(J)
    children = torch.zeros(J)
    for j, p in enumerate(par):
        if p >= 0:
            depth[j] = depth[p] + 1
            children[p] += 1
    topo = torch.stack([depth / 10.0, children / 4.0, (rig.parents < 0).float()], 1)
    mesh = torch.zeros(J, 7)
    total = 0.0
    # points in each joint's bind frame (the frame the skin was made in; equal to rest for most rigs)
    inv_bind = torch.linalg.inv(rig.bind_world.double())  # (J, 4, 4)
    for m in rig.meshes:
        w = torch.zeros(m.points.shape[0], J, dtype=torch.float64)
        w.scatter_add_(1, m.joint_indices.long(), m.joint_weights.double())
        local = torch.einsum("jab,vb->vja", inv_bind[:, :3, :3], m.points.double()) + inv_bind[:, :3, 3]  # (V,J,3)
        ws = w.sum(0)  # (J,)
        mean = (w[..., None] * local).sum(0) / ws.clamp(min=1e-9)[:, None]
        var = (w[..., None] * (local - mean) ** 2).sum(0) / ws.clamp(min=1e-9)[:, None]
        mesh[:, 0] += ws.float()
        mesh[:, 1:4] += (ws[:, None] * mean).float()
        mesh[:, 4:7] += (ws[:, None] * var.sqrt()).float()
        total += float(m.points.shape[0])
    if total > 0:
        ws = mesh[:, :1].clamp(min=1e-9)
        mesh[:, 1:7] = mesh[:, 1:7] / ws / h
        mesh[:, 0] = mesh[:, 0] / total * 10.0
    names = rig.joint_names
    sem = torch.stack([name_hash(n) for n in names])
    side = torch.zeros(J, 3)
    for j, n in enumerate(names):
        side[j, name_side(n) + 1] = 1.0
    return torch.cat([((pos - origin) / h).float(), (bone / h).float(), topo, mesh, sem, side], 1)


def _heading_free(q: Float[Tensor, "B 4"]) -> Float[Tensor, "B 4"]:
    """Remove the twist about +Y (the heading) from world-space rotations (swing-twist decomposition)."""
    twist = torch.zeros_like(q)
    twist[:, 0], twist[:, 2] = q[:, 0], q[:, 2]
    n = twist.norm(dim=-1, keepdim=True)
    twist = torch.where(n > 1e-9, twist / n.clamp(min=1e-12), torch.tensor([1.0, 0, 0, 0], dtype=q.dtype))
    return quat_multiply(quat_conjugate(twist), q)


def pose_to_6d(rig: Rig, pose: Pose, canonical_heading: bool = True) -> Float[Tensor, "B J 6"]:
    """Joint-local rotations relative to rest, as 6D (identity = ``IDENTITY_6D``); root heading removed."""
    _, q_rest, _ = decompose_trs(rig.rest_local.to(pose.rotations))
    q = quat_normalize(pose.rotations).clone()
    if canonical_heading:
        for r in rig.roots:
            # the root's skeleton-space rotation without its heading, then relative to rest again
            q[:, r] = _heading_free(quat_multiply(q[:, r], quat_conjugate(q_rest[r]).expand(len(q), 4)))
            q[:, r] = quat_multiply(q[:, r], q_rest[r].expand(len(q), 4))
    rel = quat_multiply(quat_conjugate(q_rest).expand_as(q), q)
    return quat_to_6d(rel)


def root_heading(rig: Rig, pose: Pose) -> Float[Tensor, "B R 4"]:
    """The heading (rotation about +Y) of every root relative to its rest rotation: what :func:`pose_to_6d` removes."""
    _, q_rest, _ = decompose_trs(rig.rest_local.to(pose.rotations))
    q = quat_normalize(pose.rotations)
    out = []
    for r in rig.roots:
        rel = quat_multiply(q[:, r], quat_conjugate(q_rest[r]).expand(len(q), 4))  # (B, 4) skeleton space
        out.append(quat_multiply(rel, quat_conjugate(_heading_free(rel))))  # twist = rel * free^-1
    return torch.stack(out, 1)  # (B, R, 4)


def pose_from_6d(rig: Rig, six: Float[Tensor, "B J 6"], ground: bool = True, like: Pose | None = None) -> Pose:
    """Inverse of :func:`pose_to_6d`: rest translations and scales, the root placed at its rest position in X/Z with
    the lowest skinned point (or joint, for a rig without meshes) on the ground plane y = 0 when ``ground``.

    ``like`` (a Pose of batch 1 or B) gives the roots back their heading and translation instead (no grounding): a
    pose taken out of an animation returns to where it was.
    """
    from usdposer.types import Pose

    _, q_rest, _ = decompose_trs(rig.rest_local.to(six))
    q = quat_multiply(q_rest.expand(six.shape[0], -1, -1), sixd_to_quat(six))
    pose = Pose.from_rotations(rig, q)
    if like is None:
        return place_on_ground(rig, pose) if ground else pose
    heading = root_heading(rig, like).to(six).expand(six.shape[0], -1, -1)  # (B, R, 4)
    q, t = q.clone(), pose.translations.clone()
    for k, r in enumerate(rig.roots):
        q[:, r] = quat_multiply(heading[:, k], q[:, r])
        t[:, r] = like.translations[:, r].to(six)
    return Pose(q, t, pose.scales)


def local_from_6d(rig: Rig, six: Float[Tensor, "B J 6"]) -> Float[Tensor, "B J 4 4"]:
    """Differentiable local transforms of :func:`pose_from_6d` (rest translations and scales, no grounding), built
    from matrices so that gradients never pass through a matrix-to-quaternion branch."""
    t_rest, q_rest, s_rest = decompose_trs(rig.rest_local.to(six))
    R_rest = quat_to_matrix(q_rest)  # (J, 3, 3)
    R = R_rest @ sixd_to_matrix(six) * s_rest[:, None, :]  # (B, J, 3, 3) R_rest R_rel diag(s)
    top = torch.cat([R, t_rest.expand(six.shape[0], -1, -1)[..., None]], -1)  # (B, J, 3, 4)
    bottom = torch.zeros(*top.shape[:2], 1, 4, dtype=six.dtype, device=six.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], -2)  # (B, J, 4, 4)


def place_on_ground(rig: Rig, pose: Pose) -> Pose:
    """Shift every root so that the lowest skinned point (or joint) of each pose is at y = 0 in world space."""
    from usdposer.posing import joint_transforms, skin
    from usdposer.types import Pose

    with torch.no_grad():
        pts = skin(rig, pose, backend="torch") if rig.meshes else []
        allp = torch.cat(pts, 1) if pts else joint_transforms(rig, pose)[:, :, :3, 3]
        S = rig.skel_to_world.to(allp)
        world_y = allp @ S[1, :3] + S[1, 3]  # (B, N)
        lowest = world_y.min(1).values  # (B,)
        up_in_skel = torch.linalg.solve(S[:3, :3], torch.tensor([0.0, 1.0, 0.0], dtype=allp.dtype))
    t = pose.translations.clone()
    for r in rig.roots:
        t[:, r] = t[:, r] - lowest[:, None] * up_in_skel
    return Pose(pose.rotations, t, pose.scales)

