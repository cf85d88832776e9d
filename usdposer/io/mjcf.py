"""MuJoCo MJCF (+ its ``.skn`` skin) -> UsdSkel.

* Skeleton: one joint per ``<body>`` under ``<worldbody>``, parents first; a body's rest transform is its ``pos``
  plus ``quat`` / ``euler`` / ``axisangle`` relative to its parent (``<compiler angle>`` and ``eulerseq`` honoured).
  The rest pose is ``qpos0`` (every joint at 0). Hinge pivots (``joint pos``) are not represented: the skeleton
  rotates each body about its own origin.
* Joint limits: each ``hinge`` with a range becomes bounds on the body-local axis its ``axis`` points along (the
  dominant component; a negative axis flips the interval), in degrees, in the JointLimitsAPI schema. Axes no hinge
  drives are locked (0, 0); bodies with a free or ball joint are unlimited (NaN). Defaults classes (``<default
  class>``, ``childclass``) are resolved as MuJoCo does.
* Skin: the ``<skin file=...>`` binary: vertices in the bind pose, one bone per body with its bind position and
  quaternion (the body's world pose at bind) and its vertex weights.
MJCF is metres and +Z up; the stage says so (the reader converts to +Y up).
"""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from usdposer.core.rotations import axis_angle_to_quat, quat_to_matrix
from usdposer.errors import InputError
from usdposer.io.paths import resolve_inside

if TYPE_CHECKING:
    from usdposer.io.rig_stage import RigData


@dataclass
class Skin:
    """A MuJoCo ``.skn`` skin: points (V, 3), faces (F, 3), per-bone names, binds (B, 4, 4), indices/weights (V, K)."""

    points: np.ndarray
    faces: np.ndarray
    bone_names: list[str]
    binds: np.ndarray
    indices: np.ndarray
    weights: np.ndarray


def _quat_matrix(w: float, x: float, y: float, z: float) -> np.ndarray:
    """(3, 3) rotation of a (w, x, y, z) quaternion, normalised (MJCF quaternions need not be unit)."""
    return quat_to_matrix(torch.tensor([w, x, y, z], dtype=torch.float64)).numpy()


def _axis_angle_matrix(axis, angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` radians about ``axis`` (any length)."""
    axis = torch.as_tensor(axis, dtype=torch.float64)
    return quat_to_matrix(axis_angle_to_quat(axis / (axis.norm() or 1.0) * angle)).numpy()


def read_skn(path: str | os.PathLike) -> Skin:
    """Read MuJoCo's binary skin format (little-endian int/float blocks); raises InputError when it is cut short."""
    path = Path(path)
    data = path.read_bytes()
    try:
        nvert, ntex, nface, nbone = struct.unpack_from("<4i", data, 0)
        off = 16
        pts = np.frombuffer(data, "<f4", 3 * nvert, off).reshape(-1, 3).astype(np.float64)
        off += 12 * nvert + 8 * ntex
        faces = np.frombuffer(data, "<i4", 3 * nface, off).reshape(-1, 3).astype(np.int64)
        off += 12 * nface
        influences: list[list[tuple[int, float]]] = [[] for _ in range(nvert)]
        names, binds = [], np.tile(np.eye(4), (nbone, 1, 1))
        for b in range(nbone):
            names.append(data[off:off + 40].split(b"\0")[0].decode("utf-8", "replace"))
            off += 40
            binds[b, :3, 3] = np.frombuffer(data, "<f4", 3, off)
            binds[b, :3, :3] = _quat_matrix(*np.frombuffer(data, "<f4", 4, off + 12).astype(np.float64))
            n = struct.unpack_from("<i", data, off + 28)[0]
            ids = np.frombuffer(data, "<i4", n, off + 32)
            ws = np.frombuffer(data, "<f4", n, off + 32 + 4 * n)
            off += 32 + 8 * n
            for i, wt in zip(ids.tolist(), ws.tolist()):
                influences[i].append((b, wt))
    except (struct.error, ValueError) as exc:
        raise InputError(f"{path}: the skin file is truncated or not a MuJoCo .skn ({exc})") from exc
    K = max(1, max(len(v) for v in influences))
    idx = np.zeros((nvert, K), np.int64)
    wts = np.zeros((nvert, K))
    for i, inf in enumerate(influences):
        for k, (b, wt) in enumerate(inf):
            idx[i, k], wts[i, k] = b, wt
    total = wts.sum(1, keepdims=True)
    if (total <= 0).any():
        raise InputError(f"{path}: {int((total <= 0).sum())} skin vertices have no bone weight")
    return Skin(pts, faces, names, binds, idx, wts / total)


class _Defaults:
    """MJCF default classes: ``attrs(tag, element, childclass)`` returns the element's attributes over its class's."""

    def __init__(self, root: ET.Element):
        self.classes: dict[str, dict[str, dict[str, str]]] = {}
        for d in root.findall("default"):
            self._walk(d, {})

    def _walk(self, node: ET.Element, inherited: dict[str, dict[str, str]]) -> None:
        name = node.get("class", "main")
        own = {tag: dict(attrs) for tag, attrs in inherited.items()}
        for child in node:
            if child.tag != "default":
                own.setdefault(child.tag, {}).update(child.attrib)
        self.classes[name] = own
        for child in node.findall("default"):
            self._walk(child, own)

    def attrs(self, tag: str, el: ET.Element, childclass: str | None) -> dict[str, str]:
        cls = el.get("class") or childclass or "main"
        out = dict(self.classes.get(cls, self.classes.get("main", {})).get(tag, {}))
        out.update(el.attrib)
        return out


def _floats(s: str | None, n: int, default, what: str = "value") -> np.ndarray:
    if s is None:
        return np.asarray(default, dtype=np.float64)
    try:
        v = np.array([float(x) for x in s.split()])
    except ValueError:
        raise InputError(f"MJCF {what} {s!r} is not {n} numbers; fix the file") from None
    if len(v) != n:
        raise InputError(f"MJCF {what} {s!r} should have {n} numbers; fix the file")
    if not np.isfinite(v).all():
        raise InputError(f"MJCF {what} {s!r} is not finite; fix the file")
    return v


MAX_INCLUDE_DEPTH = 16


def _expand_includes(root: ET.Element, path: Path, base: Path, depth: int = 0) -> None:
    """Replace every ``<include file=...>`` by the children of the included file's ``<mujoco>`` (MuJoCo's rule), the
    file resolved inside the model's folder (a reference outside it is refused); includes nest up to
    MAX_INCLUDE_DEPTH (a cycle stops there). A missing included file is skipped: copies of MuJoCo models often leave
    out the shared cosmetic files (skybox, materials), and the skeleton never lives there."""
    for parent in list(root.iter()):
        for k, el in enumerate(list(parent)):
            if el.tag != "include":
                continue
            if depth >= MAX_INCLUDE_DEPTH:
                raise InputError(f"{path}: <include> nests deeper than {MAX_INCLUDE_DEPTH} (a cycle?); fix the file")
            ref = el.get("file")
            if not ref:
                raise InputError(f"{path}: an <include> has no file; fix the file")
            file = resolve_inside(path, ref, "<include>", root=base)
            if not file.is_file():  # often the cosmetic "common/skybox.xml" kind left out of a copy: skip it
                parent.remove(el)
                continue
            try:
                sub = ET.parse(file).getroot()
            except ET.ParseError as exc:
                raise InputError(f"{file}: not a readable MJCF XML file ({exc})") from exc
            _expand_includes(sub, file, base, depth + 1)
            parent.remove(el)
            for i, child in enumerate(list(sub)):
                parent.insert(k + i, child)


def _euler_matrix(angles: np.ndarray, seq: str) -> np.ndarray:
    R = np.eye(3)
    for a, axis in zip(angles, seq):
        Ra = _axis_angle_matrix(np.eye(3)["xyz".index(axis.lower())], a)
        R = R @ Ra if axis.islower() else Ra @ R  # lower case: rotating axes; upper case: fixed axes
    return R


def mjcf_to_rig(path: str | os.PathLike, skin_path: str | os.PathLike | None = None) -> RigData:
    """Parse an MJCF file (its ``<include>`` files, and its skin, found through ``<skin file>`` unless given) into
    ``RigData``; files it refers to must lie inside its folder."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"{path}: not a readable MJCF XML file ({exc})") from exc
    if root.tag != "mujoco":
        raise InputError(f"{path}: not an MJCF file (root element <{root.tag}>, expected <mujoco>)")
    try:
        _expand_includes(root, path, path.parent)
        return _mjcf_rig(root, path, skin_path)
    except InputError as exc:
        text = str(exc)
        raise InputError(text if text.startswith(str(path)) else f"{path}: {text}") from None


def _mjcf_rig(root: ET.Element, path: Path, skin_path) -> RigData:
    from usdposer.io.rig_stage import MeshData, RigData, SkeletonData
    from usdposer.io.write_skel import unique_names

    compiler = {}
    for c in root.findall("compiler"):
        compiler.update(c.attrib)
    to_rad = (lambda v: v) if compiler.get("angle", "degree") == "radian" else np.radians
    to_deg = (lambda v: v) if compiler.get("angle", "degree") == "degree" else np.degrees
    eulerseq = compiler.get("eulerseq", "xyz")
    defaults = _Defaults(root)
    world = root.find("worldbody")
    if world is None or world.find("body") is None:
        raise InputError(f"{path}: the MJCF has no <body> under <worldbody>, so there is no skeleton to import")

    names, parents, local, limits = [], [], [], []

    def visit(body: ET.Element, parent: int, childclass: str | None) -> None:
        j = len(names)
        names.append(body.get("name") or f"body{j}")
        parents.append(parent)
        M = np.eye(4)
        M[:3, 3] = _floats(body.get("pos"), 3, [0, 0, 0])
        if body.get("quat"):
            M[:3, :3] = _quat_matrix(*_floats(body.get("quat"), 4, None))
        elif body.get("euler"):
            M[:3, :3] = _euler_matrix(to_rad(_floats(body.get("euler"), 3, None)), eulerseq)
        elif body.get("axisangle"):
            aa = _floats(body.get("axisangle"), 4, None)
            M[:3, :3] = _axis_angle_matrix(aa[:3], to_rad(aa[3]))
        elif body.get("xyaxes") or body.get("zaxis"):
            raise InputError(f"{path}: body {names[-1]!r} uses xyaxes/zaxis orientation, which is not supported yet; "
                             "use quat, euler or axisangle")
        local.append(M)
        cc = body.get("childclass") or childclass
        lim = np.zeros((3, 2))  # welded unless a joint frees an axis
        for el in body:
            if el.tag == "freejoint":
                lim[:] = np.nan
            elif el.tag == "joint":
                a = defaults.attrs("joint", el, cc)
                kind = a.get("type", "hinge")
                if kind in ("free", "ball"):
                    lim[:] = np.nan
                elif kind == "hinge":
                    axis = _floats(a.get("axis"), 3, [0, 0, 1])
                    i = int(np.argmax(np.abs(axis)))
                    limited = a.get("limited", "auto")
                    has_range = "range" in a and (limited == "true" or limited == "auto")
                    if not has_range:
                        lim[i] = np.nan
                        continue
                    lo, hi = to_deg(_floats(a["range"], 2, None, f"range of joint {a.get('name', '')!r}")) * np.sign(axis[i])
                    lo, hi = min(lo, hi), max(lo, hi)
                    if np.isfinite(lim[i]).all() and lim[i].any():  # a second hinge on this axis: union
                        lo, hi = min(lo, lim[i, 0]), max(hi, lim[i, 1])
                    lim[i] = (lo, hi)
        limits.append(lim)
        for child in body.findall("body"):
            visit(child, j, cc)

    for body in world.findall("body"):
        visit(body, -1, body.get("childclass"))
    seen = set()
    for n in names:
        if n in seen:
            raise InputError(f"body name {n!r} appears twice (MuJoCo refuses repeated names too); rename one")
        seen.add(n)
    names = unique_names(names)
    tokens: list[str] = []
    for j, p in enumerate(parents):
        tokens.append(names[j] if p < 0 else f"{tokens[p]}/{names[j]}")
    rest_local = np.stack(local)
    rest_world = np.zeros_like(rest_local)
    for j, p in enumerate(parents):
        rest_world[j] = rest_local[j] if p < 0 else rest_world[p] @ rest_local[j]
    bind = rest_world.copy()
    meshes = []
    if skin_path is None:
        skin_el = root.find(".//skin[@file]")
        if skin_el is not None:
            ref = skin_el.get("file")
            cands = [resolve_inside(path, ref, "skin file"),
                     resolve_inside(path, str(Path(compiler.get("meshdir", "")) / ref), "skin file")]
            skin_path = next((c for c in cands if c.is_file()), None)
            if skin_path is None:
                raise InputError(f"{path}: skin file {skin_el.get('file')!r} not found next to the MJCF; "
                                 "pass --skin PATH")
    if skin_path is not None:
        skin = read_skn(skin_path)
        index = {n: j for j, n in enumerate(names)}
        missing = [n for n in skin.bone_names if n not in index]
        if missing:
            raise InputError(f"{skin_path}: skin bones {missing[:3]} are not bodies of {path.name}")
        bone_joint = np.array([index[n] for n in skin.bone_names])
        bind[bone_joint] = skin.binds
        meshes.append(MeshData("skin", skin.points, skin.faces, bone_joint[skin.indices], skin.weights))
    skeleton = SkeletonData(tokens, rest_local, bind, limits=np.stack(limits),
                            limits_source=f"MJCF hinge ranges ({path.name})")
    return RigData(name=root.get("model") or path.stem, skeletons=[skeleton], meshes=meshes, up_axis="Z",
                   meters_per_unit=1.0)
