"""Bone-heat weights for a rig's meshes and how close two sets of weights skin (pure torch/numpy).

The solver is :func:`usdposer.core.heat.bone_heat`; this module maps joint exclusions, gathers the meshes (all of a
Skeleton's meshes are solved as one surface, so that material splits of one body share heat and hide each other's
rays), and measures quality against existing weights.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from usdposer.errors import InputError


def select_joints(rig, patterns: Sequence[str]) -> list[int]:
    """Joint indices matching any glob in ``patterns`` (on the leaf name or the full token). A pattern that
    matches nothing raises InputError naming the joints."""
    out: set[int] = set()
    for pat in patterns:
        hit = [j for j, (tok, leaf) in enumerate(zip(rig.joints, rig.joint_names))
               if fnmatch.fnmatchcase(leaf, pat) or fnmatch.fnmatchcase(tok, pat)]
        if not hit:
            raise InputError(f"--exclude {pat!r} matches no joint; known joints: {', '.join(rig.joint_names)}")
        out.update(hit)
    return sorted(out)


def heat_weights(rig, points: Sequence[np.ndarray], faces: Sequence[np.ndarray], *, influences: int = 4,
                 exclude: Sequence[int] = (), backend: str = "warp"):
    """Bone-heat weights for several meshes of one rig solved as one surface.

    Args:
        points: per mesh (V_m, 3) bind-pose points in skeleton space (metres), as ``Mesh.points``.
        faces: per mesh (F_m, 3) triangles.
        exclude: joint indices that must carry no weight.
    Returns:
        (indices per mesh (V_m, K), weights per mesh (V_m, K), the combined :class:`HeatResult`).
    """
    from usdposer.core.geometry import concat_meshes
    from usdposer.core.heat import bone_heat

    P, F, offsets = concat_meshes(points, faces)
    joint_pos = rig.bind_world[:, :3, 3].double().cpu().numpy()
    parents = rig.parents.cpu().numpy()
    axes = rig.bind_world[:, :3, 1].double().cpu().numpy()
    res = bone_heat(P, F, parents, joint_pos, influences=influences, exclude=exclude, axes=axes, backend=backend)
    idx = [res.indices[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    w = [res.weights[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    return idx, w, res


def with_weights(rig, indices: Sequence[np.ndarray], weights: Sequence[np.ndarray]):
    """``rig`` with its meshes' influences replaced (same mesh order)."""
    meshes = tuple(replace(m, joint_indices=torch.from_numpy(np.asarray(i, np.int64)),
                           joint_weights=torch.from_numpy(np.asarray(w, np.float64)).to(m.joint_weights.dtype))
                   for m, i, w in zip(rig.meshes, indices, weights))
    return replace(rig, meshes=meshes)


CHUNK_POINTS = 1_000_000  # skinned points per batch of frames: a studio mesh's clip skinned at once peaked at 4 GB


def weight_quality(rig, other, clips: Sequence, max_frames: int = 400) -> dict:
    """How close ``other``'s weights are to ``rig``'s (same meshes): mean per-vertex L1 distance of the dense weight
    vectors (0 same, 2 disjoint), and the RMSE of the skinned vertices over ``clips`` (at most ``max_frames`` frames,
    evenly picked) in % of the rest height. A vertex of ``other`` with no weight at all stays at its bind position, as
    under a DCC's armature deformer (Blender's Automatic Weights leaves such vertices where bone heat fails)."""
    from usdposer.core.heat import dense_weights
    from usdposer.core.posing import character_height, skin

    J = rig.num_joints
    l1 = np.concatenate([
        np.abs(dense_weights(a.joint_indices.numpy(), a.joint_weights.double().numpy(), J)
               - dense_weights(b.joint_indices.numpy(), b.joint_weights.double().numpy(), J)).sum(1)
        for a, b in zip(rig.meshes, other.meshes)])
    out = {"l1": float(l1.mean()) if len(l1) else 0.0, "rmse_pct": None, "frames": 0}
    frames = sum(len(c) for c in clips)
    if frames:
        from usdposer.types import Pose

        step = max(1, -(-frames // max_frames))
        per = max(1, CHUNK_POINTS // max(1, rig.num_points))  # frames skinned at once
        sq, n = 0.0, 0
        for c in clips:
            for sel in torch.arange(0, len(c), step).split(per):
                pose = Pose(c.rotations[sel], c.translations[sel], c.scales[sel])
                for m, a, b in zip(other.meshes, skin(rig, pose), skin(other, pose)):
                    bare = m.joint_weights.sum(1) <= 0
                    b = torch.where(bare[None, :, None], m.points.to(b), b)
                    sq += float(((a - b) ** 2).sum())
                    n += a.shape[0] * a.shape[1]
        out["rmse_pct"] = 100 * (sq / max(n, 1)) ** 0.5 / max(character_height(rig), 1e-12)
        out["frames"] = int(frames)
    return out
