"""glTF import: OpenUSD's skinning of the imported stage equals an independent glTF reference skinning.

For every .glb/.gltf of the shared data set (and the bundled ones), every clip, at its first key, a time between
two keys near the middle, and its last key: max |USD - reference| < 1e-4 x the diagonal of the character's reference
bounding box (all meshes of the skeleton at that time). Each mesh primitive is also held to 1e-4 of its own, much
smaller, diagonal, with one measured exception (HALF_SCALE_TOL).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ASSETS, require_shared, sweep_params
from gltf_reference import Reference
from pxr import Sdf, Usd, UsdSkel
from usd_golden import usd_joint_and_points

from usdposer.io.gltf_import import import_gltf
from usdposer.io.write_skel import CLIP_VARIANT_SET

TOL = 1e-4
# UsdSkel stores joint scales as half3 (11-bit mantissa: up to 4.9e-4 relative rounding). Enemy_2Legs animates its
# Eye joint's scale (a blink squash to 1.026 / 0.058); the rounding alone moves the eye's 26 vertices by up to 9.2e-4
# of the eye primitive's own diagonal (9.4e-6 of the character's) in OpenUSD's own skinning, whatever the importer
# does. That per-primitive bound is the only one loosened.
HALF_SCALE_TOL = {"Enemy_2Legs.glb": 1e-3}
BUNDLED = sorted(ASSETS.glob("khronos/*.gl*")) + sorted(ASSETS.glob("quaternius/*.glb"))


def check_import(src, tmp_path, fps: float | None = None) -> tuple[float, float]:
    """Worst error over every skeleton, clip, time and mesh primitive of one file, relative to the character's
    bounding-box diagonal (all of its skeleton's meshes) and relative to each primitive's own diagonal.

    Keyframe-sampled clips are also compared between two keys (USD's interpolation must equal glTF's); clips
    resampled with ``fps`` only at their samples (resampling changes the curve between samples by design).
    """
    out = tmp_path / (src.stem + ".usdc")
    report = import_gltf(src, out, fps=fps)
    ref = Reference(str(src))
    stage = Usd.Stage.Open(str(out))
    tcps = stage.GetTimeCodesPerSecond()
    anim_index = {a.name or f"animation_{i}": i for i, a in enumerate(ref.g.animations or [])}
    worst, worst_prim, compared = 0.0, 0.0, 0
    for skel_info in report.skeletons:
        skel = stage.GetPrimAtPath(skel_info["prim"])
        clips = [c for c in report.clips if c["skeleton"] == skel_info["prim"]]
        vset = skel.GetVariantSets().GetVariantSet(CLIP_VARIANT_SET)
        for clip in clips:
            # bind this clip the way a user would: select its variant (in the session layer)
            with Usd.EditContext(stage, stage.GetSessionLayer()):
                vset.SetVariantSelection(Sdf.Path(clip["prim"]).name)
            anim = UsdSkel.Animation(stage.GetPrimAtPath(clip["prim"]))
            codes = sorted(anim.GetRotationsAttr().GetTimeSamples())
            mid = len(codes) // 2
            times = [codes[0], codes[mid], codes[-1]]
            if fps is None and len(codes) > 1:
                times.append(0.5 * (codes[mid - 1] + codes[mid]))
            _, usd_points = usd_joint_and_points(stage, skel_info["prim"], times)
            for k, tc in enumerate(times):
                got, want = [], []
                for mesh_path, pts in usd_points.items():
                    prim = stage.GetPrimAtPath(mesh_path)
                    node, prim_index = prim.GetCustomDataByKey("gltf:node"), prim.GetCustomDataByKey("gltf:primitive")
                    expected = ref.skinned(node, prim_index, anim_index[clip["name"]], tc / tcps)
                    ok = np.isfinite(expected).all(1)  # the file's own NaN weights make NaN reference points
                    assert np.isfinite(pts[k]).all()
                    got.append(pts[k][ok])
                    want.append(expected[ok])
                    diag = np.linalg.norm(expected[ok].max(0) - expected[ok].min(0))
                    worst_prim = max(worst_prim, float(np.abs(pts[k][ok] - expected[ok]).max() / diag))
                    compared += 1
                want_all = np.concatenate(want)
                diag = np.linalg.norm(want_all.max(0) - want_all.min(0))
                worst = max(worst, float(np.abs(np.concatenate(got) - want_all).max() / diag))
    assert compared > 0
    return worst, worst_prim


@pytest.mark.parametrize("src", BUNDLED, ids=[p.name for p in BUNDLED])
def test_bundled_gltf_skinning_matches_reference(src, tmp_path):
    character, primitive = check_import(src, tmp_path)
    assert character < TOL and primitive < TOL


@pytest.mark.slow
@pytest.mark.parametrize("src", sweep_params("**/*.gl[bt]*"))
def test_every_shared_gltf_imports_and_matches_reference(src, tmp_path, record_property):
    if src is None:
        require_shared()
    character, primitive = check_import(src, tmp_path)
    record_property("relative_error", character)
    record_property("relative_error_per_primitive", primitive)
    print(f"{src.name}: worst error {character:.2e} of the character's diagonal, {primitive:.2e} of a primitive's")
    assert character < TOL
    assert primitive < HALF_SCALE_TOL.get(src.name, TOL)


def test_import_structure_fox(tmp_path):
    out = tmp_path / "fox.usda"
    report = import_gltf(ASSETS / "khronos" / "Fox.glb", out)
    stage = Usd.Stage.Open(str(out))
    from pxr import UsdGeom

    assert UsdGeom.GetStageUpAxis(stage) == "Y" and UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetDefaultPrim().GetPath() == Sdf.Path("/Fox")
    skel = UsdSkel.Skeleton(stage.GetPrimAtPath("/Fox/Skel"))
    joints = list(skel.GetJointsAttr().Get())
    assert len(joints) == 24 and UsdSkel.Topology(joints).Validate()[0]
    # all three clips are SkelAnimations; one is bound; the variant set can select each
    assert [c["name"] for c in report.clips] == ["Survey", "Walk", "Run"]
    bound = UsdSkel.BindingAPI(skel.GetPrim()).GetAnimationSourceRel().GetTargets()
    assert bound == [Sdf.Path("/Fox/Skel/Survey")]
    vset = skel.GetPrim().GetVariantSets().GetVariantSet(CLIP_VARIANT_SET)
    assert vset.GetVariantNames() == ["Run", "Survey", "Walk"]
    vset.SetVariantSelection("Walk")
    assert UsdSkel.BindingAPI(skel.GetPrim()).GetAnimationSourceRel().GetTargets() == [Sdf.Path("/Fox/Skel/Walk")]
    # mesh: UVs, material with the base-colour texture written beside the output
    mesh = stage.GetPrimAtPath("/Fox/Geo/fox")
    assert UsdGeom.PrimvarsAPI(mesh).GetPrimvar("st").HasValue()
    assert (tmp_path / "fox_textures").is_dir() and report.textures
    assert stage.GetRootLayer().customLayerData["usdposer"]["verb"] == "import"


def test_unnamed_joints_get_unique_names(tmp_path):
    out = tmp_path / "cesium.usdc"
    import_gltf(ASSETS / "khronos" / "CesiumMan.glb", out)
    stage = Usd.Stage.Open(str(out))
    joints = list(UsdSkel.Skeleton(stage.GetPrimAtPath("/CesiumMan/Skel")).GetJointsAttr().Get())
    leaves = [j.rsplit("/", 1)[-1] for j in joints]
    assert len(set(leaves)) == len(leaves) == 19


def test_resample_fps(tmp_path):
    out = tmp_path / "fox30.usdc"
    report = import_gltf(ASSETS / "khronos" / "Fox.glb", out, fps=30, bind_clip="Walk")
    stage = Usd.Stage.Open(str(out))
    assert stage.GetTimeCodesPerSecond() == 30
    walk = [c for c in report.clips if c["name"] == "Walk"][0]
    on_grid = int(np.floor(walk["seconds"] * 30 + 1e-6)) + 1
    assert walk["frames"] in (on_grid, on_grid + 1)  # + the last key when it falls between grid points
    skel = stage.GetPrimAtPath("/Fox/Skel")
    assert UsdSkel.BindingAPI(skel).GetAnimationSourceRel().GetTargets() == [Sdf.Path("/Fox/Skel/Walk")]
    # resampled clips still match the reference at their (now uniform) samples and between them
    assert max(check_import(ASSETS / "khronos" / "Fox.glb", tmp_path, fps=30)) < TOL
