"""IK on the pose manifold: candidates from energy-guided sampling (``PosePrior.guided_sample``) under a
:class:`usdposer.core.ik.PoseObjective`, the most plausible that reaches every handle chosen."""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch

SUCCESS_FRACTION = 0.015  # a handle counts as reached within 1.5% of the character's height


EDIT_STRENGTH = 0.8  # share of the noise schedule re-run when editing a pose


_STARTS: dict = {}  # (prior, rig condition, steps, strength, start) -> its DDIM-inverted code
_STARTS_MAX = 32


def inverted_start(prior, cond, start: torch.Tensor, steps: int, strength: float) -> torch.Tensor:
    """``prior.invert(cond, start (1, J, 6), steps=steps, strength=strength)``, remembered: inversion is
    deterministic, and a fresh solve always starts from the rest pose, so an artist's repeated solves on one rig (a
    dragged handle) invert it once. Entries hold the prior and the condition weakly and check them on a hit."""
    key = (id(prior), id(cond), int(steps), float(strength), start.detach().cpu().numpy().tobytes())
    hit = _STARTS.get(key)
    if hit is not None and hit[0]() is prior and hit[1]() is cond:
        return hit[2].clone()
    z0 = prior.invert(cond, start, steps=steps, strength=strength)
    if len(_STARTS) >= _STARTS_MAX:
        _STARTS.pop(next(iter(_STARTS)))
    _STARTS[key] = (weakref.ref(prior), weakref.ref(cond), z0.clone())
    return z0


SCORE_MARGIN = 0.01  # prior scores closer than this are a tie: the score's own Monte-Carlo spread, per pose (its sd
# over noise draws is 0.011-0.012 on the CMU walk's, the Fox's and the Knight's real frames)


def choose(score: torch.Tensor, err: torch.Tensor, ok: torch.Tensor, violations: torch.Tensor | None = None) -> int:
    """The candidate to keep: of those that reach every handle (``ok (n,)``), the one with the lowest prior score
    ``(n,)``, except that among the candidates within :data:`SCORE_MARGIN` of that score (as plausible as far as the
    score can tell) the one with the fewest joints outside the rig's range (``violations (n, J)``) wins; if none
    reaches, the one with the smallest largest handle error ``(n, H)``."""
    if not bool(ok.any()):
        return int(err.max(1).values.argmin())
    best = float(score[ok].min())
    near = ok & (score <= best + SCORE_MARGIN)
    count = violations.sum(1).double() if violations is not None else torch.zeros(len(score), dtype=torch.float64)
    key = torch.where(near, count * 1e3 + score.double(), torch.full_like(count, math.inf))
    return int(key.argmin())


@dataclass
class IKSolution:
    """Candidates of one guided solve: six ``(n, J, 6)``, their starting codes ``(n, J, 6)``, handle errors ``(n, H)``
    (fractions of height), prior scores ``(n,)``, which reached every handle, and the chosen index."""

    six: torch.Tensor
    latents: torch.Tensor
    errors: torch.Tensor
    scores: torch.Tensor
    reached: torch.Tensor
    chosen: int


def solve_ik(prior, cond, obj, start: torch.Tensor, *, n: int, steps: int, strength: float = EDIT_STRENGTH,
             edit: bool = False, generator: torch.Generator | None = None, progress=None,
             range_limits: torch.Tensor | None = None, fallback: torch.Tensor | None = None) -> IKSolution:
    """Guided IK candidates under ``obj`` (a :class:`usdposer.core.ik.PoseObjective`).

    ``edit``: every candidate starts from ``start (1, J, 6)`` inverted to ``strength`` of the schedule, all but the
    first with a little fresh noise (``usdposer ik --from``). Otherwise the first candidate edits ``start`` (the rest
    pose) the same way and the others are sampled from pure noise. Nudges stop once every handle is within about
    0.4% of the height, so that met constraints leave the prior's pose alone. The chosen candidate reaches every
    handle within 1.5% of the height and has the lowest prior score (or, if none reaches, the smallest error).
    ``range_limits (J, 3, 2)``: the rig's range of motion (its own limits, or limits learned from its animation), by
    which :func:`choose` breaks near-ties in the prior score. ``fallback (1, J, 6)``: where no candidate reaches every
    handle, one more candidate edits this pose (a fresh solve's rest pose as it is, when ``start`` is that pose brought
    inside the range) and joins the choice; the solution then holds ``n + 1`` candidates.
    """
    H = len(obj.joints)
    tol = float(obj.weights.sum()) * 0.004**2
    z0 = inverted_start(prior, cond, start, steps, strength)
    k = n if edit else 1
    z_edit = z0.expand(k, -1, -1).clone()
    z_edit[1:] += cond.expand(0.3 * cond.randn(k - 1, generator=generator))
    latents, strengths = z_edit, [strength] * k
    if n > k:  # samples from noise, in the same batch: the edits join them when the schedule reaches their start
        latents = torch.cat([latents, cond.expand(cond.randn(n - k, generator=generator))])
        strengths += [1.0] * (n - k)
    six = prior.guided_sample(cond, obj.residuals, latents, steps=steps, strength=strengths, tol=tol,
                              progress=progress)

    def errors(x):  # (b, J, 6) -> (b, H) handle errors, fractions of the height
        return (obj.handle_errors(x) / obj.height).float().reshape(len(x), H)

    err = errors(six)
    if fallback is not None and not bool((err.max(1).values < SUCCESS_FRACTION).any()):
        z1 = inverted_start(prior, cond, fallback, steps, strength)
        six1 = prior.guided_sample(cond, obj.residuals, z1, steps=steps, strength=[strength], tol=tol)
        six, latents, err = torch.cat([six, six1]), torch.cat([latents, z1]), torch.cat([err, errors(six1)])
    score = prior.score(cond, six)
    ok = err.max(1).values < SUCCESS_FRACTION
    chosen = choose(score, err, ok, obj.violations(six, range_limits) if range_limits is not None else None)
    return IKSolution(six, latents, err, score, ok, chosen)
