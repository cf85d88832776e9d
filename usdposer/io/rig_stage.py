"""Write a fresh UsdSkel stage from plain arrays: the one back end of every importer (glTF, BVH, MJCF).

An importer fills a :class:`RigData` (skeletons with their clips and joint limits, meshes, materials) and
:func:`write_rig_stage` authors it with one prim layout: ``/<Name>`` SkelRoot; ``/<Name>/Skel`` (then ``Skel_1``...)
Skeletons with their SkelAnimations (the first, or ``bind_clip``, bound; every clip a variant of the Skeleton's
``usdposerClip`` variant set) and joint limits; ``/<Name>/Geo`` meshes bound to them (per-vertex skins, rigid binds,
or static meshes placed where they are) with their blend shapes (``UsdSkel.BlendShape`` children, weighted by the
clips' ``blendShapeWeights``); ``/<Name>/Looks`` UsdPreviewSurface materials with base-colour textures
written beside the output in ``<out stem>_textures/``. Everything is written to temporary files and moved into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, UsdSkel, Vt

from usdposer.errors import InputError
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
class MaterialData:
    """A UsdPreviewSurface: base colour factor, roughness, metallic and an optional base-colour texture (the encoded
    image file's bytes and a file name). With a texture, ``color`` is the texture's scale and ``bias`` its bias,
    ``wrap`` its (wrapS, wrapT) and ``color_space`` its source colour space (:class:`usdposer.types.Sampler`)."""

    name: str
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    roughness: float = 1.0
    metallic: float = 1.0
    texture: bytes | None = None
    texture_name: str = ""
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    uv_transform: tuple | None = None  # (scale (2,), rotation degrees, translation (2,)): a UsdTransform2d
    wrap: tuple[str, str] = ("repeat", "repeat")
    color_space: str = "sRGB"


@dataclass
class BlendShapeData:
    """A blend shape (a glTF morph target): ``offsets`` (N, 3) added to the mesh's points (mesh space, stage units,
    before skinning) at weight 1, at ``point_indices`` (N,) or at every point (None). ``token`` is the channel's
    name in the animations' ``blendShapes``."""

    token: str
    offsets: np.ndarray
    point_indices: np.ndarray | None = None


@dataclass
class MeshData:
    """A triangle mesh (stage units): points (V, 3), faces (F, 3). Skinned: influences ``indices`` / ``weights``
    (V, K) into ``skeleton``'s joints, points in skeleton space (``geom_bind``: their bind transform, identity by
    default); ``rigid``: one influence (1, K) for the whole prim (constant interpolation). Unskinned
    (``indices`` None): a static mesh placed by ``transform``. Optional normals (V, 3), uvs (V, 2, USD's convention),
    colours (V, 3), a material index, blend shapes (skinned meshes only) and custom data. ``corner_uvs`` (F, 3, 2):
    UVs per triangle corner (a faceVarying source), written as a faceVarying ``st`` instead of ``uvs``. ``subsets``:
    per-face materials, (name, triangle indices (n,), material index) each, written as ``materialBind``
    GeomSubsets."""

    name: str
    points: np.ndarray
    faces: np.ndarray
    indices: np.ndarray | None = None
    weights: np.ndarray | None = None
    skeleton: int = 0
    rigid: bool = False
    geom_bind: np.ndarray | None = None
    transform: np.ndarray | None = None
    normals: np.ndarray | None = None
    uvs: np.ndarray | None = None
    colors: np.ndarray | None = None
    material: int | None = None
    corner_uvs: np.ndarray | None = None
    blend_shapes: list[BlendShapeData] = field(default_factory=list)
    custom: dict = field(default_factory=dict)
    subsets: list[tuple[str, np.ndarray, int]] = field(default_factory=list)


@dataclass
class ClipData:
    """Joint-local (T, J, 3) translations, (T, J, 4) (w, x, y, z) rotations, (T, J, 3) scales at ``time_codes``;
    ``aliases`` are other names ``--bind`` may use (a glTF animation's full name); ``blend_weights`` (T, B): the
    weights of the blend-shape channels ``blend_shapes`` (B,)."""

    name: str
    translations: np.ndarray
    rotations: np.ndarray
    scales: np.ndarray
    time_codes: Sequence[float]
    aliases: tuple[str, ...] = ()
    blend_shapes: tuple[str, ...] = ()
    blend_weights: np.ndarray | None = None
    custom: dict = field(default_factory=dict)


@dataclass
class SkeletonData:
    """One Skeleton: joint tokens (parents first), (J, 4, 4) column-vector rest (local) and bind (skeleton-space)
    transforms in stage units, its clips, and ``limits`` (J, 3, 2) degrees about the joint's local X, Y, Z (NaN =
    unlimited)."""

    tokens: list[str]
    rest_local: np.ndarray
    bind_world: np.ndarray
    clips: list[ClipData] = field(default_factory=list)
    limits: np.ndarray | None = None
    limits_source: str = ""
    custom: dict = field(default_factory=dict)


@dataclass
class RigData:
    """Everything :func:`write_rig_stage` writes."""

    name: str
    skeletons: list[SkeletonData]
    meshes: list[MeshData] = field(default_factory=list)
    materials: list[MaterialData] = field(default_factory=list)
    up_axis: str = "Y"
    meters_per_unit: float = 1.0
    time_codes_per_second: float = 24.0


@dataclass
class WrittenStage:
    """The prims :func:`write_rig_stage` authored (for the importers' reports)."""

    path: Path
    skeletons: list[str] = field(default_factory=list)
    clips: list[list[str]] = field(default_factory=list)  # per skeleton
    meshes: list[str] = field(default_factory=list)  # per mesh ("" for a mesh that was skipped)
    textures: list[str] = field(default_factory=list)


def skeleton_paths(rig: RigData) -> list[str]:
    root = root_prim_name(rig.name)
    return [f"/{root}/{'Skel' if k == 0 else f'Skel_{k}'}" for k in range(len(rig.skeletons))]


def write_rig_stage(rig: RigData, out: str | os.PathLike, *, sources: Sequence[str | os.PathLike], verb: str = "import",
                    arguments: list[str] | None = None, bind_clip: str | None = None, **prov) -> WrittenStage:
    """Author ``rig`` as a new stage at ``out`` (temporary files, then moved into place)."""
    out = check_output_path(out, list(sources))
    root_name = root_prim_name(rig.name)
    written = WrittenStage(out, skeleton_paths(rig))
    textures_dir = out.parent / f"{out.stem}_textures"
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}_textures.") as tex_tmp, \
            atomic_path(out) as tmp:
        stage = Usd.Stage.CreateNew(str(tmp))
        root = UsdSkel.Root.Define(stage, f"/{root_name}")
        stage.SetDefaultPrim(root.GetPrim())
        bound_range = None
        for sk, skel_path in zip(rig.skeletons, written.skeletons):
            paths, selected = _define_skeleton(stage, skel_path, sk, bind_clip, where=f"{Path(sources[0]).name}: ")
            written.clips.append(paths)
            if paths and bound_range is None:
                tc = sk.clips[selected].time_codes
                bound_range = (float(tc[0]), float(tc[-1]))
        looks = _define_materials(stage, f"/{root_name}/Looks", rig.materials, Path(tex_tmp), textures_dir, written)
        if rig.meshes:
            UsdGeom.Scope.Define(stage, f"/{root_name}/Geo")  # Imageable: UsdSkel prunes typeless prims
        for name, m in zip(unique_names([m.name for m in rig.meshes]), rig.meshes):
            path = f"/{root_name}/Geo/{name}"
            _define_mesh(stage, path, written.skeletons[m.skeleton] if m.indices is not None else None, m, looks)
            written.meshes.append(path)
        start, end = bound_range or (0.0, 0.0)
        author_stage_metadata(stage, up_axis=rig.up_axis, meters_per_unit=rig.meters_per_unit,
                              tcps=rig.time_codes_per_second, start=start, end=end, default_prim=root_name)
        stage.GetRootLayer().customLayerData = {
            "usdposer": provenance(verb, arguments, source=", ".join(Path(s).name for s in sources), **prov)}
        stage.GetRootLayer().Save()
        if written.textures:
            if textures_dir.exists():
                shutil.rmtree(textures_dir)
            os.replace(tex_tmp, textures_dir)
            os.makedirs(tex_tmp, exist_ok=True)  # TemporaryDirectory cleans up its (now empty) path
    return written


def _define_skeleton(stage: Usd.Stage, skel_path: str, sk: SkeletonData, bind_clip: str | None,
                     where: str) -> tuple[list[str], int]:
    skel = UsdSkel.Skeleton.Define(stage, skel_path)
    UsdSkel.BindingAPI.Apply(skel.GetPrim())
    skel.CreateJointsAttr(Vt.TokenArray(sk.tokens))
    skel.CreateJointNamesAttr(Vt.TokenArray([t.rsplit("/", 1)[-1] for t in sk.tokens]))
    skel.CreateBindTransformsAttr(np_to_gf_array(sk.bind_world))
    skel.CreateRestTransformsAttr(np_to_gf_array(sk.rest_local))
    for key, value in sk.custom.items():
        skel.GetPrim().SetCustomDataByKey(key, value)
    if sk.limits is not None:
        _author_limits(skel.GetPrim(), sk.tokens, sk.limits, sk.limits_source)
    if not sk.clips:
        return [], 0
    names = unique_names([c.name for c in sk.clips])
    paths = []
    for name, c in zip(names, sk.clips):
        paths.append(f"{skel_path}/{name}")
        anim = define_animation(stage, paths[-1], sk.tokens, c.translations, c.rotations, c.scales, c.time_codes)
        if c.blend_shapes:
            _author_weights(anim, c)
        for key, value in c.custom.items():
            anim.GetPrim().SetCustomDataByKey(key, value)
    selected = select_clip(bind_clip, [(*c.aliases, c.name, n) for n, c in zip(names, sk.clips)], where=where)
    bind_animations(stage, skel_path, paths, selected, names)
    return paths, selected


def _define_materials(stage: Usd.Stage, scope: str, materials: list[MaterialData], tex_tmp: Path, textures_dir: Path,
                      written: WrittenStage) -> list[UsdShade.Material]:
    if not materials:
        return []
    UsdGeom.Scope.Define(stage, scope)
    out = []
    files: dict[bytes, str] = {}
    for name, mat in zip(unique_names([m.name for m in materials]), materials):
        material = UsdShade.Material.Define(stage, f"{scope}/{name}")
        shader = UsdShade.Shader.Define(stage, f"{scope}/{name}/PreviewSurface")
        shader.CreateIdAttr("UsdPreviewSurface")
        shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(float(mat.roughness))
        shader.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(float(mat.metallic))
        material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
        diffuse = shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f)
        if mat.texture is not None:
            if mat.texture not in files:
                stem, dot, ext = mat.texture_name.rpartition(".")
                file, k = mat.texture_name, 1
                while file in files.values():  # two different images with one name
                    file, k = f"{stem}_{k}{dot}{ext}", k + 1
                files[mat.texture] = file
                (tex_tmp / file).write_bytes(mat.texture)
                written.textures.append(str(textures_dir / file))
            st_reader = UsdShade.Shader.Define(stage, f"{scope}/{name}/stReader")
            st_reader.CreateIdAttr("UsdPrimvarReader_float2")
            st_reader.CreateInput("varname", Sdf.ValueTypeNames.Token).Set("st")
            tex = UsdShade.Shader.Define(stage, f"{scope}/{name}/BaseColorTexture")
            tex.CreateIdAttr("UsdUVTexture")
            tex.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(f"./{textures_dir.name}/{files[mat.texture]}")
            coords = st_reader
            if mat.uv_transform is not None:  # glTF's KHR_texture_transform, a bare mesh's UsdTransform2d
                (sx, sy), degrees, (tx, ty) = mat.uv_transform
                coords = UsdShade.Shader.Define(stage, f"{scope}/{name}/uvTransform")
                coords.CreateIdAttr("UsdTransform2d")
                coords.CreateInput("in", Sdf.ValueTypeNames.Float2).ConnectToSource(st_reader.ConnectableAPI(), "result")
                coords.CreateInput("scale", Sdf.ValueTypeNames.Float2).Set(Gf.Vec2f(sx, sy))
                coords.CreateInput("rotation", Sdf.ValueTypeNames.Float).Set(float(degrees))
                coords.CreateInput("translation", Sdf.ValueTypeNames.Float2).Set(Gf.Vec2f(tx, ty))
            tex.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(coords.ConnectableAPI(), "result")
            tex.CreateInput("scale", Sdf.ValueTypeNames.Float4).Set(Gf.Vec4f(*mat.color, 1.0))
            if any(mat.bias):
                tex.CreateInput("bias", Sdf.ValueTypeNames.Float4).Set(Gf.Vec4f(*mat.bias, 0.0))
            tex.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set(mat.color_space)
            tex.CreateInput("wrapS", Sdf.ValueTypeNames.Token).Set(mat.wrap[0])  # written, not left to useMetadata
            tex.CreateInput("wrapT", Sdf.ValueTypeNames.Token).Set(mat.wrap[1])
            tex.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
            diffuse.ConnectToSource(tex.ConnectableAPI(), "rgb")
        else:
            diffuse.Set(Gf.Vec3f(*mat.color))
        out.append(material)
    return out


def _define_mesh(stage: Usd.Stage, path: str, skel_path: str | None, m: MeshData, looks: list) -> None:
    mesh = UsdGeom.Mesh.Define(stage, path)
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(m.faces), 3, dtype=np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.ascontiguousarray(m.faces.reshape(-1), dtype=np.int32)))
    if m.transform is not None:  # a static mesh: place it where it is
        UsdGeom.Xformable(mesh).AddTransformOp().Set(Gf.Matrix4d(np.asarray(m.transform).T.tolist()))
    P = np.ascontiguousarray(m.points, dtype=np.float32)
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(P))
    mesh.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*P.min(0).tolist()), Gf.Vec3f(*P.max(0).tolist())]))
    if m.normals is not None:
        mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(m.normals, dtype=np.float32)))
        mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    pv = UsdGeom.PrimvarsAPI(mesh)
    if m.corner_uvs is not None:  # one value per face corner, in faceVertexIndices order
        pv.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.faceVarying).Set(
            Vt.Vec2fArray.FromNumpy(np.ascontiguousarray(np.asarray(m.corner_uvs).reshape(-1, 2), dtype=np.float32)))
    elif m.uvs is not None:
        pv.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex).Set(
            Vt.Vec2fArray.FromNumpy(np.ascontiguousarray(m.uvs, dtype=np.float32)))
    material = looks[m.material] if m.material is not None and looks else None
    if m.colors is not None:
        pv.CreatePrimvar("displayColor", Sdf.ValueTypeNames.Color3fArray, UsdGeom.Tokens.vertex).Set(
            Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(m.colors, dtype=np.float32)))
    elif material is not None:
        color = UsdShade.Shader(material.GetPrim().GetChild("PreviewSurface"))
        value = color.GetInput("diffuseColor").Get()
        scale = material.GetPrim().GetPrimAtPath("BaseColorTexture")
        if value is None and scale:
            s = UsdShade.Shader(scale).GetInput("scale").Get()
            value = Gf.Vec3f(s[0], s[1], s[2])
        mesh.CreateDisplayColorAttr(Vt.Vec3fArray([value or Gf.Vec3f(1.0, 1.0, 1.0)]))
    if material is not None:
        UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(material)
    if m.subsets and looks:  # per-face materials (Maya's shading groups, Blender's material slots)
        api = UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim())
        for name, (_, faces, look) in zip(unique_names([s[0] for s in m.subsets]), m.subsets):
            subset = api.CreateMaterialBindSubset(name, Vt.IntArray.FromNumpy(np.asarray(faces, dtype=np.int32)),
                                                  UsdGeom.Tokens.face)
            UsdShade.MaterialBindingAPI.Apply(subset.GetPrim()).Bind(looks[look])
    for key, value in m.custom.items():
        mesh.GetPrim().SetCustomDataByKey(key, value)
    if skel_path is None or m.indices is None:
        return
    binding = UsdSkel.BindingAPI.Apply(mesh.GetPrim())
    binding.CreateSkeletonRel().SetTargets([Sdf.Path(skel_path)])
    K = m.indices.shape[1]
    binding.CreateJointIndicesPrimvar(m.rigid, K).Set(Vt.IntArray.FromNumpy(m.indices.reshape(-1).astype(np.int32)))
    binding.CreateJointWeightsPrimvar(m.rigid, K).Set(Vt.FloatArray.FromNumpy(m.weights.reshape(-1).astype(np.float32)))
    G = np.eye(4) if m.geom_bind is None else np.asarray(m.geom_bind)
    binding.CreateGeomBindTransformAttr(Gf.Matrix4d(G.T.tolist()))
    if m.blend_shapes:
        _define_blend_shapes(stage, path, binding, m.blend_shapes)


def _define_blend_shapes(stage: Usd.Stage, path: str, binding: UsdSkel.BindingAPI,
                         shapes: list[BlendShapeData]) -> None:
    """One ``BlendShape`` child per shape (named by its channel token) and the mesh's ``skel:blendShapes`` /
    ``skel:blendShapeTargets`` pairing channels with them."""
    targets = []
    for name, b in zip(unique_names([b.token for b in shapes]), shapes):
        shape = UsdSkel.BlendShape.Define(stage, f"{path}/{name}")
        shape.CreateOffsetsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(b.offsets, dtype=np.float32)))
        if b.point_indices is not None:
            shape.CreatePointIndicesAttr(Vt.IntArray.FromNumpy(np.ascontiguousarray(b.point_indices, dtype=np.int32)))
        targets.append(shape.GetPath())
    binding.CreateBlendShapesAttr(Vt.TokenArray([b.token for b in shapes]))
    binding.CreateBlendShapeTargetsRel().SetTargets(targets)


def _author_weights(anim: UsdSkel.Animation, c: ClipData) -> None:
    """The clip's ``blendShapes`` channel order and its (T, B) ``blendShapeWeights`` at its time codes."""
    W = np.asarray(c.blend_weights, dtype=np.float32)
    if W.shape != (len(c.time_codes), len(c.blend_shapes)) or not np.isfinite(W).all():
        raise InputError(f"animation {anim.GetPath()}: blend-shape weights are {W.shape} for {len(c.time_codes)} "
                         f"frames and {len(c.blend_shapes)} shapes, or not finite; fix the source animation")
    anim.CreateBlendShapesAttr(Vt.TokenArray(list(c.blend_shapes)))
    attr = anim.CreateBlendShapeWeightsAttr()
    for tc, w in zip(c.time_codes, W):
        attr.Set(Vt.FloatArray.FromNumpy(np.ascontiguousarray(w)), Usd.TimeCode(float(tc)))


def _author_limits(prim: Usd.Prim, tokens: list[str], limits: np.ndarray, source: str) -> None:
    """JointLimitsAPI on the Skeleton: only joints with at least one known bound are listed."""
    prim.ApplyAPI("JointLimitsAPI")
    keep = [j for j in range(len(tokens)) if np.isfinite(limits[j]).any()]
    prim.GetAttribute("usdposer:jointLimits:joints").Set(Vt.TokenArray([tokens[j] for j in keep]))
    lo = np.ascontiguousarray(limits[keep, :, 0], dtype=np.float32).reshape(-1, 3)
    hi = np.ascontiguousarray(limits[keep, :, 1], dtype=np.float32).reshape(-1, 3)
    prim.GetAttribute("usdposer:jointLimits:lower").Set(Vt.Vec3fArray.FromNumpy(lo))
    prim.GetAttribute("usdposer:jointLimits:upper").Set(Vt.Vec3fArray.FromNumpy(hi))
    prim.GetAttribute("usdposer:jointLimits:form").Set("eulerXYZ")
    if source:
        prim.GetAttribute("usdposer:jointLimits:source").Set(source)
