"""``usdposer info``: a summary of a UsdSkel asset (skeletons, joint tree, meshes, influences, clips, units,
problems) as a dataclass, so that the CLI prints it as text or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class MeshInfo:
    prim: str
    points: int
    triangles: int
    influences: int
    skinning_method: str
    texture: str | None


@dataclass
class ClipInfo:
    prim: str
    frames: int
    fps: float
    seconds: float
    bound: bool


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
    conventions: dict = field(default_factory=dict)  # how the rig was made (usdposer.rigfeatures.describe_conventions)


@dataclass
class AssetInfo:
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


def asset_info(path: str | Path) -> AssetInfo:
    """Read ``path`` leniently (problems are collected, not raised) and summarise it."""
    from usdposer.io.read_skel import read_asset
    from usdposer.posing import character_height
    from usdposer.rigfeatures import describe_conventions

    asset = read_asset(path, strict=False)
    info = AssetInfo(
        path=str(path), up_axis=asset.up_axis, meters_per_unit=asset.meters_per_unit,
        time_codes_per_second=asset.time_codes_per_second, start_time_code=asset.start_time_code,
        end_time_code=asset.end_time_code,
        problems=[{"severity": p.severity, "prim": p.prim, "message": p.message} for p in asset.problems],
    )
    for rig in asset.rigs:
        height = character_height(rig)
        info.skeletons.append(SkeletonInfo(
            prim=rig.skeleton_path, joints=rig.num_joints, roots=[rig.joints[r] for r in rig.roots],
            tree=list(rig.joints), parents=rig.parents.tolist(), height_m=height,
            meshes=[MeshInfo(m.path, m.num_points, int(m.faces.shape[0]), m.num_influences, m.skinning_method,
                             m.texture) for m in rig.meshes],
            clips=[ClipInfo(c.path, len(c), round(c.fps, 4), round(c.duration_seconds, 4),
                            asset.bound.get(rig.skeleton_path) == c.path)
                   for c in asset.clips.get(rig.skeleton_path, [])],
            has_limits=rig.limits is not None, conventions=describe_conventions(rig),
        ))
    return info


def format_info(info: AssetInfo, tree: bool = True) -> str:
    """Human-readable summary."""
    lines = [f"{info.path}",
             f"  units: {info.meters_per_unit:g} m/unit, up {info.up_axis}, {info.time_codes_per_second:g} time codes/s, "
             f"range [{info.start_time_code:g}, {info.end_time_code:g}]"]
    if not info.skeletons:
        lines.append("  no usable skeleton")
    for s in info.skeletons:
        lines.append(f"  Skeleton {s.prim}: {s.joints} joints, {len(s.roots)} root(s), height {s.height_m:.3f} m"
                     + (", joint limits" if s.has_limits else ""))
        c = s.conventions
        if c:
            lo, hi = c["joint_frame_scale"]
            scale = f"{lo:g}" if abs(hi - lo) <= 1e-6 * max(abs(hi), 1e-12) else f"{lo:g}..{hi:g}"
            lines.append(f"    made: up from the {c['up']}; facing from {c['facing']}; joint frames scaled {scale}; "
                         f"bindTransforms in {c['bind_space']}; rest pose "
                         + (f"differs from bind (up to {c['rest_vs_bind_max_offset_pct']:g} % of the height)"
                            if c["rest_differs_from_bind"] else "= bind"))
            if c["non_deforming_joints"]:
                lines.append(f"    {c['model_joints']} joints deform or carry deforming joints; the pose space leaves "
                             f"out {len(c['non_deforming_joints'])}: " + ", ".join(c["non_deforming_joints"][:12])
                             + (" ..." if len(c["non_deforming_joints"]) > 12 else ""))
        if tree:
            for tok in s.tree:
                depth = tok.count("/")
                lines.append(f"    {'  ' * depth}{tok.rsplit('/', 1)[-1]}")
        for m in s.meshes:
            tex = f", texture {Path(m.texture).name}" if m.texture else ""
            lines.append(f"    mesh {m.prim}: {m.points} points, {m.triangles} triangles, {m.influences} influences/point"
                         f"{'' if m.skinning_method == 'classicLinear' else ', ' + m.skinning_method}{tex}")
        for c in s.clips:
            lines.append(f"    clip {c.prim}: {c.frames} frames, {c.fps:g} fps, {c.seconds:g} s{' (bound)' if c.bound else ''}")
    if info.problems:
        lines.append(f"  problems ({len(info.problems)}):")
        lines += [f"    {p['severity']}: {p['prim']}: {p['message']}" for p in info.problems]
    return "\n".join(lines)
