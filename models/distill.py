"""AKD motion distillation (section 4): per-frame joint angles optimised so that the rendered clip of the skinned
Gaussian asset scores well under a video diffusion prior (SDS), plus smoothness and ground terms.

Notation (paper -> code), for F frames and J joints:
    theta_f   ``angles[f]`` (J, 3)   axis-angle of every joint relative to its rest rotation (3 DoF each)
    r_f       ``root[f]`` (3,)       the main root's translation (its rotation is its angles); initialised moving
                                     forward. A skeleton forest's secondary roots (a horse's hoof IK targets) that sit
                                     on the main tree at rest ride with the joint they sit on (``attach``)
    L         = L_SDS + l1 * MAE(x_{f+1} - 2 x_f + x_{f-1}) + l2 * mean(relu(g - y(bone box corners)))
                x_f = (theta_f, r_f / height): one MAE over every optimised parameter (the paper's form), the root
                translation counted as three more parameters in rest heights
    t         ~ U[t_min, t_end], t_end falling linearly from 0.98 to 0.5 over the first half of the iterations
Each iteration: 1. pose; 2. skin the Gaussians (LBS moves means and covariances); 3. render every frame over the
ground (:class:`Scene`: a checkerboard fixed in the world, squares a quarter of the rest height; the heuristic
shadow; a camera following the bounding-box centre smoothly at a distance fixed from the rest pose); 4. encode with
the prior's VAE (with gradient); 5. SDS gradient from the prior's guided clean-latent estimate; 6. the regularisers
(the ground term on the corners of the bone boxes the physics articulation builds); 7. one Adam step.
Defaults are the paper's: 10,000 iterations, CFG 100, l1 = 2e5, l2 = 1e7.
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
    iterations: int = 10_000  # the paper's (``--preset quick``: 1000)
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
    attach: float = 0.5  # a secondary root this close to the main tree at rest (x height) rides with its joint
    fps: float = 8.0
    render_ground: bool = True  # ablation: no ground in the renders
    board: float | str = 0.25  # checker squares in rest heights, fixed in the world; "per-frame": the old ablation
    shadow: bool = True  # AKD's heuristic shadow 1 - s_max exp(-beta d), d the asset's height above the point
    shadow_strength: float = 0.6  # s_max
    shadow_beta: float = 10.0  # beta, per rest height
    shadow_footprint: float = 0.05  # how far (rest heights, horizontally) a Gaussian shades the ground below it
    camera_smoothing: float = 0.3  # zero-phase exponential filter on the followed bounding-box centre
    camera_yaw: float = 30.0  # degrees
    camera_pitch: float = 15.0  # degrees
    box_min_half: float = 0.02  # smallest bone-box half-extent (rest heights), as the physics articulation's
    vae_grad: str = "full"  # "full" (checkpointed for loaded models) or "subset" (a random run of latent frames)
    vae_chunk: int = 2  # latent frames with gradient in "subset" mode
    render_backend: str = "auto"  # gsplat on CUDA when installed, else the torch rasteriser
    device: str = "cpu"  # where the pose, skinning and rendering run (float64 on CPU, float32 elsewhere)
    seed: int = 0


@dataclass
class DistillResult:
    rotations: Tensor  # (F, J, 4) joint-local quaternions
    root: Tensor  # (F, 3) the main root's translations
    translations: Tensor  # (F, J, 3) every joint's: rest, the main root's path, the attached roots where they ride
    losses: list[dict] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    peak_memory: int | None = None  # bytes on the CUDA device, when there is one
    height: float = 1.0  # the rig's rest height, metres


@dataclass(frozen=True)
class Scene:
    """What every frame of a clip is rendered with, fixed for the clip: the board's square size (metres, or
    "per-frame" for the ablation), the camera distance (from the rest pose), the shadow (s_max, beta per metre,
    footprint in metres) or None, and whether there is a ground at all."""

    board: float | str
    distance: float
    shadow: tuple[float, float, float] | None
    ground: bool


def scene_for(rig, ga, cfg: DistillConfig, height: float) -> Scene:
    from usdposer.render.splat import framing_distance
    from usdposer.types import Pose

    with torch.no_grad():
        rest_mu, _ = ga.posed(rig, Pose.rest(rig), backend="torch")
    board = cfg.board if isinstance(cfg.board, str) else cfg.board * height
    sh = (cfg.shadow_strength, cfg.shadow_beta / height, cfg.shadow_footprint * height) if cfg.shadow else None
    return Scene(board, framing_distance(rest_mu[0]), sh, cfg.render_ground)


def render_frames(mu: Tensor, cov: Tensor, ga, cfg: DistillConfig, scene: Scene, cameras: list | None = None
                  ) -> Tensor:
    """Render posed Gaussians (F, N, 3), (F, N, 3, 3) as a video (1, 3, F, H, W) in [-1, 1] (differentiable):
    the scene's ground, board and shadow, and the smoothed following camera unless ``cameras`` are given."""
    from usdposer.render.splat import camera_path, render

    if cameras is None:
        d = mu.detach()
        centers = (d.amax(1) + d.amin(1)) / 2
        cameras = camera_path(centers, scene.distance, cfg.width, cfg.height, yaw_deg=cfg.camera_yaw,
                              pitch_deg=cfg.camera_pitch, smoothing=cfg.camera_smoothing)
    s_max, beta, footprint = scene.shadow or (0.0, 1.0, 1.0)
    frames = [render(mu[f], cov[f], ga.colors, ga.opacities, cameras[f], ground=0.0 if scene.ground else None,
                     checker=scene.board, shadow_strength=s_max, shadow_beta=beta, shadow_footprint=footprint,
                     backend=cfg.render_backend)[0] for f in range(len(mu))]
    return torch.stack(frames).permute(3, 0, 1, 2)[None] * 2 - 1


def render_clip(rig, pose, cfg: DistillConfig, ga=None) -> Tensor:
    """A pose sequence rendered exactly as distillation renders it: (1, 3, F, H, W) in [-1, 1]."""
    from usdposer.core.posing import character_height
    from usdposer.render.gaussians import gaussians_from_rig

    rig = rig.to(torch.float64)
    ga = ga or gaussians_from_rig(rig, cfg.gaussians, generator=torch.Generator().manual_seed(cfg.seed))
    h = character_height(rig) or 1.0
    mu, cov = ga.posed(rig, pose, backend="torch")
    return render_frames(mu, cov, ga, cfg, scene_for(rig, ga, cfg, h))


def bone_box_corners(rig, min_half: float) -> tuple[Tensor, Tensor]:
    """The corners of the bone boxes the physics articulation builds (``usdposer.physics.articulation.body_boxes``:
    each joint's dominated mesh part in its rigid bind frame, at least ``min_half`` metres on every side), in
    skeleton space at bind time: (corners (E, 8, 4) homogeneous, joint (E,)). A rig without meshes gets a
    ``min_half`` cube at every joint."""
    from dataclasses import replace

    import numpy as np

    from usdposer.physics.articulation import body_boxes, rigid_rotation

    flat = replace(rig, skel_to_world=torch.eye(4, dtype=rig.bind_world.dtype))
    centers, halves, moves = body_boxes(flat, min_half, 0.0)
    joints = np.nonzero(moves)[0] if moves.any() else np.arange(rig.num_joints)
    bind = rig.bind_world.double().numpy()
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    out = []
    for j in joints:
        R = rigid_rotation(bind[j, :3, :3])
        local = centers[j] + signs * halves[j]  # (8, 3) in the rigid bind frame
        out.append(np.c_[local @ R.T + bind[j, :3, 3], np.ones(8)])
    return torch.tensor(np.stack(out)), torch.as_tensor(joints, dtype=torch.long)


def posed_box_corners(rig, pose, corners: Tensor, joints: Tensor) -> Tensor:
    """(F, E * 8, 3) bone-box corners moved rigidly with their joints (each corner skinned to its joint alone)."""
    from usdposer.core.kinematics import skinning_transforms
    from usdposer.core.posing import joint_transforms

    S = skinning_transforms(joint_transforms(rig, pose), rig.bind_world.to(pose.rotations))[:, joints]  # (F, E, 4, 4)
    c = corners.to(S)
    return torch.einsum("feab,ekb->feka", S[..., :3, :], c).reshape(S.shape[0], -1, 3)


def laplacian_mae(*params: Tensor) -> Tensor:
    """One MAE of the time Laplacian x_{f+1} - 2 x_f + x_{f-1} over all parameters (each (F, ...))."""
    x = torch.cat([p.reshape(p.shape[0], -1) for p in params], 1)
    return (x[2:] - 2 * x[1:-1] + x[:-2]).abs().mean()


def t_schedule(i: int, cfg: DistillConfig, g: torch.Generator) -> float:
    half = max(1, cfg.iterations // 2)
    t_end = cfg.t_end_start + (cfg.t_end_final - cfg.t_end_start) * min(1.0, i / half)
    return cfg.t_min + float(torch.rand((), generator=g)) * (t_end - cfg.t_min)


def distill_motion(rig, prior, text, cfg: DistillConfig | None = None, *, cameras: list | None = None,
                   progress: Callable | None = None, state: dict | None = None,
                   on_step: Callable[[int, dict], None] | None = None,
                   root_init: Tensor | None = None) -> DistillResult:
    """Optimise a motion of ``rig`` under ``prior`` (module docstring). ``cameras`` (one per frame) replaces the
    following camera; ``state`` (from a previous :class:`DistillResult`) resumes the optimisation; ``root_init``
    (F, 3) replaces the forward-moving initial root path."""
    from usdposer.models.video_prior import encode_with_grad, sds_loss

    from usdposer.core.kinematics import decompose_trs
    from usdposer.core.posing import attach_roots, character_height, main_root, root_attachments
    from usdposer.core.rotations import axis_angle_to_quat, quat_multiply
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.types import Pose

    cfg = cfg or DistillConfig()
    dev = torch.device(cfg.device)
    dt = torch.float64 if dev.type == "cpu" else torch.float32
    cuda = dev.type == "cuda"
    rig = rig.to(torch.float64)
    g = torch.Generator().manual_seed(cfg.seed)
    F, J = cfg.frames, rig.num_joints
    h = character_height(rig) or 1.0
    ga = gaussians_from_rig(rig, cfg.gaussians, generator=torch.Generator().manual_seed(cfg.seed))
    scene = scene_for(rig, ga, cfg, h)
    corners, box_joints = bone_box_corners(rig, cfg.box_min_half * h)
    ga = ga.to(dt, dev)
    rig = rig.to(dt, dev)
    t_rest, q_rest, s_rest = decompose_trs(rig.rest_local)
    root_j = main_root(rig)
    attached = root_attachments(rig, Pose.rest(rig), cfg.attach)  # (root, joint, offset): hoof targets ride the legs
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
    if root_init is not None:
        root0 = root_init.to(device=dev, dtype=dt).clone()
    else:
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
        pose = attach_roots(rig, Pose(q, trans, s_rest.expand(F, J, 3).clone()), attached)
        mu, cov = ga.posed(rig, pose, backend="torch")  # (F, N, 3), (F, N, 3, 3)
        timing["skinning"] += clock() - tick
        # 3. render every frame (the camera follows the character smoothly unless given)
        tick = clock()
        video = render_frames(mu, cov, ga, cfg, scene, cameras)
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
        # 6. smoothness (one MAE of the time Laplacian of every parameter) and ground (bone-box corners above y = 0)
        loss = loss_sds
        smooth = torch.zeros((), dtype=dt, device=dev)
        if cfg.smooth_weight and F > 2:
            smooth = laplacian_mae(angles, root / h)
            loss = loss + cfg.smooth_weight * smooth
        ground = torch.zeros((), dtype=dt, device=dev)
        if cfg.ground_weight:
            y = posed_box_corners(rig, pose, corners, box_joints)[..., 1]
            ground = torch.relu(-y / h).mean()
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
        trans = t_rest.expand(F, J, 3).clone()
        trans[:, root_j] = root
        trans = attach_roots(rig, Pose(q, trans, s_rest.expand(F, J, 3)), attached).translations
    n = max(1, len(losses))
    peak = int(torch.cuda.max_memory_allocated(dev)) if cuda else None
    return DistillResult(q.detach().cpu().double(), root.detach().cpu().double(), trans.cpu().double(), losses,
                         {k: v / n for k, v in timing.items()}, peak, h)


def config_dict(cfg: DistillConfig) -> dict:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in asdict(cfg).items()}


# ------------------------------------------------------------------------------------------------ files and verb
def save_state(path, state: dict, cfg: DistillConfig) -> None:
    """Optimisation state as ``state.safetensors`` (angles, root, Adam moments) + ``state.json`` (iteration, Adam
    steps and the config), written to temporary files and moved into place."""
    from pathlib import Path

    from usdposer.outputs import uninterrupted

    with uninterrupted():  # the tensors and the JSON of one iteration, or the previous ones
        _write_state(Path(path), state, cfg)


def _write_state(path, state: dict, cfg: DistillConfig) -> None:
    import json
    import os

    from safetensors.torch import save_file

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

    from usdposer.errors import InputError, whole

    path = Path(path)
    try:
        from safetensors.torch import load_file

        tensors = load_file(str(path / "state.safetensors"))
        meta = json.loads((path / "state.json").read_text())
    except Exception as exc:  # a missing or cut file; safetensors raises its own error types
        raise InputError(f"{path}: not a distill state (state.safetensors + state.json): {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:160]}; drop --resume or point it at the --state folder of an "
                         "earlier run") from exc
    try:
        opt_state = {int(k): {"step": torch.tensor(float(v)), "exp_avg": tensors[f"exp_avg.{k}"],
                              "exp_avg_sq": tensors[f"exp_avg_sq.{k}"]} for k, v in meta["adam_steps"].items()}
        groups = [dict(g, params=[i]) for i, g in enumerate(meta["param_groups"])]
        iteration = meta["iteration"]
        if not whole(iteration, 0):
            raise ValueError(f"iteration {iteration!r} is not a whole number")
        bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ValueError(f"{bad[0]} holds NaN or infinite values")
        out = {"angles": tensors["angles"], "root": tensors["root"], "iteration": iteration,
               "optimizer": {"state": opt_state, "param_groups": groups}}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: a distill state that does not hold what it should ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:160]}); drop --resume or point it at the --state folder of an "
                         "earlier run") from exc
    return out
