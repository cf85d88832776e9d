"""``Clip`` / pose sets -> USD layers over an asset (the only writer of skeleton data).

A layer written here sublayers the source asset (so it opens on its own and also layers into a shot), adds new
SkelAnimation prims under the Skeleton with sparse ``over``s above them, binds one through a direct
``skel:animationSource`` opinion (which outranks the source's own binding; rebinding another clip is one edit of that
relationship, and the clips are listed in the Skeleton's ``customData["usdposer:clips"]``), records provenance in
``customLayerData["usdposer"]``, and goes to a temporary file that is moved into place (``.usdc`` by default).
Fresh stages (``usdposer import``) offer their clips in the Skeleton's ``usdposerClip`` variant set instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pxr import Sdf, Usd, UsdSkel, Vt

from usdposer._version import __version__
from usdposer.core.rotations import wxyz_to_xyzw
from usdposer.errors import InputError
from usdposer.io.stage import StageUnits, layer_over, make_editable
from usdposer.types import Clip, Pose, Rig

CLIP_VARIANT_SET = "usdposerClip"


def provenance(verb: str, arguments: Sequence[str] | None = None, seed: int | None = None, **extra) -> dict:
    """The ``customLayerData["usdposer"]`` dictionary: tool version, verb, arguments, seed and extras."""
    import shlex

    args = list(arguments if arguments is not None else sys.argv[1:])
    data = {"version": __version__, "verb": verb, "arguments": shlex.join(str(a) for a in args)}
    if seed is not None:
        data["seed"] = int(seed)
    for k, v in extra.items():
        if v is None:
            continue
        if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v):
            data[k] = Vt.DoubleArray([float(x) for x in v])
        elif isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
            data[k] = Vt.StringArray(list(v))
        else:
            data[k] = v if isinstance(v, (str, int, float, bool)) else str(v)
    return data


def to_stage_units(rig: Rig, pose: Pose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of the reader's conversion: (T, J, 3) translations, (T, J, 4) (w, x, y, z) rotations, (T, J, 3)
    scales in the source stage's units and up axis (``StageUnits``)."""
    units = StageUnits(rig.meters_per_unit, rig.up_axis)
    t = pose.translations.detach().to(torch.float64).clone()
    q = pose.rotations.detach().to(torch.float64).clone()
    roots = rig.roots
    t[:, roots], q[:, roots] = units.roots_to_stage(t[:, roots], q[:, roots])
    t[:, [j for j in range(rig.num_joints) if j not in roots]] /= units.m
    return t.numpy(), q.numpy(), pose.scales.detach().to(torch.float64).numpy()


def from_stage_units(rig: Rig, t: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reader's conversion for (N, J, 3) translations and (N, J, 4) rotations in stage units: metres, +Y up."""
    units = StageUnits(rig.meters_per_unit, rig.up_axis)
    t, q = t.to(torch.float64).clone(), q.to(torch.float64).clone()
    roots = rig.roots
    t[:, roots], q[:, roots] = units.roots_from_stage(t[:, roots], q[:, roots])
    t[:, [j for j in range(rig.num_joints) if j not in roots]] *= units.m
    return t, q


def define_animation(stage: Usd.Stage, path: str | Sdf.Path, joints: Sequence[str], translations: np.ndarray,
                     rotations_wxyz: np.ndarray, scales: np.ndarray, time_codes: Sequence[float] | None) -> UsdSkel.Animation:
    """Author a SkelAnimation with all three of translations, rotations, scales (UsdSkel ignores an animation that
    lacks one). Arrays are (T, J, ·) in stage units; ``time_codes=None`` authors default values from frame 0."""
    anim = UsdSkel.Animation.Define(stage, Sdf.Path(str(path)))
    anim.CreateJointsAttr(Vt.TokenArray(list(joints)))
    t_attr, r_attr, s_attr = anim.CreateTranslationsAttr(), anim.CreateRotationsAttr(), anim.CreateScalesAttr()
    xyzw = wxyz_to_xyzw(torch.as_tensor(rotations_wxyz)).numpy()
    for what, a, limit in (("translations", translations, 3e38), ("scales", scales, 65504.0)):
        a = np.asarray(a)
        if a.size and not (np.isfinite(a).all() and np.abs(a).max() <= limit):
            raise InputError(f"animation {path}: {what} hold NaN, infinite or absurd values (beyond {limit:g}); fix the "
                             "source animation")
    frames = [(None, 0)] if time_codes is None else [(float(tc), i) for i, tc in enumerate(time_codes)]
    for tc, i in frames:
        time = Usd.TimeCode.Default() if tc is None else Usd.TimeCode(tc)
        t_attr.Set(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(translations[i], dtype=np.float32)), time)
        r_attr.Set(Vt.QuatfArray.FromNumpy(np.ascontiguousarray(xyzw[i], dtype=np.float32)), time)
        s_attr.Set(Vt.Vec3hArray.FromNumpy(np.ascontiguousarray(scales[i], dtype=np.float16)), time)
    return anim


def bind_animations(stage: Usd.Stage, skel_path: str, anim_paths: Sequence[str], selected: int = 0,
                    names: Sequence[str] | None = None) -> None:
    """Bind ``anim_paths[selected]`` through ``skel:animationSource`` and offer every animation as a variant of the
    Skeleton's ``usdposerClip`` variant set (DCCs switch clips by variant; Blender imports the selected one)."""
    skel = stage.OverridePrim(skel_path)
    UsdSkel.BindingAPI.Apply(skel)
    names = list(names) if names is not None else [Sdf.Path(p).name for p in anim_paths]
    vset = skel.GetVariantSets().AddVariantSet(CLIP_VARIANT_SET)
    for name, path in zip(names, anim_paths):
        vset.AddVariant(name)
        vset.SetVariantSelection(name)
        with vset.GetVariantEditContext():
            UsdSkel.BindingAPI(skel).CreateAnimationSourceRel().SetTargets([Sdf.Path(path)])
    vset.SetVariantSelection(names[selected])


def root_prim_name(name: str) -> str:
    """The SkelRoot prim name for a character or file name (a valid identifier, never starting with a digit)."""
    return identifier(name) or "Character"  # a leading digit is already "_"


def identifier(name: str) -> str:
    """A valid USD prim name for ``name``, Unicode kept: OpenUSD (24.03 on) takes UTF-8 identifiers (``頭``,
    ``Ünïcødé``), and Blender names bones after them, where ``Tf.MakeValidIdentifier`` turns every non-ASCII byte
    into ``_``. Each character that cannot stand where it is becomes one ``_`` (a leading digit too); ``""`` stays
    ``""``. Names are NFC-normalised (macOS writes decomposed accents), so a name typed later matches."""
    import unicodedata

    name = unicodedata.normalize("NFC", name or "")
    if not name or Sdf.Path.IsValidIdentifier(name):
        return name
    return "".join(c if Sdf.Path.IsValidIdentifier(c if i == 0 else "a" + c) else "_" for i, c in enumerate(name))


def select_clip(bind_clip: str | None, aliases: Sequence[Sequence[str]], where: str = "") -> int:
    """Index of the clip to bind: 0 without ``bind_clip``, else the first clip one of whose ``aliases`` (its prim
    name, source name...) equals it. Raises InputError listing each clip's first alias."""
    if bind_clip is None:
        return 0
    for i, names in enumerate(aliases):
        if bind_clip in names:
            return i
    from usdposer.errors import InputError

    raise InputError(f"{where}no clip named {bind_clip!r}; choose one of {', '.join(a[0] for a in aliases)}")


def unique_names(names: Sequence[str]) -> list[str]:
    """Valid, unique USD identifiers for a list of names (``Walk``, ``Walk_1`` ...)."""
    out, seen = [], set()
    for n in names:
        base = identifier(n) or "anim"
        cand, k = base, 1
        while cand in seen:
            cand, k = f"{base}_{k}", k + 1
        seen.add(cand)
        out.append(cand)
    return out


def write_clip_layer(source: str | os.PathLike, out: str | os.PathLike, rig: Rig, clips: Sequence[Clip], *,
                     prov: dict, bind: int | None = 0, source_stage: Usd.Stage | None = None, author=None) -> Path:
    """Write ``clips`` of ``rig`` as a new layer over ``source`` at ``out`` (temporary file, then moved).

    The layer sublayers ``source``, defines one SkelAnimation per clip under the Skeleton and binds ``clips[bind]``
    (``bind=None`` leaves the source's binding alone). Stage metadata is copied from the source and the time range
    set to the bound clip's. ``author(stage)``, when given, adds more prims to the layer before it is saved.
    Returns the output path.
    """
    if not clips:
        raise ValueError("write_clip_layer needs at least one clip")
    names = unique_names([c.name for c in clips])
    bound = clips[bind or 0]
    with layer_over(source, out, up_axis=rig.up_axis, meters_per_unit=rig.meters_per_unit,
                    time_range=(float(bound.time_codes[0]), float(bound.time_codes[-1])),
                    source_stage=source_stage) as (stage, layer, out):
        uninstanced = make_editable(stage, rig.skeleton_path)  # a character referenced as an instance
        paths = []
        for name, clip in zip(names, clips):
            path = f"{rig.skeleton_path}/{name}"
            t, q, s = to_stage_units(rig, clip)
            define_animation(stage, path, rig.joints, t, q, s, clip.time_codes.tolist())
            paths.append(path)
        # a direct opinion in this (stronger) layer: it beats a binding the source authors on the Skeleton, which a
        # variant opinion could not (LIVRPS: local opinions outrank variants)
        skel = stage.OverridePrim(rig.skeleton_path)
        if bind is not None:
            UsdSkel.BindingAPI.Apply(skel)
            UsdSkel.BindingAPI(skel).CreateAnimationSourceRel().SetTargets([Sdf.Path(paths[bind])])
        skel.SetCustomDataByKey("usdposer:clips", Vt.StringArray(paths))
        prov = dict(prov, sourceSkeleton=rig.skeleton_path, clips=Vt.StringArray(paths))
        if uninstanced:
            prov["uninstanced"] = Vt.StringArray(uninstanced)
        layer.customLayerData = {"usdposer": prov}
        if author is not None:
            author(stage)
    return out


def define_pose_library(stage: Usd.Stage, path: str, rig: Rig, pose: Pose, *, latents: np.ndarray | None = None,
                        scores: np.ndarray | None = None, time_codes: Sequence[float] | None = None) -> Usd.Prim:
    """Author a packed ``PoseSampleLibrary`` (packed arrays: the fastest to read and write): sample i at rows ``i*J:(i+1)*J``, stage units."""
    t, q, _ = to_stage_units(rig, pose)
    N, J = q.shape[:2]
    prim = stage.DefinePrim(path, "PoseSampleLibrary")
    prim.CreateAttribute("joints", Sdf.ValueTypeNames.TokenArray, custom=False).Set(Vt.TokenArray(list(rig.joints)))
    prim.CreateAttribute("numSamples", Sdf.ValueTypeNames.Int, custom=False).Set(int(N))
    xyzw = wxyz_to_xyzw(torch.as_tensor(q)).numpy().reshape(N * J, 4).astype(np.float32)
    prim.CreateAttribute("rotations", Sdf.ValueTypeNames.QuatfArray, custom=False).Set(Vt.QuatfArray.FromNumpy(xyzw))
    prim.CreateAttribute("translations", Sdf.ValueTypeNames.Float3Array, custom=False).Set(
        Vt.Vec3fArray.FromNumpy(t.reshape(N * J, 3).astype(np.float32)))
    if latents is not None:
        lat = np.asarray(latents, dtype=np.float32).reshape(N, -1)
        prim.CreateAttribute("latentDim", Sdf.ValueTypeNames.Int, custom=False).Set(int(lat.shape[1]))
        prim.CreateAttribute("latents", Sdf.ValueTypeNames.FloatArray, custom=False).Set(Vt.FloatArray.FromNumpy(lat.reshape(-1)))
    if scores is not None:
        prim.CreateAttribute("scores", Sdf.ValueTypeNames.FloatArray, custom=False).Set(
            Vt.FloatArray.FromNumpy(np.asarray(scores, dtype=np.float32).reshape(-1)))
    if time_codes is not None:
        prim.CreateAttribute("timeCodes", Sdf.ValueTypeNames.DoubleArray, custom=False).Set(
            Vt.DoubleArray([float(x) for x in time_codes]))
    return prim


def read_pose_library(prim: Usd.Prim, rig: Rig) -> tuple[Pose, np.ndarray | None]:
    """Inverse of :func:`define_pose_library`: (Pose in usdposer units, latents (N, D) or None). A library that does
    not hold what it says (its joints not the skeleton's, counts that disagree, values of the wrong type, NaN) is an
    :class:`InputError` naming the attribute."""
    from usdposer.core.rotations import xyzw_to_wxyz
    from usdposer.errors import InputError, whole

    where = f"{prim.GetPath()} in {prim.GetStage().GetRootLayer().identifier}"
    fix = "the layer was edited or is corrupt; sample again (`usdposer sample`)"

    def array(name: str, width: int | None, dtype=np.float64, required: bool = True) -> np.ndarray | None:
        attr = prim.GetAttribute(name)
        value = attr.Get() if attr else None
        if value is None:
            if required:
                raise InputError(f"{where}: no {name}; {fix}")
            return None
        try:
            a = np.asarray(value, dtype)
        except (TypeError, ValueError):
            raise InputError(f"{where}: {name} is not an array of numbers; {fix}") from None
        if a.ndim != (1 if width is None else 2) or (width is not None and a.shape[1] != width):
            raise InputError(f"{where}: {name} has the shape {a.shape}; {fix}")
        if not np.isfinite(a).all():
            raise InputError(f"{where}: {name} holds NaN or infinite values; {fix}")
        return a

    joints_attr = prim.GetAttribute("joints")
    joints = [str(j) for j in (joints_attr.Get() or [])] if joints_attr else []
    if tuple(joints) != rig.joints:
        raise InputError(f"{where}: its joints ({len(joints)}) are not skeleton {rig.skeleton_path}'s "
                         f"({rig.num_joints}); sample this skeleton again or pass --skeleton")
    n_attr = prim.GetAttribute("numSamples")
    N, J = n_attr.Get() if n_attr else None, len(joints)
    rot, tra = array("rotations", 4), array("translations", 3)
    if not whole(N, 1) or len(rot) != N * J or len(tra) != N * J:
        raise InputError(f"{where}: numSamples {N!r} with {len(rot)} rotations and {len(tra)} translations for {J} "
                         f"joints; {fix}")
    q = xyzw_to_wxyz(torch.from_numpy(rot)).reshape(N, J, 4)
    t = torch.from_numpy(tra).reshape(N, J, 3)
    t, q = from_stage_units(rig, t, q)
    base = Pose.rest(rig, N)
    latents = array("latents", None, np.float32, required=False)
    if latents is not None and len(latents):
        if len(latents) % N:
            raise InputError(f"{where}: {len(latents)} latent values for {N} samples; {fix}")
        latents = latents.reshape(N, -1)
    else:
        latents = None
    return Pose(q, t, base.scales), latents
