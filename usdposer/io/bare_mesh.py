"""Meshes without a skeleton, for ``usdposer rig``: USD Mesh prims, glTF/GLB meshes (static, or skinned ones taken at
rest with their skeleton dropped), OBJ / PLY / STL / OFF through trimesh.

Every reader returns a :class:`BareMeshes`: the meshes' points in the file's own frame and units (world space:
prim and node transforms applied), their triangles, uvs and materials, and the file's up axis and metres per unit
when the format says them (USD's stage metadata; glTF is +Y up in metres by its specification; OBJ/PLY/STL say
nothing, so their up axis is inferred unless ``--up`` is given). The facing is never taken from the format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usdposer.errors import InputError
from usdposer.io.rig_stage import MaterialData, MeshData

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off")
USD_SUFFIXES = (".usd", ".usda", ".usdc", ".usdz")
GLTF_SUFFIXES = (".gltf", ".glb")
MAX_COORDINATE = 1e9  # float32 kernels and grids lose the shape far beyond this


@dataclass
class BareMeshes:
    """Meshes in the file's frame: ``meshes`` (``MeshData`` with ``indices`` None, points world space in file units),
    ``materials``; ``up_axis`` ("Y", "Z") and ``forward`` when the format fixes them, else None (glTF's
    specification says +Z forward, but files do not keep to it: CesiumMan faces +X, so the facing is inferred);
    ``meters_per_unit``; ``dropped_skeletons``: skeletons of a rigged input that were left out."""

    name: str
    meshes: list[MeshData]
    materials: list[MaterialData] = field(default_factory=list)
    up_axis: str | None = None
    forward: str | None = None
    meters_per_unit: float = 1.0
    dropped_skeletons: int = 0

    def combined(self) -> tuple[np.ndarray, np.ndarray]:
        """(points (V, 3), faces (F, 3)) of every mesh as one surface."""
        from usdposer.core.geometry import concat_meshes

        P, F, _ = concat_meshes([m.points for m in self.meshes], [m.faces for m in self.meshes])
        return P, F


def read_bare(path: str | os.PathLike) -> BareMeshes:
    """Read the meshes of ``path`` (by extension). Raises InputError for an unreadable file or one with no
    triangles."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such file")
    suffix = p.suffix.lower()
    if suffix in USD_SUFFIXES:
        out = _read_usd(p)
    elif suffix in GLTF_SUFFIXES:
        out = _read_gltf(p)
    elif suffix in MESH_SUFFIXES:
        out = _read_trimesh(p)
    else:
        raise InputError(f"{path}: unsupported mesh format {suffix or '(none)'}; give USD, glTF/GLB, OBJ, PLY, STL "
                         "or OFF")
    out.meshes = [m for m in out.meshes if len(m.faces)]
    if not out.meshes:
        raise InputError(f"{path}: no triangles in the file; give a mesh with faces")
    P, F = out.combined()
    if not np.isfinite(P).all():
        raise InputError(f"{path}: mesh points are NaN or infinite; repair the mesh")
    if np.abs(P).max() > MAX_COORDINATE:
        raise InputError(f"{path}: mesh coordinates reach {np.abs(P).max():.3g}, beyond {MAX_COORDINATE:.0e} units; "
                         "rescale the mesh (any unit works, but not astronomical numbers)")
    area = 0.5 * np.linalg.norm(np.cross(P[F[:, 1]] - P[F[:, 0]], P[F[:, 2]] - P[F[:, 0]]), axis=1).sum()
    if not area > 0:
        raise InputError(f"{path}: the mesh has zero area (every triangle is degenerate); give a mesh with a surface")
    return out


def _read_usd(p: Path) -> BareMeshes:
    from pxr import Usd, UsdGeom

    from usdposer.io.read_mesh import _read_look, face_looks, left_wound, triangulate
    from usdposer.io.stage import gf_to_np, open_stage, stage_units
    from usdposer.io.texture import UDIM, file_name, read_bytes, readable

    stage = open_stage(p)
    mpu, up = stage_units(stage)
    cache = UsdGeom.XformCache(Usd.TimeCode.Default())
    meshes, materials, textures = [], [], {}

    def material(name, texture, color, sampler) -> int:
        """The index of the MaterialData for this look (each image, each colour, read once)."""
        textured = bool(texture) and UDIM not in texture and readable(texture)  # packaged (USDZ) ones too
        key = (texture, sampler) if textured else (None, tuple(round(c, 4) for c in color))
        if key not in textures:
            data = read_bytes(texture) if textured else None
            textures[key] = len(materials)
            materials.append(MaterialData(name=f"{name}_look", color=sampler.tint[0] if data else color,
                                          roughness=0.8, metallic=0.0, texture=data,
                                          texture_name=file_name(texture) if data else "", bias=sampler.tint[1],
                                          uv_transform=sampler.uv_transform if data else None, wrap=sampler.wrap,
                                          color_space=sampler.color_space))
        return textures[key]

    for prim in stage.Traverse(Usd.TraverseInstanceProxies()):
        if not prim.IsA(UsdGeom.Mesh) or UsdGeom.Imageable(prim).ComputeVisibility() == UsdGeom.Tokens.invisible:
            continue
        m = UsdGeom.Mesh(prim)
        pts = m.GetPointsAttr().Get()
        counts, idx = m.GetFaceVertexCountsAttr().Get(), m.GetFaceVertexIndicesAttr().Get()
        if pts is None or counts is None or idx is None or not len(pts):
            continue
        P = np.asarray(pts, dtype=np.float64)
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(P)):
            raise InputError(f"{p}: {prim.GetPath()} has face indices outside its {len(P)} points; repair the mesh")
        M = gf_to_np(cache.GetLocalToWorldTransform(prim))  # column vectors
        P = P @ M[:3, :3].T + M[:3, 3]
        reverse = left_wound(prim, M)
        counts = np.asarray(counts)
        uvs, corners, texture, color, sampler = _read_look(prim, len(P), counts, reverse)
        subsets = [(f.name, f.faces.numpy(), material(f.name, f.texture, f.color, f.sampler))
                   for f in face_looks(prim, counts, color)]  # per-face materials, kept as GeomSubsets
        meshes.append(MeshData(name=prim.GetName(), points=P, faces=triangulate(counts, idx, reverse),
                               uvs=None if uvs is None else uvs.numpy(),
                               material=material(prim.GetName(), texture, color, sampler),
                               corner_uvs=None if corners is None else corners.numpy(), subsets=subsets))
    return BareMeshes(p.stem, meshes, materials, up_axis=up, meters_per_unit=mpu)


def _read_gltf(p: Path) -> BareMeshes:
    from usdposer.io.gltf_import import gltf_to_rig

    rig = gltf_to_rig(p)
    skinned = [m for m in rig.meshes if m.indices is not None]
    if skinned:
        return _read_rigged_gltf(p, rig)
    meshes = []
    for m in rig.meshes:
        M = m.transform if m.transform is not None else np.eye(4)
        pts = np.asarray(m.points, np.float64) @ M[:3, :3].T + M[:3, 3]
        meshes.append(MeshData(name=m.name, points=pts, faces=m.faces, uvs=m.uvs, colors=m.colors, material=m.material))
    return BareMeshes(p.stem, meshes, rig.materials, up_axis="Y", meters_per_unit=1.0)


def _read_rigged_gltf(p: Path, data) -> BareMeshes:
    """A glTF that has skins (``data``, already parsed): its skinned meshes in their bind pose (written as the
    importer writes them, read back and skinned in the reference pose; a glTF's rest may be a frame of an animation),
    skeleton dropped."""
    import tempfile

    from usdposer.core.posespace import reference_world
    from usdposer.io.read_skel import read_asset
    from usdposer.io.rig_stage import write_rig_stage

    with tempfile.TemporaryDirectory() as tmp:
        usd = Path(tmp) / f"{p.stem}.usdc"
        write_rig_stage(data, usd, sources=[p])
        rig = read_asset(usd, strict=False).rig(None)
    _, rest = reference_world(rig)
    meshes = []
    by_name = {m.name: m for m in data.meshes}
    for m, pts in zip(rig.meshes, rest):
        src = by_name.get(m.path.rsplit("/", 1)[-1])
        meshes.append(MeshData(name=m.path.rsplit("/", 1)[-1], points=pts.numpy(),
                               faces=m.faces.numpy(), uvs=None if m.uvs is None else m.uvs.numpy(),
                               material=src.material if src is not None else None))
    return BareMeshes(p.stem, meshes, data.materials, up_axis="Y", meters_per_unit=1.0,
                      dropped_skeletons=len(data.skeletons))


def _read_trimesh(p: Path) -> BareMeshes:
    import trimesh

    try:
        scene = trimesh.load(str(p), force="scene", process=False)
    except Exception as e:  # trimesh raises many types for a bad file
        raise InputError(f"{p}: cannot read the mesh ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                         "give a valid OBJ, PLY, STL or OFF file") from None
    meshes, materials = [], []
    for i, geom in enumerate(scene.dump(concatenate=False) if isinstance(scene, trimesh.Scene) else [scene]):
        if not isinstance(geom, trimesh.Trimesh) or not len(geom.faces):
            continue
        name = geom.metadata.get("name") or f"{p.stem}_{i}"
        uvs = None
        material = None
        vis = getattr(geom, "visual", None)
        if vis is not None and getattr(vis, "kind", None) == "texture" and getattr(vis, "uv", None) is not None:
            uvs = np.asarray(vis.uv, np.float64)
            img = getattr(getattr(vis, "material", None), "image", None)
            if img is not None:
                import io

                buf = io.BytesIO()
                img.save(buf, format="PNG")
                materials.append(MaterialData(name=f"{name}_look", roughness=0.8, metallic=0.0, texture=buf.getvalue(),
                                              texture_name=f"{p.stem}_{len(materials)}.png"))
                material = len(materials) - 1
        meshes.append(MeshData(name=str(name), points=np.asarray(geom.vertices, np.float64),
                               faces=np.asarray(geom.faces, np.int64), uvs=uvs, material=material))
    return BareMeshes(p.stem, meshes, materials)
