"""A rig fitted to a video by analysis by synthesis (ViPS's per-frame reconstruction, on the video usdposer
generated): the rig as skinned Gaussians (``usdposer.render.gaussians``) rendered with the video's own camera over the
empty scene (the background plate, which usdposer rendered itself), per-frame joint rotations and root optimised
against the frames.

Per frame t, with the rendered image I(theta_t) = C + (1 - A) P (splats C, A over the plate P; A eroded by one pixel,
since splats overlap a pixel past the surface's edge) and the video frame V_t:

    E(theta_t) = w_photo mean |a * I(theta_t) + b - V_t|                  photometric (L1; a per-video colour gain a and
                                                                          offset b absorb the renderers' and the video
                                                                          model's colour differences)
               + w_mask  mean (A - M_t)^2 + w_blur mean (B(A) - B(M_t))^2  silhouette, sharp and blurred (a wider basin):
                                                                          M_t = |V_t - P| above a threshold after
                                                                          removing the median colour shift
               + w_ground min_p(y_p / h)^2                                the lowest point on the board (soft minimum)
               + w_smooth (|omega_t|^2 + |delta_t|^2 / h^2)               temporal smoothness
               + w_attach sum_k |r_k - G_j(k)(theta_t) o_k|^2 / h^2        secondary roots held by their joints (below)
               + w_prior  SDS(theta_t)                                    the pose prior's denoising score: the
                                                                          gradient (eps_hat(x_tau, tau) - eps) on the
                                                                          pose's canonical 6D code, tau ~ U[20, 250]

theta_t = (q_t, r_t) with ``q_t = exp(omega_t) (x) exp(m s_t) (x) q_{t-1}``, ``r_t = r_{t-1} + m d_t + delta_t``, r
the translations of the skeleton's roots: frame t starts from frame t-1 carried on by the last frame's motion (s_t,
d_t: the rotations' and the attached roots' change from t-2 to t-1; m = ``momentum``), so that a far leg that passes
behind the near one in the view keeps swinging instead of stopping where nothing in the picture pulls it (and being
caught by the near leg's silhouette); the free roots' depth is too unsure to carry on. The first frame starts from a
known pose (a generated video starts at the pose usdposer rendered; then only the colour gain and offset are fitted
on it) or from the rest pose. Coarse to fine: the first half of a frame's iterations at ``coarse`` times the
resolution. The prior pulls what one view leaves open (a far leg hidden behind the near one, depth along the view
axis) toward plausible poses. h is the character's height.

A skeleton may be a forest: the Quaternius animals hang each paw under an IK-target root whose animated translation
carries it, so a fit of the first root's translation alone cannot move a paw. Every root's translation is fitted,
and a secondary root lying (in the rest pose) within ``attach`` x h of a joint j(k) of the main tree (the largest)
is held near its offset o_k in that joint's frame at the start pose (``usdposer.core.posing.root_attachments``), as
a solved IK rig
holds it, so the paw follows the leg while the picture can still pull it (held exactly instead, the fit was worse: the
paw could only move through the whole leg chain).

Shapes: F frames, H x W pixels, J joints, R roots, N Gaussians.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F_
from torch import Tensor


@dataclass
class VideoFitConfig:
    iterations: int = 40  # Adam steps per frame
    first_iterations: int = 150  # for the first frame
    lr: float = 0.02  # radians per step for the rotation deltas
    gaussians: int = 3000
    spread: float = 0.7  # Gaussian in-plane size relative to the sample spacing (usdposer.render.gaussians)
    ground_weight: float = 10.0  # the lowest point on the ground plane y = 0 (the character stands on the board)
    max_size: int = 192  # frames are fitted at most this many pixels on their long side
    coarse: float = 0.5  # resolution factor of the first half of each frame's iterations (1: no coarse stage)
    photo_weight: float = 1.0
    mask_weight: float = 4.0  # the splats' (eroded) alpha against the mask
    smooth_weight: float = 1e-2
    momentum: float = 1.0  # frame t starts from frame t-1 carried on by this share of the last frame's motion
    prior_weight: float = 0.1  # 0: no prior (the ablation)
    blur_weight: float = 4.0  # the silhouettes compared blurred too (a wider basin of attraction)
    blur: int = 2  # its radius, pixels
    mask_threshold: float = 0.2  # sRGB difference to the plate that counts as the character
    attach: float = 0.5  # a secondary root this close to the main tree (x height) follows the joint it sits on
    attach_weight: float = 10.0  # its distance from where the joint holds it (/ h, squared)
    seed: int = 0


@dataclass
class VideoFitResult:
    rotations: Tensor  # (F, J, 4)
    translations: Tensor  # (F, J, 3): the start pose's, with every root's fitted (skeleton space)
    image_loss: list[float] = field(default_factory=list)  # mean |I - V| per frame (sRGB, 0-1)
    mask_iou: list[float] = field(default_factory=list)  # IoU of the rendered silhouette and the frame's mask
    seconds: float = 0.0


def silhouette(frame: Tensor, plate: Tensor, threshold: float) -> Tensor:
    """Where the character is: (H, W, 3) frame and plate in [0, 1] -> (H, W) mask in {0, 1}. The median difference
    (the colour shift a video model adds over the whole frame, mostly background) is removed first; the threshold
    sits above the contrast of the board's grid lines, which a few pixels of camera shake uncover; specks (connected
    parts under 1 % of the largest) are dropped. Thin parts (a tail tip, a leg two pixels wide) are kept."""
    from scipy.ndimage import label

    d = frame - plate
    d = d - d.reshape(-1, 3).median(0).values
    m = (d.abs().amax(-1) > threshold).cpu().numpy()
    parts, n = label(m)
    if n > 1:
        sizes = np.bincount(parts.ravel())[1:]
        m = np.isin(parts, 1 + np.nonzero(sizes >= 0.01 * sizes.max())[0])
    return torch.from_numpy(m.astype(np.float64)).to(frame)


def _resize(img: Tensor, w: int, h: int) -> Tensor:
    """(H, W, C) -> (h, w, C), area averaging (an image pyramid level)."""
    if img.shape[0] == h and img.shape[1] == w:
        return img
    x = img.permute(2, 0, 1)[None]
    return F_.interpolate(x, size=(h, w), mode="area")[0].permute(1, 2, 0)


def _blur(img: Tensor, radius: int) -> Tensor:
    """(H, W) box-blurred three times (about a Gaussian of sigma ``radius`` pixels)."""
    x = img[None, None]
    k = 2 * radius + 1
    for _ in range(3):
        x = F_.avg_pool2d(x, k, 1, radius, count_include_pad=False)
    return x[0, 0]


def prior_energy(prior, cond, six: Tensor, generator: torch.Generator) -> Tensor:
    """The pose prior as a regulariser (score distillation on the pose): a scalar whose gradient on ``six`` (1, J, 6)
    is the denoiser's ``eps_hat(x_tau, tau) - eps`` at a random noise level, pushing the pose toward the manifold."""
    x0 = prior.normalize(cond.compact(six).float())
    tau = int(torch.randint(20, 250, (1,), generator=generator))
    eps = cond.randn(*x0.shape[:-2], generator=generator).to(x0)  # drawn per joint, whatever the joints' order
    xt = prior.train_scheduler.add_noise(x0.detach(), eps, torch.tensor([tau]))
    with torch.no_grad():
        eps_hat = prior._eps(xt.to(prior.device), tau, cond.model()).to(x0)
    return ((eps_hat - eps) * x0).sum() / x0.shape[1]


def fit_video(rig, frames: Tensor, cameras: list, plate: Tensor, cfg: VideoFitConfig | None = None, *, prior=None,
              start=None, progress: Callable | None = None) -> VideoFitResult:
    """Fit ``rig`` to ``frames`` (F, H, W, 3) in [0, 1] (sRGB) seen by ``cameras`` (one per frame, world, OpenCV)
    over ``plate`` (H, W, 3), the empty scene. ``prior``: a PosePrior used when ``cfg.prior_weight > 0``; ``start``:
    a Pose of one frame to start from (default: the rest pose)."""
    from usdposer.models.pose_prior import RigCondition

    from usdposer.core.posespace import pose_to_6d
    from usdposer.core.posing import character_height, held_positions, joint_transforms, root_attachments
    from usdposer.core.rotations import (
        axis_angle_to_quat,
        quat_conjugate,
        quat_multiply,
        quat_normalize,
        quat_to_axis_angle,
    )
    from usdposer.render.cameras import scaled
    from usdposer.render.gaussians import gaussians_from_rig
    from usdposer.render.splat import render
    from usdposer.types import Pose

    cfg = cfg or VideoFitConfig()
    tick = time.perf_counter()
    rig = rig.to(torch.float64)
    g = torch.Generator().manual_seed(cfg.seed)
    ga = gaussians_from_rig(rig, cfg.gaussians, spread=cfg.spread, generator=torch.Generator().manual_seed(cfg.seed))
    h = character_height(rig) or 1.0
    S = rig.skel_to_world.double()
    A, b = S[:3, :3], S[:3, 3]
    Fn, H, W = frames.shape[:3]
    factor = min(1.0, cfg.max_size / max(H, W))
    levels = sorted({min(1.0, cfg.coarse), 1.0}) if cfg.coarse < 1 else [1.0]
    plates = {}  # the plate at each level's size: the same for every frame
    for lv in levels:
        cam = scaled(cameras[0], factor * lv)
        plates[lv] = _resize(plate.double(), cam.width, cam.height)
    cond = RigCondition.from_rig(rig) if prior is not None and cfg.prior_weight > 0 else None

    base = Pose.rest(rig) if start is None else start
    q = base.rotations[0].clone()
    attached = root_attachments(rig, Pose(base.rotations[:1], base.translations[:1], base.scales[:1]), cfg.attach)
    roots = rig.roots  # every root's translation is fitted
    root = base.translations[0, roots].clone()  # (R, 3)
    spin = torch.zeros(rig.num_joints, 3, dtype=torch.float64)  # the last frame's motion: q_t-1 = exp(spin) q_t-2
    drift = torch.zeros_like(root)  # and its attached roots' (a free root's depth is too unsure to carry on)
    held_roots = [r for r, _, _ in attached]
    carried = torch.tensor([[r in held_roots] for r in roots])  # (R, 1)
    gain = torch.ones(3, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    out_q, out_t, losses, ious = [], [], [], []

    def draw(qt, rt, cam):
        t = base.translations.clone()
        t[0, roots] = rt
        pose = Pose(qt[None], t, base.scales)
        gap = torch.zeros((), dtype=t.dtype)
        if attached:  # how far the secondary roots are from where their joints hold them (FK of the main tree)
            held = held_positions(joint_transforms(rig, pose), attached)[0]  # (A, 3) the roots' origins
            gap = ((t[0, held_roots] - held) ** 2).sum() / h ** 2
        mu, cov = ga.posed(rig, pose, backend="torch")
        mu_w = mu[0] @ A.T + b
        cov_w = A @ cov[0] @ A.T
        rgb, alpha = render(mu_w, cov_w, ga.colors.to(mu_w), ga.opacities.to(mu_w), cam, ground=None,
                            background=(0.0, 0.0, 0.0), backend="torch")
        # splats overlap past the surface's edge: a 3x3 minimum takes their silhouette in by the pixel it spills
        eroded = -F_.max_pool2d(-alpha[None, None], 3, 1, 1)[0, 0]
        return rgb / alpha.clamp(min=1e-3)[..., None] * eroded[..., None], eroded, mu_w, pose.translations[0], gap

    it = range(Fn) if progress is None else progress(range(Fn))
    for t in it:
        first = t == 0
        if cfg.momentum > 0 and t > 1:  # carry the motion on: legs that cross in the view keep going past each other
            q = quat_normalize(quat_multiply(axis_angle_to_quat(cfg.momentum * spin), q))
            root = root + cfg.momentum * drift
        n_it = cfg.first_iterations if first else cfg.iterations
        omega = torch.zeros(rig.num_joints, 3, dtype=torch.float64, requires_grad=True)
        delta = torch.zeros(len(roots), 3, dtype=torch.float64, requires_grad=True)
        known = first and start is not None  # the first frame's pose is known (generate rendered it): colour only
        opt = torch.optim.Adam(([] if known else [{"params": [omega], "lr": cfg.lr},
                                                  {"params": [delta], "lr": cfg.lr * h * 0.5}])
                               + ([{"params": [gain, bias], "lr": 0.01}] if first else []))
        targets = {}
        for lv in levels:
            cam = scaled(cameras[t], factor * lv)
            V = _resize(frames[t].double(), cam.width, cam.height)
            P = plates[lv]
            targets[lv] = (cam, V, P, silhouette(V, P, cfg.mask_threshold))
        for i in range(n_it):
            lv = levels[0] if (len(levels) > 1 and i < n_it // 2) else levels[-1]
            cam, V, P, M = targets[lv]
            qt = quat_normalize(quat_multiply(axis_angle_to_quat(omega), q))
            rgb, alpha, mu_w, _, gap = draw(qt, root + delta, cam)
            img = rgb + (1 - alpha)[..., None] * P
            loss = (cfg.photo_weight * (img * gain + bias - V).abs().mean()
                    + cfg.mask_weight * ((alpha - M) ** 2).mean())
            if cfg.blur_weight > 0:  # a wide basin: the silhouettes compared blurred (limbs far from their target)
                loss = loss + cfg.blur_weight * ((_blur(alpha, cfg.blur) - _blur(M, cfg.blur)) ** 2).mean()
            if attached:
                loss = loss + cfg.attach_weight * gap
            if not first:
                loss = loss + cfg.smooth_weight * ((omega ** 2).sum() + (delta ** 2).sum() / h ** 2)
            if cfg.ground_weight > 0:  # soft minimum of the heights: the lowest point touches y = 0
                y = mu_w[:, 1] / h
                low = -torch.logsumexp(-y / 0.005, 0) * 0.005
                loss = loss + cfg.ground_weight * low ** 2
            if cond is not None:
                six = pose_to_6d(rig, Pose(qt[None], base.translations, base.scales))
                loss = loss + cfg.prior_weight * prior_energy(prior, cond, six, g)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            q_new = quat_normalize(quat_multiply(axis_angle_to_quat(omega), q))
            if t > 0:
                spin = quat_to_axis_angle(quat_multiply(q_new, quat_conjugate(out_q[-1])))
                drift = (root + delta - out_t[-1][roots]) * carried
            q, root = q_new, root + delta
            cam, V, P, M = targets[1.0]
            rgb, alpha, _, trans, _ = draw(q, root, cam)
            img = rgb + (1 - alpha)[..., None] * P
            losses.append(float((img * gain + bias - V).abs().mean()))
            sil = alpha > 0.5
            inter, union = float((sil & (M > 0.5)).sum()), float((sil | (M > 0.5)).sum())
            ious.append(inter / union if union else 1.0)
        out_q.append(q.detach().clone())
        out_t.append(trans.detach().clone())
    return VideoFitResult(torch.stack(out_q), torch.stack(out_t), losses, ious, time.perf_counter() - tick)


def read_video(path) -> tuple[np.ndarray, float]:
    """(frames (F, H, W, 3) uint8, fps) of an MP4/MOV (imageio-ffmpeg), a GIF (Pillow) or a folder of PNG/JPG
    frames (sorted by name; 24 fps)."""
    from pathlib import Path

    from usdposer.errors import InputError

    path = Path(path)
    try:
        if path.is_dir():
            from PIL import Image

            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
            if not files:
                raise InputError(f"{path}: no PNG/JPG frames in the folder; pass a video or a folder of frames")
            return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]), 24.0
        if path.suffix.lower() == ".gif":
            from PIL import Image, ImageSequence

            im = Image.open(path)
            frames = [np.asarray(fr.convert("RGB")) for fr in ImageSequence.Iterator(im)]
            return np.stack(frames), 1000.0 / max(1, im.info.get("duration", 42))
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]
        if not frames:
            raise InputError(f"{path}: the video has no frames")
        return np.stack(frames), float(meta.get("fps") or 24.0)
    except InputError:
        raise
    except (OSError, RuntimeError, ValueError, StopIteration) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read the video ({first}); pass an MP4, GIF or a folder of PNG frames") from exc


def perturb(frames: np.ndarray, *, color_shift: float = 0.0, blur: float = 0.0, noise: float = 0.0, shake: int = 0,
            seed: int = 0) -> np.ndarray:
    """What a video model does to a clean render, for benchmarks with known answers: a global colour shift (each
    channel by up to ``color_shift``, 0-1), a Gaussian blur of ``blur`` pixels, noise of std ``noise`` (0-1), and a
    per-frame camera shake of up to ``shake`` pixels. (F, H, W, 3) uint8 -> the same."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    out = []
    shift = rng.uniform(-color_shift, color_shift, 3)
    for f in frames:
        im = Image.fromarray(f)
        if blur > 0:
            im = im.filter(ImageFilter.GaussianBlur(blur))
        x = np.asarray(im).astype(np.float64) / 255.0 + shift
        if noise > 0:
            x = x + rng.normal(0.0, noise, x.shape)
        if shake:
            dx, dy = rng.integers(-shake, shake + 1, 2)
            x = np.roll(x, (int(dy), int(dx)), axis=(0, 1))
        out.append((np.clip(x, 0, 1) * 255).round().astype(np.uint8))
    return np.stack(out)


def joint_error(rig, truth, fitted, deforming_only: bool = True) -> Tensor:
    """Mean distance of the joints (world) between two poses of ``rig`` per frame, % of height: (F,). Joints that move
    no vertex (IK targets, sockets) are left out where ``deforming_only``: no picture shows them."""
    from usdposer.core.posing import character_height, joint_transforms

    rig = rig.to(torch.float64)
    S = rig.skel_to_world
    a = (S @ joint_transforms(rig, truth))[..., :3, 3]
    b = (S @ joint_transforms(rig, fitted))[..., :3, 3]
    d = (a - b).norm(dim=-1)
    if deforming_only and rig.meshes:
        used = torch.zeros(rig.num_joints, dtype=torch.bool)
        for m in rig.meshes:
            used[m.joint_indices.long()[m.joint_weights > 0.05]] = True
        d = d[:, used]
    return d.mean(-1) / (character_height(rig) or 1.0) * 100
