"""Pose datasets: real animations in USD/glTF/BVH/MJCF files -> a directory of safetensors shards + a manifest.

Layout of a dataset directory::

    manifest.json                  sources, licences, counts, splits (by character), feature layout
    shards/<character>.safetensors one per character (skeleton): features (J, F), parents (J,), tree (J, J),
                                   rest_local (J, 4, 4), poses (N, J, 6), limits (J, 3, 2) when known;
                                   the joint tokens and names are in the file's metadata

A character is one Skeleton of one file, named ``<folder>/<stem>`` (``animals/Fox``; ``_k`` for a file's k-th
extra skeleton). Splits are by character: ``heldout`` characters (and ``val`` ones) never reach training. Frames
closer than ``dedupe_degrees`` (largest joint rotation difference) to the last kept frame of their clip are dropped.
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


def character_tensors(rig, clips, dedupe_degrees: float, height: float) -> tuple[dict, int]:
    """(tensors for one shard, frame count before de-duplication); ``height`` in metres (character_height)."""
    from usdposer.rigfeatures import joint_features, pose_to_6d, tree_distance

    poses, frames = [], 0
    for c in clips:
        six = pose_to_6d(rig, c.pose()).float()
        frames += len(six)
        poses.append(six[dedupe(six, dedupe_degrees)])
    J = rig.num_joints
    t = {
        "features": joint_features(rig, height).float().contiguous(),
        "parents": rig.parents.long().contiguous(),
        "tree": tree_distance(rig.parents).to(torch.int16).contiguous(),
        "rest_local": rig.rest_local.float().contiguous(),
        "poses": (torch.cat(poses) if poses else torch.zeros(0, J, 6)).contiguous(),
    }
    if rig.limits is not None:
        t["limits"] = rig.limits.float().contiguous()
    return t, frames


def build_dataset(sources: list[str], out_dir: str | os.PathLike, *, holdout: list[str] = (), val: list[str] = (),
                  dedupe_degrees: float = 2.0, progress=None) -> dict:
    """Build a dataset directory (see the module docstring); returns the manifest. Sources that fail to read are
    reported in ``manifest["failed"]`` and do not stop the build."""
    from safetensors.torch import save_file

    from usdposer.posing import character_height
    from usdposer.rigfeatures import FEATURE_DIM

    out_dir = Path(out_dir)
    files = expand_sources(sources)
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
    with tempfile.TemporaryDirectory(prefix="usdposer-dataset-") as work:
        for f in (progress(files) if progress else files):
            try:
                asset = read_any(f, Path(work))
            except Exception as exc:  # one bad asset must not stop a batch
                failed.append({"source": str(f), "error": str(exc).splitlines()[0]})
                continue
            for k, rig in enumerate(asset.rigs):
                cid = f"{f.parent.name}/{f.stem}" + (f"_{k}" if k else "")
                base, n = cid, 1
                while cid in used_ids:
                    cid, n = f"{base}_{n}", n + 1
                used_ids.add(cid)
                clips = asset.clips.get(rig.skeleton_path, [])
                height = character_height(rig)
                tensors, frames = character_tensors(rig, clips, dedupe_degrees, height)
                keys = _match_keys(cid, f)
                matched |= keys
                split = "heldout" if keys & wanted_holdout else "val" if keys & wanted_val else "train"
                shard = f"shards/{cid.replace('/', '__')}.safetensors"
                meta = {"id": cid, "joints": json.dumps(list(rig.joints)), "source": str(f),
                        "skeleton": rig.skeleton_path, "height": repr(height)}
                save_file(tensors, str(out_dir / shard), metadata=meta)
                records.append(CharacterRecord(
                    id=cid, source=str(f), skeleton=rig.skeleton_path, licence=licence_of(f), joints=rig.num_joints,
                    frames=frames, poses=int(tensors["poses"].shape[0]), clips=[c.name for c in clips], split=split,
                    has_mesh=bool(rig.meshes), has_limits=rig.limits is not None, shard=shard))
    missing = sorted((wanted_holdout | wanted_val) - matched)
    if missing:
        raise InputError(f"held-out / validation characters not found among the sources: {', '.join(missing)}")
    manifest = {
        "format": "usdposer-pose-dataset/1",
        "usdposer": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "feature_dim": FEATURE_DIM,
        "pose_representation": "joint-local rotation relative to rest, 6D (first two matrix columns), root heading removed",
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


@dataclass
class Character:
    """One shard in memory."""

    id: str
    joints: list[str]
    features: torch.Tensor
    parents: torch.Tensor
    tree: torch.Tensor
    rest_local: torch.Tensor
    poses: torch.Tensor
    limits: torch.Tensor | None
    split: str
    source: str
    height: float = 1.0

    def rig(self):
        """A mesh-less Rig of this character (enough for FK): rest transforms, parents, joint tokens."""
        from usdposer.core.kinematics import forward_kinematics
        from usdposer.types import Rig

        rest = self.rest_local.double()
        return Rig(name=self.id, skeleton_path="/" + self.id, joints=tuple(self.joints), parents=self.parents.long(),
                   rest_local=rest, bind_world=forward_kinematics(rest[None], self.parents.long())[0],
                   limits=None if self.limits is None else self.limits.double(), source=self.source)


def load_dataset(path: str | os.PathLike, splits: tuple[str, ...] = ("train", "val", "heldout")) -> list[Character]:
    """Characters of the chosen splits (raises InputError on a missing or unreadable dataset)."""
    from safetensors import safe_open

    path = Path(path)
    mf = path / "manifest.json"
    if not mf.exists():
        raise InputError(f"{path}: not a usdposer dataset (no manifest.json); build one with `usdposer dataset build`")
    manifest = json.loads(mf.read_text())
    out = []
    for r in manifest["characters"]:
        if r["split"] not in splits:
            continue
        try:
            with safe_open(str(path / r["shard"]), "pt") as f:
                t = {k: f.get_tensor(k) for k in f.keys()}
                meta = f.metadata()
                joints = json.loads(meta["joints"])
        except Exception as exc:
            raise InputError(f"{path / r['shard']}: unreadable shard ({exc}); rebuild the dataset") from exc
        out.append(Character(r["id"], joints, t["features"], t["parents"], t["tree"].long(), t["rest_local"],
                             t["poses"], t.get("limits"), r["split"], r["source"], float(meta.get("height", 1.0))))
    return out
