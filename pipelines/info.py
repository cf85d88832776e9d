"""``usdposer info``: a summary of a UsdSkel asset (skeletons, joint tree, meshes, influences, clips, units, how the
rig was made, problems) as a dataclass, so that the CLI prints it as text or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from usdposer.pipelines._base import Progress, Result

from usdposer.errors import InputError


@dataclass
class MeshInfo:
    prim: str
    points: int
    triangles: int
    influences: int
    skinning_method: str
    texture: str | None
    blend_shapes: list[str] = field(default_factory=list)


@dataclass
class ClipInfo:
    prim: str
    frames: int
    fps: float
    seconds: float
    bound: bool
    blend_shapes: list[str] = field(default_factory=list)  # the channels it weights


@dataclass
class SkeletonInfo:
    prim: str
    joints: int
    roots: list[str]
    tree: list[str]  # joint tokens, parents before children
    parents: list[int]
    height_m: float  # rest-pose extent along +Y of the skinned points (or joints), metres
    meshes: list[MeshInfo] = field(default_factory=list)
    clips: list[ClipInfo] = field(default_factory=list)
    has_limits: bool = False
    conventions: dict = field(default_factory=dict)  # how the rig was made (usdposer.core.posespace.describe_conventions)


@dataclass
class AssetInfo(Result):
    path: str
    up_axis: str
    meters_per_unit: float
    time_codes_per_second: float
    start_time_code: float
    end_time_code: float
    skeletons: list[SkeletonInfo] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)

    @property
    def errors(self) -> list[dict]:
        return [p for p in self.problems if p["severity"] == "error"]


@dataclass(frozen=True)
class InfoOptions:
    """``skeleton``: report only this Skeleton (prim path or name); every one by default."""

    skeleton: str | None = None


def info(path: str | Path, options: InfoOptions = InfoOptions(), progress: Progress | None = None) -> AssetInfo:
    """Read ``path`` leniently (problems are collected, not raised) and summarise it."""
    from usdposer.core.posespace import describe_conventions
    from usdposer.core.posing import character_height
    from usdposer.io.read_skel import read_asset

    asset = read_asset(path, strict=False)
    info = AssetInfo(
        path=str(path), up_axis=asset.up_axis, meters_per_unit=asset.meters_per_unit,
        time_codes_per_second=asset.time_codes_per_second, start_time_code=asset.start_time_code,
        end_time_code=asset.end_time_code,
        problems=[{"severity": p.severity, "prim": p.prim, "message": p.message} for p in asset.problems],
    )
    for rig in asset.rigs:
        if options.skeleton and options.skeleton not in (rig.skeleton_path, rig.name):
            continue
        height = character_height(rig)
        info.skeletons.append(SkeletonInfo(
            prim=rig.skeleton_path, joints=rig.num_joints, roots=[rig.joints[r] for r in rig.roots],
            tree=list(rig.joints), parents=rig.parents.tolist(), height_m=height,
            meshes=[MeshInfo(m.path, m.num_points, int(m.faces.shape[0]), m.num_influences, m.skinning_method,
                             m.texture, list(m.blend_shapes)) for m in rig.meshes],
            clips=[ClipInfo(c.path, len(c), round(c.fps, 4), round(c.duration_seconds, 4),
                            asset.bound.get(rig.skeleton_path) == c.path, list(c.blend_shapes))
                   for c in asset.clips.get(rig.skeleton_path, [])],
            has_limits=rig.limits is not None, conventions=describe_conventions(rig),
        ))
    if not asset.rigs and any(p.kind == "no-joints" for p in asset.problems):  # nothing in it can be posed
        info.problems.append({"severity": "error", "prim": "/", "message": "no usable Skeleton: every Skeleton "
                              "has no joints; author their `joints` with bind and rest transforms"})
    if options.skeleton and not info.skeletons:
        raise InputError(f"{path}: no skeleton {options.skeleton!r}; choose one of "
                         f"{', '.join(r.skeleton_path for r in asset.rigs)}")
    return info
