"""AKD motion distillation (section 4): per-frame joint angles optimised so that the rendered clip of the skinned
Gaussian asset scores well under a video diffusion prior (SDS), plus smoothness and ground terms.

Notation (paper -> code), for F frames and J joints:
    theta_f   ``angles[f]`` (J, 3)   axis-angle of every joint relative to its rest rotation (3 DoF each)
    r_f       ``root[f]`` (3,)       root translation (its rotation is joint 0's angles); initialised moving forward
    L         = L_SDS + l1 * MAE(theta_{f+1} - 2 theta_f + theta_{f-1}) + l2 * mean(relu(g - y(cuboid vertices)))
    t         ~ U[t_min, t_end], t_end falling linearly from 0.98 to 0.5 over the first half of the iterations
Each iteration: 1. pose; 2. skin the Gaussians (LBS moves means and covariances); 3. render every frame with the
ground (camera following the bounding-box centre); 4. encode with the prior's VAE (with gradient); 5. SDS gradient
from the prior's guided clean-latent estimate; 6. the regularisers; 7. one Adam step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor


@dataclass
class DistillConfig:
    iterations: int = 1000
    frames: int = 9  # 4 k + 1 for the causal video VAEs
    width: int = 64
    height: int = 64
    gaussians: int = 5000
    guidance: float = 100.0  # CFG scale (the paper's)
    t_min: float = 0.02
    t_end_start: float = 0.98
    t_end_final: float = 0.5
    lr: float = 0.01  # radians per Adam step
    root_lr: float = 0.01  # metres per Adam step, times the character's height
    smooth_weight: float = 2e5  # l1 (the paper's, for its SDS scale)
    ground_weight: float = 1e7  # l2
    forward_speed: float = 0.5  # root initialisation: heights per second along the rig's facing (+Z)
    fps: float = 8.0
    render_ground: bool = True  # ablation: no ground in the renders
    cuboid_radius: float = 0.04  # bone cuboid half-width, in heights
    vae_grad: str = "full"  # "full" (checkpointed for loaded models) or "subset" (a random run of latent frames)
    vae_chunk: int = 2  # latent frames with gradient in "subset" mode
    render_backend: str = "auto"  # gsplat on CUDA when installed, else the torch rasteriser
    device: str = "cpu"  # where the pose, skinning and rendering run (float64 on CPU, float32 elsewhere)
    seed: int = 0


@dataclass
class DistillResult:
    rotations: Tensor  # (F, J, 4) joint-local quaternions
    root: Tensor  # (F, 3) root translations
    losses: list[dict] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    peak_memory: int | None = None  # bytes on the CUDA device, when there is one


def bone_cuboid_vertices(world: Tensor, parents: Tensor, radius: float) -> Tensor:
    """Corners (B, 8 E, 3) of an axis-aligned cuboid of half-width ``radius`` around each bone's two ends (E bones:
    every joint with a parent). Cheap stand-in for the paper's bone cuboids, enough for the ground term."""
    child = torch.nonzero(parents >= 0).flatten()
    ends = torch.stack([world[:, child], world[:, parents[child]]], 2)  # (B, E, 2, 3)
    signs = torch.tensor([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                         dtype=world.dtype, device=world.device) * radius  # (8, 3)
    corners = ends[:, :, :, None] + signs  # (B, E, 2, 8, 3)
    return corners.reshape(world.shape[0], -1, 3)


def t_schedule(i: int, cfg: DistillConfig, g: torch.Generator) -> float:
    half = max(1, cfg.iterations // 2)
    t_end = cfg.t_end_start + (cfg.t_end_final - cfg.t_end_start) * min(1.0, i / half)
    return cfg.t_min + float(torch.rand((), generator=g)) * (t_end - cfg.t_min)


def distill_motion(rig, prior, text, cfg: DistillConfig | None = None, *, cameras: list | None = None,
                   progress: Callable | None = None, state: dict | None = None,
                   on_step: Callable[[int, dict], None] | None = None) -> DistillResult:
    """Optimise a motion of ``rig`` under ``prior`` (module docstring). ``cameras`` (one per frame) replaces the
    following camera; ``state`` (from a previous :class:`DistillResult`) resumes the optimisation."""
    from usdposer.models.video_prior import encode_with_grad, sds_loss

    from usdposer.core.kinematics import decompose_trs
    from usdposer.core.posing import character_height, joint_transforms
    from usdposer.core.rotations import axis_angle_to_quat, quat_multiply
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.render.splat import follow_camera, render
    from usdposer.types import Pose

    cfg = cfg or DistillConfig()
    dev = torch.device(cfg.device)
    dt = torch.float64 if dev.type == "cpu" else torch.float32
    cuda = dev.type == "cuda"
    rig = rig.to(torch.float64)
    g = torch.Generator().manual_seed(cfg.seed)
    F, J = cfg.frames, rig.num_joints
    h = character_height(rig) or 1.0
    ga = gaussians_from_rig(rig, cfg.gaussians, generator=torch.Generator().manual_seed(cfg.seed)).to(dt, dev)
    rig = rig.to(dt, dev)
    t_rest, q_rest, s_rest = decompose_trs(rig.rest_local)
    root_j = rig.roots[0]
    prior_device = getattr(prior, "device", dev)

    def clock() -> float:  # wall clock after the device's queued work
        if cuda:
            torch.cuda.synchronize(dev)
        return time.perf_counter()

    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    # 1. parameters: angles relative to rest, root translation moving forward from its rest place
    angles = torch.zeros(F, J, 3, dtype=dt, device=dev, requires_grad=True)
    times = torch.arange(F, dtype=dt, device=dev) / cfg.fps
    root0 = t_rest[root_j].expand(F, 3).clone()
    root0[:, 2] += cfg.forward_speed * h * times
    root = root0.clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [angles], "lr": cfg.lr}, {"params": [root], "lr": cfg.root_lr * h}])
    start = 0
    if state:
        with torch.no_grad():
            angles.copy_(state["angles"])
            root.copy_(state["root"])
        opt.load_state_dict(state["optimizer"])  # moments follow the parameters' device and dtype
        start = int(state["iteration"])
    losses: list[dict] = []
    timing = {"skinning": 0.0, "rendering": 0.0, "encode": 0.0, "prior": 0.0, "backward": 0.0}
    steps = range(start, cfg.iterations)
    for i in progress(steps) if progress else steps:
        # 2. pose and skin
        tick = clock()
        q = quat_multiply(q_rest.expand(F, J, 4), axis_angle_to_quat(angles))
        trans = t_rest.expand(F, J, 3).clone()
        trans[:, root_j] = root
        pose = Pose(q, trans, s_rest.expand(F, J, 3).clone())
        mu, cov = ga.posed(rig, pose, backend="torch")  # (F, N, 3), (F, N, 3, 3)
        timing["skinning"] += clock() - tick
        # 3. render every frame (the camera follows the character unless given)
        tick = clock()
        frames = []
        for f in range(F):
            cam = cameras[f] if cameras else follow_camera(mu[f], cfg.width, cfg.height)
            rgb, _ = render(mu[f], cov[f], ga.colors, ga.opacities, cam, ground=0.0 if cfg.render_ground else None,
                            backend=cfg.render_backend)
            frames.append(rgb)
        video = torch.stack(frames).permute(3, 0, 1, 2)[None] * 2 - 1  # (1, 3, F, H, W) in [-1, 1]
        timing["rendering"] += clock() - tick
        # 4-5. encode with gradient, SDS gradient without
        tick = clock()
        z = encode_with_grad(prior, video.float().to(prior_device), cfg.vae_grad, cfg.vae_chunk, generator=g).float()
        timing["encode"] += clock() - tick
        tick = clock()
        t = t_schedule(i, cfg, g)
        grad = prior.sds_gradient(z, t, text, cfg.guidance, generator=g)
        timing["prior"] += clock() - tick

        loss_sds = sds_loss(z, grad)
        # 6. smoothness (second differences of the angles and root) and ground (bone cuboids above y = 0)
        loss = loss_sds
        smooth = torch.zeros((), dtype=dt, device=dev)
        if cfg.smooth_weight and F > 2:
            smooth = (angles[2:] - 2 * angles[1:-1] + angles[:-2]).abs().mean() \
                + ((root[2:] - 2 * root[1:-1] + root[:-2]) / h).abs().mean()
            loss = loss + cfg.smooth_weight * smooth
        ground = torch.zeros((), dtype=dt, device=dev)
        if cfg.ground_weight:
            world = joint_transforms(rig, pose)[:, :, :3, 3]
            corners = bone_cuboid_vertices(world, rig.parents, cfg.cuboid_radius * h)
            ground = torch.relu(-corners[..., 1] / h).mean()
            loss = loss + cfg.ground_weight * ground
        # 7. step
        tick = clock()
        opt.zero_grad()
        loss.backward()
        opt.step()
        timing["backward"] += clock() - tick
        rec = {"iteration": i, "t": t, "sds": float(0.5 * (grad**2).sum()), "smooth": float(smooth.detach()),
               "ground": float(ground.detach()), "total": float(loss.detach())}
        losses.append(rec)
        if on_step:
            on_step(i, {**rec, "angles": angles.detach(), "root": root.detach(), "optimizer": opt.state_dict(),
                        "iteration": i + 1})
    with torch.no_grad():
        q = quat_multiply(q_rest.expand(F, J, 4), axis_angle_to_quat(angles))
    n = max(1, len(losses))
    peak = int(torch.cuda.max_memory_allocated(dev)) if cuda else None
    return DistillResult(q.detach().cpu().double(), root.detach().cpu().double(), losses,
                         {k: v / n for k, v in timing.items()}, peak)


def config_dict(cfg: DistillConfig) -> dict:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in asdict(cfg).items()}


# ------------------------------------------------------------------------------------------------ files and verb
def save_state(path, state: dict, cfg: DistillConfig) -> None:
    """Optimisation state as ``state.safetensors`` (angles, root, Adam moments) + ``state.json`` (iteration, Adam
    steps and the config), written to temporary files and moved into place."""
    import json
    import os
    from pathlib import Path

    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {"angles": state["angles"].cpu().contiguous(), "root": state["root"].cpu().contiguous()}
    steps = {}
    for k, s in state["optimizer"]["state"].items():
        tensors[f"exp_avg.{k}"] = s["exp_avg"].cpu().contiguous()
        tensors[f"exp_avg_sq.{k}"] = s["exp_avg_sq"].cpu().contiguous()
        steps[str(k)] = float(s["step"])
    save_file(tensors, str(path / "state.safetensors.tmp"))
    os.replace(path / "state.safetensors.tmp", path / "state.safetensors")
    meta = {"iteration": int(state["iteration"]), "adam_steps": steps, "config": config_dict(cfg),
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in state["optimizer"]["param_groups"]]}
    (path / "state.json.tmp").write_text(json.dumps(meta, indent=1))
    os.replace(path / "state.json.tmp", path / "state.json")


def load_state(path) -> dict:
    """Inverse of :func:`save_state` (an InputError naming the fix when unreadable)."""
    import json
    from pathlib import Path

    from usdposer.errors import InputError

    path = Path(path)
    try:
        from safetensors.torch import load_file

        tensors = load_file(str(path / "state.safetensors"))
        meta = json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a distill state (state.safetensors + state.json): {exc}; "
                         "drop --resume or point it at the --state folder of an earlier run") from exc
    opt_state = {int(k): {"step": torch.tensor(v), "exp_avg": tensors[f"exp_avg.{k}"],
                          "exp_avg_sq": tensors[f"exp_avg_sq.{k}"]} for k, v in meta["adam_steps"].items()}
    groups = [dict(g, params=[i]) for i, g in enumerate(meta["param_groups"])]
    return {"angles": tensors["angles"], "root": tensors["root"], "iteration": meta["iteration"],
            "optimizer": {"state": opt_state, "param_groups": groups}}
