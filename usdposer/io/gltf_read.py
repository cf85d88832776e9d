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

from usdposer.errors import InputError

_COMPONENT = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NORM_DIV = {np.int8: 127.0, np.uint8: 255.0, np.int16: 32767.0, np.uint16: 65535.0}


def load_gltf(path: str | Path):
    """Parse a .gltf/.glb with pygltflib after checking that the file is complete. Raises InputError."""
    import pygltflib

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".gltf", ".glb"):
        raise InputError(f"{path}: not a glTF file (.gltf or .glb)")
    if suffix == ".glb":
        _check_glb(path)
    try:
        gltf = pygltflib.GLTF2().load(str(path))
    except Exception as exc:  # pygltflib raises many types on malformed input
        raise InputError(f"{path}: cannot be parsed as glTF ({type(exc).__name__}: {exc}); re-export the file") from exc
    if gltf is None:
        raise InputError(f"{path}: cannot be parsed as glTF; re-export the file")
    if not str(getattr(gltf.asset, "version", "2.0")).startswith("2"):
        raise InputError(f"{path}: glTF version {gltf.asset.version} is not supported; convert it to glTF 2.0")
    return gltf


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


class GltfData:
    """Decoded view of a glTF: buffers, accessors, node hierarchy and rest transforms."""

    def __init__(self, gltf, path: str | Path):
        self.gltf = gltf
        self.path = Path(path)
        self._buffers: dict[int, bytes] = {}
        n = len(gltf.nodes)
        self.parent = np.full(n, -1, dtype=np.int64)
        for i, node in enumerate(gltf.nodes):
            for c in node.children or []:
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
                data = base64.b64decode(buf.uri.split(",", 1)[1])
            else:
                file = self.path.parent / buf.uri
                if not file.exists():
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

    def accessor(self, index: int) -> np.ndarray:
        """Decode an accessor to float64 (normalised integer types mapped to [0, 1] / [-1, 1]) or int64 arrays,
        shaped (count, components) or (count,) for scalars."""
        acc = self.gltf.accessors[index]
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
        local = np.zeros((frames, len(self.parent), 4, 4))
        for i, rest in enumerate(self.rest_trs):
            if isinstance(rest, np.ndarray):
                local[:, i] = rest
            else:
                t = overrides.get((i, "translation"), rest[0])
                q = overrides.get((i, "rotation"), rest[1])
                s = overrides.get((i, "scale"), rest[2])
                local[:, i] = trs_matrix(np.broadcast_to(t, (frames, 3)), np.broadcast_to(q, (frames, 4)),
                                         np.broadcast_to(s, (frames, 3)))
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
        if ch.target.node is None:
            continue
        sampler = anim.samplers[ch.sampler]
        times = np.asarray(data.accessor(sampler.input), dtype=np.float64).reshape(-1)
        values = data.accessor(sampler.output)
        values = values.reshape(len(values), -1) if values.ndim > 1 else values[:, None]
        if ch.target.path == "rotation":
            values = values[:, [3, 0, 1, 2]]  # glTF (x, y, z, w) -> (w, x, y, z)
        out.append(Channel(ch.target.node, ch.target.path, times, values.astype(np.float64),
                           (sampler.interpolation or "LINEAR").upper()))
    return out


def sample_channel(ch: Channel, t: np.ndarray) -> np.ndarray:
    """Evaluate a channel at times ``t`` (T,) -> (T, c), per the glTF 2.0 spec (LINEAR with slerp for rotations,
    STEP, CUBICSPLINE Hermite with tangents scaled by the key interval); clamped outside the key range."""
    times, n = ch.times, len(ch.times)
    cubic = ch.interpolation == "CUBICSPLINE"
    vals = ch.values.reshape(n, 3, -1)[:, 1] if cubic else ch.values
    if n == 1:
        return np.repeat(vals[:1], len(t), 0)
    k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, n - 2)
    t0, t1 = times[k], times[k + 1]
    dt = np.where(t1 > t0, t1 - t0, 1.0)
    u = np.clip((t - t0) / dt, 0.0, 1.0)[:, None]
    v0, v1 = vals[k], vals[k + 1]
    if ch.interpolation == "STEP":
        out = np.where(u >= 1.0, v1, v0)
    elif cubic:
        tang = ch.values.reshape(n, 3, -1)
        b0, a1 = tang[k, 2], tang[k + 1, 0]  # out-tangent of key k, in-tangent of key k + 1
        u2, u3 = u * u, u * u * u
        d = dt[:, None]
        out = (2 * u3 - 3 * u2 + 1) * v0 + (u3 - 2 * u2 + u) * d * b0 + (-2 * u3 + 3 * u2) * v1 + (u3 - u2) * d * a1
    elif ch.path == "rotation":
        out = _slerp(v0, v1, u)
    else:
        out = v0 + (v1 - v0) * u
    if ch.path == "rotation":
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
