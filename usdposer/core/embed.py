"""Pinocchio's skeleton embedding (Baran & Popovic 2007, section 4) in numpy / torch: fit a template skeleton into a
mesh that has none.

    template   a skeleton in its bind pose (metres, +Y up, facing +Z) with the bounding box and volume quantiles of the
               mesh it came from; its reduced graph keeps the joints of degree other than 2 (root, branches,
               tips), each reduced edge a chain of bones
    affine     the template turned by each candidate orientation and mapped onto the mesh per axis by where the two
               bodies' volume lies (so a horse's legs shrink into a fox's, and a long tail stretches only its
               end of the axis); along the up axis, when both bodies stand on two or more legs, the height where
               the legs join (crotch, belly) is a landmark mapped onto the other's, so that a big head (a chibi)
               does not lift the hips into the chest; along the forward axis, when both bodies stand on fore and
               hind feet, the feet are landmarks mapped onto the other's (a fox's bushy tail, most of its rear
               volume, then does not pull the hips into it); beyond the template's box (a tail held out) the
               map goes on at its overall scale; between orientations, how the volume proportions match and
               whether the feet point where the template's do (toes reach ahead of the ankles) also count
    discrete   a beam search assigns every reduced joint a sphere of the mesh's sphere graph
               (:mod:`usdposer.core.distfield`), parents first, under Pinocchio's penalty terms:
                 length    (path length along the graph / template chain length - 1)^2
                 direction 1 - cos(embedded edge, template edge)
                 inside    the straight edge leaves the mesh
                 symmetry  a left joint's mirror image away from its right twin (names ``_L``/``_R`` ...)
                 feet      template feet above the mesh's bottom
                 tips      a template tip away from the body's extremities (local maxima of the distance
                           along the sphere graph from its largest sphere)
                 place     distance from where the affine template puts the joint (a weak prior)
               distinct reduced joints take distinct spheres
    fill       the joints of each chain are spread along the graph path by the template's bone lengths
    refine     every joint moved by gradient descent: bones inside, joints towards the medial surface, bone
               directions and chain proportions like the template's, symmetry, reduced joints near their start,
               all joints weakly towards the mapped template; run from two starts, the filled discrete embedding
               and the mapped template, keeping the lower refined energy
    frames     each joint keeps its template orientation, turned by the smallest rotation that takes the
               template bone onto the embedded one

Lengths are normalised by the mesh's largest extent ``L``; reports give them in % of that. Shapes: J template joints,
R reduced joints, S spheres, B beam states, K candidates per joint.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from usdposer.errors import InputError

TERMS = ("length", "direction", "inside", "symmetry", "feet", "tips", "place")
WEIGHTS = {"length": 1.0, "direction": 2.0, "inside": 0.5, "symmetry": 1.0, "feet": 2.0, "tips": 1.0, "place": 1.0,
           "proportions": 3.0, "toes": 4.0}
MISFIT = 4.0  # mean penalty per reduced edge above which the template does not fit the mesh
STRETCH = 0.15  # mean (log path length / chain length)^2 per reduced edge above which limbs are missing or extra
QUANTILES = (0.0, 0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 0.95, 1.0)  # volume quantiles mapping the template per axis
PRIOR = 10.0  # refinement's pull towards where the mapped template puts each joint
REFINE_WEIGHTS = {"direction": 1.0, "length": 2.0, "inside": 1.0, "medial": 0.5, "symmetry": 20.0, "anchor": 1.0,
                  "prior": PRIOR}  # the refinement's terms (:func:`_refine`)

_SIDES = ((r"_L$", "_R"), (r"_R$", "_L"), (r"\.L$", ".R"), (r"\.R$", ".L"), (r"_l$", "_r"), (r"_r$", "_l"),
          (r"Left", "Right"), (r"Right", "Left"), (r"left", "right"), (r"right", "left"),
          (r"^L_", "R_"), (r"^R_", "L_"), (r"^l_", "r_"), (r"^r_", "l_"), (r"L$", "R"), (r"R$", "L"))


def mirror_names(names: tuple[str, ...] | list[str]) -> np.ndarray:
    """(J,) index of each joint's left/right twin by name (``Arm_L``/``Arm_R``, ``LeftArm``/``RightArm``,
    ``arm.L``/``arm.R``, ``l_arm``/``r_arm``), -1 where there is none."""
    index = {n: i for i, n in enumerate(names)}
    out = np.full(len(names), -1, dtype=np.int64)
    for i, n in enumerate(names):
        for pat, rep in _SIDES:
            if re.search(pat, n):
                twin = re.sub(pat, rep, n)
                if twin in index and twin != n:
                    out[i] = index[twin]
                    break
    return out


@dataclass(frozen=True)
class Template:
    """A skeleton to embed: joint ``names`` (unique leaf names, parents first), ``parents`` (J,), rest ``positions``
    (J, 3) and joint ``frames`` (J, 3, 3) world rotations (metres, +Y up, facing +Z), ``bounds`` (2, 3) the
    bounding box of the mesh it was rigged to, ``quantiles`` (3, Q) where that mesh's volume lies along each axis,
    ``up_knots`` (Q,) its height split where its legs join and ``upright`` how above the join (:func:`up_knots`;
    None for a body without legs), ``toes`` (3,) where its feet point (:func:`toe_direction`; None without legs).
    ``correspondence`` maps a character's name to {template joint:
    that character's joint} (for measuring an embedding against an artist's rig)."""

    name: str
    names: tuple[str, ...]
    parents: np.ndarray
    positions: np.ndarray
    frames: np.ndarray
    bounds: np.ndarray
    kind: str = ""
    description: str = ""
    source: str = ""
    correspondence: dict = field(default_factory=dict)
    quantiles: np.ndarray | None = None  # (3, len(QUANTILES)) where its mesh's volume lies along each axis
    up_knots: np.ndarray | None = None  # (len(QUANTILES),) its up axis by the legs' join (:func:`up_knots`), or None
    upright: bool = False  # its trunk rises above the legs (a biped) rather than reaching forward (:func:`up_knots`)
    toes: np.ndarray | None = None  # (3,) where its feet point, shares of its height (:func:`toe_direction`)

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def tokens(self) -> list[str]:
        """UsdSkel joint tokens (``Hips/Spine/Chest``), parents first."""
        out: list[str] = []
        for j, n in enumerate(self.names):
            out.append(n if self.parents[j] < 0 else f"{out[self.parents[j]]}/{n}")
        return out

    def local_transforms(self, world: np.ndarray) -> np.ndarray:
        """(J, 4, 4) parent-relative transforms of joint ``world`` transforms (J, 4, 4) on this skeleton."""
        return np.array([world[j] if p < 0 else np.linalg.inv(world[p]) @ world[j]
                         for j, p in enumerate(self.parents.tolist())])

    def children(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.names]
        for j, p in enumerate(self.parents.tolist()):
            if p >= 0:
                out[p].append(j)
        return out

    def reduced(self) -> tuple[list[int], np.ndarray, list[list[int]]]:
        """The reduced graph: (reduced joints R (root first), their reduced parent (R,) as positions in that list
        (-1 for the root), the chain of joints from each reduced parent to the joint, both ends excluded)."""
        kids = self.children()
        keep = [j for j in range(self.num_joints) if self.parents[j] < 0 or len(kids[j]) != 1]
        pos = {j: r for r, j in enumerate(keep)}
        rparent = np.full(len(keep), -1, dtype=np.int64)
        chains: list[list[int]] = [[] for _ in keep]
        for r, j in enumerate(keep):
            chain, p = [], int(self.parents[j])
            while p >= 0 and p not in pos:
                chain.append(p)
                p = int(self.parents[p])
            rparent[r] = pos[p] if p >= 0 else -1
            chains[r] = chain[::-1]
        return keep, rparent, chains

    def feet(self) -> np.ndarray:
        """(J,) True for tips (leaves) within 8 % of the template's height of its mesh's bottom."""
        kids = self.children()
        height = float(self.bounds[1, 1] - self.bounds[0, 1]) or 1.0
        low = self.positions[:, 1] - self.bounds[0, 1] < 0.08 * height
        return np.array([not kids[j] and low[j] for j in range(self.num_joints)])


@dataclass
class EmbedOptions:
    """``resolution``: distance-field cells along the mesh's longest side; ``candidates``: spheres tried per reduced
    joint; ``beam``: partial embeddings kept; ``refine_steps``: gradient steps of the continuous refinement."""

    resolution: int = 96
    candidates: int = 40
    beam: int = 256
    refine_steps: int = 200
    weights: dict = field(default_factory=lambda: dict(WEIGHTS))
    backend: str = "warp"


@dataclass
class Embedding:
    """An embedded template: joint ``positions`` (J, 3) and ``frames`` (J, 3, 3) in the mesh's frame (+Y up);
    ``facing`` (3, 3) the rotation taking the template's axes into the mesh's (``orientation`` its label);
    ``penalties`` the discrete search's terms summed over reduced edges (weighted), ``facings`` the best total per
    orientation tried (label -> penalty); sizes and timings; ``up_mapping`` how the template's height was mapped onto
    the mesh's."""

    positions: np.ndarray
    frames: np.ndarray
    facing: np.ndarray
    orientation: str
    penalty: float
    penalties: dict
    facings: dict
    spheres: int
    medial_points: int
    grid: tuple[int, int, int]
    parts_ignored: int
    refine: dict
    timings: dict
    up_mapping: str = "volume"  # how the template's height was mapped: "legs" (their join, :func:`up_knots`), "volume"
    forward_mapping: str = "volume"  # its length: "feet" (hind and fore, :func:`feet_along`) or "volume"
    refined_from: str = "search"  # the refinement's start kept: "search" (the discrete embedding) or "template"
    refine_energies: dict = field(default_factory=dict)  # the refined energy from each start (:func:`_energy`)

    def transforms(self) -> np.ndarray:
        """(J, 4, 4) joint world transforms (column vectors)."""
        M = np.tile(np.eye(4), (len(self.positions), 1, 1))
        M[:, :3, :3] = self.frames
        M[:, :3, 3] = self.positions
        return M


AXES = {"+X": (0, 1.0), "-X": (0, -1.0), "+Y": (1, 1.0), "-Y": (1, -1.0), "+Z": (2, 1.0), "-Z": (2, -1.0)}


def axis_vector(name: str) -> np.ndarray:
    """(3,) unit vector of ``"+X"``, ``"-Z"``, ``"Y"`` (a bare letter is the positive axis)."""
    key = name.upper() if name[:1] in "+-" else "+" + name.upper()
    if key not in AXES:
        raise InputError(f"unknown axis {name!r}; use one of {', '.join(AXES)}")
    v = np.zeros(3)
    v[AXES[key][0]] = AXES[key][1]
    return v


def orientation(up: str, forward: str) -> np.ndarray:
    """(3, 3) rotation taking +Y to ``up`` and +Z to ``forward`` (columns: the template's X, Y, Z in the mesh)."""
    u, f = axis_vector(up), axis_vector(forward)
    if abs(u @ f) > 0.5:
        raise InputError(f"--up {up} and --forward {forward} are the same axis; give two different axes")
    return np.stack([np.cross(u, f), u, f], 1)


def candidate_orientations(template: Template, points: np.ndarray, up: str | None = None,
                           forward: str | None = None, keep: int = 2) -> dict[str, np.ndarray]:
    """Orientations to try, label -> (3, 3): the given up and forward; with no forward, the four facings about the up
    axis; with neither, the ``keep`` axis assignments whose bounding-box proportions best match the template's,
    each with both signs of up and forward."""
    names = {0: "X", 1: "Y", 2: "Z"}
    if up and forward:
        return {f"up {up}, forward {forward}": orientation(up, forward)}
    if up:
        u = int(np.argmax(np.abs(axis_vector(up))))
        return {f"up {up}, forward {s}{names[a]}": orientation(up, f"{s}{names[a]}")
                for a in range(3) if a != u for s in "+-"}
    ext = np.maximum(points.max(0) - points.min(0), 1e-12)
    text = np.maximum(template.bounds[1] - template.bounds[0], 1e-12)  # lateral, up, forward
    scored = []
    for a in range(3):
        for b in range(3):
            if a != b:
                c = 3 - a - b
                ratio = np.array([ext[c], ext[a], ext[b]]) / text
                ratio = ratio / np.exp(np.log(ratio).mean())
                scored.append((float(np.abs(np.log(ratio)).sum()), a, b))
    out = {}
    for _, a, b in sorted(scored)[:keep]:
        for su in "+-":
            for sf in "+-":
                out[f"up {su}{names[a]}, forward {sf}{names[b]}"] = orientation(su + names[a], sf + names[b])
    return out


def volume_quantiles(inside: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(3, Q) per-axis quantiles (``QUANTILES``) of a body's inside points (N, 3), the ends pinned to the surface's
    bounding box [lo, hi]: where the body's volume lies along each axis."""
    q = np.quantile(inside, QUANTILES, axis=0).T  # (3, Q)
    q[:, 0], q[:, -1] = lo, hi
    return np.maximum.accumulate(q, axis=1)


LEG_BAND = 0.02  # a leg reaches the bottom: within this share of the height of the body's lowest point


def _standing(inside: np.ndarray, up: int, sign: float) -> tuple[np.ndarray, int, int] | None:
    """The inside voxels (X, Y, Z) turned so that axis 0 runs up the body (``sign`` < 0: the body's up is -axis
    ``up``), with its lowest and highest occupied levels; None when nothing is inside."""
    a = np.moveaxis(inside, up, 0)
    if sign < 0:
        a = a[::-1]
    rows = np.nonzero(a.reshape(len(a), -1).any(1))[0]
    if not len(rows):
        return None
    return a, int(rows[0]), int(rows[-1])


def legs_join(inside: np.ndarray, up: int, sign: float = 1.0) -> int | None:
    """The grid level (along axis ``up``, counted from the bottom, which is the high end when ``sign`` < 0) where the
    body's legs join: the highest level below which two or more separate parts of the inside voxels ``inside``
    (X, Y, Z) reach the body's bottom (within ``LEG_BAND`` of its height); None when the body never stands on two
    parts, or they never join (separate pieces). Hanging arms end above the band and do not count."""
    from scipy import ndimage

    stood = _standing(inside, up, sign)
    if stood is None:
        return None
    a, b, t = stood
    foot = b + max(1, int(round(LEG_BAND * (t - b))))
    last = None
    for k in range(foot, t + 1):
        label, _ = ndimage.label(a[b:k + 1])
        feet = np.unique(label[: foot - b + 1])
        if (feet > 0).sum() >= 2:
            last = k
        elif last is not None:
            return last
    return None


SOLE, ANKLE = 0.03, (0.06, 0.12)  # shares of the height: a foot's sole, and the slice above it taken for its ankle
TOE_MIN = 0.03  # a toe direction shorter than this share of the height says little about the facing


def toe_direction(inside: np.ndarray, up: int, sign: float = 1.0) -> np.ndarray:
    """(3,) where a body's feet point, across the up axis ``up`` (``sign`` < 0: the body's up is -axis), in shares of
    its height along the grid's axes: over each foot (a part of the inside voxels ``inside`` (X, Y, Z) within the
    lowest 12 % of the height that reaches the lowest 3 %), its sole's centre minus the centre of the slice above it
    (6-12 %), summed. Toes reach forward of the ankle on a biped's feet and on most paws, so this
    tells a T-posed biped's front from its back where its shape alone hardly does; zero where nothing stands."""
    from scipy import ndimage

    out = np.zeros(3)
    stood = _standing(inside, up, sign)
    if stood is None:
        return out
    a, b, t = stood
    n = max(t - b, 1)
    sole, a0, a1 = (b + max(1, int(round(s * n))) for s in (SOLE, *ANKLE))
    label, parts = ndimage.label(a[b:a1 + 1])
    across = [k for k in range(3) if k != up]
    for k in range(1, parts + 1):
        m = label == k
        low, high = np.argwhere(m[: sole - b + 1]), np.argwhere(m[a0 - b:])
        if len(low) and len(high):
            out[across] += low[:, 1:].mean(0) - high[:, 1:].mean(0)
    return out / n


def up_knots(f, up: int, sign: float, lo: np.ndarray, hi: np.ndarray,
             upright: bool | None = None) -> tuple[np.ndarray | None, bool]:
    """(knots (len(QUANTILES),) or None, upright): increasing coordinates along mesh axis ``up`` that map a body's
    height piecewise linearly: its bottom, the median of its volume below the legs' join (:func:`legs_join`), the
    join, five levels above it, its top; measured upwards (``sign`` < 0: the body's up is -axis, and the knots run
    top to bottom in increasing coordinates). None when the body has no legs.

    Above the join the levels are the 15/30/50/70/85 % shares of the height from join to top for an ``upright``
    trunk (a biped's torso and head: their volume is skewed by a big head), else the same quantiles of the volume
    above the join (a quadruped's back, neck and head, which reach forward). ``upright`` None decides it from the
    body, a template facing +Z: upright when it rises higher above the join than it reaches along Z there."""
    k = legs_join(f.dist > 0, up, sign)
    if k is None:
        return None, bool(upright)
    pts = f.grid_points()[f.dist > 0]
    inside = pts[:, up] * sign  # heights, increasing upwards
    n = f.shape[up]
    join = sign * (f.origin[up] + f.h * ((k if sign > 0 else n - 1 - k) + sign * 0.5))
    bottom, top = (lo[up], hi[up]) if sign > 0 else (-hi[up], -lo[up])
    below, above = inside[inside <= join], inside[inside > join]
    if not len(below) or not len(above):
        return None, bool(upright)
    if upright is None:
        reach = pts[inside > join][:, 2]
        upright = bool(top - join >= reach.max() - reach.min())
    share = np.array([0.15, 0.3, 0.5, 0.7, 0.85])
    upper = join + share * (top - join) if upright else np.quantile(above, share)
    u = np.maximum.accumulate(np.r_[bottom, np.quantile(below, 0.5), join, upper, top])
    return (u if sign > 0 else (-u)[::-1]), upright


FOOT_BAND = 0.05  # share of the height above the lowest point where a body's feet are told apart
FOOT_SPREAD = 0.25  # feet spread along the forward axis by at least this share of the body's length: fore and hind


def feet_along(f, up: int, sign: float, fwd: int) -> tuple[float, float] | None:
    """(low, high): mean coordinates along mesh axis ``fwd`` of the body's two sets of feet (the parts of its inside
    within ``FOOT_BAND`` of its height above its lowest point, below and above the middle of their spread: hind and
    fore feet of a body facing +``fwd``), or None when fewer than two parts stand there or they are not spread along
    ``fwd`` (a biped). ``sign`` < 0: the body's up is -axis ``up``."""
    from scipy import ndimage

    inside = f.dist > 0
    if not inside.any():
        return None
    grid = f.grid_points()
    height = grid[..., up] * sign
    bottom, top = height[inside].min(), height[inside].max()
    slab = inside & (height <= bottom + FOOT_BAND * (top - bottom))
    label, n = ndimage.label(slab)
    if n < 2:
        return None
    c = np.array(ndimage.center_of_mass(slab, label, range(1, n + 1)))[:, fwd] * f.h + f.origin[fwd]
    mid = (c.min() + c.max()) / 2
    extent = float(np.ptp(grid[..., fwd][inside]))
    if c.max() - c.min() < FOOT_SPREAD * max(extent, 1e-12):
        return None
    return float(c[c <= mid].mean()), float(c[c > mid].mean())


def template_feet_along(template: Template) -> tuple[float, float] | None:
    """(hind, fore) mean Z of the template's feet (+Z forward) behind and ahead of the middle of their spread, or
    None when they are not spread along Z by ``FOOT_SPREAD`` of its mesh's length."""
    z = template.positions[template.feet(), 2]
    if len(z) < 2:
        return None
    mid = (z.min() + z.max()) / 2
    if z.max() - z.min() < FOOT_SPREAD * float(template.bounds[1, 2] - template.bounds[0, 2]):
        return None
    return float(z[z <= mid].mean()), float(z[z > mid].mean())


def _knots(lo: float, first: float, second: float, hi: float) -> np.ndarray:
    """(len(QUANTILES),) increasing knots along a body's length [lo, hi] with its two sets of feet (``first`` <
    ``second``) as the 3rd and 7th, so that two bodies' knots map one onto the other piecewise linearly, feet onto
    feet."""
    return np.r_[lo, (lo + first) / 2, first, first + (second - first) * np.array([0.25, 0.5, 0.75]), second,
                 (second + hi) / 2, hi]


def toe_mismatch(mesh: np.ndarray, template: np.ndarray) -> float:
    """0 where the mesh's feet point where the (turned) template's do, 1 where opposite, 0.5 across, weighed down
    to 0 as the mesh's direction fades under ``TOE_MIN`` (stubby feet): vectors (3,) from :func:`toe_direction`. The
    template's counts by its direction alone (the Knight's boots reach forward by 1 % of its height, every time)."""
    a, b = float(np.linalg.norm(mesh)), float(np.linalg.norm(template))
    if a < 1e-9 or b < 1e-9:
        return 0.0
    return min(1.0, a / TOE_MIN) * (1.0 - float(mesh @ template) / (a * b)) / 2.0


def proportion_mismatch(template: Template, R: np.ndarray, quantiles: np.ndarray) -> float:
    """sum |log| of the ratios of the mesh's to the turned template's 5-95 % volume extents per axis (each set
    normalised by its geometric mean): 0 when the body is proportioned like the template in this orientation."""
    tq = template.quantiles if template.quantiles is not None else \
        np.linspace(template.bounds[0], template.bounds[1], len(QUANTILES)).T
    text = np.array([tq[int(np.argmax(np.abs(R[k])))][-2] - tq[int(np.argmax(np.abs(R[k])))][1] for k in range(3)])
    mext = quantiles[:, -2] - quantiles[:, 1]
    r = np.log(np.maximum(mext, 1e-12)) - np.log(np.maximum(text, 1e-12))
    return float(np.abs(r - r.mean()).sum())


def affine_template(template: Template, facing: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    quantiles: np.ndarray | None = None, knots: np.ndarray | None = None,
                    feet: tuple[float, float] | None = None) -> np.ndarray:
    """(J, 3) template joints turned by ``facing`` and mapped onto the mesh per axis: by volume quantiles when both
    the template and the mesh have them (a long tail or big ears then stretch only their own end of the axis), else
    from the template mesh's box onto [lo, hi]; along the mesh's up axis by :func:`up_knots` when both bodies have
    them (``knots``: the mesh's, for this facing's up); along its forward axis by the two sets of feet when both
    bodies have them (``feet``: the mesh's, :func:`feet_along`; the template's, :func:`template_feet_along`). Beyond
    the template's box (a tail held out past its mesh) the map goes on at its overall scale."""
    T = template.positions @ facing.T
    tq = template.quantiles
    if tq is None or quantiles is None:
        tq = np.linspace(template.bounds[0], template.bounds[1], len(QUANTILES)).T
        quantiles = np.linspace(lo, hi, len(QUANTILES)).T
    if knots is not None and template.up_knots is not None:
        tq, quantiles = tq.copy(), quantiles.copy()
        tq[1] = template.up_knots
        quantiles[int(np.argmax(np.abs(facing[:, 1])))] = knots
    tfeet = template_feet_along(template)
    if feet is not None and tfeet is not None:  # fore and hind feet as landmarks along the forward axis
        tq, quantiles = tq.copy(), quantiles.copy()
        tq[2] = _knots(template.bounds[0, 2], *tfeet, template.bounds[1, 2])
        fwd = int(np.argmax(np.abs(facing[:, 2])))
        quantiles[fwd] = _knots(lo[fwd], *feet, hi[fwd])  # the loop below turns the template's to increase too
    out = np.empty_like(T)
    for k in range(3):
        a = int(np.argmax(np.abs(facing[k])))
        sign = float(np.sign(facing[k, a]))
        src = sign * tq[a] if sign > 0 else (sign * tq[a])[::-1]  # template quantiles along the mesh's axis k
        dst = quantiles[k]
        if src[-1] - src[0] < 1e-12:
            out[:, k] = (dst[0] + dst[-1]) / 2
            continue
        x = T[:, k]
        inner = np.interp(x, src, dst)
        # beyond the template's box (joints outside its mesh, a tail held out): on at the map's overall scale
        whole = (dst[-1] - dst[0]) / (src[-1] - src[0])
        left = dst[0] + (x - src[0]) * whole
        right = dst[-1] + (x - src[-1]) * whole
        out[:, k] = np.where(x < src[0], left, np.where(x > src[-1], right, inner))
    return out


def embed(template: Template, points: np.ndarray, faces: np.ndarray, *,
          orientations: dict[str, np.ndarray] | None = None, options: EmbedOptions | None = None,
          progress=None) -> Embedding:
    """Embed ``template`` into the mesh (``points`` (V, 3), ``faces`` (F, 3)), trying each orientation (a label
    and the (3, 3) signed permutation taking the template's axes (+Y up, +Z forward) into the mesh's) and keeping the
    lowest penalty (default: the mesh is +Y up, +Z forward). Raises InputError when the mesh has no inside or the
    template does not fit."""
    from usdposer.core.distfield import distance_field, medial_points, pack_spheres, sphere_graph

    o = options or EmbedOptions()
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    lo, hi = points.min(0), points.max(0)
    L = float((hi - lo).max())
    if not np.isfinite(L) or L <= 0:
        raise InputError("the mesh has no extent (all its points coincide); give a mesh with a body")
    f = distance_field(points, faces, o.resolution, backend=o.backend)
    timings["distance_field"] = time.perf_counter() - tick
    if not (f.dist > 0).any():
        raise InputError("the mesh encloses no volume (no point is inside it): auto-rigging needs a closed, or nearly "
                         "closed, surface; close the holes or give the solid body")
    inside = f.grid_points()[f.dist > 0]
    quantiles = volume_quantiles(inside, lo, hi)
    tick = time.perf_counter()
    mp, md = medial_points(f)
    centers, radii = pack_spheres(mp, md, min_radius=0.25 * f.h)
    if len(centers) < 2:
        raise InputError("the mesh's inside is too thin to hold a skeleton at this resolution; pass a larger "
                         "--resolution or give the solid body")
    graph = sphere_graph(f, centers, radii)
    # the largest connected part (by sphere volume) holds the skeleton; loose props and floating parts are left out
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    S = len(centers)
    adj = coo_matrix((np.ones(len(graph.edges)), (graph.edges[:, 0], graph.edges[:, 1])), shape=(S, S))
    ncomp, label = connected_components(adj, directed=False)
    volume = np.bincount(label, weights=radii ** 3, minlength=ncomp)
    main = label == int(np.argmax(volume))
    timings["spheres"] = time.perf_counter() - tick
    if progress:
        progress(f"{S} spheres from {len(mp)} medial points on a {'x'.join(map(str, f.shape))} grid")

    keep, rparent, chains = template.reduced()
    if int(main.sum()) < len(keep):
        raise InputError(f"template {template.name!r} does not fit: it has {len(keep)} branch and tip joints but the "
                         f"mesh's inside offers only {int(main.sum())} places; try another --template")
    tick = time.perf_counter()
    best, best_total = None, np.inf
    by_facing = {}
    knots: dict[tuple[int, float], np.ndarray | None] = {}  # the mesh's up knots per (axis, sign) tried
    toes: dict[tuple[int, float], np.ndarray] = {}  # where its feet point, per (axis, sign)
    feet: dict = {}  # its two sets of feet along the forward axis (:func:`feet_along`), per ((up, sign), forward)
    several = len(orientations or {}) > 1
    for label, R in (orientations or {"+Y up, +Z forward": np.eye(3)}).items():
        up, fwd = int(np.argmax(np.abs(R[:, 1]))), int(np.argmax(np.abs(R[:, 2])))
        key = (up, float(np.sign(R[up, 1])))
        if (key, fwd) not in feet:
            feet[key, fwd] = feet_along(f, up, key[1], fwd) if template_feet_along(template) is not None else None
        if key not in knots:
            knots[key] = up_knots(f, up, key[1], lo, hi, template.upright)[0] if template.up_knots is not None \
                else None
        # the legs' join as the up axis's landmark where both bodies have legs; the volume alone where they do not,
        # or where the template does not fit that way (a kit-bashed robot whose parts join above its hips)
        for mapping in ([knots[key], None] if knots[key] is not None else [None]):
            T = affine_template(template, R, lo, hi, quantiles, mapping, feet[key, fwd])
            got = _search(template, T, keep, rparent, chains, graph, main, f, lo, hi, L, R, o)
            if mapping is None or _fits(got[1], got[2], len(keep), o)[0]:
                break
        # the per-axis map fits the template to any box, so a wrong orientation can still score well: between
        # orientations, also weigh how the body's proportions (where its volume lies) match the template's, and
        # whether its feet point where the template's do
        facing = {}
        if several:
            facing["proportions"] = o.weights.get("proportions", 0.0) * proportion_mismatch(template, R, quantiles)
            if template.toes is not None:
                if key not in toes:
                    toes[key] = toe_direction(f.dist > 0, up, key[1])
                facing["toes"] = o.weights.get("toes", 0.0) * toe_mismatch(toes[key], R @ template.toes)
        total = got[1] + sum(facing.values())
        by_facing[label] = round(float(total), 4)
        if best is None or total < best_total:
            best, best_total = (*got, R, T, label, facing, mapping is not None, feet[key, fwd] is not None), total
    timings["search"] = time.perf_counter() - tick
    assign, cost, terms, R, T, deg, facing, by_legs, by_feet = best
    terms = {**terms, **facing}
    ok, per_edge, stretch = _fits(cost, terms, len(keep), o)
    if not ok:
        raise InputError(f"template {template.name!r} does not fit this mesh (penalty {per_edge:.2f} per edge, "
                         f"limit {MISFIT}; chain length mismatch {stretch:.3f}, limit {STRETCH}): its limbs find no "
                         "matching parts inside the mesh; try another --template")
    tick = time.perf_counter()
    X0 = _fill(template, keep, rparent, chains, graph, assign, T)
    # two starts for the refinement: the discrete embedding, and the mapped template itself (its landmarks, the legs'
    # join and the feet, place a long-tailed or bushy body's hips where the sphere graph's paths may not); the one
    # whose refined energy (the anchor to its own start aside) is lower is kept
    refined = {}
    for start, X_start in (("search", X0), ("template", T)):
        X_r, terms_r = _refine(template, X_start, T, keep, f, lo, hi, L, R, o)
        refined[start] = (_energy(terms_r), X_r, terms_r)
    start = min(refined, key=lambda k: refined[k][0])
    _, X, refine_terms = refined[start]
    timings["refine"] = time.perf_counter() - tick
    frames = _frames(template, X, R)
    return Embedding(positions=X, frames=frames, facing=R, orientation=deg, penalty=float(cost),
                     penalties={k: round(float(v), 4) for k, v in terms.items()}, facings=by_facing, spheres=S,
                     medial_points=len(mp), grid=f.shape, parts_ignored=int(ncomp - 1), refine=refine_terms,
                     up_mapping="legs" if by_legs else "volume", forward_mapping="feet" if by_feet else "volume",
                     refined_from=start, refine_energies={k: round(float(v[0]), 5) for k, v in refined.items()},
                     timings={k: round(v, 3) for k, v in timings.items()})


def _fits(cost: float, terms: dict, reduced: int, o: EmbedOptions) -> tuple[bool, float, float]:
    """(whether a discrete embedding's penalty is within ``MISFIT`` per reduced edge and its chain lengths within
    ``STRETCH``, the penalty per edge, the length mismatch)."""
    edges = max(reduced - 1, 1)
    per_edge = cost / edges
    stretch = terms["length"] / o.weights["length"] / edges if o.weights["length"] else 0.0
    return bool(np.isfinite(cost) and per_edge <= MISFIT and stretch <= STRETCH), per_edge, stretch


def extremities(graph, main: np.ndarray, L: float) -> np.ndarray:
    """Sphere indices at the body's extremities (hands, feet, head, tail tip, ears): local maxima of the distance
    along the sphere graph from the largest sphere, farther than 10 % of ``L`` from it."""
    idx = np.nonzero(main)[0]
    if not len(idx):
        return idx
    c0 = idx[int(np.argmax(graph.radii[idx]))]
    d = graph.paths[c0]
    best = d.copy()
    i, j = graph.edges[:, 0], graph.edges[:, 1]
    np.maximum.at(best, i, d[j])
    np.maximum.at(best, j, d[i])
    tip = main & np.isfinite(d) & (d >= best) & (d > 0.1 * L)
    return np.nonzero(tip)[0]


def _mirror_point(x: np.ndarray, lateral: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Points (..., 3) mirrored through the plane through ``center`` normal to ``lateral``."""
    d = ((x - center) * lateral).sum(-1, keepdims=True)
    return x - 2 * d * lateral


def _search(template, T, keep, rparent, chains, graph, main, f, lo, hi, L, R, o):
    """Beam search over reduced joints: (assignment (R,) sphere per reduced joint, total penalty, terms)."""
    from usdposer.core.distfield import segments_inside

    w = o.weights
    C = graph.centers
    R_ = len(keep)
    feet = template.feet()
    mirror = mirror_names(template.names)
    rindex = {j: r for r, j in enumerate(keep)}
    lateral, up = R[:, 0], R[:, 1]  # the template's left-right and up axes in the mesh
    bottom = float(np.min(np.stack([lo, hi]) @ up))
    center = (lo + hi) / 2
    eligible = np.nonzero(main)[0]
    tips = extremities(graph, main, L)
    kids = template.children()
    to_tip = np.linalg.norm(C[:, None] - C[tips][None], axis=-1).min(1) / L if len(tips) else np.zeros(len(C))
    # candidates: the spheres nearest to where the affine template puts each reduced joint, and for the template's
    # tips every extremity of the body (a T-posed mesh's hands are far from an A-posed template's)
    cands = []
    for j in keep:
        dist = np.linalg.norm(C[eligible] - T[j], axis=1)
        near = eligible[np.argsort(dist)[: o.candidates]]
        cands.append(np.union1d(near, tips) if not kids[j] else near)
    states = np.full((1, R_), -1, dtype=np.int64)
    costs = np.zeros(1)
    terms = np.zeros((1, len(TERMS)))
    for r, j in enumerate(keep):
        K = cands[r]
        Kc = C[K]  # (K, 3)
        t_terms = np.zeros((len(states), len(K), len(TERMS)))
        t_terms[..., TERMS.index("place")] = (np.linalg.norm(Kc - T[j], axis=1) / L)[None]
        if feet[j]:
            t_terms[..., TERMS.index("feet")] = ((Kc @ up - bottom) / L)[None]
        if not kids[j] and j != keep[0]:
            t_terms[..., TERMS.index("tips")] = to_tip[K][None]
        p = rparent[r]
        if p >= 0:
            chain = [keep[p], *chains[r], j]
            tchain = float(np.linalg.norm(np.diff(T[chain], axis=0), axis=1).sum())
            tvec = T[j] - T[keep[p]]
            sp = states[:, p]  # (B,)
            g = graph.paths[sp[:, None], K[None]]  # (B, K)
            ratio = g / max(tchain, 1e-9)
            t_terms[..., 0] = np.where(np.isfinite(ratio), np.log(np.maximum(ratio, 1e-3)) ** 2, 50.0)
            v = Kc[None] - C[sp][:, None]  # (B, K, 3)
            nv = np.linalg.norm(v, axis=-1)
            cos = (v @ tvec) / np.maximum(nv * np.linalg.norm(tvec), 1e-12)
            t_terms[..., 1] = np.where(nv > 1e-12, 1 - cos, 1.0)
            a = np.broadcast_to(C[sp][:, None], v.shape).reshape(-1, 3)
            b = np.broadcast_to(Kc[None], v.shape).reshape(-1, 3)
            t_terms[..., 2] = (~segments_inside(f, a, b, samples=8, margin=-f.h)).reshape(v.shape[:2])
        m = mirror[j]
        if m >= 0 and m in rindex and rindex[m] < r:
            twin = C[states[:, rindex[m]]]  # (B, 3)
            mk = _mirror_point(Kc, lateral, center)  # (K, 3)
            t_terms[..., 3] = np.linalg.norm(mk[None] - twin[:, None], axis=-1) / L
        step = (t_terms * np.array([w[k] for k in TERMS])).sum(-1)  # (B, K)
        side = float((T[j] - center) @ lateral)
        if abs(side) > 0.02 * L:  # a left joint stays left of the middle, a right joint right
            step = step + np.where(((Kc - center) @ lateral) * side < 0, 5.0, 0.0)[None]
        used = (states[:, :, None] == K[None, None]).any(1)  # (B, K): a sphere already holds a reduced joint
        step = np.where(used, np.inf, step)
        total = costs[:, None] + step
        flat = np.argsort(total, axis=None)[: o.beam]
        flat = flat[np.isfinite(total.ravel()[flat])]
        if not len(flat):
            return states[0], np.inf, dict.fromkeys(TERMS, np.inf)
        b, k = np.unravel_index(flat, total.shape)
        states = states[b].copy()
        states[:, r] = K[k]
        costs = total[b, k]
        terms = terms[b] + t_terms[b, k] * np.array([w[t] for t in TERMS])
    return states[0], float(costs[0]), dict(zip(TERMS, terms[0]))


def _fill(template, keep, rparent, chains, graph, assign, T) -> np.ndarray:
    """(J, 3) all joints: reduced joints at their spheres, each chain spread along the graph path between its ends
    by the template's bone lengths."""
    X = np.array(T, dtype=np.float64)
    C = graph.centers
    for r, j in enumerate(keep):
        X[j] = C[assign[r]]
    for r, j in enumerate(keep):
        p = rparent[r]
        if p < 0 or not chains[r]:
            continue
        path = graph.path(int(assign[p]), int(assign[r]))
        poly = C[path] if len(path) >= 2 else np.stack([C[assign[p]], C[assign[r]]])
        seg = np.linalg.norm(np.diff(poly, axis=0), axis=1)
        arc = np.r_[0, np.cumsum(seg)]
        chain = [keep[p], *chains[r], j]
        tl = np.r_[0, np.cumsum(np.linalg.norm(np.diff(T[chain], axis=0), axis=1))]
        frac = tl / max(tl[-1], 1e-12)
        for q, jj in enumerate(chains[r], start=1):
            s = frac[q] * arc[-1]
            X[jj] = np.array([np.interp(s, arc, poly[:, a]) for a in range(3)])
    return X


def _refine(template, X0, T, keep, f, lo, hi, L, R, o) -> tuple[np.ndarray, dict]:
    """Continuous refinement of every joint (Adam on the weighted terms below); returns positions and the final
    terms."""
    J = template.num_joints
    par = torch.as_tensor(template.parents)
    bones = torch.nonzero(par >= 0).squeeze(1)
    pb = par[bones]
    X = torch.tensor(X0, dtype=torch.float64, requires_grad=True)
    X0t = torch.tensor(X0, dtype=torch.float64)
    Tt = torch.tensor(T, dtype=torch.float64)
    tvec = Tt[bones] - Tt[pb]
    tlen = tvec.norm(dim=1).clamp_min(1e-9)
    # target bone lengths: the template's, scaled per chain to the discrete embedding's length
    ivec = X0t[bones] - X0t[pb]
    chain_of = _chain_ids(template, keep)
    cid = torch.as_tensor(chain_of[bones.numpy()])
    nchain = int(cid.max()) + 1 if len(cid) else 0
    scale = torch.zeros(nchain, dtype=torch.float64).index_add(0, cid, ivec.norm(dim=1)) / \
        torch.zeros(nchain, dtype=torch.float64).index_add(0, cid, tlen).clamp_min(1e-9)
    target = tlen * scale[cid]
    mirror = torch.as_tensor(mirror_names(template.names))
    left = torch.nonzero(mirror > torch.arange(J)).squeeze(1)
    right = mirror[left]
    lateral = torch.tensor(R[:, 0], dtype=torch.float64)
    center = torch.tensor((lo + hi) / 2, dtype=torch.float64)
    red = torch.as_tensor(keep)
    s = torch.linspace(0.1, 0.9, 5, dtype=torch.float64)[:, None, None]
    opt = torch.optim.Adam([X], lr=0.003 * L)
    margin = 0.5 * f.h

    def energy():
        v = X[bones] - X[pb]
        n = v.norm(dim=1).clamp_min(1e-12)
        e = {}
        e["direction"] = ((1 - (v * tvec).sum(1) / (n * tlen)) * tlen / tlen.mean()).mean()
        e["length"] = ((n - target) / target.clamp_min(1e-9)).square().mean()
        along = X[pb][None] + s * v[None]  # (5, nb, 3)
        d_j = f.sample_torch(X)
        d_b = f.sample_torch(along)
        e["inside"] = (torch.relu(margin - d_j).square().mean() + torch.relu(-d_b).square().mean()) / (f.h ** 2)
        e["medial"] = -d_j.mean() / L
        if len(left):
            xl = X[left]
            mx = xl - 2 * ((xl - center) @ lateral)[:, None] * lateral
            e["symmetry"] = (mx - X[right]).square().sum(1).mean() / L ** 2
        else:
            e["symmetry"] = X.sum() * 0
        e["anchor"] = (X[red] - X0t[red]).square().sum(1).mean() / L ** 2
        e["prior"] = (X - Tt).square().sum(1).mean() / L ** 2
        return sum(REFINE_WEIGHTS[k] * e[k] for k in e), e

    for _ in range(o.refine_steps):
        opt.zero_grad()
        total, _ = energy()
        total.backward()
        opt.step()
    with torch.no_grad():
        _, e = energy()
    return X.detach().numpy(), {k: round(float(v), 5) for k, v in e.items()}


def _energy(terms: dict) -> float:
    """The refinement's weighted energy of its final ``terms`` without the anchor (which measures the distance from
    the start, so differs between starts)."""
    return float(sum(REFINE_WEIGHTS[k] * v for k, v in terms.items() if k != "anchor"))


def _chain_ids(template, keep) -> np.ndarray:
    """(J,) id of the reduced edge (chain) each joint's bone belongs to (its own reduced joint's for a reduced joint,
    the chain's end otherwise)."""
    kids = template.children()
    out = np.zeros(template.num_joints, dtype=np.int64)
    rset = {j: r for r, j in enumerate(keep)}
    for j in range(template.num_joints):
        k = j
        while k not in rset:
            k = kids[k][0]
        out[j] = rset[k]
    return out


def _frames(template, X: np.ndarray, R: np.ndarray) -> np.ndarray:
    """(J, 3, 3) joint orientations: the template's (turned by the facing) rotated by the smallest rotation that
    takes each template bone direction onto the embedded one (the mean of the children's bones at a branch, the
    parent's bone at a tip)."""
    from usdposer.core.geometry import rotation_between

    kids = template.children()
    T = template.positions @ R.T
    out = np.empty((template.num_joints, 3, 3))
    for j in range(template.num_joints):
        if kids[j]:
            dt = (T[kids[j]] - T[j]).mean(0)
            de = (X[kids[j]] - X[j]).mean(0)
        elif template.parents[j] >= 0:
            p = template.parents[j]
            dt, de = T[j] - T[p], X[j] - X[p]
        else:
            dt = de = np.array([0.0, 1.0, 0.0])
        if np.linalg.norm(dt) < 1e-9 or np.linalg.norm(de) < 1e-9:
            A = np.eye(3)
        else:
            A = rotation_between(dt, de)
        out[j] = A @ R @ template.frames[j]
    return out


def make_template(name: str, names: list[str], parents: np.ndarray, transforms: np.ndarray, points: np.ndarray,
                  faces: np.ndarray, weighted: np.ndarray, *, side_branch: float = 0.04, near: float = 0.03,
                  backend: str = "warp", **meta) -> Template:
    """A template from a rigged character in its bind pose (+Y up, facing +Z): joint ``transforms`` (J, 4, 4) world,
    its skinned mesh ``points`` / ``faces``, ``weighted`` (J,) joints that carry skin weight.

    Joints that deform nothing or float outside the mesh (IK targets, pole targets, a root on the floor) are
    dropped and their children re-parented to the nearest kept ancestor (or, for a separate IK chain, to the nearest
    kept joint); side branches shorter than ``side_branch`` x the mesh's largest extent (thumbs, toes) are merged
    into their branch joint, so that the reduced graph holds the limbs."""
    from usdposer.core.distfield import closest_signed, distance_field
    from usdposer.core.posespace import name_side

    P = transforms[:, :3, 3]
    L = float((points.max(0) - points.min(0)).max())
    closest, inside = closest_signed(points, faces, P, backend=backend)
    near_surface = np.linalg.norm(P - closest, axis=1) < near * L
    within = inside | near_surface
    J = len(names)
    kept = np.asarray(weighted, bool) & within
    # an inside joint that deforms nothing stays when it joins two kept branches (a spider's body, a snake's root)
    branches = np.zeros(J, dtype=np.int64)
    for j in reversed(range(J)):
        p = int(parents[j])
        if p >= 0:
            branches[p] += 1 if kept[j] else branches[j]
        if not kept[j] and within[j] and branches[j] >= 2:
            kept[j] = True
    parent = np.full(J, -1, dtype=np.int64)
    for j in range(J):
        p = int(parents[j])
        while p >= 0 and not kept[p]:
            p = int(parents[p])
        parent[j] = p
    idx = np.nonzero(kept)[0]
    # the main tree: the kept root with the most kept joints under it; other kept roots hang off their nearest joint
    roots = [j for j in idx if parent[j] < 0]

    def under(r, member=kept):
        """``r`` and its descendants among ``member`` joints (under the current ``parent``)."""
        out, stack = [], [r]
        while stack:
            k = stack.pop()
            out.append(k)
            stack.extend(c for c in range(J) if member[c] and parent[c] == k)
        return out

    depth = np.where(inside, np.linalg.norm(P - closest, axis=1), 0.0)
    main = max(roots, key=lambda r: depth[r] * math.sqrt(len(under(r))))  # the trunk: deep inside, many joints

    def dropped_parent(j):
        p = int(parents[j])
        return p if p >= 0 and not kept[p] else None

    loose = []
    trunk = under(main)
    for r in roots:
        if r == main:
            continue
        gap = np.linalg.norm(P[trunk] - P[r], axis=1)
        if dropped_parent(r) is not None and dropped_parent(r) == dropped_parent(main) and \
                np.linalg.norm(P[main] - P[r]) <= 1.5 * gap.min():
            parent[r] = main  # siblings under a dropped joint, near the trunk (a spider's legs round its body)
        else:
            loose.append(r)  # an IK foot under the floor root hangs off its leg
    # separate chains (IK feet) hang off the nearest joint of the tree built so far, nearest chains first
    while loose:
        tree = under(main)
        gap = [float(np.linalg.norm(P[tree] - P[r], axis=1).min()) for r in loose]
        r = loose.pop(int(np.argmin(gap)))
        same = [k for k in tree if name_side(names[k]) in (name_side(names[r]), 0)] or tree  # no left foot on a right leg
        parent[r] = same[int(np.argmin(np.linalg.norm(P[same] - P[r], axis=1)))]
    # prune short side branches: at a branching joint drop the shortest subtrees below the length limit
    alive = kept.copy()

    def extent(r):
        return float(np.linalg.norm(P[under(r, alive)] - P[parent[r]], axis=1).max())

    changed = True
    while changed:
        changed = False
        for b in range(J):
            kids = [c for c in range(J) if alive[c] and parent[c] == b]
            if len(kids) < 2 or not alive[b]:
                continue
            ext = sorted((extent(c), c) for c in kids)
            e, c = ext[0]
            if e < side_branch * L:
                alive[under(c, alive)] = False
                changed = True
    order = _parents_first([j for j in range(J) if alive[j]], parent)
    new = {j: i for i, j in enumerate(order)}
    new_parents = np.array([new[parent[j]] if parent[j] >= 0 else -1 for j in order], dtype=np.int64)
    frames = transforms[order, :3, :3]
    frames = frames / np.linalg.norm(frames, axis=1, keepdims=True)  # drop scale: frames are rotations
    f = distance_field(points, faces, 64, backend=backend)
    lo, hi = points.min(0), points.max(0)
    knots, upright = up_knots(f, 1, 1.0, lo, hi)
    return Template(name=name, names=tuple(names[j] for j in order), parents=new_parents,
                    positions=P[order].copy(), frames=frames, bounds=np.stack([lo, hi]),
                    quantiles=volume_quantiles(f.grid_points()[f.dist > 0], lo, hi), up_knots=knots, upright=upright,
                    toes=toe_direction(f.dist > 0, 1) if knots is not None else None, **meta)


def _parents_first(nodes: list[int], parent: np.ndarray) -> list[int]:
    order, seen = [], set()
    pending = list(nodes)
    while pending:
        rest = []
        for j in pending:
            if parent[j] < 0 or parent[j] in seen:
                order.append(j)
                seen.add(j)
            else:
                rest.append(j)
        if len(rest) == len(pending):
            raise ValueError("cyclic joint parents")
        pending = rest
    return order
