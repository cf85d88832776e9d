"""An independent glTF 2.0 skinning reference for the importer tests (pygltflib + numpy, written apart from
``usdposer.io.gltf_read`` on purpose: a bug shared by both would otherwise go unseen).

It evaluates the node hierarchy at time ``t`` of one animation by the spec's formulas, then skins each primitive:
``v' = sum_i w_i * world(joint_i) * inverseBindMatrix_i * v`` (weights renormalised to sum to 1, as the spec
requires), or ``v' = world(node) * v`` for an unskinned mesh, after ``v += sum_k w_k * target_k`` for a mesh with morph
targets (weights from the animation's ``weights`` channel, else the mesh's defaults). LINEAR and STEP keys (all shared
assets).
"""

from __future__ import annotations

import numpy as np
import pygltflib

_DT = {5120: "i1", 5121: "u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_N = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_SCALE = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}


class Reference:
    def __init__(self, path: str):
        import base64
        from pathlib import Path

        self.g = pygltflib.GLTF2().load(path)
        blob = self.g.binary_blob()

        def buffer(b) -> bytes:  # .glb: the binary chunk; .gltf: a data URI or a file beside it
            if b.uri is None:
                return bytes(blob)
            if b.uri.startswith("data:"):
                return base64.b64decode(b.uri.split(",", 1)[1])
            return (Path(path).parent / b.uri).read_bytes()

        self.buffers = [buffer(b) for b in self.g.buffers]

    def read(self, index: int) -> np.ndarray:
        a = self.g.accessors[index]
        bv = self.g.bufferViews[a.bufferView]
        n = _N[a.type]
        dt = np.dtype(_DT[a.componentType])
        stride = bv.byteStride or dt.itemsize * n
        base = (bv.byteOffset or 0) + (a.byteOffset or 0)
        data = self.buffers[bv.buffer]
        rows = [np.frombuffer(data, dtype=dt, count=n, offset=base + i * stride) for i in range(a.count)]
        arr = np.array(rows, dtype=np.float64)
        if a.normalized:
            arr = arr / _SCALE[a.componentType]
        return arr

    def local(self, node_index: int, anim_index: int | None, t: float) -> np.ndarray:
        node = self.g.nodes[node_index]
        if node.matrix:
            return np.array(node.matrix, dtype=np.float64).reshape(4, 4).T
        T = np.array(node.translation or [0, 0, 0], dtype=np.float64)
        R = np.array(node.rotation or [0, 0, 0, 1], dtype=np.float64)  # x, y, z, w
        S = np.array(node.scale or [1, 1, 1], dtype=np.float64)
        if anim_index is not None:
            anim = self.g.animations[anim_index]
            for ch in anim.channels:
                if ch.target.node != node_index or ch.target.path == "weights":
                    continue
                smp = anim.samplers[ch.sampler]
                mode = smp.interpolation or "LINEAR"
                assert mode in ("LINEAR", "STEP")
                times = self.read(smp.input)[:, 0]
                vals = self.read(smp.output)
                value = _interp(times, vals, t, ch.target.path == "rotation", step=mode == "STEP")
                if ch.target.path == "translation":
                    T = value
                elif ch.target.path == "rotation":
                    R = value
                else:
                    S = value
        x, y, z, w = R / np.linalg.norm(R)
        rot = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ])
        M = np.eye(4)
        M[:3, :3] = rot @ np.diag(S)
        M[:3, 3] = T
        return M

    def worlds(self, anim_index: int | None, t: float) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}

        def visit(i: int, parent: np.ndarray) -> None:
            out[i] = parent @ self.local(i, anim_index, t)
            for c in self.g.nodes[i].children or []:
                visit(c, out[i])

        for root in self.g.scenes[self.g.scene or 0].nodes:
            visit(root, np.eye(4))
        return out

    def morph_weights(self, node_index: int, anim_index: int | None, t: float) -> np.ndarray:
        """(B,) morph-target weights of a mesh node at time t: the animation's ``weights`` channel, else the mesh's
        default weights, else zeros."""
        mesh = self.g.meshes[self.g.nodes[node_index].mesh]
        B = len(mesh.primitives[0].targets or [])
        w = np.asarray(mesh.weights or [0.0] * B, dtype=np.float64)
        if anim_index is not None:
            anim = self.g.animations[anim_index]
            for ch in anim.channels:
                if ch.target.node == node_index and ch.target.path == "weights":
                    smp = anim.samplers[ch.sampler]
                    assert (smp.interpolation or "LINEAR") in ("LINEAR", "STEP")
                    times = self.read(smp.input)[:, 0]
                    vals = self.read(smp.output).reshape(len(times), B)
                    w = _interp(times, vals, t, False, step=smp.interpolation == "STEP")
        return w

    def skinned(self, node_index: int, prim_index: int, anim_index: int | None, t: float) -> np.ndarray:
        """(V, 3) world-space vertices of one primitive at time t (NaN where the file's weights are NaN)."""
        worlds = self.worlds(anim_index, t)
        node = self.g.nodes[node_index]
        prim = self.g.meshes[node.mesh].primitives[prim_index]
        v = self.read(prim.attributes.POSITION)
        for target, w in zip(prim.targets or [], self.morph_weights(node_index, anim_index, t)):
            if target.get("POSITION") is not None and w != 0:
                v = v + w * self.read(target["POSITION"])
        vh = np.concatenate([v, np.ones((len(v), 1))], 1)
        if node.skin is None:
            return (vh @ worlds[node_index].T)[:, :3]
        skin = self.g.skins[node.skin]
        ibm = self.read(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
        joint_mats = np.stack([worlds[j] @ ibm[k] for k, j in enumerate(skin.joints)])
        joints = self.read(prim.attributes.JOINTS_0).astype(int)
        weights = self.read(prim.attributes.WEIGHTS_0)
        weights = weights / weights.sum(1, keepdims=True)
        out = np.zeros((len(v), 3))
        for k in range(4):
            out += weights[:, k : k + 1] * np.einsum("vij,vj->vi", joint_mats[joints[:, k]], vh)[:, :3]
        return out


def _interp(times: np.ndarray, vals: np.ndarray, t: float, rotation: bool, step: bool = False) -> np.ndarray:
    if t <= times[0]:
        return vals[0]
    if t >= times[-1]:
        return vals[-1]
    k = int(np.searchsorted(times, t, side="right") - 1)
    if step:  # the spec: the value of the key at or before t
        return vals[k]
    u = (t - times[k]) / (times[k + 1] - times[k])
    a, b = vals[k], vals[k + 1]
    if not rotation:
        return a + u * (b - a)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    if np.dot(a, b) < 0:
        b = -b
    th = np.arccos(min(1.0, float(np.dot(a, b))))
    if th < 1e-6:  # nearly equal keys: normalised lerp
        q = a + u * (b - a)
        return q / np.linalg.norm(q)
    return (np.sin((1 - u) * th) * a + np.sin(u * th) * b) / np.sin(th)
