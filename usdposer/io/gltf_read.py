"""glTF 2.0 (``.gltf`` / ``.glb``) reading: file validation, accessors, node transforms and animation sampling.

Pure numpy on top of pygltflib's parsed JSON; ``usdposer.io.gltf_import`` turns the result into UsdSkel.
Matrices are column-vector (glTF's own convention), quaternions are converted to (w, x, y, z) on read.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from usdposer.errors import InputError, whole
from usdposer.io.paths import resolve_inside

_COMPONENT = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NORM_DIV = {np.int8: 127.0, np.uint8: 255.0, np.int16: 32767.0, np.uint16: 65535.0}


def load_gltf(path: str | Path):
    """Parse a .gltf/.glb with pygltflib after checking that the file is complete. Raises InputError."""

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".gltf", ".glb"):
        raise InputError(f"{path}: not a glTF file (.gltf or .glb)")
    if suffix == ".glb":
        _check_glb(path)
    try:
        gltf = _load_fast(path)
    except InputError:
        raise
    except Exception as exc:  # pygltflib raises many types on malformed input
        raise InputError(f"{path}: cannot be parsed as glTF ({type(exc).__name__}: {exc}); re-export the file") from exc
    if gltf is None:
        raise InputError(f"{path}: cannot be parsed as glTF; re-export the file")
    if not str(getattr(gltf.asset, "version", "2.0")).startswith("2"):
        raise InputError(f"{path}: glTF version {gltf.asset.version} is not supported; convert it to glTF 2.0")
    return gltf


def _load_fast(path: Path):
    """``pygltflib.GLTF2.load`` for a .gltf or a .glb (already checked by :func:`_check_glb`): the same objects, built without
    dataclasses_json: its generic decoder spent ~90 % of ``usdposer check``'s reading time on the shared set's
    animation libraries (tens of thousands of accessors and channels). The JSON chunk is parsed with ``json`` and
    every object built from pygltflib's own dataclasses and type hints (cached per class)."""
    import json


    if path.suffix.lower() == ".gltf":
        gltf = gltf_from_dict(json.loads(path.read_text(encoding="utf-8")))
        gltf._path, gltf._name = path.parent, path.name
        return gltf
    data = path.read_bytes()
    offset, gltf = 12, None
    while offset < len(data):
        chunk_len, chunk_type = struct.unpack_from("<II", data, offset)
        body = data[offset + 8:offset + 8 + chunk_len]
        if chunk_type == 0x4E4F534A:  # JSON
            gltf = gltf_from_dict(json.loads(body.decode("utf-8")))
        elif chunk_type == 0x004E4942 and gltf is not None:  # BIN
            gltf.set_binary_blob(body)
        offset += 8 + chunk_len
    if gltf is None:
        raise InputError(f"{path}: no JSON chunk in the .glb; re-export the file")
    gltf._path = path.parent
    gltf._name = path.name
    return gltf


def gltf_from_dict(d: dict):
    """A ``pygltflib.GLTF2`` from a glTF's parsed JSON (what ``GLTF2.from_json(..., infer_missing=True)`` builds)."""
    import pygltflib

    return _decode(pygltflib.GLTF2, d)


def _decode(cls, d: dict):
    if not isinstance(d, dict):
        raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(d).__name__}")
    return _converter(cls)(d)


_CONVERTERS: dict = {}


def _converter(tp):
    """A function turning the JSON value of a field typed ``tp`` into what pygltflib holds there (built once per type:
    the type introspection is the slow part, not the conversion)."""
    fn = _CONVERTERS.get(tp)
    if fn is None:
        fn = _CONVERTERS[tp] = _make_converter(tp)
    return fn


def _make_converter(tp):
    import dataclasses
    import typing

    import pygltflib

    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _converter(args[0]) if len(args) == 1 else (lambda v: v)
    if origin is list:
        (arg,) = typing.get_args(tp) or (None,)
        inner = None if arg is None or arg is pygltflib.Attributes else _converter(arg)  # morph targets stay dicts

        def convert_list(v):
            if v is None:
                return None
            if not isinstance(v, list):
                raise TypeError(f"expected a JSON array, got {type(v).__name__}")
            return v if inner is None else [inner(x) for x in v]
        return convert_list
    if tp is float:
        # as dataclasses_json does: 0 -> 0.0 where pygltflib says float
        return lambda v: float(v) if whole(v) else v
    if tp is int:
        def convert_int(v):
            if isinstance(v, float):
                if not v.is_integer():  # NaN, infinity, 1.5 where an index or count belongs
                    raise TypeError(f"expected an integer, got {v}")
                return int(v)
            return v
        return convert_int
    if tp is pygltflib.Attributes:
        return lambda v: pygltflib.Attributes(**v) if isinstance(v, dict) else v
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        names = {f.name for f in dataclasses.fields(tp)}
        hints = {k: v for k, v in typing.get_type_hints(tp).items() if k in names}
        fields: dict = {}

        def convert_object(v):
            if v is None:
                return None
            if not isinstance(v, dict):
                raise TypeError(f"expected a JSON object for {tp.__name__}, got {type(v).__name__}")
            kw = {}
            for k, x in v.items():
                if k in hints:
                    f = fields.get(k)
                    if f is None:
                        f = fields[k] = _converter(hints[k])
                    kw[k] = None if x is None else f(x)
            return tp(**kw)
        return convert_object
    return lambda v: v


def _check_glb(path: Path) -> None:
    data = path.read_bytes()
    size = len(data)
    if size < 20 or data[:4] != b"glTF":
        raise InputError(f"{path}: not a binary glTF file (bad header); re-export or re-download it")
    _, version, length = struct.unpack_from("<4sII", data, 0)
    if version != 2:
        raise InputError(f"{path}: binary glTF version {version} is not supported; convert it to glTF 2.0")
    if length != size:
        raise InputError(f"{path}: truncated or padded .glb (header says {length} bytes, file has {size}); "
                         "re-export or re-download the file")
    offset = 12
    while offset < size:
        if offset + 8 > size:
            raise InputError(f"{path}: truncated .glb chunk header at byte {offset}; re-export the file")
        chunk_len, _ = struct.unpack_from("<II", data, offset)
        if offset + 8 + chunk_len > size:
            raise InputError(f"{path}: truncated .glb (a chunk of {chunk_len} bytes runs past the end); re-export the file")
        offset += 8 + chunk_len


MAX_COUNT = 50_000_000  # elements in one accessor: far beyond any character, far below a memory bomb


# extensions a file may require that the importer reads: UV transforms, and quantised attributes (normalised or
# integer accessors, which `GltfData.accessor` decodes); material extensions only change how a material looks
READ_EXTENSIONS = ("KHR_texture_transform", "KHR_mesh_quantization", "KHR_materials_")
# what the ones it cannot read are, for the message
_EXTENSION_FIX = {"KHR_draco_mesh_compression": "mesh compression", "EXT_meshopt_compression": "mesh compression",
                  "KHR_meshopt_compression": "mesh compression", "KHR_texture_basisu": "KTX2 textures"}


def check_extensions(gltf, path: Path) -> None:
    """Refuse a file that requires an extension the importer cannot read (``extensionsRequired``): Draco- or
    meshopt-compressed meshes have accessors without data, which would read as zeros, a mesh collapsed to a
    point."""
    required = [e for e in gltf.extensionsRequired or [] if isinstance(e, str)]
    missing = [e for e in required if not e.startswith(READ_EXTENSIONS)]
    if missing:
        what = sorted({_EXTENSION_FIX.get(e, "") for e in missing} - {""})
        raise InputError(f"{path}: requires the glTF extension{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
                         f"{' (' + ', '.join(what) + ')' if what else ''}, which usdposer cannot read; re-export it "
                         "without (e.g. import it in Blender and export glTF with Compression off)")


def check_references(gltf, path: Path) -> None:
    """Every index a glTF's JSON holds points at something that exists, every accessor's type is known and its count
    sane; one line naming the first that does not (a hostile or broken file fails here, not deep in the import)."""
    def n(name):
        return len(getattr(gltf, name) or [])

    def ref(value, name, where):
        if value is None:
            return
        if not whole(value) or not 0 <= value < n(name):
            single = name[:-1] if name != "accessors" else "accessor"
            raise InputError(f"{path}: {where} refers to {single} {value}, which does not exist "
                             f"(the file has {n(name)}); the file is corrupt, re-export it")

    for i, node in enumerate(gltf.nodes or []):
        for c in node.children or []:
            ref(c, "nodes", f"node {i}'s child")
        for k, n_values in (("translation", 3), ("rotation", 4), ("scale", 3), ("matrix", 16)):
            v = getattr(node, k)
            if v is not None and (not isinstance(v, list) or len(v) != n_values
                                  or not all(isinstance(x, (int, float)) and np.isfinite(x) for x in v)):
                raise InputError(f"{path}: node {i}'s {k} is not {n_values} finite numbers; the file is corrupt, "
                                 "re-export it")
        ref(node.mesh, "meshes", f"node {i}")
        ref(node.skin, "skins", f"node {i}")
    for i, scene in enumerate(gltf.scenes or []):
        for r in scene.nodes or []:
            ref(r, "nodes", f"scene {i}")
    for i, skin in enumerate(gltf.skins or []):
        if not skin.joints:
            raise InputError(f"{path}: skin {i} has no joints; re-export the file")
        for j in skin.joints:
            ref(j, "nodes", f"skin {i}'s joint")
        ref(skin.inverseBindMatrices, "accessors", f"skin {i}'s inverseBindMatrices")
        ref(skin.skeleton, "nodes", f"skin {i}'s skeleton")
    for i, mesh in enumerate(gltf.meshes or []):
        for k, prim in enumerate(mesh.primitives or []):
            attrs = prim.attributes.__dict__ if hasattr(prim.attributes, "__dict__") else dict(prim.attributes)
            for name, a in attrs.items():
                ref(a, "accessors", f"mesh {i} primitive {k} {name}")
            ref(prim.indices, "accessors", f"mesh {i} primitive {k} indices")
            ref(prim.material, "materials", f"mesh {i} primitive {k}")
            for t in prim.targets or []:
                for name, a in (t.items() if isinstance(t, dict) else t.__dict__.items()):
                    ref(a, "accessors", f"mesh {i} morph target {name}")
    for i, anim in enumerate(gltf.animations or []):
        for k, smp in enumerate(anim.samplers or []):
            ref(smp.input, "accessors", f"animation {i} sampler {k} input")
            ref(smp.output, "accessors", f"animation {i} sampler {k} output")
        for k, ch in enumerate(anim.channels or []):
            if not isinstance(ch.sampler, int) or not 0 <= ch.sampler < len(anim.samplers or []):
                raise InputError(f"{path}: animation {i} channel {k} refers to sampler {ch.sampler}, which does not "
                                 "exist; the file is corrupt, re-export it")
            if ch.target is not None:
                ref(ch.target.node, "nodes", f"animation {i} channel {k}")
    for i, acc in enumerate(gltf.accessors or []):
        ref(acc.bufferView, "bufferViews", f"accessor {i}")
        if acc.componentType not in _COMPONENT or acc.type not in _NCOMP:
            raise InputError(f"{path}: accessor {i} has an unknown type ({acc.type}, {acc.componentType}); the file "
                             "is corrupt, re-export it")
        if not isinstance(acc.count, int) or not 0 <= acc.count <= MAX_COUNT:
            raise InputError(f"{path}: accessor {i} claims {acc.count} elements (at most {MAX_COUNT:,} are read); "
                             "the file is corrupt, re-export it")
        offset = acc.byteOffset or 0
        if not whole(offset) or offset < 0:
            raise InputError(f"{path}: accessor {i} has byteOffset {offset!r}; the file is corrupt, re-export it")
    for i, bv in enumerate(gltf.bufferViews or []):
        if bv.buffer is None:
            raise InputError(f"{path}: bufferView {i} names no buffer; the file is corrupt, re-export it")
        ref(bv.buffer, "buffers", f"bufferView {i}")
        for k, v in (("byteOffset", bv.byteOffset or 0), ("byteLength", bv.byteLength)):
            if not whole(v) or v < 0:
                raise InputError(f"{path}: bufferView {i} has {k} {v!r}; the file is corrupt, re-export it")
        if bv.byteStride is not None and (not isinstance(bv.byteStride, int) or not 4 <= bv.byteStride <= 252):
            raise InputError(f"{path}: bufferView {i} has byteStride {bv.byteStride!r} (4 to 252); re-export it")
    for i, tex in enumerate(gltf.textures or []):
        ref(tex.source, "images", f"texture {i}")
    for i, img in enumerate(gltf.images or []):
        ref(img.bufferView, "bufferViews", f"image {i}")


class GltfData:
    """Decoded view of a glTF: buffers, accessors, node hierarchy and rest transforms."""

    def __init__(self, gltf, path: str | Path):
        self.gltf = gltf
        self.path = Path(path)
        self._buffers: dict[int, bytes] = {}
        check_extensions(gltf, self.path)
        check_references(gltf, self.path)
        n = len(gltf.nodes)
        self.parent = np.full(n, -1, dtype=np.int64)
        for i, node in enumerate(gltf.nodes):
            for c in node.children or []:
                if self.parent[c] >= 0 or c == i:
                    raise InputError(f"{self.path}: node {c} has two parents (nodes {self.parent[c]} and {i}) or is its "
                                     "own child: the hierarchy is not a tree; fix the file")
                self.parent[c] = i
        self.order = self._topological_order()
        self.rest_trs = [self._node_trs(node) for node in gltf.nodes]

    # ---------------------------------------------------------------------------------------------------- buffers
    def buffer(self, index: int) -> bytes:
        if index not in self._buffers:
            buf = self.gltf.buffers[index]
            if buf.uri is None:
                blob = self.gltf.binary_blob()
                if blob is None:
                    raise InputError(f"{self.path}: buffer {index} has no data; re-export the file")
                data = bytes(blob)
            elif buf.uri.startswith("data:"):
                try:
                    data = base64.b64decode(buf.uri.split(",", 1)[1], validate=False)
                except (IndexError, ValueError):
                    raise InputError(f"{self.path}: buffer {index} has a malformed data: URI; re-export the file") from None
            else:
                file = resolve_inside(self.path, buf.uri, f"buffer {index}")
                if not file.is_file():
                    raise InputError(f"{self.path}: buffer file {buf.uri} is missing; keep it beside the .gltf")
                data = file.read_bytes()
            if len(data) < (buf.byteLength or 0):
                raise InputError(f"{self.path}: buffer {index} is truncated ({len(data)} of {buf.byteLength} bytes)")
            self._buffers[index] = data
        return self._buffers[index]

    def buffer_view_bytes(self, index: int) -> bytes:
        bv = self.gltf.bufferViews[index]
        data = self.buffer(bv.buffer)
        start = bv.byteOffset or 0
        return data[start : start + bv.byteLength]

    def accessor(self, index: int, expect: tuple[str, ...] | None = None, what: str = "") -> np.ndarray:
        """Decode an accessor to float64 (normalised integer types mapped to [0, 1] / [-1, 1]) or int64 arrays,
        shaped (count, components) or (count,) for scalars. ``expect``: the accessor types allowed here (a file
        whose indices point at the wrong accessor fails with one line instead of a shape error later)."""
        if not isinstance(index, int) or not 0 <= index < len(self.gltf.accessors or []):
            raise InputError(f"{self.path}: {what or 'a reference'} names no valid accessor ({index!r}); the file is "
                             "corrupt, re-export it")
        acc = self.gltf.accessors[index]
        if expect is not None and acc.type not in expect:
            raise InputError(f"{self.path}: {what or 'a reference'} uses accessor {index} of type {acc.type} "
                             f"(wanted {' or '.join(expect)}); the file is corrupt, re-export it")
        dtype = _COMPONENT[acc.componentType]
        ncomp = _NCOMP[acc.type]
        count = acc.count
        if acc.bufferView is None:
            out = np.zeros((count, ncomp), dtype=dtype)
        else:
            bv = self.gltf.bufferViews[acc.bufferView]
            data = self.buffer(bv.buffer)
            itemsize = np.dtype(dtype).itemsize
            stride = bv.byteStride or itemsize * ncomp
            start = (bv.byteOffset or 0) + (acc.byteOffset or 0)
            need = start + stride * (count - 1) + itemsize * ncomp if count else start
            if need > len(data):
                raise InputError(f"{self.path}: accessor {index} reads past the end of its buffer; the file is truncated")
            if stride < itemsize * ncomp or stride % itemsize or start < 0 or start + stride * max(count - 1, 0) \
                    + itemsize * ncomp > (bv.byteOffset or 0) + bv.byteLength:
                raise InputError(f"{self.path}: accessor {index} does not fit its bufferView (offset {start}, stride "
                                 f"{stride}, {count} elements); the file is corrupt, re-export it")
            raw = np.ndarray((count, ncomp), dtype=dtype, buffer=data, offset=start, strides=(stride, itemsize))
            out = np.array(raw)
        if acc.sparse is not None:
            sp = acc.sparse
            idx_dtype = _COMPONENT[sp.indices.componentType]
            ib = self.buffer_view_bytes(sp.indices.bufferView)
            idx = np.frombuffer(ib, dtype=idx_dtype, count=sp.count, offset=sp.indices.byteOffset or 0).astype(np.int64)
            vb = self.buffer_view_bytes(sp.values.bufferView)
            vals = np.frombuffer(vb, dtype=dtype, count=sp.count * ncomp, offset=sp.values.byteOffset or 0)
            out = out.copy()
            out[idx] = vals.reshape(sp.count, ncomp)
        with np.errstate(invalid="ignore"):  # garbage bytes may hold signalling NaNs; callers check finiteness
            if dtype == np.float32:
                res = out.astype(np.float64)
            elif acc.normalized:
                res = np.maximum(out.astype(np.float64) / _NORM_DIV[dtype], -1.0)
            else:
                res = out.astype(np.int64)
        return res[:, 0] if ncomp == 1 else res

    # ----------------------------------------------------------------------------------------------- hierarchy
    def _topological_order(self) -> list[int]:
        order, seen = [], set()
        roots = [i for i in range(len(self.parent)) if self.parent[i] < 0]
        stack = list(reversed(roots))
        while stack:
            i = stack.pop()
            if i in seen:
                raise InputError(f"{self.path}: node {i} appears twice in the hierarchy (a cycle); fix the file")
            seen.add(i)
            order.append(i)
            stack.extend(reversed(self.gltf.nodes[i].children or []))
        if len(order) < len(self.parent):
            lost = sorted(set(range(len(self.parent))) - seen)
            raise InputError(f"{self.path}: nodes {lost[:5]} form a cycle (each is a child of another, none is a root); "
                             "fix the file")
        return order

    @staticmethod
    def _node_trs(node) -> tuple[np.ndarray, np.ndarray, np.ndarray] | np.ndarray:
        if node.matrix is not None and len(node.matrix) == 16:
            return np.asarray(node.matrix, dtype=np.float64).reshape(4, 4).T  # column-major -> column-vector
        t = np.asarray(node.translation if node.translation is not None else [0, 0, 0], dtype=np.float64)
        r = np.asarray(node.rotation if node.rotation is not None else [0, 0, 0, 1], dtype=np.float64)
        s = np.asarray(node.scale if node.scale is not None else [1, 1, 1], dtype=np.float64)
        return t, np.array([r[3], r[0], r[1], r[2]]), s  # quaternion to (w, x, y, z)

    def local_matrices(self, overrides: dict[tuple[int, str], np.ndarray] | None = None, frames: int = 1) -> np.ndarray:
        """(frames, nodes, 4, 4) parent-relative node matrices; ``overrides[(node, "translation"|"rotation"|"scale")]``
        gives (frames, 3|4) animated values replacing the node's rest TRS."""
        overrides = overrides or {}
        N = len(self.parent)
        t, q, sc = np.zeros((frames, N, 3)), np.zeros((frames, N, 4)), np.ones((frames, N, 3))
        q[..., 0] = 1.0
        fixed = []
        for i, rest in enumerate(self.rest_trs):
            if isinstance(rest, np.ndarray):
                fixed.append(i)
            else:
                t[:, i], q[:, i], sc[:, i] = rest
        for (i, path), v in overrides.items():
            if i in fixed:
                continue
            {"translation": t, "rotation": q, "scale": sc}[path][:, i] = v
        local = trs_matrix(t, q, sc)  # (frames, nodes, 4, 4): every node at once
        for i in fixed:
            local[:, i] = self.rest_trs[i]
        return local

    def world_matrices(self, overrides: dict[tuple[int, str], np.ndarray] | None = None, frames: int = 1) -> np.ndarray:
        """(frames, nodes, 4, 4) world matrices (see :meth:`local_matrices` for ``overrides``)."""
        local = self.local_matrices(overrides, frames)
        world = np.zeros_like(local)
        for i in self.order:
            p = self.parent[i]
            world[:, i] = local[:, i] if p < 0 else world[:, p] @ local[:, i]
        return world

    def relative_matrices(self, nodes: list[int], parents: np.ndarray,
                          overrides: dict[tuple[int, str], np.ndarray] | None = None, frames: int = 1) -> np.ndarray:
        """(frames, len(nodes), 4, 4) transform of each node relative to ``nodes[parents[i]]`` (the world for -1).

        Composed from the node-local matrices along the chain between the two (non-joint nodes in between are
        folded in), never by inverting a world matrix: a clip that scales a joint to zero (KayKit's spawn clips
        grow the character from nothing) has singular world matrices but well-defined local ones.
        """
        local = self.local_matrices(overrides, frames)
        out = np.zeros((frames, len(nodes), 4, 4))
        for i, n in enumerate(nodes):
            stop = nodes[parents[i]] if parents[i] >= 0 else -1
            m, x = local[:, n], self.parent[n]
            while x >= 0 and x != stop:
                m = local[:, x] @ m
                x = self.parent[x]
            out[:, i] = m
        return out


def trs_matrix(t: np.ndarray, q: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(N, 4, 4) = T @ R(q) @ S for (N, 3) translations, (N, 4) (w, x, y, z) quaternions, (N, 3) scales."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True).clip(1e-12)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    R = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)
    M = np.zeros((*q.shape[:-1], 4, 4))
    M[..., :3, :3] = R * s[..., None, :]
    M[..., :3, 3] = t
    M[..., 3, 3] = 1.0
    return M


@dataclass
class Channel:
    node: int
    path: str  # translation | rotation | scale | weights
    times: np.ndarray  # (n,)
    values: np.ndarray  # (n, c) or (3n, c) for CUBICSPLINE; rotations as (w, x, y, z)
    interpolation: str


def animation_channels(data: GltfData, anim) -> list[Channel]:
    out = []
    for ch in anim.channels:
        if ch.target is None or ch.target.node is None:
            continue
        sampler = anim.samplers[ch.sampler]
        where = f"animation channel ({ch.target.path} of node {ch.target.node})"
        times = np.asarray(data.accessor(sampler.input, ("SCALAR",), where), dtype=np.float64).reshape(-1)
        want = {"rotation": ("VEC4",), "translation": ("VEC3",), "scale": ("VEC3",), "weights": ("SCALAR",)}
        values = data.accessor(sampler.output, want.get(ch.target.path), where)
        per_key = 3 if (sampler.interpolation or "").upper() == "CUBICSPLINE" else 1
        if len(times) == 0 or (ch.target.path != "weights" and len(values) != per_key * len(times)):
            raise InputError(f"{data.path}: {where} has {len(times)} key times and {len(values)} values; the file is "
                             "corrupt, re-export it")
        if not (np.isfinite(times).all() and np.isfinite(values).all()):
            raise InputError(f"{data.path}: {where} has NaN or infinite keys; re-export the animation")
        if (np.diff(times) < 0).any():
            raise InputError(f"{data.path}: {where} has key times that go backwards; re-export the animation")
        values = values.reshape(len(values), -1) if values.ndim > 1 else values[:, None]
        if ch.target.path == "rotation":
            values = values[:, [3, 0, 1, 2]]  # glTF (x, y, z, w) -> (w, x, y, z)
        out.append(Channel(ch.target.node, ch.target.path, times, values.astype(np.float64),
                           (sampler.interpolation or "LINEAR").upper()))
    return out


def sample_channel(ch: Channel, t: np.ndarray) -> np.ndarray:
    """Evaluate a channel at times ``t`` (T,) -> (T, c), per the glTF 2.0 spec (LINEAR with slerp for rotations,
    STEP, CUBICSPLINE Hermite with tangents scaled by the key interval); clamped outside the key range."""
    return sample_channels([ch], t)[0]


def sample_channels(chs: list[Channel], t: np.ndarray) -> list[np.ndarray]:
    """:func:`sample_channel` of each channel; channels that share key times, interpolation and kind (rotation or
    not) are sampled together (an animation library's clips key every bone at the same times)."""
    groups: dict[tuple, list[int]] = {}
    for i, ch in enumerate(chs):
        groups.setdefault((ch.times.tobytes(), ch.interpolation, ch.path == "rotation", ch.values.shape[-1]),
                          []).append(i)
    out: list = [None] * len(chs)
    for idx in groups.values():
        first = chs[idx[0]]
        values = np.stack([chs[i].values for i in idx], 1)  # (n or 3n, m, c)
        res = _sample_stacked(first.times, values, first.interpolation, first.path == "rotation", t)  # (T, m, c)
        for j, i in enumerate(idx):
            out[i] = res[:, j]
    return out


def _sample_stacked(times: np.ndarray, values: np.ndarray, interpolation: str, rotation: bool,
                    t: np.ndarray) -> np.ndarray:
    """(T, m, c) values of m channels keyed at the same ``times`` (n,), ``values`` (n, m, c) or (3n, m, c)."""
    n = len(times)
    cubic = interpolation == "CUBICSPLINE"
    vals = values.reshape(n, 3, *values.shape[1:])[:, 1] if cubic else values
    if n == 1:
        return np.repeat(vals[:1], len(t), 0)
    k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, n - 2)
    t0, t1 = times[k], times[k + 1]
    dt = np.where(t1 > t0, t1 - t0, 1.0)
    u = np.clip((t - t0) / dt, 0.0, 1.0)[:, None, None]  # (T, 1, 1)
    v0, v1 = vals[k], vals[k + 1]
    if interpolation == "STEP":
        out = np.where(u >= 1.0, v1, v0)
    elif cubic:
        tang = values.reshape(n, 3, *values.shape[1:])
        b0, a1 = tang[k, 2], tang[k + 1, 0]  # out-tangent of key k, in-tangent of key k + 1
        u2, u3 = u * u, u * u * u
        d = dt[:, None, None]
        out = (2 * u3 - 3 * u2 + 1) * v0 + (u3 - 2 * u2 + u) * d * b0 + (-2 * u3 + 3 * u2) * v1 + (u3 - u2) * d * a1
    elif rotation:
        out = _slerp(v0, v1, u)
    else:
        out = v0 + (v1 - v0) * u
    if rotation:
        out = out / np.linalg.norm(out, axis=-1, keepdims=True).clip(1e-12)
    return out


def _slerp(a: np.ndarray, b: np.ndarray, u: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True).clip(1e-12)
    dot = (a * b).sum(-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    s = np.sin(theta)
    small = s < 1e-6
    wa = np.where(small, 1 - u, np.sin((1 - u) * theta) / np.where(small, 1, s))
    wb = np.where(small, u, np.sin(u * theta) / np.where(small, 1, s))
    return wa * a + wb * b
