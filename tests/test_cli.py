"""The CLI: light --help, every documented example runs, --json is parseable, exit codes mean something."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ASSETS, ROOT
from usdposer.commands import VERBS

HEAVY = ("torch", "warp", "newton", "diffusers", "gsplat", "pxr")


def run(*args, cwd=None, check=None):
    proc = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", *args], capture_output=True, text=True,
                          cwd=cwd, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


def test_help_imports_no_heavy_module():
    code = ("import sys\nfrom usdposer.commands import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help_with_examples(verb):
    out = run(verb, "--help", check=0)
    assert "Examples:" in out.stdout


def examples(verb: str) -> list[str]:
    """The ``usdposer ...`` lines of a verb's --help epilog, continuation lines (ending in a backslash) joined."""
    import click
    from usdposer.commands import cli

    cmd = cli.get_command(click.Context(cli), verb)
    out, pending = [], None
    for ln in (cmd.epilog or "").splitlines():
        ln = ln.strip()
        if pending is not None:
            pending += " " + ln
        elif ln.startswith("usdposer "):
            pending = ln
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
        else:
            out.append(pending)
            pending = None
    return out


# dependency order: import writes what the others read; train needs a dataset; render a sample and a path; track a
# distilled clip. Every verb is here (test_the_examples_cover_every_verb).
EXAMPLE_ORDER = ["import", "info", "dataset", "train", "sample", "eval", "invert", "interpolate", "ik", "skin", "rig",
                 "generate", "fit", "harvest", "limits", "check", "batch", "render", "distill", "track"]


def test_the_examples_cover_every_verb():
    assert sorted(EXAMPLE_ORDER) == sorted(VERBS)
    assert all(examples(v) for v in VERBS)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder holding the inputs the examples name: the bundled assets under assets/, a glTF character, the Horse."""
    import shutil

    d = tmp_path_factory.mktemp("examples")
    shutil.copytree(ASSETS, d / "assets")
    shutil.copy(ASSETS / "khronos" / "SimpleSkin.gltf", d / "character.gltf")
    shutil.copy(ASSETS / "quaternius" / "Horse.glb", d / "Horse.glb")
    return d


def _inputs_for(verb: str, d: Path) -> None:
    """Inputs a verb's examples name that no earlier example writes (made from the Fox the import example wrote)."""
    import shutil

    if verb == "skin":  # a scan: the Horse's meshes and skeleton (IK targets, pole targets) without skin weights
        from pxr import Sdf

        layer = Sdf.Layer.FindOrOpen(str(d / "horse.usdc"))
        layer.Export(str(d / "scan.usdc"))
        layer = Sdf.Layer.FindOrOpen(str(d / "scan.usdc"))
        skinned = []
        layer.Traverse(Sdf.Path.absoluteRootPath,
                       lambda p: skinned.append(p) if p.IsPropertyPath() and p.name == "primvars:skel:jointWeights" else 0)
        assert skinned
        for prop in skinned:
            spec = layer.GetPrimAtPath(prop.GetPrimPath())
            for name in ("primvars:skel:jointIndices", "primvars:skel:jointWeights"):
                spec.RemoveProperty(spec.properties[name])
        layer.Save()
    elif verb == "rig":  # a bare mesh: the Horse's skin at rest, its skeleton dropped, as PLY
        import trimesh

        from usdposer.io.bare_mesh import read_bare

        P, F = read_bare(d / "Horse.glb").combined()
        trimesh.Trimesh(P, F, process=False).export(d / "horse_bare.ply")
    elif verb == "fit":  # the Fox's walk as a point-cloud capture (USD), a folder of PLY scans and a .npy array
        import numpy as np
        import trimesh
        from pxr import Usd, UsdGeom, Vt

        from usdposer.core.posing import skin
        from usdposer.io.read_skel import read_asset

        asset = read_asset(d / "fox.usdc")
        rig = asset.rig()
        clip = asset.clip(rig, "Walk")
        V = skin(rig, clip.pose())[0][:12].numpy()  # (T, V, 3) metres, +Y up: the Fox file's own units
        stage = Usd.Stage.CreateNew(str(d / "capture.usdc"))
        UsdGeom.SetStageUpAxis(stage, "Y")
        UsdGeom.SetStageMetersPerUnit(stage, 1.0)
        pts = UsdGeom.Points.Define(stage, "/Capture")
        (d / "scans").mkdir()
        for t, frame in enumerate(V):
            pts.GetPointsAttr().Set(Vt.Vec3fArray.FromNumpy(frame.astype(np.float32)), float(t))
            trimesh.PointCloud(frame).export(d / "scans" / f"frame_{t:03d}.ply")
        stage.GetRootLayer().Save()
        np.save(d / "points.npy", V)
    elif verb == "dataset":  # a distilled layer for the filters example (tiny prior, one iteration)
        r = run("distill", "fox.usdc", "--prompt", "a fox running", "--iterations", "1", "--frames", "5", "--size",
                "32x32", "--gaussians", "200", "-o", "fox.distill.usdc", "-q", cwd=d)
        assert r.returncode == 0, r.stderr[-2000:]
    elif verb == "batch":  # the job the examples name: the bundled Khronos glTFs through import, check, sample
        (d / "job.toml").write_text('[inputs]\npaths = ["assets/khronos/*.glb"]\n[output]\nfolder = "batch-out"\n'
                                    '[[steps]]\nverb = "import"\n[[steps]]\nverb = "check"\n[[steps]]\n'
                                    'verb = "sample"\noptions = { n = 4, steps = 10 }\n')
    elif verb == "harvest":  # the motions file the examples name
        (d / "motions.txt").write_text("running\njumping\n")
    elif verb == "limits":  # the datasets the examples name
        for name in ("default", "mine"):
            shutil.copytree(d / "data" / "poses", d / "data" / name)
    elif verb == "check":  # shots of a production, and the dm_control dog
        from usdposer.io.importers import import_any

        (d / "shots" / "sq010").mkdir(parents=True)
        shutil.copy(d / "walk.usdc", d / "shots" / "sq010" / "walk.usdc")
        import_any(d / "assets" / "mujoco" / "dog" / "dog.xml", d / "dog.usdc")


def _missing_resource(args: list[str]) -> str | None:
    """What an example needs that this machine lacks: a CUDA device, or released model weights at an absolute path."""
    import torch

    if "--device" in args and args[args.index("--device") + 1].startswith("cuda") and not torch.cuda.is_available():
        return "CUDA device"
    if "--model" in args and args[args.index("--model") + 1].startswith("/") and \
            not Path(args[args.index("--model") + 1]).exists():
        return "no such folder"
    return None


@pytest.mark.parametrize("verb", EXAMPLE_ORDER)
def test_documented_examples_run(scratch, verb):
    """Every example in every verb's --help epilog runs, as written, on the bundled assets (in EXAMPLE_ORDER, each
    verb's examples reading what earlier ones wrote). Exit 0, or 0/1 for check (1 = a finding). An example that needs
    what this machine lacks must fail with one line naming it: exit 3 for a GPU (a missing device), 2 for released
    weights at a path that is not there."""
    _inputs_for(verb, scratch)
    for ex in examples(verb):
        args = shlex.split(ex, comments=True)[1:]
        out = run(*args, cwd=scratch)
        missing = _missing_resource(args)
        if missing:
            lines = out.stderr.strip().splitlines()
            code = 3 if missing == "CUDA device" else 2
            assert out.returncode == code and len(lines) == 1 and missing in lines[0], (ex, out.stderr[-2000:])
            continue
        assert out.returncode in ((0, 1) if args[0] == "check" else (0,)), (ex, out.stdout[-1000:], out.stderr[-3000:])
        assert "Traceback" not in out.stderr, (ex, out.stderr[-3000:])
        if "--json" in args:
            json.loads(out.stdout)


def test_import_and_info_json(tmp_path):
    out = tmp_path / "fox.usdc"
    res = json.loads(run("import", str(ASSETS / "khronos" / "Fox.glb"), "-o", str(out), "--json", check=0).stdout)
    assert res["output"] == str(out) and len(res["clips"]) == 3
    info = json.loads(run("info", str(out), "--json", check=0).stdout)
    sk = info["skeletons"][0]
    assert sk["joints"] == 24 and len(sk["clips"]) == 3 and sk["meshes"][0]["influences"] == 4
    assert info["up_axis"] == "Y" and info["meters_per_unit"] == 1.0
    assert sum(c["bound"] for c in sk["clips"]) == 1


def test_usage_error_exit_2():
    assert run("import").returncode == 2
    assert run("no-such-verb").returncode == 2


def test_console_script_installed():
    exe = Path(sys.executable).parent / "usdposer"
    assert exe.exists()
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and re.search(r"\d+\.\d+\.\d+", out.stdout)


def test_commands_and_models_install_under_usdposer():
    import importlib.util

    assert importlib.util.find_spec("usdposer.commands") is not None
    assert importlib.util.find_spec("usdposer.models") is not None
    # never as top-level packages
    code = "import importlib.util as u; print(u.find_spec('commands'), u.find_spec('models'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "None None"


def test_pyproject_lists_every_package():
    """A non-editable install ships only the packages pyproject names: every folder of usdposer/ with an
    __init__.py must be listed (usdposer.render and usdposer.validate were once missing)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "usdposer").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"


def test_ruff_clean():
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    out = subprocess.run([str(ruff), "check", "."], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:]
