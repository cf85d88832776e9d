"""Pictures (Step 8): the z-buffer rasteriser (nearest surface wins, perspective-correct depth, exact coverage), the
Fox rendered (not blank, its silhouette on the projected skinned mesh, colours from its texture), a golden image of
a small asset, limit flags, and `usdposer render` in every mode, `check --preview`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ASSETS, ROOT, subset_copy

CLI = [sys.executable, "-m", "usdposer.commands._entry"]
GOLDEN = ROOT / "tests" / "data" / "golden_cesiumman_96.png"


@pytest.fixture(scope="module")
def fox(fox_usdc):
    from usdposer.io.read_skel import read_asset

    asset = read_asset(fox_usdc)
    return fox_usdc.parent, asset, asset.rig().to(torch.float64)


def test_rasteriser_depth_order_coverage_and_perspective_depth():
    """Two squares facing a camera: the nearer covers the farther where they overlap, each pixel's depth is the
    square's plane depth (perspective-correct), and the pixel count matches the projected area."""
    from usdposer.render.raster import rasterize
    from usdposer.render.splat import look_at

    cam = look_at(torch.tensor([0.0, 0.0, 5.0]), torch.tensor([0.0, 0.0, 0.0]), 64, 64, fov_deg=40.0)

    def square(cx, cy, z, s):
        v = torch.tensor([[cx - s, cy - s, z], [cx + s, cy - s, z], [cx + s, cy + s, z], [cx - s, cy + s, z]],
                         dtype=torch.float64)
        return v, torch.tensor([[0, 1, 2], [0, 2, 3]])

    far_v, far_f = square(0.0, 0.0, 0.0, 1.0)  # 5 m away
    near_v, near_f = square(0.5, 0.5, 1.0, 0.5)  # 4 m away
    V = torch.cat([far_v, near_v])
    F = torch.cat([far_f, near_f + 4])
    frag = rasterize(V, F, cam)
    near = frag.face >= 2
    far = (frag.face >= 0) & (frag.face < 2)
    assert near.any() and far.any()
    assert torch.allclose(frag.depth[near], torch.full_like(frag.depth[near], 4.0), atol=1e-4)
    assert torch.allclose(frag.depth[far], torch.full_like(frag.depth[far], 5.0), atol=1e-4)
    f = float(cam.K[0, 0])
    a_far, a_near = 2 * f / 5.0, f / 4.0  # projected sides: far [-1, 1] at 5 m, near [0, 1] at 4 m (from the centre)
    overlap = min(a_far / 2, a_near)
    want = a_far**2 + a_near**2 - overlap**2  # the union of the two projected squares, in pixels
    assert abs(int((near | far).sum()) - want) < 2 * (a_far + a_near)  # within a pixel ring of the edges
    assert int(near.sum()) == pytest.approx(a_near**2, abs=2 * a_near)


def _fox_pose(asset, rig, frame=5):
    from usdposer.types import Pose

    clip = asset.clip(rig, "Walk")
    return Pose(clip.rotations[frame:frame + 1].double(), clip.translations[frame:frame + 1].double(),
                clip.scales[frame:frame + 1].double())


def test_fox_render_silhouette_and_texture(fox):
    from usdposer.core.posing import skin
    from usdposer.render.cameras import cameras
    from usdposer.render.raster import Style, project, render_pose

    _, asset, rig = fox
    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 160, 128)[0]
    bare = Style(ground=False, skeleton=False)
    img = render_pose(rig, pose, [cam], style=bare)[0].astype(np.float64)
    bg = np.array(bare.background) ** (1 / 2.2) * 255
    mask = np.abs(img - bg).sum(-1) > 6
    assert 0.05 < mask.mean() < 0.9  # not blank, not all character
    ys, xs = np.nonzero(mask)
    S = rig.skel_to_world
    pts = torch.cat([p[0] @ S[:3, :3].T + S[:3, 3] for p in skin(rig, pose, backend="torch")])
    uv = project(pts, cam).numpy()
    for got, want in ((xs.min(), uv[:, 0].min()), (xs.max(), uv[:, 0].max()), (ys.min(), uv[:, 1].min()),
                      (ys.max(), uv[:, 1].max())):
        assert abs(got + 0.5 - want) <= 1.5  # the silhouette's box is the projected skinned mesh's
    # colours from the Fox's texture: mostly orange (red over blue); without textures, the grey display colour
    inside = img[mask]
    assert inside[:, 0].mean() > 1.6 * inside[:, 2].mean()
    grey = render_pose(rig, pose, [cam], style=replace(bare, textures=False))[0].astype(np.float64)[mask]
    assert abs(grey[:, 0].mean() - grey[:, 2].mean()) < 10


def test_golden_image_of_a_small_asset(tmp_path):
    """CesiumMan's first frame at 96 x 96 (mesh, texture, skeleton, ground) against the stored golden image: mean
    absolute difference under 2 levels and at most 1 % of the pixels off by more than 32 (anti-aliasing-free
    rasterisation is exact up to float rounding at triangle edges)."""
    from PIL import Image

    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.raster import render_pose
    from usdposer.types import Pose

    import_any(ASSETS / "khronos" / "CesiumMan.glb", tmp_path / "man.usdc")
    asset = read_asset(tmp_path / "man.usdc")
    rig = asset.rig().to(torch.float64)
    clip = asset.clip(rig)
    pose = Pose(clip.rotations[:1].double(), clip.translations[:1].double(), clip.scales[:1].double())
    img = render_pose(rig, pose, cameras(rig, pose, 96, 96))[0]
    if not GOLDEN.exists():  # first run on a new renderer: write it, and fail so that someone looks at it
        Image.fromarray(img).save(GOLDEN)
        pytest.fail(f"wrote a new golden image {GOLDEN}; look at it and commit it")
    gold = np.asarray(Image.open(GOLDEN).convert("RGB")).astype(np.int32)
    diff = np.abs(img.astype(np.int32) - gold)
    assert diff.mean() < 2.0 and (diff.max(-1) > 32).mean() < 0.01, (diff.mean(), (diff.max(-1) > 32).mean())


def test_limit_flags_mark_joints_outside_their_limits(fox):
    from usdposer.render.media import limit_flags

    _, asset, rig = fox
    pose = _fox_pose(asset, rig)
    assert limit_flags(rig, pose) == [set()]  # the Fox has no limits
    tight = torch.zeros(rig.num_joints, 3, 2, dtype=torch.float64)
    tight[..., 0], tight[..., 1] = -0.01, 0.01
    flags = limit_flags(replace(rig, limits=tight), pose)[0]
    moved = {rig.joint_names.index("b_LeftLeg01_015"), rig.joint_names.index("b_RightLeg01_019")}
    assert moved <= flags


def test_render_cli_modes(fox, tmp_path):
    d, _, _ = fox
    run = lambda *a: subprocess.run(CLI + ["render", str(d / "fox.usdc"), *a, "--json"], capture_output=True, text=True)  # noqa: E731
    proc = run("--anim", "Walk", "--mode", "sheet", "-o", str(tmp_path / "sheet.png"))
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert json.loads(proc.stdout)["frames"] == 18 and (tmp_path / "sheet.png").stat().st_size > 10_000
    proc = run("--anim", "Walk", "--mode", "video", "--size", "96x96", "-o", str(tmp_path / "walk.gif"))
    assert proc.returncode == 0, proc.stderr[-1500:]
    from PIL import Image

    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 18 and gif.size == (96, 96)
    proc = run("--frames", "3", "--mode", "turntable", "--size", "64x64", "--fps", "6", "-o", str(tmp_path / "turn.gif"))
    assert proc.returncode == 0 and Image.open(tmp_path / "turn.gif").n_frames == 24
    proc = run("--anim", "Walk", "--frames", "0:12:4", "--mode", "keyframes", "--size", "128x80", "--fps", "16",
               "-o", str(tmp_path / "keys"))
    assert proc.returncode == 0, proc.stderr[-1500:]
    side = json.loads((tmp_path / "keys" / "cameras.json").read_text())
    assert side["fps"] == 16 and side["width"] == 128 and [f["time_code"] for f in side["frames"]] == [0, 4, 8, 12]
    assert len(side["frames"][0]["viewmat"]) == 4 and len(side["frames"][0]["K"]) == 3
    assert Image.open(tmp_path / "keys" / "frame_0002.png").size == (128, 80)
    proc = run("--anim", "Walk", "--frames", "0:12:4", "--mode", "keyframes", "--preset", "wan2.1",
               "-o", str(tmp_path / "wan.mp4"))
    assert proc.returncode == 0, proc.stderr[-1500:]
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(tmp_path / "wan" / "proxy.mp4"))
    meta = next(reader)
    assert tuple(meta["size"]) == (832, 480) and meta["fps"] == 16 and sum(1 for _ in reader) == 4
    bad = run("--mode", "video", "-o", str(tmp_path / "x.avi"))
    assert bad.returncode == 2 and "gif" in bad.stderr and not (tmp_path / "x.avi").exists()
    before = (d / "fox.usdc").read_bytes()
    for mode in ("sheet", "video"):  # the input is never written over, whatever the mode
        bad = run("--mode", mode, "-o", str(d / "fox.usdc"))
        assert bad.returncode == 2 and "refusing to overwrite the input" in bad.stderr
    assert (d / "fox.usdc").read_bytes() == before
    bad = run("--mode", "sheet", "-o", str(tmp_path / "sheet.gif"))
    assert bad.returncode == 2 and ".png" in bad.stderr and not (tmp_path / "sheet.gif").exists()


def test_check_preview_draws_the_frames_with_findings(fox, tmp_path):
    d, _, _ = fox
    proc = subprocess.run(CLI + ["check", str(d / "fox.usdc"), "--rules", "FootSkating", "--preview",
                                 str(tmp_path / "pv")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-1500:]
    sheets = sorted(p.name for p in (tmp_path / "pv").glob("*.png"))
    assert sheets and all(s.startswith("fox.Fox_Skel_") for s in sheets)


def test_keyframes_mode_renders_the_marked_keyframes(fox, tmp_path):
    """An animation whose usdposer:keyframes lists time codes (interpolate --keyframes and ik --keyframes write it):
    --mode keyframes renders only those frames, in order, with their time codes in the sidecar."""
    from pxr import Usd

    from usdposer.io.edits import set_keyframes

    d, asset, rig = fox
    walk = asset.clip(rig, "Walk").path
    stage = Usd.Stage.Open(str(d / "fox.usdc"))
    layer = tmp_path / "keys_layer.usda"
    over = Usd.Stage.CreateNew(str(layer))
    over.GetRootLayer().subLayerPaths.append(str(d / "fox.usdc"))
    set_keyframes(over, walk, [2.0, 9.0, 15.0])
    over.GetRootLayer().Save()
    del stage
    proc = subprocess.run(CLI + ["render", str(layer), "--anim", "Walk", "--mode", "keyframes", "--size", "96x64",
                                 "-o", str(tmp_path / "kf")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-1500:]
    side = json.loads((tmp_path / "kf" / "cameras.json").read_text())
    assert [f["time_code"] for f in side["frames"]] == [2.0, 9.0, 15.0]
    assert sorted(p.name for p in (tmp_path / "kf").glob("frame_*.png")) == ["frame_0000.png", "frame_0001.png",
                                                                             "frame_0002.png"]


def test_render_check_marks_the_joints_check_flags(tmp_path):
    """A stage whose animation bends a joint past its UsdPhysics limit: `render --check` flags that joint at that
    frame, as `usdposer check`'s JointLimits finding names it."""
    import math

    from test_validate import stage_text, with_physics

    bent = ('uniform token[] joints = ["A", "A/B", "A/B/C"]\n'
            f'            quatf[] rotations = [(1,0,0,0), ({math.cos(math.radians(15))},0,0,{math.sin(math.radians(15))}), (1,0,0,0)]\n'
            '            float3[] translations = [(0,0,0), (0,1,0), (0,1,0)]\n'
            '            half3[] scales = [(1,1,1), (1,1,1), (1,1,1)]')
    text = with_physics(stage_text(anim=bent)).replace("float physics:upperLimit = 45", "float physics:upperLimit = 20")
    (tmp_path / "over.usda").write_text(text)
    proc = subprocess.run(CLI + ["render", str(tmp_path / "over.usda"), "--mode", "sheet", "--check", "--size",
                                 "64x64", "-o", str(tmp_path / "over.png"), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-1500:]
    flagged = json.loads(proc.stdout)["flagged_joints"]
    assert flagged and all("B" in joints for joints in flagged.values()), flagged


def test_previews_never_write_to_usd_file_names(fox, tmp_path):
    """Every preview (contact sheets of sample, ik, interpolate, fit, invert; track and distill videos) goes through
    one writer, which refuses a USD file name: `--preview asset.usdc` once replaced the asset with a PNG."""
    from usdposer.errors import InputError
    from usdposer.render.encode import write_video
    from usdposer.render.preview import contact_sheet

    d, asset, rig = fox
    before = (d / "fox.usdc").read_bytes()
    with pytest.raises(InputError, match="USD file name"):
        contact_sheet(rig, _fox_pose(asset, rig), d / "fox.usdc")
    with pytest.raises(InputError, match="use .gif or .mp4"):
        write_video([np.zeros((16, 16, 3), np.uint8)] * 2, d / "fox.usdc", 8.0)
    assert (d / "fox.usdc").read_bytes() == before


@pytest.mark.parametrize("change, words", [
    ({}, None),
    ({"fps": "x"}, "fps must be a positive number"), ({"fps": 0}, "fps must be a positive number"),
    ({"width": 10 ** 12}, "whole numbers of pixels"), ({"width": 4.7}, "whole numbers of pixels"),
    ({"height": True}, "whole numbers of pixels"), ({"frames": "abc"}, "not a cameras.json"),
    ({"frames": []}, "no frames"),
], ids=["as-written", "fps-text", "fps-zero", "width-absurd", "width-fraction", "height-bool", "frames-text",
        "no-frames"])
def test_a_cameras_sidecar_of_the_wrong_types_is_one_clear_error(tmp_path, change, words):
    """``fit --video`` reads the ``cameras.json`` a render or a generated video wrote: as written it reads back; a
    text fps was an internal error, and a width of 10^12 pixels or a fraction of one was taken."""
    from usdposer.errors import InputError
    from usdposer.render.cameras import cameras_record, read_cameras
    from usdposer.render.splat import Camera

    cam = Camera(torch.eye(4, dtype=torch.float64), torch.tensor([[40.0, 0, 16], [0, 40, 16], [0, 0, 1]]), 32, 32)
    path = tmp_path / "v.cameras.json"
    path.write_text(json.dumps({**cameras_record([cam, cam], fps=24.0), **change}))
    if words is None:
        cams, rec = read_cameras(path)
        assert len(cams) == 2 and (cams[0].width, cams[0].height) == (32, 32) and rec["fps"] == 24.0
        assert torch.equal(cams[1].K, cam.K.double())
    else:
        with pytest.raises(InputError, match=words):
            read_cameras(path)


def test_heavy_mesh_framing_keeps_the_cameras_of_every_point(fox, monkeypatch):
    """A studio mesh is framed from each pose's convex hull, skinned a few poses at a time, and a repeated pose (a
    turntable's) is skinned once: a turntable of a 323k-point character took over 400 s and 12 GB. Forcing that path
    on the Fox (hull from any size, two poses per skinning batch) gives the cameras that all points give, in every
    mode, on poses with repeats, and drawing in such batches the same pictures."""
    from usdposer.render import cameras as cams_mod
    from usdposer.render import raster
    from usdposer.render.cameras import _world_points, cameras
    from usdposer.render.raster import frame_camera, render_pose
    from usdposer.types import Pose

    _, asset, rig = fox
    clip = asset.clip(rig)
    idx = [0, 3, 3, 3, 7, 12, 12, 20]
    pose = Pose(clip.rotations[idx].double(), clip.translations[idx].double(), clip.scales[idx].double())
    every = _world_points(rig, pose)  # (B, V, 3): what framing used to take
    cams = cameras(rig, pose, 96, 64, "follow")
    images = render_pose(rig, pose, cams)
    monkeypatch.setattr(cams_mod, "HULL_FROM", 0)
    monkeypatch.setattr(raster, "SKIN_POINTS", 2 * every.shape[1])
    hulls = cams_mod.framing_points(rig, pose)
    assert all(len(h) < every.shape[1] / 3 for h in hulls)  # the hull path did run
    want = {"follow": [frame_camera(every[i], 96, 64, yaw_deg=30, pitch_deg=15) for i in range(len(idx))],
            "fixed": [frame_camera(every.reshape(-1, 3), 96, 64, yaw_deg=30, pitch_deg=15)] * len(idx),
            "orbit": [frame_camera(every.reshape(-1, 3), 96, 64, yaw_deg=30 + 360.0 * i / len(idx), pitch_deg=15)
                      for i in range(len(idx))]}
    for mode, expected in want.items():
        got = cameras(rig, pose, 96, 64, mode, yaw=30, pitch=15, turns=1.0 if mode == "orbit" else 0.0)
        for g, w in zip(got, expected):
            assert torch.allclose(g.viewmat.double(), w.viewmat.double(), atol=1e-9), mode
            assert torch.allclose(g.K.double(), w.K.double(), atol=1e-9), mode
    # drawing skins two poses at a time too: the same pictures
    assert all(np.array_equal(a, b) for a, b in zip(render_pose(rig, pose, cams), images, strict=True))


def _face_varying_copy(src, out, *, indexed: bool) -> None:
    """``src`` with its meshes' vertex ``st`` rewritten as face-varying, the way Maya, Houdini and Blender write UVs:
    indexed (the per-vertex values plus one index per face corner) or flat (one value per face corner)."""
    from pxr import Sdf, Usd, UsdGeom, Vt

    stage = Usd.Stage.Open(str(src))
    stage.Export(str(out))
    stage = Usd.Stage.Open(str(out))
    for prim in stage.Traverse():
        if not prim.IsA(UsdGeom.Mesh):
            continue
        api = UsdGeom.PrimvarsAPI(prim)
        old = api.GetPrimvar("st")
        values, corners = old.Get(), UsdGeom.Mesh(prim).GetFaceVertexIndicesAttr().Get()
        api.RemovePrimvar("st")
        pv = api.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.faceVarying)
        if indexed:
            pv.Set(values)
            pv.SetIndices(Vt.IntArray(list(corners)))
        else:
            pv.Set(Vt.Vec2fArray([values[i] for i in corners]))
    stage.GetRootLayer().Save()


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "flat"])
def test_face_varying_uvs_draw_the_texture_as_vertex_uvs_do(fox, tmp_path, indexed):
    """UV interpolation must not matter: the Fox with its UVs face-varying (indexed as Maya writes them, or flat)
    draws the same picture as with per-vertex UVs (they used to be ignored: a grey Fox), and `rig` of that bare mesh
    keeps them face-varying, corner for corner."""
    from pxr import Usd, UsdGeom

    from usdposer.io.bare_mesh import read_bare
    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.raster import Style, render_pose

    folder, asset, rig = fox
    fv = tmp_path / "fox_fv.usda"
    _face_varying_copy(folder / "fox.usdc", fv, indexed=indexed)
    other = read_asset(fv).rig().to(torch.float64)
    m = other.meshes[0]
    assert m.uvs is None and m.corner_uvs is not None and m.corner_uvs.shape == (*m.faces.shape, 2)
    assert torch.allclose(m.face_uvs(), rig.meshes[0].face_uvs(), atol=1e-6)
    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 160, 128)[0]
    bare = Style(ground=False, skeleton=False)
    want = render_pose(rig, pose, [cam], style=bare)[0]
    got = render_pose(other, pose, [cam], style=bare)[0]
    grey = render_pose(other, pose, [cam], style=replace(bare, textures=False))[0]
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert np.abs(grey.astype(int) - want.astype(int)).max() > 50  # the texture is what makes the picture
    # AKD's Gaussians take their colours from the same texels
    from usdposer.render.gaussians import gaussians_from_rig

    assert torch.allclose(gaussians_from_rig(other, 2000).colors, gaussians_from_rig(rig, 2000).colors, atol=1e-6)
    # the bare-mesh reader (`rig`'s input) keeps them, and the rig stage writes them face-varying
    bare_meshes = read_bare(fv)
    assert bare_meshes.meshes[0].corner_uvs is not None
    from usdposer.io.rig_stage import RigData, SkeletonData, write_rig_stage

    out = tmp_path / "written.usda"
    one = SkeletonData(["root"], np.eye(4)[None], np.eye(4)[None])
    write_rig_stage(RigData("written", [one], meshes=bare_meshes.meshes), out, sources=[fv])
    written = Usd.Stage.Open(str(out))
    prim = next(p for p in written.Traverse() if p.IsA(UsdGeom.Mesh))
    st = UsdGeom.PrimvarsAPI(prim).GetPrimvar("st")
    assert st.GetInterpolation() == UsdGeom.Tokens.faceVarying
    assert np.allclose(np.asarray(st.ComputeFlattened()).reshape(-1, 3, 2), m.face_uvs().numpy(), atol=1e-6)


def test_geom_subset_materials_draw_on_their_faces(fox, tmp_path):
    """Per-face materials (GeomSubsets): the Fox's faces split into two subsets both bound to its own material draws
    the Fox's picture exactly; with the second bound to red, exactly the pixels that changed are red, a good share of
    the character, and AKD's Gaussians on those faces are red (they used to take the mesh's material everywhere)."""
    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.render.raster import Style, render_pose

    folder, asset, rig = fox
    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 160, 128)[0]
    bare = Style(ground=False, skeleton=False)
    want = render_pose(rig, pose, [cam], style=bare)[0].astype(int)
    same, red = tmp_path / "same.usda", tmp_path / "red.usda"
    subset_copy(folder / "fox.usdc", same, red=False)
    subset_copy(folder / "fox.usdc", red, red=True)
    split = read_asset(same).rig().to(torch.float64)
    assert len(split.meshes[0].face_looks) == 2
    assert np.array_equal(render_pose(split, pose, [cam], style=bare)[0].astype(int), want)
    two = read_asset(red).rig().to(torch.float64)
    got = render_pose(two, pose, [cam], style=bare)[0].astype(int)
    changed = np.abs(got - want).sum(-1) > 0
    bg = np.array(bare.background) ** (1 / 2.2) * 255
    character = np.abs(want - bg).sum(-1) > 6
    assert 0.15 < changed.sum() / character.sum() < 0.85
    r, g, b = got[changed].T
    assert ((r > 2 * g + 10) & (r > 2 * b + 10)).mean() > 0.97  # edge pixels blend with the background
    back = two.meshes[0].face_looks[1].faces
    g_red = gaussians_from_rig(two, 4000)
    colors = g_red.colors
    reds = (colors[:, 0] > 0.99) & (colors[:, 1] < 0.01) & (colors[:, 2] < 0.01)
    assert 0.15 < reds.float().mean() < 0.85 and len(back) == len(two.meshes[0].faces) - len(two.meshes[0].face_looks[0].faces)


def test_udim_tiles_draw_as_one_texture(fox, tmp_path):
    """A texture split into UDIM tiles (``fox.<UDIM>.png``, the back half of the faces' UVs moved one tile right, to
    1002) draws the Fox's one-texture picture within one level; a tile that is missing draws the display colour there
    (no crash), and a texture that cannot be found at all is reported by the reader."""
    import shutil

    from pxr import Sdf, Usd, UsdGeom, UsdShade, Vt

    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.raster import Style, render_pose

    folder, asset, rig = fox
    image = folder / "fox_textures" / "image_0.png"
    (tmp_path / "tex").mkdir()
    for tile in (1001, 1002):
        shutil.copy(image, tmp_path / "tex" / f"fox.{tile}.png")
    (tmp_path / "one").mkdir()
    shutil.copy(image, tmp_path / "one" / "fox.1001.png")

    def udim(name: str, folder_name: str):
        out = tmp_path / name
        Usd.Stage.Open(str(folder / "fox.usdc")).Export(str(out))
        stage = Usd.Stage.Open(str(out))
        prim = next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
        api = UsdGeom.PrimvarsAPI(prim)
        values, corners = np.asarray(api.GetPrimvar("st").Get()), UsdGeom.Mesh(prim).GetFaceVertexIndicesAttr().Get()
        per_corner = values[np.asarray(corners)]
        per_corner[len(per_corner) // 2:, 0] += 1.0  # the back half's UVs in tile 1002
        api.RemovePrimvar("st")
        api.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.faceVarying).Set(
            Vt.Vec2fArray.FromNumpy(per_corner.astype(np.float32)))
        material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
        tex = next(p for p in Usd.PrimRange(material.GetPrim()) if p.GetAttribute("inputs:file"))
        tex.GetAttribute("inputs:file").Set(Sdf.AssetPath(f"./{folder_name}/fox.<UDIM>.png"))
        stage.GetRootLayer().Save()
        return read_asset(out, strict=False)

    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 160, 128)[0]
    bare = Style(ground=False, skeleton=False)
    want = render_pose(rig, pose, [cam], style=bare)[0].astype(int)
    tiled = udim("tiled.usda", "tex")
    assert tiled.rigs[0].meshes[0].texture.endswith("tex/fox.<UDIM>.png")  # anchored at the layer, not the cwd
    got = render_pose(tiled.rig().to(torch.float64), pose, [cam], style=bare)[0].astype(int)
    assert np.abs(got - want).max() <= 1
    half = render_pose(udim("half.usda", "one").rig().to(torch.float64), pose, [cam], style=bare)[0].astype(int)
    grey = render_pose(rig, pose, [cam], style=replace(bare, textures=False))[0].astype(int)
    changed = np.abs(half - want).sum(-1) > 3
    assert changed.any() and np.abs(half[changed] - grey[changed]).max() <= 1  # the missing tile: display colour
    lost = udim("lost.usda", "nowhere")
    assert any(p.kind == "missing-texture" for p in lost.problems)
    # and `check` says so (it was a reader warning `info` alone showed): a warning, the file still passes
    r = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "check", str(tmp_path / "lost.usda"),
                        "--rules", "Looks", "--json"], capture_output=True, text=True)
    found = [(f["id"], f["severity"]) for f in json.loads(r.stdout)["files"][0]["findings"]]
    assert r.returncode == 0 and found == [("Looks.MissingTexture", "warning")], r.stdout
    r = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "check", str(tmp_path / "tiled.usda"),
                        "--rules", "Looks", "--json"], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["files"][0]["findings"] == []


def test_texture_tint_scales_and_biases_the_texels(fox, tmp_path):
    """A tinted texture (glTF's ``baseColorFactor`` beside a base-colour texture, which import writes as the
    UsdUVTexture's ``scale``; Maya's colour gain and offset as ``scale`` and ``bias``) is drawn as glTF and
    UsdPreviewSurface define it: the linear texel times the scale plus the bias. The tinted Fox's AKD Gaussians are the
    Fox's times the factor, its lit picture (before display encoding) the Fox's times the factor where neither clips,
    and `rig` of the bare tinted mesh keeps the tint (it was drawn untinted)."""
    import pygltflib
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade

    from usdposer.core.posing import skin
    from usdposer.io.bare_mesh import read_bare
    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.render.raster import Style, shade

    folder, asset, rig = fox
    factor = (1.0, 0.5, 0.25)
    gltf = pygltflib.GLTF2().load(str(ASSETS / "khronos" / "Fox.glb"))
    assert gltf.materials[0].pbrMetallicRoughness.baseColorTexture is not None
    gltf.materials[0].pbrMetallicRoughness.baseColorFactor = [*factor, 1.0]
    gltf.save(str(tmp_path / "tinted.glb"))
    import_any(tmp_path / "tinted.glb", tmp_path / "tinted.usdc")
    tinted = read_asset(tmp_path / "tinted.usdc").rig().to(torch.float64)
    assert tinted.meshes[0].sampler.tint == (factor, (0.0, 0.0, 0.0)) and rig.meshes[0].sampler.tint == ((1.0,) * 3, (0.0,) * 3)
    plain_g = gaussians_from_rig(rig, 3000).colors
    tint_g = gaussians_from_rig(tinted, 3000).colors
    assert torch.allclose(tint_g, plain_g * torch.tensor(factor, dtype=plain_g.dtype), atol=1e-6)
    assert (plain_g[:, 1] - tint_g[:, 1]).max() > 0.05  # the Fox's orange fur: the factor shows

    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 96, 80)[0]
    style = Style(ground=False, skeleton=False)
    want, depth = shade(rig, [p[0] for p in skin(rig, pose)], cam, style)
    got, _ = shade(tinted, [p[0] for p in skin(tinted, pose)], cam, style)
    fur = depth.isfinite() & (want < 0.999).all(-1)  # drawn, and no channel clipped
    assert fur.sum() > 200
    assert torch.allclose(got[fur], want[fur] * torch.tensor(factor, dtype=want.dtype), atol=1e-5)

    # Maya's gain and offset on a USD texture; a bare mesh rigged from it keeps both
    out = tmp_path / "gain.usda"
    Usd.Stage.Open(str(folder / "fox.usdc")).Export(str(out))
    stage = Usd.Stage.Open(str(out))
    prim = next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
    material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
    tex = UsdShade.Shader(next(p for p in Usd.PrimRange(material.GetPrim()) if p.GetAttribute("inputs:file")))
    tex.GetInput("scale").Set(Gf.Vec4f(0.5, 0.5, 0.5, 1.0))
    tex.CreateInput("bias", Sdf.ValueTypeNames.Float4).Set(Gf.Vec4f(0.1, 0.0, 0.0, 0.0))
    stage.GetRootLayer().Save()
    gained = read_asset(out).rig().to(torch.float64)
    assert np.allclose(gained.meshes[0].sampler.tint, ((0.5, 0.5, 0.5), (0.1, 0.0, 0.0)))
    gain_g = gaussians_from_rig(gained, 3000).colors
    assert torch.allclose(gain_g, plain_g * 0.5 + torch.tensor([0.1, 0.0, 0.0], dtype=plain_g.dtype), atol=1e-6)
    bare = read_bare(out)
    assert bare.materials[bare.meshes[0].material].color == (0.5, 0.5, 0.5)
    assert np.allclose(bare.materials[bare.meshes[0].material].bias, (0.1, 0.0, 0.0))


def test_usdz_package_draws_its_packaged_texture(fox, tmp_path):
    """A character delivered as a USDZ package (AR Quick Look, Sketchfab, Reality Composer) keeps its texture inside
    the package: OpenUSD resolves it to ``fox.usdz[fox_textures/image_0.png]``, which no image library opens. The
    package now draws the Fox's picture exactly (it drew the display colour, with a missing-texture warning), AKD's
    Gaussians take the same colours, `info` names the texture, and `rig` of the packaged mesh copies the image out."""
    import shutil

    from pxr import Sdf, UsdUtils

    from usdposer.io.bare_mesh import read_bare
    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.render.raster import Style, render_pose

    folder, asset, rig = fox
    shutil.copy(folder / "fox.usdc", tmp_path / "fox.usdc")
    shutil.copytree(folder / "fox_textures", tmp_path / "fox_textures")
    assert UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(tmp_path / "fox.usdc")), str(tmp_path / "fox.usdz"))
    shutil.rmtree(tmp_path / "fox_textures")  # only the package holds the image now
    packed = read_asset(tmp_path / "fox.usdz")
    assert not [p for p in packed.problems if p.kind == "missing-texture"]
    prig = packed.rig().to(torch.float64)
    assert prig.meshes[0].texture.endswith("fox.usdz[fox_textures/image_0.png]")
    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 120, 96)[0]
    bare = Style(ground=False, skeleton=False)
    want = render_pose(rig, pose, [cam], style=bare)[0]
    grey = render_pose(rig, pose, [cam], style=replace(bare, textures=False))[0]
    assert np.array_equal(render_pose(prig, pose, [cam], style=bare)[0], want) and not np.array_equal(want, grey)
    assert torch.equal(gaussians_from_rig(prig, 2000).colors, gaussians_from_rig(rig, 2000).colors)
    out = subprocess.run(CLI + ["info", str(tmp_path / "fox.usdz")], capture_output=True, text=True)
    assert out.returncode == 0 and "texture image_0.png\n" in out.stdout and "cannot be read" not in out.stdout
    meshes = read_bare(tmp_path / "fox.usdz")
    material = meshes.materials[meshes.meshes[0].material]
    assert material.texture == (folder / "fox_textures" / "image_0.png").read_bytes()
    assert material.texture_name == "image_0.png"


def test_preview_material_binding_is_the_one_drawn(fox, tmp_path):
    """A studio asset binds its render material for all purposes (here a RenderMan ``PxrSurface`` behind
    ``outputs:ri:surface``: nothing a viewport can draw) and a UsdPreviewSurface as ``material:binding:preview``.
    usdposer draws the preview binding, as Hydra's viewport does (it took the render material and drew grey): the
    picture is the Fox's exactly; with the preview binding removed it is the display colour's."""
    from pxr import Sdf, Usd, UsdGeom, UsdShade

    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.raster import Style, render_pose

    folder, asset, rig = fox
    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 120, 96)[0]
    bare = Style(ground=False, skeleton=False)
    want = render_pose(rig, pose, [cam], style=bare)[0]
    grey = render_pose(rig, pose, [cam], style=replace(bare, textures=False))[0]
    for preview in (True, False):
        out = tmp_path / f"studio_{preview}.usda"
        Usd.Stage.Open(str(folder / "fox.usdc")).Export(str(out))
        stage = Usd.Stage.Open(str(out))
        prim = next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
        own, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
        render = UsdShade.Material.Define(stage, "/Fox/Looks/Render")
        pxr = UsdShade.Shader.Define(stage, "/Fox/Looks/Render/PxrSurface")
        pxr.CreateIdAttr("PxrSurface")
        pxr.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set((1.0, 0.0, 0.0))
        render.CreateSurfaceOutput("ri").ConnectToSource(pxr.ConnectableAPI(), "out")
        api = UsdShade.MaterialBindingAPI.Apply(prim)
        api.Bind(render)
        if preview:
            api.Bind(own, materialPurpose=UsdShade.Tokens.preview)
        stage.GetRootLayer().Save()
        studio = read_asset(out).rig().to(torch.float64)
        got = render_pose(studio, pose, [cam], style=bare)[0]
        assert np.array_equal(got, want if preview else grey), preview


def _rebind(src, out, build) -> None:
    """``src`` with its mesh bound to the material ``build(stage, texture_path)`` defines (the Fox's own texture)."""
    from pxr import Usd, UsdGeom, UsdShade

    Usd.Stage.Open(str(src)).Export(str(out))
    stage = Usd.Stage.Open(str(out))
    prim = next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
    texture = str(Path(src).parent / "fox_textures" / "image_0.png")
    UsdShade.MaterialBindingAPI.Apply(prim).Bind(build(stage, texture))
    stage.GetRootLayer().Save()


def _mtlx(stage, texture, *, constant=None, base=None):
    """A MaterialX standard_surface (``outputs:mtlx:surface``) whose ``base_color`` is an ``image`` node inside a
    node graph reading ``texture`` with the mesh's ``st`` (or a ``constant``), times ``base``."""
    from pxr import Sdf, UsdShade

    m = UsdShade.Material.Define(stage, "/Fox/Looks/Mtlx")
    surface = UsdShade.Shader.Define(stage, "/Fox/Looks/Mtlx/Surface")
    surface.CreateIdAttr("ND_standard_surface_surfaceshader")
    base_color = surface.CreateInput("base_color", Sdf.ValueTypeNames.Color3f)
    if base is not None:
        surface.CreateInput("base", Sdf.ValueTypeNames.Float).Set(base)
    if constant is not None:
        base_color.Set(constant)
    else:
        graph = UsdShade.NodeGraph.Define(stage, "/Fox/Looks/Mtlx/Graph")
        st = UsdShade.Shader.Define(stage, "/Fox/Looks/Mtlx/Graph/st")
        st.CreateIdAttr("ND_texcoord_vector2")
        image = UsdShade.Shader.Define(stage, "/Fox/Looks/Mtlx/Graph/image")
        image.CreateIdAttr("ND_image_color3")
        image.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(texture)
        image.CreateInput("texcoord", Sdf.ValueTypeNames.Float2).ConnectToSource(st.ConnectableAPI(), "out")
        out = graph.CreateOutput("base_color", Sdf.ValueTypeNames.Color3f)
        out.ConnectToSource(image.ConnectableAPI(), "out")
        base_color.ConnectToSource(out)
    m.CreateSurfaceOutput("mtlx").ConnectToSource(surface.ConnectableAPI(), "out")
    return m


def _preview_in_graph(stage, texture):
    """A UsdPreviewSurface whose ``diffuseColor`` comes from a UsdUVTexture wrapped in a node graph (as Houdini and
    Maya export network boxes)."""
    from pxr import Sdf, UsdShade

    m = UsdShade.Material.Define(stage, "/Fox/Looks/Graphed")
    surface = UsdShade.Shader.Define(stage, "/Fox/Looks/Graphed/Surface")
    surface.CreateIdAttr("UsdPreviewSurface")
    graph = UsdShade.NodeGraph.Define(stage, "/Fox/Looks/Graphed/Graph")
    reader = UsdShade.Shader.Define(stage, "/Fox/Looks/Graphed/Graph/st")
    reader.CreateIdAttr("UsdPrimvarReader_float2")
    reader.CreateInput("varname", Sdf.ValueTypeNames.Token).Set("st")
    tex = UsdShade.Shader.Define(stage, "/Fox/Looks/Graphed/Graph/tex")
    tex.CreateIdAttr("UsdUVTexture")
    tex.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(texture)
    tex.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
    out = graph.CreateOutput("color", Sdf.ValueTypeNames.Color3f)
    out.ConnectToSource(tex.ConnectableAPI(), "rgb")
    surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(out)
    m.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")
    return m


def test_materialx_and_node_graph_materials_draw_their_texture(fox, tmp_path):
    """Materials as studios and DCCs write them beyond a bare UsdPreviewSurface: a MaterialX ``standard_surface``
    (``outputs:mtlx:surface``; its ``base_color`` an ``image`` node inside a node graph) and a UsdPreviewSurface fed
    through a node graph. Both draw the Fox's picture exactly (they drew the display colour); a constant
    ``base_color`` (0.2, 0.4, 0.6) with ``base`` 0.5 gives AKD's Gaussians exactly (0.1, 0.2, 0.3)."""
    from functools import partial

    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.render.raster import Style, render_pose

    folder, asset, rig = fox
    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 120, 96)[0]
    bare = Style(ground=False, skeleton=False)
    want = render_pose(rig, pose, [cam], style=bare)[0]
    for name, build in (("mtlx", _mtlx), ("graphed", _preview_in_graph)):
        _rebind(folder / "fox.usdc", tmp_path / f"{name}.usda", build)
        other = read_asset(tmp_path / f"{name}.usda").rig().to(torch.float64)
        assert other.meshes[0].texture and other.meshes[0].texture.endswith("image_0.png"), name
        assert np.array_equal(render_pose(other, pose, [cam], style=bare)[0], want), name
    _rebind(folder / "fox.usdc", tmp_path / "flat.usda", partial(_mtlx, constant=(0.2, 0.4, 0.6), base=0.5))
    flat = read_asset(tmp_path / "flat.usda").rig().to(torch.float64)
    assert flat.meshes[0].texture is None
    colors = gaussians_from_rig(flat, 500).colors
    assert torch.allclose(colors, torch.tensor([0.1, 0.2, 0.3], dtype=colors.dtype).expand_as(colors), atol=1e-6)


def test_the_texture_reads_the_uv_set_its_primvar_reader_names(fox, tmp_path):
    """UVs named as the material says, not only ``st``: the Fox's UVs renamed ``UVChannel_2`` (3ds Max) with its
    texture's ``UsdPrimvarReader_float2`` reading that name draw the Fox's picture exactly (they drew the display
    colour); so does a MaterialX ``image`` whose ``texcoord`` is a ``geompropvalue`` of that name."""
    from pxr import Sdf, Usd, UsdGeom, UsdShade

    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.raster import Style, render_pose

    folder, asset, rig = fox
    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 120, 96)[0]
    bare = Style(ground=False, skeleton=False)
    want = render_pose(rig, pose, [cam], style=bare)[0]
    for how in ("preview", "mtlx"):
        out = tmp_path / f"{how}.usda"
        if how == "mtlx":
            _rebind(folder / "fox.usdc", out, _mtlx)
        else:
            Usd.Stage.Open(str(folder / "fox.usdc")).Export(str(out))
        stage = Usd.Stage.Open(str(out))
        prim = next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
        api = UsdGeom.PrimvarsAPI(prim)
        st = api.GetPrimvar("st")
        api.CreatePrimvar("UVChannel_2", Sdf.ValueTypeNames.TexCoord2fArray, st.GetInterpolation()).Set(st.Get())
        api.RemovePrimvar("st")
        material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
        if how == "preview":
            reader = next(UsdShade.Shader(p) for p in Usd.PrimRange(material.GetPrim())
                          if UsdShade.Shader(p).GetIdAttr().Get() == "UsdPrimvarReader_float2")
            reader.GetInput("varname").Set("UVChannel_2")
        else:
            geomprop = UsdShade.Shader.Define(stage, "/Fox/Looks/Mtlx/Graph/st")  # replaces the texcoord node
            geomprop.GetIdAttr().Set("ND_geompropvalue_vector2")
            geomprop.CreateInput("geomprop", Sdf.ValueTypeNames.String).Set("UVChannel_2")
        stage.GetRootLayer().Save()
        named = read_asset(out).rig().to(torch.float64)
        assert named.meshes[0].face_uvs() is not None, how
        assert np.array_equal(render_pose(named, pose, [cam], style=bare)[0], want), how


def test_uv_transform_moves_the_texture_coordinates(fox, tmp_path):
    """A ``UsdTransform2d`` between the UV reader and the texture (Blender's mapping node, glTF's
    KHR_texture_transform) scales, turns and moves the UVs before the lookup. The Fox with its UVs moved by the inverse
    of such a transform (scale (2, 0.5), 30 degrees, translation (0.1, 0.2)) and the transform in its material draws
    the Fox's picture (all but a few pixels where rounding picks the neighbouring texel); without the transform
    applied (as before) a good share of the character changes."""
    import math

    from pxr import Sdf, Usd, UsdGeom, UsdShade, Vt

    from usdposer.io.bare_mesh import read_bare
    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.raster import Style, render_pose

    folder, asset, rig = fox
    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 120, 96)[0]
    style = Style(ground=False, skeleton=False)
    want = render_pose(rig, pose, [cam], style=style)[0].astype(int)
    (sx, sy), r, t = (2.0, 0.5), math.radians(30.0), np.array([0.1, 0.2])
    A = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]]) @ np.diag([sx, sy])
    out = tmp_path / "mapped.usda"
    Usd.Stage.Open(str(folder / "fox.usdc")).Export(str(out))
    stage = Usd.Stage.Open(str(out))
    prim = next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
    st = UsdGeom.PrimvarsAPI(prim).GetPrimvar("st")
    uv = np.asarray(st.Get(), dtype=np.float64)
    st.Set(Vt.Vec2fArray.FromNumpy(((uv - t) @ np.linalg.inv(A).T).astype(np.float32)))
    material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
    tex = next(UsdShade.Shader(p) for p in Usd.PrimRange(material.GetPrim())
               if UsdShade.Shader(p).GetIdAttr().Get() == "UsdUVTexture")
    reader = tex.GetInput("st").GetConnectedSources()[0][0].source
    xf = UsdShade.Shader.Define(stage, material.GetPath().AppendChild("uvTransform"))
    xf.CreateIdAttr("UsdTransform2d")
    xf.CreateInput("in", Sdf.ValueTypeNames.Float2).ConnectToSource(reader, "result")
    xf.CreateInput("scale", Sdf.ValueTypeNames.Float2).Set((sx, sy))
    xf.CreateInput("rotation", Sdf.ValueTypeNames.Float).Set(30.0)
    xf.CreateInput("translation", Sdf.ValueTypeNames.Float2).Set(tuple(t))
    tex.GetInput("st").ConnectToSource(xf.ConnectableAPI(), "result")
    stage.GetRootLayer().Save()
    mapped = read_asset(out).rig().to(torch.float64)
    (scale, degrees, move) = mapped.meshes[0].sampler.uv_transform
    assert np.allclose(scale, (sx, sy)) and degrees == pytest.approx(30.0) and np.allclose(move, t)
    bare = read_bare(out)  # `rig` of the bare mesh writes the same UsdTransform2d
    (scale, degrees, move) = bare.materials[bare.meshes[0].material].uv_transform
    assert np.allclose(scale, (sx, sy)) and degrees == pytest.approx(30.0) and np.allclose(move, t)
    got = render_pose(mapped, pose, [cam], style=style)[0].astype(int)
    drawn = np.abs(want - np.array(style.background) ** (1 / 2.2) * 255).sum(-1) > 6
    assert (np.abs(got - want).sum(-1)[drawn] > 3).mean() < 0.01
    plain = replace(mapped.meshes[0].sampler, uv_transform=None)
    moved = replace(mapped, meshes=[replace(mapped.meshes[0], sampler=plain)])
    off = render_pose(moved, pose, [cam], style=style)[0].astype(int)
    assert (np.abs(off - want).sum(-1)[drawn] > 3).mean() > 0.2


def test_wrap_modes_and_colour_space_read_the_texture_as_its_material_says(fox, tmp_path):
    """What a texture shows outside [0, 1] and whether its texels are sRGB come from the material, as Blender 5's
    importer reads them (it draws ``useMetadata`` as repeat, ``clamp`` extended, ``mirror`` mirrored, ``black``
    clipped, ``raw`` as Non-Color): properties of the lookup on the Fox's texture at random UVs far outside the unit
    square (mirror: u, -u and u + 2 alike; clamp: the edge texels; black: zero outside, the texture inside); a glTF
    sampler's CLAMP_TO_EDGE / MIRRORED_REPEAT become ``wrapS`` / ``wrapT`` and read back; the Fox with its UVs moved
    three units off draws black with ``black`` and its own picture with ``repeat``; ``raw`` texels are used as they
    are (brighter than decoded sRGB); `rig` of the bare mesh keeps both."""
    import pygltflib
    from pxr import Sdf, Usd, UsdGeom, UsdShade, Vt

    from usdposer.io.bare_mesh import read_bare
    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset
    from usdposer.io.texture import albedo, texels
    from usdposer.render.cameras import cameras
    from usdposer.render.raster import Style, render_pose
    from usdposer.types import Sampler

    folder, asset, rig = fox
    path = rig.meshes[0].texture
    uv = np.random.default_rng(0).uniform(-3, 3, (4000, 2))
    inside = ((uv >= 0) & (uv <= 1)).all(1)
    rep = texels(path, uv)
    assert np.array_equal(rep, texels(path, uv % 1.0)) and np.array_equal(rep, texels(path, uv + 1.0))
    mirror = texels(path, uv, ("mirror", "mirror"))
    assert np.array_equal(mirror, texels(path, -uv, ("mirror", "mirror")))
    assert np.array_equal(mirror, texels(path, uv + 2.0, ("mirror", "mirror")))
    assert not np.array_equal(mirror, rep)
    clamp = texels(path, uv, ("clamp", "clamp"))
    assert np.array_equal(clamp, texels(path, np.clip(uv, 0, 1), ("clamp", "clamp")))
    black = texels(path, uv, ("black", "black"))
    assert inside.sum() > 50 and (black[~inside] == 0).all() and np.array_equal(black[inside], rep[inside])
    half = texels(path, uv, ("repeat", "black"))  # the two axes apart
    v_in = (uv[:, 1] >= 0) & (uv[:, 1] <= 1)
    assert (half[~v_in] == 0).all() and np.array_equal(half[v_in], rep[v_in])
    raw = albedo(path, uv, Sampler(color_space="raw"))
    assert np.allclose(raw, rep) and np.allclose(albedo(path, uv), rep ** 2.2)

    gltf = pygltflib.GLTF2().load(str(ASSETS / "khronos" / "Fox.glb"))
    sampler = gltf.textures[gltf.materials[0].pbrMetallicRoughness.baseColorTexture.index].sampler
    gltf.samplers[sampler].wrapS, gltf.samplers[sampler].wrapT = 33071, 33648  # CLAMP_TO_EDGE, MIRRORED_REPEAT
    gltf.save(str(tmp_path / "edges.glb"))
    import_any(tmp_path / "edges.glb", tmp_path / "edges.usdc")
    assert read_asset(tmp_path / "edges.usdc").rig().meshes[0].sampler.wrap == ("clamp", "mirror")
    assert rig.meshes[0].sampler.wrap == ("repeat", "repeat")  # the Fox's sampler: REPEAT, written as such
    written = Usd.Stage.Open(str(folder / "fox.usdc"))
    tex = next(UsdShade.Shader(p) for p in written.Traverse()
               if p.IsA(UsdShade.Shader) and UsdShade.Shader(p).GetIdAttr().Get() == "UsdUVTexture")
    assert (tex.GetInput("wrapS").Get(), tex.GetInput("wrapT").Get()) == ("repeat", "repeat")

    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 96, 80)[0]
    style = Style(ground=False, skeleton=False)
    want = render_pose(rig, pose, [cam], style=style)[0].astype(int)
    drawn = np.abs(want - np.array(style.background) ** (1 / 2.2) * 255).sum(-1) > 6

    def drawn_with(name, wrap, space="sRGB", shift=3.0):
        out = tmp_path / f"{name}.usda"
        Usd.Stage.Open(str(folder / "fox.usdc")).Export(str(out))
        stage = Usd.Stage.Open(str(out))
        prim = next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
        st = UsdGeom.PrimvarsAPI(prim).GetPrimvar("st")
        st.Set(Vt.Vec2fArray.FromNumpy((np.asarray(st.Get(), dtype=np.float64) + shift).astype(np.float32)))
        material, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
        t = next(UsdShade.Shader(p) for p in Usd.PrimRange(material.GetPrim())
                 if UsdShade.Shader(p).GetIdAttr().Get() == "UsdUVTexture")
        for k in ("wrapS", "wrapT"):
            t.CreateInput(k, Sdf.ValueTypeNames.Token).Set(wrap)
        t.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set(space)
        stage.GetRootLayer().Save()
        got = read_asset(out).rig().to(torch.float64)
        assert got.meshes[0].sampler.wrap == (wrap, wrap) and got.meshes[0].sampler.color_space == space
        bare = read_bare(out)  # `rig` of the bare mesh writes them back
        m = bare.materials[bare.meshes[0].material]
        assert (m.wrap, m.color_space) == ((wrap, wrap), space)
        return render_pose(got, pose, [cam], style=style)[0].astype(int)

    repeated = drawn_with("repeat", "repeat")
    assert (np.abs(repeated - want).sum(-1)[drawn] > 3).mean() < 0.01  # whole tiles away: the same texels
    blacked = drawn_with("black", "black")
    assert blacked[drawn].mean() < 0.5 * want[drawn].mean()  # only the light's shading of black is left
    linear = drawn_with("raw", "repeat", "raw", shift=0.0)
    assert linear[drawn].mean() > want[drawn].mean() + 10  # the texels not decoded: lighter

    # MaterialX's image: address modes and the file's colour space
    _rebind(folder / "fox.usdc", tmp_path / "mtlx.usda", _mtlx)
    stage = Usd.Stage.Open(str(tmp_path / "mtlx.usda"))
    image = UsdShade.Shader(stage.GetPrimAtPath("/Fox/Looks/Mtlx/Graph/image"))
    image.CreateInput("uaddressmode", Sdf.ValueTypeNames.String).Set("clamp")
    image.CreateInput("vaddressmode", Sdf.ValueTypeNames.String).Set("constant")
    image.GetInput("file").GetAttr().SetColorSpace("lin_rec709")
    stage.GetRootLayer().Save()
    mtlx = read_asset(tmp_path / "mtlx.usda").rig().meshes[0].sampler
    assert (mtlx.wrap, mtlx.color_space) == (("clamp", "black"), "raw")


def test_proxy_guide_and_hidden_meshes_do_not_change_the_character(fox, tmp_path):
    """A studio asset carries more skinned meshes than it renders: a low-resolution ``proxy`` (here the Fox's mesh
    blown up 30 %, which would poke through everywhere), a ``guide`` (a collision shell) and a hidden alternate
    outfit. They must not matter: the rig's meshes, the picture and `check`'s findings are the Fox's own, and `info`
    lists each one left out (the render mesh is purpose ``render``)."""
    from pxr import Sdf, Usd, UsdGeom

    from usdposer.io.read_skel import read_asset
    from usdposer.render.cameras import cameras
    from usdposer.render.raster import render_pose

    folder, asset, rig = fox
    out = tmp_path / "studio.usda"
    Usd.Stage.Open(str(folder / "fox.usdc")).Export(str(out))
    stage = Usd.Stage.Open(str(out))
    src = next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
    UsdGeom.Imageable(src).CreatePurposeAttr(UsdGeom.Tokens.render)
    for name, purpose, hidden in (("proxy", UsdGeom.Tokens.proxy, False), ("guide", UsdGeom.Tokens.guide, False),
                                  ("outfit", UsdGeom.Tokens.default_, True)):
        path = src.GetPath().GetParentPath().AppendChild(name)
        Sdf.CopySpec(stage.GetRootLayer(), src.GetPath(), stage.GetRootLayer(), path)
        prim = stage.GetPrimAtPath(path)
        UsdGeom.Imageable(prim).CreatePurposeAttr(purpose)
        if hidden:
            UsdGeom.Imageable(prim).MakeInvisible()
        P = np.asarray(UsdGeom.Mesh(prim).GetPointsAttr().Get())
        UsdGeom.Mesh(prim).GetPointsAttr().Set((P.mean(0) + 1.3 * (P - P.mean(0))).astype(np.float32))
    stage.GetRootLayer().Save()
    studio = read_asset(out)
    other = studio.rig().to(torch.float64)
    assert [m.path for m in other.meshes] == [m.path for m in rig.meshes]
    assert sorted(p.prim.rsplit("/", 1)[-1] for p in studio.problems if p.kind == "not-drawn") == [
        "guide", "outfit", "proxy"]
    pose = _fox_pose(asset, rig)
    cam = cameras(rig, pose, 160, 128)[0]
    assert np.array_equal(render_pose(other, pose, [cam])[0], render_pose(rig, pose, [cam])[0])

    def findings(path):
        r = subprocess.run(CLI + ["check", str(path), "--json"], capture_output=True, text=True)
        return sorted((f["id"], f["prim"], f["message"]) for f in json.loads(r.stdout)["files"][0]["findings"])

    assert findings(out) == findings(folder / "fox.usdc")
