"""Writing clips and pose sets as layers over an asset, and reading them back."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from conftest import ASSETS
from pxr import Sdf, Usd, UsdGeom, UsdSkel

from usdposer.core.rotations import axis_angle_to_quat, quat_angle, quat_multiply
from usdposer.io.gltf_import import import_gltf
from usdposer.io.read_skel import read_asset
from usdposer.io.read_skel import read_stage as read_asset_stage
from usdposer.io.write_skel import define_pose_library, provenance, read_pose_library, write_clip_layer
from usdposer.types import Clip, Pose


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bent_clip(rig, frames: int = 5) -> Clip:
    """The rest pose with every joint bent progressively about a different axis, root moved along +X."""
    base = Pose.rest(rig, frames)
    J = rig.num_joints
    angles = torch.linspace(0, 0.6, frames, dtype=torch.float64)[:, None, None] * torch.eye(3, dtype=torch.float64)[torch.arange(J) % 3]
    q = quat_multiply(base.rotations, axis_angle_to_quat(angles))
    t = base.translations.clone()
    for r in rig.roots:
        t[:, r, 0] += torch.linspace(0, 0.5, frames, dtype=torch.float64)
    return Clip(q, t, base.scales, time_codes=torch.arange(frames, dtype=torch.float64) + 1, name="bend",
                time_codes_per_second=24.0)


@pytest.mark.parametrize("suffix", [".usdc", ".usda"])
def test_clip_layer_round_trip_units_and_axis(tiny_usda, tmp_path, suffix):
    before = digest(tiny_usda)
    asset = read_asset(tiny_usda)
    rig = asset.rigs[0]
    clip = bent_clip(rig)
    out = write_clip_layer(tiny_usda, tmp_path / f"take{suffix}", rig, [clip, asset.clips[rig.skeleton_path][0]],
                           prov=provenance("test", ["a", "b c"], seed=7))
    assert digest(tiny_usda) == before  # the input is never modified
    assert not list(tmp_path.glob(".take*"))  # no temporary file left behind
    layer = Sdf.Layer.FindOrOpen(str(out))
    assert layer.subLayerPaths == ["./tiny.usda"]
    meta = layer.customLayerData["usdposer"]
    assert meta["verb"] == "test" and meta["seed"] == 7 and meta["arguments"] == "a 'b c'"
    stage = Usd.Stage.Open(str(out))
    assert UsdGeom.GetStageUpAxis(stage) == "Z" and UsdGeom.GetStageMetersPerUnit(stage) == 0.01
    # read back: the written clip is now the bound one, equal to what we wrote (float32 in the file)
    back = read_asset(out)
    rig2 = back.rigs[0]
    got = back.clips[rig2.skeleton_path][0]
    assert got.path == f"{rig.skeleton_path}/bend" and back.bound[rig2.skeleton_path] == got.path
    assert torch.allclose(got.translations, clip.translations, atol=1e-6)
    assert (quat_angle(got.rotations, clip.rotations) < 1e-5).all()
    assert torch.equal(got.time_codes, clip.time_codes)
    # both clips are listed; rebinding the other one is one edit of the relationship
    skel = stage.GetPrimAtPath(rig.skeleton_path)
    clips = list(skel.GetCustomDataByKey("usdposer:clips"))
    assert clips == [f"{rig.skeleton_path}/bend", f"{rig.skeleton_path}/Anim"]
    UsdSkel.BindingAPI(skel).GetAnimationSourceRel().SetTargets([Sdf.Path(clips[1])])
    assert read_asset_stage(stage).bound[rig.skeleton_path] == clips[1]


def test_layer_over_imported_asset_is_seen_by_usdskel(tmp_path):
    """A clip written over an imported Fox moves the skinned points the way OpenUSD computes them."""
    from usd_golden import to_stage_points, usd_joint_and_points

    from usdposer.core.posing import skin

    src = tmp_path / "fox.usdc"
    import_gltf(ASSETS / "khronos" / "Fox.glb", src)
    rig = read_asset(src).rigs[0]
    clip = bent_clip(rig, 3)
    out = write_clip_layer(src, tmp_path / "fox_bend.usdc", rig, [clip], prov=provenance("test", []))
    stage = Usd.Stage.Open(str(out))
    _, ref = usd_joint_and_points(stage, rig.skeleton_path, clip.time_codes.tolist(), raw=True)
    ours = to_stage_points(stage, skin(rig, clip, backend="torch")[0].numpy())
    r = ref[rig.meshes[0].path]
    assert np.abs(ours - r).max() / np.linalg.norm(r.reshape(-1, 3).max(0) - r.reshape(-1, 3).min(0)) < 1e-5


def test_pose_library_round_trip(tiny_usda, tmp_path):
    rig = read_asset(tiny_usda).rigs[0]
    pose = bent_clip(rig, 4).pose()
    latents = np.random.default_rng(0).normal(size=(4, 30)).astype(np.float32)
    stage = Usd.Stage.CreateNew(str(tmp_path / "lib.usda"))
    prim = define_pose_library(stage, "/Lib", rig, pose, latents=latents, time_codes=[0, 1, 2, 3])
    assert prim.IsA(Usd.Typed) and prim.GetTypeName() == "PoseSampleLibrary"
    back, lat = read_pose_library(prim, rig)
    assert np.allclose(lat, latents)
    assert (quat_angle(back.rotations, pose.rotations) < 1e-5).all()
    assert torch.allclose(back.translations, pose.translations, atol=1e-6)


@pytest.mark.parametrize("attr, value, words", [
    ("numSamples", 10 ** 9, "numSamples 1000000000"), ("numSamples", 0, "numSamples 0"),
    ("rotations", "short", "with 10 rotations"), ("translations", "nan", "translations holds NaN"),
    ("rotations", "nan", "rotations holds NaN"), ("latents", "nan", "latents holds NaN"),
    ("latents", "short", "10 latent values for 4 samples"), ("joints", "short", "its joints (2)"),
    ("latents", "text", "latents is not an array of numbers"), ("numSamples", "text", "numSamples 'x'"),
])
def test_a_pose_library_that_does_not_hold_what_it_says_is_one_clear_error(tiny_usda, tmp_path, attr, value, words):
    """``ik --from sample:I`` and ``interpolate`` read a sample layer's library: counts that disagree, NaN, values of
    another type or another skeleton's joints are an InputError naming the attribute (a short array, a huge or zero
    count and text were internal errors; NaN latents were interpolated)."""
    import re

    from usdposer.errors import InputError

    rig = read_asset(tiny_usda).rigs[0]
    stage = Usd.Stage.CreateNew(str(tmp_path / "lib.usda"))
    latents = np.random.default_rng(0).normal(size=(4, 30)).astype(np.float32)
    prim = define_pose_library(stage, "/Lib", rig, bent_clip(rig, 4).pose(), latents=latents)
    a = prim.GetAttribute(attr)
    v = a.Get()
    if value == "text":  # a hand-edited file: the schema's attribute written with another type
        stage.GetRootLayer().Save()
        path = tmp_path / "lib.usda"
        text, n = re.subn(rf"(float\[\]|int) {attr} = [^\n]*", f'string {attr} = "x"', path.read_text())
        assert n == 1
        (tmp_path / "edited.usda").write_text(text)
        stage = Usd.Stage.Open(str(tmp_path / "edited.usda"))
        prim = stage.GetPrimAtPath("/Lib")
    elif value == "short":
        a.Set(type(v)(list(v)[: 2 if attr == "joints" else 10]))
    elif value == "nan":
        arr = np.array(v, dtype=np.float32)
        arr.reshape(-1)[1] = np.nan
        a.Set(type(v).FromNumpy(arr))
    else:
        a.Set(value)
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        read_pose_library(prim, rig)


def test_refuses_to_overwrite_input(tiny_usda):
    from usdposer.errors import InputError

    rig = read_asset(tiny_usda).rigs[0]
    with pytest.raises(InputError, match="refusing to overwrite the input"):
        write_clip_layer(tiny_usda, tiny_usda.with_suffix(".usda"), rig, [bent_clip(rig)], prov={})


def test_reader_collects_clips_and_converts_rest(tiny_usda):
    asset = read_asset(tiny_usda)
    rig = asset.rigs[0]
    clip = asset.clips[rig.skeleton_path][0]
    assert len(clip) == 2 and clip.time_codes.tolist() == [1.0, 3.0]
    # A/B/C is not animated: it keeps its rest translation, 10 cm -> 0.1 m (non-root locals are only rescaled; the
    # Z-up -> Y-up rotation applies at the roots)
    assert torch.allclose(clip.translations[:, 2], torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64))
    # the root A was rotated 45 degrees about stage X at frame 3
    assert math.isclose(float(quat_angle(clip.rotations[1, 0], clip.rotations[0, 0])), math.pi / 4, rel_tol=1e-6)


def test_a_skeleton_without_rest_transforms_reads_with_its_bind_pose_as_rest(fox_usdc, tmp_path):
    """UsdSkel needs restTransforms only for joints no animation drives, so an exporter may leave them out: such a
    Skeleton is read with its bind pose as the rest pose and a warning (it used to be refused). The Fox rests at its
    bind pose, so without restTransforms it is the same rig, and its clips pose the joints where OpenUSD's UsdSkel
    queries put them."""
    from usd_golden import usd_joint_and_points

    from usdposer.core.posing import joint_transforms

    stage = Usd.Stage.Open(str(fox_usdc))
    flat = stage.Flatten()
    spec = flat.GetPrimAtPath("/Fox/Skel")
    spec.RemoveProperty(spec.properties["restTransforms"])
    bare = tmp_path / "norest.usda"
    flat.Export(str(bare))
    whole, cut = read_asset(fox_usdc), read_asset(bare)
    assert any(p.kind == "missing-rest-transforms" and p.severity == "warning" for p in cut.problems)
    a, b = whole.rig(), cut.rig()
    assert torch.allclose(b.rest_local, a.rest_local, atol=1e-4) and torch.allclose(b.bind_world, a.bind_world)
    clip = cut.clip(b)  # the bound clip, which UsdSkel poses
    X = joint_transforms(b, clip.pose()).numpy()  # (T, J, 4, 4) metres, +Y up
    ref, _ = usd_joint_and_points(Usd.Stage.Open(str(bare)), "/Fox/Skel", clip.time_codes.tolist())
    height = float(np.ptp(a.bind_world[:, 1, 3].numpy()))
    np.testing.assert_allclose(X[..., :3, 3], ref[..., :3, 3], atol=1e-5 * height)
