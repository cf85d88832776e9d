"""glTF 2.0 -> UsdSkel (``usdposer import``).

What becomes what:
    - skins -> Skeletons. Skins that share joints with identical inverse bind matrices (a character split into
      several skinned meshes) merge into one Skeleton; the joints are every skin joint, ordered parents before
      children (depth-first over the node tree), named by node name or ``joint_<node>`` when unnamed, made unique;
    - skeleton space = glTF scene space (glTF ignores a skinned mesh node's own transform), so
      ``bindTransforms = inverse(inverseBindMatrices)``, ``geomBindTransform = identity``, and a root joint's local
      transform includes its non-joint ancestors (Fox's ``_rootJoint``, Quaternius' ``Armature`` scale);
    - skinned primitives -> Mesh prims with normals, ``primvars:st`` (the UV set the base-colour texture reads, its
      ``texCoord`` or ``KHR_texture_transform``'s; V flipped to USD's convention), vertex colours,
      ``JOINTS_n``/``WEIGHTS_n`` (weights renormalised to sum to 1, as glTF requires and engines do) and a
      UsdPreviewSurface material with the base-colour factor and texture (textures are written beside the output in
      ``<name>_textures/``);
    - meshes under a joint without a skin -> rigidly bound Meshes (constant joint influence);
    - every animation -> its own SkelAnimation under the Skeleton, sampled at the clip's keyframe times (exact for
      LINEAR/STEP keys; ``fps`` resamples every clip on a uniform grid instead). The first clip (or ``bind_clip``) is
      bound by ``skel:animationSource``; the ``usdposerClip`` variant set on the Skeleton selects any other clip.
      ``timeCodesPerSecond`` is the keyframe rate (or ``fps``), time code = seconds x rate;
    - morph targets of skinned or rigidly bound meshes -> ``UsdSkel.BlendShape`` children of their Mesh prims (POSITION
      deltas; ``pointIndices`` where a target moves only some points), named by the mesh's ``extras.targetNames``
      (Blender's and three.js' exporters write them) or ``target_<i>``; animated ``weights`` -> each clip's
      ``blendShapeWeights`` at its time codes (a clip that does not animate them holds the mesh's default weights).
      Normal and tangent deltas are left out (UsdSkel recomputes normals); an unskinned mesh's targets are not
      imported (UsdSkel applies blend shapes through a skeleton binding; reported);
    - metres and +Y up, as glTF defines them, are stated in the stage.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pxr import Tf, Vt

from usdposer.core.kinematics import decompose_trs
from usdposer.errors import InputError
from usdposer.io.gltf_read import Channel, GltfData, animation_channels, load_gltf, sample_channels
from usdposer.io.paths import resolve_inside
from usdposer.io.rig_stage import (
    BlendShapeData,
    ClipData,
    MaterialData,
    MeshData,
    RigData,
    SkeletonData,
    write_rig_stage,
)
from usdposer.io.stage import check_output_path
from usdposer.io.write_skel import identifier, unique_names
from usdposer.results import Result


@dataclass
class ImportReport(Result):
    """What ``usdposer import`` did (the ``--json`` contract)."""

    source: str
    output: str
    skeletons: list[dict] = field(default_factory=list)
    meshes: list[dict] = field(default_factory=list)
    clips: list[dict] = field(default_factory=list)
    textures: list[str] = field(default_factory=list)
    time_codes_per_second: float = 24.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Skeleton:
    nodes: list[int]  # glTF node per joint, parents before children
    ibm: dict[int, np.ndarray]  # node -> (4, 4) inverse bind matrix
    skins: list[int]
    tokens: list[str] = field(default_factory=list)
    parents: np.ndarray | None = None


@dataclass
class _Morph:
    """A node whose mesh has morph targets, bound to ``skeleton``: its blend-shape channel tokens (B,) and default
    weights (B,)."""

    skeleton: int
    tokens: list[str]
    default: np.ndarray


def import_gltf(src: str | os.PathLike, out: str | os.PathLike, *, fps: float | None = None,
                bind_clip: str | None = None, arguments: list[str] | None = None) -> ImportReport:
    """Convert a .gltf/.glb file into a UsdSkel stage at ``out`` (see the module docstring). Raises InputError."""
    src, out = Path(src), check_output_path(out, [src])
    report = ImportReport(source=str(src), output=str(out))
    rig = gltf_to_rig(src, fps=fps, report=report)
    written = write_rig_stage(rig, out, sources=[src], arguments=arguments, bind_clip=bind_clip, fps=fps)
    report.time_codes_per_second = rig.time_codes_per_second
    for sk, prim, clip_paths in zip(rig.skeletons, written.skeletons, written.clips):
        report.skeletons.append({"prim": prim, "joints": len(sk.tokens), "skins": list(sk.custom["gltf:skins"])})
        for c, path in zip(sk.clips, clip_paths):
            report.clips.append({"skeleton": prim, "prim": path, "name": c.custom["gltf:name"],
                                 "frames": len(c.time_codes),
                                 "seconds": (c.time_codes[-1] - c.time_codes[0]) / rig.time_codes_per_second})
    for m, path in zip(rig.meshes, written.meshes):
        info = {"prim": path, "points": len(m.points), "faces": len(m.faces),
                "skeleton": written.skeletons[m.skeleton] if m.indices is not None else None}
        if m.indices is not None:
            info["influences"] = int(m.indices.shape[1])
            if m.rigid:
                info["rigid_joint"] = rig.skeletons[m.skeleton].tokens[int(m.indices[0, 0])]
            if m.blend_shapes:
                info["blend_shapes"] = [b.token for b in m.blend_shapes]
        report.meshes.append(info)
    report.textures = written.textures
    return report


def gltf_to_rig(src: str | os.PathLike, *, fps: float | None = None, report: ImportReport | None = None) -> RigData:
    """Read a .gltf/.glb file into a :class:`RigData` (metres, +Y up); warnings go to ``report``."""
    src = Path(src)
    report = report if report is not None else ImportReport(source=str(src), output="")
    gltf = load_gltf(src)
    data = GltfData(gltf, src)
    if not gltf.skins:
        morph = any(p.targets for m in gltf.meshes or [] for p in m.primitives)
        what = "only morph targets" if morph else "no skin"
        raise InputError(f"{src}: the file has {what} (no glTF skin), so there is no skeleton to import; "
                         "rig it first (e.g. in Blender) and re-export with skinning")
    groups = _group_skins(data, report)
    for sk in groups:
        _name_joints(data, sk)
    morphs = _morphs(data, groups, report)
    clips, tcps = _sample_clips(data, groups, morphs, fps, report)
    skeletons = []
    for sk, sk_clips in zip(groups, clips):
        skeletons.append(SkeletonData(
            tokens=sk.tokens,
            rest_local=data.relative_matrices(sk.nodes, sk.parents)[0],
            bind_world=np.stack([np.linalg.inv(sk.ibm[n]) for n in sk.nodes]),
            clips=sk_clips, custom={"gltf:skins": Vt.IntArray(sk.skins)}))
    materials, uv_sets = _materials(data)
    meshes = _meshes(data, groups, materials, uv_sets, morphs, report)
    return RigData(name=src.stem, skeletons=skeletons, meshes=meshes, materials=materials, up_axis="Y",
                   meters_per_unit=1.0, time_codes_per_second=tcps)


# ------------------------------------------------------------------------------------------------------ skeletons
def _group_skins(data: GltfData, report: ImportReport) -> list[_Skeleton]:
    """One _Skeleton per set of skins that share joints with identical inverse bind matrices."""
    groups: list[_Skeleton] = []
    for s, skin in enumerate(data.gltf.skins):
        joints = list(skin.joints or [])
        if not joints:
            report.warnings.append(f"skin {s} has no joints; skipped")
            continue
        if skin.inverseBindMatrices is not None:
            ibm = data.accessor(skin.inverseBindMatrices, ("MAT4",), f"skin {s} inverseBindMatrices")
            ibm = ibm.reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
            if len(ibm) < len(joints) or not np.isfinite(ibm).all():
                raise InputError(f"{data.path}: skin {s} has {len(ibm)} inverse bind matrices for {len(joints)} joints, "
                                 "or NaN in them; re-export the skin")
            if (np.abs(np.linalg.det(ibm[:, :3, :3])) < 1e-12).any():
                raise InputError(f"{data.path}: skin {s} has a singular inverse bind matrix (a joint scaled to zero "
                                 "at bind time); re-export the skin")
        else:
            ibm = np.repeat(np.eye(4)[None], len(joints), 0)
        ibm_map = {n: ibm[i] for i, n in enumerate(joints)}
        target = None
        for g in groups:
            shared = set(g.ibm) & set(ibm_map)
            if shared and all(np.allclose(g.ibm[n], ibm_map[n], atol=1e-5) for n in shared):
                target = g
                break
        if target is None:
            groups.append(_Skeleton(nodes=[], ibm=dict(ibm_map), skins=[s]))
        else:
            for n, m in ibm_map.items():
                target.ibm.setdefault(n, m)
            target.skins.append(s)
    for g in groups:
        members = set(g.ibm)
        g.nodes = [n for n in data.order if n in members]  # depth-first order: parents before children
    return groups


def _name_joints(data: GltfData, sk: _Skeleton) -> None:
    members = set(sk.nodes)
    index = {n: i for i, n in enumerate(sk.nodes)}
    raw = [data.gltf.nodes[n].name or f"joint_{n:02d}" for n in sk.nodes]
    leaves = unique_names(raw)
    parents = np.full(len(sk.nodes), -1, dtype=np.int64)
    tokens = []
    for i, n in enumerate(sk.nodes):
        p = data.parent[n]
        while p >= 0 and p not in members:  # skip non-joint nodes between joints
            p = data.parent[p]
        if p >= 0:
            parents[i] = index[p]
            tokens.append(f"{tokens[index[p]]}/{leaves[i]}")
        else:
            tokens.append(leaves[i])
    sk.tokens, sk.parents = tokens, parents


# ---------------------------------------------------------------------------------------------------------- clips
def _sample_clips(data: GltfData, skeletons: list[_Skeleton], morphs: dict[int, _Morph], fps: float | None,
                  report: ImportReport) -> tuple[list[list[ClipData]], float]:
    """Per skeleton, its clips (local TRS and the blend-shape weights of its morph nodes, sampled at every key time,
    or on an ``fps`` grid); and the time-code rate."""
    anims = data.gltf.animations or []
    parsed = [(a, animation_channels(data, a)) for a in anims]
    # 1. time-code rate: the requested fps, or the keyframe rate (median key interval over all clips)
    if fps is not None:
        if not fps > 0:
            raise InputError(f"--fps must be positive, got {fps}")
        tcps = float(fps)
    else:
        steps = np.concatenate([np.diff(np.unique(c.times)) for _, chs in parsed for c in chs] or [np.zeros(0)])
        steps = steps[steps > 1e-6]
        tcps = float(np.round(1.0 / np.median(steps))) if len(steps) else 24.0
        if tcps < 12:  # sparse keys (one per second...): use a playback-friendly multiple of the key rate
            tcps = tcps * np.ceil(24.0 / max(tcps, 1.0)) if tcps >= 1 else 24.0
    out: list[list[ClipData]] = [[] for _ in skeletons]
    # nodes whose animation moves each skeleton: its joints and their ancestors
    relevant = []
    for sk in skeletons:
        nodes = set(sk.nodes)
        for n in sk.nodes:
            p = data.parent[n]
            while p >= 0:
                nodes.add(int(p))
                p = data.parent[p]
        relevant.append(nodes)
    for a_index, (anim, channels) in enumerate(parsed):
        source_name = anim.name or f"animation_{a_index}"
        if any(c.path == "weights" and c.node not in morphs for c in channels):
            report.warnings.append(f"animation {source_name!r}: morph-target weights of meshes without a skeleton are "
                                   "not imported")
        trs = [c for c in channels if c.path in ("translation", "rotation", "scale")]
        weights = [_weights_channel(data, c, len(morphs[c.node].tokens)) for c in channels
                   if c.path == "weights" and c.node in morphs]
        for k, (sk, nodes) in enumerate(zip(skeletons, relevant)):
            moved = [c for c in weights if morphs[c.node].skeleton == k]
            mine = [c for c in trs if c.node in nodes] + moved
            if not mine:
                continue
            # 2. sample times: every keyframe of the channels that move this skeleton, or a uniform grid
            t0 = min(float(c.times[0]) for c in mine)
            t1 = max(float(c.times[-1]) for c in mine)
            if fps is None:
                times = np.unique(np.round(np.concatenate([c.times for c in mine]), 7))
            else:
                n = int(np.floor((t1 - t0) * fps + 1e-6)) + 1
                times = t0 + np.arange(n) / fps
                if times[-1] < t1 - 1e-6:
                    times = np.append(times, t1)
            sampled = sample_channels(mine, times)
            overrides = {(c.node, c.path): v for c, v in zip(mine, sampled) if c.path != "weights"}
            own = [(n, m) for n, m in morphs.items() if m.skeleton == k]
            tokens, W = _clip_weights(own, {c.node: v for c, v in zip(mine, sampled) if c.path == "weights"}, len(times))
            local = torch.from_numpy(data.relative_matrices(sk.nodes, sk.parents, overrides, len(times)))  # (T, J, 4, 4)
            t, q, s = (x.numpy() for x in decompose_trs(local))
            short = source_name.rsplit("|", 1)[-1]  # Quaternius: "AnimalArmature|Walk"
            out[k].append(ClipData(short, t, q, s, _snap(times * tcps), aliases=(source_name,), blend_shapes=tokens,
                                   blend_weights=W, custom={"gltf:name": source_name}))
    if any(m.default.any() for m in morphs.values()) and not any(out[m.skeleton] for m in morphs.values()):
        report.warnings.append("morph targets have non-zero default weights but no animation to hold them; the meshes "
                               "are imported in their base shape")
    return out, tcps


def _weights_channel(data: GltfData, c: Channel, B: int) -> Channel:
    """A ``weights`` channel's flat scalar outputs reshaped to (keys, B) ((3 keys, B) for CUBICSPLINE)."""
    per_key = 3 if c.interpolation == "CUBICSPLINE" else 1
    if c.values.size != per_key * len(c.times) * B:
        raise InputError(f"{data.path}: the weights channel of node {c.node} has {c.values.size} values for "
                         f"{len(c.times)} keys of {B} morph targets; the file is corrupt, re-export it")
    return Channel(c.node, c.path, c.times, c.values.reshape(-1, B), c.interpolation)


def _clip_weights(own: list[tuple[int, _Morph]], sampled: dict[int, np.ndarray],
                  frames: int) -> tuple[tuple[str, ...], np.ndarray | None]:
    """The skeleton's blend-shape tokens and their (T, B) weights in one clip: sampled where the clip animates a
    node's weights, its default weights where it does not."""
    if not own:
        return (), None
    tokens = tuple(t for _, m in own for t in m.tokens)
    W = np.concatenate([sampled[n] if n in sampled else np.repeat(m.default[None], frames, 0) for n, m in own], 1)
    return tokens, W


def _morphs(data: GltfData, skeletons: list[_Skeleton], report: ImportReport) -> dict[int, _Morph]:
    """Nodes whose mesh has morph targets and is bound to a skeleton (skinned or under a joint), in node order, with
    tokens unique per skeleton: the target names (``extras.targetNames`` or ``target_<i>``), prefixed by the node's
    name where two nodes of one skeleton share a target name."""
    gltf = data.gltf
    found: dict[int, _Morph] = {}
    for node_index in data.order:
        node = gltf.nodes[node_index]
        if node.mesh is None or not any(p.targets for p in gltf.meshes[node.mesh].primitives):
            continue
        mesh = gltf.meshes[node.mesh]
        B = len(mesh.primitives[0].targets or [])
        if any(len(p.targets or []) != B for p in mesh.primitives):
            raise InputError(f"{data.path}: mesh {mesh.name or node.mesh}: its primitives have different numbers of "
                             "morph targets (glTF requires the same); re-export it")
        k, _ = _bound_skeleton(data, node_index, skeletons)
        if k is None:
            continue
        names = (mesh.extras or {}).get("targetNames") if isinstance(mesh.extras, dict) else None
        if not (isinstance(names, list) and len(names) == B and all(isinstance(n, str) and n for n in names)):
            names = [f"target_{i}" for i in range(B)]
        default = getattr(node, "weights", None) or mesh.weights or [0.0] * B
        default = np.asarray(default, dtype=np.float64)
        if default.shape != (B,) or not np.isfinite(default).all():
            report.warnings.append(f"mesh {mesh.name or node.mesh}: default morph weights are malformed; zero used")
            default = np.zeros(B)
        found[node_index] = _Morph(k, unique_names(names), default)
    for k in range(len(skeletons)):
        own = [m for m in found.values() if m.skeleton == k]
        seen = [t for m in own for t in m.tokens]
        if len(seen) != len(set(seen)):
            for n, m in found.items():
                if m.skeleton == k:
                    prefix = identifier(gltf.nodes[n].name or "") or f"node_{n}"
                    m.tokens = [f"{prefix}_{t}" for t in m.tokens]
    return found


def _bound_skeleton(data: GltfData, node_index: int, skeletons: list[_Skeleton]) -> tuple[int | None, int | None]:
    """(skeleton, rigid joint node) a mesh node binds to: its skin's skeleton, or the skeleton of the nearest joint
    above it (a rigid bind); (None, None) for a static mesh."""
    node = data.gltf.nodes[node_index]
    for k, sk in enumerate(skeletons):
        if node.skin is not None and node.skin in sk.skins:
            return k, None
    p = data.parent[node_index]
    while p >= 0:
        for k, sk in enumerate(skeletons):
            if p in sk.ibm:
                return k, int(p)
        p = data.parent[p]
    return None, None


def _snap(codes: np.ndarray) -> list[float]:
    """Time codes, snapped to whole frames where float32 key times miss them by a hair."""
    r = np.round(codes)
    return [float(x) for x in np.where(np.abs(codes - r) < 1e-3, r, np.round(codes, 6))]


# ----------------------------------------------------------------------------------------------- meshes, looks
def _materials(data: GltfData) -> tuple[list[MaterialData], list[int]]:
    """One MaterialData per glTF material (base-colour factor, roughness, metallic, base-colour texture bytes), and
    per material the UV set its base-colour texture reads (the ``n`` of ``TEXCOORD_n``: :func:`_uv_set`)."""
    out, uv_sets = [], []
    images: dict[int, tuple[bytes, str]] = {}
    for i, mat in enumerate(data.gltf.materials or []):
        pbr = mat.pbrMetallicRoughness
        m = MaterialData(
            name=mat.name or f"material_{i}",
            color=tuple(pbr.baseColorFactor[:3]) if pbr and pbr.baseColorFactor else (1.0, 1.0, 1.0),
            roughness=float(pbr.roughnessFactor if pbr and pbr.roughnessFactor is not None else 1.0),
            metallic=float(pbr.metallicFactor if pbr and pbr.metallicFactor is not None else 1.0))
        info = pbr.baseColorTexture if pbr else None
        tex_index = info.index if info is not None else None
        image = data.gltf.textures[tex_index].source if tex_index is not None and data.gltf.textures else None
        uv_set = 0
        if image is not None:
            if image not in images:
                images[image] = _read_image(data, image)
            m.texture, m.texture_name = images[image]
            m.wrap = _wrap(data.gltf, data.gltf.textures[tex_index].sampler)
            ext = (getattr(info, "extensions", None) or {}).get("KHR_texture_transform")
            m.uv_transform = _uv_transform(ext) if isinstance(ext, dict) else None
            uv_set = _uv_set(info, ext)
        out.append(m)
        uv_sets.append(uv_set)
    return out, uv_sets


def _uv_set(info, ext) -> int:
    """The UV set a glTF texture reads: ``KHR_texture_transform``'s ``texCoord`` where it gives one (the extension
    overrides the texture's), else the texture's ``texCoord``, else 0."""
    for n in ((ext or {}).get("texCoord") if isinstance(ext, dict) else None, getattr(info, "texCoord", None)):
        if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
            return n
    return 0


# glTF sampler wrap modes (WebGL's enums) as UsdUVTexture's
_WRAP = {10497: "repeat", 33071: "clamp", 33648: "mirror"}


def _wrap(gltf, sampler: int | None) -> tuple[str, str]:
    """A glTF texture sampler's (wrapS, wrapT) as UsdUVTexture's wrap modes: REPEAT (the default, and where there is
    no sampler) ``repeat``, CLAMP_TO_EDGE ``clamp``, MIRRORED_REPEAT ``mirror``."""
    s = gltf.samplers[sampler] if sampler is not None and 0 <= sampler < len(gltf.samplers or []) else None
    return (_WRAP.get(getattr(s, "wrapS", None), "repeat"), _WRAP.get(getattr(s, "wrapT", None), "repeat"))


def _uv_transform(ext: dict) -> tuple | None:
    """A glTF ``KHR_texture_transform`` (offset, rotation in radians, scale: ``uv' = T R S uv`` with glTF's UV origin
    at the image's top left) as the ``UsdTransform2d`` it is in USD's ``st = (u, 1 - v)``: (scale, rotation in
    degrees, translation), or None where it is the identity or not numbers."""
    try:
        ox, oy = (float(x) for x in ext.get("offset", (0.0, 0.0)))
        sx, sy = (float(x) for x in ext.get("scale", (1.0, 1.0)))
        r = float(ext.get("rotation", 0.0))
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(x) for x in (ox, oy, sx, sy, r)) or (ox, oy, sx, sy, r) == (0.0, 0.0, 1.0, 1.0, 0.0):
        return None
    c, s = math.cos(r), math.sin(r)
    # st' = D (T R S) (D st + e) + e with D = diag(1, -1), e = (0, 1): D R D turns the other way, D S D = S
    return (sx, sy), math.degrees(r), (ox + s * sy, 1.0 - oy - c * sy)


def _read_image(data: GltfData, image_index: int) -> tuple[bytes, str]:
    """The encoded bytes of a glTF image (buffer view, data URI or file beside the .gltf) and a file name."""
    import base64

    img = data.gltf.images[image_index]
    ext = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}.get(img.mimeType or "", "")
    if img.bufferView is not None:
        raw = data.buffer_view_bytes(img.bufferView)
    elif img.uri and img.uri.startswith("data:"):
        raw = base64.b64decode(img.uri.split(",", 1)[1])
        ext = ext or {"image/png": ".png", "image/jpeg": ".jpg"}.get(img.uri[5:].split(";")[0], ".png")
    elif img.uri:
        file = resolve_inside(data.path, img.uri, f"image {image_index}")
        if not file.exists():
            raise InputError(f"{data.path}: texture {img.uri} is missing; keep it beside the .gltf")
        raw = file.read_bytes()
        ext = ext or file.suffix
    else:
        raise InputError(f"{data.path}: image {image_index} has no data; re-export the file")
    if not ext:
        ext = ".png" if raw[:4] == b"\x89PNG" else ".jpg"
    return raw, Tf.MakeValidIdentifier(img.name or f"image_{image_index}") + ext


def _meshes(data: GltfData, skeletons: list[_Skeleton], materials: list[MaterialData], uv_sets: list[int],
            morphs: dict[int, _Morph], report: ImportReport) -> list[MeshData]:
    """Every triangle primitive: skinned (a skin's node), rigid (under a joint, no skin) or static; with its blend
    shapes where its node is in ``morphs``."""
    gltf = data.gltf
    rest_world = data.world_matrices()[0]
    out = []
    for node_index in data.order:
        node = gltf.nodes[node_index]
        if node.mesh is None:
            continue
        mesh = gltf.meshes[node.mesh]
        k, rigid_joint = _bound_skeleton(data, node_index, skeletons)
        base = identifier(node.name or mesh.name or "") or f"mesh_{node.mesh}"
        for i, prim_data in enumerate(mesh.primitives):
            if prim_data.mode not in (None, 4):
                report.warnings.append(f"mesh {base}: primitive {i} has mode {prim_data.mode} (not triangles); skipped")
                continue
            if prim_data.targets and node_index not in morphs:
                report.warnings.append(f"mesh {base}: morph targets of a mesh bound to no skeleton are not imported "
                                       "(UsdSkel applies blend shapes through a skeleton binding)")
            name = base if len(mesh.primitives) == 1 else f"{base}_{i}"
            m = _primitive(data, name, prim_data, node, skeletons[k] if k is not None else None, rigid_joint,
                           rest_world[node_index], rest_world, materials, uv_sets, report)
            if node_index in morphs and m.indices is not None:
                m.blend_shapes = _blend_shapes(data, name, prim_data, morphs[node_index].tokens, len(m.points))
            m.skeleton = k or 0
            m.custom = {"gltf:node": int(node_index), "gltf:primitive": int(i)}
            out.append(m)
    return out


def _blend_shapes(data: GltfData, name: str, prim_data, tokens: list[str], V: int) -> list[BlendShapeData]:
    """A primitive's morph targets' POSITION deltas as blend shapes (only the points a target moves; none for a target
    that moves no point of this primitive)."""
    out = []
    for i, (target, token) in enumerate(zip(prim_data.targets, tokens)):
        index = target.get("POSITION") if isinstance(target, dict) else getattr(target, "POSITION", None)
        if index is None:
            continue
        D = data.accessor(index, ("VEC3",), f"mesh {name} morph target {i} POSITION")
        if len(D) != V or not np.isfinite(D).all():
            raise InputError(f"{data.path}: mesh {name}: morph target {i} has {len(D)} POSITION deltas for {V} "
                             "vertices, or NaN in them; re-export it")
        moved = np.abs(D).max(1) > 0
        if moved.any():  # a target that moves none of this primitive's points is left off it
            out.append(BlendShapeData(token, D, None) if moved.all() else
                       BlendShapeData(token, D[moved], np.nonzero(moved)[0]))
    return out


def _attr(prim_data, name):
    return getattr(prim_data.attributes, name, None)


def _primitive(data, name, prim_data, node, sk, rigid_joint, node_rest, rest_world, materials, uv_sets,
               report) -> MeshData:
    if _attr(prim_data, "POSITION") is None:
        raise InputError(f"{data.path}: mesh {name} has no POSITION; re-export it")
    P = data.accessor(_attr(prim_data, "POSITION"), ("VEC3",), f"mesh {name} POSITION").astype(np.float32)
    if not np.isfinite(P).all():
        raise InputError(f"{data.path}: mesh {name} has NaN or infinite vertex positions; re-export it")
    V = len(P)
    if prim_data.indices is not None:
        faces = data.accessor(prim_data.indices, ("SCALAR",), f"mesh {name} indices").astype(np.int64).reshape(-1)
        if len(faces) and (faces.min() < 0 or faces.max() >= V):
            raise InputError(f"{data.path}: mesh {name}: face indices refer to vertices beyond its {V}; re-export it")
    else:
        faces = np.arange(V, dtype=np.int64)
    m = MeshData(name, P, faces[: len(faces) // 3 * 3].reshape(-1, 3))
    m.material = prim_data.material if prim_data.material is not None and prim_data.material < len(materials) else None
    uv_name = f"TEXCOORD_{uv_sets[m.material] if m.material is not None else 0}"  # the set the texture reads
    if _attr(prim_data, uv_name) is None and uv_name != "TEXCOORD_0":
        report.warnings.append(f"mesh {name}: its material's texture reads {uv_name}, which the mesh does not have; "
                               "drawn in the material's colour (re-export with that UV set)")
    for extra in ("NORMAL", uv_name, "COLOR_0", "JOINTS_0", "WEIGHTS_0"):
        a = _attr(prim_data, extra)
        if a is not None and data.gltf.accessors[a].count != V:
            raise InputError(f"{data.path}: mesh {name} has {V} positions but {data.gltf.accessors[a].count} {extra} "
                             "values; re-export it")
    if _attr(prim_data, "NORMAL") is not None:
        m.normals = data.accessor(_attr(prim_data, "NORMAL"), ("VEC3",), f"mesh {name} NORMAL").astype(np.float32)
    if _attr(prim_data, uv_name) is not None:
        uv = data.accessor(_attr(prim_data, uv_name), ("VEC2",), f"mesh {name} {uv_name}").astype(np.float32)
        uv[:, 1] = 1.0 - uv[:, 1]  # glTF's origin is top-left, USD's bottom-left
        m.uvs = uv
    if _attr(prim_data, "COLOR_0") is not None:
        col = data.accessor(_attr(prim_data, "COLOR_0"), ("VEC3", "VEC4"), f"mesh {name} COLOR_0")[:, :3]
        if m.material is not None:
            col = col * np.asarray(materials[m.material].color)
        m.colors = col.astype(np.float32)
    if sk is None:  # a static mesh: place it where the node is at rest
        m.transform = node_rest
        return m
    index = {n: i for i, n in enumerate(sk.nodes)}
    if rigid_joint is not None:
        # constant bind to the nearest joint; geomBind puts the mesh where it is at rest relative to that joint
        bind_j = np.linalg.inv(sk.ibm[rigid_joint])
        m.geom_bind = bind_j @ np.linalg.inv(rest_world[rigid_joint]) @ node_rest
        m.indices, m.weights, m.rigid = np.array([[index[rigid_joint]]]), np.ones((1, 1)), True
        return m
    skin = data.gltf.skins[node.skin]
    skin_nodes = np.asarray(skin.joints, dtype=np.int64)
    idx_sets, w_sets = [], []
    for k in range(8):
        ja, wa = _attr(prim_data, f"JOINTS_{k}"), _attr(prim_data, f"WEIGHTS_{k}")
        if ja is None or wa is None:
            break
        idx_sets.append(data.accessor(ja, ("VEC4",), f"mesh {name} JOINTS_{k}").astype(np.int64))
        w_sets.append(data.accessor(wa, ("VEC4",), f"mesh {name} WEIGHTS_{k}"))
    if not idx_sets:
        report.warnings.append(f"mesh {name}: skinned node without JOINTS_0/WEIGHTS_0; left unbound")
        return m
    idx, w = np.concatenate(idx_sets, 1), np.concatenate(w_sets, 1)
    if (idx >= len(skin_nodes)).any() or (idx < 0).any():
        raise InputError(f"{data.path}: mesh {name}: JOINTS_n refer to joints beyond the skin's {len(skin_nodes)}; "
                         "re-export")
    mapped = np.array([index[n] for n in skin_nodes])[idx]
    bad = ~np.isfinite(w).all(1)
    if bad.all():
        raise InputError(f"{data.path}: mesh {name}: every WEIGHTS_n value is NaN or infinite; re-export the skin "
                         "weights")
    if bad.any():  # seen in real exports (Quaternius Bee, Crab, Wasp): repair from the nearest valid vertex
        from scipy.spatial import cKDTree

        good = np.nonzero(~bad)[0]
        _, near = cKDTree(P[good]).query(P[bad])
        w[bad], mapped[bad] = w[good[near]], mapped[good[near]]
        report.warnings.append(f"mesh {name}: {int(bad.sum())} vertices had NaN skin weights; copied from the nearest "
                               "valid vertex")
    total = w.sum(1, keepdims=True)
    w = np.where(total > 0, w / np.where(total > 0, total, 1), 0.0)
    m.indices = np.where(w > 0, mapped, 0)  # unused slots point at joint 0 with weight 0
    m.weights = w
    return m
