"""Rewrite a rigged USD asset the way another studio's tools would have made it, without changing how it deforms.

Each variant is a real UsdSkel stage that OpenUSD skins exactly like the source (up to a known rigid transform of the
world for ``facing-*``, and units/axis that ``usdposer.io`` converts for ``units-cm-zup``). They are what the pose
space must not care about (``tests/test_invariance.py``, ``bench/invariance.py``):

* ``joint-frames``: every joint's local axes turned by a random rotation (rest, bind and every clip rewritten);
* ``mirrored-frames``: the left side's joint frames mirrored (x negated: negative-determinant frames, as 3ds Max's
  Mirror leaves bones; the clips carry a -1 scale), rest, bind and every clip rewritten; every other joint where the
  names say no side;
* ``armature-0.01`` / ``armature-100``: every joint frame scaled, so the root carries the scale and its descendants'
  translations are in other units (a Mixamo-style export: root 0.01 with children in centimetres; Blender-style:
  root 100);
* ``units-cm-zup``: the stage in centimetres with +Z up;
* ``facing-minus-z`` / ``facing-plus-x``: the character turned to face -Z / +X instead of +Z;
* ``rest-tpose`` / ``rest-frame``: ``restTransforms`` set to a T-pose (upper arms raised to the horizontal) or to a
  frame of the character's own clip; bind transforms unchanged;
* ``names-mixamo`` / ``names-blender`` / ``names-max``: joints renamed as Mixamo (``mixamorig_LeftUpLeg``), Blender
  Rigify (``thigh_L``) and 3ds Max Biped (``Bip01_L_Thigh``) name them (body parts of
  ``usdposer.core.posespace.canonical_words``; other words kept);
* ``extra-joints``: joints that move no vertex: an end site under every leaf, sockets under the hands and head, IK
  targets under the root and a five-finger chain (4 joints each) under each hand;
* ``joint-order``: the skeleton's joints listed in another valid order (breadth first, each level's joints reversed,
  as another exporter walks the tree), every per-joint array and the skins' joint indices permuted with it; the
  animations keep their own joint order, which UsdSkel maps by token.

Matrices are handled as column-vector numpy arrays and crossed into Gf at the edge, as everywhere in ``usdposer.io``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pxr import Gf, Usd, UsdGeom, UsdSkel, Vt

from usdposer.errors import InputError
from usdposer.io.stage import atomic_path, check_output_path, gf_to_np, np_to_gf_array

KINDS = {
    "joint-frames": "every joint's local axes turned by a random rotation",
    "mirrored-frames": "the left side's joint frames mirrored (negative determinant, as 3ds Max's Mirror leaves them)",
    "armature-0.01": "joint frames scaled 0.01: root scale 0.01, children in centimetres (Mixamo-style)",
    "armature-100": "joint frames scaled 100: root scale 100 (Blender-style)",
    "units-cm-zup": "stage in centimetres with +Z up",
    "facing-minus-z": "the character faces -Z",
    "facing-plus-x": "the character faces +X",
    "rest-tpose": "restTransforms a T-pose (upper arms horizontal), bind unchanged",
    "rest-frame": "restTransforms a frame of the character's own clip, bind unchanged",
    "names-mixamo": "joints named as Mixamo names them (mixamorig_LeftUpLeg)",
    "names-blender": "joints named as Blender's Rigify names them (thigh_L)",
    "names-max": "joints named as 3ds Max's Biped names them (Bip01_L_Thigh)",
    "extra-joints": "end sites, sockets, IK targets and finger chains that move no vertex",
    "joint-order": "joints listed breadth first, each level reversed; skin indices remapped, clips in their old order",
}


@dataclass
class Variant:
    """What :func:`write_variant` made: ``to_source`` ``(4, 4)`` maps the variant's world (metres, +Y up, as
    ``usdposer.io`` reads it) onto the source's; ``names`` maps each renamed joint token to the source's."""

    kind: str
    path: str
    to_source: np.ndarray = field(default_factory=lambda: np.eye(4))
    names: dict[str, str] = field(default_factory=dict)
    added_joints: list[str] = field(default_factory=list)


def write_variant(src: str | os.PathLike, dst: str | os.PathLike, kind: str, *, seed: int = 0) -> Variant:
    """Write the ``kind`` variant (see the module docstring) of the UsdSkel asset ``src`` to ``dst``."""
    if kind not in KINDS:
        raise InputError(f"unknown variant {kind!r}; choose one of {', '.join(KINDS)}")
    dst = check_output_path(dst, [src])
    stage = Usd.Stage.Open(Usd.Stage.Open(str(src)).Flatten())
    rng = np.random.default_rng(seed)
    out = Variant(kind, str(dst))
    skels = [UsdSkel.Skeleton(p) for p in stage.Traverse() if p.IsA(UsdSkel.Skeleton)]
    if not skels:
        raise InputError(f"{src}: no Skeleton to transform")
    for skel in skels:
        _apply(stage, skel, kind, rng, out)
    if kind == "units-cm-zup":
        UsdGeom.SetStageMetersPerUnit(stage, 0.01 * UsdGeom.GetStageMetersPerUnit(stage) / 1.0)
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    with atomic_path(dst) as tmp:
        stage.GetRootLayer().Export(str(tmp))
    return out


# ------------------------------------------------------------------------------------------------------ helpers
def _skel_data(skel: UsdSkel.Skeleton):
    joints = [str(j) for j in skel.GetJointsAttr().Get()]
    parents = np.asarray(UsdSkel.Topology(joints).GetParentIndices(), dtype=np.int64)
    bind = gf_to_np(skel.GetBindTransformsAttr().Get())
    rest = gf_to_np(skel.GetRestTransformsAttr().Get())
    return joints, parents, bind, rest


def _anims(stage: Usd.Stage, joints: list[str]) -> list[UsdSkel.Animation]:
    """SkelAnimations of this skeleton (every animation joint is one of its joints)."""
    out = []
    for p in stage.Traverse():
        if p.IsA(UsdSkel.Animation):
            a = UsdSkel.Animation(p)
            toks = [str(t) for t in (a.GetJointsAttr().Get() or [])]
            if toks and all(t in joints for t in toks):
                out.append(a)
    return out


def _edit_anim(anim: UsdSkel.Animation, joints: list[str], fn) -> None:
    """Rewrite every time sample of ``anim``: ``fn(local (n, 4, 4), joint indices (n,)) -> local``."""
    toks = [str(t) for t in anim.GetJointsAttr().Get()]
    idx = np.array([joints.index(t) for t in toks])
    times = sorted(set(anim.GetTranslationsAttr().GetTimeSamples()) | set(anim.GetRotationsAttr().GetTimeSamples())
                   | set(anim.GetScalesAttr().GetTimeSamples())) or [Usd.TimeCode.Default()]
    values = []
    for t in times:
        values.append((t, fn(gf_to_np(anim.GetTransforms(t)), idx)))
    for attr in (anim.GetTranslationsAttr(), anim.GetRotationsAttr(), anim.GetScalesAttr()):
        attr.Clear()
    for t, local in values:
        anim.SetTransforms(np_to_gf_array(local), t)


def _meshes(stage: Usd.Stage, skel: UsdSkel.Skeleton) -> list[Usd.Prim]:
    path = skel.GetPrim().GetPath()
    out = []
    for p in stage.Traverse():
        if p.IsA(UsdGeom.Mesh):
            targets = UsdSkel.BindingAPI(p).GetSkeletonRel().GetTargets()
            anc = p.GetParent()
            while not targets and anc and not anc.IsPseudoRoot():
                targets = UsdSkel.BindingAPI(anc).GetSkeletonRel().GetTargets() if anc.HasAPI(UsdSkel.BindingAPI) else []
                anc = anc.GetParent()
            if path in targets:
                out.append(p)
    return out


def _rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _h(R: np.ndarray | None = None, s: float = 1.0) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = (np.eye(3) if R is None else R) * s
    return M


# ------------------------------------------------------------------------------------------------------ variants
def _apply(stage, skel, kind, rng, out: Variant) -> None:
    joints, parents, bind, rest = _skel_data(skel)
    J = len(joints)
    if kind in ("joint-frames", "mirrored-frames", "armature-0.01", "armature-100"):
        if kind == "joint-frames":
            C = np.stack([_h(_rotation(rng)) for _ in range(J)])
        elif kind == "mirrored-frames":
            from usdposer.core.posespace import name_side

            left = np.array([name_side(j.rsplit("/", 1)[-1]) < 0 for j in joints])
            left = left if left.any() else np.arange(J) % 2 == 1
            C = np.stack([np.diag([-1.0, 1.0, 1.0, 1.0]) if m else np.eye(4) for m in left])
        else:
            C = np.repeat(_h(s=0.01 if kind == "armature-0.01" else 100.0)[None], J, 0)
        Cinv = np.linalg.inv(C)
        parent_inv = np.stack([Cinv[p] if p >= 0 else np.eye(4) for p in parents])
        skel.GetBindTransformsAttr().Set(np_to_gf_array(bind @ C))
        skel.GetRestTransformsAttr().Set(np_to_gf_array(parent_inv @ rest @ C))
        for anim in _anims(stage, joints):
            _edit_anim(anim, joints, lambda L, idx: parent_inv[idx] @ L @ C[idx])
    elif kind.startswith("facing-"):
        Y = _h(_yaw(np.pi if kind == "facing-minus-z" else np.pi / 2))
        Y = _in_stage_axes(stage, Y)
        roots = parents < 0
        skel.GetBindTransformsAttr().Set(np_to_gf_array(Y @ bind))
        rest[roots] = Y @ rest[roots]
        skel.GetRestTransformsAttr().Set(np_to_gf_array(rest))
        for anim in _anims(stage, joints):
            _edit_anim(anim, joints, lambda L, idx: np.where(roots[idx][:, None, None], Y @ L, L))
        for mesh in _meshes(stage, skel):
            api = UsdSkel.BindingAPI(mesh)
            G = gf_to_np(api.GetGeomBindTransformAttr().Get() or Gf.Matrix4d(1.0))
            api.CreateGeomBindTransformAttr().Set(Gf.Matrix4d((Y @ G).T.tolist()))
        out.to_source = np.linalg.inv(_h(_yaw(np.pi if kind == "facing-minus-z" else np.pi / 2)))
    elif kind == "units-cm-zup":
        m = UsdGeom.GetStageMetersPerUnit(stage)
        up = str(UsdGeom.GetStageUpAxis(stage))
        if up != "Y":
            raise InputError(f"{out.path}: units-cm-zup expects a +Y-up source (got {up})")
        U = _h(np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]), s=m / (0.01 * m) if m else 100.0)  # Y-up -> Z-up, x100
        Uinv = np.linalg.inv(U)
        skel.GetBindTransformsAttr().Set(np_to_gf_array(U @ bind @ Uinv))
        skel.GetRestTransformsAttr().Set(np_to_gf_array(U @ rest @ Uinv))
        for anim in _anims(stage, joints):
            _edit_anim(anim, joints, lambda L, idx: U @ L @ Uinv)
        for mesh in _meshes(stage, skel):
            _transform_mesh(mesh, U)
    elif kind in ("rest-tpose", "rest-frame"):
        new = _tpose(joints, parents, bind, rest) if kind == "rest-tpose" else _clip_frame(stage, skel, joints, rest)
        skel.GetRestTransformsAttr().Set(np_to_gf_array(new))
    elif kind.startswith("names-"):
        _rename(stage, skel, joints, kind.split("-", 1)[1], out)
    elif kind == "extra-joints":
        _add_joints(stage, skel, joints, parents, bind, rest, out)
    elif kind == "joint-order":
        _reorder(stage, skel, joints, parents, bind, rest)


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _in_stage_axes(stage, M: np.ndarray) -> np.ndarray:
    """A +Y-up world transform expressed in the stage's own axes."""
    if str(UsdGeom.GetStageUpAxis(stage)) == "Z":
        A = _h(np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]))  # Z-up -> Y-up
        return np.linalg.inv(A) @ M @ A
    return M


def _transform_mesh(mesh: Usd.Prim, U: np.ndarray) -> None:
    """Points and normals by the similarity ``U``; geomBindTransform conjugated so skinning commutes with ``U``."""
    g = UsdGeom.Mesh(mesh)
    P = np.asarray(g.GetPointsAttr().Get(), dtype=np.float64)
    g.GetPointsAttr().Set(Vt.Vec3fArray.FromNumpy((P @ U[:3, :3].T + U[:3, 3]).astype(np.float32)))
    R = U[:3, :3] / np.cbrt(np.linalg.det(U[:3, :3]))
    n = g.GetNormalsAttr().Get()
    if n is not None and len(n):
        g.GetNormalsAttr().Set(Vt.Vec3fArray.FromNumpy((np.asarray(n, dtype=np.float64) @ R.T).astype(np.float32)))
    ext = g.GetExtentAttr().Get()
    if ext is not None:
        Q = P @ U[:3, :3].T + U[:3, 3]
        g.GetExtentAttr().Set(Vt.Vec3fArray([Gf.Vec3f(*Q.min(0)), Gf.Vec3f(*Q.max(0))]))
    api = UsdSkel.BindingAPI(mesh)
    G = gf_to_np(api.GetGeomBindTransformAttr().Get() or Gf.Matrix4d(1.0))
    api.CreateGeomBindTransformAttr().Set(Gf.Matrix4d((U @ G @ np.linalg.inv(U)).T.tolist()))


def _world(local: np.ndarray, parents: np.ndarray) -> np.ndarray:
    W = local.copy()
    for j, p in enumerate(parents):
        if p >= 0:
            W[j] = W[p] @ local[j]
    return W


def _tpose(joints, parents, bind, rest) -> np.ndarray:
    """The rest pose with every upper arm swung so that its bone (to its first child) points sideways, horizontal."""
    from usdposer.core.geometry import rotation_between
    from usdposer.core.posespace import canonical_words

    local = rest.copy()
    W = _world(local, parents)
    children = {j: [c for c in range(len(joints)) if parents[c] == j] for j in range(len(joints))}
    arms = [j for j, t in enumerate(joints) if canonical_words(t.rsplit("/", 1)[-1]) == ["upperarm"] and children[j]]
    if not arms:
        raise InputError("rest-tpose needs joints named as upper arms (UpperArm, upperarm, Arm...)")
    for j in arms:
        W = _world(local, parents)
        d = W[children[j][0], :3, 3] - W[j, :3, 3]
        target = np.array([np.sign(d[0]) or 1.0, 0.0, 0.0]) * np.linalg.norm(d)
        R = rotation_between(d, target)
        p = parents[j]
        Wp = W[p] if p >= 0 else np.eye(4)
        new_world = W[j].copy()
        new_world[:3, :3] = R @ W[j, :3, :3]
        local[j] = np.linalg.inv(Wp) @ new_world
    return local


def _clip_frame(stage, skel, joints, rest) -> np.ndarray:
    """Local transforms of the middle frame of the skeleton's bound (or first) clip; rest where it says nothing."""
    anims = _anims(stage, joints)
    src = skel.GetPrim().GetRelationship("skel:animationSource")
    bound = [a for a in anims if src and src.GetTargets() and a.GetPrim().GetPath() == src.GetTargets()[0]]
    anim = (bound or anims or [None])[0]
    if anim is None:
        raise InputError("rest-frame needs a SkelAnimation")
    times = sorted(anim.GetRotationsAttr().GetTimeSamples()) or [Usd.TimeCode.Default()]
    t = times[len(times) // 2]
    local = rest.copy()
    toks = [str(x) for x in anim.GetJointsAttr().Get()]
    L = gf_to_np(anim.GetTransforms(t))
    for k, tok in enumerate(toks):
        local[joints.index(tok)] = L[k]
    return local


# ------------------------------------------------------------------------------------------------------ names
_CONVENTIONS = {
    "mixamo": {"prefix": "mixamorig_", "sides": ("Left", "Right"), "join": "{prefix}{side}{part}",
               "parts": {"hips": "Hips", "spine": "Spine", "neck": "Neck", "head": "Head", "clavicle": "Shoulder",
                         "upperarm": "Arm", "forearm": "ForeArm", "hand": "Hand", "thigh": "UpLeg", "shin": "Leg",
                         "foot": "Foot", "toe": "ToeBase"}},
    "blender": {"prefix": "", "sides": ("_L", "_R"), "join": "{part}{side}",
                "parts": {"hips": "pelvis", "spine": "spine", "neck": "neck", "head": "head", "clavicle": "shoulder",
                          "upperarm": "upper_arm", "forearm": "forearm", "hand": "hand", "thigh": "thigh",
                          "shin": "shin", "foot": "foot", "toe": "toe"}},
    "max": {"prefix": "Bip01_", "sides": ("L_", "R_"), "join": "{prefix}{side}{part}",
            "parts": {"hips": "Pelvis", "spine": "Spine", "neck": "Neck", "head": "Head", "clavicle": "Clavicle",
                      "upperarm": "UpperArm", "forearm": "Forearm", "hand": "Hand", "thigh": "Thigh", "shin": "Calf",
                      "foot": "Foot", "toe": "Toe"}},
}


def convention_name(name: str, convention: str) -> str:
    """``name`` as ``convention`` (mixamo, blender, max) would write it: its body part, side and prefix in that
    tool's style; words that are no body part are kept (CamelCase)."""
    from usdposer.core.posespace import _SIDES, canonical_words, name_side, name_words

    c = _CONVENTIONS[convention]
    words = canonical_words(name) or [w for w in name_words(name) if w not in _SIDES]
    if convention == "blender":  # snake_case
        part = "_".join(c["parts"].get(w, w) for w in words) or "joint"
    else:  # CamelCase
        part = "".join(c["parts"].get(w, w.capitalize()) for w in words) or "Joint"
    digits = "".join(re.findall(r"\d+", re.sub(r"(?i)left|right", "", name)))
    side = name_side(name)
    side_text = "" if side == 0 else c["sides"][0 if side < 0 else 1]
    if convention == "blender" and digits:
        part = f"{part}_{digits.zfill(3)}"
    elif digits:
        part = f"{part}{digits}"
    return c["join"].format(prefix=c["prefix"], side=side_text if convention != "blender" else "",
                            part=part) + (side_text if convention == "blender" else "")


def _rename(stage, skel, joints, convention, out: Variant) -> None:
    leaves = [j.rsplit("/", 1)[-1] for j in joints]
    new_leaves, used = [], set()
    for leaf in leaves:
        n = convention_name(leaf, convention)
        base, k = n, 1
        while n in used:
            n, k = f"{base}{k}", k + 1  # digits are not part of a name's words: the features stay the same
        used.add(n)
        new_leaves.append(n)
    index = {j: i for i, j in enumerate(joints)}
    new_tokens = []
    for j in joints:
        parts = j.split("/")
        new_tokens.append("/".join(new_leaves[index["/".join(parts[:k + 1])]] for k in range(len(parts))))
    remap = dict(zip(joints, new_tokens))
    skel.GetJointsAttr().Set(Vt.TokenArray(new_tokens))
    skel.GetJointNamesAttr().Set(Vt.TokenArray(new_leaves))
    for anim in _anims(stage, joints):
        anim.GetJointsAttr().Set(Vt.TokenArray([remap[str(t)] for t in anim.GetJointsAttr().Get()]))
    for mesh in _meshes(stage, skel):
        attr = UsdSkel.BindingAPI(mesh).GetJointsAttr()
        if attr and attr.HasAuthoredValue():
            attr.Set(Vt.TokenArray([remap[str(t)] for t in attr.Get()]))
    for prim in stage.Traverse():  # limits and physics that name joints
        attr = prim.GetAttribute("usdposer:jointLimits:joints")
        if attr and attr.HasAuthoredValue():
            attr.Set(Vt.TokenArray([remap.get(str(t), str(t)) for t in attr.Get()]))
    out.names.update({v: k for k, v in remap.items()})


# ------------------------------------------------------------------------------------------------------ joints
def _add_joints(stage, skel, joints, parents, bind, rest, out: Variant) -> None:
    from usdposer.core.posespace import canonical_words

    J = len(joints)
    tokens, par = list(joints), list(parents)
    rest_all, bind_all = list(rest), list(bind)
    world = list(_world(rest, parents))
    size = float(np.linalg.norm(np.ptp(np.stack(world)[:, :3, 3], 0))) or 1.0
    used = {j.rsplit("/", 1)[-1] for j in joints}

    def add(name: str, parent: int, offset: np.ndarray) -> int:
        """A joint under ``parent`` at ``offset`` (skeleton-space direction and length) from it, frame as the
        parent's; bind consistent with the parent's (it moves nothing, so any consistent value is right)."""
        base, k = name, 1
        while name in used:
            name, k = f"{base}{k}", k + 1
        used.add(name)
        L = np.eye(4)
        L[:3, 3] = np.linalg.solve(world[parent][:3, :3], offset)
        tokens.append(f"{tokens[parent]}/{name}")
        par.append(parent)
        rest_all.append(L)
        bind_all.append(bind_all[parent] @ L)
        world.append(world[parent] @ L)
        return len(tokens) - 1

    for j in range(J):
        leaf = joints[j].rsplit("/", 1)[-1]
        words = canonical_words(leaf)
        if j not in par[:J]:  # a leaf: an end site along its bone
            p = parents[j]
            d = world[j][:3, 3] - world[p][:3, 3] if p >= 0 else np.array([0.0, 0.02 * size, 0.0])
            add(f"{leaf}_end", j, 0.3 * d if np.linalg.norm(d) > 0 else np.array([0.0, 0.02 * size, 0.0]))
        if words[:1] in (["hand"], ["head"]):
            add(f"{leaf}_socket", j, np.array([0.0, 0.0, 0.03 * size]))
        if words[:1] == ["hand"]:
            for f in range(5):
                parent = j
                for k in range(4):
                    step = np.array([0.004 * size * (f - 2), -0.01 * size, 0.0])
                    parent = add(f"extra_finger{f}_{k + 1}_{leaf}", parent, step)
    root = int(np.nonzero(parents < 0)[0][0])
    for side in (1.0, -1.0):
        add(f"IK_target_{'l' if side > 0 else 'r'}", root, np.array([0.1 * size * side, -0.01 * size, 0.0]))
    skel.GetJointsAttr().Set(Vt.TokenArray(tokens))
    skel.GetJointNamesAttr().Set(Vt.TokenArray([t.rsplit("/", 1)[-1] for t in tokens]))
    skel.GetBindTransformsAttr().Set(np_to_gf_array(np.stack(bind_all)))
    skel.GetRestTransformsAttr().Set(np_to_gf_array(np.stack(rest_all)))
    out.added_joints = tokens[J:]


def _reorder(stage, skel, joints, parents, bind, rest) -> None:
    """List the joints breadth first, each level reversed (parents still first); per-joint arrays and the skins'
    joint indices follow. Animations and ``usdposer:jointLimits`` name their joints, so they stay as they are."""
    depth = np.zeros(len(joints), dtype=np.int64)
    for j, p in enumerate(parents):  # parents come first
        depth[j] = depth[p] + 1 if p >= 0 else 0
    order = sorted(range(len(joints)), key=lambda j: (depth[j], -j))  # parents still first
    new_index = np.empty(len(joints), dtype=np.int64)
    new_index[order] = np.arange(len(joints))
    skel.GetJointsAttr().Set(Vt.TokenArray([joints[j] for j in order]))
    names = skel.GetJointNamesAttr().Get()
    if names:
        skel.GetJointNamesAttr().Set(Vt.TokenArray([names[j] for j in order]))
    skel.GetBindTransformsAttr().Set(np_to_gf_array(bind[order]))
    skel.GetRestTransformsAttr().Set(np_to_gf_array(rest[order]))
    for mesh in _meshes(stage, skel):
        api = UsdSkel.BindingAPI(mesh)
        if api.GetJointsAttr().HasAuthoredValue():  # indices into the mesh's own joint list: nothing to remap
            continue
        pv = api.GetJointIndicesPrimvar()
        pv.Set(Vt.IntArray(new_index[np.asarray(pv.Get(), dtype=np.int64)].tolist()))


def variant_path(folder: str | os.PathLike, source: str | os.PathLike, kind: str) -> Path:
    """Where :func:`write_variant` output for ``kind`` of ``source`` goes in ``folder``."""
    return Path(folder) / f"{Path(source).stem}.{kind}.usdc"


