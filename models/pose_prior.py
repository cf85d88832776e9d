"""The pose prior: the denoiser + diffusers' schedulers + the data normalisation, saved as a checkpoint directory.

Checkpoint directory (never pickle)::

    config.json          the denoiser's constructor arguments (``register_to_config``) + a "prior" section:
                         scheduler, normalisation statistics, training summary
    model.safetensors    weights
    README.md            the model card (data, split, metrics)

Poses are canonical codes (``usdposer.core.posespace``: per-joint rotations about world-aligned axes relative to the
reference pose, 6D) and live in the model's space as ``(six - IDENTITY_6D - mean) / std`` per 6D channel, so that
the reference pose is near the origin. ``sample`` runs ``DDIMScheduler`` with the checkpoint's eta (``config.json``
``prior.sampling.eta``; 1, ancestral, for the shipped model). Latent codes are always those of the deterministic
sampler (eta = 0), whose initial noise *is* the pose's code: ``DDIMInverseScheduler`` (``invert``) maps a pose back
to it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, DDPMScheduler
from torch import Tensor
from usdposer.models.pose_denoiser import PoseDenoiser

from usdposer.core.posespace import IDENTITY_6D, REPRESENTATION
from usdposer.core.rotations import matrix_to_6d, sixd_to_matrix
from usdposer.errors import InputError, real, whole

SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "epsilon",
             "clip_sample": False}
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "default"


def _set_steps(sched, steps: int) -> None:
    """``sched.set_timesteps(steps)``, refused with one line where ``steps`` is not 1 to the noise levels the model was
    trained with (diffusers raises a ValueError that names neither the option nor the fix)."""
    most = SCHEDULER["num_train_timesteps"]
    if not 1 <= steps <= most:
        raise InputError(f"--steps {steps}: the pose space has {most} noise levels; give 1 to {most} steps")
    sched.set_timesteps(steps)


def checkpoint_dir(name: str | os.PathLike | None) -> Path:
    """One way to name a checkpoint for every verb: ``None`` or ``"default"`` is the one shipped with usdposer,
    anything else a checkpoint directory."""
    return DEFAULT_CHECKPOINT if name is None or str(name) in ("", "default") else Path(name)


def noisy_steps_of(eta: float, noisy_steps: int | None, steps: int) -> int | None:
    """The ``noisy_steps`` a run with ``eta`` and ``steps`` really has, as reports state it: None when every step adds
    noise (``noisy_steps`` None or at least ``steps``) or when none can (``eta`` 0); else the count."""
    return None if eta == 0 or noisy_steps is None or noisy_steps >= steps else int(noisy_steps)


def slerp(z0: Tensor, z1: Tensor, s: Tensor | float) -> Tensor:
    """Variance-preserving interpolation of latent codes ``(..., J, 6)`` at fractions ``s`` (broadcast, ``(S,)`` for
    S steps -> ``(S, ..., J, 6)``): the direction moves along the great circle between the two codes and the norm
    linearly between theirs, so that every step stays on the shell where Gaussian latents live (a straight line
    would shrink towards the origin, where the sampler makes mean poses)."""
    s = torch.as_tensor(s, dtype=z0.dtype)
    shape = s.shape + (1,) * z0.dim()
    s = s.reshape(shape)
    a, b = z0.flatten(-2), z1.flatten(-2)  # (..., D)
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp(min=1e-12), b / nb.clamp(min=1e-12)
    theta = torch.acos((ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0))  # (..., 1)
    s1 = s.squeeze(-1)  # (S, ..., 1)
    sin = torch.sin(theta)
    near = sin < 1e-6
    wa = torch.where(near, 1 - s1, torch.sin((1 - s1) * theta) / torch.where(near, torch.ones_like(sin), sin))
    wb = torch.where(near, s1, torch.sin(s1 * theta) / torch.where(near, torch.ones_like(sin), sin))
    u = wa * ua + wb * ub
    u = u / u.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return (u * ((1 - s1) * na + s1 * nb)).reshape(*u.shape[:-1], *z0.shape[-2:])


def valid_6d(six: Tensor) -> Tensor:
    """Project 6D codes onto the rotations they stand for (orthonormal first two columns)."""
    return matrix_to_6d(sixd_to_matrix(six))


def gauss_newton(residual, x: Tensor, *, iters: int = 1, damping: float = 1e-3, tol: float = 1e-20) -> Tensor:
    """Levenberg-Marquardt on ``||residual(x)||^2`` for each batch element of ``x (B, ...)``:
    ``dx = -(J^T J + lambda I)^-1 J^T r`` with ``J = dr/dx`` by reverse-mode autograd. A step is kept only when it
    lowers the energy (then ``lambda`` shrinks 3x); otherwise ``lambda`` grows 4x and the step is retried (up to 4
    times), which keeps the solver steady where the residual has kinks (the grounding's lowest point switching).
    Stops once the energy is below ``tol``. ``residual`` maps a batch ``(b, ...)`` to ``(b, R)``; rows must not mix
    batch elements, which is what lets the whole batch go through at once: the Jacobian of the batch-summed
    residual ``(R, B, D)`` holds every element's own ``(R, D)`` (one reverse pass per row, not per row and element),
    and each element keeps its own ``lambda``, acceptance and stop."""
    x = x.detach().clone()
    B, shape = x.shape[0], x.shape[1:]
    xb = x.reshape(B, -1).double()
    f = lambda v: residual(v.reshape(len(v), *shape).to(x.dtype)).double()  # noqa: E731  (b, D) -> (b, R)
    lam = torch.full((B,), damping, dtype=torch.float64)
    act = torch.arange(B)  # elements still above tol: only they pay for a Jacobian
    for _ in range(iters):
        Jm, ra = _jac_and_value(f, xb[act])  # (b, R, D), (b, R): the Jacobian's forward pass gives the residual
        ea = (ra * ra).sum(1)
        keep = ea >= tol
        if not keep.any():
            break
        act, Jm, ra, ea = act[keep], Jm[keep], ra[keep], ea[keep]
        xa, la = xb[act], lam[act]
        # (J^T J + lam I)^-1 J^T r = J^T (J J^T + lam I)^-1 r: an (R, R) system when there are fewer residual rows
        # than coordinates (3 handles, 16 limits, 16 capsule pairs against 6 per joint)
        rows = Jm.shape[1] < Jm.shape[2]
        A = Jm @ Jm.mT if rows else Jm.mT @ Jm  # (b, R, R) or (b, D, D)
        rhs = ra if rows else (Jm.mT @ ra[..., None])[..., 0]
        eye = torch.eye(A.shape[-1], dtype=torch.float64)
        pending = torch.ones(len(act), dtype=torch.bool)
        for _try in range(4):
            step = torch.linalg.solve(A + la[:, None, None] * eye, rhs)
            cand = xa - ((Jm.mT @ step[..., None])[..., 0] if rows else step)
            better = pending.clone()
            with torch.no_grad():  # only the candidates still looking for a step
                rc = f(cand[pending])
            better[pending] = (rc * rc).sum(1) < ea[pending]
            xa = torch.where(better[:, None], cand, xa)
            la = torch.where(better, (la / 3.0).clamp(min=1e-9), torch.where(pending, la * 4.0, la))
            pending &= ~better
            if not pending.any():
                break
        xb[act], lam[act] = xa, la
    return xb.reshape(B, *shape).to(x.dtype)


def _jac_and_value(f, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(b, R, D)`` Jacobians and ``(b, R)`` values of ``f: (b, D) -> (b, R)`` whose rows do not mix batch elements,
    from one forward pass (the reverse passes of the batch-summed rows, vmapped)."""
    def summed(v):
        r = f(v)
        return r.sum(0), r.detach()

    J, r = torch.func.jacrev(summed, has_aux=True)(x)
    return J.detach().transpose(0, 1), r


@dataclass
class RigCondition:
    """What the denoiser sees of one rig: features (J, F), tree distances (J, J) and the model joints (J,) bool.

    The prior runs on the model joints only (:meth:`compact`); poses and latent codes stay ``(n, J, 6)`` over all of
    the rig's joints, the others at identity (their reference rotation), so that joints that move nothing (end sites,
    sockets, IK targets) change neither the model's answer nor the random stream it draws."""

    features: Tensor
    tree: Tensor
    mask: Tensor | None = None

    @classmethod
    def from_rig(cls, rig) -> RigCondition:
        from usdposer.core.posespace import joint_features, model_tree, rig_frame

        return cls(joint_features(rig).float(), model_tree(rig), rig_frame(rig).mask.clone())

    @property
    def joints(self) -> int:
        return int(self.features.shape[0])

    @property
    def index(self) -> Tensor:
        """``(M,)`` indices of the model joints."""
        m = self.mask if self.mask is not None else torch.ones(self.joints, dtype=torch.bool)
        return m.nonzero().flatten()

    def compact(self, x: Tensor) -> Tensor:
        """``(n, J, C)`` -> ``(n, M, C)``: the model joints."""
        return x if self.mask is None or bool(self.mask.all()) else x[:, self.index.to(x.device)]

    def expand(self, x: Tensor, fill: Tensor | None = None) -> Tensor:
        """``(n, M, C)`` -> ``(n, J, C)``: other joints set to ``fill`` (C,) (zeros by default)."""
        if self.mask is None or bool(self.mask.all()):
            return x
        out = torch.zeros(x.shape[0], self.joints, x.shape[2], dtype=x.dtype, device=x.device)
        if fill is not None:
            out[:] = fill.to(x)
        out[:, self.index.to(x.device)] = x
        return out

    def randn(self, *lead: int, channels: int = 6, generator: torch.Generator | None = None) -> Tensor:
        """``(*lead, M, channels)`` standard normal draws for the model joints, each joint's own draws made in
        :func:`usdposer.core.posespace.canonical_order`, so that they follow the joint, not its place in the rig."""
        from usdposer.core.posespace import canonical_order

        m = self.model()
        order = canonical_order(m.features)
        x = torch.randn(*lead, len(order), channels, generator=generator)
        out = torch.empty_like(x)
        out[..., order, :] = x
        return out

    def model(self) -> RigCondition:
        """The condition restricted to the model joints (what the denoiser is run on)."""
        if self.mask is None or bool(self.mask.all()):
            return RigCondition(self.features, self.tree)
        i = self.index
        return RigCondition(self.features[i], self.tree[i][:, i])


class PosePrior:
    """A trained pose space: ``sample``, ``invert``, ``guided_sample``, ``score``; ``save`` / ``load`` as a checkpoint
    directory."""

    def __init__(self, denoiser: PoseDenoiser, mean: Tensor | None = None, std: Tensor | None = None,
                 info: dict | None = None):
        self.denoiser = denoiser
        self.mean = torch.zeros(6) if mean is None else mean.float()
        self.std = torch.ones(6) if std is None else std.float()
        self.info = dict(info or {})
        self.train_scheduler = DDPMScheduler(**SCHEDULER)

    # ----------------------------------------------------------------------------------------------- space change
    def normalize(self, six: Tensor) -> Tensor:
        ident = torch.tensor(IDENTITY_6D, dtype=six.dtype, device=six.device)
        return (six - ident - self.mean.to(six)) / self.std.to(six)

    def denormalize(self, x: Tensor) -> Tensor:
        ident = torch.tensor(IDENTITY_6D, dtype=x.dtype, device=x.device)
        return x * self.std.to(x) + self.mean.to(x) + ident

    @staticmethod
    def _full(cond: RigCondition, six: Tensor) -> Tensor:
        """``(n, M, 6)`` model-joint poses -> ``(n, J, 6)``, the other joints at identity."""
        return cond.expand(six, torch.tensor(IDENTITY_6D, dtype=six.dtype))

    @property
    def sampling_eta(self) -> float:
        """The sampler's eta that this checkpoint's card was measured with (``config.json`` ``prior.sampling.eta``;
        0, deterministic DDIM, where it says nothing)."""
        return float(self.info.get("sampling", {}).get("eta", 0.0))

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def _eps(self, x: Tensor, t, cond: RigCondition) -> Tensor:
        """One rig for the whole batch: its features and tree go in with a batch of 1 and broadcast (and a scalar
        ``t`` stays one), so the rig and time terms are computed once per step, not once per pose."""
        t = torch.as_tensor(t, device=x.device)
        return self.denoiser(x, t, cond.features.to(x)[None], cond.tree.to(x.device)[None])

    # ----------------------------------------------------------------------------------------------- sampling
    @staticmethod
    def _timesteps(sched, steps: int, strength: float) -> Tensor:
        """The last ``round(strength * steps)`` of the sampler's timesteps (all of them at strength 1)."""
        _set_steps(sched, steps)
        if not 0.0 < strength <= 1.0:
            raise InputError(f"strength must be in (0, 1] (got {strength})")
        k = max(1, round(strength * steps))
        return sched.timesteps[len(sched.timesteps) - k:]

    @torch.no_grad()
    def sample(self, cond: RigCondition, n: int, *, steps: int = 50, generator: torch.Generator | None = None,
               latents: Tensor | None = None, strength: float = 1.0, batch_size: int = 256, eta: float = 0.0,
               noisy_steps: int | None = None, codes: bool = False, refine: int = 3,
               progress=None) -> tuple[Tensor, Tensor]:
        """DDIM samples. Returns (six (n, J, 6) poses in rotation space, latents (n, J, 6)).

        ``strength < 1`` starts from a partially noised latent (:meth:`invert` with the same strength). ``eta = 0``
        (the default) is the deterministic sampler whose latent codes :meth:`invert` recovers and
        ``interpolate`` blends; ``eta = 1`` is ancestral (DDPM-like) sampling, which adds fresh noise from
        ``generator`` at every step, so the returned starting latents no longer determine the poses. On unseen
        topologies it covers the real poses better (model card).

        ``noisy_steps`` k: only the first k steps add noise (with ``eta``), the rest are deterministic; None: all of
        them. ``codes``: return, instead of the starting latents, codes that decode to the poses under ``eta = 0``:
        the state after the last noisy step DDIM-inverted back through the k noisy steps (``refine`` fixed-point
        passes each, as :meth:`invert`); k steps of inversion, not ``steps``, so a few noisy steps at the start buy
        the ancestral sampler's precision at little more than the deterministic sampler's cost (the README's curve).
        """
        if not 0.0 <= eta <= 1.0:
            raise InputError(f"eta must be in [0, 1] (got {eta})")
        model = cond.model()
        if latents is None:
            latents = cond.expand(cond.randn(n, generator=generator))
        sched = DDIMScheduler(**SCHEDULER)
        timesteps = self._timesteps(sched, steps, strength)
        k = 0 if eta == 0 else len(timesteps) if noisy_steps is None else min(max(int(noisy_steps), 0), len(timesteps))
        out, found = [], []
        self.denoiser.eval()
        z = cond.compact(latents)
        for i in range(0, len(z), batch_size):
            x = z[i:i + batch_size].to(self.device)
            mid = x
            for s, t in enumerate(progress(timesteps) if progress else timesteps):
                noisy = s < k
                x = sched.step(self._eps(x, t, model), t, x, eta=eta if noisy else 0.0,
                               variance_noise=model.randn(len(x), generator=generator).to(x) if noisy else None
                               ).prev_sample
                if s + 1 == k:
                    mid = x
            out.append(self.denormalize(x).cpu())
            if codes:
                found.append(self._invert_steps(mid, timesteps[:k], steps, model, refine).cpu())
        six = self._full(cond, torch.cat(out))
        return (six, cond.expand(torch.cat(found))) if codes else (six, latents)

    def _invert_steps(self, x: Tensor, timesteps: Tensor, steps: int, model: RigCondition, refine: int,
                      progress=None) -> Tensor:
        """Undo the sampler's steps at ``timesteps`` (descending, as sampled) on ``x``: (B, M, 6) normalised, at the
        noise level after the last of them -> the level before the first."""
        sched = DDIMInverseScheduler(**SCHEDULER)
        _set_steps(sched, steps)
        up = timesteps.flip(0)
        for t in (progress(up) if progress else up):
            nxt = sched.step(self._eps(x, t, model), t, x).prev_sample
            for _ in range(refine):
                nxt = sched.step(self._eps(nxt, t, model), t, x).prev_sample
            x = nxt
        return x

    @torch.no_grad()
    def invert(self, cond: RigCondition, six: Tensor, *, steps: int = 50, refine: int = 3, strength: float = 1.0,
               batch_size: int = 256, progress=None) -> Tensor:
        """DDIM inversion (eta = 0): poses (n, J, 6) -> latent codes (n, J, 6) that :meth:`sample` maps back.

        Each step is diffusers' ``DDIMInverseScheduler`` step, whose noise estimate is taken at the less noisy sample.
        ``refine`` fixed-point iterations then re-evaluate the noise at the noisier sample being solved for, so that the
        sampler's own step maps it back exactly (the usual inversion error comes from that one approximation).
        ``strength < 1`` stops part way, at the noise level where ``sample(..., strength)`` starts.
        """
        timesteps = self._timesteps(DDIMScheduler(**SCHEDULER), steps, strength)  # the sampler's, undone in reverse
        out = []
        self.denoiser.eval()
        model = cond.model()
        six = cond.compact(six)
        for i in range(0, len(six), batch_size):
            x = self.normalize(six[i:i + batch_size].float()).to(self.device)
            out.append(self._invert_steps(x, timesteps, steps, model, refine, progress).cpu())
        return cond.expand(torch.cat(out))

    def guided_sample(self, cond: RigCondition, residual, latents: Tensor, *, steps: int = 50,
                      strength: float | list[float] = 1.0, inner: int = 1, damping: float = 1e-3, final_inner: int = 10,
                      tol: float = 1e-20, progress=None) -> Tensor:
        """Energy-guided DDIM (eta = 0): every denoising step nudges the predicted clean pose down ``energy``.

        Notation (DDIM, Song et al. 2021, eq. 12; a = alphas_cumprod[t]):
            eps     = eps_theta(x_t, t)                       the denoiser's noise estimate
            x0_hat  = (x_t - sqrt(1 - a) eps) / sqrt(a)        the predicted clean pose (normalised 6D)
            x0_hat' = x0_hat after ``inner`` damped Gauss-Newton steps on E = ||r(denormalize(x0_hat))||^2
            eps'    = (x_t - sqrt(a) x0_hat') / sqrt(1 - a)    the noise consistent with the nudged pose
            x_prev  = DDIMScheduler.step(eps', t, x_t)         so the next step sees the edit through the prior
        The last step's x0_hat' is refined ``final_inner`` more times (the prior has settled; only the constraints
        remain); ``tol`` stops the nudges once the energy is below it, so that constraints already met leave the
        prior's pose alone. ``residual`` maps ``six (B, J, 6)`` to ``(B, R)``. Gauss-Newton's minimum-norm steps move the joints
        that matter and leave the others where the prior put them (Adam's per-coordinate steps would move them all).
        ``strength`` may be one per latent: an edit (0.8) joins samples from noise (1.0) when the schedule reaches
        its first step, so that both run as one batch. Returns six ``(B, J, 6)``.
        """
        sched = DDIMScheduler(**SCHEDULER)
        per = [float(v) for v in strength] if isinstance(strength, (list, tuple)) else [float(strength)] * len(latents)
        if len(per) != len(latents):
            raise ValueError(f"{len(per)} strengths for {len(latents)} latents")
        timesteps = self._timesteps(sched, steps, max(per))
        begin = torch.tensor([len(timesteps) - len(self._timesteps(sched, steps, v)) for v in per])  # (B,)
        _set_steps(sched, steps)
        alphas = sched.alphas_cumprod.to(self.device)
        model = cond.model()
        x = cond.compact(latents).to(self.device).float()
        self.denoiser.eval()

        def nudge(x0: Tensor, iters: int) -> Tensor:
            return gauss_newton(lambda x: residual(self._full(cond, self.denormalize(x))), x0, iters=iters,
                                damping=damping, tol=tol)

        for i, t in enumerate(progress(timesteps) if progress else timesteps):
            on = begin <= i  # (B,) latents whose schedule has begun
            xs = x[on]
            # 1. predict the clean pose
            with torch.no_grad():
                eps = self._eps(xs, t, model)
            a = alphas[t]
            x0 = (xs - (1 - a).sqrt() * eps) / a.sqrt()
            # 2. nudge it down the energy
            x0 = nudge(x0, inner)
            # 3. DDIM step with the consistent noise
            eps = (xs - a.sqrt() * x0) / (1 - a).sqrt()
            x[on] = sched.step(eps, t, xs, eta=0.0).prev_sample
        x = nudge(x, final_inner)
        return valid_6d(self._full(cond, self.denormalize(x)).cpu())

    @torch.no_grad()
    def score(self, cond: RigCondition, six: Tensor, *, timesteps: tuple[int, ...] = (20, 60, 120, 250, 400),
              draws: int = 4, seed: int = 0, batch_size: int = 256) -> Tensor:
        """Prior implausibility of poses ``(n, J, 6)`` -> ``(n,)``: the denoising error ``||eps_theta(x_t, t) - eps||^2``
        (per joint and channel) averaged over fixed noise levels and noise draws, a Monte-Carlo proxy of the negative
        ELBO. Lower is more plausible; the same ``seed`` gives comparable scores across calls. The poses are first
        projected onto valid 6D rotations, so that the score judges the rotations, not the representation."""
        g = torch.Generator().manual_seed(seed)
        model = cond.model()
        six = cond.compact(valid_6d(six.float()))
        J = six.shape[1]
        noise = model.randn(len(timesteps), draws, generator=g)  # (levels, draws, J, 6), drawn per joint
        KD = len(timesteps) * draws
        eps_all = noise.reshape(KD, 1, J, 6).to(self.device)  # every (level, draw) pair
        t_all = torch.tensor(timesteps, device=self.device).repeat_interleave(draws)  # (KD,)
        out = []
        self.denoiser.eval()
        chunk = max(1, batch_size * 4 // KD)  # poses per forward: all their levels and draws in one batch
        for i in range(0, len(six), chunk):
            x0 = self.normalize(six[i:i + chunk].float()).to(self.device)  # (b, J, 6)
            b = len(x0)
            eps = eps_all.expand(KD, b, J, 6).reshape(KD * b, J, 6)
            tt = t_all[:, None].expand(KD, b).reshape(-1)
            xt = self.train_scheduler.add_noise(x0[None].expand(KD, b, J, 6).reshape(KD * b, J, 6), eps, tt)
            err = ((self._eps(xt, tt, model) - eps) ** 2).mean((1, 2)).view(KD, b)
            out.append(err.mean(0).cpu())
        return torch.cat(out)

    # ----------------------------------------------------------------------------------------------- training
    def loss(self, x0: Tensor, features: Tensor, tree: Tensor, mask: Tensor, generator=None) -> Tensor:
        """Denoising loss on a padded batch: x0 (B, J, 6) normalised clean poses, mask (B, J) real joints."""
        B = x0.shape[0]
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        t = torch.randint(0, SCHEDULER["num_train_timesteps"], (B,), generator=generator, device=x0.device)
        xt = self.train_scheduler.add_noise(x0, noise, t)
        pred = self.denoiser(xt, t, features, tree, mask)
        err = ((pred - noise) ** 2).mean(-1) * mask
        return err.sum() / mask.sum().clamp(min=1)

    # ----------------------------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike, card: str | None = None) -> Path:
        """Write the checkpoint directory (files written beside, then moved into place)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = dict(self.denoiser.config)
        config = {k: v for k, v in config.items() if not k.startswith("_")}
        config["_class_name"] = "PoseDenoiser"
        config["prior"] = {"scheduler": SCHEDULER, "mean": self.mean.tolist(), "std": self.std.tolist(),
                           **self.info, "pose_representation": REPRESENTATION}
        files = {"config.json": json.dumps(config, indent=2).encode()}
        if card is not None:
            files["README.md"] = card.encode()
        state = {k: v.detach().cpu().contiguous() for k, v in self.denoiser.state_dict().items()}
        tmp_w = path / ".model.safetensors.tmp"
        save_file(state, str(tmp_w), metadata={"format": "pt"})
        for name, data in files.items():
            (path / f".{name}.tmp").write_bytes(data)
        os.replace(tmp_w, path / "model.safetensors")
        for name in files:
            os.replace(path / f".{name}.tmp", path / name)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str = "cpu") -> PosePrior:
        """Load a checkpoint directory (``None`` or ``"default"``: the one shipped in the package)."""
        from safetensors.torch import load_file

        path = checkpoint_dir(path)
        cfg_file, w_file = path / "config.json", path / "model.safetensors"
        if not cfg_file.exists() or not w_file.exists():
            raise InputError(f"{path}: not a usdposer checkpoint (needs config.json and model.safetensors); "
                             "train one with `usdposer train` or omit --checkpoint for the default")
        try:
            config = json.loads(cfg_file.read_text())
            bad = _non_finite(config)
            if bad:
                raise InputError(f"{cfg_file}: {bad} is not finite (NaN or infinite); the checkpoint is corrupt, "
                                 "re-download or retrain it")
            _check_config(config, cfg_file)
            prior = config.pop("prior")
            kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
            denoiser = PoseDenoiser(**kwargs)
            state = load_file(str(w_file))
            bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
            if bad:
                raise InputError(f"{w_file}: weight {bad[0]} holds NaN or infinite values; the checkpoint is corrupt, "
                                 "re-download or retrain it")
            denoiser.load_state_dict(state)
            rep = prior.get("pose_representation", "6d-relative-to-rest")
            if rep != REPRESENTATION:
                raise InputError(f"{path}: the checkpoint was trained on the pose representation {rep!r}, this "
                                 f"usdposer uses {REPRESENTATION!r}; rebuild its dataset and retrain it (`usdposer "
                                 "dataset build`, `usdposer train`) or use the default checkpoint")
            info = {k: v for k, v in prior.items() if k not in ("scheduler", "mean", "std", "pose_representation")}
            mean, std = (torch.tensor(prior[k], dtype=torch.float32) for k in ("mean", "std"))
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                             "re-download or retrain it") from exc
        return cls(denoiser.to(device).eval(), mean, std, info)


# the denoiser's sizes a config may give (whole numbers) and its ratios; beyond these a file is corrupt, not a model
CONFIG_SIZES = {"feature_dim": (1, 1 << 16), "pose_dim": (1, 1 << 10), "width": (1, 1 << 16), "depth": (1, 1 << 10),
                "heads": (1, 1 << 10), "max_tree_distance": (1, 1 << 16)}
CONFIG_RATIOS = {"mlp_ratio": (0.0, 64.0), "dropout": (0.0, 1.0)}  # lo < value <= hi (dropout: lo <= value < hi)


def _check_config(config, cfg_file: Path) -> None:
    """Refuse a checkpoint config whose sizes, ratios or ``prior`` block are of the wrong type or absurd (a size of
    10^9 would be allocated before the weights could disagree), one line naming the key."""
    fix = "the checkpoint is corrupt, re-download or retrain it"
    if not isinstance(config, dict):
        raise InputError(f"{cfg_file}: not a JSON object; {fix}")
    for k, (lo, hi) in CONFIG_SIZES.items():
        v = config.get(k, lo)
        if not whole(v, lo, hi):
            raise InputError(f"{cfg_file}: {k} = {v!r} is not a whole number from {lo} to {hi}; {fix}")
    for k, (lo, hi) in CONFIG_RATIOS.items():
        v = config.get(k, (lo + hi) / 2)
        if not real(v) or not (lo <= v < hi if k == "dropout" else lo < v <= hi):
            raise InputError(f"{cfg_file}: {k} = {v!r} is out of range ({lo} to {hi}); {fix}")
    prior = config.get("prior")
    if not isinstance(prior, dict) or not all(isinstance(prior.get(k), list) for k in ("mean", "std")):
        raise InputError(f'{cfg_file}: no "prior" object with the "mean" and "std" lists; {fix}')
    # what sampling and check read from it: the sampler's eta, the calibrated plausibility threshold
    eta = prior.get("sampling", {}).get("eta", 0.0) if isinstance(prior.get("sampling", {}), dict) else None
    cal = prior.get("plausibility") or {}
    thr = cal.get("threshold", 0.0) if isinstance(cal, dict) else None
    for key, v, lo, hi in (("prior.sampling.eta", eta, 0.0, 1.0), ("prior.plausibility.threshold", thr, 0.0, 1e6)):
        if not real(v) or not lo <= v <= hi:
            raise InputError(f"{cfg_file}: {key} is not a number from {lo:g} to {hi:g}; {fix}")


def _non_finite(value, where: str = "config") -> str | None:
    """The path of the first NaN or infinite number in a JSON value (``config.prior.std[0]``), or None."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, dict):
        for k, v in value.items():
            found = _non_finite(v, f"{where}.{k}")
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_finite(v, f"{where}[{i}]")
            if found:
                return found
    return None
