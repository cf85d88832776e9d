"""AKD distillation: tiny random-weight Wan and CogVideoX priors built from config (diffusers-test style) pushed
through a real SDS step from the Fox's joint angles, CFG linearity, loading from a local folder, the SDS surrogate's
gradient, the analytic teacher through the real optimisation loop, and `usdposer distill` (layer, report, resume)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

CLI = [sys.executable, "-m", "usdposer.commands._entry"]


@pytest.fixture(scope="module")
def fox(fox_usdc):
    from usdposer.io.read_skel import read_asset

    return fox_usdc.parent, read_asset(fox_usdc).rig().to(torch.float64)


def _render_clip(rig, angles, size=32, gaussians=600):
    from usdposer.core.kinematics import decompose_trs
    from usdposer.core.rotations import axis_angle_to_quat, quat_multiply
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.render.splat import follow_camera, render
    from usdposer.types import Pose

    F, J = angles.shape[:2]
    t, q, s = decompose_trs(rig.rest_local)
    pose = Pose(quat_multiply(q.expand(F, J, 4), axis_angle_to_quat(angles)), t.expand(F, J, 3), s.expand(F, J, 3))
    ga = gaussians_from_rig(rig, gaussians)
    mu, cov = ga.posed(rig, pose, backend="torch")
    frames = [render(mu[f], cov[f], ga.colors, ga.opacities, follow_camera(mu[f].detach(), size, size))[0]
              for f in range(F)]
    return torch.stack(frames).permute(3, 0, 1, 2)[None] * 2 - 1  # (1, 3, F, H, W)


@pytest.mark.parametrize("kind", ["wan", "cogvideox"])
def test_tiny_prior_sds_step_reaches_the_joint_angles(fox, kind):
    from usdposer.models.video_prior import sds_loss, tiny_prior, tiny_text

    _, rig = fox
    prior, text = tiny_prior(kind), tiny_text()
    angles = torch.zeros(5, rig.num_joints, 3, dtype=torch.float64, requires_grad=True)
    video = _render_clip(rig, angles)
    z = prior.encode(video.float())
    assert z.shape[0] == 1 and z.shape[2] == 2 and z.shape[-1] == 4  # 5 frames -> 2 latent frames, 32 px -> 4
    g = prior.sds_gradient(z, 0.5, text, guidance=7.5, generator=torch.Generator().manual_seed(0))
    assert g.shape == z.shape and torch.isfinite(g).all() and g.abs().sum() > 0
    sds_loss(z, g).backward()
    assert torch.isfinite(angles.grad).all() and angles.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["wan", "cogvideox"])
def test_guidance_acts_linearly_on_the_clean_latent(kind):
    from usdposer.models.video_prior import tiny_prior, tiny_text

    prior, text = tiny_prior(kind), tiny_text()
    C = 16 if kind == "wan" else 4
    z_t = torch.randn(1, C, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    est = {w: prior.clean_estimate(z_t, 0.4, text, w) for w in (0.0, 1.0, 5.0)}
    assert torch.allclose(est[5.0], est[0.0] + 5.0 * (est[1.0] - est[0.0]), atol=1e-4)


def test_sds_surrogate_gradient_is_g():
    from usdposer.models.video_prior import sds_loss

    z = torch.randn(1, 4, 2, 3, 3, requires_grad=True)
    g = torch.randn_like(z)
    (grad,) = torch.autograd.grad(sds_loss(z, g), z)
    assert torch.allclose(grad, g, atol=1e-6)  # z - (z - g) rounds in float32


def test_priors_load_from_a_local_diffusers_folder(tmp_path):
    from usdposer.models.video_prior import CogVideoXPrior, WanPrior, load_prior, tiny_prior, tiny_text

    for kind, cls, name in (("wan", WanPrior, "Wan-tiny"), ("cogvideox", CogVideoXPrior, "CogVideoX-tiny")):
        tiny = tiny_prior(kind)
        folder = tmp_path / name
        tiny.vae.save_pretrained(folder / "vae")
        tiny.transformer.save_pretrained(folder / "transformer")
        if kind == "cogvideox":
            tiny.scheduler.save_pretrained(folder / "scheduler")
        loaded = load_prior(str(folder))
        assert isinstance(loaded, cls)
        z_t = torch.randn(1, 16 if kind == "wan" else 4, 2, 4, 4, generator=torch.Generator().manual_seed(2))
        assert torch.allclose(loaded.clean_estimate(z_t, 0.3, tiny_text(), 2.0),
                              tiny.clean_estimate(z_t, 0.3, tiny_text(), 2.0), atol=1e-5)


def test_full_size_architectures_have_the_released_parameter_counts():
    """The configs bench/distill.py times on a GPU are the released models': built on the meta device (no memory),
    Wan2.1-T2V-1.3B's transformer has 1.42 B parameters and CogVideoX-5B's 5.57 B."""
    import diffusers
    from usdposer.models.video_prior import FULL_SIZE

    want = {"wan2.1-t2v-1.3b": 1.419e9, "cogvideox-5b": 5.570e9}
    for name, (kind, tr_cfg, _, _, (H, W)) in FULL_SIZE.items():
        with torch.device("meta"):
            cls = diffusers.WanTransformer3DModel if kind == "wan" else diffusers.CogVideoXTransformer3DModel
            n = sum(p.numel() for p in cls(**tr_cfg).parameters())
        assert abs(n - want[name]) / want[name] < 2e-3, (name, n)
        assert H % 16 == 0 and W % 16 == 0


def test_cogvideox_prior_passes_rotary_embeddings_like_the_pipeline():
    """CogVideoX-5B is trained with 3D rotary embeddings that its pipeline, not its transformer, computes: the prior
    must pass them (a tiny rotary config: the guided estimate differs from the transformer run without them, and the
    embeddings cover every latent token)."""
    import diffusers
    from usdposer.models.video_prior import CogVideoXPrior, tiny_prior, tiny_text

    torch.manual_seed(0)
    tr = diffusers.CogVideoXTransformer3DModel(num_attention_heads=4, attention_head_dim=16, in_channels=4,
                                               out_channels=4, time_embed_dim=2, text_embed_dim=32, num_layers=1,
                                               sample_width=8, sample_height=8, sample_frames=9, patch_size=2,
                                               temporal_compression_ratio=4, max_text_seq_length=8,
                                               use_rotary_positional_embeddings=True)
    prior = CogVideoXPrior(tiny_prior("cogvideox").vae, tr)
    cos, sin = prior.rotary(3, 8, 6, "cpu")
    assert cos.shape == sin.shape == (3 * 4 * 3, 16)  # f x (h/p) x (w/p) tokens, head dim
    z_t, text = torch.randn(1, 4, 3, 8, 6, generator=torch.Generator().manual_seed(3)), tiny_text()
    with_rope = prior.clean_estimate(z_t, 0.5, text, 1.0)
    emb = torch.cat([text.uncond, text.cond])
    k = prior._index(0.5)
    a = float(prior.alphas[k])
    v = tr(hidden_states=z_t.permute(0, 2, 1, 3, 4).repeat(2, 1, 1, 1, 1), encoder_hidden_states=emb,
           timestep=torch.full((2,), k), return_dict=False)[0][1:].permute(0, 2, 1, 3, 4)
    without = math.sqrt(a) * z_t - math.sqrt(1 - a) * v
    assert with_rope.shape == without.shape and not torch.allclose(with_rope, without, atol=1e-4)


def _analytic_teacher_run(rig, target, cfg):
    """Render the target motion (angles relative to rest, (F, J, 3)) from the side, make it the analytic teacher,
    distill from the rest pose: (rest rotations, target rotations, DistillResult)."""
    from usdposer.models.distill import distill_motion
    from usdposer.models.video_prior import AnalyticPrior

    from usdposer.core.kinematics import decompose_trs
    from usdposer.core.rotations import axis_angle_to_quat, quat_multiply
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.render.splat import follow_camera, render
    from usdposer.types import Pose

    F, J = target.shape[:2]
    ga = gaussians_from_rig(rig, cfg.gaussians, generator=torch.Generator().manual_seed(cfg.seed))
    t, q, s = decompose_trs(rig.rest_local)
    q_rest = q.expand(F, J, 4)
    q_target = quat_multiply(q_rest, axis_angle_to_quat(target))
    mu, cov = ga.posed(rig, Pose(q_target, t.expand(F, J, 3), s.expand(F, J, 3)), backend="torch")
    cams = [follow_camera(mu[f], cfg.width, cfg.height, yaw_deg=90) for f in range(F)]
    video = torch.stack([render(mu[f], cov[f], ga.colors, ga.opacities, cams[f], ground=None)[0] for f in range(F)])
    prior = AnalyticPrior(video.permute(3, 0, 1, 2)[None].float() * 2 - 1, factor=2)
    return q_rest, q_target, distill_motion(rig, prior, prior.embed(""), cfg, cameras=cams)


def test_analytic_teacher_pulls_the_motion_towards_its_target(fox):
    """A teacher whose clean-latent prediction is the (average-pooled) render of a target motion: SDS through the real
    skinning, renderer and optimiser drives the image loss down by nearly two orders of magnitude and moves the rotated
    joints towards their targets. (On the 24-joint Fox at 48 px a single view leaves parent/child compensations
    unresolved, so this one asserts progress; the 5-degree recovery is checked on RiggedSimple below.)"""
    from usdposer.models.distill import DistillConfig

    from usdposer.core.rotations import quat_angle

    _, rig = fox
    F, J, W = 3, rig.num_joints, 48
    target = torch.zeros(F, J, 3, dtype=torch.float64)
    moved = [rig.joint_index(n) for n in ("b_Head_05", "b_Tail01_012", "b_LeftLeg01_015", "b_RightUpperArm_06")]
    for f in range(F):
        for k, j in enumerate(moved):
            target[f, j, 0] = math.radians(25) * math.sin(2 * math.pi * (f / F + k / 4))
    cfg = DistillConfig(iterations=120, frames=F, width=W, height=W, gaussians=1500, smooth_weight=0, ground_weight=0,
                        forward_speed=0, lr=0.005, guidance=1.0, render_ground=False)
    q_rest, q_target, res = _analytic_teacher_run(rig, target, cfg)
    assert res.losses[-1]["sds"] < 0.02 * res.losses[0]["sds"]  # measured: 3.64 -> 0.042
    before = quat_angle(q_rest, q_target)[:, moved].mean()
    after = quat_angle(res.rotations, q_target)[:, moved].mean()
    assert after < 0.85 * before, (math.degrees(after), math.degrees(before))  # measured: 15.6 -> 11.6 degrees


def test_distill_cli_writes_layer_report_and_resumes(fox, tmp_path):
    from usdposer.io.read_skel import read_asset

    d, _ = fox
    out, state = tmp_path / "fox.distill.usdc", tmp_path / "state"
    base = CLI + ["distill", str(d / "fox.usdc"), "--prompt", "a fox running", "--model", "tiny-wan", "--frames", "5",
                  "--size", "32x32", "--gaussians", "400", "-o", str(out)]
    r = subprocess.run(base + ["--iterations", "2", "--state", str(state), "--vae-grad", "subset", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["iterations"] == 2 and set(rep["seconds_per_iteration"]) >= {"rendering", "encode", "prior", "backward"}
    clip = read_asset(out).clip(read_asset(out).rig())
    assert clip.name == "usdposerDistill" and len(clip) == 5
    assert (tmp_path / "fox.distill.loss.png").exists() and (state / "state.safetensors").exists()
    r = subprocess.run(base + ["--iterations", "4", "--resume", str(state), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    losses = json.loads((tmp_path / "fox.distill.json").read_text())["losses"]
    assert [rec["iteration"] for rec in losses] == [2, 3]
    for args, needle in ((["--frames", "6"], "4k+1"), (["--size", "30x30"], "multiples of 16"),
                         (["--resume", str(tmp_path / "nope")], "not a distill state"),
                         (["--model", str(tmp_path / "no-model")], "no such folder"),
                         (["--model", "tiny-sora"], "no such tiny prior")):
        r = subprocess.run(base + ["--iterations", "1"] + args, capture_output=True, text=True)
        assert r.returncode == 2 and needle in r.stderr, r.stderr
    # a state for other frames, or an edited one: one line (a shape mismatch and text were internal errors)
    import shutil

    edited = tmp_path / "edited"
    shutil.copytree(state, edited)
    meta = json.loads((edited / "state.json").read_text())
    (edited / "state.json").write_text(json.dumps({**meta, "iteration": "x"}))
    for args, needle in ((["--frames", "9", "--resume", str(state)], "the state is of (5, "),
                         (["--resume", str(edited)], "does not hold what it should")):
        r = subprocess.run(base[:base.index("--frames")] + base[base.index("--frames") + 2:] + ["--iterations", "3"]
                           + (["--frames", "5"] if "--frames" not in args else []) + args, capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr


def test_ctrl_c_in_distill_says_what_was_kept_and_resume_goes_on(fox, tmp_path):
    """Ctrl-C in a distillation that saves its state (--state, every tenth of the iterations) printed "aborted":
    now one line names the iteration reached, the iteration kept in the folder and the --resume that goes on; exit
    130; the state folder holds that iteration."""
    from conftest import interrupt_when

    d, _ = fox
    state = tmp_path / "state"
    cmd = CLI + ["distill", str(d / "fox.usdc"), "--prompt", "a fox running", "--model", "tiny-wan", "--frames", "5",
                 "--size", "32x32", "--gaussians", "400", "-o", str(tmp_path / "fox.distill.usdc"), "--iterations",
                 "300", "--state", str(state), "-q"]
    code, lines = interrupt_when(cmd, state / "state.json")
    kept = json.loads((state / "state.json").read_text())["iteration"]
    assert code == 130 and len(lines) == 1, lines
    assert lines[0].startswith("interrupted at iteration ") and f"state of iteration {kept} is in" in lines[0], lines
    assert f"--resume {state}" in lines[0] and kept % 30 == 0 and kept < 300
    assert not (tmp_path / "fox.distill.usdc").exists()


def test_analytic_teacher_recovers_a_shared_assets_motion_within_5_degrees(tmp_path):
    """The issue's end-to-end check: Cesium's RiggedSimple cylinder bends through 3 frames (seen from the side);
    the analytic teacher makes SDS recover the motion from the rest pose through the real skinning, renderer, SDS
    surrogate and Adam loop, with the mean joint angle error below 5 degrees (measured 1.4, from 8.8). The cylinder
    is bundled (assets/khronos), so this runs on a clean clone."""
    from conftest import ASSETS
    from usdposer.models.distill import DistillConfig

    from usdposer.core.rotations import quat_angle
    from usdposer.io.dataset import read_any

    rig = read_any(ASSETS / "khronos" / "RiggedSimple.glb", tmp_path, strict=False).rig().to(torch.float64)
    F, J, W = 3, rig.num_joints, 48
    target = torch.zeros(F, J, 3, dtype=torch.float64)
    for f in range(F):
        target[f, 1, 2] = math.radians(30) * math.sin(2 * math.pi * (f / F + 0.25) + 0.5)
    cfg = DistillConfig(iterations=200, frames=F, width=W, height=W, gaussians=1500, smooth_weight=0, ground_weight=0,
                        forward_speed=0, lr=0.01, guidance=1.0, render_ground=False)
    q_rest, q_target, res = _analytic_teacher_run(rig, target, cfg)
    start = math.degrees(float(quat_angle(q_rest, q_target).mean()))
    err = math.degrees(float(quat_angle(res.rotations, q_target).mean()))
    assert start > 5 and err < 5, (start, err)


def test_a_skeleton_forests_secondary_roots_ride_their_limbs_so_distilling_tears_nothing(tmp_path):
    """The Quaternius Horse is a skeleton forest: the body's tree and four hoof IK roots that carry the hooves' skin.
    Distillation moves the body forward; each hoof root rides the leg joint it sits on at rest, so every edge of the
    skinned mesh keeps its rest length (to 20 %) in every frame. (When only the first root moved, the hooves stayed
    where the clip began and their edges stretched to several times their length.)"""
    from conftest import ASSETS
    from usdposer.models.distill import DistillConfig, distill_motion
    from usdposer.models.video_prior import load_prior, tiny_text

    from usdposer.core.kinematics import decompose_trs
    from usdposer.core.posing import main_root, root_attachments, skin
    from usdposer.io.dataset import read_any
    from usdposer.types import Pose

    rig = read_any(ASSETS / "quaternius" / "Horse.glb", tmp_path, strict=False).rig().to(torch.float64)
    hooves = root_attachments(rig, Pose.rest(rig), 0.5)
    assert len(rig.roots) == 5 and len(hooves) == 4
    cfg = DistillConfig(iterations=2, frames=5, width=32, height=32, gaussians=400, vae_grad="subset")
    res = distill_motion(rig, load_prior("tiny-wan"), tiny_text(0), cfg)
    main = main_root(rig)
    assert torch.equal(res.translations[:, main], res.root)
    assert float((res.root[-1] - res.root[0]).norm()) > 0.2 * res.height  # the body walked away from the start
    _, _, s = decompose_trs(rig.rest_local)
    posed = skin(rig, Pose(res.rotations, res.translations, s.expand(cfg.frames, -1, -1)), backend="torch")
    rest = skin(rig, Pose.rest(rig), backend="torch")
    for m, p, r in zip(rig.meshes, posed, rest):
        a, b = torch.cat([m.faces[:, [0, 1]], m.faces[:, [1, 2]], m.faces[:, [2, 0]]]).long().T  # every edge
        before, after = (r[:, a] - r[:, b]).norm(dim=-1), (p[:, a] - p[:, b]).norm(dim=-1)  # (1, E), (F, E)
        keep = before[0] > 1e-4 * res.height
        stretch = after[:, keep] / before[:, keep]
        assert float((stretch - 1).abs().max()) < 0.2, float(stretch.max())
