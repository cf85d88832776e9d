"""Training the pose prior on a dataset directory (``usdposer.io.dataset``): padded mixed-skeleton batches, AdamW,
an EMA of the weights (what gets saved), periodic validation, resume, and a wall-clock budget.

Resume state sits beside the checkpoint: ``training_state.safetensors`` (EMA weights, optimiser moments) and
``training_state.json`` (step, losses, settings). Nothing is pickled.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from usdposer.models.pose_denoiser import PoseDenoiser
from usdposer.models.pose_prior import PosePrior

from usdposer.errors import InputError, Interrupted, whole
from usdposer.io.dataset import Character, load_dataset
from usdposer.outputs import uninterrupted
from usdposer.results import Result


@dataclass
class TrainConfig:
    steps: int = 20000
    batch_size: int = 256
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 200
    ema: float = 0.999
    width: int = 128
    depth: int = 4
    heads: int = 4
    seed: int = 0
    val_every: int = 500
    save_every: int = 1000
    max_minutes: float | None = None
    device: str = "cpu"
    mirror: bool = True  # left/right mirror images of characters whose reference pose is symmetric


@dataclass
class TrainResult(Result):
    checkpoint: str
    steps: int
    train_loss: float
    val_loss: float | None
    minutes: float
    stopped_by: str
    history: list[dict] = field(default_factory=list)


class Batcher:
    """Random padded batches over characters (probability ~ sqrt(pose count), so long mocap takes do not drown
    small clips), poses uniform within a character. Joints outside a character's model are masked out. With
    ``mirror``, characters whose reference pose is mirror-symmetric also give their poses' left/right mirror images
    (``usdposer.core.posespace.mirror_codes``), half of the time."""

    def __init__(self, chars: list[Character], prior: PosePrior, device: str, generator: torch.Generator,
                 mirror: bool = False):
        from usdposer.core.posespace import mirror_codes

        self.chars = [c for c in chars if len(c.poses)]
        if not self.chars:
            raise InputError("the dataset has no poses in the chosen split; add animated assets")
        self.x, self.xm = [], []
        for c in self.chars:
            self.x.append(prior.normalize(c.poses.float()).to(device))
            perm = c.mirror() if mirror else None
            self.xm.append(None if perm is None else prior.normalize(mirror_codes(c.poses.double(), perm).float()).to(device))
        self.f = [c.features.float().to(device) for c in self.chars]
        self.t = [c.tree.long().to(device) for c in self.chars]
        self.m = [c.mask.bool().to(device) for c in self.chars]
        w = torch.tensor([math.sqrt(len(c.poses)) for c in self.chars])
        self.p = w / w.sum()
        self.g = generator
        self.device = device

    @property
    def mirrored(self) -> list[str]:
        return [c.id for c, xm in zip(self.chars, self.xm) if xm is not None]

    def __call__(self, B: int):
        ci = torch.multinomial(self.p, B, replacement=True, generator=self.g)
        Jmax = max(self.x[i].shape[1] for i in ci.unique().tolist())
        F = self.f[0].shape[1]
        x = torch.zeros(B, Jmax, 6, device=self.device)
        f = torch.zeros(B, Jmax, F, device=self.device)
        tr = torch.full((B, Jmax, Jmax), 10**4, dtype=torch.long, device=self.device)
        m = torch.zeros(B, Jmax, dtype=torch.bool, device=self.device)
        for c in ci.unique().tolist():
            rows = (ci == c).nonzero().squeeze(1).to(self.device)
            J = self.x[c].shape[1]
            pick = torch.randint(0, len(self.x[c]), (len(rows),), generator=self.g).to(self.device)
            x[rows, :J] = self.x[c][pick]
            if self.xm[c] is not None:
                flip = (torch.rand(len(rows), generator=self.g) < 0.5).to(self.device)
                x[rows[flip], :J] = self.xm[c][pick[flip]]
            f[rows, :J] = self.f[c]
            tr[rows, :J, :J] = self.t[c]
            m[rows, :J] = self.m[c]
        return x, f, tr, m


def normalization(chars: list[Character]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean / std of (six - identity) over the training poses' model joints (each character weighted
    equally)."""
    from usdposer.core.posespace import IDENTITY_6D

    ident = torch.tensor(IDENTITY_6D)
    means, sq = [], []
    for c in chars:
        if len(c.poses):
            d = c.poses[:, c.mask.bool()].double().reshape(-1, 6) - ident
            means.append(d.mean(0))
            sq.append((d ** 2).mean(0))
    mean = torch.stack(means).mean(0)
    std = (torch.stack(sq).mean(0) - mean ** 2).clamp(min=1e-6).sqrt()
    return mean.float(), std.float()


def _save_state(out: Path, ema: dict, opt: torch.optim.Optimizer, step: int, extra: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.items()}
    for i, (_, st) in enumerate(opt.state.items()):
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{i}.{k}"] = v.detach().cpu().contiguous().reshape(v.shape)
    tmp = out / ".training_state.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, out / "training_state.safetensors")
    (out / ".training_state.json.tmp").write_text(json.dumps({"step": step, **extra}, indent=2))
    os.replace(out / ".training_state.json.tmp", out / "training_state.json")


RESTART = "delete the training state files to start over, or drop --resume"


def _read_state(path: Path) -> tuple[int, list, dict]:
    """(step, history, config) of a ``training_state.json``; an InputError naming the fix when it is not one."""
    try:
        st = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable training state ({type(exc).__name__}); {RESTART}") from exc
    ok = isinstance(st, dict) and whole(st.get("step"), 0) and isinstance(st.get("history", []), list) \
        and isinstance(st.get("config"), dict) and all(whole(st["config"].get(k), 1) for k in ("width", "depth", "heads"))
    if not ok:
        raise InputError(f"{path}: not a training state (a step, a history and the config's width, depth and heads "
                         f"as whole numbers); {RESTART}")
    return st["step"], st.get("history", []), st["config"]


def train(dataset: str | os.PathLike, out: str | os.PathLike, cfg: TrainConfig, *, resume: bool = False,
          progress=None, log=print, card=None) -> TrainResult:
    """Train (or resume) a pose prior; writes the checkpoint directory ``out``. ``card(prior, result) -> str``
    renders the model card."""
    from safetensors.torch import load_file

    t0 = time.time()
    out = Path(out)
    chars = load_dataset(dataset, ("train", "val"))
    train_chars = [c for c in chars if c.split == "train"]
    val_chars = [c for c in chars if c.split == "val" and len(c.poses)]
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    state_json = out / "training_state.json"
    start = 0
    history: list[dict] = []
    if resume and state_json.exists():
        start, history, saved = _read_state(state_json)
        for k in ("width", "depth", "heads"):
            setattr(cfg, k, saved[k])
        prior = PosePrior.load(out, cfg.device)
        mean, std = prior.mean, prior.std
    else:
        if resume:
            log(f"no training state in {out}; starting from scratch")
        from usdposer.core.posespace import FEATURE_DIM

        mean, std = normalization(train_chars)
        prior = PosePrior(PoseDenoiser(feature_dim=FEATURE_DIM, width=cfg.width, depth=cfg.depth, heads=cfg.heads),
                          mean, std)
    model = prior.denoiser.to(cfg.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if resume and (out / "training_state.safetensors").exists():
        try:
            ts = load_file(str(out / "training_state.safetensors"))
        except Exception as exc:  # safetensors raises its own error types on a cut or foreign file
            raise InputError(f"{out / 'training_state.safetensors'}: unreadable training state ({type(exc).__name__}); "
                             f"{RESTART}") from exc
        # the saved model weights are the EMA: training resumes from them (the live weights are not kept)
        ema = {k[4:]: v.to(cfg.device) for k, v in ts.items() if k.startswith("ema.")}
        # the optimiser's moments, by parameter order
        for i, p in enumerate(model.parameters()):
            if f"opt.{i}.exp_avg" in ts:
                opt.state[p] = {"step": torch.tensor(float(start)), "exp_avg": ts[f"opt.{i}.exp_avg"].to(cfg.device),
                                "exp_avg_sq": ts[f"opt.{i}.exp_avg_sq"].to(cfg.device)}
    batcher = Batcher(train_chars, prior, cfg.device, g, mirror=cfg.mirror)
    from usdposer.models.evaluation import angle_statistics, signature

    prior.info["baseline_angles"] = angle_statistics(train_chars)  # the random-rotations baseline of `eval`
    prior.info["train_topologies"] = sorted({signature(c) for c in train_chars})
    prior.info["augmentation"] = {"mirror": batcher.mirrored}
    val_batcher = Batcher(val_chars, prior, cfg.device, torch.Generator().manual_seed(1234)) if val_chars else None
    val_batches = [val_batcher(min(cfg.batch_size, 256)) for _ in range(4)] if val_batcher else []

    def validate() -> float | None:
        if not val_batches:
            return None
        saved = {k: v.clone() for k, v in model.state_dict().items()}
        model.load_state_dict(ema)
        model.eval()
        vg = torch.Generator(device=cfg.device).manual_seed(99)
        with torch.no_grad():
            loss = sum(float(prior.loss(*b, generator=vg)) for b in val_batches) / len(val_batches)
        model.load_state_dict(saved)
        model.train()
        return loss

    sched = lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(cfg.steps, 1))))
    step, running, stopped_by = start, None, "steps"
    bar = progress(total=cfg.steps, initial=start) if progress else None
    kept = start if start else None  # the step of the training state in ``out`` (resumed from, or saved)
    try:
        while step < cfg.steps:
            if cfg.max_minutes is not None and (time.time() - t0) / 60 > cfg.max_minutes:
                stopped_by = "max-minutes"
                break
            for group in opt.param_groups:
                group["lr"] = cfg.lr * sched(step)
            loss = prior.loss(*batcher(cfg.batch_size))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                d = min(cfg.ema, (1 + step) / (10 + step))
                for k, v in model.state_dict().items():
                    ema[k].mul_(d).add_(v.detach(), alpha=1 - d) if v.is_floating_point() else ema[k].copy_(v)
            lv = loss.item()
            running = lv if running is None else 0.98 * running + 0.02 * lv
            step += 1
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4f}")
            if step % cfg.val_every == 0 or step == cfg.steps:
                v = validate()
                history.append({"step": step, "train_loss": running, "val_loss": v, "minutes": (time.time() - t0) / 60})
                log(f"step {step}: train loss {running:.4f}" + (f", val loss {v:.4f}" if v is not None else ""))
            if step % cfg.save_every == 0:
                with uninterrupted():  # a Ctrl-C now comes after the save, which is then the one kept
                    _checkpoint(prior, model, ema, opt, out, step, cfg, history, card, running)
                    kept = step
    except KeyboardInterrupt:  # Ctrl-C: say what is kept, and how to go on from it
        if bar:
            bar.close()
        if kept is None:
            raise Interrupted(f"at step {step}, before the first save (every {cfg.save_every} steps); no "
                              "checkpoint was written") from None
        raise Interrupted(f"at step {step}; the checkpoint and training state of step {kept} are in {out}: "
                          "the same command with --resume goes on from there") from None
    if bar:
        bar.close()
    val = validate()
    result = TrainResult(str(out), step, running if running is not None else float("nan"), val,
                         (time.time() - t0) / 60, stopped_by, history)
    _checkpoint(prior, model, ema, opt, out, step, cfg, history, None, running, result)
    # the plausibility threshold of `usdposer check --checkpoint`, calibrated on the training poses (EMA weights)
    from usdposer.models.plausibility import calibrate_plausibility

    prior.info["plausibility"] = calibrate_plausibility(out, dataset, device=cfg.device)
    _checkpoint(prior, model, ema, opt, out, step, cfg, history, card, running, result)
    return result


# New checkpoints sample ancestrally (eta = 1) by default: on the shipped pose space's held-out characters it beats
# deterministic DDIM in precision, recall and limit violations alike (model card).
SAMPLING_ETA = 1.0


def _checkpoint(prior, model, ema, opt, out, step, cfg, history, card, running, result=None):
    with uninterrupted():  # weights, config and training state of one step, or the previous ones
        _write_checkpoint(prior, model, ema, opt, out, step, cfg, history, card, running, result)


def _write_checkpoint(prior, model, ema, opt, out, step, cfg, history, card, running, result=None):
    live = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(ema)
    prior.info.update({"training": {"steps": step, "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed,
                                    "train_loss": running}})
    prior.info.setdefault("sampling", {"eta": SAMPLING_ETA})
    prior.save(out, card(prior, result) if card and result else None)
    model.load_state_dict(live)
    _save_state(out, ema, opt, step, {"config": asdict(cfg), "history": history})
