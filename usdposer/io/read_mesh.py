"""Skinned ``UsdGeom.Mesh`` prims -> ``Mesh`` objects: points in skeleton space (``geomBindTransform`` applied,
converted to metres and +Y up), triangles, influences checked against the skeleton, normals, texture coordinates,
the base-colour texture and display colour. Malformed data is reported through the reader's ``report``."""

from __future__ import annotations

import math

import numpy as np
import torch
from pxr import Usd, UsdGeom, UsdShade, UsdSkel

from usdposer.io.stage import StageUnits, gf_to_np, unregistered
from usdposer.io.texture import readable
from usdposer.types import NO_SAMPLER, WRAPS, FaceLook, Mesh, Sampler

# The material a viewport shows: a studio asset binds its render material for all purposes (RenderMan, MaterialX:
# nothing usdposer can draw) and a UsdPreviewSurface one as ``material:binding:preview``; the preview purpose falls
# back to the all-purpose binding where there is none, as Hydra's viewport does.
PREVIEW = UsdShade.Tokens.preview


def triangulate(counts: np.ndarray, indices: np.ndarray, reverse: bool = False) -> np.ndarray:
    """Fan-triangulate polygons: (F, 3) int64; ``reverse`` winds each triangle the other way (:func:`left_wound`)."""
    counts = counts.astype(np.int64)
    valid = counts >= 3
    starts = np.cumsum(counts) - counts
    ntri = np.where(valid, counts - 2, 0)
    first = np.repeat(starts, ntri)
    offs = np.arange(ntri.sum()) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    second, third = (first + offs + 2, first + offs + 1) if reverse else (first + offs + 1, first + offs + 2)
    return np.stack([indices[first], indices[second], indices[third]], axis=1).astype(np.int64)


def left_wound(prim: Usd.Prim, M: np.ndarray) -> bool:
    """Do the mesh's polygons wind clockwise (seen from outside) once ``M`` (4, 4) places its points: its
    ``orientation`` is ``leftHanded`` (RenderMan's and some Houdini exports), or ``M`` mirrors (a negative scale),
    not both. usdposer's triangles are right-handed, so such a mesh is triangulated reversed."""
    left = UsdGeom.Mesh(prim).GetOrientationAttr().Get() == UsdGeom.Tokens.leftHanded
    return bool(left != (np.linalg.det(np.asarray(M, dtype=np.float64)[:3, :3]) < 0))


def read_mesh(skq, joint_index: dict[str, int], conv: StageUnits, report) -> Mesh | None:
    prim = skq.GetPrim()
    name = str(prim.GetPath())
    if not prim.IsA(UsdGeom.Mesh):
        report("info", name, f"skinned {prim.GetTypeName()} is not a Mesh; usdposer skins meshes only, skipped")
        return None
    mesh = UsdGeom.Mesh(prim)
    pts = mesh.GetPointsAttr().Get()
    topology = mesh.GetFaceVertexCountsAttr().Get(), mesh.GetFaceVertexIndicesAttr().Get()
    odd = [a for a, v in (("points", pts), ("faceVertexCounts", topology[0]), ("faceVertexIndices", topology[1]))
           if unregistered(v)]
    if odd:
        report("error", name, f"{', '.join(odd)} do not read as arrays (a misspelled type in the file?); fix their "
               "declarations", "bad-attribute-type")
        return None
    if pts is None or len(pts) == 0:
        report("warning", name, "mesh has no points; skipped")
        return None
    P = np.asarray(pts, dtype=np.float64)
    V = len(P)
    if not np.isfinite(P).all():
        report("error", name, f"{int((~np.isfinite(P).all(1)).sum())} points are NaN or infinite; fix the mesh's points",
               "non-finite-points")
        return None

    # influences, checked against the primvars themselves so the message can say what is wrong
    binding = UsdSkel.BindingAPI(prim)
    ip, wp_ = binding.GetJointIndicesPrimvar(), binding.GetJointWeightsPrimvar()
    idx_raw, w_raw = ip.Get() if ip else None, wp_.Get() if wp_ else None
    if idx_raw is None or w_raw is None:
        report("warning", name, "bound to a skeleton but has no jointIndices/jointWeights; skipped (run `usdposer skin`)",
               "missing-influences")
        return None
    try:
        idx_raw, w_raw = np.asarray(idx_raw, dtype=np.int64), np.asarray(w_raw, dtype=np.float64)
    except (TypeError, ValueError):  # an attribute of an unknown type (a typo'd `float[]`) reads as UnregisteredValue
        report("error", name, "primvars:skel:jointIndices / jointWeights do not read as int[] / float[] arrays (a "
               "misspelled type in the file?); fix their declarations", "bad-influence-type")
        return None
    if idx_raw.ndim != 1 or w_raw.ndim != 1:
        report("error", name, "primvars:skel:jointIndices / jointWeights must be flat arrays; fix their declared types",
               "bad-influence-type")
        return None
    if len(idx_raw) != len(w_raw):
        report("error", name, f"primvars:skel:jointIndices has {len(idx_raw)} values but jointWeights has {len(w_raw)}; "
               "they must have the same length (elementSize values per point)", "size-mismatch")
        return None
    K = int(ip.GetElementSize())
    rigid = ip.GetInterpolation() == UsdGeom.Tokens.constant
    expected = K if rigid else K * V
    if K < 1 or len(idx_raw) != expected:
        report("error", name, f"jointIndices has {len(idx_raw)} values, expected {expected} "
               f"({'constant' if rigid else f'{V} points'} x elementSize {K}); fix elementSize or the arrays", "size-mismatch")
        return None
    if not np.isfinite(w_raw).all():
        report("error", name, "jointWeights contains NaN or infinite values; re-export the skin weights",
               "non-finite-weights")
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
                   "unknown-joint")
            return None
        remap = np.array([joint_index[str(j)] for j in local_order], dtype=np.int64)
        n_joints = len(remap)
    else:
        remap, n_joints = None, len(joint_index)
    bad = (idx < 0) | (idx >= n_joints)
    if bad.any():
        report("error", name, f"{int(bad.sum())} joint indices out of range [0, {n_joints}) (first {int(idx[bad][0])}); "
               "re-export the skin or fix the skeleton's joints", "index-out-of-range")
        return None
    if remap is not None:
        idx = remap[idx]
    sums = w.sum(1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        off = np.abs(sums - 1) > 1e-3
        first = int(np.argmax(off))
        report("warning", name, f"{int(off.sum())} of {V} points have jointWeights not summing to 1 (first: point {first} "
               f"sum={sums[first]:.3f}); normalise the weights", "weights-not-normalized")

    G = gf_to_np(skq.GetGeomBindTransform())
    P_skel = P @ G[:3, :3].T + G[:3, 3]
    counts = np.asarray(topology[0] or [], np.int64)
    indices = np.asarray(topology[1] or [], np.int64)
    if (counts < 0).any() or counts.sum() != len(indices):
        report("error", name, f"faceVertexCounts add up to {int(counts.sum())} but there are {len(indices)} "
               "faceVertexIndices; fix the mesh topology", "bad-topology")
        return None
    reverse = left_wound(prim, G)
    faces = triangulate(counts, indices, reverse)
    if len(faces) == 0:
        report("warning", name, "mesh has no faces (no polygon of three or more vertices: faceVertexCounts empty, "
               "missing or misspelled?); skipped", "no-faces")
        return None
    if faces.max() >= V or faces.min() < 0:
        report("error", name, "faceVertexIndices refer to points that do not exist; fix the mesh topology",
               "bad-topology")
        return None

    normals = None
    n_attr = mesh.GetNormalsAttr()
    n_val = n_attr.Get() if n_attr else None
    if unregistered(n_val):
        report("warning", name, "normals do not read as an array (a misspelled type?); ignored", "bad-attribute-type")
        n_val = None
    if n_val is not None and len(n_val) == V and mesh.GetNormalsInterpolation() in (UsdGeom.Tokens.vertex, UsdGeom.Tokens.varying):
        N = np.asarray(n_val, dtype=np.float64) @ np.linalg.inv(G[:3, :3])  # inverse-transpose of G, row vectors
        N = N @ conv.C[:3, :3].T
        normals = torch.from_numpy(N / np.linalg.norm(N, axis=1, keepdims=True).clip(1e-12))

    uvs, corner_uvs, texture, color, sampler = _read_look(prim, V, counts, reverse)
    if texture and not readable(texture):
        report("warning", name, f"base-colour texture {texture} cannot be read (a missing file or UDIM tiles?); "
               "pictures draw the display colour instead", "missing-texture")
    return Mesh(
        path=name, points=torch.from_numpy(conv.points(P_skel)), faces=torch.from_numpy(faces),
        joint_indices=torch.from_numpy(idx), joint_weights=torch.from_numpy(w), normals=normals,
        uvs=uvs, texture=texture, color=color, skinning_method=str(skq.GetSkinningMethod() or "classicLinear"),
        corner_uvs=corner_uvs, face_looks=face_looks(prim, counts, color), sampler=sampler,
        **_blend_shapes(binding, V, G, conv, name, report),
    )


def _blend_shapes(binding, V: int, G: np.ndarray, conv: StageUnits, name: str, report) -> dict:
    """``blend_shapes`` (tokens) and ``blend_offsets`` (per shape: point indices, offsets in skeleton space, metres)
    of a mesh, for :class:`Mesh`; a shape that cannot be used is reported and left out."""
    tokens = [str(t) for t in binding.GetBlendShapesAttr().Get() or ()]
    targets = binding.GetBlendShapeTargetsRel().GetTargets() if binding.GetBlendShapeTargetsRel() else []
    if not tokens:
        return {}
    if len(targets) != len(tokens):
        report("warning", name, f"skel:blendShapes has {len(tokens)} tokens but skel:blendShapeTargets {len(targets)} "
               "targets; blend shapes ignored (pair one target with each token)", "bad-blend-shapes")
        return {"blend_shapes": tuple(tokens)}
    stage = binding.GetPrim().GetStage()
    keep, offsets = [], []
    for token, path in zip(tokens, targets):
        shape = UsdSkel.BlendShape(stage.GetPrimAtPath(path))
        off = shape.GetOffsetsAttr().Get() if shape else None
        if off is None:
            report("warning", name, f"blend shape {path} has no offsets; ignored", "bad-blend-shapes")
            continue
        D = np.asarray(off, dtype=np.float64).reshape(-1, 3)
        idx = shape.GetPointIndicesAttr().Get()
        idx = np.arange(V) if idx is None or len(idx) == 0 and len(D) == V else np.asarray(idx, dtype=np.int64)
        if len(idx) != len(D) or (len(idx) and (idx.min() < 0 or idx.max() >= V)) or not np.isfinite(D).all():
            report("warning", name, f"blend shape {path}: {len(D)} offsets for {len(idx)} point indices (of {V} "
                   "points), or non-finite offsets; ignored", "bad-blend-shapes")
            continue
        if shape.GetInbetweens():
            report("info", name, f"blend shape {path} has inbetweens; usdposer's pictures apply its full shape "
                   "linearly", "blend-shape-inbetweens")
        keep.append(token)
        offsets.append((torch.from_numpy(idx), torch.from_numpy(conv.points(D @ G[:3, :3].T))))
    return {"blend_shapes": tuple(keep), "blend_offsets": tuple(offsets)}


def _read_look(prim: Usd.Prim, V: int, counts: np.ndarray, reverse: bool = False):
    """(uvs (V, 2) or None, corner uvs (F, 3, 2) of a faceVarying primvar or None, base-colour texture path or None,
    display colour, how the texture is read (:class:`Sampler`)). ``counts`` and
    ``reverse``: the faceVertexCounts and winding, to triangulate face-varying values as the faces are."""
    uvs = corners = None
    pv_api = UsdGeom.PrimvarsAPI(prim)
    color = (0.7, 0.7, 0.7)
    dc = pv_api.GetPrimvar("displayColor")
    if dc and dc.HasValue():
        val = np.asarray(dc.ComputeFlattened(), dtype=np.float64).reshape(-1, 3)
        if len(val):
            color = tuple(float(c) for c in val.mean(0))
    material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial(PREVIEW)
    texture, color, sampler, named = _material_look(material, color)
    for name in ([named] if named else []) + ["st", "st0", "st_0", "UVMap", "uv", "map1"]:
        pv = pv_api.GetPrimvar(name)
        if not (pv and pv.HasValue()):
            continue
        val = pv.ComputeFlattened()  # indexed primvars (Maya's, Houdini's) expanded
        if val is None or unregistered(val):
            continue
        val = np.asarray(val, dtype=np.float64)
        if val.ndim != 2 or val.shape[1] != 2:
            continue
        if pv.GetInterpolation() in (UsdGeom.Tokens.vertex, UsdGeom.Tokens.varying) and len(val) == V:
            uvs = torch.from_numpy(val)
            break
        if pv.GetInterpolation() == UsdGeom.Tokens.faceVarying and len(val) == int(counts.sum()):
            corners = torch.from_numpy(val[triangulate(counts, np.arange(len(val)), reverse)])  # (F, 3, 2)
            break
    return uvs, corners, texture, color, sampler


def _base_color(material):
    """(surface shader, its base-colour input, the attributes that produce that input's value) of a material, or
    Nones: its UsdPreviewSurface's ``diffuseColor``, else its MaterialX surface's ``base_color`` (``standard_surface``,
    OpenPBR), followed through node graphs to a node's output (a texture) or a value."""
    shader = material and (material.ComputeSurfaceSource()[0] or material.ComputeSurfaceSource("mtlx")[0])
    inp = shader and (shader.GetInput("diffuseColor") or shader.GetInput("base_color"))
    if not inp:
        return None, None, []
    return shader, inp, inp.GetValueProducingAttributes()


def _texture_node(sources):
    """The shader whose output feeds the base colour (a ``UsdUVTexture``, a MaterialX ``image``), or None."""
    if sources and UsdShade.Utils.GetType(sources[0].GetName()) == UsdShade.AttributeType.Output:
        return UsdShade.Shader(sources[0].GetPrim())
    return None


def _uv_source(tex):
    """(the ``UsdTransform2d`` between the texture and its coordinates as (scale, rotation in degrees, translation),
    or None; the node that reads the UV primvar, or None) behind a texture node's ``st`` (``texcoord`` in
    MaterialX). Blender's mapping node and glTF's KHR_texture_transform are such transforms."""
    coords = tex and (tex.GetInput("st") or tex.GetInput("texcoord"))
    node = _texture_node(coords.GetValueProducingAttributes()) if coords else None
    if not node or node.GetIdAttr().Get() != "UsdTransform2d":
        return None, node

    def value(name, default):
        v = node.GetInput(name).Get() if node.GetInput(name) else None
        v = default if v is None else tuple(float(x) for x in v) if hasattr(v, "__len__") else float(v)
        return v if np.isfinite(v).all() else default

    transform = value("scale", (1.0, 1.0)), value("rotation", 0.0), value("translation", (0.0, 0.0))
    source = node.GetInput("in")
    return transform, _texture_node(source.GetValueProducingAttributes()) if source else None


def _material_look(material, color: tuple) -> tuple[str | None, tuple, Sampler, str | None]:
    """(base-colour texture path or None, colour, how the texture is read, UV set or None) of a material (``color``
    where it sets none), from :func:`_base_color`; a MaterialX ``base`` weight multiplies it. The :class:`Sampler`:
    the UsdUVTexture's ``scale`` and ``bias`` as the tint (RGB; glTF's ``baseColorFactor`` is written as the scale,
    Maya's colour gain and offset as both), a ``UsdTransform2d`` before it (:func:`_uv_source`), its wrap modes and
    source colour space (:func:`_wrap_and_space`); the UV set the primvar the texture reads (the ``varname`` of the
    ``UsdPrimvarReader_float2`` behind it, or the MaterialX ``geompropvalue``'s ``geomprop``: Maya names it ``map1``,
    Houdini ``uv``, Blender ``st`` or its UV map's name)."""
    texture, sampler, uv_set = None, NO_SAMPLER, None
    shader, inp, sources = _base_color(material)
    if not inp:
        return texture, color, sampler, uv_set
    weight = 1.0
    if inp.GetBaseName() == "base_color" and shader.GetInput("base"):
        value = shader.GetInput("base").Get()
        weight = float(value) if value is not None and math.isfinite(float(value)) else 1.0
    tex = _texture_node(sources)
    if tex:
        scale = _rgb(tex, "scale", (1.0, 1.0, 1.0))
        uv_transform, reader = _uv_source(tex)
        sampler = Sampler((tuple(weight * c for c in scale), _rgb(tex, "bias", (0.0, 0.0, 0.0))), uv_transform,
                          *_wrap_and_space(tex))
        name = reader and (reader.GetInput("varname") or reader.GetInput("geomprop"))
        uv_set = str(name.Get()) if name and name.Get() else None
        f = tex.GetInput("file")
        if f and f.Get() is not None:
            asset = f.Get()
            texture = asset.resolvedPath or None
            if not texture and asset.path:  # unresolved (a UDIM pattern, a missing file): anchor it
                stack = f.GetAttr().GetPropertyStack(Usd.TimeCode.Default())
                texture = stack[0].layer.ComputeAbsolutePath(asset.path) if stack else asset.path
    elif sources and sources[0].Get() is not None:
        color = tuple(weight * float(c) for c in sources[0].Get())
    return texture, color, sampler, uv_set


# MaterialX image's address modes as UsdUVTexture's wrap modes
_ADDRESS = {"periodic": "repeat", "clamp": "clamp", "mirror": "mirror", "constant": "black"}
# colour spaces whose texels are linear already (UsdUVTexture's raw; OCIO's and MaterialX's linear names, Blender's)
_LINEAR = ("raw", "lin_", "linear", "acescg", "scene-linear", "non-color", "data")


def _wrap_and_space(tex) -> tuple[tuple[str, str], str]:
    """((wrapS, wrapT), source colour space ``"sRGB"`` or ``"raw"``) of a texture node: a UsdUVTexture's ``wrapS``
    / ``wrapT`` and ``sourceColorSpace``, a MaterialX image's ``uaddressmode`` / ``vaddressmode`` and its file's
    ``colorSpace``. ``useMetadata`` (the fallback) and unknown modes read as ``repeat``, ``auto`` as sRGB."""
    def token(*names):
        for n in names:
            v = tex.GetInput(n).Get() if tex.GetInput(n) else None
            if v:
                return str(v)
        return ""

    wrap = tuple(m if m in WRAPS else _ADDRESS.get(m, "repeat")
                 for m in (token("wrapS", "uaddressmode"), token("wrapT", "vaddressmode")))
    space = token("sourceColorSpace")
    f = tex.GetInput("file")
    if not space and f and f.GetAttr().HasColorSpace():
        space = f.GetAttr().GetColorSpace()
    return wrap, "raw" if space.lower().startswith(_LINEAR) else "sRGB"


def _rgb(shader, name: str, default: tuple) -> tuple[float, float, float]:
    """The RGB of a shader's float4 (or float3) input, ``default`` where it is unset or not finite."""
    value = shader.GetInput(name).Get() if shader.GetInput(name) else None
    try:
        rgb = tuple(float(value[k]) for k in range(3))
    except (TypeError, IndexError, ValueError):
        return default
    return rgb if all(math.isfinite(c) for c in rgb) else default


def face_looks(prim: Usd.Prim, counts: np.ndarray, color: tuple) -> tuple[FaceLook, ...]:
    """The looks of a mesh's ``materialBind`` GeomSubsets bound to their own materials, as triangle indices (the
    polygons' fan triangles, in :func:`triangulate`'s order)."""
    subsets = UsdShade.MaterialBindingAPI(prim).GetMaterialBindSubsets()
    if not subsets:
        return ()
    ntri = np.where(counts >= 3, counts - 2, 0)
    polygon_of = np.repeat(np.arange(len(counts)), ntri)  # (F,) the polygon each triangle comes from
    out = []
    for subset in subsets:
        if subset.GetElementTypeAttr().Get() != UsdGeom.Tokens.face:
            continue
        material, _ = UsdShade.MaterialBindingAPI(subset.GetPrim()).ComputeBoundMaterial(PREVIEW)
        if not material:
            continue
        polygons = np.asarray(subset.GetIndicesAttr().Get() or [], dtype=np.int64)
        tris = np.nonzero(np.isin(polygon_of, polygons))[0]
        if len(tris):
            texture, look_color, sampler, _ = _material_look(material, color)
            out.append(FaceLook(torch.from_numpy(tris), texture, look_color, sampler, subset.GetPrim().GetName()))
    return tuple(out)
