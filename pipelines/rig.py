"""``usdposer rig``: auto-rigging. A template skeleton embedded into a mesh that has none (Pinocchio,
``usdposer.core.embed``), then bone-heat weights (``usdposer.core.heat``), written as a new UsdSkel asset."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from usdposer.pipelines._base import Progress, Result, preflight


@dataclass
class RigReport(Result):
    """What ``usdposer rig`` did (its ``--json`` result). Penalties are the discrete search's weighted terms summed
    over the template's reduced edges; ``orientations`` the best penalty per orientation tried; ``up_mapping`` whether
    the template's height was mapped by where both bodies' legs join or by their volume alone, ``forward_mapping`` its
    length by both bodies' fore and hind feet or by volume; ``refined_from`` the refinement's start kept (the discrete
    search's embedding or the mapped template), ``refine_energies`` the refined energy from each."""

    output: str
    template: str
    joints: list[str]
    meshes: int
    vertices: int
    orientation: str
    inferred: bool
    orientations: dict
    penalty: float
    penalties: dict
    refine: dict
    spheres: int
    grid: list[int]
    parts_ignored: int
    weighted_joints: int
    up_mapping: str = "volume"  # the template's height mapped by where the legs join ("legs") or by volume alone
    forward_mapping: str = "volume"  # its length mapped by the fore and hind feet ("feet") or by volume alone
    refined_from: str = "search"  # the refinement's start kept: "search" or "template"
    refine_energies: dict = field(default_factory=dict)
    unweighted_joints: list[str] = field(default_factory=list)
    turned: bool = False  # the mesh was turned to +Y up in the output (its up axis was not +Y or +Z)
    dropped_skeletons: int = 0
    preview: str | None = None
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RigOptions:
    """``template``: a shipped template's name, a template file or a rigged asset; ``up`` / ``forward``: the mesh's
    axes (``"+Y"``, ``"-Z"`` ...; inferred when None); ``resolution``: distance-field cells along the longest side;
    ``influences``: skin weights per vertex; ``preview``: a PNG of the embedded skeleton from three sides."""

    template: str = "biped"
    up: str | None = None
    forward: str | None = None
    resolution: int = 96
    influences: int = 4
    preview: str | None = None
    backend: str = "warp"
    arguments: tuple[str, ...] = ()


def list_templates() -> list[dict]:
    """The shipped templates: name, kind, joints, description, source."""
    from usdposer.io.templates import read_template, shipped_templates

    out = []
    for name, path in shipped_templates().items():
        t = read_template(path, name)
        out.append({"name": name, "kind": t.kind, "joints": t.num_joints, "description": t.description,
                    "source": t.source, "path": str(path)})
    return out


def rig(mesh: str | os.PathLike, out: str | os.PathLike, options: RigOptions = RigOptions(),
        progress: Progress | None = None) -> RigReport:
    """``usdposer rig``: embed ``options.template`` into the meshes of ``mesh`` and skin them; write a UsdSkel asset
    at ``out`` (and the preview)."""
    preflight([mesh], out, [options.preview])
    return _rig(mesh, out, options, progress)


def _rig(mesh, out, o: RigOptions, progress) -> RigReport:
    from usdposer.core.embed import EmbedOptions, candidate_orientations, embed
    from usdposer.core.heat import bone_heat
    from usdposer.io.bare_mesh import read_bare
    from usdposer.io.templates import load_template

    start = tick = time.perf_counter()
    timings: dict[str, float] = {}
    template = load_template(o.template)
    bare = read_bare(mesh)
    P, F = bare.combined()
    timings["read"] = time.perf_counter() - tick
    up = o.up or (f"+{bare.up_axis}" if bare.up_axis else None)
    forward = o.forward or (bare.forward if up == "+Y" else None)
    cands = candidate_orientations(template, P, up, forward)
    e = embed(template, P, F, orientations=cands, options=EmbedOptions(resolution=o.resolution, backend=o.backend))
    timings.update(e.timings)
    R = e.facing
    up_axis = "Y" if np.allclose(R[:, 1], [0, 1, 0]) else "Z" if np.allclose(R[:, 1], [0, 0, 1]) else None
    turn = np.eye(3) if up_axis else R.T  # USD knows +Y and +Z up only: other meshes are turned to +Y up
    M = e.transforms()
    M[:, :3, :3] = turn @ M[:, :3, :3]
    M[:, :3, 3] = M[:, :3, 3] @ turn.T
    meshes = [(m, m.points @ turn.T) for m in bare.meshes]
    tick = time.perf_counter()
    mpu = bare.meters_per_unit
    allp = np.concatenate([p for _, p in meshes]) * mpu
    res = bone_heat(allp, F, template.parents, M[:, :3, 3] * mpu, influences=o.influences, axes=M[:, :3, 1],
                    backend=o.backend)
    timings["skin"] = time.perf_counter() - tick
    tick = time.perf_counter()
    _write(bare, meshes, template, M, res, out, mesh, o, e, up_axis or "Y")
    timings["write"] = time.perf_counter() - tick
    report = RigReport(
        output=str(out), template=template.name, joints=list(template.names), meshes=len(bare.meshes),
        vertices=int(len(P)), orientation=e.orientation, inferred=len(cands) > 1, orientations=e.facings,
        penalty=round(e.penalty, 4), penalties=e.penalties, refine=e.refine, spheres=e.spheres, grid=list(e.grid),
        parts_ignored=e.parts_ignored, up_mapping=e.up_mapping, forward_mapping=e.forward_mapping,
        refined_from=e.refined_from, refine_energies=e.refine_energies,
        weighted_joints=int(len(np.unique(res.indices[res.weights > 0]))),
        unweighted_joints=[template.names[j] for j in res.unweighted], turned=up_axis is None,
        dropped_skeletons=bare.dropped_skeletons, timings={k: round(v, 3) for k, v in timings.items()})
    if o.preview:
        from usdposer.io.read_skel import read_asset
        from usdposer.render.preview import three_views

        report.preview = str(three_views(read_asset(out, strict=False).rig(None), o.preview))
    report.seconds = time.perf_counter() - start
    return report


def _write(bare, meshes, template, M: np.ndarray, res, out, source, o: RigOptions, e, up_axis: str) -> None:
    """Author the rigged asset: one Skeleton (the template's joint names, rest = bind = the embedded pose), the
    meshes skinned to it, the materials kept."""
    from dataclasses import replace

    from usdposer.io.rig_stage import RigData, SkeletonData, write_rig_stage

    skel = SkeletonData(tokens=template.tokens(), rest_local=template.local_transforms(M), bind_world=M,
                        custom={"usdposer:rig": {"template": template.name, "orientation": e.orientation}})
    offsets = np.cumsum([0] + [len(p) for _, p in meshes])
    skinned = [replace(m, points=p, indices=res.indices[a:b], weights=res.weights[a:b], skeleton=0, transform=None)
               for (m, p), a, b in zip(meshes, offsets[:-1], offsets[1:])]
    data = RigData(name=bare.name, skeletons=[skel], meshes=skinned, materials=bare.materials, up_axis=up_axis,
                   meters_per_unit=bare.meters_per_unit)
    write_rig_stage(data, out, sources=[source], verb="rig", arguments=list(o.arguments), template=template.name,
                    orientation=e.orientation, penalty=round(e.penalty, 4))

