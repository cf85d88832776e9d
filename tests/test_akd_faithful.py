"""AKD as the paper renders it: a checkerboard fixed in the world, the heuristic shadow by the asset's height above
the ground, a camera that follows smoothly at a fixed distance, the paper's smoothness form, the bone-box ground term,
per-block VAE checkpointing with identical gradients, motion metrics in the reports, and the ablation bench."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from conftest import ASSETS, ROOT


@pytest.fixture(scope="module")
def fox(tmp_path_factory):
    from usdposer.io.dataset import read_any

    work = tmp_path_factory.mktemp("fox")
    return read_any(ASSETS / "khronos" / "Fox.glb", work, strict=False)


def _posed(rig, clip, frames):
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.types import Pose

    ga = gaussians_from_rig(rig, 800, generator=torch.Generator().manual_seed(0))
    pose = Pose(clip.rotations[frames].double(), clip.translations[frames].double(), clip.scales[frames].double())
    mu, cov = ga.posed(rig, pose, backend="torch")
    return ga, mu, cov


def test_the_board_is_fixed_in_the_world_across_a_moving_clip(fox):
    """Two different poses from one camera: wherever neither covers the ground, the ground pixels are identical
    with the fixed board; the old per-frame board changes them (so the test can tell the two apart)."""
    from usdposer.core.posing import character_height
    from usdposer.render.splat import board_size, camera_path, framing_distance, render

    rig = fox.rig().to(torch.float64)
    clip = fox.clip(rig, "Run")
    ga, mu, cov = _posed(rig, clip, [0, len(clip) // 2])
    cam = camera_path(mu[:1].mean(1), framing_distance(mu[0]), 64, 48, pitch_deg=25)[0]
    board = board_size(character_height(rig))

    def frame(f, checker):
        return render(mu[f], cov[f], ga.colors, ga.opacities, cam, checker=checker)

    (a, alpha_a), (b, alpha_b) = frame(0, board), frame(1, board)
    free = (alpha_a < 1e-3) & (alpha_b < 1e-3)
    assert free.sum() > 500  # plenty of bare ground
    assert torch.equal(a[free], b[free])
    (c, _), (d, _) = frame(0, "per-frame"), frame(1, "per-frame")
    assert not torch.equal(c[free], d[free])


def test_the_shadow_darkens_the_ground_below_a_lifted_character_by_the_formula():
    """A small blob lifted d metres above the ground: straight below it the ground is darkened by exactly
    1 - s_max exp(-beta d); far from it, not at all."""
    from usdposer.render.splat import ground_rays, look_at, render, shadow

    n = 50
    g = torch.Generator().manual_seed(0)
    d = 0.3
    means = torch.randn(n, 3, dtype=torch.float64, generator=g) * 0.01 + torch.tensor([0.0, d, 0.0],
                                                                                          dtype=torch.float64)
    lowest = float(means[:, 1].min())
    covs = torch.eye(3, dtype=torch.float64).expand(n, 3, 3) * 1e-6
    cols, op = torch.ones(n, 3, dtype=torch.float64), torch.full((n,), 0.9, dtype=torch.float64)
    s_max, beta = 0.6, 4.0
    below = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 5.0]], dtype=torch.float64)
    s = shadow(below, means, s_max, beta, footprint=0.05)
    assert s[0] == pytest.approx(1 - s_max * math.exp(-beta * lowest), rel=1e-9)
    assert s[1] == 1.0
    cam = look_at(torch.tensor([0.6, 3.0, 0.01]), torch.tensor([0.0, 0.0, 0.0]), 48, 48, fov_deg=25)
    lit, _ = render(means, covs, cols, op, cam, checker=10.0)
    dark, alpha = render(means, covs, cols, op, cam, checker=10.0, shadow_strength=s_max, shadow_beta=beta,
                         shadow_footprint=0.05)
    P, hit = ground_rays(cam, 0.0)
    want = shadow(P, means, s_max, beta, footprint=0.05)  # per pixel, from each pixel's ground point
    bare = hit & (alpha < 1e-9)  # ground the blob does not cover
    ratio = dark[bare] / lit[bare]
    assert torch.allclose(ratio, want[bare][:, None].expand_as(ratio), atol=1e-9)
    assert (want[bare] < 1 - 0.9 * s_max * math.exp(-beta * lowest)).any()  # the shadow is seen, nearly full depth
    assert (want[bare] == 1).any()  # and the ground far from it is untouched


def test_the_camera_path_is_smooth_at_a_fixed_distance():
    from usdposer.render.splat import camera_path

    F = 40
    t = torch.arange(F, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    centers = torch.stack([0.05 * t, 0.5 + 0.1 * torch.sin(t), 0.02 * t], 1) + 0.05 * torch.randn(F, 3, generator=g,
                                                                                                  dtype=torch.float64)
    cams = camera_path(centers, 3.0, 32, 32, smoothing=0.6)
    eyes = torch.stack([-c.viewmat[:3, :3].T @ c.viewmat[:3, 3] for c in cams])
    targets = torch.stack([eye + 3.0 * c.viewmat[2, :3] for eye, c in zip(eyes, cams)])
    raw = (centers[2:] - 2 * centers[1:-1] + centers[:-2]).norm(dim=1)
    smooth = (eyes[2:] - 2 * eyes[1:-1] + eyes[:-2]).norm(dim=1)
    assert smooth.max() < 0.25 * raw.max(), (smooth.max(), raw.max())
    assert torch.allclose((targets - eyes).norm(dim=1), torch.full((F,), 3.0, dtype=torch.float64))
    assert (targets - centers).norm(dim=1).max() < 0.3  # it still follows (the wobble is +-0.1, the noise 0.05)


def test_smoothness_is_one_mae_over_every_parameter():
    from usdposer.models.distill import laplacian_mae

    g = torch.Generator().manual_seed(0)
    angles, root = torch.randn(7, 5, 3, generator=g), torch.randn(7, 3, generator=g)
    lap = lambda x: (x[2:] - 2 * x[1:-1] + x[:-2]).abs()  # noqa: E731
    want = (lap(angles).sum() + lap(root).sum()) / (5 * 5 * 3 + 5 * 3)
    assert laplacian_mae(angles, root) == pytest.approx(float(want), rel=1e-6)


def test_bone_boxes_hold_their_mesh_parts_and_follow_the_bones(fox):
    """The ground term's boxes are the physics articulation's: at bind time each holds the vertices its joint
    dominates; posed, each corner moves rigidly with its joint."""
    from usdposer.models.distill import bone_box_corners, posed_box_corners

    from usdposer.core.posing import character_height
    from usdposer.types import Pose

    rig = fox.rig().to(torch.float64)
    h = character_height(rig)
    corners, joints = bone_box_corners(rig, 0.02 * h)
    mesh = rig.meshes[0]
    owner = mesh.joint_indices.gather(1, mesh.joint_weights.argmax(1, keepdim=True))[:, 0]
    inside = 0
    for k, j in enumerate(joints.tolist()):
        pts = mesh.points[owner == j].double()
        c = corners[k, :, :3]
        lo, hi = c.amin(0), c.amax(0)  # the box's world AABB contains the rotated box, so also its points
        inside += int(((pts >= lo - 1e-6) & (pts <= hi + 1e-6)).all(1).sum())
    assert inside == len(mesh.points)
    clip = fox.clip(rig, "Run")
    pose = Pose(clip.rotations[:3].double(), clip.translations[:3].double(), clip.scales[:3].double())
    moved = posed_box_corners(rig, pose, corners, joints).reshape(3, len(joints), 8, 3)
    side = (moved[:, :, 0] - moved[:, :, 1]).norm(dim=-1)  # one box edge: rigid, so its length is the bind one
    assert torch.allclose(side, (corners[:, 0, :3] - corners[:, 1, :3]).norm(dim=-1).expand_as(side), atol=1e-9)


@pytest.mark.parametrize("kind", ["wan", "cogvideox"])
def test_vae_checkpointing_per_block_leaves_values_and_gradients_identical(kind):
    from usdposer.models.video_prior import tiny_prior

    prior = tiny_prior(kind)
    g = torch.Generator().manual_seed(0)
    video = torch.randn(1, 3, 9, 32, 32, generator=g, requires_grad=True)
    weights = torch.rand(1, generator=g)
    plain = prior.encode_raw(video)
    (g_plain,) = torch.autograd.grad((plain * weights).sum() + (plain**2).sum(), video)
    prior.checkpoint_vae = True
    ck = prior.encode_raw(video)
    (g_ck,) = torch.autograd.grad((ck * weights).sum() + (ck**2).sum(), video)
    assert torch.equal(plain, ck) and torch.allclose(g_plain, g_ck, atol=1e-7)
    if kind == "cogvideox":
        assert prior.vae.is_gradient_checkpointing  # diffusers' own, per block


def test_jitter_tells_a_trembling_clip_from_a_smooth_one(fox):
    from dataclasses import replace

    from usdposer.core.motion import motion_metrics
    from usdposer.core.rotations import axis_angle_to_quat, quat_multiply

    rig = fox.rig().to(torch.float64)
    clip = fox.clip(rig, "Walk")
    smooth = motion_metrics(rig, clip)
    g = torch.Generator().manual_seed(0)
    shake = axis_angle_to_quat(torch.randn(*clip.rotations.shape[:2], 3, generator=g, dtype=torch.float64) * 0.05)
    trembling = motion_metrics(rig, replace(clip, rotations=quat_multiply(clip.rotations.double(), shake)))
    assert trembling.jitter > 3 * smooth.jitter > 0
    assert smooth.root_travel >= 0 and math.isfinite(smooth.root_drift)


def test_distill_report_carries_motion_metrics_and_peak_memory(tmp_path, fox_usdc):
    out = tmp_path / "fox.distill.usdc"
    r = subprocess.run([sys.executable, "-m", "usdposer.commands._entry", "distill", str(fox_usdc), "--prompt", "run",
                        "--model", "tiny-wan", "--frames", "5", "--size", "32x32", "--gaussians", "300",
                        "--iterations", "2", "-o", str(out), "--preview", str(tmp_path / "p.gif"), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "fox.distill.json").read_text())
    assert {"skating", "penetration_max", "jitter", "root_drift", "root_travel"} <= set(rep["motion"])
    assert rep["peak_memory_bytes"] > 0 and rep["config"]["shadow"] is True and rep["config"]["board"] == 0.25
    assert json.loads(r.stdout)["motion"]["frames"] == 5 and (tmp_path / "p.gif").exists()


def test_paper_defaults():
    from usdposer.models.distill import DistillConfig

    from usdposer.physics.tracking import TrackConfig

    c = DistillConfig()
    assert (c.iterations, c.guidance, c.smooth_weight, c.ground_weight, c.t_min, c.t_end_start, c.t_end_final) == \
        (10_000, 100.0, 2e5, 1e7, 0.02, 0.98, 0.5)
    assert c.shadow and c.board == 0.25 and TrackConfig().iterations == 200


def test_ablation_bench_small_mode(tmp_path):
    out = tmp_path / "ablation.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "akd_ablation.py"), "--small", "--json", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())["characters"]["CesiumMan"]
    assert set(res) == {"full", "no-ground", "rescaling-board"}
    for row in res.values():
        assert math.isfinite(row["angle_error_deg"]) and math.isfinite(row["root_error_pct"]) and row["s_per_it"] > 0


def _tiny_pipeline_folder(folder, kind: str):
    """A diffusers pipeline folder in the released layout (vae/, transformer/, text_encoder/, tokenizer/, and for
    CogVideoX scheduler/), every part a tiny random model saved with ``save_pretrained``: what a user's
    ``Wan2.1-T2V-1.3B-Diffusers`` or ``CogVideoX-5b`` download looks like, at test size."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers
    from usdposer.models.video_prior import TINY_TEXT_DIM, tiny_prior

    tiny = tiny_prior(kind)
    tiny.vae.save_pretrained(folder / "vae")
    tiny.transformer.save_pretrained(folder / "transformer")
    if kind == "cogvideox":
        tiny.scheduler.save_pretrained(folder / "scheduler")
    words = ["[PAD]", "[UNK]", "a", "fox", "running", "jumping"]
    cls = transformers.UMT5EncoderModel if kind == "wan" else transformers.T5EncoderModel
    conf = (transformers.UMT5Config if kind == "wan" else transformers.T5Config)(
        vocab_size=len(words), d_model=TINY_TEXT_DIM, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        pad_token_id=0, decoder_start_token_id=0)
    cls(conf).save_pretrained(folder / "text_encoder")
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]").save_pretrained(
        folder / "tokenizer")
    return tiny


@pytest.mark.parametrize("kind, name", [("wan", "Wan2.1-T2V-tiny-Diffusers"), ("cogvideox", "CogVideoX-tiny")])
def test_distill_loads_a_local_diffusers_folder_through_the_cli(tmp_path, fox_usdc, kind, name):
    """``--model PATH`` on a folder in the released layout runs the whole verb (text encoder included) through the
    code a real download takes; a folder that is not one is a one-line error, exit 2."""
    pytest.importorskip("transformers", reason="the dev extra installs transformers; without it this path is untested")
    folder = tmp_path / name
    _tiny_pipeline_folder(folder, kind)
    out = tmp_path / "fox.distill.usdc"
    base = [sys.executable, "-m", "usdposer.commands._entry", "distill", str(fox_usdc), "--prompt", "a fox running",
            "--frames", "5", "--size", "32x32", "--gaussians", "200", "--iterations", "1", "-o", str(out), "-q"]
    r = subprocess.run(base + ["--model", str(folder)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.exists()
    bad = tmp_path / "not-a-model"
    (bad / "vae").mkdir(parents=True)
    r = subprocess.run(base + ["--model", str(bad)], capture_output=True, text=True)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "cannot load" in lines[0], r.stderr
