"""Evaluating a pose space on held-out characters, against two baselines, in one run.

For each held-out character with real poses, N poses are drawn from each method and compared through forward
kinematics in the character's canonical frame (``usdposer.core.posespace``: roots at the reference, heading removed, as
in the dataset), over the joints the model sees, with distances as the mean per-joint position error (MPJPE) in % of
the character's height:

* APD (diversity): mean MPJPE over pairs of samples;
* precision: mean over samples of the MPJPE to the nearest real pose (lower is better);
* recall: mean over real poses of the MPJPE to the nearest sample (lower is better), and coverage: the share of real
  poses with a sample within 5 % of the height;
* limit violations: share of samples with a joint outside its limits: the rig's own where it states them (MJCF
  hinges), else swing-twist limits learned from all of the character's real poses (marked "learned").

Baselines: (a) ``random-rotations``: independent per-joint random rotations (uniform axis) whose angles are drawn
from the training data's per-joint rotation angles (pooled over joints at the same tree depth, so that it applies
to unseen topologies; the statistics are stored in the checkpoint at training time, so any dataset can be
evaluated); (b) ``rest+noise``: the reference pose with Gaussian axis-angle noise per joint, its scale bisected
until its APD equals the model's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from usdposer.core.rotations import axis_angle_to_quat, quat_to_6d, sixd_to_quat
from usdposer.errors import InputError
from usdposer.io.dataset import Character, load_dataset

COVERAGE_THRESHOLD = 5.0  # % of height


@dataclass
class EvalRow:
    character: str
    topology: str  # "seen" or "unseen" (no training character with the same joint count and parent list)
    method: str
    joints: int
    real_poses: int
    samples: int
    apd: float
    precision: float
    recall: float
    coverage: float
    limit_violations: float | None
    limit_source: str = "rig"  # "rig" (the asset's own limits), "learned" (from its real poses) or "none"
    seeds: int = 1  # the numbers are means over this many seeds
    precision_sd: float = 0.0  # standard deviation over the seeds
    recall_sd: float = 0.0
    eta: float | None = None  # the model's sampler noise (None for the baselines)
    noisy_steps: int | None = None  # eta > 0: the first steps that add it (None: all)


def joint_positions(ch: Character, six: torch.Tensor) -> torch.Tensor:
    """(N, J, 6) canonical codes -> (M, 3) positions of the model joints (canonical frame, roots at the reference)."""
    return ch.positions(six)[:, ch.mask]


def mpjpe_matrix(a: torch.Tensor, b: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """(N, J, 3), (M, J, 3) -> (N, M) mean per-joint distance."""
    rows = []
    for i in range(0, len(a), chunk):
        rows.append((a[i:i + chunk, None] - b[None]).norm(dim=-1).mean(-1))
    return torch.cat(rows)


def apd(x: torch.Tensor) -> float:
    D = mpjpe_matrix(x, x)
    n = len(x)
    return float(D.sum() / max(n * (n - 1), 1))


def limit_violation_rate(ch: Character, six: torch.Tensor, learned: torch.Tensor | None = None) -> float | None:
    """Share of poses with a joint outside its limits: the rig's own (XYZ Euler angles relative to rest, 1 degree
    tolerance) when it has them, else ``learned`` swing-twist limits ``(J, 3)`` (:func:`learned_limits`)."""
    R = ch.relative_rotations(six)  # (N, J, 3, 3) joint-local, relative to rest
    if ch.limits is None:
        if learned is None or not torch.isfinite(learned).any():
            return None
        from usdposer.core.limits import swing_twist_residual, twist_axes

        axes = twist_axes(ch.rest_local.double(), ch.parents.long())
        excess = swing_twist_residual(R, axes, learned, margin=math.radians(1.0))
        return float((excess > 0).any(1).double().mean())
    from scipy.spatial.transform import Rotation

    lim = ch.limits.double()
    known = torch.isfinite(lim).all(-1) & ch.mask[:, None]  # (J, 3)
    if not known.any():
        return None
    eul = torch.from_numpy(Rotation.from_matrix(R.reshape(-1, 3, 3).numpy()).as_euler("xyz")).reshape(len(six), -1, 3)
    tol = math.radians(1.0)
    bad = ((eul < lim[:, :, 0] - tol) | (eul > lim[:, :, 1] + tol)) & known
    return float(bad.flatten(1).any(1).double().mean())


def learned_limits(ch: Character) -> torch.Tensor:
    """Swing-twist limits ``(J, 3)`` learned from every real pose of the character (0.5 % / 99.5 % quantiles widened
    by 5 degrees, as ``usdposer limits learn``): for characters whose rig states no limits, "outside the range its own
    animation ever reaches"."""
    from usdposer.core.limits import learn_swing_twist, twist_axes

    axes = twist_axes(ch.rest_local.double(), ch.parents.long())
    lim = learn_swing_twist(ch.relative_rotations(ch.poses), axes)
    lim[~ch.mask] = math.nan
    return lim


def _depths(parents: torch.Tensor, mask: torch.Tensor | None = None) -> list[int]:
    d = []
    for p in parents.tolist():
        d.append(0 if p < 0 else d[p] + 1)
    return d


def angle_statistics(chars: list[Character], quantiles: int = 101) -> dict:
    """Per model-tree depth (6 and deeper pooled), ``quantiles`` evenly spaced quantiles of the training poses' joint
    rotation angles (radians): what the random-rotations baseline draws from, stored in the checkpoint."""
    from usdposer.core.rotations import quat_to_axis_angle

    buckets: dict[int, list[torch.Tensor]] = {}
    for c in chars:
        if not len(c.poses):
            continue
        ang = quat_to_axis_angle(sixd_to_quat(c.poses.double())).norm(dim=-1)  # (N, J)
        for j, d in enumerate(_depths(c.model_parents)):
            if bool(c.mask[j]):
                buckets.setdefault(min(d, 6), []).append(ang[:, j])
    q = torch.linspace(0, 1, quantiles, dtype=torch.float64)
    return {str(d): [round(float(v), 6) for v in torch.quantile(torch.cat(v)[:200000], q)]
            for d, v in sorted(buckets.items())}


class AngleBank:
    """Training rotation angles by model-tree depth (depth >= 6 pooled), drawn by inverse CDF from the quantiles of
    :func:`angle_statistics`."""

    def __init__(self, stats: dict):
        if not stats:
            raise InputError("no rotation-angle statistics for the random-rotations baseline: the checkpoint has none "
                             "and the dataset has no training poses; retrain the checkpoint with this usdposer")
        self.by_depth = {int(d): torch.tensor(v, dtype=torch.float64) for d, v in stats.items()}
        self.all = torch.sort(torch.cat(list(self.by_depth.values()))).values

    def draw(self, depth: int, n: int, g: torch.Generator) -> torch.Tensor:
        qs = self.by_depth.get(min(depth, 6), self.all)
        u = torch.rand(n, generator=g, dtype=torch.float64) * (len(qs) - 1)
        lo = u.floor().long().clamp(max=len(qs) - 2)
        w = u - lo
        return qs[lo] * (1 - w) + qs[lo + 1] * w


def _model_joints(ch: Character) -> list[int]:
    """The model joints (indices into the rig) in :func:`usdposer.core.posespace.canonical_order`: per-joint random
    draws are made for them only, in that order, so that neither joints that move nothing nor the order the rig lists
    its joints in change the random stream a joint gets."""
    from usdposer.core.posespace import canonical_order

    model = ch.mask.nonzero().flatten()
    return model[canonical_order(ch.features[model])].tolist()


def _scatter(ch: Character, x: torch.Tensor, joints: list[int]) -> torch.Tensor:
    """``(n, M, C)`` values of ``joints`` -> ``(n, J, C)``, zeros elsewhere."""
    out = torch.zeros(x.shape[0], len(ch.parents), x.shape[2], dtype=x.dtype)
    out[:, joints] = x
    return out


def random_rotation_baseline(ch: Character, bank: AngleBank, n: int, g: torch.Generator) -> torch.Tensor:
    model = _model_joints(ch)
    axis = torch.randn(n, len(model), 3, generator=g, dtype=torch.float64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    depths = _depths(ch.model_parents)
    ang = torch.stack([bank.draw(depths[j], n, g) for j in model], 1)
    return quat_to_6d(axis_angle_to_quat(_scatter(ch, axis * ang[..., None], model)))


def rest_noise_baseline(ch: Character, n: int, target_apd: float, g_seed: int) -> torch.Tensor:
    """Reference pose + N(0, sigma^2) axis-angle per model joint, sigma bisected to match ``target_apd`` (metres)."""
    model = _model_joints(ch)
    noise = _scatter(ch, torch.randn(n, len(model), 3, generator=torch.Generator().manual_seed(g_seed),
                                     dtype=torch.float64), model)
    lo, hi = 0.0, 3.0
    for _ in range(25):
        mid = (lo + hi) / 2
        six = quat_to_6d(axis_angle_to_quat(mid * noise))
        if apd(joint_positions(ch, six)) < target_apd:
            lo = mid
        else:
            hi = mid
    return quat_to_6d(axis_angle_to_quat((lo + hi) / 2 * noise))


def _row(ch, topology, method, six, real_pos, learned=None) -> EvalRow:
    pos = joint_positions(ch, six)
    h = ch.height or 1.0
    D = mpjpe_matrix(pos, real_pos) / h * 100
    return EvalRow(ch.id, topology, method, len(ch.parents), len(real_pos), len(six), apd(pos) / h * 100,
                   float(D.min(1).values.mean()), float(D.min(0).values.mean()),
                   float((D.min(0).values < COVERAGE_THRESHOLD).double().mean()), limit_violation_rate(ch, six, learned),
                   "rig" if ch.limits is not None else ("learned" if learned is not None else "none"))


def signature(c: Character) -> str:
    """The model skeleton's topology (parents of its model joints), as a short hash."""
    import hashlib

    keep = c.mask.nonzero().flatten().tolist()
    index = {j: i for i, j in enumerate(keep)}
    mp = [index.get(int(c.model_parents[j]), -1) for j in keep]
    return hashlib.sha1(str(mp).encode()).hexdigest()[:16]


def evaluate(checkpoint: str | None, dataset: str, *, n: int = 256, steps: int = 50, seed: int = 0, seeds: int = 1,
             max_real: int = 1000, device: str = "cpu", eta: float | None = None, noisy_steps: int | None = None,
             progress=None) -> list[EvalRow]:
    """One table: model and both baselines on every held-out character with poses (see the module docstring).
    With ``seeds`` > 1 every number is the mean over seeds ``seed .. seed + seeds - 1`` (each draws its own real
    subset, samples and baselines), with the spread of precision and recall. ``eta`` None: the checkpoint's own,
    in the first ``noisy_steps`` steps (None: all; ``PosePrior.sample``)."""
    from usdposer.models.pose_prior import PosePrior, noisy_steps_of

    if seeds < 1:
        raise InputError(f"--seeds must be at least 1 (got {seeds})")
    prior = PosePrior.load(checkpoint, device)
    eta = prior.sampling_eta if eta is None else eta
    noisy_steps = noisy_steps_of(eta, noisy_steps, steps)
    held = [c for c in load_dataset(dataset, ("heldout",)) if len(c.poses)]
    if not held:
        raise InputError(f"{dataset}: no held-out characters with poses to evaluate; rebuild it with --holdout NAME "
                         "(every character of the dataset may be held out)")
    stats = prior.info.get("baseline_angles")
    seen = set(prior.info.get("train_topologies", []))
    if not stats or not seen:
        train_chars = load_dataset(dataset, ("train", "val"))
        stats = stats or angle_statistics(train_chars)
        seen = seen or {signature(c) for c in train_chars}
    bank = AngleBank(stats)
    rows: list[EvalRow] = []
    for ch in (progress(held) if progress else held):
        topology = "seen" if signature(ch) in seen else "unseen"
        learned = learned_limits(ch) if ch.limits is None else None
        runs = [_evaluate_one(prior, ch, bank, topology, learned, n, steps, s, max_real, eta, noisy_steps)
                for s in range(seed, seed + seeds)]
        rows += [_mean_row(list(group)) for group in zip(*runs)]
    return rows


def _evaluate_one(prior, ch, bank, topology, learned, n, steps, seed, max_real, eta, noisy_steps) -> list[EvalRow]:
    """The three rows (model, random rotations, rest + noise) of one character for one seed."""
    from usdposer.models.pose_prior import RigCondition

    g = torch.Generator().manual_seed(seed)
    real = ch.poses[torch.randperm(len(ch.poses), generator=g)[:max_real]]
    real_pos = joint_positions(ch, real)
    cond = RigCondition(ch.features.float(), ch.tree.long(), ch.mask)  # the dataset's features include the mesh
    six, _ = prior.sample(cond, n, steps=steps, generator=torch.Generator().manual_seed(seed), eta=eta,
                          noisy_steps=noisy_steps)
    model_row = _row(ch, topology, "usdposer", six, real_pos, learned)
    model_row.eta = eta
    model_row.noisy_steps = noisy_steps
    target = model_row.apd / 100 * (ch.height or 1.0)
    return [model_row,
            _row(ch, topology, "random-rotations", random_rotation_baseline(ch, bank, n, g), real_pos, learned),
            _row(ch, topology, "rest+noise", rest_noise_baseline(ch, n, target, seed + 1), real_pos, learned)]


def _mean_row(rows: list[EvalRow]) -> EvalRow:
    """The mean of one method's rows over seeds, with the spread of precision and recall."""
    def mean(key):
        vals = [getattr(r, key) for r in rows]
        return None if any(v is None for v in vals) else sum(vals) / len(vals)

    def sd(key):
        return float(torch.tensor([getattr(r, key) for r in rows], dtype=torch.float64).std()) if len(rows) > 1 else 0.0

    first = rows[0]
    return dataclasses.replace(first, apd=mean("apd"), precision=mean("precision"), recall=mean("recall"),
                               coverage=mean("coverage"), limit_violations=mean("limit_violations"), seeds=len(rows),
                               precision_sd=sd("precision"), recall_sd=sd("recall"))


def card_notes(rows: list[EvalRow], n: int, steps: int) -> str:
    """The paragraph under the model card's table: how it was measured."""
    eta = next((r.eta for r in rows if r.eta is not None), 0.0)
    noisy = next((r.noisy_steps for r in rows if r.noisy_steps is not None), None)
    seeds = max((r.seeds for r in rows), default=1)
    sampler = ("deterministic DDIM" if eta == 0 else f"eta {eta:g} in the first {noisy}, deterministic after"
               if noisy is not None else "ancestral (DDPM-like)" if eta == 1 else "DDIM")
    return (f"{n} samples per character and method; the model samples with {steps} steps, eta {eta:g} ({sampler}). "
            + (f"Every number is the mean over {seeds} seeds (each draws its own samples, baselines and real subset); "
               "± is the spread over seeds. " if seeds > 1 else "")
            + "Limit violations: share of samples with any joint outside its limits: the rig's own where it states "
              "them, else swing-twist limits learned from all of the character's real poses (0.5 / 99.5 % quantiles "
              "widened by 5 degrees; the real poses themselves stay inside them), marked \"learned\". With 50 "
              "joints \"any joint\" is strict.")


def format_table(rows: list[EvalRow]) -> str:
    seeds = max((r.seeds for r in rows), default=1)
    pm = f" (mean ± sd over {seeds} seeds)" if seeds > 1 else ""
    head = (f"| character | topology | method | APD % | precision %{pm} (lower better) | recall %{pm} (lower better) | "
            "coverage @5% | limit violations |")
    lines = [head, "|" + "---|" * 8]

    def num(v, s):
        return f"{v:.2f} ± {s:.2f}" if seeds > 1 else f"{v:.2f}"

    for r in rows:
        lv = "n/a" if r.limit_violations is None else f"{100 * r.limit_violations:.1f} %" + (
            " (learned)" if r.limit_source == "learned" else "")
        method = r.method if r.eta is None else f"{r.method} (eta {r.eta:g})"
        lines.append(f"| {r.character} | {r.topology} | {method} | {r.apd:.2f} | {num(r.precision, r.precision_sd)} | "
                     f"{num(r.recall, r.recall_sd)} | {100 * r.coverage:.0f} % | {lv} |")
    return "\n".join(lines)
