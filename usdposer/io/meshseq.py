"""Mesh / point-cloud sequences for ``usdposer fit``: a USD file with time-sampled points (any PointBased prim), a
folder of OBJ/PLY/STL/OFF frames (trimesh), or a ``.npy`` array (T, P, 3). Points come back per frame in usdposer
units (metres, +Y up): USD by its own stage metadata, the others in ``meters_per_unit`` / ``up_axis`` given by the
caller (the rig's, by default)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from usdposer.errors import InputError

FRAME_EXT = (".obj", ".ply", ".stl", ".off", ".glb")


@dataclass
class MeshSequence:
    """``frames``: T arrays (P_t, 3) of points (metres, +Y up); ``faces``: T arrays (F_t, 3) or None (point clouds);
    ``time_codes``: (T,); ``source``: what it was read from."""

    frames: list[np.ndarray]
    faces: list[np.ndarray | None]
    time_codes: np.ndarray
    source: str
    time_codes_per_second: float = 24.0


def _convert(P: np.ndarray, mpu: float, up: str) -> np.ndarray:
    from usdposer.io.stage import StageUnits

    return StageUnits(mpu, up).points(P)


def read_mesh_sequence(path: str | os.PathLike, *, meters_per_unit: float = 1.0, up_axis: str = "Y",
                       prim: str | None = None) -> MeshSequence:
    """Read a sequence (module docstring). Raises InputError with the fix on anything unusable."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in FRAME_EXT)
        if not files:
            raise InputError(f"{path}: no {'/'.join(e[1:].upper() for e in FRAME_EXT)} frames in the folder")
        import trimesh

        frames, faces = [], []
        for f in files:
            try:
                geo = trimesh.load(str(f), process=False)
                if isinstance(geo, trimesh.Scene):
                    geo = geo.to_geometry()
            except Exception as exc:  # trimesh raises many types on bad files
                raise InputError(f"{f}: cannot be read as a mesh or point cloud ({exc})") from exc
            P = np.asarray(geo.vertices, np.float64)
            frames.append(_convert(P, meters_per_unit, up_axis))
            F = np.asarray(getattr(geo, "faces", np.zeros((0, 3))), np.int64)
            faces.append(F if len(F) else None)
        return _checked(MeshSequence(frames, faces, np.arange(len(files), dtype=np.float64), str(path)))
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path}: not a NumPy .npy array file ({' '.join(str(exc).split())[:120]}); save the "
                             "points with numpy.save") from None
        if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
            raise InputError(f"{path}: expected a numeric array of shape (T, P, 3); save the points with numpy.save")
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise InputError(f"{path}: expected an array of shape (T, P, 3), got {arr.shape}")
        frames = [_convert(a.astype(np.float64), meters_per_unit, up_axis) for a in arr]
        return _checked(MeshSequence(frames, [None] * len(frames), np.arange(len(frames), dtype=np.float64), str(path)))
    return _read_usd(path, prim)


def _read_usd(path: Path, prim_path: str | None) -> MeshSequence:
    from pxr import Usd, UsdGeom

    from usdposer.io.read_mesh import triangulate
    from usdposer.io.stage import open_stage, stage_units

    stage = open_stage(path)
    mpu, up = stage_units(stage)
    cands = []
    for p in stage.Traverse():
        if p.IsA(UsdGeom.PointBased) and (prim_path is None or prim_path in (str(p.GetPath()), p.GetName())):
            if UsdGeom.PointBased(p).GetPointsAttr().GetNumTimeSamples() > 1:
                cands.append(p)
    if not cands:
        raise InputError(f"{path}: no Mesh/Points prim with time-sampled points"
                         + (f" named {prim_path!r}" if prim_path else "") + "; pass a mesh sequence (--prim picks one)")
    p = cands[0]
    pb = UsdGeom.PointBased(p)
    times = pb.GetPointsAttr().GetTimeSamples()
    xfc = UsdGeom.XformCache()
    frames, faces = [], []
    F = None
    if p.IsA(UsdGeom.Mesh):
        m = UsdGeom.Mesh(p)
        F = triangulate(np.asarray(m.GetFaceVertexCountsAttr().Get() or [], np.int64),
                         np.asarray(m.GetFaceVertexIndicesAttr().Get() or [], np.int64))
    for t in times:
        xfc.SetTime(Usd.TimeCode(t))
        M = np.asarray(xfc.GetLocalToWorldTransform(p), np.float64)  # row-vector convention
        P = np.asarray(pb.GetPointsAttr().Get(t), np.float64)
        P = P @ M[:3, :3] + M[3, :3]
        frames.append(_convert(P, mpu, up))
        faces.append(F if F is not None and len(F) else None)
    return _checked(MeshSequence(frames, faces, np.asarray(times, np.float64), f"{path}:{p.GetPath()}",
                                 stage.GetTimeCodesPerSecond()))


def _checked(seq: MeshSequence) -> MeshSequence:
    for i, P in enumerate(seq.frames):
        if len(P) < 4:
            raise InputError(f"{seq.source}: frame {i} has {len(P)} points; every frame needs a surface to fit to")
        if not np.isfinite(P).all():
            raise InputError(f"{seq.source}: frame {i} has NaN or infinite points; clean the sequence first")
    return seq
