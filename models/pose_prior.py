"""The pose prior: the denoiser + diffusers' schedulers + the data normalisation, saved as a checkpoint directory.

Checkpoint directory (never pickle)::

    config.json          the denoiser's constructor arguments (``register_to_config``) + a "prior" section:
                         scheduler, normalisation statistics, training summary
    model.safetensors    weights
    README.md            the model card (data, split, metrics)

Poses live in the model's space as ``(six - IDENTITY_6D - mean) / std`` per 6D channel, so that the rest pose is
near the origin. Sampling runs ``DDIMScheduler`` with eta = 0 (deterministic: the initial noise *is* the pose's
latent code, and ``DDIMInverseScheduler`` maps a pose back to it).
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

from usdposer.errors import InputError
from usdposer.rigfeatures import IDENTITY_6D

SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "epsilon",
             "clip_sample": False}
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "default"


@dataclass
class RigCondition:
    """What the denoiser sees of one rig: features (J, F) and tree distances (J, J)."""

    features: Tensor
    tree: Tensor

    @classmethod
    def from_rig(cls, rig) -> RigCondition:
        from usdposer.rigfeatures import joint_features, tree_distance

        return cls(joint_features(rig).float(), tree_distance(rig.parents))


class PosePrior:
    """A trained pose space: ``sample``, ``invert``, ``denoise``; ``save`` / ``load`` as a checkpoint directory."""

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

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def _eps(self, x: Tensor, t, cond: RigCondition) -> Tensor:
        B = x.shape[0]
        f = cond.features.to(x)[None].expand(B, -1, -1)
        tr = cond.tree.to(x.device)[None].expand(B, -1, -1)
        t = torch.as_tensor(t, device=x.device).expand(B)
        return self.denoiser(x, t, f, tr)

    # ----------------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, cond: RigCondition, n: int, *, steps: int = 50, generator: torch.Generator | None = None,
               latents: Tensor | None = None, batch_size: int = 256, progress=None) -> tuple[Tensor, Tensor]:
        """DDIM (eta = 0) samples. Returns (six (n, J, 6) poses in rotation space, latents (n, J, 6))."""
        J = cond.features.shape[0]
        if latents is None:
            latents = torch.randn(n, J, 6, generator=generator)
        sched = DDIMScheduler(**SCHEDULER)
        sched.set_timesteps(steps)
        out = []
        self.denoiser.eval()
        for i in range(0, n, batch_size):
            x = latents[i:i + batch_size].to(self.device)
            for t in (progress(sched.timesteps) if progress else sched.timesteps):
                x = sched.step(self._eps(x, t, cond), t, x, eta=0.0).prev_sample
            out.append(self.denormalize(x).cpu())
        return torch.cat(out), latents

    @torch.no_grad()
    def invert(self, cond: RigCondition, six: Tensor, *, steps: int = 50, batch_size: int = 256) -> Tensor:
        """DDIM inversion (eta = 0): poses (n, J, 6) -> latent codes (n, J, 6) that ``sample`` maps back."""
        sched = DDIMInverseScheduler(**SCHEDULER)
        sched.set_timesteps(steps)
        out = []
        self.denoiser.eval()
        for i in range(0, len(six), batch_size):
            x = self.normalize(six[i:i + batch_size].float()).to(self.device)
            for t in sched.timesteps:
                x = sched.step(self._eps(x, t, cond), t, x).prev_sample
            out.append(x.cpu())
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
                           "pose_representation": "6d-relative-to-rest", **self.info}
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
        """Load a checkpoint directory (``None``: the default checkpoint shipped in the package)."""
        from safetensors.torch import load_file

        path = Path(path) if path is not None else DEFAULT_CHECKPOINT
        cfg_file, w_file = path / "config.json", path / "model.safetensors"
        if not cfg_file.exists() or not w_file.exists():
            raise InputError(f"{path}: not a usdposer checkpoint (needs config.json and model.safetensors); "
                             "train one with `usdposer train` or omit --checkpoint for the default")
        try:
            config = json.loads(cfg_file.read_text())
            prior = config.pop("prior")
            kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
            denoiser = PoseDenoiser(**kwargs)
            denoiser.load_state_dict(load_file(str(w_file)))
        except Exception as exc:
            raise InputError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                             "re-download or retrain it") from exc
        info = {k: v for k, v in prior.items() if k not in ("scheduler", "mean", "std")}
        return cls(denoiser.to(device).eval(), torch.tensor(prior["mean"]), torch.tensor(prior["std"]), info)
