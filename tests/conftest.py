"""Shared fixtures: bundled and shared asset locations, a tiny in-memory UsdSkel stage, devices()."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WARP_CACHE_PATH", str(Path(__file__).resolve().parents[1] / ".cache" / "warp"))

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SHARED = ROOT.parent / "shared" / "data"
if not SHARED.exists() and os.environ.get("USDPOSER_SHARED_DATA"):
    SHARED = Path(os.environ["USDPOSER_SHARED_DATA"])


def shared_files(pattern: str) -> list[Path]:
    """Files of the shared data set, or a single marker that makes the sweep skip with a clear reason."""
    return sorted(SHARED.glob(pattern)) if SHARED.exists() else []


def require_shared():
    if not SHARED.exists():
        pytest.skip(f"shared data set not found at {SHARED}: the sweep over every shared asset did NOT run "
                    "(set USDPOSER_SHARED_DATA to run it)")


def devices() -> list[str]:
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def sweep_params(pattern: str):
    files = shared_files(pattern)
    if files:
        return [pytest.param(f, id=str(f.relative_to(SHARED))) for f in files]
    return [pytest.param(None, id="shared-data-missing")]


TINY_USDA = """#usda 1.0
(
    defaultPrim = "Char"
    metersPerUnit = 0.01
    upAxis = "Z"
    timeCodesPerSecond = 24
    startTimeCode = 1
    endTimeCode = 3
)
def SkelRoot "Char" (
    prepend apiSchemas = ["SkelBindingAPI"]
)
{
    def Skeleton "Skel" (
        prepend apiSchemas = ["SkelBindingAPI"]
    )
    {
        uniform token[] joints = ["A", "A/B", "A/B/C", "D", "D/E/F"]
        uniform matrix4d[] bindTransforms = [((1,0,0,0),(0,1,0,0),(0,0,1,0),(0,0,0,1)), ((1,0,0,0),(0,1,0,0),(0,0,1,0),(0,0,10,1)), ((1,0,0,0),(0,1,0,0),(0,0,1,0),(0,0,20,1)), ((1,0,0,0),(0,1,0,0),(0,0,1,0),(5,0,0,1)), ((1,0,0,0),(0,1,0,0),(0,0,1,0),(5,0,10,1))]
        uniform matrix4d[] restTransforms = [((1,0,0,0),(0,1,0,0),(0,0,1,0),(0,0,0,1)), ((1,0,0,0),(0,1,0,0),(0,0,1,0),(0,0,10,1)), ((1,0,0,0),(0,1,0,0),(0,0,1,0),(0,0,10,1)), ((1,0,0,0),(0,1,0,0),(0,0,1,0),(5,0,0,1)), ((1,0,0,0),(0,1,0,0),(0,0,1,0),(5,0,10,1))]
        rel skel:animationSource = </Char/Skel/Anim>
        def SkelAnimation "Anim"
        {
            uniform token[] joints = ["A", "A/B", "D", "D/E/F"]
            float3[] translations = [(0, 0, 0), (0, 0, 10), (5, 0, 0), (5, 0, 10)]
            quatf[] rotations.timeSamples = {
                1: [(1, 0, 0, 0), (1, 0, 0, 0), (1, 0, 0, 0), (1, 0, 0, 0)],
                3: [(0.9238795, 0.3826834, 0, 0), (0.7071068, 0, 0.7071068, 0), (0.9659258, 0, 0, 0.258819), (1, 0, 0, 0)],
            }
            half3[] scales = [(1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)]
        }
    }
    def Scope "Geo"
    {
        def Mesh "Body" (
            prepend apiSchemas = ["SkelBindingAPI"]
        )
        {
            int[] faceVertexCounts = [4, 3]
            int[] faceVertexIndices = [0, 1, 2, 3, 2, 4, 5]
            point3f[] points = [(1, 0, 0), (-1, 0, 0), (-1, 0, 15), (1, 0, 15), (1, 0, 22), (5, 1, 5)]
            int[] primvars:skel:jointIndices = [0, 1, 0, 1, 1, 2, 1, 2, 2, 0, 3, 4] (
                elementSize = 2
                interpolation = "vertex"
            )
            float[] primvars:skel:jointWeights = [1, 0, 1, 0, 0.5, 0.5, 0.5, 0.5, 1, 0, 0.25, 0.75] (
                elementSize = 2
                interpolation = "vertex"
            )
            rel skel:skeleton = </Char/Skel>
        }
    }
}
"""


@pytest.fixture
def tiny_usda(tmp_path) -> Path:
    """A 5-joint Z-up centimetre stage (joints A, A/B, A/B/C, D, D/E/F, with D/E absent), whose animation omits
    A/B/C, with one two-influence mesh."""
    path = tmp_path / "tiny.usda"
    path.write_text(TINY_USDA)
    return path


TINY_SOURCES = ("khronos/Fox.glb", "quaternius/Trex.glb", "cmu/cmu_walk.bvh", "mujoco/rodent/rodent.xml")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A dataset of the bundled assets (T-rex held out), a tiny checkpoint trained on it in seconds, and the Fox
    imported to USD: ``{"root", "manifest", "result", "fox"}``."""
    import subprocess
    import sys

    from usdposer.pipelines.dataset import DatasetOptions, build
    from usdposer.pipelines.train import TrainOptions, train

    root = tmp_path_factory.mktemp("pose_space")
    manifest = build([str(ASSETS / s) for s in TINY_SOURCES], root / "data",
                     DatasetOptions(holdout=("Trex",), val=("cmu_walk",))).manifest
    result = train(root / "data", root / "ckpt", TrainOptions(steps=150, batch_size=64, width=32, depth=2, heads=2,
                                                               val_every=50, lr=1e-3, seed=0))
    fox = root / "fox.usdc"
    subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "import", str(ASSETS / "khronos" / "Fox.glb"),
                    "-o", str(fox)], check=True, capture_output=True)
    return {"root": root, "manifest": manifest, "result": result, "fox": fox}


@pytest.fixture(scope="session")
def fox_usdc(tmp_path_factory) -> Path:
    """The bundled Fox imported to USD once per session. Read-only: tests write their outputs elsewhere."""
    from usdposer.io.importers import import_any

    path = tmp_path_factory.mktemp("fox") / "fox.usdc"
    import_any(ASSETS / "khronos" / "Fox.glb", path)
    return path


def subset_copy(src, out, *, red: bool) -> None:
    """``src`` with its mesh's triangles split into two ``materialBind`` GeomSubsets (the front and back halves of its
    faces, as Maya and Blender write per-face materials): the first bound to the mesh's own material, the second to it
    too or (``red``) to a constant red UsdPreviewSurface."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, Vt

    stage = Usd.Stage.Open(str(src))
    stage.Export(str(out))
    stage = Usd.Stage.Open(str(out))
    prim = next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
    own, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
    other = own
    if red:
        looks = stage.GetDefaultPrim().GetPath().AppendPath("Looks/Red")
        other = UsdShade.Material.Define(stage, looks)
        shader = UsdShade.Shader.Define(stage, looks.AppendChild("PreviewSurface"))
        shader.CreateIdAttr("UsdPreviewSurface")
        shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(1.0, 0.0, 0.0))
        other.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
    n = len(UsdGeom.Mesh(prim).GetFaceVertexCountsAttr().Get())
    api = UsdShade.MaterialBindingAPI.Apply(prim)
    for name, faces, material in (("front", range(n // 2), own), ("back", range(n // 2, n), other)):
        subset = api.CreateMaterialBindSubset(name, Vt.IntArray(list(faces)), UsdGeom.Tokens.face)
        UsdShade.MaterialBindingAPI.Apply(subset.GetPrim()).Bind(material)
    stage.GetRootLayer().Save()


def interrupt_when(cmd: list[str], marker: Path, timeout: float = 300) -> tuple[int, list[str]]:
    """Run ``cmd``, press Ctrl-C (SIGINT) once ``marker`` exists, and return its exit code and non-blank stderr
    lines. The child takes SIGINT as a terminal would give it, even where the tests run as a background job (which
    ignores SIGINT, and a child inherits that)."""
    import signal
    import subprocess
    import time

    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + timeout
    while not marker.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    return p.returncode, [ln for ln in err.splitlines() if ln.strip()]
