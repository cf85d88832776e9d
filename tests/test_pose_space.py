"""The pose space end to end on bundled assets: rig features, datasets, the denoiser and its checkpoints, training
(tiny configs, seconds), DDIM sampling and inversion, ``usdposer sample`` layers (layouts A and B) and ``eval``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ASSETS
from pxr import Usd, UsdSkel

CLI = [sys.executable, "-m", "usdposer.commands._entry"]


# ------------------------------------------------------------------------------------------------ rig features
def test_tree_distance_matches_scipy_shortest_paths():
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path

    from usdposer.core.posespace import tree_distance

    parents = torch.tensor([-1, 0, 1, 1, 0, 4, -1, 6])  # two trees
    J = len(parents)
    rows = [j for j, p in enumerate(parents.tolist()) if p >= 0]
    A = csr_matrix((np.ones(len(rows)), (rows, [parents[j].item() for j in rows])), shape=(J, J))
    ref = shortest_path(A, directed=False, unweighted=True)
    ref[np.isinf(ref)] = J
    assert np.array_equal(tree_distance(parents).numpy(), ref.astype(np.int64))


def test_name_side_and_words():
    from usdposer.core.posespace import name_side, name_words

    assert name_words("mixamorig:LeftUpLeg") == ["mixamorig", "left", "up", "leg"]
    for n, s in [("LeftUpLeg", -1), ("upper_leg_L", -1), ("R_Arm", 1), ("hand.r", 1), ("Spine1", 0), ("Head", 0),
                 ("Leg", 0), ("RightFoot", 1)]:
        assert name_side(n) == s, n


@pytest.mark.parametrize("asset", ["fox", "rodent"])
def test_grounding_puts_the_lowest_skinned_point_on_the_floor_by_either_skinning_path(tiny, asset, monkeypatch):
    """Grounding skins with torch for small batches and with the Warp kernel for large ones (the rodent's 256 samples
    took 2.2 s in the float64 reference): both put every pose's lowest skinned point, as OpenUSD-conventions torch
    skinning in float64 finds it, on y = 0 within float32 rounding."""
    import usdposer.core.posespace as ps
    from usdposer.core.posing import character_height, skin
    from usdposer.io.importers import import_any
    from usdposer.io.read_skel import read_asset

    path = tiny["fox"]
    if asset == "rodent":
        path = tiny["root"] / "rodent.usdc"
        if not path.exists():
            import_any(Path(__file__).resolve().parents[1] / "assets" / "mujoco" / "rodent" / "rodent.xml", path)
    rig = read_asset(path).rig().to(torch.float64)
    six = torch.nn.functional.normalize(torch.randn(6, rig.num_joints, 2, 3, generator=torch.Generator().manual_seed(1),
                                                    dtype=torch.float64) * 0.3 + torch.tensor([[1.0, 0, 0], [0, 1, 0]],
                                                    dtype=torch.float64), dim=-1).reshape(6, rig.num_joints, 6)
    lowest = {}
    for path_name, threshold in [("torch", 10**12), ("warp", 0)]:
        monkeypatch.setattr(ps, "GROUND_TORCH_WORK", threshold)
        pose = ps.pose_from_6d(rig, six)
        pts = torch.cat(skin(rig, pose, backend="torch"), 1)
        y = pts @ rig.skel_to_world[1, :3] + rig.skel_to_world[1, 3]
        lowest[path_name] = y.min(1).values
    h = character_height(rig)
    assert lowest["torch"].abs().max() < 1e-8 * h
    assert lowest["warp"].abs().max() < 1e-5 * h


def test_pose_6d_round_trip_and_heading(tiny):
    from usdposer.core.posespace import pose_from_6d, pose_to_6d
    from usdposer.core.posing import joint_transforms
    from usdposer.io.read_skel import read_asset

    asset = read_asset(tiny["fox"])
    rig = asset.rig()
    clip = asset.clip(rig)
    six = pose_to_6d(rig, clip, canonical_heading=False)
    back = pose_from_6d(rig, six, ground=False)
    a = joint_transforms(rig, clip)[:, :, :3, :3]
    b = joint_transforms(rig, back)[:, :, :3, :3]
    assert torch.allclose(a, b, atol=1e-6)
    # heading removed: the root's rotation relative to rest has no twist about +Y
    from usdposer.core.kinematics import decompose_trs
    from usdposer.core.rotations import quat_conjugate, quat_multiply, sixd_to_quat

    _, q_rest, _ = decompose_trs(rig.rest_local)
    canon = pose_from_6d(rig, pose_to_6d(rig, clip), ground=True)
    r = rig.roots[0]
    world_delta = quat_multiply(canon.rotations[:, r], quat_conjugate(q_rest[r]).expand(len(clip), 4))
    assert torch.allclose(world_delta[:, 2], torch.zeros(len(clip), dtype=world_delta.dtype), atol=1e-6)
    # ground: the lowest skinned point of every pose is at y = 0
    from usdposer.core.posing import skin

    pts = torch.cat(skin(rig, canon, backend="torch"), 1)
    y = pts @ rig.skel_to_world[1, :3].to(pts) + rig.skel_to_world[1, 3]
    assert torch.allclose(y.min(1).values, torch.zeros(len(clip), dtype=y.dtype), atol=1e-6)
    assert sixd_to_quat(six).shape == (len(clip), rig.num_joints, 4)


# ------------------------------------------------------------------------------------------------ dataset
def test_dataset_split_by_character_and_safetensors_only(tiny):
    from safetensors import safe_open

    m, data = tiny["manifest"], tiny["root"] / "data"
    ids = {c["id"]: c for c in m["characters"]}
    assert ids["quaternius/Trex"]["split"] == "heldout" and ids["cmu/cmu_walk"]["split"] == "val"
    assert ids["khronos/Fox"]["split"] == "train"
    assert m["counts"]["heldout"] == ids["quaternius/Trex"]["poses"] > 0
    # near-duplicates dropped, never more poses than frames
    assert all(c["poses"] <= c["frames"] for c in m["characters"])
    assert ids["cmu/cmu_walk"]["poses"] < ids["cmu/cmu_walk"]["frames"]
    assert ids["rodent/rodent"]["has_limits"] and ids["rodent/rodent"]["poses"] == 0
    assert "CC0" in ids["quaternius/Trex"]["licence"] and "Apache" in ids["rodent/rodent"]["licence"]
    files = [p for p in data.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".json", ".safetensors"}
    with safe_open(str(data / ids["khronos/Fox"]["shard"]), "pt") as f:
        poses = f.get_tensor("poses")
        assert poses.shape[1:] == (24, 6) and json.loads(f.metadata()["joints"])[0]
    # what training reads never includes the held-out character
    from usdposer.io.dataset import load_dataset

    assert "quaternius/Trex" not in {c.id for c in load_dataset(data, ("train", "val"))}


def test_dataset_cli_reports_bad_sources(tmp_path):
    bad = tmp_path / "broken.glb"
    bad.write_bytes(b"glTF\x02\x00\x00\x00garbage")
    args = CLI + ["dataset", "build", str(ASSETS / "khronos" / "Fox.glb"), str(bad), "-o", str(tmp_path / "d"), "--json"]
    r = subprocess.run(args, capture_output=True, text=True)  # by default a bad source fails the build, listed
    assert r.returncode == 2 and "--skip-bad" in r.stderr and not (tmp_path / "d").exists()
    out = json.loads(r.stdout)
    assert len(out["characters"]) == 1 and out["failed"][0]["source"].endswith("broken.glb")
    r = subprocess.run(args + ["--skip-bad"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["characters"]) == 1 and out["failed"][0]["source"].endswith("broken.glb")
    assert "skipped" in r.stderr
    r = subprocess.run(CLI + ["dataset", "build", str(ASSETS / "khronos" / "Fox.glb"), "-o", str(tmp_path / "e"),
                              "--holdout", "Nobody"], capture_output=True, text=True)
    assert r.returncode == 2 and "nobody" in r.stderr.lower()
    # train and eval on something that is not a dataset / checkpoint: one line, exit 2, nothing written
    r = subprocess.run(CLI + ["train", str(tmp_path / "missing"), "-o", str(tmp_path / "ck")], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "not a usdposer dataset" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ck").exists()
    r = subprocess.run(CLI + ["eval", str(tmp_path / "missing"), str(tmp_path / "d")], capture_output=True, text=True)
    assert r.returncode == 2 and "not a usdposer checkpoint" in r.stderr


# ------------------------------------------------------------------------------------------------ model
def test_denoiser_config_round_trip_and_padding(tmp_path):
    from usdposer.models.pose_denoiser import PoseDenoiser
    from usdposer.models.pose_prior import PosePrior

    torch.manual_seed(0)
    net = PoseDenoiser(feature_dim=51, width=32, depth=2, heads=2)
    for p in net.parameters():  # zero-initialised gates would make every output 0: perturb everything
        p.data.add_(0.05 * torch.randn_like(p))
    prior = PosePrior(net, torch.randn(6) * 0.1, torch.rand(6) + 0.5, {"note": "test"})
    prior.save(tmp_path / "ck")
    assert {p.name for p in (tmp_path / "ck").iterdir()} == {"config.json", "model.safetensors"}
    again = PosePrior.load(tmp_path / "ck")
    public = lambda c: {k: v for k, v in dict(c).items() if not k.startswith("_")}
    assert public(again.denoiser.config) == public(net.config)
    x, t = torch.randn(3, 7, 6), torch.tensor([0, 500, 999])
    f, tr = torch.randn(3, 7, 51), torch.randint(0, 5, (3, 7, 7))
    assert torch.equal(net.eval()(x, t, f, tr), again.denoiser(x, t, f, tr))
    assert torch.equal(again.mean, prior.mean) and again.info["note"] == "test"
    # padding: extra masked joints do not change the real joints' output
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[:, 7:] = False
    xp, fp = torch.cat([x, torch.randn(3, 2, 6)], 1), torch.cat([f, torch.randn(3, 2, 51)], 1)
    trp = torch.full((3, 9, 9), 8)
    trp[:, :7, :7] = tr
    assert torch.allclose(net(xp, t, fp, trp, mask)[:, :7], net(x, t, f, tr), atol=1e-5)


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    from usdposer.models.pose_prior import PosePrior

    from usdposer.errors import InputError

    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(InputError, match="unreadable checkpoint"):
        PosePrior.load(tmp_path)
    with pytest.raises(InputError, match="not a usdposer checkpoint"):
        PosePrior.load(tmp_path / "missing")


def test_training_learns_and_resumes(tiny, tmp_path):
    from usdposer.models.training import TrainConfig, train

    res = tiny["result"]
    first, last = res.history[0], res.history[-1]
    assert res.steps == 150 and last["val_loss"] is not None
    assert last["train_loss"] < 0.9 * first["train_loss"] or last["train_loss"] < 0.8, res.history
    # resume: continue the same run to 180 steps
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(tiny["root"] / "ckpt", ck)
    more = train(tiny["root"] / "data", ck, TrainConfig(steps=180, batch_size=64, width=8, depth=1, heads=1,
                                                        val_every=30, lr=1e-3), resume=True, log=lambda m: None)
    assert more.steps == 180 and [h["step"] for h in more.history][-2:] == [150, 180]
    state = json.loads((ck / "training_state.json").read_text())
    assert state["step"] == 180 and state["config"]["width"] == 32  # architecture came from the checkpoint
    # a wall-clock budget stops early and still saves
    stopped = train(tiny["root"] / "data", tmp_path / "ck2", TrainConfig(steps=10**6, batch_size=8, width=8, depth=1,
                                                                         heads=1, max_minutes=0.02), log=lambda m: None)
    assert stopped.stopped_by == "max-minutes" and (tmp_path / "ck2" / "model.safetensors").exists()


def test_ddim_sampling_is_deterministic_and_inverts(tiny):
    from usdposer.models.pose_prior import PosePrior, RigCondition

    from usdposer.io.read_skel import read_asset

    prior = PosePrior.load(tiny["root"] / "ckpt")
    rig = read_asset(tiny["fox"]).rig()
    cond = RigCondition.from_rig(rig)
    a, za = prior.sample(cond, 8, steps=50, generator=torch.Generator().manual_seed(3))
    b, zb = prior.sample(cond, 8, steps=50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(za, zb)
    z = prior.invert(cond, a, steps=50)
    assert (z - za).abs().max() < 0.05 * za.abs().max()
    again, _ = prior.sample(cond, 8, steps=50, latents=z)
    assert (again - a).abs().max() < 0.05 * a.abs().max()  # DDIM inversion is approximate (discretisation)


def test_ancestral_sampling_stores_codes_that_decode_to_its_poses(tiny, tmp_path):
    """eta = 1 draws fresh noise at every step, so ``sample`` stores the poses' DDIM inversions: decoding those codes
    with the deterministic sampler gives the written poses back; the sampler is recorded as ddpm."""
    from usdposer.models.pose_prior import PosePrior, RigCondition
    from usdposer.pipelines.sample import SampleOptions, sample

    from usdposer.core.posespace import pose_from_6d
    from usdposer.errors import InputError
    from usdposer.io.read_skel import read_asset
    from usdposer.io.write_skel import read_pose_library

    ckpt = tiny["root"] / "ckpt"
    prior = PosePrior.load(ckpt)
    assert prior.sampling_eta == 1.0  # new checkpoints sample ancestrally
    rig = read_asset(tiny["fox"]).rig()
    cond = RigCondition.from_rig(rig)
    a, za = prior.sample(cond, 8, steps=20, generator=torch.Generator().manual_seed(3), eta=1.0)
    b, _ = prior.sample(cond, 8, steps=20, generator=torch.Generator().manual_seed(3), eta=1.0)
    c, _ = prior.sample(cond, 8, steps=20, latents=za)  # the same start without the per-step noise
    assert torch.equal(a, b) and (a - c).abs().max() > 1e-3
    with pytest.raises(InputError, match="eta"):
        prior.sample(cond, 2, eta=1.5)

    out = tmp_path / "s.usdc"
    rep = sample(tiny["fox"], out, SampleOptions(n=6, seed=2, checkpoint=str(ckpt), steps=20, noisy_steps=None,
                                                 refine=3))
    assert rep.eta == 1.0 and rep.sampler == "ddpm" and rep.latent_error < 0.05 and rep.noisy_steps is None
    stage = Usd.Stage.Open(str(out))
    skel = stage.GetPrimAtPath(rep.skeleton)
    assert skel.GetAttribute("usdposer:poseSpace:sampler").Get() == "ddpm"
    pose, latents = read_pose_library(stage.GetPrimAtPath(rep.library), rig)
    decoded, _ = prior.sample(cond, 6, steps=20, latents=torch.tensor(np.asarray(latents)).float().reshape(6, -1, 6))
    again = pose_from_6d(rig.to(torch.float64), decoded.double())
    dot = (again.rotations * pose.rotations.double()).sum(-1).abs().clamp(max=1)
    assert float(2 * torch.acos(dot).max()) < 0.05  # radians, every joint of every pose
    det = sample(tiny["fox"], tmp_path / "d.usdc", SampleOptions(n=2, seed=2, checkpoint=str(ckpt), steps=20, eta=0.0))
    assert det.sampler == "ddim" and det.latent_error is None


def test_ctrl_c_in_training_says_what_was_kept_and_resume_goes_on(tiny, tmp_path):
    """Training saves a checkpoint and its state every 1000 steps, so Ctrl-C after one is not "nothing was written"
    (the CLI printed "aborted", and its error path says nothing was written): one line names the step interrupted,
    the step kept and --resume; exit 130; the same command with --resume goes on from the kept step."""
    from conftest import interrupt_when

    out = tmp_path / "ckpt"
    cmd = [sys.executable, "-m", "usdposer.commands._entry", "train", str(tiny["root"] / "data"), "-o", str(out),
           "--width", "16", "--depth", "1", "--heads", "2", "--batch-size", "8", "-q"]
    code, lines = interrupt_when(cmd + ["--steps", "1000000"], out / "training_state.json")
    assert code == 130 and len(lines) == 1, lines
    assert lines[0].startswith("interrupted at step ") and "training state of step 1000 are in" in lines[0], lines
    assert "--resume" in lines[0]
    r = subprocess.run(cmd + ["--steps", "1005", "--resume", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == 1005 and json.loads((out / "training_state.json").read_text())["step"] == 1005


def test_steps_beyond_the_noise_levels_are_one_line_not_diffusers_error(tiny):
    """More DDIM steps than the prior has noise levels: diffusers' ValueError became an internal error (exit 4) in the
    CLI, and a batch job or the Python API still reaches it. Sampling, inversion and guided sampling refuse it with
    one InputError naming the option and the range, the CLI's range is the same number, and the edge is allowed."""
    from usdposer.commands._options import DDIM_STEPS
    from usdposer.models.pose_prior import SCHEDULER, PosePrior, RigCondition

    from usdposer.errors import InputError
    from usdposer.io.read_skel import read_asset

    most = SCHEDULER["num_train_timesteps"]
    assert DDIM_STEPS == most
    prior = PosePrior.load(tiny["root"] / "ckpt")
    cond = RigCondition.from_rig(read_asset(tiny["fox"]).rig())
    six, z = prior.sample(cond, 1, steps=2)
    want = f"--steps {most + 1}: the pose space has {most} noise levels; give 1 to {most} steps"
    for call in (lambda s: prior.sample(cond, 1, steps=s), lambda s: prior.invert(cond, six, steps=s),
                 lambda s: prior.sample(cond, 1, steps=s, eta=1.0, codes=True)):
        with pytest.raises(InputError) as err:
            call(most + 1)
        assert str(err.value) == want
        with pytest.raises(InputError):
            call(0)
    assert prior.invert(cond, six, steps=most, refine=0).shape == z.shape  # every noise level: allowed


def test_noisy_first_steps_give_codes_that_decode_for_the_price_of_those_steps(tiny, tmp_path):
    """Noise in the first k steps only: the codes are the state after them inverted through k steps, so they decode
    to the poses under the deterministic sampler, at a cost of ``steps + k (1 + refine)`` denoiser passes; k = 0 is
    the deterministic sampler (codes = the starting latents), and more refinement never decodes worse."""
    from usdposer.models.pose_prior import PosePrior, RigCondition
    from usdposer.pipelines.sample import SampleOptions, sample

    from usdposer.io.read_skel import read_asset

    prior = PosePrior.load(tiny["root"] / "ckpt")
    cond = RigCondition.from_rig(read_asset(tiny["fox"]).rig())
    calls = []
    hook = prior.denoiser.register_forward_hook(lambda *a: calls.append(1))
    try:
        seeded = lambda: torch.Generator().manual_seed(7)  # noqa: E731
        det, z = prior.sample(cond, 8, steps=15, generator=seeded())
        zero, codes0 = prior.sample(cond, 8, steps=15, generator=seeded(), eta=1.0, noisy_steps=0, codes=True)
        assert torch.equal(zero, det) and torch.equal(codes0, z)
        errors = []
        for refine in (0, 3):
            calls.clear()
            six, codes = prior.sample(cond, 8, steps=15, generator=seeded(), eta=1.0, noisy_steps=2, codes=True,
                                      refine=refine)
            assert len(calls) == 15 + 2 * (1 + refine)
            assert (six - det).abs().max() > 1e-3  # the noise changed the poses
            back, _ = prior.sample(cond, 8, steps=15, latents=codes)
            errors.append(float((back - six).abs().max()))
        assert errors[1] <= errors[0] and errors[1] < 0.02
    finally:
        hook.remove()
    rep = sample(tiny["fox"], tmp_path / "s.usda", SampleOptions(n=4, checkpoint=str(tiny["root"] / "ckpt"), steps=15,
                                                                 noisy_steps=2, eta=1.0))
    assert (rep.sampler, rep.noisy_steps, rep.steps) == ("ddim", 2, 15) and rep.latent_error < 0.05
    stage = Usd.Stage.Open(str(tmp_path / "s.usda"))
    data = stage.GetRootLayer().customLayerData["usdposer"]
    assert data["noisy_steps"] == 2 and data["eta"] == 1.0


# ------------------------------------------------------------------------------------------------ CLI: sample, eval
def test_sample_writes_layouts_a_and_b(tiny, tmp_path):
    from PIL import Image

    from usdposer.io.read_skel import read_asset
    from usdposer.io.write_skel import read_pose_library

    fox = tiny["fox"]
    before = hashlib.sha256(fox.read_bytes()).hexdigest()
    out, png = tmp_path / "s.usdc", tmp_path / "s.png"
    r = subprocess.run(CLI + ["sample", str(fox), "-n", "6", "--seed", "1", "--checkpoint", str(tiny["root"] / "ckpt"),
                              "-o", str(out), "--preview", str(png), "--steps", "20", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["samples"] == 6 and rep["joints"] == 24
    assert hashlib.sha256(fox.read_bytes()).hexdigest() == before
    stage = Usd.Stage.Open(str(out))
    # A: the bound SkelAnimation holds pose i at time code i
    skel = UsdSkel.Skeleton(stage.GetPrimAtPath(rep["skeleton"]))
    bound = UsdSkel.BindingAPI(skel).GetAnimationSourceRel().GetTargets()
    assert str(bound[0]) == rep["animation"]
    anim = UsdSkel.Animation(stage.GetPrimAtPath(rep["animation"]))
    assert anim.GetRotationsAttr().GetTimeSamples() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    # B: the packed library with latents, consistent with A
    lib = stage.GetPrimAtPath(rep["library"])
    assert lib.GetTypeName() == "PoseSampleLibrary"
    asset = read_asset(out)
    rig = asset.rig()
    pose, latents = read_pose_library(lib, rig)
    assert latents.shape == (6, 24 * 6)
    clip = next(c for c in asset.clips[rig.skeleton_path] if c.name == "usdposerSamples")
    assert torch.allclose(clip.rotations.abs(), pose.rotations.abs(), atol=1e-5)
    assert skel.GetPrim().HasAPI("PoseSpaceAPI")
    # same seed, same poses
    r2 = subprocess.run(CLI + ["sample", str(fox), "-n", "6", "--seed", "1", "--checkpoint",
                               str(tiny["root"] / "ckpt"), "-o", str(tmp_path / "s2.usdc"), "--steps", "20"],
                        capture_output=True, text=True)
    assert r2.returncode == 0
    stage2 = Usd.Stage.Open(str(tmp_path / "s2.usdc"))
    pose2, lat2 = read_pose_library(stage2.GetPrimAtPath(rep["library"]), rig)
    assert np.array_equal(latents, lat2)
    im = Image.open(png)
    assert im.size == (3 * 192, 2 * 192) and len(np.unique(np.asarray(im).reshape(-1, 3), axis=0)) > 20  # shaded meshes, not a blank sheet


def test_sample_on_unseen_rig_without_mesh_and_bad_inputs(tiny, tmp_path):
    walk = tmp_path / "walk.usdc"
    subprocess.run(CLI + ["import", str(ASSETS / "mujoco" / "rodent" / "rodent.xml"), "-o", str(walk)], check=True,
                   capture_output=True)
    r = subprocess.run(CLI + ["sample", str(walk), "-n", "3", "--checkpoint", str(tiny["root"] / "ckpt"),
                              "--steps", "5", "--preview", str(tmp_path / "r.png")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "walk.samples.usdc").exists() and (tmp_path / "r.png").exists()
    r = subprocess.run(CLI + ["sample", str(walk), "--checkpoint", str(tmp_path / "nope")], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "not a usdposer checkpoint" in r.stderr
    r = subprocess.run(CLI + ["sample", str(ASSETS / "khronos" / "Fox.glb")], capture_output=True, text=True)
    assert r.returncode == 2 and "usdposer import" in r.stderr


def test_eval_table_has_model_and_both_baselines(tiny):
    from usdposer.models.evaluation import evaluate, format_table

    rows = evaluate(str(tiny["root"] / "ckpt"), str(tiny["root"] / "data"), n=32, steps=10)
    assert [r.method for r in rows] == ["usdposer", "random-rotations", "rest+noise"]
    assert all(r.character == "quaternius/Trex" for r in rows)
    # the rest+noise baseline is calibrated to the model's diversity
    assert abs(rows[2].apd - rows[0].apd) < 0.05 * rows[0].apd + 1e-3
    assert all(np.isfinite([r.precision, r.recall, r.apd]).all() for r in rows)
    assert "| quaternius/Trex |" in format_table(rows)
    # the Trex states no limits: violations are measured against swing-twist limits learned from its real poses,
    # which its real poses themselves (nearly) never leave, while random rotations do
    assert all(r.limit_source == "learned" and r.limit_violations is not None for r in rows)
    assert rows[1].limit_violations > 0.5 and "(learned)" in format_table(rows)
    # several seeds: means with their spread; the model row names its sampler noise
    rows2 = evaluate(str(tiny["root"] / "ckpt"), str(tiny["root"] / "data"), n=16, steps=5, seeds=2, eta=0.0)
    assert all(r.seeds == 2 for r in rows2) and rows2[0].recall_sd > 0 and rows2[1].precision_sd > 0
    table = format_table(rows2)
    assert "usdposer (eta 0)" in table and "mean ± sd over 2 seeds" in table and " ± " in table.splitlines()[2]


def test_learned_limit_violations_hold_for_real_poses(tiny):
    from usdposer.models.evaluation import learned_limits, limit_violation_rate

    from usdposer.io.dataset import load_dataset

    ch = [c for c in load_dataset(str(tiny["root"] / "data"), ("heldout",)) if len(c.poses)][0]
    learned = learned_limits(ch)
    assert torch.isfinite(learned).any()
    assert limit_violation_rate(ch, ch.poses, learned) < 0.02  # quantiles 0.5 / 99.5 % widened by 5 degrees


def test_default_checkpoint_ships_small_and_loads():
    from usdposer.models.pose_prior import DEFAULT_CHECKPOINT, PosePrior

    if not (DEFAULT_CHECKPOINT / "model.safetensors").exists():
        pytest.fail(f"the default checkpoint is missing from {DEFAULT_CHECKPOINT}")
    size = sum(p.stat().st_size for p in Path(DEFAULT_CHECKPOINT).iterdir() if p.is_file())
    assert size < 20 * 2**20
    prior = PosePrior.load()
    card = (DEFAULT_CHECKPOINT / "README.md").read_text()
    assert "heldout" in card and "Evaluation on held-out characters" in card
    assert prior.denoiser.config.width >= 32


def test_a_forests_body_root_is_the_one_named_as_the_body_else_the_largest_wherever_it_is_listed():
    """A bee's two trees (a two-joint body listed after a five-joint head): the features are measured from the root
    named as the body, listed first or last; with no root so named, from the root of the largest tree."""
    from usdposer.core.posespace import body_root

    every = torch.ones(7, dtype=torch.bool)
    bee = (["Head", "Antenna_L", "Antenna_R", "Jaw", "Sting", "Body", "Wing_L"], torch.tensor([-1, 0, 0, 0, 3, -1, 5]))
    assert bee[0][body_root(*bee, every)] == "Body"
    order = [5, 6, 0, 1, 2, 3, 4]
    names = [bee[0][j] for j in order]
    parents = torch.tensor([-1 if bee[1][j] < 0 else order.index(int(bee[1][j])) for j in order])
    assert names[body_root(names, parents, every)] == "Body"
    plain = ["A", "B", "C", "D", "E", "F", "G"]
    assert plain[body_root(plain, bee[1], every)] == "A" and plain[body_root(plain, parents, every)] == "C"
    assert body_root(plain, bee[1], torch.zeros(7, dtype=torch.bool)) is None


def test_train_resumes_from_its_state_and_refuses_a_corrupt_one(tiny, tmp_path):
    """``usdposer train --resume`` goes on from the step the checkpoint's training state records, with the saved
    width/depth/heads (the command line's are replaced); a state that is not JSON, whose step is text or whose config
    lacks its sizes, and a cut optimiser-state file, are one InputError each naming the fix (they were internal
    errors), and the checkpoint is left as it was."""
    import shutil

    from usdposer.pipelines.train import TrainOptions, train

    from usdposer.errors import InputError

    data, ck = tiny["root"] / "data", tmp_path / "ck"
    first = train(data, ck, TrainOptions(steps=6, batch_size=16, width=16, depth=1, heads=2, val_every=3))
    assert first.steps == 6
    state = json.loads((ck / "training_state.json").read_text())
    assert state["step"] == 6
    again = train(data, ck, TrainOptions(steps=9, batch_size=16, width=32, depth=2, heads=4, val_every=3,
                                         resume=True))
    assert again.steps == 9 and json.loads((ck / "training_state.json").read_text())["step"] == 9
    assert json.loads((ck / "config.json").read_text())["width"] == 16  # the saved model's, not the command line's
    for name, text in [("not-json", "{"), ("step-text", json.dumps({**state, "step": "x"})),
                       ("no-sizes", json.dumps({**state, "config": {}})), ("cut", None)]:
        bad = tmp_path / f"bad-{name}"
        shutil.copytree(ck, bad)
        if text is None:
            w = bad / "training_state.safetensors"
            w.write_bytes(w.read_bytes()[:100])
        else:
            (bad / "training_state.json").write_text(text)
        before = {p.name: p.read_bytes() for p in bad.iterdir()}
        with pytest.raises(InputError, match="delete the training state files to start over"):
            train(data, bad, TrainOptions(steps=12, batch_size=16, width=16, depth=1, heads=2, resume=True))
        assert {p.name: p.read_bytes() for p in bad.iterdir()} == before, name
