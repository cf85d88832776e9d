"""glTF 2.0 -> UsdSkel (``usdposer import``).

What becomes what:
    - skins -> Skeletons. Skins that share joints with identical inverse bind matrices (a character split into
      several skinned meshes) merge into one Skeleton; the joints are every skin joint, ordered parents before
      children (depth-first over the node tree), named by node name or ``joint_<node>`` when unnamed, made unique;
    - skeleton space = glTF scene space (glTF ignores a skinned mesh node's own transform), so
      ``bindTransforms = inverse(inverseBindMatrices)``, ``geomBindTransform = identity``, and a root joint's local
      transform includes its non-joint ancestors (Fox's ``_rootJoint``, Quaternius' ``Armature`` scale);
    - skinned primitives -> Mesh prims with normals, ``primvars:st`` (V flipped to USD's convention), vertex colours,
      ``JOINTS_n``/``WEIGHTS_n`` (weights renormalised to sum to 1, as glTF requires and engines do) and a
      UsdPreviewSurface material with the base-colour factor and texture (textures are written beside the output in
      ``<name>_textures/``);
    - meshes under a joint without a skin -> rigidly bound Meshes (constant joint influence);
    - every animation -> its own SkelAnimation under the Skeleton, sampled at the clip's keyframe times (exact for
      LINEAR/STEP keys; ``fps`` resamples every clip on a uniform grid instead). The first clip (or ``bind_clip``) is
      bound by ``skel:animationSource``; the ``usdposerClip`` variant set on the Skeleton selects any other clip.
      ``timeCodesPerSecond`` is the keyframe rate (or ``fps``), time code = seconds x rate;
    - metres and +Y up, as glTF defines them, are stated in the stage. Morph targets are not imported (reported).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pxr import Gf, Sdf, Tf, Usd, UsdGeom, UsdShade, UsdSkel, Vt

from usdposer.core.kinematics import decompose_trs
from usdposer.errors import InputError
from usdposer.io.gltf_read import GltfData, animation_channels, load_gltf, sample_channel
from usdposer.io.stage import atomic_path, author_stage_metadata, check_output_path, np_to_gf_array
from usdposer.io.write_skel import (
    bind_animations,
    define_animation,
    provenance,
    root_prim_name,
    select_clip,
    unique_names,
)


@dataclass
class ImportReport:
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
    path: str = ""


def import_gltf(src: str | os.PathLike, out: str | os.PathLike, *, fps: float | None = None,
                bind_clip: str | None = None, arguments: list[str] | None = None) -> ImportReport:
    """Convert a .gltf/.glb file into a UsdSkel stage at ``out`` (see the module docstring). Raises InputError."""
    src, out = Path(src), check_output_path(out, [src])
    gltf = load_gltf(src)
    data = GltfData(gltf, src)
    if not gltf.skins:
        morph = any(p.targets for m in gltf.meshes or [] for p in m.primitives)
        what = "only morph targets" if morph else "no skin"
        raise InputError(f"{src}: the file has {what} (no glTF skin), so there is no skeleton to import; "
                         "rig it first (e.g. in Blender) and re-export with skinning")
    report = ImportReport(source=str(src), output=str(out))
    skeletons = _group_skins(data, report)
    root_name = root_prim_name(src.stem)

    # 1. joints: order, tokens, parents
    for k, sk in enumerate(skeletons):
        _name_joints(data, sk)
        sk.path = f"/{root_name}/{'Skel' if k == 0 else f'Skel_{k}'}"

    # 2. clips: sampled local TRS per skeleton
    clips = _sample_clips(data, skeletons, fps, report)
    tcps = clips["tcps"]
    report.time_codes_per_second = tcps

    textures_dir = out.parent / f"{out.stem}_textures"
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}_textures.") as tex_tmp, atomic_path(out) as tmp:
        stage = Usd.Stage.CreateNew(str(tmp))
        root = UsdSkel.Root.Define(stage, f"/{root_name}")
        stage.SetDefaultPrim(root.GetPrim())
        bound_range = None
        for sk in skeletons:
            skel = UsdSkel.Skeleton.Define(stage, sk.path)
            UsdSkel.BindingAPI.Apply(skel.GetPrim())
            skel.CreateJointsAttr(Vt.TokenArray(sk.tokens))
            skel.CreateJointNamesAttr(Vt.TokenArray([t.rsplit("/", 1)[-1] for t in sk.tokens]))
            bind = np.stack([np.linalg.inv(sk.ibm[n]) for n in sk.nodes])
            skel.CreateBindTransformsAttr(np_to_gf_array(bind))
            skel.CreateRestTransformsAttr(np_to_gf_array(data.relative_matrices(sk.nodes, sk.parents)[0]))
            skel.GetPrim().SetCustomDataByKey("gltf:skins", Vt.IntArray(sk.skins))
            sk_clips = clips["per_skeleton"][id(sk)]
            if sk_clips:
                names = unique_names([c["name"] for c in sk_clips])
                paths = []
                for name, c in zip(names, sk_clips):
                    path = f"{sk.path}/{name}"
                    anim = define_animation(stage, path, sk.tokens, c["t"], c["q"], c["s"], c["time_codes"])
                    anim.GetPrim().SetCustomDataByKey("gltf:name", c["source_name"])
                    paths.append(path)
                    report.clips.append({"skeleton": sk.path, "prim": path, "name": c["source_name"],
                                         "frames": len(c["time_codes"]), "seconds": c["seconds"]})
                selected = select_clip(bind_clip, [(c["source_name"], c["name"], n) for c, n in zip(sk_clips, names)],
                                       where=f"{src}: ")
                bind_animations(stage, sk.path, paths, selected, names)
                if bound_range is None:
                    tc = sk_clips[selected]["time_codes"]
                    bound_range = (tc[0], tc[-1])
            report.skeletons.append({"prim": sk.path, "joints": len(sk.tokens), "skins": sk.skins})

        # 3. meshes and materials
        materials = _define_materials(stage, data, f"/{root_name}/Looks", Path(tex_tmp), textures_dir, report)
        _define_meshes(stage, data, skeletons, f"/{root_name}/Geo", materials, report)
        author_stage_metadata(stage, up_axis="Y", meters_per_unit=1.0, tcps=tcps,
                              start=bound_range[0] if bound_range else 0.0, end=bound_range[1] if bound_range else 0.0,
                              default_prim=root_name)
        stage.GetRootLayer().customLayerData = {"usdposer": provenance("import", arguments, source=src.name, fps=fps)}
        stage.GetRootLayer().Save()
        if report.textures:
            if textures_dir.exists():
                shutil.rmtree(textures_dir)
            os.replace(tex_tmp, textures_dir)
            os.makedirs(tex_tmp, exist_ok=True)  # TemporaryDirectory cleans up its (now empty) path
    return report


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
            ibm = data.accessor(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
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
def _sample_clips(data: GltfData, skeletons: list[_Skeleton], fps: float | None, report: ImportReport) -> dict:
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
    out = {"tcps": tcps, "per_skeleton": {id(sk): [] for sk in skeletons}}
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
        if any(c.path == "weights" for c in channels):
            report.warnings.append(f"animation {source_name!r}: morph-target weights are not imported")
        trs = [c for c in channels if c.path in ("translation", "rotation", "scale")]
        for sk, nodes in zip(skeletons, relevant):
            mine = [c for c in trs if c.node in nodes]
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
            overrides = {(c.node, c.path): sample_channel(c, times) for c in mine}
            local = torch.from_numpy(data.relative_matrices(sk.nodes, sk.parents, overrides, len(times)))  # (T, J, 4, 4)
            t, q, s = (x.numpy() for x in decompose_trs(local))
            short = source_name.rsplit("|", 1)[-1]  # Quaternius: "AnimalArmature|Walk"
            out["per_skeleton"][id(sk)].append({
                "name": short, "source_name": source_name, "t": t, "q": q, "s": s,
                "time_codes": _snap(times * tcps), "seconds": float(t1 - t0),
            })
    return out


def _snap(codes: np.ndarray) -> list[float]:
    """Time codes, snapped to whole frames where float32 key times miss them by a hair."""
    r = np.round(codes)
    return [float(x) for x in np.where(np.abs(codes - r) < 1e-3, r, np.round(codes, 6))]


# ----------------------------------------------------------------------------------------------- meshes, looks
def _define_materials(stage, data: GltfData, scope: str, tex_tmp: Path, textures_dir: Path,
                      report: ImportReport) -> dict[int, tuple[UsdShade.Material, tuple]]:
    gltf = data.gltf
    if not gltf.materials:
        return {}
    UsdGeom.Scope.Define(stage, scope)
    written: dict[int, str] = {}
    names = unique_names([m.name or f"material_{i}" for i, m in enumerate(gltf.materials)])
    out = {}
    for i, (mat, name) in enumerate(zip(gltf.materials, names)):
        pbr = mat.pbrMetallicRoughness
        factor = tuple(pbr.baseColorFactor[:3]) if pbr and pbr.baseColorFactor else (1.0, 1.0, 1.0)
        material = UsdShade.Material.Define(stage, f"{scope}/{name}")
        shader = UsdShade.Shader.Define(stage, f"{scope}/{name}/PreviewSurface")
        shader.CreateIdAttr("UsdPreviewSurface")
        shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(float(pbr.roughnessFactor if pbr and pbr.roughnessFactor is not None else 1.0))
        shader.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(float(pbr.metallicFactor if pbr and pbr.metallicFactor is not None else 1.0))
        material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
        diffuse = shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f)
        tex_index = pbr.baseColorTexture.index if pbr and pbr.baseColorTexture is not None else None
        image = gltf.textures[tex_index].source if tex_index is not None and gltf.textures else None
        if image is not None:
            if image not in written:
                written[image] = _write_image(data, image, tex_tmp)
                report.textures.append(str(textures_dir / written[image]))
            st_reader = UsdShade.Shader.Define(stage, f"{scope}/{name}/stReader")
            st_reader.CreateIdAttr("UsdPrimvarReader_float2")
            st_reader.CreateInput("varname", Sdf.ValueTypeNames.Token).Set("st")
            tex = UsdShade.Shader.Define(stage, f"{scope}/{name}/BaseColorTexture")
            tex.CreateIdAttr("UsdUVTexture")
            tex.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(f"./{textures_dir.name}/{written[image]}")
            tex.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(st_reader.ConnectableAPI(), "result")
            tex.CreateInput("scale", Sdf.ValueTypeNames.Float4).Set(Gf.Vec4f(*factor, 1.0))
            tex.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
            tex.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
            diffuse.ConnectToSource(tex.ConnectableAPI(), "rgb")
        else:
            diffuse.Set(Gf.Vec3f(*factor))
        out[i] = (material, factor)
    return out


def _write_image(data: GltfData, image_index: int, folder: Path) -> str:
    import base64

    img = data.gltf.images[image_index]
    ext = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}.get(img.mimeType or "", "")
    if img.bufferView is not None:
        raw = data.buffer_view_bytes(img.bufferView)
    elif img.uri and img.uri.startswith("data:"):
        raw = base64.b64decode(img.uri.split(",", 1)[1])
        ext = ext or {"image/png": ".png", "image/jpeg": ".jpg"}.get(img.uri[5:].split(";")[0], ".png")
    elif img.uri:
        file = data.path.parent / img.uri
        if not file.exists():
            raise InputError(f"{data.path}: texture {img.uri} is missing; keep it beside the .gltf")
        raw = file.read_bytes()
        ext = ext or file.suffix
    else:
        raise InputError(f"{data.path}: image {image_index} has no data; re-export the file")
    if not ext:
        ext = ".png" if raw[:4] == b"\x89PNG" else ".jpg"
    name = Tf.MakeValidIdentifier(img.name or f"image_{image_index}") + ext
    (folder / name).write_bytes(raw)
    return name


def _define_meshes(stage, data: GltfData, skeletons: list[_Skeleton], scope: str, materials: dict,
                   report: ImportReport) -> None:
    gltf = data.gltf
    UsdGeom.Scope.Define(stage, scope)  # Imageable scope: UsdSkel prunes typeless prims (USD.md pitfall 2)
    skin_to_skel = {s: sk for sk in skeletons for s in sk.skins}
    joint_to_skel = {n: sk for sk in skeletons for n in sk.nodes}
    rest_world = data.world_matrices()[0]
    used = set()
    for node_index in data.order:
        node = gltf.nodes[node_index]
        if node.mesh is None:
            continue
        mesh = gltf.meshes[node.mesh]
        sk, rigid_joint = None, None
        if node.skin is not None and node.skin in skin_to_skel:
            sk = skin_to_skel[node.skin]
        else:
            p = data.parent[node_index]
            while p >= 0 and p not in joint_to_skel:
                p = data.parent[p]
            if p >= 0:
                sk, rigid_joint = joint_to_skel[p], int(p)
        base = Tf.MakeValidIdentifier(node.name or mesh.name or f"mesh_{node.mesh}")
        for k, prim_data in enumerate(mesh.primitives):
            if prim_data.mode not in (None, 4):
                report.warnings.append(f"mesh {base}: primitive {k} has mode {prim_data.mode} (not triangles); skipped")
                continue
            if prim_data.targets:
                report.warnings.append(f"mesh {base}: morph targets are not imported")
            name = base if len(mesh.primitives) == 1 else f"{base}_{k}"
            while name in used:
                name += "_"
            used.add(name)
            path = f"{scope}/{name}"
            info = _define_primitive(stage, data, path, prim_data, k, node, node_index, sk, rigid_joint, rest_world,
                                     materials, report)
            if info:
                report.meshes.append(info)


def _attr(prim_data, name):
    return getattr(prim_data.attributes, name, None)


def _define_primitive(stage, data, path, prim_data, prim_index, node, node_index, sk, rigid_joint, rest_world,
                      materials, report):
    P = data.accessor(_attr(prim_data, "POSITION"))
    V = len(P)
    if prim_data.indices is not None:
        faces = data.accessor(prim_data.indices).astype(np.int64).reshape(-1)
    else:
        faces = np.arange(V, dtype=np.int64)
    faces = faces[: len(faces) // 3 * 3]
    mesh = UsdGeom.Mesh.Define(stage, path)
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces) // 3, 3, dtype=np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(faces.astype(np.int32)))
    if sk is None:  # a static mesh: place it where the node is at rest
        UsdGeom.Xformable(mesh).AddTransformOp().Set(Gf.Matrix4d(rest_world[node_index].T.tolist()))
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(P.astype(np.float32)))
    mesh.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*P.min(0)), Gf.Vec3f(*P.max(0))]))
    if _attr(prim_data, "NORMAL") is not None:
        N = data.accessor(_attr(prim_data, "NORMAL"))
        mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(N.astype(np.float32)))
        mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    pv = UsdGeom.PrimvarsAPI(mesh)
    if _attr(prim_data, "TEXCOORD_0") is not None:
        uv = data.accessor(_attr(prim_data, "TEXCOORD_0")).copy()
        uv[:, 1] = 1.0 - uv[:, 1]  # glTF's origin is top-left, USD's bottom-left
        pv.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex).Set(
            Vt.Vec2fArray.FromNumpy(uv.astype(np.float32)))
    material = materials.get(prim_data.material) if prim_data.material is not None else None
    if _attr(prim_data, "COLOR_0") is not None:
        col = data.accessor(_attr(prim_data, "COLOR_0"))[:, :3]
        if material is not None:
            col = col * np.asarray(material[1])
        pv.CreatePrimvar("displayColor", Sdf.ValueTypeNames.Color3fArray, UsdGeom.Tokens.vertex).Set(
            Vt.Vec3fArray.FromNumpy(col.astype(np.float32)))
    elif material is not None:
        mesh.CreateDisplayColorAttr(Vt.Vec3fArray([Gf.Vec3f(*material[1])]))
    if material is not None:
        UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(material[0])
    mesh.GetPrim().SetCustomDataByKey("gltf:node", int(node_index))
    mesh.GetPrim().SetCustomDataByKey("gltf:primitive", int(prim_index))
    info = {"prim": path, "points": V, "faces": len(faces) // 3, "skeleton": sk.path if sk else None}
    if sk is None:
        return info
    binding = UsdSkel.BindingAPI.Apply(mesh.GetPrim())
    binding.CreateSkeletonRel().SetTargets([Sdf.Path(sk.path)])
    index = {n: i for i, n in enumerate(sk.nodes)}
    if rigid_joint is not None:
        # constant bind to the nearest joint; geomBind puts the mesh where it is at rest relative to that joint
        j = index[rigid_joint]
        bind_j = np.linalg.inv(sk.ibm[rigid_joint])
        geom_bind = bind_j @ np.linalg.inv(rest_world[rigid_joint]) @ rest_world[node_index]
        binding.CreateJointIndicesPrimvar(True, 1).Set(Vt.IntArray([j]))
        binding.CreateJointWeightsPrimvar(True, 1).Set(Vt.FloatArray([1.0]))
        binding.CreateGeomBindTransformAttr(Gf.Matrix4d(geom_bind.T.tolist()))
        info.update(influences=1, rigid_joint=sk.tokens[j])
        return info
    skin = data.gltf.skins[node.skin]
    skin_nodes = np.asarray(skin.joints, dtype=np.int64)
    idx_sets, w_sets = [], []
    for k in range(8):
        ja, wa = _attr(prim_data, f"JOINTS_{k}"), _attr(prim_data, f"WEIGHTS_{k}")
        if ja is None or wa is None:
            break
        idx_sets.append(data.accessor(ja).astype(np.int64))
        w_sets.append(data.accessor(wa))
    if not idx_sets:
        report.warnings.append(f"{path}: skinned node without JOINTS_0/WEIGHTS_0; left unbound")
        return info
    idx, w = np.concatenate(idx_sets, 1), np.concatenate(w_sets, 1)
    if (idx >= len(skin_nodes)).any() or (idx < 0).any():
        raise InputError(f"{data.path}: {path}: JOINTS_n refer to joints beyond the skin's {len(skin_nodes)}; re-export")
    mapped = np.array([index[n] for n in skin_nodes])[idx]
    bad = ~np.isfinite(w).all(1)
    if bad.all():
        raise InputError(f"{data.path}: {path}: every WEIGHTS_n value is NaN or infinite; re-export the skin weights")
    if bad.any():  # seen in real exports (Quaternius Bee, Crab, Wasp): repair from the nearest valid vertex
        from scipy.spatial import cKDTree

        good = np.nonzero(~bad)[0]
        _, near = cKDTree(P[good]).query(P[bad])
        w[bad], mapped[bad] = w[good[near]], mapped[good[near]]
        report.warnings.append(f"{path}: {int(bad.sum())} vertices had NaN skin weights; copied from the nearest valid vertex")
    total = w.sum(1, keepdims=True)
    w = np.where(total > 0, w / np.where(total > 0, total, 1), 0.0)
    mapped = np.where(w > 0, mapped, 0)  # unused slots point at joint 0 with weight 0
    K = idx.shape[1]
    binding.CreateJointIndicesPrimvar(False, K).Set(Vt.IntArray.FromNumpy(mapped.reshape(-1).astype(np.int32)))
    binding.CreateJointWeightsPrimvar(False, K).Set(Vt.FloatArray.FromNumpy(w.reshape(-1).astype(np.float32)))
    binding.CreateGeomBindTransformAttr(Gf.Matrix4d(1.0))
    info.update(influences=K)
    return info
