"""``usdposer skin``: bone-heat skinning weights for the meshes of a Skeleton, written as a layer over the asset
(``usdposer.core.skinweights`` computes them, ``usdposer.io.skin_layer`` writes them)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from usdposer.pipelines._base import Progress, Result, preflight

from usdposer.core.skinweights import heat_weights, select_joints, weight_quality, with_weights
from usdposer.errors import InputError


@dataclass
class SkinReport(Result):
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


@dataclass(frozen=True)
class SkinOptions:
    """``influences``: weights kept per vertex; ``exclude``: joints (names or globs) that must not deform;
    ``replace_weights``: recompute meshes that have weights (and compare); ``meshes``: only these Mesh prims;
    ``arguments``: the command line, for provenance."""

    influences: int = 4
    exclude: tuple[str, ...] = ()
    replace_weights: bool = False
    meshes: tuple[str, ...] = ()
    skeleton: str | None = None
    backend: str = "warp"
    arguments: tuple[str, ...] = ()


def skin(asset: str | os.PathLike, out: str | os.PathLike, options: SkinOptions = SkinOptions(),
         progress: Progress | None = None) -> SkinReport:
    """``usdposer skin``: bone-heat weights for the meshes of ``asset``'s Skeleton that have none, as a layer over it."""
    preflight([asset], out)
    o = options
    return _skin(asset, out, influences=o.influences, exclude=o.exclude, replace_weights=o.replace_weights,
                 meshes=o.meshes or None, skeleton=o.skeleton, backend=o.backend, arguments=list(o.arguments))


def _skin(asset: str | os.PathLike, out: str | os.PathLike, *, influences: int = 4, exclude: Sequence[str] = (),
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
        every = meshes_to_skin(stage, rig.skeleton_path, replace=True, only=None)
        names = ", ".join(m.path for m in every[:5])
        what = ("it has no meshes (no Mesh prim under its SkelRoot); add the meshes to skin" if not every else
                f"no mesh matches --mesh {', '.join(meshes)} (its meshes: {names})" if meshes else
                "every mesh already has weights (pass --replace to recompute them)")
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
