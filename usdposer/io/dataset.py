"""Pose datasets on disk: the files a dataset is built from (USD, glTF, BVH, MJCF, folders, globs) and the dataset
directory itself, a JSON manifest beside one safetensors shard per character.

Layout of a dataset directory::


    manifest.json                  sources, licences, counts, splits (by character), feature layout, the pose
                                   representation (``usdposer.core.posespace.REPRESENTATION``)
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
from dataclasses import dataclass, field
from pathlib import Path

import torch

from usdposer.core.retarget import dedupe, posable_frames
from usdposer.errors import InputError
from usdposer.io.importers import IMPORT_EXTENSIONS
from usdposer.io.stage import USD_EXTENSIONS

READABLE = USD_EXTENSIONS + IMPORT_EXTENSIONS


UNKNOWN_LICENCE = "unknown (not stated by the source; pass --licence PATTERN=TEXT)"
# the texts of licence files, by a phrase they contain (first match wins)
_LICENCE_TEXTS = [("Tomorrow Open Source Technology License", "Tomorrow Open Source Technology License 1.0"),
                  ("CC0 1.0 Universal", "CC0-1.0"), ("Apache License", "Apache-2.0"), ("MIT License", "MIT"),
                  ("Attribution 4.0 International", "CC-BY-4.0"), ("BSD 3-Clause", "BSD-3-Clause"),
                  ("GNU GENERAL PUBLIC LICENSE", "GPL")]
_LICENCE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "LICENCE.txt", "COPYING")


def licence_of(path: str | os.PathLike, overrides: list[tuple[str, str]] = ()) -> tuple[str, str]:
    """(licence, where it was read) of a source file, never guessed: the first ``overrides`` (glob PATTERN, TEXT)
    matching the path; else what the file states (glTF ``asset.copyright`` or ``extras.license``, USD
    ``customLayerData`` ``license`` / ``licence`` / ``copyright``); else a licence file beside it (or one folder up),
    recognised by its text; else ``UNKNOWN_LICENCE``."""
    import fnmatch

    p = Path(path)
    for pattern, text in overrides:
        path = p.as_posix()  # a pattern matches the path's tail: "quaternius/*" matches ../data/quaternius/a/Fox.glb
        if any(fnmatch.fnmatch(x, pat) for x in (path, p.name) for pat in (pattern, f"*/{pattern}")):
            return text, f"--licence {pattern}"
    stated = _stated_licence(p)
    if stated:
        return stated, "the file"
    for folder in (p.parent, p.parent.parent):
        for name in _LICENCE_FILES:
            f = folder / name
            if f.is_file():
                text = f.read_text(errors="replace")
                spdx = next((lic for phrase, lic in _LICENCE_TEXTS if phrase in text), None)
                return (spdx or text.strip().splitlines()[0][:120]), str(f)
    return UNKNOWN_LICENCE, ""


def _stated_licence(path: Path) -> str | None:
    """The licence or copyright a glTF or USD file states about itself, or None."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".gltf", ".glb"):
            from usdposer.io.gltf_read import load_gltf

            asset = load_gltf(path).asset
            extras = asset.extras if isinstance(asset.extras, dict) else {}
            text = extras.get("license") or extras.get("licence") or asset.copyright
            return str(text) if text else None
        if suffix in USD_EXTENSIONS:
            from pxr import Sdf

            layer = Sdf.Layer.FindOrOpen(str(path))
            data = dict(layer.customLayerData) if layer else {}
            text = data.get("license") or data.get("licence") or data.get("copyright")
            return str(text) if text else None
    except Exception:  # noqa: BLE001 - an unreadable file has no stated licence; reading it reports the problem
        return None
    return None


def expand_paths(paths: list[str]) -> list[tuple[str, Path | None]]:
    """(argument, file) for every file under the given files, folders and globs, in a stable order without
    repeats; (argument, None) when an argument matches nothing. Folders recurse and keep readable extensions; files
    named explicitly are kept whatever their extension (the reader then says what is wrong)."""
    out: list[tuple[str, Path | None]] = []
    seen: set[Path] = set()
    for arg in paths:
        matches = sorted(glob.glob(arg, recursive=True)) or ([arg] if Path(arg).exists() else [])
        found = False
        for m in matches:
            p = Path(m)
            files = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in READABLE) if p.is_dir() else [p]
            found = found or bool(files)
            for f in files:
                if f not in seen:
                    seen.add(f)
                    out.append((arg, f))
        if not found:  # a missing file, a glob matching nothing, a folder without a readable file
            out.append((arg, None))
    return out


def expand_sources(sources: list[str]) -> list[Path]:
    """Files and globs -> existing files with a readable extension, in a stable order (directories recurse)."""
    out: list[Path] = []
    for arg, f in expand_paths(sources):
        if f is None:
            raise InputError(f"{arg}: no such file, or no USD, glTF, BVH or MJCF file matches it; check the path")
        if f.suffix.lower() in READABLE:
            out.append(f)
    return out


def read_any(path: Path, workdir: Path, strict: bool = True, verb: str = "dataset"):
    """A ``SkelAsset`` from any supported file (non-USD files are imported to a temporary stage in ``workdir``
    first; the asset keeps ``path`` as its path). ``strict=False`` collects problems instead of raising."""
    from usdposer.io.read_skel import read_asset

    if path.suffix.lower() in USD_EXTENSIONS:
        return read_asset(path, strict=strict)
    from usdposer.io.importers import import_any

    out = workdir / f"{path.stem}_{abs(hash(str(path))) % 10**8}.usdc"
    import_any(path, out, arguments=[verb, str(path)])
    asset = read_asset(out, strict=strict)
    asset.path = str(path)
    return asset


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
    licence_source: str = ""  # where the licence was read (the file, a licence file, --licence), "" when unknown
    provenance: dict | None = None  # a generated layer's: verb, model, prompt, seed, residuals (distill / track / fit)
    dropped: dict = field(default_factory=dict)  # frames each dataset filter dropped


def frame_tensors(rig) -> dict:
    """The rig's frame as shard tensors (see the module docstring)."""
    from usdposer.core.posespace import joint_features, model_tree, rig_frame

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


def character_tensors(rig, clips, dedupe_degrees: float, extra: list[torch.Tensor] = (),
                      keep: list[torch.Tensor] | None = None) -> tuple[dict, int]:
    """(tensors for one shard, frame count before de-duplication); ``extra``: more ``(T, J, 6)`` canonical codes
    (retargeted library clips), de-duplicated the same way; ``keep``: per clip, (T,) frames that passed the dataset's
    filters."""
    from usdposer.core.posespace import pose_to_6d

    poses, frames = [], 0
    keep = keep if keep is not None else [torch.ones(len(c), dtype=torch.bool) for c in clips]
    codes = [pose_to_6d(rig, c.pose())[posable_frames(rig, c) & k].float() for c, k in zip(clips, keep)]
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


FORMAT = "usdposer-pose-dataset/2"


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
        from usdposer.core.posespace import canonical_positions

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
        from usdposer.core.posespace import _mirror_pairs, mirror_permutation

        pairs = _mirror_pairs(self.names, self.mask, self.ref_pos.double())
        return mirror_permutation(self.names, pairs, self.mask, self.ref_pos.double(), self.height, self.model_parents)


def _check_characters(characters, mf: Path, root: Path) -> None:
    """The manifest's ``characters``: a list of objects whose ``id``, ``split``, ``source`` and ``shard`` are text and
    whose shard path stays inside the dataset folder (no ``..`` out of it, not absolute); else one InputError naming the entry (an edited or corrupt manifest
    was an internal error, and a shard path could read a file outside the dataset)."""
    fix = "the manifest was edited or is corrupt; rebuild the dataset with `usdposer dataset build`"
    if not isinstance(characters, list):
        raise InputError(f"{mf}: \"characters\" is not a list; {fix}")
    for i, r in enumerate(characters):
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) for k in ("id", "split", "source", "shard")):
            raise InputError(f"{mf}: characters[{i}] is not an object with id, split, source and shard as text; {fix}")
        # by the text, not the file system: a shards folder the user linked to another disk stays readable
        shard = os.path.normpath(r["shard"])
        if os.path.isabs(shard) or shard == ".." or shard.startswith(".." + os.sep):
            raise InputError(f"{mf}: characters[{i}] ({r['id']}): shard {r['shard']!r} lies outside the dataset "
                             f"folder {root}; {fix}")


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
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise InputError(f"{path}: dataset format {found!r}, this usdposer reads {FORMAT!r} (a new pose "
                         "representation); rebuild it with `usdposer dataset build`")
    _check_characters(characters, mf, path)
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
