"""UsdSkel stage -> ``Rig`` and ``Clip`` objects (the only reader of skeleton data from pxr).

Every Skeleton in the stage becomes a Rig; its skinned ``UsdGeom.Mesh`` prims (found through ``UsdSkel.Cache``
bindings under each SkelRoot) become ``Mesh`` objects; every SkelAnimation whose joints all belong to the Skeleton
becomes a ``Clip`` (the bound one first). Values are converted to metres and +Y up (see ``usdposer.io.stage``).

Malformed data is reported as ``Problem`` rows; with ``strict=True`` (the default) the first error raises
``RigError`` with a one-line message that names the prim and the fix.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pxr import Sdf, Tf, Usd, UsdGeom, UsdSkel, UsdUtils

from usdposer.core.rotations import quat_multiply, xyzw_to_wxyz
from usdposer.errors import InputError, RigError
from usdposer.io.physics_limits import read_limits
from usdposer.io.read_mesh import read_mesh
from usdposer.io.stage import (
    OPEN_DIAGNOSTICS,
    StageUnits,
    composition_problems,
    first_line,
    gf_to_np,
    nearest_of_type,
    open_stage,
    stage_units,
    unregistered,
)
from usdposer.types import Clip, Rig


@dataclass(frozen=True)
class Problem:
    """Something wrong or noteworthy in an asset. severity: "error" (cannot be used), "warning", "info"."""

    severity: str
    prim: str
    message: str
    kind: str = ""  # what is wrong, e.g. "index-out-of-range" (``usdposer.validate`` maps kinds to its rules)

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
        found = [r for r in self.rigs if skeleton == r.skeleton_path] or [r for r in self.rigs if skeleton == r.name]
        if len(found) > 1:
            raise RigError(f"{self.path}: {len(found)} Skeletons are named {skeleton!r} "
                           f"({', '.join(r.skeleton_path for r in found)}); give the prim path")
        if found:
            return found[0]
        raise RigError(f"{self.path}: no Skeleton {skeleton!r}; choose one of {', '.join(r.skeleton_path for r in self.rigs)}")

    def clip(self, rig: Rig, anim: str | None = None) -> Clip:
        """The bound (or named) clip of ``rig``."""
        clips = self.clips.get(rig.skeleton_path, [])
        if not clips:
            raise RigError(f"{self.path}: Skeleton {rig.skeleton_path} has no SkelAnimation; pass a file with animation")
        if anim is None:
            return clips[0]
        found = [c for c in clips if anim == c.path] or [c for c in clips if anim == c.name]
        if len(found) > 1:
            raise RigError(f"{self.path}: {len(found)} SkelAnimations are named {anim!r} "
                           f"({', '.join(c.path for c in found)}); give the prim path")
        if found:
            return found[0]
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

    def __call__(self, severity: str, prim, message: str, kind: str = "") -> None:
        prim = str(prim)
        if severity == "error" and self.strict:
            raise RigError(f"{self.path}: {prim}: {message}")
        self.problems.append(Problem(severity, prim, message, kind))


def read_asset(path: str | Path, strict: bool = True) -> SkelAsset:
    """Read every Skeleton, skinned Mesh and SkelAnimation of a USD file. See the module docstring."""
    stage = open_stage(path)
    try:
        return read_stage(stage, str(path), strict=strict)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: holds text that is not valid UTF-8 (at byte {exc.start} of a name or string); "
                         "the file is corrupt, re-export it") from None


def read_stage(stage: Usd.Stage, path: str = "", strict: bool = True) -> SkelAsset:
    # USD's own warnings (e.g. malformed influences) become "warning" problems instead of stderr noise
    delegate = UsdUtils.CoalescingDiagnosticDelegate()
    try:
        asset = _read_stage(stage, path, strict)
    except Tf.ErrorException as exc:  # composition that fails when queried (a relationship's target on an attribute)
        where = path or stage.GetRootLayer().identifier
        raise InputError(f"{where}: USD cannot compose it ({first_line(str(exc))}); fix the file") from None
    finally:
        diagnostics = delegate.TakeUncoalescedDiagnostics()
        del delegate
    for d in diagnostics:
        msg = " ".join(d.commentary.split()) or str(d.diagnosticCode)
        asset.problems.append(Problem("warning", "usd", msg[:300], "usd-diagnostic"))
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
    conv = StageUnits(mpu, up)
    cache = UsdSkel.Cache()
    prims = list(Usd.PrimRange.Stage(stage, Usd.TraverseInstanceProxies()))
    for prim in prims:
        if prim.IsA(UsdSkel.Root):
            cache.Populate(UsdSkel.Root(prim), Usd.TraverseInstanceProxies())
    skeletons = [p for p in prims if p.IsA(UsdSkel.Skeleton)]
    anims = [p for p in prims if p.IsA(UsdSkel.Animation)]
    known = composition_problems(stage)
    for message in known:
        report("error", "/", f"{message.rstrip('.')}; fix or remove the layer reference (the asset is incomplete)",
               "composition")
    for message in OPEN_DIAGNOSTICS.pop(stage.GetRootLayer().identifier, []):
        if not any(k.rstrip(".")[:200] in message for k in known):  # USD's warning of a composition error said
            report("warning", "/", message[:300], "usd-diagnostic")
    if not skeletons:
        report("error", "/", "no Skeleton prim in the file; usdposer needs a UsdSkel asset (SkelRoot > Skeleton), "
               "or import glTF with `usdposer import`", "no-skeleton")

    # 1. skinned meshes per skeleton, from every SkelRoot's bindings
    targets: dict[str, list[UsdSkel.SkinningQuery]] = {}
    for prim in prims:
        if prim.IsA(UsdSkel.Root):
            for binding in cache.ComputeSkelBindings(UsdSkel.Root(prim), Usd.TraverseInstanceProxies()):
                targets.setdefault(str(binding.GetSkeleton().GetPrim().GetPath()), []).extend(binding.GetSkinningTargets())

    unrooted = _unrooted_skins(prims)
    xfc = UsdGeom.XformCache(Usd.TimeCode.Default())
    anim_roots = [_skel_root(a) for a in anims]
    # a SkelAnimation outside every SkelRoot but under a Skeleton prim is that Skeleton's (a shot whose characters lost
    # their SkelRoot type must not give each the others' clips); one under no Skeleton is a loose library
    owners = [nearest_of_type(a, UsdSkel.Skeleton, above=True) if r is None else None for a, r in zip(anims, anim_roots)]
    anim_owners = [o.GetPath() if o else None for o in owners]
    for skel_prim in skeletons:
        skel = UsdSkel.Skeleton(skel_prim)
        sq = cache.GetSkelQuery(skel)
        rig = _read_rig(skel, sq, targets.get(str(skel_prim.GetPath()), []), conv, xfc, report, path)
        if rig is None:
            continue
        asset.rigs.append(rig)
        if str(skel_prim.GetPath()) in unrooted:
            _report_unrooted(skel_prim, unrooted[str(skel_prim.GetPath())], report)
        bound_anim = sq.GetAnimQuery().GetPrim() if sq and sq.GetAnimQuery() else None
        clips = []
        # this skeleton's animations: under its own SkelRoot, outside every SkelRoot (a loose library), or bound to
        # it; not another character's (a shot with two copies of one rig would give each the other's clips too)
        home = _skel_root(skel_prim)
        mine = [a for a, r, o in zip(anims, anim_roots, anim_owners)
                if (r is not None and r == home) or (r is None and o in (None, skel_prim.GetPath()))
                or (bound_anim and a.GetPath() == bound_anim.GetPath())]
        ordered = sorted(mine, key=lambda a: (bound_anim is None or a.GetPath() != bound_anim.GetPath()))
        for anim_prim in ordered:
            clip = _read_clip(UsdSkel.Animation(anim_prim), cache, rig, conv, report, asset)
            if clip is not None:
                clips.append(clip)
        if bound_anim is not None and clips and clips[0].path == str(bound_anim.GetPath()):
            asset.bound[rig.skeleton_path] = clips[0].path
        asset.clips[rig.skeleton_path] = clips
    asset.problems = report.problems
    return asset


def _read_rig(skel, sq, skinning_queries, conv, xfc, report, path) -> Rig | None:
    prim = skel.GetPrim()
    name = str(prim.GetPath())
    raw = skel.GetJointsAttr().Get()
    if unregistered(raw):
        report("error", name, f"`joints` is not a token[] ({type(raw).__name__}); author the joint paths as tokens",
               "invalid-skeleton")
        return None
    joints = [str(j) for j in (raw or [])]
    if not joints:
        report("warning", name, "Skeleton has no joints (nothing to pose); author its `joints` with bind and rest "
               "transforms", "no-joints")
        return None
    seen: set[str] = set()
    for j in joints:
        if j in seen:
            report("error", name, f"joint {j!r} appears twice in `joints`; every joint path must be unique",
                   "duplicate-joint")
            return None
        seen.add(j)
    for j in joints:
        ok, why = Sdf.Path.IsValidPathString(j)
        if not ok:
            report("error", name, f"joint {j!r} is not a USD path ({why.split(': ')[-1]} at "
                   f"{why.split(' at ')[-1].split(':')[0]}), so UsdSkel makes it a root torn off its parent; rename "
                   "it in `joints` (and every skel:joints) with letters, digits and underscores", "invalid-joint-path")
            return None
    topo = UsdSkel.Topology(joints)
    ok, why = topo.Validate()
    if not ok:
        report("error", name, f"invalid joint order ({why.strip()}); list every parent joint before its children in `joints`",
               "child-before-parent")
        return None
    if not sq:
        report("error", name, "invalid Skeleton (UsdSkel could not build a query for it); check joints/bindTransforms",
               "invalid-skeleton")
        return None
    parents = np.asarray(topo.GetParentIndices(), dtype=np.int64)
    is_root = parents < 0

    rest = skel.GetRestTransformsAttr().Get()
    rest_from_bind = False
    if rest is None or unregistered(rest) or len(rest) != len(joints):
        rest = sq.ComputeJointLocalTransforms(Usd.TimeCode.Default(), True)
        if rest is None or len(rest) != len(joints):
            # UsdSkel needs restTransforms only for joints no animation drives: take the bind pose as the rest pose
            rest_from_bind = True
            report("warning", name, "restTransforms missing, of the wrong length or not a matrix4d[]; the rest pose "
                   "is the bind pose (bindTransforms relative to each parent). Author restTransforms to give "
                   "another", "missing-rest-transforms")
        else:
            report("warning", name, "restTransforms missing, of the wrong length or not a matrix4d[]; using UsdSkel's "
                   "fallback", "missing-rest-transforms")
    bind = skel.GetBindTransformsAttr().Get()
    if unregistered(bind):
        report("error", name, f"bindTransforms is not a matrix4d[] ({type(bind).__name__}; a misspelled type?); fix "
               "its declaration", "invalid-skeleton")
        return None
    if bind is None or len(bind) != len(joints):
        report("error", name, f"bindTransforms has {0 if bind is None else len(bind)} entries for {len(joints)} joints; "
               "author one skeleton-space bind matrix per joint", "size-mismatch")
        return None
    bind_np = gf_to_np(bind)
    if rest_from_bind:
        with np.errstate(all="ignore"):
            rest_np = np.stack([bind_np[j] if p < 0 else np.linalg.pinv(bind_np[p]) @ bind_np[j]
                                for j, p in enumerate(parents)])
    else:
        rest_np = gf_to_np(rest)
    if not (np.isfinite(rest_np).all() and np.isfinite(bind_np).all()):
        report("error", name, "non-finite values in restTransforms/bindTransforms; fix the skeleton's matrices",
               "non-finite-skeleton")
        return None
    singular = np.nonzero(np.linalg.cond(bind_np[:, :3, :3]) > 1e10)[0]
    if len(singular):
        report("error", name, f"the bind transform of joint {joints[singular[0]]!r} is singular (scaled to zero); "
               "fix the skeleton's bindTransforms", "singular-bind")
        return None
    rest_np = conv.local(rest_np, is_root)
    bind_np = conv.skel_space(bind_np)

    meshes = []
    joint_index = {j: i for i, j in enumerate(joints)}
    for skq in _drawn(skinning_queries, report):
        mesh = read_mesh(skq, joint_index, conv, report)
        if mesh is not None:
            meshes.append(mesh)
    limits = read_limits(prim, joints)
    return Rig(
        name=prim.GetName(), skeleton_path=name, joints=tuple(joints),
        parents=torch.from_numpy(parents), rest_local=torch.from_numpy(rest_np), bind_world=torch.from_numpy(bind_np),
        meshes=tuple(meshes), limits=limits, meters_per_unit=conv.m, up_axis=conv.up,
        skel_to_world=torch.from_numpy(conv.world(gf_to_np(xfc.GetLocalToWorldTransform(prim)))),
        source=path,
    )


def _skel_root(prim: Usd.Prim) -> Sdf.Path | None:
    """The path of the nearest SkelRoot at or above ``prim`` (None outside every SkelRoot)."""
    root = nearest_of_type(prim, UsdSkel.Root)
    return root.GetPath() if root else None


def _drawn(skinning_queries: list, report) -> list:
    """The skinned prims a renderer draws for the character: not ``guide`` purpose, not invisible, and not ``proxy``
    where there is render geometry (a studio asset's proxy mesh would be drawn, sampled into Gaussians and checked
    beside the render mesh). Each one left out is an ``info`` problem; where nothing would be left, all are kept."""
    def why(prim) -> str | None:
        img = UsdGeom.Imageable(prim)
        if img.ComputeVisibility() == UsdGeom.Tokens.invisible:
            return "invisible"
        purpose = img.ComputePurpose()
        return f"purpose {purpose}" if purpose in (UsdGeom.Tokens.guide, UsdGeom.Tokens.proxy) else None

    reasons = [why(q.GetPrim()) for q in skinning_queries]
    if all(r is not None for r in reasons):
        return list(skinning_queries)
    for q, r in zip(skinning_queries, reasons):
        if r is not None:
            report("info", str(q.GetPrim().GetPath()), f"skinned mesh left out ({r}): pictures, checks and Gaussians "
                   "use the character's render geometry", "not-drawn")
    return [q for q, r in zip(skinning_queries, reasons) if r is None]


def _unrooted_skins(prims: list[Usd.Prim]) -> dict[str, list[Usd.Prim]]:
    """Skeleton path -> the skinned Meshes bound to it that lie outside every SkelRoot (UsdSkel skins none of them).
    Meshes whose points are animated are left out: UsdSkel's own baking writes points per frame and retypes the
    SkelRoot, on purpose."""
    out: dict[str, list[Usd.Prim]] = {}
    for prim in prims:
        if not (prim.IsA(UsdGeom.Mesh) and prim.HasAPI(UsdSkel.BindingAPI)) or _skel_root(prim) is not None:
            continue
        binding = UsdSkel.BindingAPI(prim)
        indices = binding.GetJointIndicesPrimvar()
        if not (indices and indices.HasValue()) or UsdGeom.Mesh(prim).GetPointsAttr().ValueMightBeTimeVarying():
            continue
        skel = binding.GetInheritedSkeleton()
        if skel:
            out.setdefault(str(skel.GetPrim().GetPath()), []).append(prim)
    return out


def _report_unrooted(skel_prim: Usd.Prim, meshes: list[Usd.Prim], report) -> None:
    """One error naming the meshes and the prim to make a SkelRoot; where a stronger layer's type hides a SkelRoot
    opinion on that prim or above it (a shot's ``def Xform`` over a referenced character), that layer too."""
    stage = skel_prim.GetStage()
    common = skel_prim.GetPath().GetParentPath()
    for m in meshes:
        common = common.GetCommonPrefix(m.GetPath())
    fix, why = common, ""
    prim = stage.GetPrimAtPath(common)
    while prim and not prim.IsPseudoRoot():
        typed = [spec for spec in prim.GetPrimStack() if spec.typeName]  # strongest first
        if any(spec.typeName == "SkelRoot" for spec in typed):
            weak = next(spec for spec in typed if spec.typeName == "SkelRoot")
            why = (f" ({prim.GetPath()} is a SkelRoot in {Path(weak.layer.identifier).name} but `def "
                   f"{typed[0].typeName}` in {Path(typed[0].layer.identifier).name} overrides that: reference the "
                   "character with a typeless `def` or an `over`)")
            fix = prim.GetPath()
            break
        prim = prim.GetParent()
    first = ", ".join(str(m.GetPath()) for m in meshes[:2]) + (f" and {len(meshes) - 2} more" if len(meshes) > 2 else "")
    todo = (f"make {fix} a SkelRoot" if fix != Sdf.Path.absoluteRootPath else
            "put the Skeleton and its meshes under one SkelRoot prim")
    report("error", str(skel_prim.GetPath()), f"{len(meshes)} mesh(es) bound to this Skeleton ({first}) lie outside "
           f"every SkelRoot, so UsdSkel skins none of them: they stay in their bind pose in every renderer{why}; {todo}",
           "no-skel-root")


def _read_clip(anim: UsdSkel.Animation, cache: UsdSkel.Cache, rig: Rig, conv: StageUnits, report,
               asset: SkelAsset) -> Clip | None:
    prim = anim.GetPrim()
    name = str(prim.GetPath())
    raw = anim.GetJointsAttr().Get()
    if unregistered(raw):
        report("error", name, f"the animation's `joints` is not a token[] ({type(raw).__name__}; a misspelled type?); "
               "fix its declaration", "invalid-animation")
        return None
    tokens = [str(j) for j in (raw or [])]
    joint_index = {j: i for i, j in enumerate(rig.joints)}
    if not tokens or any(t not in joint_index for t in tokens):
        return None  # an animation of another skeleton
    missing = [a for a in ("translations", "rotations", "scales") if not prim.GetAttribute(a).HasAuthoredValue()]
    if missing:
        report("warning", name, f"SkelAnimation lacks {', '.join(missing)}; UsdSkel ignores it (rest pose is used). "
               "Author translations, rotations and scales", "incomplete-animation")
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
    good, tts, qqs, sss = [], [], [], []
    for f, t in enumerate(times):
        vt = aq.ComputeJointLocalTransformComponents(Usd.TimeCode(t))
        if vt is None:
            continue
        tt, qq, ss = (np.asarray(x, dtype=np.float64) for x in vt)
        if len(tt) != len(tokens) or len(qq) != len(tokens) or len(ss) != len(tokens):
            report("error", name, f"time {t}: translations/rotations/scales have {len(tt)}/{len(qq)}/{len(ss)} entries "
                   f"for {len(tokens)} joints; author one value per joint", "animation-size-mismatch")
            return None
        good.append(f), tts.append(tt), qqs.append(qq), sss.append(ss)
    bad_frames = T - len(good)
    if good:
        # all frames at once: to metres / +Y up (translations scale by m; roots also rotate by C), quats to wxyz
        tt, qq, ss = np.stack(tts) * conv.m, xyzw_to_wxyz(torch.from_numpy(np.stack(qqs))), np.stack(sss)  # (G, n, .)
        if anim_root.any():
            tt[:, anim_root] = tt[:, anim_root] @ conv.C[:3, :3].T
            roots = torch.from_numpy(anim_root)
            qq[:, roots] = quat_multiply(conv.root_quat().expand(len(qq), int(roots.sum()), 4), qq[:, roots])
        g = np.asarray(good)[:, None]
        tr[g, cols], rot[g, cols], sc[g, cols] = tt, qq.numpy(), ss
    if bad_frames:
        report("warning", name, f"{bad_frames} frames could not be evaluated")
    if not (np.isfinite(tr).all() and np.isfinite(rot).all() and np.isfinite(sc).all()):
        report("error", name, "non-finite values in the animation; fix or re-export the SkelAnimation",
               "non-finite-animation")
        return None
    shapes = tuple(str(t) for t in anim.GetBlendShapesAttr().Get() or ())
    weights = None
    if shapes:  # UsdSkel's weights at the clip's frames (interpolated between their own samples)
        rows = [np.asarray(aq.ComputeBlendShapeWeights(Usd.TimeCode(t)), dtype=np.float64) for t in times]
        if all(r.shape == (len(shapes),) for r in rows) and np.isfinite(np.stack(rows)).all():
            weights = torch.from_numpy(np.stack(rows))
        else:
            report("warning", name, f"blendShapeWeights do not hold {len(shapes)} finite values per frame; the clip's "
                   "blend shapes are not drawn", "bad-blend-weights")
    return Clip(
        rotations=torch.from_numpy(rot), translations=torch.from_numpy(tr), scales=torch.from_numpy(sc),
        time_codes=torch.tensor(times, dtype=torch.float64), time_codes_per_second=asset.time_codes_per_second,
        name=prim.GetName(), path=name, blend_shapes=shapes, blend_weights=weights,
    )


def open_rig(asset: str | os.PathLike, skeleton: str | None = None):
    """(SkelAsset, Rig) of a USD file; glTF/BVH/MJCF get a clear error telling to import first."""
    from usdposer.io.importers import IMPORT_EXTENSIONS

    p = Path(asset)
    if p.suffix.lower() in IMPORT_EXTENSIONS:
        raise InputError(f"{asset}: not a USD file; convert it first with `usdposer import {asset} -o "
                         f"{p.with_suffix('.usdc').name}`")
    a = read_asset(p)
    return a, a.rig(skeleton)
