"""UsdSkel stage -> ``Rig`` and ``Clip`` objects (the only reader of skeleton data from pxr).

Every Skeleton in the stage becomes a Rig; its skinned ``UsdGeom.Mesh`` prims (found through ``UsdSkel.Cache``
bindings under each SkelRoot) become ``Mesh`` objects; every SkelAnimation whose joints all belong to the Skeleton
becomes a ``Clip`` (the bound one first). Values are converted to metres and +Y up (see ``usdposer.io.stage``).

Malformed data is reported as ``Problem`` rows; with ``strict=True`` (the default) the first error raises
``RigError`` with a one-line message that names the prim and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pxr import Usd, UsdGeom, UsdShade, UsdSkel, UsdUtils

from usdposer.core.rotations import quat_multiply, xyzw_to_wxyz
from usdposer.errors import RigError
from usdposer.io.stage import axis_matrix, gf_to_np, open_stage, stage_units
from usdposer.types import Clip, Mesh, Rig


@dataclass(frozen=True)
class Problem:
    """Something wrong or noteworthy in an asset. severity: "error" (cannot be used), "warning", "info"."""

    severity: str
    prim: str
    message: str
    code: str = ""  # "Rule.ErrorName" of the check it belongs to (usdposer.validate), "" when none

    def __str__(self) -> str:
        return f"{self.severity}: {self.prim}: {self.message}"


@dataclass
class SkelAsset:
    """Everything usdposer reads from one USD file."""

    path: str
    meters_per_unit: float
    up_axis: str
    time_codes_per_second: float
    start_time_code: float
    end_time_code: float
    default_prim: str
    rigs: list[Rig] = field(default_factory=list)
    clips: dict[str, list[Clip]] = field(default_factory=dict)  # skeleton path -> clips, bound clip first
    bound: dict[str, str] = field(default_factory=dict)  # skeleton path -> bound SkelAnimation path
    problems: list[Problem] = field(default_factory=list)
    authored_metadata: tuple[str, ...] = ()  # which of upAxis, metersPerUnit, timeCodesPerSecond the root layer sets

    def rig(self, skeleton: str | None = None) -> Rig:
        """The rig of ``skeleton`` (a prim path or name), or the only/first one."""
        if not self.rigs:
            raise RigError(f"{self.path}: no usable Skeleton; " + _first_error(self.problems))
        if skeleton is None:
            return self.rigs[0]
        for r in self.rigs:
            if skeleton in (r.skeleton_path, r.name):
                return r
        raise RigError(f"{self.path}: no Skeleton {skeleton!r}; choose one of {', '.join(r.skeleton_path for r in self.rigs)}")

    def clip(self, rig: Rig, anim: str | None = None) -> Clip:
        """The bound (or named) clip of ``rig``."""
        clips = self.clips.get(rig.skeleton_path, [])
        if not clips:
            raise RigError(f"{self.path}: Skeleton {rig.skeleton_path} has no SkelAnimation; pass a file with animation")
        if anim is None:
            return clips[0]
        for c in clips:
            if anim in (c.path, c.name):
                return c
        raise RigError(f"{self.path}: no SkelAnimation {anim!r}; choose one of {', '.join(c.path for c in clips)}")

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def _first_error(problems: list[Problem]) -> str:
    errs = [p for p in problems if p.severity == "error"]
    return str(errs[0]) if errs else "the file has no Skeleton prim"


class _Reporter:
    def __init__(self, strict: bool, path: str):
        self.strict, self.path, self.problems = strict, path, []

    def __call__(self, severity: str, prim, message: str, code: str = "") -> None:
        prim = str(prim)
        if severity == "error" and self.strict:
            raise RigError(f"{self.path}: {prim}: {message}")
        self.problems.append(Problem(severity, prim, message, code))


def read_asset(path: str | Path, strict: bool = True) -> SkelAsset:
    """Read every Skeleton, skinned Mesh and SkelAnimation of a USD file. See the module docstring."""
    stage = open_stage(path)
    return read_stage(stage, str(path), strict=strict)


def read_stage(stage: Usd.Stage, path: str = "", strict: bool = True) -> SkelAsset:
    # USD's own warnings (e.g. malformed influences) become "warning" problems instead of stderr noise
    delegate = UsdUtils.CoalescingDiagnosticDelegate()
    try:
        asset = _read_stage(stage, path, strict)
    finally:
        diagnostics = delegate.TakeUncoalescedDiagnostics()
        del delegate
    for d in diagnostics:
        msg = d.commentary.strip().splitlines()[0] if d.commentary.strip() else str(d.diagnosticCode)
        asset.problems.append(Problem("warning", "usd", msg[:300], "UsdDiagnostics.Warning"))
    return asset


def _read_stage(stage: Usd.Stage, path: str, strict: bool) -> SkelAsset:
    report = _Reporter(strict, path or stage.GetRootLayer().identifier)
    mpu, up = stage_units(stage)
    asset = SkelAsset(
        path=path, meters_per_unit=mpu, up_axis=up, time_codes_per_second=stage.GetTimeCodesPerSecond(),
        start_time_code=stage.GetStartTimeCode(), end_time_code=stage.GetEndTimeCode(),
        default_prim=str(stage.GetDefaultPrim().GetPath()) if stage.GetDefaultPrim() else "",
        authored_metadata=tuple(k for k in ("upAxis", "metersPerUnit", "timeCodesPerSecond") if stage.HasAuthoredMetadata(k)),
    )
    conv = _Conversion(mpu, up)
    cache = UsdSkel.Cache()
    prims = list(Usd.PrimRange.Stage(stage, Usd.TraverseInstanceProxies()))
    for prim in prims:
        if prim.IsA(UsdSkel.Root):
            cache.Populate(UsdSkel.Root(prim), Usd.TraverseInstanceProxies())
    skeletons = [p for p in prims if p.IsA(UsdSkel.Skeleton)]
    anims = [p for p in prims if p.IsA(UsdSkel.Animation)]
    if not skeletons:
        report("error", "/", "no Skeleton prim in the file; usdposer needs a UsdSkel asset (SkelRoot > Skeleton), "
               "or import glTF with `usdposer import`")

    # 1. skinned meshes per skeleton, from every SkelRoot's bindings
    targets: dict[str, list[UsdSkel.SkinningQuery]] = {}
    for prim in prims:
        if prim.IsA(UsdSkel.Root):
            for binding in cache.ComputeSkelBindings(UsdSkel.Root(prim), Usd.TraverseInstanceProxies()):
                targets.setdefault(str(binding.GetSkeleton().GetPrim().GetPath()), []).extend(binding.GetSkinningTargets())

    xfc = UsdGeom.XformCache(Usd.TimeCode.Default())
    for skel_prim in skeletons:
        skel = UsdSkel.Skeleton(skel_prim)
        sq = cache.GetSkelQuery(skel)
        rig = _read_rig(skel, sq, targets.get(str(skel_prim.GetPath()), []), conv, xfc, report, path)
        if rig is None:
            continue
        asset.rigs.append(rig)
        bound_anim = sq.GetAnimQuery().GetPrim() if sq and sq.GetAnimQuery() else None
        clips = []
        ordered = sorted(anims, key=lambda a: (bound_anim is None or a.GetPath() != bound_anim.GetPath()))
        for anim_prim in ordered:
            clip = _read_clip(UsdSkel.Animation(anim_prim), cache, rig, conv, report, asset)
            if clip is not None:
                clips.append(clip)
        if bound_anim is not None and clips and clips[0].path == str(bound_anim.GetPath()):
            asset.bound[rig.skeleton_path] = clips[0].path
        asset.clips[rig.skeleton_path] = clips
    asset.problems = report.problems
    return asset


class _Conversion:
    """Stage units/axis -> metres, +Y up (formulas in ``usdposer.io.stage``)."""

    def __init__(self, mpu: float, up: str):
        self.m = float(mpu)
        self.C = axis_matrix(up)
        self.D = np.diag([self.m, self.m, self.m, 1.0])
        self.Dinv = np.diag([1 / self.m, 1 / self.m, 1 / self.m, 1.0])
        self.c_quat = torch.tensor(_matrix_quat(self.C[:3, :3]), dtype=torch.float64)  # (4,) wxyz

    def skel_space(self, M: np.ndarray) -> np.ndarray:
        return self.C @ self.D @ M @ self.Dinv

    def local(self, L: np.ndarray, is_root: np.ndarray) -> np.ndarray:
        out = self.D @ L @ self.Dinv
        out[is_root] = self.C @ out[is_root]
        return out

    def points(self, P: np.ndarray) -> np.ndarray:
        return (P * self.m) @ self.C[:3, :3].T

    def world(self, X: np.ndarray) -> np.ndarray:
        A = self.C @ self.D
        return A @ X @ np.linalg.inv(A)


def _matrix_quat(R: np.ndarray) -> list[float]:
    from usdposer.core.rotations import matrix_to_quat

    return matrix_to_quat(torch.tensor(R, dtype=torch.float64)).tolist()


def _read_rig(skel, sq, skinning_queries, conv, xfc, report, path) -> Rig | None:
    prim = skel.GetPrim()
    name = str(prim.GetPath())
    joints = [str(j) for j in (skel.GetJointsAttr().Get() or [])]
    if not joints:
        report("warning", name, "Skeleton has no joints; skipped")
        return None
    topo = UsdSkel.Topology(joints)
    ok, why = topo.Validate()
    if not ok:
        report("error", name, f"invalid joint order ({why.strip()}); list every parent joint before its children in `joints`",
               "JointOrder.ChildBeforeParent")
        return None
    if not sq:
        report("error", name, "invalid Skeleton (UsdSkel could not build a query for it); check joints/bindTransforms",
               "SkinBinding.InvalidSkeleton")
        return None
    parents = np.asarray(topo.GetParentIndices(), dtype=np.int64)
    is_root = parents < 0

    rest = skel.GetRestTransformsAttr().Get()
    if rest is None or len(rest) != len(joints):
        rest = sq.ComputeJointLocalTransforms(Usd.TimeCode.Default(), True)
        report("warning", name, "restTransforms missing or of the wrong length; using UsdSkel's fallback",
               "SkinBinding.MissingRestTransforms")
    bind = skel.GetBindTransformsAttr().Get()
    if bind is None or len(bind) != len(joints):
        report("error", name, f"bindTransforms has {0 if bind is None else len(bind)} entries for {len(joints)} joints; "
               "author one skeleton-space bind matrix per joint", "SkinBinding.SizeMismatch")
        return None
    rest_np, bind_np = gf_to_np(rest), gf_to_np(bind)
    if not (np.isfinite(rest_np).all() and np.isfinite(bind_np).all()):
        report("error", name, "non-finite values in restTransforms/bindTransforms; fix the skeleton's matrices",
               "NonFinite.Skeleton")
        return None
    rest_np = conv.local(rest_np, is_root)
    bind_np = conv.skel_space(bind_np)

    meshes = []
    joint_index = {j: i for i, j in enumerate(joints)}
    for skq in skinning_queries:
        mesh = _read_mesh(skq, joint_index, conv, report)
        if mesh is not None:
            meshes.append(mesh)
    limits = _read_limits(prim, joints)
    return Rig(
        name=prim.GetName(), skeleton_path=name, joints=tuple(joints),
        parents=torch.from_numpy(parents), rest_local=torch.from_numpy(rest_np), bind_world=torch.from_numpy(bind_np),
        meshes=tuple(meshes), limits=limits, meters_per_unit=conv.m, up_axis="Z" if conv.C[1, 2] == 1 else "Y",
        skel_to_world=torch.from_numpy(conv.world(gf_to_np(xfc.GetLocalToWorldTransform(prim)))),
        source=path,
    )


def _triangulate(counts: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Fan-triangulate polygons: (F, 3) int64."""
    counts = counts.astype(np.int64)
    valid = counts >= 3
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ntri = np.where(valid, counts - 2, 0)
    first = np.repeat(starts, ntri)
    offs = np.arange(ntri.sum()) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    return np.stack([indices[first], indices[first + offs + 1], indices[first + offs + 2]], axis=1).astype(np.int64)


def _read_mesh(skq, joint_index: dict[str, int], conv: _Conversion, report) -> Mesh | None:
    prim = skq.GetPrim()
    name = str(prim.GetPath())
    if not prim.IsA(UsdGeom.Mesh):
        report("info", name, f"skinned {prim.GetTypeName()} is not a Mesh; usdposer skins meshes only, skipped")
        return None
    mesh = UsdGeom.Mesh(prim)
    pts = mesh.GetPointsAttr().Get()
    if pts is None or len(pts) == 0:
        report("warning", name, "mesh has no points; skipped")
        return None
    P = np.asarray(pts, dtype=np.float64)
    V = len(P)
    if not np.isfinite(P).all():
        report("error", name, f"{int((~np.isfinite(P).all(1)).sum())} points are NaN or infinite; fix the mesh's points",
               "NonFinite.Points")
        return None

    # influences, checked against the primvars themselves so the message can say what is wrong
    binding = UsdSkel.BindingAPI(prim)
    ip, wp_ = binding.GetJointIndicesPrimvar(), binding.GetJointWeightsPrimvar()
    idx_raw, w_raw = ip.Get() if ip else None, wp_.Get() if wp_ else None
    if idx_raw is None or w_raw is None:
        report("warning", name, "bound to a skeleton but has no jointIndices/jointWeights; skipped (run `usdposer skin`)",
               "SkinBinding.MissingInfluences")
        return None
    idx_raw, w_raw = np.asarray(idx_raw, dtype=np.int64), np.asarray(w_raw, dtype=np.float64)
    if len(idx_raw) != len(w_raw):
        report("error", name, f"primvars:skel:jointIndices has {len(idx_raw)} values but jointWeights has {len(w_raw)}; "
               "they must have the same length (elementSize values per point)", "SkinBinding.SizeMismatch")
        return None
    K = int(ip.GetElementSize())
    rigid = ip.GetInterpolation() == UsdGeom.Tokens.constant
    expected = K if rigid else K * V
    if K < 1 or len(idx_raw) != expected:
        report("error", name, f"jointIndices has {len(idx_raw)} values, expected {expected} "
               f"({'constant' if rigid else f'{V} points'} x elementSize {K}); fix elementSize or the arrays", "SkinBinding.SizeMismatch")
        return None
    if not np.isfinite(w_raw).all():
        report("error", name, "jointWeights contains NaN or infinite values; re-export the skin weights",
               "NonFinite.Weights")
        return None
    idx = idx_raw.reshape(-1, K)
    w = w_raw.reshape(-1, K)
    if rigid:
        idx, w = np.repeat(idx, V, 0), np.repeat(w, V, 0)
    # mesh-local joint order (skel:joints on the mesh) -> skeleton order
    local_order = skq.GetJointOrder()
    if local_order:
        missing = [str(j) for j in local_order if str(j) not in joint_index]
        if missing:
            report("error", name, f"skel:joints names joints not in the skeleton ({', '.join(missing[:3])}); fix skel:joints",
                   "SkinBinding.UnknownJoint")
            return None
        remap = np.array([joint_index[str(j)] for j in local_order], dtype=np.int64)
        n_joints = len(remap)
    else:
        remap, n_joints = None, len(joint_index)
    bad = (idx < 0) | (idx >= n_joints)
    if bad.any():
        report("error", name, f"{int(bad.sum())} joint indices out of range [0, {n_joints}) (first {int(idx[bad][0])}); "
               "re-export the skin or fix the skeleton's joints", "SkinBinding.IndexOutOfRange")
        return None
    if remap is not None:
        idx = remap[idx]
    sums = w.sum(1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        off = np.abs(sums - 1) > 1e-3
        first = int(np.argmax(off))
        report("warning", name, f"{int(off.sum())} of {V} points have jointWeights not summing to 1 (first: point {first} "
               f"sum={sums[first]:.3f}); normalise the weights", "SkinBinding.WeightsNotNormalized")

    G = gf_to_np(skq.GetGeomBindTransform())
    P_skel = P @ G[:3, :3].T + G[:3, 3]
    faces = _triangulate(np.asarray(mesh.GetFaceVertexCountsAttr().Get() or [], np.int64),
                         np.asarray(mesh.GetFaceVertexIndicesAttr().Get() or [], np.int64))
    if len(faces) and (faces.max() >= V or faces.min() < 0):
        report("error", name, "faceVertexIndices refer to points that do not exist; fix the mesh topology",
               "SkinBinding.BadTopology")
        return None

    normals = None
    n_attr = mesh.GetNormalsAttr()
    n_val = n_attr.Get() if n_attr else None
    if n_val is not None and len(n_val) == V and mesh.GetNormalsInterpolation() in (UsdGeom.Tokens.vertex, UsdGeom.Tokens.varying):
        N = np.asarray(n_val, dtype=np.float64) @ np.linalg.inv(G[:3, :3])  # inverse-transpose of G, row vectors
        N = N @ conv.C[:3, :3].T
        normals = torch.from_numpy(N / np.linalg.norm(N, axis=1, keepdims=True).clip(1e-12))

    uvs, texture, color = _read_look(prim, V)
    return Mesh(
        path=name, points=torch.from_numpy(conv.points(P_skel)), faces=torch.from_numpy(faces),
        joint_indices=torch.from_numpy(idx), joint_weights=torch.from_numpy(w), normals=normals,
        uvs=uvs, texture=texture, color=color, skinning_method=str(skq.GetSkinningMethod() or "classicLinear"),
    )


def _read_look(prim: Usd.Prim, V: int):
    """(uvs (V, 2) or None, base-colour texture path or None, display colour)."""
    uvs = None
    pv_api = UsdGeom.PrimvarsAPI(prim)
    for name in ("st", "st0", "st_0", "UVMap", "uv"):
        pv = pv_api.GetPrimvar(name)
        if pv and pv.HasValue() and pv.GetInterpolation() in (UsdGeom.Tokens.vertex, UsdGeom.Tokens.varying):
            val = pv.ComputeFlattened()
            if val is not None and len(val) == V:
                uvs = torch.from_numpy(np.asarray(val, dtype=np.float64))
                break
    color = (0.7, 0.7, 0.7)
    dc = pv_api.GetPrimvar("displayColor")
    if dc and dc.HasValue():
        val = np.asarray(dc.ComputeFlattened(), dtype=np.float64).reshape(-1, 3)
        if len(val):
            color = tuple(float(c) for c in val.mean(0))
    texture = None
    material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
    if material:
        shader = material.ComputeSurfaceSource()[0]
        if shader:
            inp = shader.GetInput("diffuseColor")
            if inp:
                if inp.HasConnectedSource():
                    src = inp.GetConnectedSources()[0][0].source
                    tex = UsdShade.Shader(src.GetPrim())
                    f = tex.GetInput("file")
                    if f and f.Get() is not None:
                        asset = f.Get()
                        texture = asset.resolvedPath or asset.path or None
                elif inp.Get() is not None:
                    color = tuple(float(c) for c in inp.Get())
    return uvs, texture, color


def _read_limits(prim: Usd.Prim, joints: list[str]) -> torch.Tensor | None:
    """(J, 3, 2) radians (NaN = unlimited) from the Skeleton's JointLimitsAPI values, completed by the stage's
    UsdPhysics joints that drive its joints (``usdposer.io.physics_limits``) where the former say nothing; or None."""
    from usdposer.io.physics_limits import physics_joint_limits

    own = _read_limit_api(prim, joints)
    phys = physics_joint_limits(prim.GetStage(), joints)
    if phys is None:
        return own
    phys = torch.from_numpy(phys)
    return phys if own is None else torch.where(torch.isnan(own), phys, own)


def _read_limit_api(prim: Usd.Prim, joints: list[str]) -> torch.Tensor | None:
    """JointLimitsAPI values -> (J, 3, 2) radians (NaN = unlimited), or None."""
    attr = prim.GetAttribute("usdposer:jointLimits:joints")
    if not attr or not attr.HasAuthoredValue():
        return None
    names = [str(j) for j in attr.Get()]
    lo = np.asarray(prim.GetAttribute("usdposer:jointLimits:lower").Get() or [], dtype=np.float64).reshape(-1, 3)
    hi = np.asarray(prim.GetAttribute("usdposer:jointLimits:upper").Get() or [], dtype=np.float64).reshape(-1, 3)
    out = np.full((len(joints), 3, 2), np.nan)
    index = {j: i for i, j in enumerate(joints)}
    for k, n in enumerate(names[: min(len(lo), len(hi))]):
        if n in index:
            out[index[n], :, 0], out[index[n], :, 1] = np.radians(lo[k]), np.radians(hi[k])
    return torch.from_numpy(out)


def _read_clip(anim: UsdSkel.Animation, cache: UsdSkel.Cache, rig: Rig, conv: _Conversion, report,
               asset: SkelAsset) -> Clip | None:
    prim = anim.GetPrim()
    name = str(prim.GetPath())
    tokens = [str(j) for j in (anim.GetJointsAttr().Get() or [])]
    joint_index = {j: i for i, j in enumerate(rig.joints)}
    if not tokens or any(t not in joint_index for t in tokens):
        return None  # an animation of another skeleton
    missing = [a for a in ("translations", "rotations", "scales") if not prim.GetAttribute(a).HasAuthoredValue()]
    if missing:
        report("warning", name, f"SkelAnimation lacks {', '.join(missing)}; UsdSkel ignores it (rest pose is used). "
               "Author translations, rotations and scales", "SkelAnimComplete.MissingJointComponent")
        return None
    aq = cache.GetAnimQuery(anim)
    times = list(aq.GetJointTransformTimeSamples()) or [asset.start_time_code if math.isfinite(asset.start_time_code) else 0.0]
    from usdposer.core.kinematics import decompose_trs

    t_rest, q_rest, s_rest = (x.numpy() for x in decompose_trs(rig.rest_local))
    T = len(times)
    tr = np.repeat(t_rest[None], T, 0)
    rot = np.repeat(q_rest[None], T, 0)
    sc = np.repeat(s_rest[None], T, 0)
    cols = np.array([joint_index[t] for t in tokens])
    is_root = (rig.parents < 0).numpy()
    anim_root = is_root[cols]
    bad_frames = 0
    for f, t in enumerate(times):
        vt = aq.ComputeJointLocalTransformComponents(Usd.TimeCode(t))
        if vt is None:
            bad_frames += 1
            continue
        trans, rots, scales = vt
        tt = np.asarray(trans, dtype=np.float64)
        qq = np.asarray(rots, dtype=np.float64)
        ss = np.asarray(scales, dtype=np.float64)
        if len(tt) != len(tokens) or len(qq) != len(tokens) or len(ss) != len(tokens):
            report("error", name, f"time {t}: translations/rotations/scales have {len(tt)}/{len(qq)}/{len(ss)} entries "
                   f"for {len(tokens)} joints; author one value per joint", "SkelAnimComplete.SizeMismatch")
            return None
        # convert to metres / +Y up: translations scale by m; roots also rotate by C
        tt = tt * conv.m
        qq = xyzw_to_wxyz(torch.from_numpy(qq)).numpy()
        tt[anim_root] = tt[anim_root] @ conv.C[:3, :3].T
        qq[anim_root] = quat_multiply(conv.c_quat.expand(int(anim_root.sum()), 4), torch.from_numpy(qq[anim_root])).numpy()
        tr[f, cols], rot[f, cols], sc[f, cols] = tt, qq, ss
    if bad_frames:
        report("warning", name, f"{bad_frames} frames could not be evaluated")
    if not (np.isfinite(tr).all() and np.isfinite(rot).all() and np.isfinite(sc).all()):
        report("error", name, "non-finite values in the animation; fix or re-export the SkelAnimation",
               "NonFinite.Animation")
        return None
    return Clip(
        rotations=torch.from_numpy(rot), translations=torch.from_numpy(tr), scales=torch.from_numpy(sc),
        time_codes=torch.tensor(times, dtype=torch.float64), time_codes_per_second=asset.time_codes_per_second,
        name=prim.GetName(), path=name,
    )
