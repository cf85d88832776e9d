"""``usdposer skin``: bone-heat skinning weights for the meshes of a Skeleton, written as a layer over the asset.

The algorithm is :func:`usdposer.core.heat.bone_heat`; this module gathers the meshes (all of a Skeleton's meshes are
solved as one surface, so that material splits of one body share heat and hide each other's rays), maps joint
exclusions, measures quality against existing weights, and writes the layer through ``usdposer.io.skin_layer``.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from usdposer.errors import InputError


@dataclass
class SkinReport:
    """What ``usdposer skin`` did (its ``--json`` result). Distances and errors are in % of the character's height."""

    output: str
    skeleton: str
    meshes: list[str]
    vertices: int
    joints: int
    influences: int
    weighted_joints: int
    unweighted_joints: list[str] = field(default_factory=list)  # deforming joints that received no weight
    control_joints: list[str] = field(default_factory=list)  # leaf controls outside the mesh (pole targets)
    excluded_joints: list[str] = field(default_factory=list)
    components: int = 0
    forced_components: int = 0  # components that saw no bone and took their nearest one
    invisible_vertices: int = 0
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    comparison: dict | None = None  # against the weights the meshes had (with --replace): l1, rmse_pct, frames


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
    from usdposer.core.heat import bone_heat

    offsets = np.cumsum([0] + [len(p) for p in points])
    P = np.concatenate([np.asarray(p, np.float64) for p in points])
    F = np.concatenate([np.asarray(f, np.int64) + o for f, o in zip(faces, offsets)])
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


def weight_quality(rig, other, clips: Sequence, max_frames: int = 400) -> dict:
    """How close ``other``'s weights are to ``rig``'s (same meshes): mean per-vertex L1 distance of the dense weight
    vectors (0 same, 2 disjoint), and the RMSE of the skinned vertices over ``clips`` (at most ``max_frames`` frames,
    evenly picked) in % of the rest height. A vertex of ``other`` with no weight at all stays at its bind position, as
    under a DCC's armature deformer (Blender's Automatic Weights leaves such vertices where bone heat fails)."""
    from usdposer.core.heat import dense_weights
    from usdposer.posing import character_height, skin

    J = rig.num_joints
    l1 = np.concatenate([
        np.abs(dense_weights(a.joint_indices.numpy(), a.joint_weights.double().numpy(), J)
               - dense_weights(b.joint_indices.numpy(), b.joint_weights.double().numpy(), J)).sum(1)
        for a, b in zip(rig.meshes, other.meshes)])
    out = {"l1": float(l1.mean()) if len(l1) else 0.0, "rmse_pct": None, "frames": 0}
    frames = sum(len(c) for c in clips)
    if frames:
        step = max(1, -(-frames // max_frames))
        sq, n = 0.0, 0
        for c in clips:
            sel = torch.arange(0, len(c), step)
            from usdposer.types import Pose

            pose = Pose(c.rotations[sel], c.translations[sel], c.scales[sel])
            for m, a, b in zip(other.meshes, skin(rig, pose), skin(other, pose)):
                bare = m.joint_weights.sum(1) <= 0
                b = torch.where(bare[None, :, None], m.points.to(b), b)
                sq += float(((a - b) ** 2).sum())
                n += a.shape[0] * a.shape[1]
        out["rmse_pct"] = 100 * (sq / max(n, 1)) ** 0.5 / max(character_height(rig), 1e-12)
        out["frames"] = int(frames)
    return out


def skin_asset(asset: str | os.PathLike, out: str | os.PathLike, *, influences: int = 4, exclude: Sequence[str] = (),
               replace_weights: bool = False, meshes: Sequence[str] | None = None, skeleton: str | None = None,
               backend: str = "warp", arguments: Sequence[str] | None = None) -> SkinReport:
    """Compute bone-heat weights for the meshes of ``asset``'s Skeleton that have none (every mesh with
    ``replace_weights``) and write them as a layer over the asset at ``out``. With ``replace_weights`` the report
    compares the new weights with the old ones (:func:`weight_quality`)."""
    from usdposer.io.read_skel import read_asset
    from usdposer.io.skin_layer import meshes_to_skin, write_skin_layer
    from usdposer.io.stage import open_stage
    from usdposer.io.write_skel import provenance

    if influences < 1:
        raise InputError(f"--influences must be at least 1, got {influences}")
    tick = time.perf_counter()
    stage = open_stage(asset)
    skel = read_asset(asset, strict=False)
    rig = skel.rig(skeleton)
    bare = meshes_to_skin(stage, rig.skeleton_path, replace=replace_weights, only=list(meshes) if meshes else None)
    if not bare:
        what = "no mesh matches --mesh" if meshes else (
            "every mesh already has weights (pass --replace to recompute them)" if not replace_weights
            else "no Mesh prims under its SkelRoot")
        raise InputError(f"{asset}: nothing to skin for {rig.skeleton_path}: {what}")
    excluded = select_joints(rig, exclude)
    idx, w, res = heat_weights(rig, [m.points for m in bare], [m.faces for m in bare], influences=influences,
                               exclude=excluded, backend=backend)
    report = SkinReport(
        output=str(out), skeleton=rig.skeleton_path, meshes=[m.path for m in bare], vertices=int(sum(len(m.points) for m in bare)),
        joints=rig.num_joints, influences=influences,
        weighted_joints=int(len(np.unique(res.indices[res.weights > 0]))),
        unweighted_joints=[rig.joint_names[j] for j in res.unweighted],
        control_joints=[rig.joint_names[j] for j in res.controls], excluded_joints=[rig.joint_names[j] for j in excluded],
        components=res.components, forced_components=res.forced_components, invisible_vertices=res.invisible_vertices,
        timings={k: round(v, 4) for k, v in res.stats.items()},
    )
    if replace_weights:
        by_path = {m.path: i for i, m in enumerate(rig.meshes)}
        pairs = [(by_path[b.path], k) for k, b in enumerate(bare) if b.path in by_path]
        if pairs:
            old = replace(rig, meshes=tuple(rig.meshes[i] for i, _ in pairs))
            new = with_weights(old, [idx[k] for _, k in pairs], [w[k] for _, k in pairs])
            report.comparison = weight_quality(old, new, skel.clips.get(rig.skeleton_path, []))
    prov = provenance("skin", arguments, influences=influences, method="bone-heat")
    write_skin_layer(asset, out, rig.skeleton_path, list(rig.joints), bare, idx, w, prov=prov)
    report.seconds = time.perf_counter() - tick
    return report
