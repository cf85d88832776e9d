"""Core types: ``Rig`` (static), ``Pose`` / ``Clip`` (time-varying), ``Mesh`` (a skinned surface of a rig).

Conventions, stated once for the whole package:
    - quaternions are ``(w, x, y, z)``;
    - matrices act on column vectors (``p' = M @ p``); USD's row-vector ``Gf`` matrices are transposed at the edge;
    - lengths are SI metres and the up axis is +Y; ``usdposer.io`` converts from the stage's ``metersPerUnit`` and
      ``upAxis`` when reading and back when writing;
    - "skeleton space" is the space UsdSkel computes joint and skinned-point transforms in (the Skeleton prim's
      local space), converted as above. ``Rig.skel_to_world`` places it in the (converted) stage.

Shape letters: B batch, T frames, J joints, V vertices, F faces, K influences per vertex.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from jaxtyping import Float, Int
    from torch import Tensor


Tint = tuple[tuple[float, float, float], tuple[float, float, float]]
NO_TINT: Tint = ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
WRAPS = ("repeat", "clamp", "mirror", "black")  # UsdUVTexture's wrapS / wrapT modes usdposer draws


@dataclass(frozen=True)
class Sampler:
    """How a base-colour texture is read, as its ``UsdUVTexture`` says.

    Attributes:
        tint: ``(scale, bias)`` (``inputs:scale`` / ``inputs:bias``, RGB; glTF's ``baseColorFactor`` is the scale): a
            texel's linear colour is ``texel * scale + bias``.
        uv_transform: the ``UsdTransform2d`` between the UVs and the texture as its own ``(scale (2,), rotation in
            degrees, translation (2,))`` (scaled, turned counter-clockwise, moved), or None.
        wrap: ``(wrapS, wrapT)``, what the texture shows outside [0, 1]: one of :data:`WRAPS` each (``useMetadata``, the
            schema's fallback, reads as ``repeat``, as Blender's importer takes it; Storm draws black there).
        color_space: ``inputs:sourceColorSpace``: ``"sRGB"`` (``auto`` too) texels are decoded to linear, ``"raw"``
            ones are linear already (Blender: Non-Color).
    """

    tint: Tint = NO_TINT
    uv_transform: tuple | None = None
    wrap: tuple[str, str] = ("repeat", "repeat")
    color_space: str = "sRGB"


NO_SAMPLER = Sampler()


@dataclass(frozen=True)
class FaceLook:
    """The look of some of a mesh's triangles (a ``materialBind`` GeomSubset: Maya's and Blender's per-face
    materials): ``faces`` (n,) int64 triangle indices, their base-colour texture path (or None), display colour,
    how the texture is read (:class:`Sampler`) and the subset's name ("" for the mesh's own look)."""

    faces: Int[Tensor, " n"]
    texture: str | None = None
    color: tuple[float, float, float] = (0.7, 0.7, 0.7)
    sampler: Sampler = NO_SAMPLER
    name: str = ""


@dataclass(frozen=True)
class Mesh:
    """A skinned triangle mesh bound to a rig, in skeleton space at bind time.

    Attributes:
        path: prim path of the source ``UsdGeom.Mesh`` (or a generated name).
        points: ``(V, 3)`` bind-pose points in skeleton space, metres (``geomBindTransform`` already applied).
        faces: ``(F, 3)`` int64 triangle vertex indices (polygons fan-triangulated).
        joint_indices: ``(V, K)`` int64 indices into ``Rig.joints`` (rigid binds are expanded per vertex).
        joint_weights: ``(V, K)`` skinning weights, rows summing to 1.
        normals: ``(V, 3)`` per-vertex unit normals in skeleton space, or None.
        uvs: ``(V, 2)`` per-vertex texture coordinates (USD ``st`` convention, origin bottom-left), or None.
        face_looks: per-face looks that override ``texture`` / ``color`` on their triangles (GeomSubsets bound to
            their own materials), in order; :meth:`looks` lists every look with its triangles.
        corner_uvs: ``(F, 3, 2)`` texture coordinates per triangle corner, for a ``faceVarying`` ``st`` (what Maya,
            Houdini and Blender write: seams split UVs, not points), or None. :meth:`face_uvs` gives either as corners.
        texture: path of the base-colour texture file, or None.
        color: ``(3,)`` display colour (linear RGB) used where there is no texture.
        sampler: how the texture is read (tint, UV transform, wrap modes, colour space: :class:`Sampler`).
        skinning_method: ``"classicLinear"`` or ``"dualQuaternion"`` (``primvars:skel:skinningMethod``); usdposer's
            skinning is linear blend skinning, so dual-quaternion meshes are reported by ``info`` and ``check``.
        blend_shapes: the mesh's blend-shape channel tokens (``skel:blendShapes``).
        blend_offsets: per blend shape, ``(point indices (N,), offsets (N, 3))`` in skeleton space, metres: added to
            the points at weight 1 before skinning (pictures of an animation that weights them; the pose space and
            the checks use the base shape).
    """

    path: str
    points: Float[Tensor, "V 3"]
    faces: Int[Tensor, "F 3"]
    joint_indices: Int[Tensor, "V K"]
    joint_weights: Float[Tensor, "V K"]
    normals: Float[Tensor, "V 3"] | None = None
    uvs: Float[Tensor, "V 2"] | None = None
    texture: str | None = None
    color: tuple[float, float, float] = (0.7, 0.7, 0.7)
    skinning_method: str = "classicLinear"
    blend_shapes: tuple[str, ...] = ()
    corner_uvs: Float[Tensor, "F 3 2"] | None = None
    face_looks: tuple[FaceLook, ...] = ()
    blend_offsets: tuple[tuple[Int[Tensor, " N"], Float[Tensor, "N 3"]], ...] = ()
    sampler: Sampler = NO_SAMPLER

    def looks(self) -> list[FaceLook]:
        """Every look of the mesh with the triangles that show it: the mesh's own (the faces no subset claims) first,
        then each subset's (a later subset wins a face two claim)."""
        if not self.face_looks:
            return [FaceLook(torch.arange(len(self.faces)), self.texture, self.color, self.sampler)]
        owner = torch.full((len(self.faces),), -1, dtype=torch.long)
        for k, look in enumerate(self.face_looks):
            owner[look.faces.long()] = k
        out = [FaceLook(torch.nonzero(owner < 0).flatten(), self.texture, self.color, self.sampler)]
        return out + [replace(look, faces=torch.nonzero(owner == k).flatten())
                      for k, look in enumerate(self.face_looks)]

    def face_uvs(self) -> Float[Tensor, "F 3 2"] | None:
        """Texture coordinates per triangle corner (from ``corner_uvs`` or the per-vertex ``uvs``), or None."""
        if self.corner_uvs is not None:
            return self.corner_uvs
        return None if self.uvs is None else self.uvs[self.faces.long()]

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_influences(self) -> int:
        return int(self.joint_indices.shape[1])


@dataclass(frozen=True)
class Rig:
    """A skeleton with its skinned meshes: everything about a character that does not change over time.

    Attributes:
        name: a short name for messages (the Skeleton prim's name or the file stem).
        skeleton_path: prim path of the ``UsdSkel.Skeleton``.
        joints: ``J`` joint path tokens (``"hips/spine"``), parents before children.
        parents: ``(J,)`` int64 parent index of each joint, -1 for roots; ``parents[j] < j``.
        rest_local: ``(J, 4, 4)`` parent-relative rest transforms (metres).
        bind_world: ``(J, 4, 4)`` skeleton-space bind transforms (metres).
        meshes: the skinned meshes bound to this skeleton.
        limits: ``(J, 3, 2)`` per-joint rotation limits in radians (lower, upper per local axis), NaN where unknown;
            or None when the asset has no limits.
        meters_per_unit: the source stage's ``metersPerUnit`` (for writing back).
        up_axis: the source stage's up axis, ``"Y"`` or ``"Z"`` (for writing back).
        skel_to_world: ``(4, 4)`` skeleton space to (converted) world at the stage's default time.
        source: the file the rig came from.
    """

    name: str
    skeleton_path: str
    joints: tuple[str, ...]
    parents: Int[Tensor, " J"]
    rest_local: Float[Tensor, "J 4 4"]
    bind_world: Float[Tensor, "J 4 4"]
    meshes: tuple[Mesh, ...] = ()
    limits: Float[Tensor, "J 3 2"] | None = None
    meters_per_unit: float = 1.0
    up_axis: str = "Y"
    skel_to_world: Float[Tensor, "4 4"] = field(default_factory=lambda: torch.eye(4, dtype=torch.float64))
    source: str = ""

    def __post_init__(self) -> None:
        J = len(self.joints)
        assert self.parents.shape == (J,), f"parents {tuple(self.parents.shape)} != ({J},)"
        assert self.rest_local.shape == (J, 4, 4), f"rest_local {tuple(self.rest_local.shape)}"
        assert self.bind_world.shape == (J, 4, 4), f"bind_world {tuple(self.bind_world.shape)}"

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def num_points(self) -> int:
        """Points of every mesh the rig skins."""
        return sum(m.num_points for m in self.meshes)

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Leaf name of every joint token (what Blender names bones by)."""
        return tuple(j.rsplit("/", 1)[-1] for j in self.joints)

    @property
    def roots(self) -> list[int]:
        return [j for j, p in enumerate(self.parents.tolist()) if p < 0]

    def joint_index(self, name: str) -> int:
        """Index of a joint given its full token or its unique leaf name (Unicode compared NFC-normalised: a name
        typed on macOS matches); raises ``KeyError`` naming the choices."""
        import unicodedata

        if name in self.joints:
            return self.joints.index(name)
        want = unicodedata.normalize("NFC", name)
        for names in (self.joints, self.joint_names):
            found = [i for i, n in enumerate(names) if unicodedata.normalize("NFC", n) == want]
            if len(found) == 1:
                return found[0]
        raise KeyError(f"unknown joint {name!r}; known joints: {', '.join(self.joint_names)}")

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Rig:
        """Copy with every floating tensor cast to ``dtype`` and every tensor moved to ``device``."""

        def cast(t):
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if t.is_floating_point() and dtype is not None else t.dtype)

        floats = [t for t in (self.rest_local, self.bind_world, self.skel_to_world, self.limits) if t is not None]
        floats += [t for m in self.meshes for t in (m.points, m.joint_weights, m.normals, m.uvs, m.corner_uvs)
                   if t is not None]
        if ((dtype is None or all(t.dtype == dtype for t in floats))
                and (device is None or all(t.device == torch.device(device) for t in floats))):
            return self  # nothing to convert: keep the object (and what is cached about it)

        meshes = tuple(
            replace(m, points=cast(m.points), faces=cast(m.faces), joint_indices=cast(m.joint_indices),
                    joint_weights=cast(m.joint_weights), normals=cast(m.normals), uvs=cast(m.uvs),
                    corner_uvs=cast(m.corner_uvs), blend_offsets=tuple((i, cast(o)) for i, o in m.blend_offsets))
            for m in self.meshes
        )
        return replace(self, parents=cast(self.parents), rest_local=cast(self.rest_local),
                       bind_world=cast(self.bind_world), limits=cast(self.limits),
                       skel_to_world=cast(self.skel_to_world), meshes=meshes)


@dataclass(frozen=True)
class Pose:
    """A batch of joint configurations of one rig.

    Attributes:
        rotations: ``(B, J, 4)`` joint-local unit quaternions ``(w, x, y, z)``.
        translations: ``(B, J, 3)`` joint-local translations, metres (the rest translations for non-root joints
            unless an animation moves them).
        scales: ``(B, J, 3)`` joint-local scales.
    """

    rotations: Float[Tensor, "B J 4"]
    translations: Float[Tensor, "B J 3"]
    scales: Float[Tensor, "B J 3"]

    def __post_init__(self) -> None:
        B, J = self.rotations.shape[:2]
        assert self.rotations.shape == (B, J, 4), f"rotations {tuple(self.rotations.shape)}"
        assert self.translations.shape == (B, J, 3), f"translations {tuple(self.translations.shape)} vs {(B, J, 3)}"
        assert self.scales.shape == (B, J, 3), f"scales {tuple(self.scales.shape)} vs {(B, J, 3)}"

    def __len__(self) -> int:
        return int(self.rotations.shape[0])

    def __getitem__(self, batch: slice | Tensor) -> Pose:
        """The poses ``batch`` (a slice or an index tensor) of this batch."""
        return Pose(self.rotations[batch], self.translations[batch], self.scales[batch])

    @classmethod
    def from_rotations(cls, rig: Rig, rotations: Float[Tensor, "B J 4"]) -> Pose:
        """Pose from joint-local rotations with the rest translations and scales (every root where it rests)."""
        from usdposer.core.kinematics import decompose_trs

        t_rest, _, s_rest = decompose_trs(rig.rest_local.to(rotations))
        B = rotations.shape[0]
        return cls(rotations, t_rest.expand(B, -1, -1).clone(), s_rest.expand(B, -1, -1).clone())

    @classmethod
    def rest(cls, rig: Rig, batch: int = 1) -> Pose:
        """The rig's rest pose repeated ``batch`` times."""
        from usdposer.core.kinematics import decompose_trs

        t, q, s = decompose_trs(rig.rest_local)
        return cls(q.expand(batch, -1, -1).clone(), t.expand(batch, -1, -1).clone(), s.expand(batch, -1, -1).clone())


@dataclass(frozen=True)
class Clip(Pose):
    """A Pose with a time axis: ``B`` is the number of frames ``T``.

    Attributes:
        time_codes: ``(T,)`` USD time codes of the frames.
        time_codes_per_second: the stage's ``timeCodesPerSecond``.
        name: the SkelAnimation prim's name.
        path: the SkelAnimation prim's path ("" for a generated clip).
        blend_shapes: the blend-shape channels the SkelAnimation weights (``blendShapes``).
        blend_weights: ``(T, S)`` their weights per frame, or None.
    """

    time_codes: Float[Tensor, " T"] = None  # type: ignore[assignment]
    time_codes_per_second: float = 24.0
    name: str = "anim"
    path: str = ""
    blend_shapes: tuple[str, ...] = ()
    blend_weights: Float[Tensor, "T S"] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.blend_weights is not None:
            assert self.blend_weights.shape == (len(self), len(self.blend_shapes)), "blend_weights must be (T, S)"
        if self.time_codes is None:
            object.__setattr__(self, "time_codes", torch.arange(len(self), dtype=torch.float64))
        assert self.time_codes.shape == (len(self),), f"time_codes {tuple(self.time_codes.shape)} vs ({len(self)},)"

    def frames(self, index) -> Clip:
        """The frames ``index`` (a list, slice or index tensor) of this clip, with their time codes and weights."""
        from dataclasses import replace

        return replace(self, rotations=self.rotations[index], translations=self.translations[index],
                       scales=self.scales[index], time_codes=self.time_codes[index],
                       blend_weights=None if self.blend_weights is None else self.blend_weights[index])

    def shapes(self) -> tuple[tuple[str, ...], Float[Tensor, "T S"]] | None:
        """(channel tokens, (T, S) weights) of the blend shapes this clip weights, or None."""
        return None if self.blend_weights is None else (self.blend_shapes, self.blend_weights)

    @property
    def duration_seconds(self) -> float:
        if len(self) < 2:
            return 0.0
        return float(self.time_codes[-1] - self.time_codes[0]) / self.time_codes_per_second

    @property
    def fps(self) -> float:
        """Frames per second implied by the median spacing of the time codes (the stage rate for one frame)."""
        if len(self) < 2:
            return self.time_codes_per_second
        step = float(torch.median(torch.diff(self.time_codes)))
        return self.time_codes_per_second / step if step > 0 else self.time_codes_per_second

    def pose(self) -> Pose:
        """The frames as a plain Pose batch."""
        return Pose(self.rotations, self.translations, self.scales)
