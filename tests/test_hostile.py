"""Hostile input, every verb: a corpus of bad inputs (``tests/data/bad/`` plus files made here from the bundled assets),
each run through the real CLI entry point in-process and held to one contract:

- exit code 2 (3 for a missing device or optional dependency),
- exactly one line on stderr, naming the problem (``pattern``), and no traceback,
- no new, changed or removed file anywhere in the working folder, and the inputs byte-identical,
- and quickly: a refusal that needs no model must come before the model is loaded (``fast``).

Cases are made in a fresh working folder; the command runs with that folder as the current directory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import ASSETS, ROOT, TINY_USDA

BAD = Path(__file__).parent / "data" / "bad"
DEFAULT_MODEL = ROOT / "models" / "default"


class Hang(BaseException):
    """Raised by the alarm when a case runs past its time (a BaseException: no ``except Exception`` swallows it)."""


def _alarm(*_):
    raise Hang()


def run_cli(args: list[str], capfd, seconds: int = 120) -> tuple[int, str, str]:
    """Run ``usdposer ARGS`` in this process; returns (exit code, stdout, stderr). A hang fails the test."""
    from usdposer.commands import main
    from usdposer.commands._output import set_verbosity

    set_verbosity(0)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        with warnings.catch_warnings(record=True) as caught:  # pytest keeps warnings off stderr; the CLI does not
            warnings.simplefilter("always")
            main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Hang:
        pytest.fail(f"usdposer {' '.join(map(str, args))} ran past {seconds} s (a hang)")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out, err = capfd.readouterr()
    # what Python's default filters would print to a user's terminal
    shown = [w for w in caught if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning,
                                                               ImportWarning, ResourceWarning))]
    err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in shown)
    return code, out, err


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha1), folders included as entries."""
    snap = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        snap[rel] = "dir" if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
    return snap


# ------------------------------------------------------------------------------------------------------------------
# Inputs, made in the working folder
# ------------------------------------------------------------------------------------------------------------------

def copy(name: str, to: str | None = None) -> Callable[[Path], str]:
    """A file of the corpus (``tests/data/bad/NAME``) or of ``assets/`` (``assets:PATH``), copied in."""
    def make(work: Path) -> str:
        src = ASSETS / name.split(":", 1)[1] if name.startswith("assets:") else BAD / name
        dst = work / (to or src.name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst.name if dst.parent == work else str(dst.relative_to(work))
    return make


def usda(text: str, name: str = "rig.usda") -> Callable[[Path], str]:
    """A text file written into the working folder: a USD layer by default, or any ``name`` (a JSON sidecar)."""
    def make(work: Path) -> str:
        (work / name).write_text(text)
        return name
    return make


def tiny_replace(old: str, new: str, name: str = "rig.usda", count: int = 1) -> Callable[[Path], str]:
    assert old in TINY_USDA, old
    return usda(TINY_USDA.replace(old, new, count), name)


def gltf(mutate: Callable[[dict], None], name: str = "skin.gltf") -> Callable[[Path], str]:
    """Khronos' SimpleSkin (a data-URI glTF), its JSON changed by ``mutate``."""
    def make(work: Path) -> str:
        g = json.loads((ASSETS / "khronos" / "SimpleSkin.gltf").read_text())
        mutate(g)
        (work / name).write_text(json.dumps(g))
        return name
    return make


def _set(path: str, value):
    """A mutation that sets g[a][i][b]... = value, the path written 'a.0.b'."""
    def mutate(g):
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        d = g
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return mutate


def _nan_positions(g, nan: bytes = np.full(3, np.nan, np.float32).tobytes()):
    """Replace buffer 0's vertex block (positions start at byte 48) with NaNs."""
    raw = bytearray(base64.b64decode(g["buffers"][0]["uri"].split(",", 1)[1]))
    raw[48:60] = nan
    g["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(bytes(raw)).decode()


def _signalling_nan_positions(g):
    """Signalling NaNs (0x7f800001), which numpy warns about when it widens them (a second line on stderr): the
    fuzz test found one in garbage bytes (case 21776 of seed 1234)."""
    _nan_positions(g, np.full(3, 0x7F800001, np.uint32).tobytes())


def both(*makers) -> Callable[[Path], list[str]]:
    def make(work: Path) -> list[str]:
        return [m(work) for m in makers]
    return make


def fox_usd(work: Path) -> str:
    """The bundled Fox, imported (in-process) into the working folder."""
    from usdposer.io.importers import import_any

    import_any(ASSETS / "khronos" / "Fox.glb", work / "fox.usdc")
    return "fox.usdc"


def skeleton_only(work: Path) -> str:
    """The tiny rig without its mesh: a skeleton with nothing to skin."""
    text = TINY_USDA.split('    def Scope "Geo"')[0] + "}\n"
    (work / "bones.usda").write_text(text)
    return "bones.usda"


def model_copy(edit: Callable[[Path], None]) -> Callable[[Path], str]:
    def make(work: Path) -> str:
        dst = work / "model"
        shutil.copytree(DEFAULT_MODEL, dst)
        edit(dst)
        return "model"
    return make


def _nan_config(d: Path):
    cfg = json.loads((d / "config.json").read_text())
    cfg["prior"]["std"][0] = float("nan")
    (d / "config.json").write_text(json.dumps(cfg))


def _config(**changes) -> Callable[[Path], None]:
    """Edit a checkpoint's config.json: top-level keys, or ``prior__key`` inside its ``prior`` object."""
    def edit(d: Path):
        cfg = json.loads((d / "config.json").read_text())
        for k, v in changes.items():
            if k.startswith("prior__"):
                cfg["prior"][k[len("prior__"):]] = v
            else:
                cfg[k] = v
        (d / "config.json").write_text(json.dumps(cfg))
    return edit


def _cut_weights(d: Path):
    w = next(d.glob("*.safetensors"))
    w.write_bytes(w.read_bytes()[:1000])


def dataset_with(manifest: str | None) -> Callable[[Path], str]:
    def make(work: Path) -> str:
        (work / "data").mkdir()
        if manifest is not None:
            (work / "data" / "manifest.json").write_text(manifest)
        return "data"
    return make


LIMITS_FORMAT = "usdposer-limits/1"


def _manifest(characters: str) -> str:
    """A dataset manifest of this usdposer's format with the given ``characters`` JSON."""
    from usdposer.io.dataset import FORMAT

    return f'{{"format": "{FORMAT}", "characters": {characters}}}'


def sublayered(sub: str) -> Callable[[Path], str]:
    """A layer over the tiny rig whose second sublayer is ``sub`` (missing, or the layer itself: a cycle)."""
    def make(work: Path) -> str:
        (work / "rig.usda").write_text(TINY_USDA)
        (work / "shot.usda").write_text(f'#usda 1.0\n(\n    subLayers = [@./rig.usda@, @{sub}@]\n)\n')
        return "shot.usda"
    return make


# ------------------------------------------------------------------------------------------------------------------
# The corpus
# ------------------------------------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    args: Callable[[Path], list[str]]  # makes the inputs in the working folder, returns the arguments
    pattern: str                       # a phrase the one stderr line must contain (case-insensitive)
    code: int = 2
    fast: bool = False                 # must be refused in well under the time it takes to load a model


def case(id, make, args, pattern, code=2, fast=False):
    """``args`` is a format string over the made input(s): '{0}' ... (one maker, or ``both`` for several)."""
    def build(work: Path) -> list[str]:
        made = make(work) if make is not None else []
        made = made if isinstance(made, list) else [made]
        return [a.format(*made) for a in args.split()]
    return Case(id, build, pattern, code, fast)


RIG = tiny_replace("", "")  # the tiny rig as it is

CASES = [
    # ---- info: the USD reader
    case("info-missing-file", None, "info nothing.usda", "no such file", fast=True),
    case("info-folder", lambda w: (w / "d.usda").mkdir() or "d.usda", "info {0}", "directory", fast=True),
    case("info-truncated-usda", usda(TINY_USDA[: len(TINY_USDA) // 2]), "info {0}", "cannot be read as USD"),
    case("info-binary-garbage", lambda w: (w / "x.usdc").write_bytes(os.urandom(256)) and "x.usdc", "info {0}",
         "cannot be read as USD"),
    case("info-no-skeleton", usda('#usda 1.0\ndef Xform "W"\n{\n    def Mesh "M"\n    {\n    }\n}\n'), "info {0}",
         "no Skeleton prim"),
    case("info-no-joints", tiny_replace('uniform token[] joints = ["A", "A/B", "A/B/C", "D", "D/E/F"]',
                                        "uniform token[] joints = []"), "info {0}", "has no joints"),
    case("info-joint-not-a-path", tiny_replace('["A", "A/B", "A/B/C", "D", "D/E/F"]', '["A", "A/B", "A/B/C x", "D", "D/E/F"]'),
         "info {0}", "not a USD path"),
    case("info-duplicate-joint", tiny_replace('["A", "A/B", "A/B/C", "D", "D/E/F"]', '["A", "A/B", "A/B", "D", "D/E/F"]'),
         "info {0}", "joint 'A/B' appears twice"),
    case("info-misordered-joints", tiny_replace('["A", "A/B", "A/B/C", "D", "D/E/F"]', '["A/B", "A", "A/B/C", "D", "D/E/F"]'),
         "info {0}", "parent joint before its children"),
    case("info-nan-points", tiny_replace("(1, 0, 0), (-1, 0, 0)", "(nan, 0, 0), (-1, 0, 0)"), "info {0}", "NaN"),
    case("info-nan-weights", tiny_replace("[1, 0, 1, 0, 0.5, 0.5, 0.5, 0.5, 1, 0, 0.25, 0.75]",
                                          "[1, 0, nan, 0, 0.5, 0.5, 0.5, 0.5, 1, 0, 0.25, 0.75]"), "info {0}", "NaN"),
    case("info-weight-sizes", tiny_replace("[1, 0, 1, 0, 0.5, 0.5, 0.5, 0.5, 1, 0, 0.25, 0.75]", "[1, 0, 1, 0, 0.5, 0.5]"),
         "info {0}", "same length"),
    case("info-joint-index-range", tiny_replace("[0, 1, 0, 1, 1, 2, 1, 2, 2, 0, 3, 4]", "[0, 1, 0, 1, 1, 2, 1, 2, 2, 0, 3, 9]"),
         "info {0}", "out of range"),
    case("info-singular-bind", tiny_replace("((1,0,0,0),(0,1,0,0),(0,0,1,0),(0,0,10,1))",
                                            "((0,0,0,0),(0,0,0,0),(0,0,0,0),(0,0,10,1))"), "info {0}", "singular"),
    case("info-inf-rest", tiny_replace("((1,0,0,0),(0,1,0,0),(0,0,1,0),(5,0,0,1)), ((1,0,0,0),(0,1,0,0),(0,0,1,0),(5,0,10,1))]\n        rel",
                                       "((1,0,0,0),(0,1,0,0),(0,0,1,0),(inf,0,0,1)), ((1,0,0,0),(0,1,0,0),(0,0,1,0),(5,0,10,1))]\n        rel"),
         "info {0}", "finite"),
    case("info-not-usd", copy("text.npy", "notes.txt"), "info {0}", "not a USD file", fast=True),
    case("info-unknown-skeleton", RIG, "info {0} --skeleton Nobody", "no skeleton"),
    # stage metadata that cannot be meant (0 divided every length: an internal error; -1 mirrored them silently)
    case("info-meters-per-unit-zero", tiny_replace("metersPerUnit = 0.01", "metersPerUnit = 0"), "info {0}",
         "metersPerUnit is 0"),
    case("sample-meters-per-unit-negative", tiny_replace("metersPerUnit = 0.01", "metersPerUnit = -1"),
         "sample {0} -o out.usdc", "metersPerUnit is -1"),
    case("render-meters-per-unit-absurd", tiny_replace("metersPerUnit = 0.01", "metersPerUnit = 1e30"),
         "render {0} -o out.gif", "metersPerUnit is 1e+30"),
    case("skin-meters-per-unit-nan", tiny_replace("metersPerUnit = 0.01", "metersPerUnit = nan"),
         "skin {0} --replace -o out.usdc", "metersPerUnit is nan"),
    case("info-time-codes-per-second-zero", tiny_replace("timeCodesPerSecond = 24", "timeCodesPerSecond = 0"),
         "info {0}", "timeCodesPerSecond is 0"),
    case("ik-time-codes-per-second-negative", tiny_replace("timeCodesPerSecond = 24", "timeCodesPerSecond = -24"),
         "ik {0} --handle C=0,0,1 -o out.usdc", "timeCodesPerSecond is -24"),
    # ---- import: glTF
    # a Draco-compressed mesh (its accessors hold no data of their own): it imported as zeros, a mesh collapsed to a
    # point; a file that requires an extension usdposer cannot read is refused, naming it
    case("gltf-draco-required", gltf(lambda g: g.update(
        extensionsUsed=["KHR_draco_mesh_compression"], extensionsRequired=["KHR_draco_mesh_compression"])),
        "import {0} -o out.usdc", "requires the glTF extension KHR_draco_mesh_compression (mesh compression)",
        fast=True),
    case("gltf-unknown-required", gltf(lambda g: g.update(extensionsRequired=["EXT_made_up", "KHR_texture_basisu"])),
         "rig {0} --template quadruped -o out.usdc", "extensions EXT_made_up, KHR_texture_basisu (KTX2 textures)",
         fast=True),
    case("gltf-buffer-traversal", gltf(_set("buffers.0.uri", "../../../../../../etc/passwd")), "import {0} -o out.usdc",
         "outside the asset's folder"),
    case("gltf-buffer-absolute", gltf(_set("buffers.0.uri", "/etc/passwd")), "import {0} -o out.usdc",
         "outside the asset's folder"),
    case("gltf-buffer-url", gltf(_set("buffers.0.uri", "https://example.com/x.bin")), "import {0} -o out.usdc", "URL"),
    case("gltf-buffer-missing", gltf(_set("buffers.0.uri", "x.bin")), "import {0} -o out.usdc", "is missing"),
    case("gltf-image-traversal", gltf(lambda g: g.update(images=[{"uri": "../../../../etc/hostname"}],
                                                         textures=[{"source": 0}],
                                                         materials=[{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}],
                                                         meshes=[{"primitives": [dict(g["meshes"][0]["primitives"][0], material=0)]}])),
         "import {0} -o out.usdc", "outside the asset's folder"),
    case("gltf-skin-joint-missing-node", gltf(_set("skins.0.joints", [1, 7])), "import {0} -o out.usdc", "node 7"),
    case("gltf-node-cycle", gltf(_set("nodes.2.children", [1])), "import {0} -o out.usdc", "not a tree"),
    case("gltf-child-missing", gltf(_set("nodes.1.children", [9])), "import {0} -o out.usdc", "node 9"),
    case("gltf-accessor-missing", gltf(_set("meshes.0.primitives.0.attributes.POSITION", 40)), "import {0} -o out.usdc",
         "accessor 40"),
    case("gltf-accessor-swapped", gltf(_set("meshes.0.primitives.0.attributes.POSITION", 4)), "import {0} -o out.usdc",
         "accessor 4"),
    case("gltf-accessor-count", gltf(_set("accessors.1.count", 10 ** 12)), "import {0} -o out.usdc", "accessor 1"),
    case("gltf-nan-positions", gltf(_nan_positions), "import {0} -o out.usdc", "NaN"),
    case("gltf-signalling-nan", gltf(_signalling_nan_positions), "import {0} -o out.usdc", "NaN"),
    case("gltf-negative-offset", gltf(_set("accessors.1.byteOffset", -4)), "import {0} -o out.usdc",
         "accessor 1 has byteOffset -4"),
    case("gltf-view-negative-offset", gltf(_set("bufferViews.1.byteOffset", -4)), "import {0} -o out.usdc",
         "bufferView 1 has byteOffset -4"),
    case("gltf-not-json", lambda w: (w / "x.gltf").write_text("{nope") and "x.gltf", "import {0} -o out.usdc",
         "cannot be parsed as glTF"),
    case("glb-truncated", lambda w: (w / "fox.glb").write_bytes((ASSETS / "khronos" / "Fox.glb").read_bytes()[:50_000])
         and "fox.glb", "import {0} -o out.usdc", "truncated"),
    case("glb-garbage", lambda w: (w / "x.glb").write_bytes(b"not a gltf file at all") and "x.glb",
         "import {0} -o out.usdc", "bad header"),
    # ---- import: BVH
    case("bvh-frames-zero", copy("frames_zero.bvh"), "import {0} -o out.usdc", "no frames"),
    case("bvh-channel-count", copy("channel_count.bvh"), "import {0} -o out.usdc", "values"),
    case("bvh-nan", copy("nan_value.bvh"), "import {0} -o out.usdc", "NaN"),
    case("bvh-no-motion", copy("no_motion.bvh"), "import {0} -o out.usdc", "truncated"),
    case("bvh-truncated", copy("truncated.bvh"), "import {0} -o out.usdc", "truncated"),
    case("bvh-absurd-frames", copy("absurd_frames.bvh"), "import {0} -o out.usdc", "frames"),
    case("bvh-duplicate-joint", copy("duplicate_joint.bvh"), "import {0} -o out.usdc", "'Hips' appears twice"),
    case("bvh-units-nan", copy("two_joints.bvh"), "import {0} -o out.usdc --meters-per-unit nan", "finite", fast=True),
    case("bvh-units-zero", copy("two_joints.bvh"), "import {0} -o out.usdc --meters-per-unit 0", "--meters-per-unit",
         fast=True),
    # ---- import: MJCF
    case("mjcf-range-text", copy("range_not_numbers.xml"), "import {0} -o out.usdc", "range"),
    case("mjcf-range-nan", copy("range_nan.xml"), "import {0} -o out.usdc", "range"),
    case("mjcf-include-traversal", copy("include_escape.xml"), "import {0} -o out.usdc", "outside the asset's folder"),
    case("mjcf-include-absolute", copy("include_absolute.xml"), "import {0} -o out.usdc", "outside the asset's folder"),
    case("mjcf-skin-traversal", copy("skin_escape.xml"), "import {0} -o out.usdc", "outside the asset's folder"),
    case("mjcf-duplicate-body", copy("duplicate_body.xml"), "import {0} -o out.usdc", "'torso' appears twice"),
    case("mjcf-truncated", copy("truncated.xml"), "import {0} -o out.usdc", "not a readable MJCF"),
    case("mjcf-skin-missing", copy("limb.xml"), "import {0} -o out.usdc --skin nothing.skn", "nothing.skn", fast=True),
    case("mjcf-skin-garbage", both(copy("limb.xml"), copy("text.npy", "limb.skn")), "import {0} -o out.usdc --skin {1}",
         "skin file"),
    # ---- import: arguments
    case("import-fps-huge", copy("two_joints.bvh"), "import {0} -o out.usdc --fps 1e7", "--fps", fast=True),
    case("import-fps-zero", copy("two_joints.bvh"), "import {0} -o out.usdc --fps 0", "--fps", fast=True),
    case("import-fps-nan", copy("two_joints.bvh"), "import {0} -o out.usdc --fps nan", "--fps", fast=True),
    case("import-unknown-format", copy("text.npy", "mesh.obj"), "import {0} -o out.usdc", "unknown format", fast=True),
    case("import-usd", RIG, "import {0} -o {0}", "already USD", fast=True),
    case("import-out-extension", copy("two_joints.bvh"), "import {0} -o out.txt", "must end in", fast=True),
    case("import-out-folder-missing", copy("two_joints.bvh"), "import {0} -o nowhere/out.usdc", "does not exist",
         fast=True),
    case("import-out-under-file", copy("two_joints.bvh"), "import {0} -o two_joints.bvh/out.usdc", "not a folder",
         fast=True),
    case("import-anim-from-missing", copy("two_joints.bvh"), "import {0} -o out.usdc --anim-from none.glb",
         "none.glb", fast=True),
    # ---- skin
    case("skin-no-meshes", skeleton_only, "skin {0} -o out.usdc", "no meshes"),
    case("skin-influences-zero", RIG, "skin {0} -o out.usdc -k 0", "--influences", fast=True),
    case("skin-unknown-mesh", RIG, "skin {0} -o out.usdc --mesh Nobody --replace", "Nobody"),
    case("skin-unknown-skeleton", RIG, "skin {0} -o out.usdc --skeleton Nobody", "Nobody"),
    # ---- fit
    case("fit-text-npy", both(RIG, copy("text.npy")), "fit {1} --rig {0} -o out.usdc", "NumPy"),
    case("fit-iterations-zero", both(RIG, copy("text.npy")), "fit {1} --rig {0} -o out.usdc --iterations 0",
         "--iterations", fast=True),
    case("fit-edge-weight-nan", both(RIG, copy("text.npy")), "fit {1} --rig {0} -o out.usdc --edge-weight nan",
         "--edge-weight", fast=True),
    case("fit-bad-frames", both(RIG, copy("text.npy")), "fit {1} --rig {0} -o out.usdc --frames 5:x", "--frames",
         fast=True),
    # ---- dataset
    case("dataset-holdout-nobody", copy("assets:cmu/cmu_walk.bvh"), "dataset build {0} -o data --holdout Nobody",
         "Nobody"),
    case("dataset-no-sources", lambda w: (w / "empty").mkdir() or "empty", "dataset build {0} -o data", "no "),
    case("dataset-dedupe-nan", copy("two_joints.bvh"), "dataset build {0} -o data --dedupe-degrees nan",
         "--dedupe-degrees", fast=True),
    # ---- train
    case("train-manifest-corrupt", dataset_with('{"version": 1, "characters": ['), "train {0} -o ckpt", "manifest"),
    case("train-manifest-missing", dataset_with(None), "train {0} -o ckpt", "manifest"),
    # an edited manifest: entries of the wrong type were internal errors, and a shard path could read outside the
    # dataset folder
    case("train-manifest-characters-text", dataset_with(_manifest('"x"')), "train {0} -o ckpt", "is not a list"),
    case("train-manifest-id-number", dataset_with(_manifest(
        '[{"id": 5, "split": "train", "source": "a.glb", "shard": "shards/a.safetensors"}]')),
        "train {0} -o ckpt", "characters[0] is not an object with id"),
    case("train-manifest-shard-escapes", dataset_with(_manifest(
        '[{"id": "a", "split": "train", "source": "a.glb", "shard": "../../../etc/passwd"}]')),
        "train {0} -o ckpt", "lies outside the dataset folder"),
    case("train-manifest-shard-absolute", dataset_with(_manifest(
        '[{"id": "a", "split": "train", "source": "a.glb", "shard": "/etc/passwd"}]')),
        "train {0} -o ckpt", "lies outside the dataset folder"),
    case("train-width-heads", dataset_with(None), "train {0} -o ckpt --width 15 --heads 2", "--heads", fast=True),
    case("train-batch-zero", dataset_with(None), "train {0} -o ckpt --batch-size 0", "--batch-size", fast=True),
    case("train-steps-negative", dataset_with(None), "train {0} -o ckpt --steps -4", "--steps", fast=True),
    case("train-lr-nan", dataset_with(None), "train {0} -o ckpt --lr nan", "--lr", fast=True),
    case("train-device-banana", dataset_with(None), "train {0} -o ckpt --device banana", "banana", fast=True),
    # ---- sample
    case("sample-out-is-input", RIG, "sample {0} -o {0}", "input", fast=True),
    case("sample-steps-zero", RIG, "sample {0} -o out.usdc --steps 0", "--steps", fast=True),
    case("sample-steps-negative", RIG, "sample {0} -o out.usdc --steps -4", "--steps", fast=True),
    case("sample-num-zero", RIG, "sample {0} -o out.usdc -n 0", "--num", fast=True),
    # more DDIM steps than the pose space has noise levels reached diffusers' ValueError (an internal error, exit 4)
    case("sample-steps-beyond-noise-levels", RIG, "sample {0} -o out.usdc --steps 5000", "1<=x<=1000", fast=True),
    case("invert-steps-beyond-noise-levels", RIG, "invert {0} -o out.usdc --steps 1001", "1<=x<=1000", fast=True),
    case("ik-steps-beyond-noise-levels", RIG, "ik {0} --handle A/B/C=0,0,0 --steps 2000 -o out.usdc", "1<=x<=1000",
         fast=True),
    case("sample-seed-absurd", RIG, "sample {0} -o out.usdc --seed 100000000000000000000000", "--seed", fast=True),
    case("sample-seed-negative", RIG, "sample {0} -o out.usdc --seed -5", "--seed", fast=True),
    case("sample-eta-nan", RIG, "sample {0} -o out.usdc --eta nan", "--eta", fast=True),
    case("sample-device-banana", RIG, "sample {0} -o out.usdc --device banana", "banana", fast=True),
    case("sample-checkpoint-missing", RIG, "sample {0} -o out.usdc --checkpoint nowhere", "nowhere", fast=True),
    case("sample-checkpoint-nan", both(RIG, model_copy(_nan_config)), "sample {0} -o out.usdc --checkpoint {1}",
         "not finite"),
    case("sample-checkpoint-cut", both(RIG, model_copy(_cut_weights)), "sample {0} -o out.usdc --checkpoint {1}",
         "checkpoint"),
    # a config's values of the wrong JSON type or absurd size: named before a model is built (a depth of 10^9 was
    # allocated first; a "prior" that is not an object, or a text eta, was an internal error)
    case("sample-checkpoint-width-text", both(RIG, model_copy(_config(width="abc"))),
         "sample {0} -o out.usdc --checkpoint {1}", "width = 'abc' is not a whole number"),
    case("sample-checkpoint-depth-absurd", both(RIG, model_copy(_config(depth=10 ** 9))),
         "sample {0} -o out.usdc --checkpoint {1}", "depth = 1000000000"),
    case("sample-checkpoint-prior-text", both(RIG, model_copy(_config(prior="x"))),
         "sample {0} -o out.usdc --checkpoint {1}", 'no "prior" object'),
    case("sample-checkpoint-eta-text", both(RIG, model_copy(_config(prior__sampling={"eta": "a"}))),
         "sample {0} -o out.usdc --checkpoint {1}", "prior.sampling.eta"),
    case("check-checkpoint-threshold-text", both(RIG, model_copy(_config(prior__plausibility={"threshold": "x"}))),
         "check {0} --checkpoint {1}", "prior.plausibility.threshold"),
    case("sample-preview-missing-folder", RIG, "sample {0} -o out.usdc --preview nowhere/x.png", "does not exist",
         fast=True),
    case("sample-preview-is-folder", lambda w: (w / "x.png").mkdir() or RIG(w), "sample {0} -o out.usdc --preview x.png",
         "directory", fast=True),
    case("sample-missing-sublayer", sublayered("./gone.usda"), "sample {0} -o out.usdc", "gone.usda"),
    # ---- invert / interpolate / ik
    case("invert-frames-outside", RIG, "invert {0} -o out.usdc --frames 50:60", "50"),
    case("invert-refine-negative", RIG, "invert {0} -o out.usdc --refine -1", "--refine", fast=True),
    case("invert-unknown-anim", RIG, "invert {0} -o out.usdc --anim Nobody", "Nobody"),
    case("interpolate-bad-pose", RIG, "interpolate {0} --from banana --to rest -o out.usdc", "banana", fast=True),
    case("interpolate-one-frame", RIG, "interpolate {0} --from rest --to 3 --frames 1 -o out.usdc", "--frames",
         fast=True),
    case("ik-unknown-joint", RIG, "ik {0} --handle Nobody=0,0,0 -o out.usdc", "Nobody"),
    case("ik-handle-nan", RIG, "ik {0} --handle A/B/C=nan,0,0 -o out.usdc", "finite", fast=True),
    case("ik-handle-malformed", RIG, "ik {0} --handle A/B/C=1,2 -o out.usdc", "three coordinates", fast=True),
    case("ik-strength", RIG, "ik {0} --handle A/B/C=0,0,0.2 --strength 5 -o out.usdc", "--strength", fast=True),
    case("ik-out-is-input", RIG, "ik {0} --handle A/B/C=0,0,0.2 -o {0}", "input", fast=True),
    case("ik-no-handles", RIG, "ik {0} -o out.usdc", "--handle", fast=True),
    case("ik-replay-not-ik", RIG, "ik --replay {0} -o out.usdc", "usdposer ik"),
    # ---- distill / track / render
    case("distill-size", RIG, "distill {0} --prompt walk --model tiny-wan -o out.usdc --size 15x15", "--size", fast=True),
    case("distill-frames-zero", RIG, "distill {0} --prompt walk --model tiny-wan -o out.usdc --frames 0", "--frames",
         fast=True),
    case("distill-guidance-nan", RIG, "distill {0} --prompt walk --model tiny-wan -o out.usdc --guidance nan",
         "--guidance", fast=True),
    case("distill-model-missing", RIG, "distill {0} --prompt walk --model ./nowhere -o out.usdc", "nowhere"),
    case("distill-device-cuda", RIG, "distill {0} --prompt walk --model tiny-wan -o out.usdc --device cuda", "CUDA",
         code=3, fast=True),
    case("track-iterations-zero", RIG, "track {0} -o out.usdc --iterations 0", "--iterations", fast=True),
    case("track-physics-folder-missing", RIG, "track {0} -o out.usdc --physics nowhere/p.usda", "does not exist",
         fast=True),
    case("track-frames-backwards", RIG, "track {0} -o out.usdc --frames 3:1", "--frames"),
    case("track-no-animation", usda(TINY_USDA.split("        rel skel:animationSource")[0] + "    }\n}\n"),
         "track {0} -o out.usdc", "no SkelAnimation"),
    case("render-size-zero", RIG, "render {0} -o x.png --size 0x0", "--size", fast=True),
    case("render-fps-huge", RIG, "render {0} -o x.gif --mode video --fps 1e7", "--fps", fast=True),
    case("render-out-extension", RIG, "render {0} -o x.txt", "x.txt", fast=True),
    case("render-frames-garbage", RIG, "render {0} -o x.png --frames a:b", "--frames", fast=True),
    case("render-pitch-nan", RIG, "render {0} -o x.png --pitch nan", "--pitch", fast=True),
    # ---- check / limits
    case("check-empty-folder", lambda w: (w / "empty").mkdir() or "empty", "check {0}", "no USD"),
    case("check-empty-glob", None, "check nothing*.usda", "no USD", fast=True),
    case("check-waivers-garbage", both(RIG, copy("limits_garbage.json", "waivers.json")), "check {0} --waivers {1}",
         "waivers"),
    case("check-limits-garbage", both(RIG, copy("limits_garbage.json")), "check {0} --limits {1}", "limits"),
    # files of the right format with entries of the wrong type: a limits file's were reported as the checked asset's
    # error (Readable.CannotOpen), a waiver that is text or a number for its file was an internal error
    case("check-limits-characters-text",
         both(RIG, usda(json.dumps({"format": LIMITS_FORMAT, "characters": "x"}), "l.json")),
         "check {0} --limits {1}", "is not a list"),
    case("check-limits-rows-text", both(RIG, usda(json.dumps({"format": LIMITS_FORMAT, "characters": [
        {"joints": ["a"], "axes": [[1, 0, 0]], "swing_twist": [["a", "b", "c"]]}]}), "l.json")),
         "check {0} --limits {1}", "swing_twist is not 1 rows of three numbers or null"),
    case("check-waivers-entry-text", both(RIG, usda('{"format": "usdposer-waivers/1", "waivers": '
                                                    '["file rule reason"]}', "w.json")), "check {0} --waivers {1}",
         "not a waivers file"),
    case("check-waivers-file-number", both(RIG, usda('{"format": "usdposer-waivers/1", "waivers": '
                                                     '[{"file": 5, "rule": "X", "reason": "r"}]}', "w.json")),
         "check {0} --waivers {1}", "not a waivers file"),
    case("check-unknown-rule", RIG, "check {0} --rules NoSuchRule", "NoSuchRule", fast=True),
    case("check-depth-nan", RIG, "check {0} --depth nan", "--depth", fast=True),
    case("check-report-is-input", RIG, "check {0} -o {0}", "input", fast=True),
    case("limits-manifest-corrupt", dataset_with('{"version": 1, "characters": ['), "limits learn {0} -o l.json",
         "manifest"),
    case("limits-quantile", dataset_with(None), "limits learn {0} -o l.json --quantile 2", "--quantile", fast=True),
    case("limits-out-is-folder", lambda w: (w / "l.json").mkdir() or dataset_with(None)(w),
         "limits learn {0} -o l.json", "directory", fast=True),
]


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, tmp_path, capfd, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    args = c.args(work)
    before = snapshot(work)
    monkeypatch.chdir(work)
    capfd.readouterr()
    t0 = time.perf_counter()
    code, out, err = run_cli(args, capfd)
    seconds = time.perf_counter() - t0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert code == c.code, f"exit {code}, wanted {c.code}: {err}"
    assert len(lines) == 1, f"wanted one line on stderr, got {len(lines)}:\n{err}"
    assert c.pattern.lower() in lines[0].lower(), lines[0]
    assert lines[0].startswith("error: "), lines[0]
    assert snapshot(work) == before, "the working folder changed"
    if c.fast:
        assert seconds < 5.0, f"refused only after {seconds:.1f} s: check arguments before loading anything"


def test_corpus_size():
    verbs = {c.id.split("-")[0] for c in CASES}
    assert len(CASES) >= 60
    assert {"info", "gltf", "glb", "bvh", "mjcf", "import", "skin", "fit", "dataset", "train", "sample", "invert",
            "interpolate", "ik", "distill", "track", "render", "check", "limits"} <= verbs


# ------------------------------------------------------------------------------------------------------------------
# A folder that mixes bad files with good ones: one file's failure fails only that file
# ------------------------------------------------------------------------------------------------------------------

BAD_SOURCES = ["gltf-buffer-traversal", "gltf-skin-joint-missing-node", "gltf-node-cycle", "gltf-accessor-swapped",
               "gltf-nan-positions", "gltf-not-json", "glb-truncated", "glb-garbage", "bvh-frames-zero",
               "bvh-channel-count", "bvh-nan", "bvh-truncated", "bvh-duplicate-joint", "mjcf-range-text",
               "mjcf-include-traversal", "mjcf-duplicate-body", "mjcf-truncated", "info-truncated-usda",
               "info-binary-garbage", "info-singular-bind", "info-duplicate-joint"]


@pytest.fixture
def mixed_folder(tmp_path) -> tuple[Path, set[str], set[str]]:
    """``shots/`` with the good sources (Fox, a BVH, an MJCF, the tiny rig) and every kind of bad source, each bad
    one made by its corpus case under its own name."""
    folder = tmp_path / "shots"
    folder.mkdir()
    good = {"fox.glb", "walk.bvh", "limb.xml", "tiny.usda"}
    shutil.copyfile(ASSETS / "khronos" / "Fox.glb", folder / "fox.glb")
    shutil.copyfile(BAD / "two_joints.bvh", folder / "walk.bvh")
    shutil.copyfile(BAD / "limb.xml", folder / "limb.xml")
    (folder / "tiny.usda").write_text(TINY_USDA)
    bad = set()
    by_id = {c.id: c for c in CASES}
    for cid in BAD_SOURCES:
        scratch = tmp_path / cid
        scratch.mkdir()
        src = scratch / by_id[cid].args(scratch)[1]
        name = f"{cid}{src.suffix}"
        shutil.copyfile(src, folder / name)
        bad.add(name)
    return folder, good, bad


def test_check_mixed_folder(mixed_folder, tmp_path, capfd, monkeypatch):
    folder, good, bad = mixed_folder
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["check", "shots", "--json", "--rules", "Readable,SkinBinding,JointOrder,NonFinite"], capfd)
    assert "Traceback" not in err, err
    assert code == 2
    files = {Path(f["path"]).name: f for f in json.loads(out)["files"]}
    assert set(files) == good | bad
    for name in good:
        assert files[name]["readable"] and files[name]["skeletons"] >= 1, files[name]
    for name in bad:
        rows = [f for f in files[name]["findings"] if f["severity"] in ("error", "failed")]
        assert len(rows) >= 1, (name, files[name])
        if not files[name]["readable"]:
            assert len(files[name]["findings"]) == 1, (name, files[name]["findings"])


def test_dataset_mixed_folder(mixed_folder, tmp_path, capfd, monkeypatch):
    folder, good, bad = mixed_folder
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    code, out, err = run_cli(["dataset", "build", "shots", "-o", "data", "--json"], capfd)
    assert "Traceback" not in err, err
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--skip-bad" in lines[0], err
    report = json.loads(out)
    assert report["written"] is False
    assert {Path(c["source"]).name for c in report["characters"]} == good
    assert {Path(f["source"]).name for f in report["failed"]} == bad
    assert all(len(f["error"].splitlines()) == 1 for f in report["failed"])
    assert snapshot(tmp_path) == before  # nothing written, not even a temporary folder

    code, out, err = run_cli(["dataset", "build", "shots", "-o", "data", "--json", "--skip-bad", "-q"], capfd)
    assert code == 0, err
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert {Path(f["source"]).name for f in manifest["failed"]} == bad
    assert {Path(c["source"]).name for c in manifest["characters"]} == good
    assert sorted(p.name for p in (tmp_path / "data" / "shards").iterdir()) == sorted(
        Path(c["shard"]).name for c in manifest["characters"])


# ------------------------------------------------------------------------------------------------------------------
# All of one command's outputs, or none
# ------------------------------------------------------------------------------------------------------------------

def test_transaction_undoes_every_output(tmp_path):
    """A failure after the first output is in place removes it again and restores what it replaced."""
    from usdposer.outputs import atomic_file, transaction

    old = tmp_path / "layer.usda"
    old.write_text("the previous layer")
    with pytest.raises(RuntimeError), transaction():
        with atomic_file(old) as tmp:
            tmp.write_text("new layer")
        assert old.read_text() == "new layer"  # in place, readable by what follows
        with atomic_file(tmp_path / "preview.png") as tmp:
            tmp.write_bytes(b"png")
        raise RuntimeError("the preview step failed")
    assert old.read_text() == "the previous layer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.usda"]


def test_separate_transaction_keeps_its_outputs_when_the_outer_one_fails(tmp_path):
    """``ik --serve`` answers each request in a separate transaction: an answered request's layer stays when the
    process later fails (the outer transaction undoes only its own outputs); a failed request's outputs go at once,
    and what it replaced comes back."""
    from usdposer.outputs import atomic_file, transaction

    answered, failed, mine = tmp_path / "answered.usdc", tmp_path / "failed.usdc", tmp_path / "outer.txt"
    failed.write_text("a layer from before")
    with pytest.raises(KeyboardInterrupt), transaction():
        with atomic_file(mine) as tmp:
            tmp.write_text("outer")
        with transaction(separate=True):
            with atomic_file(answered) as tmp:
                tmp.write_text("request 0")
        with pytest.raises(ValueError), transaction(separate=True):
            with atomic_file(failed) as tmp:
                tmp.write_text("request 1")
            raise ValueError("request 1 failed after writing")
        assert failed.read_text() == "a layer from before"
        with transaction():  # an ordinary nested block joins the outer transaction
            with atomic_file(tmp_path / "joined.txt") as tmp:
                tmp.write_text("joined")
        raise KeyboardInterrupt
    assert answered.read_text() == "request 0" and failed.read_text() == "a layer from before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answered.usdc", "failed.usdc"]


def test_ctrl_c_during_a_multi_file_save_comes_after_it(tmp_path):
    """A checkpoint is weights, config and training state, replaced one file at a time: a Ctrl-C between two of them
    left the weights of one step beside the state of another (resume then mixed them). Inside ``uninterrupted`` a
    Ctrl-C is held until the block ends and then raised once, nested blocks included; where SIGINT was ignored (a
    background job) it stays ignored."""
    import os
    import signal

    from usdposer.outputs import uninterrupted

    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal (a background job ignores it)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with uninterrupted():
                (tmp_path / "model.safetensors").write_text("step 2")
                os.kill(os.getpid(), signal.SIGINT)
                with uninterrupted():
                    (tmp_path / "training_state.json").write_text("step 2")
                done.append("after the inner block")
            done.append("never: raised as the outer block ends")
        assert done == ["after the inner block"]
        assert {p.read_text() for p in tmp_path.iterdir()} == {"step 2"}
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with uninterrupted():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, outer)


@pytest.mark.parametrize("code, kept", [(0, True), (1, True), (2, False)])
def test_transaction_and_exit_codes(tmp_path, code, kept):
    """``check`` exits 1 when checks fail: its report is the answer and is kept; exit 2 undoes."""
    from usdposer.outputs import atomic_file, transaction

    with pytest.raises(SystemExit), transaction():
        with atomic_file(tmp_path / "report.xml") as tmp:
            tmp.write_text("<testsuites/>")
        raise SystemExit(code)
    assert (tmp_path / "report.xml").exists() == kept
    assert len(list(tmp_path.iterdir())) == int(kept)


def test_sample_then_failure_leaves_nothing(tmp_path):
    """The real sample pipeline inside a transaction that fails afterwards (as a preview that cannot be written
    would): its layer is removed."""
    from usdposer.pipelines.sample import SampleOptions, sample

    from usdposer.outputs import transaction

    (tmp_path / "rig.usda").write_text(TINY_USDA)
    before = snapshot(tmp_path)
    with pytest.raises(OSError), transaction():
        sample(tmp_path / "rig.usda", tmp_path / "out.usdc", SampleOptions(n=2, steps=2))
        assert (tmp_path / "out.usdc").exists()
        raise OSError(28, "No space left on device", str(tmp_path / "out.png"))
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: a read-only folder cannot be simulated")
def test_unwritable_folder(tmp_path, capfd, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    (tmp_path / "rig.usda").write_text(TINY_USDA)
    ro.chmod(0o500)
    monkeypatch.chdir(tmp_path)
    try:
        code, _, err = run_cli(["sample", "rig.usda", "-o", "out.usdc", "--preview", "ro/x.png"], capfd)
    finally:
        ro.chmod(0o700)
    assert code == 2 and "permission denied" in err.lower()
    assert not (tmp_path / "out.usdc").exists()


# ------------------------------------------------------------------------------------------------------------------
# Fuzzing: mutated real assets through import and check, never a traceback, never a hang
# ------------------------------------------------------------------------------------------------------------------

FUZZ_SECONDS = float(os.environ.get("USDPOSER_FUZZ_SECONDS", "60"))
FUZZ_SOURCES = ["khronos/SimpleSkin.gltf", "khronos/RiggedSimple.glb", "cmu/cmu_walk.bvh", "openusd/arm.usda",
                "mujoco/rodent/rodent.xml"]


def _json_nodes(value, path=()):
    """Every (container, key) in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield value, k
            yield from _json_nodes(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield value, i
            yield from _json_nodes(v, path + (i,))


def _mutate_json(g: dict, rng: np.random.Generator) -> str:
    nodes = list(_json_nodes(g))
    kind = rng.integers(4)
    ints = [(c, k) for c, k in nodes if isinstance(c[k], int) and not isinstance(c[k], bool)]
    nums = [(c, k) for c, k in nodes if isinstance(c[k], (int, float)) and not isinstance(c[k], bool)]
    if kind == 0:  # drop a key
        c, k = nodes[rng.integers(len(nodes))]
        if isinstance(c, dict):
            del c[k]
        else:
            c.pop(k)
        return f"drop {k}"
    if kind == 1 and len(ints) > 1:  # swap two indices
        (c1, k1), (c2, k2) = (ints[i] for i in rng.choice(len(ints), 2, replace=False))
        c1[k1], c2[k2] = c2[k2], c1[k1]
        return f"swap {k1} {k2}"
    if kind == 2 and nums:  # an absurd or negative number
        c, k = nums[rng.integers(len(nums))]
        c[k] = [-1, 10 ** 9, 2 ** 31 - 1, 0][rng.integers(4)]
        return f"absurd {k}"
    c, k = nums[rng.integers(len(nums))] if nums else nodes[0]
    c[k] = float("nan")
    return f"nan {k}"


def _glb_parts(data: bytes) -> tuple[dict, bytes]:
    import struct

    n = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[20:20 + n]), data[20 + n:]


def _glb_pack(g: dict, rest: bytes) -> bytes:
    import struct

    js = json.dumps(g).encode()
    js += b" " * (-len(js) % 4)
    body = struct.pack("<II", len(js), 0x4E4F534A) + js + rest
    return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body


def mutate(data: bytes, suffix: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """One seeded mutation: truncate, flip bytes, or (by format) drop JSON keys, swap accessor indices, NaN
    numbers, break text tokens."""
    kind = rng.integers(4)
    if kind == 0:
        cut = int(rng.integers(1, max(2, len(data))))
        return data[:cut], f"truncate at {cut}"
    if kind == 1:
        buf = bytearray(data)
        for i in rng.integers(0, len(buf), size=int(rng.integers(1, 9))):
            buf[i] ^= 1 << int(rng.integers(8))
        return bytes(buf), "flip bytes"
    try:
        if suffix == ".gltf":
            g = json.loads(data)
            what = _mutate_json(g, rng)
            return json.dumps(g).encode(), what
        if suffix == ".glb":
            g, rest = _glb_parts(data)
            what = _mutate_json(g, rng)
            return _glb_pack(g, rest), what
    except (ValueError, IndexError):
        pass
    text = data.decode("utf-8", "replace")
    tokens = text.split(" ")
    i = int(rng.integers(len(tokens)))
    tokens[i] = ["nan", "inf", "-1e300", "", "}", "abc", "999999999"][rng.integers(7)]
    return " ".join(tokens).encode(), f"token {i}"


def test_every_misspelled_attribute_type_is_one_line(tmp_path, capfd):
    """Every array type declared in the OpenUSD arm (``int[]``, ``point3f[]``, ``matrix4d[]``, ...) misspelled in
    turn: the attribute then reads as an ``UnregisteredValue``; ``info`` and ``check`` give one line and exit 2 (or
    read the file without it), never an internal error (the fuzz test found two such cases by chance)."""
    import re

    text = (ASSETS / "openusd" / "arm.usda").read_text()
    spots = [m.start() for m in re.finditer(r"\b[a-z][a-z0-9]*\[\]", text)]
    assert len(spots) >= 10
    for k, at in enumerate(spots):
        end = text.index("[]", at) + 2
        bad = tmp_path / f"arm{k}.usda"
        bad.write_text(text[:at] + "nan" + text[end:])
        label = f"{text[at:end]} at {at}"
        code, _, err = run_cli(["info", str(bad)], capfd)
        assert "Traceback" not in err and code in (0, 2), f"{label}: exit {code}\n{err}"
        if code == 2:
            lines = [ln for ln in err.splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), f"{label}:\n{err}"
        code, out, err = run_cli(["check", str(bad), "--json"], capfd)
        assert "Traceback" not in err and code in (0, 1, 2), f"check {label}: exit {code}\n{err}"
        assert json.loads(out)["files"], label
    # a relationship declared as an attribute: USD refuses it only when the skeleton binding is queried
    bad = tmp_path / "rel.usda"
    bad.write_text(text.replace("rel skel:animationSource", "nan skel:animationSource"))
    code, _, err = run_cli(["info", str(bad)], capfd)
    assert code == 2 and err.strip().count("\n") == 0 and "is not a relationship" in err, err


@pytest.mark.parametrize("renamed, code, phrase", [(("faceVertexCounts", "faceVertexIndices"), 0, "mesh has no faces"),
                                                    (("faceVertexCounts",), 2, "add up to 0 but there are 40")],
                         ids=["no-topology", "no-counts"])
def test_mesh_without_faces(tmp_path, capfd, renamed, code, phrase):
    """A mesh whose ``faceVertexCounts`` and ``faceVertexIndices`` are misspelled has points but no faces: ``info``
    names it and goes on with the skeleton (as for a skin without a mesh); with the indices still there it is one line
    and exit 2. ``check`` reads the file either way and the input is untouched. The fuzz test found this (case 4078 of
    seed 1234: an internal error in the fan triangulation of zero polygons)."""
    from usdposer.io.read_mesh import triangulate

    assert triangulate(np.zeros(0, np.int64), np.zeros(0, np.int64)).shape == (0, 3)
    text = (ASSETS / "openusd" / "arm.usda").read_text()
    for name in renamed:
        assert text.count(f"int[] {name} =") == 1
        text = text.replace(f"int[] {name} =", f"int[] {name.lower()} =")
    bad = tmp_path / "arm.usda"
    bad.write_text(text)
    before = bad.read_bytes()
    got, out, err = run_cli(["info", str(bad)], capfd)
    assert got == code, err
    if code == 0:
        assert f"/Model/Arm: {phrase}" in out and "Skeleton /Model/Skel: 3 joints" in out, out
    else:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], err
    got, out, err = run_cli(["check", str(bad), "--json", "--rules", "Readable,SkinBinding,NonFinite"], capfd)
    assert got in (0, 1, 2) and json.loads(out)["files"], err
    assert bad.read_bytes() == before


def test_fuzz_import_and_check(tmp_path, capfd, monkeypatch):
    rng = np.random.default_rng(1234)
    monkeypatch.chdir(tmp_path)
    deadline = time.perf_counter() + FUZZ_SECONDS
    ran = 0
    while time.perf_counter() < deadline or ran < 10:
        rel = FUZZ_SOURCES[ran % len(FUZZ_SOURCES)]
        src = ASSETS / rel
        data, what = mutate(src.read_bytes(), src.suffix, rng)
        case = tmp_path / f"case{ran}"
        case.mkdir()
        for sibling in src.parent.iterdir():  # buffers, skins, textures beside the asset
            if sibling.is_file() and sibling.name != src.name:
                shutil.copyfile(sibling, case / sibling.name)
        bad = case / src.name
        bad.write_bytes(data)
        label = f"{rel} ({what}), case {ran}"
        verb = ["import", str(bad), "-o", str(case / "out.usdc")] if src.suffix != ".usda" else ["info", str(bad)]
        code, _, err = run_cli(verb, capfd, seconds=60)
        assert "Traceback" not in err and code in (0, 2), f"{label}: exit {code}\n{err}"
        if code == 2:
            lines = [ln for ln in err.splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), f"{label}:\n{err}"
            assert not (case / "out.usdc").exists()
        code, out, err = run_cli(["check", str(bad), "--json", "--rules", "Readable,SkinBinding,NonFinite"], capfd,
                                 seconds=60)
        assert "Traceback" not in err and code in (0, 1, 2), f"check {label}: exit {code}\n{err}"
        assert json.loads(out)["files"], label
        ran += 1
    assert ran >= 10


# ------------------------------------------------------------------------------------------------------------------
# References resolve inside the asset's folder
# ------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ref, ok", [("bin/data.bin", True), ("data.bin", True), ("a/../data.bin", True),
                                     ("../secret.bin", False), ("%2e%2e/secret.bin", False), ("/etc/passwd", False),
                                     ("C:\\\\Windows\\\\x.bin", False), ("file:///etc/passwd", False),
                                     ("https://example.com/x.bin", False), ("link/secret.bin", False)])
def test_resolve_inside(tmp_path, ref, ok):
    from usdposer.errors import InputError
    from usdposer.io.paths import resolve_inside

    asset = tmp_path / "char" / "char.gltf"
    asset.parent.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"secret")
    (asset.parent / "link").symlink_to(tmp_path)  # a link inside the folder that leads out of it
    if ok:
        assert resolve_inside(asset, ref, "buffer").is_relative_to(asset.parent.resolve())
    else:
        with pytest.raises(InputError, match="buffer"):
            resolve_inside(asset, ref, "buffer")
