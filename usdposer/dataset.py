"""Pose datasets: real animations in USD/glTF/BVH/MJCF files -> a directory of safetensors shards + a manifest.

Layout of a dataset directory::

    manifest.json                  sources, licences, counts, splits (by character), feature layout, the pose
                                   representation (``usdposer.rigfeatures.REPRESENTATION``)
    shards/<character>.safetensors one per character (skeleton): poses (N, J, 6) as canonical codes, the rig's frame
                                   (features (J, F), parents and model_parents (J,), mask (J,), tree (J, J),
                                   ref_pos (J, 3), joint_rot / parent_rot / ref_local_rot / rest_rot (J, 3, 3),
                                   rest_local (J, 4, 4)), limits (J, 3, 2) when known; joint tokens in the metadata

A character is one distinct Skeleton of one file, named ``<folder>/<stem>`` (``animals/Fox``; ``_k`` for a file's
k-th other skeleton); skeletons of a file with the same joints and rest pose (one character split into several
skins) count once, with the one that skins the most vertices. Splits are by character: ``heldout`` characters (and
``val`` ones) never reach training. Frames closer than ``dedupe_degrees`` (largest joint rotation difference) to
the last kept frame of their clip are dropped.

Animation libraries (skeleton-only files, e.g. KayKit's) bind to a character with ``anim_from``: their clips are
retargeted by joint name (:func:`retarget_codes`) and train on that character's mesh.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from usdposer import __version__
from usdposer.errors import InputError

USD_EXT = (".usd", ".usda", ".usdc", ".usdz")
IMPORT_EXT = (".glb", ".gltf", ".bvh", ".xml", ".mjcf")
READABLE = USD_EXT + IMPORT_EXT
LICENCES = [  # (path fragment, licence): the shared data set's README, most specific first
    ("khronos/Fox", "CC0-1.0 model (PixelMannen), CC-BY-4.0 rig and animation (@tomkranis), CC-BY-4.0 glTF (@AsoboStudio, @scurest)"),
    ("khronos/CesiumMan", "CC-BY-4.0 (Cesium)"),
    ("khronos/Rigged", "CC-BY-4.0 (Cesium)"),
    ("khronos/", "CC0-1.0 (Khronos glTF sample models)"),
    ("quaternius/", "CC0-1.0 (Quaternius)"),
    ("threejs/", "CC0-1.0 (Tomas Laulhe / Quaternius, edits by Don McCurdy)"),
    ("kaykit/", "CC0-1.0 (Kay Lousberg, www.kaylousberg.com)"),
    ("mujoco/", "Apache-2.0 (DeepMind dm_control)"),
    ("cmu", "CMU Graphics Lab Motion Capture Database: free for research and commercial use, not for resale "
            "(mocap.cs.cmu.edu; NSF EIA-0196217)"),
    ("openusd/", "Tomorrow Open Source Technology License 1.0 (Pixar)"),
    ("usdwg/", "CC-BY-4.0 (Cesium), Apache-2.0 repository"),
    ("Trex", "CC0-1.0 (Quaternius)"),
]


def licence_of(path: str | os.PathLike) -> str:
    p = Path(path).as_posix()
    for frag, lic in LICENCES:
        if frag in p:
            return lic
    return "unknown (check the source's licence)"


def expand_paths(paths: list[str]) -> list[tuple[str, Path | None]]:
    """(argument, file) for every file under the given files, folders and globs, in a stable order without
    repeats; (argument, None) when an argument matches nothing. Folders recurse and keep readable extensions; files
    named explicitly are kept whatever their extension (the reader then says what is wrong)."""
    out: list[tuple[str, Path | None]] = []
    seen: set[Path] = set()
    for arg in paths:
        matches = sorted(glob.glob(arg, recursive=True)) or ([arg] if Path(arg).exists() else [])
        if not matches:
            out.append((arg, None))
        for m in matches:
            p = Path(m)
            files = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in READABLE) if p.is_dir() else [p]
            for f in files:
                if f not in seen:
                    seen.add(f)
                    out.append((arg, f))
    return out


def expand_sources(sources: list[str]) -> list[Path]:
    """Files and globs -> existing files with a readable extension, in a stable order (directories recurse)."""
    out: list[Path] = []
    for arg, f in expand_paths(sources):
        if f is None:
            raise InputError(f"{arg}: no such file or pattern matches nothing")
        if f.suffix.lower() in READABLE:
            out.append(f)
    return out


def read_any(path: Path, workdir: Path, strict: bool = True, verb: str = "dataset"):
    """A ``SkelAsset`` from any supported file (non-USD files are imported to a temporary stage in ``workdir``
    first; the asset keeps ``path`` as its path). ``strict=False`` collects problems instead of raising."""
    from usdposer.io.read_skel import read_asset

    if path.suffix.lower() in USD_EXT:
        return read_asset(path, strict=strict)
    from usdposer.io.importers import import_any

    out = workdir / f"{path.stem}_{abs(hash(str(path))) % 10**8}.usdc"
    import_any(path, out, arguments=[verb, str(path)])
    asset = read_asset(out, strict=strict)
    asset.path = str(path)
    return asset


def dedupe(six: torch.Tensor, degrees: float) -> torch.Tensor:
    """Indices of frames kept: the first, then each frame whose largest joint rotation differs from the last kept
    one by more than ``degrees``. six: (T, J, 6) -> (K,) long."""
    from usdposer.core.rotations import sixd_to_matrix

    R = sixd_to_matrix(six.double())
    keep = [0]
    thr = np.cos(np.radians(degrees))
    for t in range(1, len(six)):
        rel = R[keep[-1]].transpose(-1, -2) @ R[t]
        cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).min()
        if cos < thr:
            keep.append(t)
    return torch.tensor(keep, dtype=torch.long)


def _match_keys(cid: str, source: Path) -> set[str]:
    """Names by which --holdout / --val select a character: its id, its file stem and its id's last part."""
    return {cid.lower(), source.stem.lower(), cid.rsplit("/", 1)[-1].lower()}


@dataclass
class CharacterRecord:
    id: str
    source: str
    skeleton: str
    licence: str
    joints: int
    frames: int
    poses: int
    clips: list[str] = field(default_factory=list)
    split: str = "train"
    has_mesh: bool = False
    has_limits: bool = False
    shard: str = ""
    model_joints: int = 0
    mirrorable: bool = False
    facing: str = ""
    merged_skeletons: list[str] = field(default_factory=list)
    anim_sources: list[dict] = field(default_factory=list)


def frame_tensors(rig) -> dict:
    """The rig's frame as shard tensors (see the module docstring)."""
    from usdposer.rigfeatures import joint_features, model_tree, rig_frame

    rf = rig_frame(rig)
    return {
        "features": joint_features(rig).float().contiguous(),
        "parents": rig.parents.long().contiguous(),
        "model_parents": rf.model_parents.long().contiguous(),
        "mask": rf.mask.to(torch.uint8).contiguous(),
        "tree": model_tree(rig).to(torch.int16).contiguous(),
        "ref_pos": rf.ref_pos.float().contiguous(),
        "joint_rot": rf.joint_rot.float().contiguous(),
        "parent_rot": rf.parent_rot.float().contiguous(),
        "ref_local_rot": rf.ref_local_rot.float().contiguous(),
        "rest_rot": rf.rest_rot.float().contiguous(),
        "rest_local": rig.rest_local.float().contiguous(),
    }


def posable_frames(rig, clip) -> torch.Tensor:
    """``(T,)`` frames that are poses: the roots keep a scale within 0.2x-5x of their reference (clips that grow the
    character from nothing, like KayKit's spawns, have no meaningful rotation while it is collapsed)."""
    from usdposer.core.kinematics import decompose_trs
    from usdposer.rigfeatures import rig_frame

    rf = rig_frame(rig)
    roots = sorted(set(rig.roots) | set(rf.model_roots))
    _, _, s_ref = decompose_trs(rf.ref_local[roots])
    ratio = clip.scales[:, roots].double().abs() / s_ref.abs().clamp(min=1e-12)  # (T, R, 3)
    return ((ratio > 0.2) & (ratio < 5.0)).flatten(1).all(1)


def character_tensors(rig, clips, dedupe_degrees: float, extra: list[torch.Tensor] = ()) -> tuple[dict, int]:
    """(tensors for one shard, frame count before de-duplication); ``extra``: more ``(T, J, 6)`` canonical codes
    (retargeted library clips), de-duplicated the same way."""
    from usdposer.rigfeatures import pose_to_6d

    poses, frames = [], 0
    codes = [pose_to_6d(rig, c.pose())[posable_frames(rig, c)].float() for c in clips]
    for six in codes + [e.float() for e in extra]:
        if not len(six):
            continue
        ok = torch.isfinite(six).all(-1).all(-1)  # frames that scale a joint to nothing have no rotation
        six = six[ok]
        frames += len(six)
        if len(six):
            poses.append(six[dedupe(six, dedupe_degrees)])
    J = rig.num_joints
    t = frame_tensors(rig)
    t["poses"] = (torch.cat(poses) if poses else torch.zeros(0, J, 6)).contiguous()
    if rig.limits is not None:
        t["limits"] = rig.limits.float().contiguous()
    return t, frames


def world_deltas(six: torch.Tensor, model_parents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, J, 3, 3)`` world rotation change of every joint from canonical codes (``Delta_j = Delta_p Q_j``); joints
    outside the model take their model parent's (or the identity)."""
    from usdposer.core.rotations import sixd_to_matrix

    Q = sixd_to_matrix(six.double())
    out = torch.eye(3, dtype=torch.float64).expand(Q.shape).clone()
    mp = model_parents.tolist()
    for j in range(Q.shape[1]):
        base = out[:, mp[j]] if mp[j] >= 0 else None
        if bool(mask[j]):
            out[:, j] = Q[:, j] if base is None else base @ Q[:, j]
        elif base is not None:
            out[:, j] = base
    return out


def match_joints(src_names, dst_names, src_mask=None, dst_mask=None, src_parents=None,
                 dst_parents=None) -> dict[int, int]:
    """Destination joint -> source joint: by identical leaf name, else by the same canonical words and side
    (``upperleg.l`` = ``UpperLeg_L`` = ``mixamorig_LeftUpLeg``); joints sharing a key (``wrist_l`` and ``hand_l`` are
    both hands) pair in tree order when both sides have as many of them."""
    from usdposer.rigfeatures import canonical_words, name_side

    def key(n):
        return tuple(canonical_words(n)), name_side(n)

    def usable(mask, i):
        return mask is None or bool(mask[i])

    def depths(parents, n):
        if parents is None:
            return list(range(n))
        d = []
        for p in [int(x) for x in parents]:
            d.append(0 if p < 0 else d[p] + 1)
        return d

    ds, dd = depths(src_parents, len(src_names)), depths(dst_parents, len(dst_names))
    exact = {n: i for i, n in enumerate(src_names) if usable(src_mask, i)}
    out = {k: exact[n] for k, n in enumerate(dst_names) if usable(dst_mask, k) and n in exact}
    taken = set(out.values())
    src_keys: dict = {}
    for i, n in enumerate(src_names):
        if usable(src_mask, i) and i not in taken:
            src_keys.setdefault(key(n), []).append(i)
    dst_keys: dict = {}
    for k, n in enumerate(dst_names):
        if usable(dst_mask, k) and k not in out:
            dst_keys.setdefault(key(n), []).append(k)
    for kk, dst in dst_keys.items():
        src = src_keys.get(kk, [])
        if src and len(src) == len(dst):
            for a, b in zip(sorted(dst, key=lambda k: (dd[k], k)), sorted(src, key=lambda i: (ds[i], i))):
                out[a] = b
    return out


def retarget_codes(src_rig, src_six: torch.Tensor, dst_rig, keep_heading: bool = False) -> tuple[torch.Tensor, dict]:
    """Canonical codes ``(T, Js, 6)`` of ``src_rig`` -> codes ``(T, Jd, 6)`` of ``dst_rig``, joints matched by name
    (:func:`match_joints`): each matched joint takes the source joint's world rotation change (about world-aligned
    axes, so the two rigs' joint frames, scales and facings do not matter), unmatched joints follow their parent.
    Exact when both reference poses agree (a library and the character it was made for); ``residual_pct`` measures
    how far the retargeted joints land from the source's (centred, in % of the matched joints' extent), averaged.
    ``keep_heading`` keeps the roots' heading (for animation; a dataset removes it). Returns (codes, mapping report)."""
    from usdposer.core.rotations import matrix_to_6d, matrix_to_quat, quat_to_matrix
    from usdposer.rigfeatures import _heading_free, canonical_positions, rig_frame

    rs, rd = rig_frame(src_rig), rig_frame(dst_rig)
    mapping = match_joints(src_rig.joint_names, dst_rig.joint_names, rs.mask, rd.mask, src_rig.parents,
                           dst_rig.parents)
    ds = world_deltas(src_six, rs.model_parents, rs.mask)  # (T, Js, 3, 3)
    T, Jd = src_six.shape[0], dst_rig.num_joints
    dd = torch.eye(3, dtype=torch.float64).expand(T, Jd, 3, 3).clone()
    mp = rd.model_parents.tolist()
    for k in range(Jd):
        if k in mapping:
            dd[:, k] = ds[:, mapping[k]]
        elif mp[k] >= 0:
            dd[:, k] = dd[:, mp[k]]
    Q = torch.eye(3, dtype=torch.float64).expand(T, Jd, 3, 3).clone()
    for k in range(Jd):
        if bool(rd.mask[k]):
            Q[:, k] = dd[:, k] if mp[k] < 0 else dd[:, mp[k]].transpose(-1, -2) @ dd[:, k]
    roots = rd.model_roots
    kept = matrix_to_6d(Q)  # the heading as transferred, for the residual below
    if not keep_heading:
        Q[:, roots] = quat_to_matrix(_heading_free(matrix_to_quat(Q[:, roots])))
    six = matrix_to_6d(Q).float()
    # how well the shapes agree: matched joints, root-relative, divided by each rig's height
    pairs = sorted(mapping.items())
    residual = None
    if pairs and T:
        ps = canonical_positions(src_six.double(), rs.model_parents, rs.ref_pos, rs.mask)
        pd = canonical_positions(kept, rd.model_parents, rd.ref_pos, rd.mask)
        src_idx, dst_idx = [s for _, s in pairs], [d for d, _ in pairs]
        a = ps[:, src_idx] - ps[:, src_idx].mean(1, keepdim=True)
        b = pd[:, dst_idx] - pd[:, dst_idx].mean(1, keepdim=True)
        # both shapes measured by the extent of their matched joints at the reference
        residual = float(((a / _extent(rs.ref_pos, src_idx) - b / _extent(rd.ref_pos, dst_idx)).norm(dim=-1)).mean() * 100)
    report = {
        "matched": len(mapping),
        "unmatched_character_joints": [dst_rig.joint_names[k] for k in range(Jd) if bool(rd.mask[k]) and k not in mapping],
        "unused_library_joints": sorted(set(src_rig.joint_names[i] for i in range(src_rig.num_joints)
                                            if bool(rs.mask[i])) - {src_rig.joint_names[s] for s in mapping.values()}),
        "mapping": {dst_rig.joint_names[k]: src_rig.joint_names[s] for k, s in pairs},
        "residual_pct": None if residual is None else round(residual, 3),
    }
    return six, report


def _extent(ref_pos: torch.Tensor, idx: list[int]) -> float:
    """Diagonal of the bounding box of some joints' reference positions."""
    return float((ref_pos[idx].max(0).values - ref_pos[idx].min(0).values).norm()) or 1.0


def retarget_clip(src_rig, clip, dst_rig, tcps: float) -> tuple[object, dict]:
    """An animation of ``src_rig`` played by ``dst_rig`` (:func:`retarget_codes` with the heading kept), its root
    motion and the animated translations of other joints carried over (scaled by the ratio of the two skeletons'
    sizes), its time codes converted to ``tcps``. Returns (Clip, mapping report)."""
    from usdposer.posing import joint_transforms
    from usdposer.rigfeatures import pose_from_6d, pose_to_6d, rig_frame
    from usdposer.types import Clip

    src_rig, dst_rig = src_rig.to(torch.float64), dst_rig.to(torch.float64)
    pose = clip.pose()
    six, report = retarget_codes(src_rig, pose_to_6d(src_rig, pose, canonical_heading=False), dst_rig,
                                 keep_heading=True)
    out = pose_from_6d(dst_rig, six.double(), ground=False)
    rs, rd = rig_frame(src_rig), rig_frame(dst_rig)
    mapping = {dst_rig.joint_names.index(k): src_rig.joint_names.index(v) for k, v in report["mapping"].items()}
    matched_d, matched_s = list(mapping), list(mapping.values())
    ratio = _extent(rd.ref_pos, matched_d) / _extent(rs.ref_pos, matched_s) if mapping else rd.height / rs.height
    t = out.translations.clone()
    # 1. animated translations of joints (a hip sway, a stretch): their displacement from the reference along
    #    world-aligned axes (through the parent's reference frame), scaled, then into the character's parent frame
    t_src0 = rs.ref_local[:, :3, 3]
    for k, m in mapping.items():
        ps, pd = int(src_rig.parents[m]), int(dst_rig.parents[k])
        if ps < 0 or pd < 0:
            continue
        A_s = rs.canon @ rs.ref_world[ps, :3, :3]  # (3, 3) parent's reference frame, with its scale
        A_d = rd.canon @ rd.ref_world[pd, :3, :3]
        w = (pose.translations[:, m].double() - t_src0[m]) @ A_s.T * ratio  # (T, 3) canonical displacement
        t[:, k] = t[:, k] + torch.linalg.solve(A_d, w.T).T
    # 2. root motion: the whole character moved so that its model root goes where the source's matching joint goes
    #    (scaled about the reference)
    k0 = next((r for r in rd.model_roots if r in mapping), matched_d[0] if mapping else None)
    if k0 is not None:
        m0 = mapping[k0]
        src_p = joint_transforms(src_rig, pose)[:, m0, :3, 3] @ rs.canon.T  # (T, 3) canonical
        target = rd.ref_pos[k0] + (src_p - rs.ref_pos[m0]) * ratio
        from usdposer.types import Pose

        now = joint_transforms(dst_rig, Pose(out.rotations, t, out.scales))[:, k0, :3, 3] @ rd.canon.T
        shift = (target - now) @ rd.canon  # (T, 3) in the character's skeleton space
        for r in dst_rig.roots:
            t[:, r] = t[:, r] + shift
    codes = clip.time_codes.double() / clip.time_codes_per_second * tcps
    return Clip(out.rotations, t, out.scales, time_codes=codes, time_codes_per_second=tcps, name=clip.name), report


def distinct_rigs(rigs) -> list[tuple[object, list[str]]]:
    """A file's skeletons with one entry per distinct skeleton (same joints, parents and rest pose count once): the
    one skinning the most vertices, with the paths of the others."""
    groups: list[list] = []
    for rig in rigs:
        for g in groups:
            o = g[0]
            if (o.joints == rig.joints and torch.equal(o.parents, rig.parents)
                    and torch.allclose(o.rest_local.double(), rig.rest_local.double(), atol=1e-6, rtol=1e-5)):
                g.append(rig)
                break
        else:
            groups.append([rig])
    out = []
    for g in groups:
        best = max(g, key=lambda r: sum(m.num_points for m in r.meshes))
        out.append((best, [r.skeleton_path for r in g if r is not best]))
    return out


def _resolve_libraries(anim_from, sources: list[Path]) -> tuple[list[tuple[list[Path], str]], set[Path]]:
    """``[(library files, target)]`` and the set of library files (which are not characters themselves)."""
    libs, files = [], set()
    for pattern, target in anim_from:
        found = expand_sources([pattern]) if pattern else []
        if not found:
            raise InputError(f"--anim-from {pattern}={target}: no animation files match {pattern}")
        libs.append((found, target))
        files |= {f.resolve() for f in found}
    return libs, files


def build_dataset(sources: list[str], out_dir: str | os.PathLike, *, holdout: list[str] = (), val: list[str] = (),
                  dedupe_degrees: float = 2.0, anim_from: list[tuple[str, str]] = (), progress=None) -> dict:
    """Build a dataset directory (see the module docstring); returns the manifest. Sources that fail to read are
    reported in ``manifest["failed"]`` and do not stop the build. ``anim_from``: ``[(library files or glob, target)]``
    binds each library's clips to the character read from the ``target`` file (a path or a character name)."""
    from safetensors.torch import save_file

    from usdposer.rigfeatures import FEATURE_DIM, REPRESENTATION

    out_dir = Path(out_dir)
    libraries, library_files = _resolve_libraries(anim_from, [])
    files = [f for f in expand_sources(sources) if f.resolve() not in library_files]
    if not files:
        raise InputError("no USD, glTF, BVH or MJCF files among the sources")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "shards").mkdir(exist_ok=True)
    wanted_holdout = {h.lower() for h in holdout}
    wanted_val = {v.lower() for v in val}
    records: list[CharacterRecord] = []
    failed: list[dict] = []
    used_ids: set[str] = set()
    matched: set[str] = set()  # every name a --holdout / --val may use for the characters read
    bound: set[int] = set()  # libraries that found their character
    with tempfile.TemporaryDirectory(prefix="usdposer-dataset-") as work:
        for f in (progress(files) if progress else files):
            try:
                asset = read_any(f, Path(work))
            except Exception as exc:  # one bad asset must not stop a batch
                failed.append({"source": str(f), "error": str(exc).splitlines()[0]})
                continue
            for k, (rig, merged) in enumerate(distinct_rigs(asset.rigs)):
                cid = f"{f.parent.name}/{f.stem}" + (f"_{k}" if k else "")
                base, n = cid, 1
                while cid in used_ids:
                    cid, n = f"{base}_{n}", n + 1
                used_ids.add(cid)
                clips = asset.clips.get(rig.skeleton_path, [])
                keys = _match_keys(cid, f)
                extra, anim_sources = [], []
                for li, (lib_files, target) in enumerate(libraries):
                    if k == 0 and (Path(target).resolve() == f.resolve() or target.lower() in keys):
                        bound.add(li)
                        for lf in lib_files:
                            six, rep = _library_codes(lf, Path(work), rig)
                            extra += six
                            anim_sources.append({"library": str(lf), "licence": licence_of(lf), **rep})
                tensors, frames = character_tensors(rig, clips, dedupe_degrees, extra)
                matched |= keys
                split = "heldout" if keys & wanted_holdout else "val" if keys & wanted_val else "train"
                shard = f"shards/{cid.replace('/', '__')}.safetensors"
                from usdposer.rigfeatures import rig_frame

                rf = rig_frame(rig)
                meta = {"id": cid, "joints": json.dumps(list(rig.joints)), "source": str(f),
                        "skeleton": rig.skeleton_path, "height": repr(rf.height), "representation": REPRESENTATION}
                save_file(tensors, str(out_dir / shard), metadata=meta)
                records.append(CharacterRecord(
                    id=cid, source=str(f), skeleton=rig.skeleton_path, licence=licence_of(f), joints=rig.num_joints,
                    frames=frames, poses=int(tensors["poses"].shape[0]),
                    clips=[c.name for c in clips] + [c for a in anim_sources for c in a["clips"]], split=split,
                    has_mesh=bool(rig.meshes), has_limits=rig.limits is not None, shard=shard,
                    model_joints=rf.num_model_joints, mirrorable=_mirror_of(rig) is not None, facing=rf.facing,
                    merged_skeletons=merged, anim_sources=anim_sources))
    missing = sorted((wanted_holdout | wanted_val) - matched)
    if missing:
        raise InputError(f"held-out / validation characters not found among the sources: {', '.join(missing)}")
    unbound = [f"{libraries[i][1]}" for i in range(len(libraries)) if i not in bound]
    if unbound:
        raise InputError(f"--anim-from: no character read from {', '.join(unbound)}; pass the character file among the "
                         "sources and name it (path or file stem) after the '='")
    manifest = {
        "format": FORMAT,
        "usdposer": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "feature_dim": FEATURE_DIM,
        "pose_representation": REPRESENTATION,
        "dedupe_degrees": dedupe_degrees,
        "characters": [r.__dict__ for r in records],
        "splits": {s: [r.id for r in records if r.split == s] for s in ("train", "val", "heldout")},
        "counts": {s: sum(r.poses for r in records if r.split == s) for s in ("train", "val", "heldout")},
        "failed": failed,
    }
    tmp = out_dir / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, out_dir / "manifest.json")
    return manifest


FORMAT = "usdposer-pose-dataset/2"


def _library_codes(path: Path, work: Path, rig) -> tuple[list[torch.Tensor], dict]:
    """The clips of an animation library file retargeted to ``rig``: ([codes (T, J, 6) per clip], report)."""
    from usdposer.rigfeatures import pose_to_6d

    asset = read_any(path, work)
    if not asset.rigs:
        raise InputError(f"{path}: no skeleton in the animation library")
    src = max(asset.rigs, key=lambda r: len(asset.clips.get(r.skeleton_path, [])))
    out, names, residuals, report = [], [], [], {}
    for clip in asset.clips.get(src.skeleton_path, []):
        six = pose_to_6d(src, clip.pose())
        ok = torch.isfinite(six).all(-1).all(-1) & posable_frames(src, clip)
        if not bool(ok.any()):
            continue
        codes, report = retarget_codes(src, six[ok], rig)
        out.append(codes)
        names.append(clip.name)
        if report["residual_pct"] is not None:
            residuals.append(report["residual_pct"])
    report = {k: v for k, v in report.items() if k != "residual_pct"}
    report["clips"] = names
    report["residual_pct"] = round(float(np.mean(residuals)), 3) if residuals else None
    return out, report


def _mirror_of(rig):
    from usdposer.rigfeatures import mirror_permutation, rig_frame

    rf = rig_frame(rig)
    return mirror_permutation(rig.joint_names, rf.pairs, rf.mask, rf.ref_pos, rf.height)


@dataclass
class Character:
    """One shard in memory (see the module docstring for the tensors)."""

    id: str
    joints: list[str]
    features: torch.Tensor
    parents: torch.Tensor
    model_parents: torch.Tensor
    mask: torch.Tensor
    tree: torch.Tensor
    ref_pos: torch.Tensor
    joint_rot: torch.Tensor
    parent_rot: torch.Tensor
    ref_local_rot: torch.Tensor
    rest_rot: torch.Tensor
    rest_local: torch.Tensor
    poses: torch.Tensor
    limits: torch.Tensor | None
    split: str
    source: str
    height: float = 1.0

    @property
    def names(self) -> list[str]:
        return [j.rsplit("/", 1)[-1] for j in self.joints]

    def positions(self, six: torch.Tensor) -> torch.Tensor:
        """``(N, J, 6)`` canonical codes -> ``(N, J, 3)`` canonical joint positions (roots at the reference)."""
        from usdposer.rigfeatures import canonical_positions

        return canonical_positions(six.double(), self.model_parents, self.ref_pos.double(), self.mask)

    def relative_rotations(self, six: torch.Tensor) -> torch.Tensor:
        """``(N, J, 6)`` canonical codes -> ``(N, J, 3, 3)`` joint-local rotations relative to the rest pose (what
        joint limits are stated in); joints outside the model at their reference rotation."""
        from usdposer.core.rotations import sixd_to_matrix

        Q = sixd_to_matrix(six.double())
        Q = torch.where(self.mask[None, :, None, None], Q, torch.eye(3, dtype=Q.dtype))
        Gp = self.parent_rot.double()
        return self.rest_rot.double().transpose(-1, -2) @ Gp.transpose(-1, -2) @ Q @ Gp @ self.ref_local_rot.double()

    def mirror(self) -> torch.Tensor | None:
        """``(J,)`` the left/right swap when the character's reference pose is mirror-symmetric, else None."""
        from usdposer.rigfeatures import _mirror_pairs, mirror_permutation

        pairs = _mirror_pairs(self.names, self.mask, self.ref_pos.double())
        return mirror_permutation(self.names, pairs, self.mask, self.ref_pos.double(), self.height)


def load_dataset(path: str | os.PathLike, splits: tuple[str, ...] = ("train", "val", "heldout")) -> list[Character]:
    """Characters of the chosen splits (raises InputError on a missing, unreadable or outdated dataset)."""
    from safetensors import safe_open

    path = Path(path)
    mf = path / "manifest.json"
    if not mf.exists():
        raise InputError(f"{path}: not a usdposer dataset (no manifest.json); build one with `usdposer dataset build`")
    try:
        manifest = json.loads(mf.read_text())
        characters = manifest["characters"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{mf}: unreadable dataset manifest ({type(exc).__name__}); rebuild the dataset with "
                         "`usdposer dataset build`") from exc
    if manifest.get("format") != FORMAT:
        raise InputError(f"{path}: dataset format {manifest.get('format')!r}, this usdposer reads {FORMAT!r} (a new pose "
                         "representation); rebuild it with `usdposer dataset build`")
    out = []
    for r in characters:
        if r["split"] not in splits:
            continue
        try:
            with safe_open(str(path / r["shard"]), "pt") as f:
                t = {k: f.get_tensor(k) for k in f.keys()}
                meta = f.metadata()
                joints = json.loads(meta["joints"])
            out.append(Character(
                r["id"], joints, t["features"], t["parents"].long(), t["model_parents"].long(), t["mask"].bool(),
                t["tree"].long(), t["ref_pos"], t["joint_rot"], t["parent_rot"], t["ref_local_rot"], t["rest_rot"],
                t["rest_local"], t["poses"], t.get("limits"), r["split"], r["source"], float(meta.get("height", 1.0))))
        except Exception as exc:
            raise InputError(f"{path / r['shard']}: unreadable shard ({type(exc).__name__}: {exc}); rebuild the "
                             "dataset") from exc
    return out
